"""A WMS (or any inventory service) behind a JSON REST API, driven by configuration."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from operator import itemgetter
from typing import Any, Literal, cast
from urllib.parse import quote

import httpx

from connectors.clock import Clock
from connectors.errors import ResponseError, WriteRejected
from connectors.health import Health
from connectors.http import RetryPolicy, send
from connectors.levels import (
    Level,
    LevelWrite,
    TupleMap,
    WriteOutcome,
    build_level,
    map_type,
    observed_again,
    tuple_map,
)
from connectors.memo import Memo, hashes
from connectors.normalize import Mapping, count_in_text, from_units, to_units
from connectors.pages import Get, page_session
from connectors.rest.items import ItemBytes, decode_items
from connectors.rest.spec import FieldSpec, ListSpec, WriteSpec, dig
from connectors.times import iso_time


class RestConnector:
    """Reads pages of inventory items; writes one level per idempotent request."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        name: str,
        base_url: str,
        headers: dict[str, str],
        listing: ListSpec,
        fields: FieldSpec,
        mapping: Mapping,
        clock: Clock,
        write: WriteSpec | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._base = base_url.rstrip("/")
        self._headers = headers
        self._list = listing
        self._fields = fields
        self._write = write
        self._mapping = mapping
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._health = Health(system=name)
        #: normalized SKU -> the spellings the system uses for it (seen in reads), so
        #: filters and write URLs use the system's own SKU, not Driftwatch's. ``()``: only
        #: the SKU itself (most SKUs; a set each would cost 216 bytes, 22 MB at 100,000).
        self._raw_skus: dict[str, tuple[str, ...]] = {}
        #: the fields' paths in one order: SKU, location, each state, the time (if any)
        self._states = tuple(fields.quantities)
        self._paths = (
            fields.sku,
            fields.location,
            *fields.quantities.values(),
            *((fields.updated_at,) if fields.updated_at else ()),
        )
        #: every path a top-level key: one C call reads an item's fields
        self._flat: Callable[[dict[str, Any]], tuple[Any, ...]] | None = (
            itemgetter(*self._paths) if not any("." in p for p in self._paths) else None
        )
        self._every_state: Callable[[tuple[int, ...]], TupleMap[int]] = map_type(self._states)
        #: the last complete read's items (what each made: its level, or False for
        #: none), by a hash of each item's bytes (:mod:`connectors.rest.items`), and its
        #: pages that are not split into items (their shape, or JSON only Python's json
        #: module reads), whole, by a hash of their bytes (:mod:`connectors.memo`)
        self._items = ItemBytes.for_listing(listing)
        self._item_memo: Memo[Level | Literal[False]] = Memo()
        self._page_memo: Memo[_Page] = Memo()

    @property
    def writable(self) -> bool:
        return self._write is not None

    def health(self) -> Health:
        return self._health

    async def _get(self, url: httpx.URL, params: dict[str, Any], get: Get | None) -> httpx.Response:
        # the parameters merged into the URL's own query: httpx's params= replaces it
        # (a list path's `?warehouse=3` was lost; given {}, a next link's page number).
        # One URL parsed a page, handed on as it is: parsing it in each layer cost
        # ~0.08 s of a later read's 1.9 s at a thousand pages (BENCHMARKS.md, issue 16)
        target = url.copy_merge_params(params) if params else url
        response = await send(
            (lambda: self._client.get(target, headers=self._headers))
            if get is None
            else (lambda: get(target, self._headers)),
            system=self.name,
            health=self._health,
            clock=self._clock,
            policy=self._policy,
            rng=self._rng,
        )
        if response.status_code >= 400:
            raise ResponseError(
                f"{self.name}: GET {url} answered HTTP {response.status_code}", system=self.name
            )
        return response

    async def read_levels(self, skus: Sequence[str] | None = None) -> list[Level]:
        try:
            levels = [lv async for page in self._read(skus) for lv in page]
        except Exception as exc:
            self._item_memo.discard()
            self._page_memo.discard()
            self._health.failed(str(exc), self._clock.now())
            raise
        if skus is None:
            self._item_memo.commit()
            self._page_memo.commit()
        if skus is not None:
            wanted = set(skus)
            levels = [lv for lv in levels if lv.sku in wanted]
        self._health.succeeded(self._clock.now())
        return levels

    async def _read(self, skus: Sequence[str] | None) -> Any:
        spec = self._list
        url = self._base + spec.path
        params: dict[str, Any] = {spec.size_param: spec.page_size}
        if skus is not None and spec.sku_filter_param:
            spellings = {s for sku in skus for s in (sku, *self._raw_skus.get(sku, ()))}
            params[spec.sku_filter_param] = ",".join(sorted(spellings))
        if spec.pagination == "page":
            params[spec.page_param] = spec.first_page
        elif spec.pagination == "offset":
            params[spec.offset_param] = 0
        #: this read's SKU spellings and locations, each worked out once (a SKU is on
        #: every location's page)
        seen: _Seen = ({}, {})
        full = skus is None  # a full read's items and pages are kept
        if full:  # what a read given up on kept is not this read's
            self._item_memo.discard()
            self._page_memo.discard()
            # a full read's thousand pages over aiohttp: a fifth of the read's CPU less
            async with page_session(self._client, url) as get:
                async for levels in self._pages(url, params, seen, get):
                    yield levels
            return
        async for levels in self._pages(url, params, seen, None):
            yield levels

    async def _pages(
        self, url: str | None, params: dict[str, Any], seen: _Seen, get: Get | None
    ) -> Any:
        """Each page's levels, ``get`` reading a full read's pages (None: a filtered
        read's, through the client)."""
        largest = 0
        parsed: tuple[str, httpx.URL] | None = None  # the URL of the last page, parsed
        while url is not None:
            if parsed is None or parsed[0] is not url:  # a next link; else the same list
                parsed = (url, httpx.URL(url))
            response = await self._get(parsed[1], params, get)
            observed = self._clock.now()
            if get is None:
                page = self._page(response, observed, seen)
            else:
                split = self._items.split(response.content) if self._items else None
                by_item = self._by_item(split, observed, seen) if split else None
                page = by_item or self._by_page(response, observed, seen)
            levels, count, cursor = page
            yield levels
            largest = max(largest, count)
            url, params = self._next(url, params, response, cursor, count, largest)

    def _page(self, response: httpx.Response, observed: datetime, seen: _Seen) -> _Page:
        """A page's levels, how many items it held, and its next cursor (cursor paging)."""
        spec = self._list
        body = _body(response, self.name)
        items = dig(body, spec.items_path) if spec.items_path else body
        if not isinstance(items, list):
            raise ResponseError(
                f"{self.name}: no list at `{spec.items_path}` in the response", system=self.name
            )
        levels = tuple(
            level for item in items if (level := self._level(item, observed, seen)) is not None
        )
        cursor = dig(body, spec.next_cursor_path) if spec.pagination == "cursor" else None
        return levels, len(items), cursor

    def _by_page(self, response: httpx.Response, observed: datetime, seen: _Seen) -> _Page:
        """A full read's page that is not split into items: the last complete read's
        levels of it, observed now, if its bytes are the same; else decoded and built."""
        key = hashes([response.content])
        kept = self._page_memo.take(key)[0]
        if kept is None:
            page = self._page(response, observed, seen)
        else:
            page = (tuple(map(partial(observed_again, observed), kept[0])), *kept[1:])
        self._page_memo.keep(key, [page])
        return page

    def _by_item(
        self, split: tuple[list[bytes], Any], observed: datetime, seen: _Seen
    ) -> _Page | None:
        """A full read's page split into its items' bytes: each item the last complete
        read met is the level it made then, observed now; only the other items are
        decoded and built. None where msgspec does not decode one of those (the page is
        then read whole; the items this call took from the memo are decoded again by the
        next read)."""
        pieces, cursor = split
        memo = self._item_memo
        keys = hashes(pieces)
        found = memo.take(keys)
        missed = [piece for piece, known in zip(pieces, found, strict=True) if known is None]
        decoded = decode_items(missed) if missed else []
        if decoded is None:
            return None
        made: list[Level | Literal[False]]
        if not missed and False not in found:  # every item unchanged, each a level
            # the same bytes as in the last complete read: the same levels, observed now
            # (inline: a call each cost a few hundredths of a second a read of 100,000 SKUs)
            unchanged = cast(list[Level], found)
            made = [
                _new_tuple(Level, (name, sku, place, counts, observed, changed, src, refs, flags))
                for name, sku, place, counts, _, changed, src, refs, flags in unchanged
            ]
        else:
            made = []
            step = iter(decoded)
            for known in found:
                if known is None:
                    level = self._level(next(step), observed, seen)
                    made.append(False if level is None else level)
                elif known is False:  # an item that is no level (no SKU, say), unchanged
                    made.append(False)
                else:  # the same bytes as in the last complete read: the same level
                    made.append(observed_again(observed, known))
        memo.keep(keys, made)
        levels = tuple(level for level in made if level is not False)
        return levels, len(pieces), cursor

    def _next(
        self,
        url: str,
        params: dict[str, Any],
        response: httpx.Response,
        cursor: Any,
        count: int,
        largest: int,
    ) -> tuple[str | None, dict[str, Any]]:
        spec = self._list
        if spec.pagination == "link":
            nxt = response.links.get("next", {}).get("url")
            return (str(nxt), {}) if nxt else (None, {})
        if spec.pagination == "cursor":
            return (url, {**params, spec.cursor_param: cursor}) if cursor else (None, {})
        # A short page is the last only if it is shorter than the pages the server really
        # sends: one that caps page size (per_page clamped to its maximum) answers full
        # pages shorter than page_size. A first page shorter than page_size therefore
        # costs one more request, which comes back empty.
        if count == 0 or count < min(spec.page_size, largest):
            return None, {}
        if spec.pagination == "offset":
            return url, {**params, spec.offset_param: int(params[spec.offset_param]) + count}
        return url, {**params, spec.page_param: int(params[spec.page_param]) + 1}

    def _level(self, item: Any, observed: datetime, seen: _Seen) -> Level | None:
        # An item's fields: the SKU, the location, each state's quantity, the time
        reader = self._flat
        values: tuple[Any, ...] | None = None
        if reader is not None and type(item) is dict:
            try:
                values = reader(item)  # one C call for a flat item with every field
            except KeyError:
                values = None  # a field missing: read one by one below
        if values is None:
            values = tuple(dig(item, path) for path in self._paths)
        raw_sku, raw_location = values[0], values[1]
        if raw_sku in (None, "") or raw_location in (None, ""):
            return None
        skus, places = seen
        raw = str(raw_sku)
        spelled = skus.get(raw)
        if spelled is None:
            sku = self._mapping.normalize_sku(raw)
            self._spelled(sku, raw)
            pack = self._mapping.pack_size(self.name, sku)
            spelled = skus[raw] = (sku, pack, sku if sku == raw_sku else raw)
        sku, pack, own_sku = spelled
        found = values[2 : 2 + len(self._states)]
        if pack == 1 and {*map(type, found)} == _INTS:  # every state reported, as counts
            quantities = self._every_state(found)
        else:
            quantities = self._quantities(found, pack)
        location = str(raw_location)
        place = places.get(location)
        if place is None:
            location = sys.intern(location)  # a few locations, a million levels
            place = places[location] = (
                location,
                self._mapping.location_key(self.name, location) or location,
            )
        location, key = place
        changed = iso_time(values[-1]) if self._fields.updated_at else None
        return build_level(
            system=self.name,
            sku=sku,
            location=key,
            quantities=quantities,
            observed_at=observed,
            changed_at=changed,
            refs=_refs((location, own_sku)),
        )

    def _spelled(self, sku: str, raw: str) -> None:
        """Note that the system spells ``sku`` as ``raw``."""
        known = self._raw_skus.get(sku)
        if known is None:
            self._raw_skus[sku] = () if raw == sku else (raw,)
            return
        spellings = known or (sku,)
        if raw not in spellings:
            self._raw_skus[sku] = (*spellings, raw)

    def _quantities(self, found: tuple[Any, ...], pack: int) -> TupleMap[int]:
        """The states reported as whole numbers, in units. A state whose value is
        missing, null, a boolean, a fraction, not finite or not a number is left out
        (the level reports it as unknown rather than as a guess)."""
        states: list[str] = []
        counts: list[int] = []
        for state, value in zip(self._states, found, strict=True):
            count = _count(value)
            if count is not None:
                counts.append(to_units(count, pack))
                states.append(state)
        return tuple_map(states, counts)  # compact: a read holds millions

    async def write_levels(self, writes: Sequence[LevelWrite]) -> list[WriteOutcome]:
        if self._write is None:
            raise WriteRejected(f"{self.name} has no write endpoint configured", system=self.name)
        return [await self._write_one(self._write, w) for w in writes]

    async def _write_one(self, spec: WriteSpec, write: LevelWrite) -> WriteOutcome:
        field = spec.quantity_fields.get(write.state)
        location = self._mapping.location_id(self.name, write.location) or write.location
        if field is None:
            return WriteOutcome(write, "failed", error=f"{self.name} cannot set {write.state}")
        pack = self._mapping.pack_size(self.name, write.sku)
        try:
            body: dict[str, Any] = {field: from_units(write.quantity, pack)}
            if spec.expected_field and write.expected is not None:
                body[spec.expected_field] = from_units(write.expected, pack)
        except ValueError as exc:
            return WriteOutcome(write, "failed", error=str(exc))
        spellings = self._raw_skus.get(write.sku) or (write.sku,)
        system_sku = spellings[0] if len(spellings) == 1 else write.sku
        url = self._base + spec.path.format(
            sku=quote(system_sku, safe=""), location=quote(location, safe="")
        )
        headers = {**self._headers, spec.idempotency_header: write.key}
        response = await send(
            lambda: self._client.request(spec.method, url, json=body, headers=headers),
            system=self.name,
            health=self._health,
            clock=self._clock,
            policy=self._policy,
            rng=self._rng,
        )
        if response.status_code == 409:
            detail = _maybe_json(response)
            if isinstance(detail, dict) and detail.get("error") == "stale":
                current = detail.get("current")
                now_at = (
                    to_units(current, pack)
                    if isinstance(current, int) and not isinstance(current, bool)
                    else None
                )
                return WriteOutcome(write, "stale", before=now_at, error="changed since read")
            return WriteOutcome(write, "failed", error=f"conflict: {detail}")
        if response.status_code >= 400:
            return WriteOutcome(
                write, "failed", error=f"HTTP {response.status_code}: {_maybe_json(response)}"
            )
        return WriteOutcome(write, "applied", before=write.expected, after=write.quantity)


#: a level's references, built from their values (the keys shared: millions of levels)
_refs = map_type(("location_id", "sku"))
#: the types of a level's quantities when all are plain counts
_INTS = frozenset({int})


_new_tuple = tuple.__new__


def _count(value: Any) -> int | None:
    """A quantity as a WMS may send it: an integer, a whole float (``5.0``) or a string
    of digits (``"5"``). None for anything else: ``2.5``, ``1e999`` (infinite once
    parsed), ``true``, ``null``, ``"five"``."""
    if type(value) is int:
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        return count_in_text(value)
    return None


#: a page as read: its levels, how many items it held, its next cursor (cursor paging)
_Page = tuple[tuple[Level, ...], int, Any]


#: one read's SKU spellings -> (SKU, pack size, the system's spelling), and its
#: locations -> (the id interned, the location key)
_Seen = tuple[dict[str, tuple[str, int, str]], dict[str, tuple[str, str]]]


def _body(response: httpx.Response, system: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResponseError(f"{system}: the response is not JSON", system=system) from exc


def _maybe_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200]
