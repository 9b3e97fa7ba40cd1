"""Shopify as an inventory system: levels read over Admin GraphQL, resyncs written back.

Reads page through ``inventoryItems`` (with each item's levels and quantities by name,
``tracked`` and the variant's ``inventoryPolicy``). Each item's nested
``inventoryLevels`` is asked for as many levels as the shop has locations (legacy
fulfillment-service locations included: ``includeLegacy``), and an item with more is
paged to its end with ``inventoryItem(id:)``, so no level is ever cut off. The
locations are read again on every full read, and before the next read whenever a level
named a location not in the list or an item needed more than one page of levels: a
location added while running is read like the others without a restart. Page sizes
come from the cost Shopify reports (:mod:`connectors.shopify.sizing`), so no query goes
over the single-query limit of 1,000 points.

Writes use ``inventorySetQuantities`` with ``@idempotent(key:)``, a reason from
Shopify's list, a ``referenceDocumentUri`` naming the Driftwatch resync, and
``changeFromQuantity`` set to the quantity last read, so a value that changed since is
never overwritten (the write comes back ``stale``). A write goes to the one inventory
item of the SKU stocked at the location; where Shopify has several items with that SKU
the write is refused with the reason (:mod:`connectors.shopify.catalog`).

A full read of a shop with more than ``bulk_threshold`` variants (counted with a cheap
``productVariantsCount``) runs as a bulk operation instead of paging (see
:mod:`connectors.shopify.bulk`); ``use_bulk`` forces the choice either way. Reads of
named SKUs always page. If the shop is already running its allowed bulk queries, an
automatic choice falls back to paging.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx

from connectors.clock import Clock
from connectors.errors import GraphQLError, IdempotencyError, ResponseError, WriteRejected
from connectors.health import Health
from connectors.http import RetryPolicy
from connectors.levels import Level, LevelWrite, WriteOutcome
from connectors.normalize import Mapping, from_units, is_whole_number, to_units
from connectors.shopify.bulk import BulkOperationRejected, BulkReader
from connectors.shopify.catalog import Catalog
from connectors.shopify.documents import document
from connectors.shopify.items import LevelReader, item_facts
from connectors.shopify.search import sku_queries
from connectors.shopify.sizing import MAX_PAGE, PageSizer
from connectors.shopify.transport import GraphQLTransport

#: Shopify's accepted reasons for inventorySetQuantities.
REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
MAX_QUANTITIES_PER_CALL = 250
#: The most levels asked for under each item at once; an item with more is paged.
MAX_NESTED_LEVELS = 100
#: What a page costs beyond its nodes: the inventoryItems connection; the inventoryItem
#: object and its inventoryLevels connection.
ITEMS_BASE = 2.0
LEVELS_BASE = 3.0
#: MAX_COST_EXCEEDED answers tolerated for one page before the read fails.
MAX_REFUSALS = 4


@contextlib.contextmanager
def _answer_shape(system: str, what: str) -> Iterator[None]:
    """Shopify's answer is outside input: a field missing or of the wrong type where the
    schema promises one becomes a :class:`ResponseError` (a connector error the monitors
    and the bot report in words), not a ``KeyError`` from deep in the parsing."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise ResponseError(
            f"{system}: Shopify's answer to {what} is not shaped as expected "
            f"({type(exc).__name__}: {exc})",
            system=system,
        ) from exc


