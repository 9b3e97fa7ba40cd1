"""Cursor pagination the way Shopify's Admin API does it.

Cursors are base64 of ``{"last_id":<n>,"last_value":"<sort value>"}`` (as the captures
show). Paging is keyset-based over (sort value, id). ``hasPreviousPage`` and
``hasNextPage`` say whether the filtered, ordered list holds anything before or after
the returned window, whichever direction was paged (the windowing capture shows
``after`` windows with ``hasPreviousPage: true``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sandbox.shopify.errors import ShopifyError

T = TypeVar("T")
MAX_PAGE = 250
SortKey = tuple[Any, int]


def encode_cursor(key: SortKey) -> str:
    value, last_id = key
    raw = json.dumps({"last_id": last_id, "last_value": str(value)}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def decode_cursor(cursor: str, parse_value: Callable[[str], Any]) -> SortKey:
    try:
        doc = json.loads(base64.b64decode(cursor.encode(), validate=True))
        return parse_value(str(doc["last_value"])), int(doc["last_id"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise ShopifyError("Invalid cursor for current pagination sort.", "BAD_REQUEST") from exc


def paginate(
    objects: Sequence[T],
    key: Callable[[T], SortKey],
    args: dict[str, Any],
    *,
    parse_value: Callable[[str], Any] = int,
) -> dict[str, Any]:
    """A connection dict (``edges``, ``nodes``, ``pageInfo``) for one page of ``objects``."""
    first, last = args.get("first"), args.get("last")
    if first is None and last is None:
        raise ShopifyError("you must provide one of first or last", "BAD_REQUEST")
    for name, n in (("first", first), ("last", last)):
        if n is not None and not 0 <= n <= MAX_PAGE:
            raise ShopifyError(
                f"The maximum number of records that can be requested with `{name}` is "
                f"{MAX_PAGE}, and it cannot be negative.",
                "BAD_REQUEST",
            )
    reverse = bool(args.get("reverse"))
    ordered = sorted(objects, key=key, reverse=reverse)
    keys = [key(o) for o in ordered]

    def beyond(k: SortKey, bound: SortKey) -> bool:
        return k < bound if reverse else k > bound

    start, end = 0, len(ordered)
    if args.get("after") is not None:
        bound = decode_cursor(args["after"], parse_value)
        start = next((i for i, k in enumerate(keys) if beyond(k, bound)), len(keys))
    if args.get("before") is not None:
        bound = decode_cursor(args["before"], parse_value)
        end = next((i for i, k in enumerate(keys) if not beyond(bound, k)), len(keys))
        end = max(end, start)
    if first is not None:
        end = min(end, start + first)
    if last is not None:
        start = max(start, end - last)
    window = ordered[start:end]
    cursors = [encode_cursor(k) for k in keys[start:end]]
    return {
        "edges": [{"cursor": c, "node": o} for c, o in zip(cursors, window, strict=True)],
        "nodes": window,
        "pageInfo": {
            "hasNextPage": end < len(ordered),
            "hasPreviousPage": start > 0,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }
