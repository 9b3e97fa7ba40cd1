"""A bulk result's JSONL lines turned into levels, the lines unchanged since the last
complete read taken from its memo instead of being decoded and built again.

A full read of 100,000 SKUs × 5 locations is 600,000 lines, and from one read to the
next few change. :class:`BulkLines` hashes each line (:mod:`connectors.memo`); an item
line met before is its item again, a level line met before is its level again with this
read's ``observed_at``, and only the other lines are decoded (msgspec, a chunk's lines in
one call, as :class:`~connectors.shopify.items.BulkLine` structs where they fit one: a
first read's Shopify CPU 0.68x of decoding them as dicts) and built. A level line holds
its item's id (``__parentId``) but not the item's SKU, pack or flags: a level taken from
the memo is used only if its item, as this read has it, gives the same SKU, spelling and
flags; otherwise its line is decoded.

Since API 2026-01 a level's line may come before its item's: such levels wait for their
item (in memory, per item), taken from the memo or decoded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import msgspec
import numpy as np

from connectors.errors import ResponseError
from connectors.levels import Level, observed_again
from connectors.memo import I64, Memo, hashes
from connectors.normalize import Mapping
from connectors.shopify.catalog import Catalog
from connectors.shopify.items import (
    REFS_TUPLE,
    BulkLine,
    ItemFacts,
    LevelReader,
    item_facts,
    line_facts,
    ref_values,
)

#: JSONL decoded by msgspec, many lines a call: ~1.7x faster than the json module on
#: Shopify's lines one by one, and a whole network chunk of lines is one call (a full
#: read of 100,000 SKUs is 600,000 lines; BENCHMARKS.md, issue 16)
_decoder = msgspec.json.Decoder()
_decode = _decoder.decode
_decode_lines = _decoder.decode_lines
#: the same lines decoded as :class:`BulkLine`s, where they fit (most files: all lines)
_decode_bulk_lines = msgspec.json.Decoder(BulkLine).decode_lines
#: what ends a line, as httpx's line reader splits them (``str.splitlines`` would also
#: split at U+2028 and others, which JSON strings may hold unescaped)
_LINE_END = re.compile(r"\r\n|\r|\n")

#: what the memo holds for a line: an item line's facts (its id alone for an item without
#: a SKU; both, in the odd case of an id that is not a string), a level line's level
Made = ItemFacts | str | tuple[str, ItemFacts | None] | Level


def objects(data: bytes, system: str, encoding: str) -> list[dict[str, Any]]:
    """The objects of ``data``, whole lines of the file. All at once when it is one JSON
    object per line, as Shopify writes it; otherwise line by line as text (undecodable
    bytes replaced), so a blank line is skipped and a bad one named, as when read one
    line at a time."""
    if not data.strip():
        return []
    try:
        found: list[Any] | None = _decode_lines(data)
    except ValueError:  # msgspec.DecodeError: bad JSON or bytes; said line by line below
        found = None
    if (
        found is None
        or len(found) != data.count(b"\n") + (not data.endswith(b"\n"))
        or not all(type(o) is dict for o in found)
    ):
        text = data.decode(encoding, "replace")
        return [_object(line, system) for line in _LINE_END.split(text) if line.strip()]
    return found


def lines(data: bytes, system: str, encoding: str) -> Sequence[BulkLine | dict[str, Any]]:
    """The lines of ``data`` as :class:`BulkLine`s, all at once, where each line fits
    one; else :func:`objects` (dicts), which reads what does not fit and names what is
    wrong."""
    try:
        found = _decode_bulk_lines(data)
    except ValueError:  # msgspec's DecodeError and ValidationError: read as dicts
        return objects(data, system, encoding)
    if len(found) != data.count(b"\n") + (not data.endswith(b"\n")):  # blank lines
        return objects(data, system, encoding)
    return found


def _object(line: str, system: str) -> dict[str, Any]:
    try:
        obj = _decode(line)
    except ValueError as exc:  # msgspec.DecodeError, or a lone surrogate in the line
        raise ResponseError(f"{system}: a bulk result line is not JSON", system=system) from exc
    if not isinstance(obj, dict):
        raise ResponseError(f"{system}: a bulk result line is not an object", system=system)
    return obj


class BulkLines:
    """One full read of a bulk result: feed each chunk of whole lines to :meth:`chunk`
    (it returns the levels now complete), then call :meth:`finish` (it fails if a level
    never met its item, and makes this read the memo's)."""

    def __init__(
        self,
        *,
        system: str,
        mapping: Mapping,
        observed_at: datetime,
        memo: Memo[Made],
        catalog: Catalog | None = None,
    ) -> None:
        self._system, self._mapping, self._observed = system, mapping, observed_at
        self._memo, self._catalog = memo, catalog
        self._level_of = LevelReader(system, mapping)
        #: item id -> its facts (None: an item without a SKU)
        self._items: dict[str, ItemFacts | None] = {}
        #: item id -> its levels met before it: (position in ``_made``, the level's
        #: line, the line decoded, else its level from the memo)
        self._waiting: dict[str, list[tuple[int, bytes, _Decoded | Level]]] = {}
        #: what this read made of each line, in file order, with the lines' hashes
        self._keys: list[I64] = []
        self._made: list[Made | None] = []
        self._encoding = "utf-8"
        self._add_level = catalog.add_level if catalog is not None else None

    def chunk(self, data: bytes, encoding: str) -> list[Level]:
        self._encoding = encoding
        pieces = data.split(b"\n")
        if not pieces[-1]:
            pieces.pop()
        keys = hashes(pieces)
        found = self._memo.take(keys)
        if found.count(None) == len(found):  # nothing known (a first read): no copy
            missed: list[bytes] = pieces
            decoded: Sequence[_Decoded] = lines(data, self._system, encoding)
        else:
            missed = [line for line, known in zip(pieces, found, strict=True) if known is None]
            decoded = lines(b"\n".join(missed), self._system, encoding) if missed else []
        out: list[Level] = []
        if len(decoded) != len(missed):  # blank or odd lines: decoded whole, kept nowhere
            for obj in objects(data, self._system, encoding):
                self._new(obj, b"", None, out)
            return out
        made = self._made
        self._keys.append(keys)
        start = len(made)
        made.extend(found)
        step = iter(decoded)
        items, waiting, settle = self._items, self._waiting, self._settle
        # the lines of a later read are almost all levels unchanged, each before its item
        # (Shopify's order since 2026-01): those are told and queued first, at C speed
        # where the level's references are a tuple of their values (_item takes them)
        refs_tuple = REFS_TUPLE
        for at, (line, known) in enumerate(zip(pieces, found, strict=True), start):
            if type(known) is Level:  # a level, its line unchanged
                refs = known.refs
                if type(refs) is refs_tuple:
                    item_id = _tuple_getitem(refs, 0)
                else:
                    item_id = ref_values(refs)[0]
                facts = items.get(item_id, _UNSEEN)
                if facts is _UNSEEN:  # a level before its item
                    queue = waiting.get(item_id)
                    if queue is None:
                        waiting[item_id] = [(at, line, known)]
                    else:
                        queue.append((at, line, known))
                else:
                    settle(facts, known, line, at, out)
            elif known is None:
                self._new(next(step), line, at, out)
            elif type(known) is ItemFacts:  # an item, its line unchanged
                self._item(known.item_id, known, out)
            elif type(known) is str:  # an item without a SKU, its line unchanged
                self._item(known, None, out)
            elif type(known) is tuple:
                self._item(*cast(tuple[str, ItemFacts | None], known), out)
        return out

    def finish(self) -> None:
        if self._waiting:
            raise ResponseError(
                f"{self._system}: {sum(map(len, self._waiting.values()))} inventory levels "
                "in the bulk result belong to no item in it",
                system=self._system,
            )
        keys = np.concatenate(self._keys) if self._keys else np.empty(0, np.int64)
        self._memo.keep(keys, self._made)
        self._memo.commit()
        self._keys, self._made = [], []

    # -- one line -----------------------------------------------------------------------
    def _new(self, obj: _Decoded, line: bytes, at: int | None, out: list[Level]) -> None:
        """A decoded line (``at``: its position in ``_made``; None: not to be kept)."""
        typed = type(obj) is BulkLine
        parent = obj.parent_id if typed else obj.get("__parentId")  # type: ignore[union-attr]
        if parent is None:  # an item
            if typed:
                item_id = str(obj.id)  # type: ignore[union-attr]
                facts = line_facts(obj, system=self._system, mapping=self._mapping)  # type: ignore[arg-type]
            else:
                item_id = str(obj["id"])  # type: ignore[index]
                facts = item_facts(obj, system=self._system, mapping=self._mapping)  # type: ignore[arg-type]
            if at is not None:
                self._made[at] = (
                    item_id
                    if facts is None
                    else facts
                    if facts.item_id == item_id
                    else (item_id, facts)
                )
            self._item(item_id, facts, out)
            return
        facts_or_none = self._items.get(parent, _UNSEEN) if type(parent) is str else _UNSEEN
        if facts_or_none is _UNSEEN:  # a level before its item
            self._waiting.setdefault(str(parent), []).append((-1 if at is None else at, line, obj))
            return
        self._built(facts_or_none, obj, line, at, out)

    def _built(
        self,
        facts: ItemFacts | None,
        obj: _Decoded,
        line: bytes,
        at: int | None,
        out: list[Level],
    ) -> None:
        if facts is None:  # an item without a SKU: no level
            return
        level = self._level(facts, obj, line)
        if at is not None and at >= 0:
            self._made[at] = level
        self._stocked(facts, level, out)

    def _settle(
        self, facts: ItemFacts | None, known: Level, line: bytes, at: int, out: list[Level]
    ) -> None:
        """A level from the memo, its item now known: kept (with this read's
        ``observed_at``) if the item gives it the same SKU, spelling and flags, else its
        line decoded and built again."""
        sku = known.sku
        item_id, location_gid, spelled = ref_values(known.refs)
        if (
            facts is not None
            and facts.sku == sku
            and facts.flags == known.flags
            and (facts.raw_sku or sku) == spelled
        ):
            level = observed_again(self._observed, known)
            self._made[at] = level
            if self._add_level is not None:
                self._add_level(item_id, location_gid)
            out.append(level)
            return
        self._made[at] = None
        if facts is not None:
            [obj] = objects(line, self._system, self._encoding)
            self._built(facts, obj, line, at, out)

    def _item(self, item_id: str, facts: ItemFacts | None, out: list[Level]) -> None:
        self._items[item_id] = facts
        if facts is not None and self._catalog is not None:
            self._catalog.add_item(facts.sku, facts.item_id, facts.raw_sku)
        waiting = self._waiting.pop(item_id, None)
        if not waiting:
            return
        # the levels that came before their item (all of them, as Shopify writes the file
        # since 2026-01): built here, one call each (a full read holds 500,000)
        level_of, observed, made, add_level = (
            self._level_of,
            self._observed,
            self._made,
            self._add_level,
        )
        if facts is not None:
            waiting = self._kept(item_id, facts, waiting, out)
        from_line = level_of.line
        for at, line, entry in waiting:
            kind = type(entry)
            if kind is Level:  # from the memo: kept or built again
                self._settle(facts, entry, line, at, out)  # type: ignore[arg-type]
            elif facts is not None:
                level = from_line(facts, entry, observed) if kind is BulkLine else None  # type: ignore[arg-type]
                if level is None:
                    level = self._by_dicts(facts, entry, line)  # type: ignore[arg-type]
                if at >= 0:
                    made[at] = level
                if add_level is not None:
                    add_level(facts.item_id, level.refs["location_id"])
                out.append(level)

    def _level(self, facts: ItemFacts, obj: _Decoded, line: bytes) -> Level:
        """The level of a level's decoded line: as a :class:`BulkLine` where it reads as
        one, else :meth:`_by_dicts`."""
        if type(obj) is BulkLine:
            level = self._level_of.line(facts, obj, self._observed)
            if level is not None:
                return level
        return self._by_dicts(facts, obj, line)

    def _by_dicts(self, facts: ItemFacts, obj: _Decoded, line: bytes) -> Level:
        """The level of a level's line from the line decoded as dicts, which reads what
        a :class:`BulkLine` does not and says what is wrong with it."""
        if type(obj) is BulkLine:
            [obj] = objects(line, self._system, self._encoding)
        return self._level_of(facts, obj, self._observed)  # type: ignore[arg-type]

    def _kept(
        self,
        item_id: str,
        facts: ItemFacts,
        waiting: list[tuple[int, bytes, _Decoded | Level]],
        out: list[Level],
    ) -> list[tuple[int, bytes, _Decoded | Level]]:
        """What :meth:`_settle` does for each level from the memo that its item keeps
        (the same SKU, spelling and flags; references a tuple of their values), for all
        of the item's waiting levels in one loop, without a call per level (a later read
        takes 500,000 levels from the memo; BENCHMARKS.md, issue 16). Returns the other
        waiting entries, in order, for the general path; levels are put out in the
        waiting order as long as each is kept, so the read's order is the general
        path's."""
        sku, flags, refs_tuple = facts.sku, facts.flags, REFS_TUPLE
        spelled = facts.raw_sku or sku
        observed, made = self._observed, self._made
        locations: list[str] = []
        index = 0
        for at, _, entry in waiting:
            if type(entry) is not Level:
                break
            system, level_sku, place, quantities, _, changed, source, refs, its_flags = entry
            if not (
                type(refs) is refs_tuple
                and level_sku == sku
                and (its_flags is flags or its_flags == flags)
                and _tuple_getitem(refs, 2) == spelled
            ):
                break
            level = _new_tuple(
                Level, (system, sku, place, quantities, observed, changed, source, refs, its_flags)
            )
            made[at] = level
            out.append(level)
            locations.append(_tuple_getitem(refs, 1))
            index += 1
        if locations and self._catalog is not None:
            self._catalog.add_locations(item_id, locations)
        return waiting[index:] if index else waiting

    def _stocked(self, facts: ItemFacts, level: Level, out: list[Level]) -> None:
        if self._add_level is not None:
            self._add_level(facts.item_id, level.refs["location_id"])
        out.append(level)


#: an item not met yet in this read
_UNSEEN: Any = object()
#: a line decoded: as a BulkLine where it fits one, else as dicts
_Decoded = BulkLine | dict[str, Any]
_tuple_getitem = tuple.__getitem__
_new_tuple = tuple.__new__