class ShopifyConnector:
    """One Shopify store."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        name: str,
        shop_url: str,
        token: str,
        mapping: Mapping,
        clock: Clock,
        api_version: str = "2026-07",
        page_size: int = 250,
        writable: bool = True,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        bulk_threshold: int = 5000,
        use_bulk: bool | None = None,
    ) -> None:
        self.name = name
        self._writable = writable
        self._mapping = mapping
        self._clock = clock
        self._page_size = max(1, min(page_size, MAX_PAGE))
        self._sizer = PageSizer()
        self._health = Health(system=name)
        self._gql = GraphQLTransport(
            client,
            system=name,
            shop_url=shop_url,
            api_version=api_version,
            token=token,
            clock=clock,
            health=self._health,
            policy=policy,
            rng=rng,
        )
        self._bulk_threshold = bulk_threshold
        self._use_bulk = use_bulk
        self._bulk = BulkReader(
            self._gql,
            client,
            system=name,
            mapping=mapping,
            clock=clock,
            health=self._health,
            policy=policy,
            rng=rng,
        )
        self._locations: dict[str, str] | None = None  # gid -> name
        #: a level named a location not in ``_locations``, or an item had more levels
        #: than one page: read the locations again before the next read
        self._locations_stale = False
        self._catalog = Catalog()

    @property
    def writable(self) -> bool:
        return self._writable

    def health(self) -> Health:
        return self._health

    def sku_for_item(self, inventory_item_id: str) -> str | None:
        """The normalized SKU of an inventory item gid seen in an earlier read (one
        lookup per webhook, so a dict, not a scan)."""
        return self._catalog.skus.get(inventory_item_id)

    @property
    def bulk(self) -> BulkReader:
        """The bulk reader (``async for level in connector.bulk.levels()`` streams)."""
        return self._bulk

    @property
    def transport(self) -> GraphQLTransport:
        """The paced Admin GraphQL transport (subscription checks share its bucket)."""
        return self._gql

    async def read_levels(self, skus: Sequence[str] | None = None) -> list[Level]:
        try:
            with _answer_shape(self.name, "an inventory read"):
                if skus is None and await self._bulk_wanted():
                    levels = await self._read_in_bulk()
                else:
                    levels = await self._read_paged(skus)
        except Exception as exc:
            self._health.failed(str(exc), self._clock.now())
            raise
        self._health.succeeded(self._clock.now())
        return levels

    async def _bulk_wanted(self) -> bool:
        if self._use_bulk is not None:
            return self._use_bulk
        return await self._bulk.count_items(self._bulk_threshold + 1) > self._bulk_threshold

    async def _read_in_bulk(self) -> list[Level]:
        catalog = Catalog()
        try:
            levels = [lv async for batch in self._bulk.level_batches(catalog) for lv in batch]
        except BulkOperationRejected as exc:
            if self._use_bulk is None and exc.retryable:  # the shop's bulk slots are busy
                return await self._read_paged(None)
            raise
        self._catalog.replace(catalog)
        return levels

    async def _read_paged(self, skus: Sequence[str] | None) -> list[Level]:
        full = skus is None
        refresh = full or self._locations_stale
        locations = await self._load_locations(refresh=refresh)
        nested = max(1, min(len(locations), MAX_NESTED_LEVELS))
        catalog = Catalog()
        levels: list[Level] = []
        queries: list[str | None] = [None]
        if skus is not None:
            spellings = [s for sku in skus for s in self._catalog.spellings_of(sku)]
            queries = list(sku_queries(spellings))
        for query in queries:
            async for node, level_nodes in self._items(query, nested):
                levels.extend(self._levels_of(node, level_nodes, catalog, locations))
        if skus is None:
            self._catalog.replace(catalog)
        else:
            wanted = set(skus)
            levels = [lv for lv in levels if lv.sku in wanted]
            self._catalog.update(catalog, wanted)
        return levels

    async def _load_locations(self, *, refresh: bool) -> dict[str, str]:
        if self._locations is None or refresh:
            found: dict[str, str] = {}
            after: str | None = None
            while True:
                data = await self._gql.execute(
                    "locations", document("locations"), {"first": MAX_PAGE, "after": after}
                )
                conn = data["locations"]
                for node in conn["nodes"]:
                    found[node["id"]] = node["name"]
                if not conn["pageInfo"]["hasNextPage"]:
                    break
                after = conn["pageInfo"]["endCursor"]
            self._locations = found
            self._locations_stale = False
        return self._locations

    async def _page(
        self,
        name: str,
        nested: int,
        base: float,
        cap: int,
        variables: dict[str, Any],
    ) -> dict[str, Any]:
        """One page of document ``name`` (``variables`` with ``first`` set), as large as
        fits the cost limit (at most ``cap``). A MAX_COST_EXCEEDED answer (Shopify prices
        differently from what was learned) is learned from, and the page asked for
        again, smaller."""
        limit = self._gql.max_query_cost
        refusals = 0
        first = min(cap, self._sizer.size(name, nested, limit=limit, base=base))
        while True:
            expected = self._sizer.expected(name, nested, first, base=base)
            try:
                data, requested = await self._gql.execute_costed(
                    name, document(name), {**variables, "first": first}, expected_cost=expected
                )
            except GraphQLError as exc:
                if exc.code != "MAX_COST_EXCEEDED" or first <= 1 or refusals >= MAX_REFUSALS:
                    raise
                refusals += 1
                if exc.max_cost is not None:
                    limit = min(limit, exc.max_cost)
                if exc.requested_cost is not None:
                    self._sizer.learn(name, nested, first, exc.requested_cost, base=base)
                else:
                    self._sizer.shrink(name, nested, first, base=base, limit=limit)
                smaller = min(cap, self._sizer.size(name, nested, limit=limit, base=base))
                first = smaller if smaller < first else max(1, first // 2)
                continue
            if requested is not None:
                self._sizer.learn(name, nested, first, requested, base=base)
            return data

    async def _items(
        self, query: str | None, nested: int
    ) -> AsyncIterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Every inventory item matching ``query``, with all its level nodes."""
        after: str | None = None
        while True:
            data = await self._page(
                "inventory_items",
                nested,
                ITEMS_BASE,
                self._page_size,
                {"after": after, "query": query, "levels": nested},
            )
            conn = data["inventoryItems"]
            for node in conn["nodes"]:
                yield node, await self._all_levels(node)
            if not conn["pageInfo"]["hasNextPage"]:
                return
            after = conn["pageInfo"]["endCursor"]

    async def _all_levels(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        """The item's level nodes: the first page nested in its node, and the rest of
        its ``inventoryLevels`` connection paged to the end."""
        conn = node.get("inventoryLevels") or {}
        nodes = list(conn.get("nodes") or [])
        info = conn.get("pageInfo") or {}
        after = info.get("endCursor")
        while info.get("hasNextPage") and after:
            self._locations_stale = True  # more levels than locations known: a new one
            data = await self._page(
                "inventory_item_levels",
                0,
                LEVELS_BASE,
                MAX_PAGE,
                {"id": node["id"], "after": after},
            )
            item = data.get("inventoryItem")
            if item is None:  # deleted since the page was read
                break
            conn = item["inventoryLevels"]
            nodes.extend(conn["nodes"])
            info = conn["pageInfo"]
            after = info.get("endCursor")
        return nodes

    def _levels_of(
        self,
        node: dict[str, Any],
        level_nodes: list[dict[str, Any]],
        catalog: Catalog,
        locations: dict[str, str],
    ) -> Iterator[Level]:
        facts = item_facts(node, system=self.name, mapping=self._mapping)
        if facts is None:
            return
        catalog.add_item(facts.sku, facts.item_id, facts.raw_sku)
        observed_at = self._clock.now()
        level_of = LevelReader(self.name, self._mapping)
        for raw in level_nodes:
            level = level_of(facts, raw, observed_at)
            location_id = level.refs["location_id"]
            catalog.add_level(facts.item_id, location_id)
            if location_id not in locations:
                self._locations_stale = True
            yield level

    async def write_levels(self, writes: Sequence[LevelWrite]) -> list[WriteOutcome]:
        if not self._writable:
            raise WriteRejected(f"{self.name} is configured read-only", system=self.name)
        missing = sorted({w.sku for w in writes if not self._catalog.knows(w.sku)})
        if missing:
            await self.read_levels(missing)
        outcomes: dict[int, WriteOutcome] = {}
        pending: list[tuple[int, LevelWrite, dict[str, Any]]] = []
        for index, write in enumerate(writes):
            try:
                pending.append((index, write, self._quantity_input(write)))
            except (KeyError, ValueError) as exc:
                outcomes[index] = WriteOutcome(write, "failed", error=str(exc))
        groups: dict[tuple[str, str], list[tuple[int, LevelWrite, dict[str, Any]]]] = {}
        for entry in pending:
            groups.setdefault((entry[1].state, entry[1].reason), []).append(entry)
        for (state, reason), entries in groups.items():
            for start in range(0, len(entries), MAX_QUANTITIES_PER_CALL):
                await self._write_batch(
                    state, reason, entries[start : start + MAX_QUANTITIES_PER_CALL], outcomes
                )
        return [outcomes[i] for i in range(len(writes))]

    def _quantity_input(self, write: LevelWrite) -> dict[str, Any]:
        if write.state not in ("available", "on_hand"):
            raise ValueError(f"Shopify can only set available or on_hand, not {write.state}")
        if write.reason not in REASONS:
            raise ValueError(f"{write.reason!r} is not one of Shopify's inventory reasons")
        if not self._catalog.knows(write.sku):
            raise KeyError(f"SKU {write.sku} is not in {self.name}")
        location_id = self._mapping.location_id(self.name, write.location) or (
            write.location if write.location.startswith("gid://") else None
        )
        if location_id is None:
            raise KeyError(f"location {write.location} is not mapped to {self.name}")
        item_id = self._catalog.item_for(self.name, write.sku, location_id, write.location)
        pack = self._mapping.pack_size(self.name, write.sku)
        return {
            "inventoryItemId": item_id,
            "locationId": location_id,
            "quantity": from_units(write.quantity, pack),
            "changeFromQuantity": None
            if write.expected is None
            else from_units(write.expected, pack),
        }

    async def _write_batch(
        self,
        state: str,
        reason: str,
        entries: list[tuple[int, LevelWrite, dict[str, Any]]],
        outcomes: dict[int, WriteOutcome],
    ) -> None:
        while entries:
            keys = [w.key for _, w, _ in entries]
            key = keys[0] if len(keys) == 1 else "batch-" + _digest(keys)
            reference = entries[0][1].reference if len(entries) == 1 else None
            variables = {
                "key": key,
                "input": {
                    "name": state,
                    "reason": reason,
                    "referenceDocumentUri": reference or f"gid://driftwatch/Resync/{key}",
                    "quantities": [q for _, _, q in entries],
                },
            }
            data = await self._gql.execute("set_quantities", document("set_quantities"), variables)
            with _answer_shape(self.name, "inventorySetQuantities"):
                payload = data["inventorySetQuantities"]
                errors = list(payload.get("userErrors") or [])
                if not all(isinstance(e, dict) for e in errors):
                    raise TypeError("userErrors is not a list of objects")
                if not errors:
                    self._record_applied(state, entries, payload, outcomes)
                    return
            stale = _indexes_with(errors, "CHANGE_FROM_QUANTITY_STALE")
            if stale:
                for i in stale:
                    if 0 <= i < len(entries):
                        idx, write, _ = entries[i]
                        outcomes[idx] = WriteOutcome(
                            write, "stale", before=write.expected, error="changed since read"
                        )
                entries = [e for i, e in enumerate(entries) if i not in stale]
                continue  # the rest again, as a new call with its own key
            code = str(errors[0].get("code") or "")
            if code.startswith("IDEMPOTENCY"):
                raise IdempotencyError(
                    f"{self.name}: {errors[0].get('message')}", system=self.name, code=code
                )
            by_index = _errors_by_index(errors)
            for i, (idx, write, _) in enumerate(entries):
                message = by_index.get(i) or "; ".join(str(e.get("message")) for e in errors)
                outcomes[idx] = WriteOutcome(write, "failed", before=write.expected, error=message)
            return

    def _record_applied(
        self,
        state: str,
        entries: list[tuple[int, LevelWrite, dict[str, Any]]],
        payload: dict[str, Any],
        outcomes: dict[int, WriteOutcome],
    ) -> None:
        after: dict[tuple[str, str], int] = {}
        group = payload.get("inventoryAdjustmentGroup") or {}
        for change in group.get("changes") or []:
            if change.get("name") == state and change.get("quantityAfterChange") is not None:
                after[(change["item"]["id"], change["location"]["id"])] = int(
                    change["quantityAfterChange"]
                )
        for idx, write, q in entries:
            pack = self._mapping.pack_size(self.name, write.sku)
            raw_after = after.get((q["inventoryItemId"], q["locationId"]), q["quantity"])
            outcomes[idx] = WriteOutcome(
                write, "applied", before=write.expected, after=to_units(raw_after, pack)
            )


def _digest(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]


def _index_of(error: dict[str, Any]) -> int | None:
    field = error.get("field") or []
    for part in field:
        if isinstance(part, str) and is_whole_number(part):
            return int(part)
        if isinstance(part, int):
            return part
    return None


def _indexes_with(errors: list[dict[str, Any]], code: str) -> set[int]:
    return {i for e in errors if e.get("code") == code and (i := _index_of(e)) is not None}


def _errors_by_index(errors: list[dict[str, Any]]) -> dict[int, str]:
    out: dict[int, str] = {}
    for e in errors:
        i = _index_of(e)
        if i is not None:
            out[i] = f"{e.get('code')}: {e.get('message')}"
    return out
