"""A page's items as the bytes each was sent as, so a full read decodes and builds only
the items whose bytes changed since the last complete read (:mod:`connectors.memo`).

A WMS sends every level again in each full read, 500 items a page, and between two reads
a few change: 0.1 % of 500,000 levels touches about a third of 1,000 pages, so a memo of
whole pages still built a third of the levels again (BENCHMARKS.md, issue 16). msgspec
decodes a page with its items left as :class:`msgspec.Raw` (their bytes, found at C
speed, not decoded), each item is then found in the memo by a hash of its bytes, and
only the others are decoded.

Only where the page's shape allows it: the items at the top of the body or under one
top-level key, and the next cursor (cursor paging) under another top-level key. A page
msgspec refuses (JSON that Python's json module reads but msgspec does not: ``NaN``,
``1e400``, a lone surrogate, a byte-order mark, UTF-16) is left to the connector's
general path, which reads it as before (and remembers it whole); where msgspec reads a
page, the values are those Python's json module gives. The other way round, msgspec
steps over the parts of a page it does not keep without checking their text: a page
that is not UTF-8 is never split, so it fails as Python's json module fails it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from connectors.rest.spec import ListSpec, dig

_decode_value = msgspec.json.Decoder().decode


class ItemBytes:
    """Splits a page into its items' bytes and its next cursor: ``split(content)``, or
    None where the page is to be read by the general path."""

    __slots__ = ("_cursor_rest", "_decoder", "_has_cursor")

    def __init__(
        self, decoder: msgspec.json.Decoder[Any], has_cursor: bool, cursor_rest: str | None
    ) -> None:
        self._decoder = decoder
        #: whether pages carry a next cursor, and its path below its top-level key
        self._has_cursor, self._cursor_rest = has_cursor, cursor_rest

    @classmethod
    def for_listing(cls, listing: ListSpec) -> ItemBytes | None:
        """The splitter for pages of ``listing``'s shape; None where the shape is not one
        it reads (items nested deeper than one key, or a cursor beside items at the top)."""
        items_path = listing.items_path
        cursor = listing.next_cursor_path if listing.pagination == "cursor" else None
        if "." in items_path:
            return None
        if not items_path:  # the body is the list of items
            if cursor is not None:
                return None
            return cls(msgspec.json.Decoder(list[msgspec.Raw]), False, None)
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [("items", list[msgspec.Raw])]
        rename = {"items": items_path}
        rest: str | None = None
        if cursor is not None:
            head, dot, rest = cursor.partition(".")
            rest = rest if dot else None
            if head == items_path:
                return None
            fields.append(("cursor", msgspec.Raw, msgspec.Raw(b"null")))
            rename["cursor"] = head
        page = msgspec.defstruct("Page", fields, rename=rename)
        return cls(msgspec.json.Decoder(page), cursor is not None, rest)

    def split(self, content: bytes) -> tuple[list[bytes], Any] | None:
        """The bytes of each item of the page, in order, and its next cursor (None
        without cursor paging); None where msgspec does not read the page."""
        if not content.isascii():
            try:  # what Python's json module checks of bytes, msgspec skips unchecked
                content.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                return None
        try:
            page = self._decoder.decode(content)
            if not self._has_cursor:
                items = page if type(page) is list else page.items
                return list(map(bytes, items)), None
            cursor = _decode_value(page.cursor)
        except msgspec.DecodeError:
            return None
        if self._cursor_rest is not None:
            cursor = dig(cursor, self._cursor_rest)
        return list(map(bytes, page.items)), cursor


def decode_items(pieces: list[bytes]) -> list[Any] | None:
    """The items of ``pieces`` (each one JSON value's bytes) decoded in one call; None
    where msgspec does not read one of them."""
    try:
        items: list[Any] = _decode_value(b"[" + b",".join(pieces) + b"]")
    except msgspec.DecodeError:
        return None
    return items
