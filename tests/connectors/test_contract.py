"""The InventorySystem contract, checked for every connector against its fake.

Each entry of :data:`CASES` opens one *world*: a sandbox fake seeded with the same
inventory (:data:`SEED`, each system counting it its own way) and the product
connector pointed at it. Every test below runs once per world.

To add a connector, write an ``@asynccontextmanager``
that takes an :class:`Env`, seeds its fake with :data:`SEED` (map the warehouses to
the fake's own location ids and add them to ``env.mapping.locations[<system name>]``),
yields a :class:`World`, and append ``Case("<id>", <factory>)`` to :data:`CASES`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from connector_testing import SETTLE, WMS_TOKEN, TableMapping, csv_connector, rest_connector

from connectors.base import InventorySystem
from connectors.clock import ManualClock
from connectors.errors import WriteRejected
from connectors.levels import Level, LevelWrite
from connectors.shopify import ShopifyConnector
from sandbox.erp import FakeERP
from sandbox.shopify import FakeShopify
from sandbox.wms import FakeWMS

#: (raw SKU as the system spells it, warehouse, units). Each world stores these in
#: its own counting: SKU-PACK is kept in packs of 6 everywhere (the mapping's pack size
#: for the WMS, a CS6 unit of measure in the ERP file).
SEED: list[tuple[str, str, int]] = [
    ("sku-1", "WH-EAST", 10),  # lower case: normalized to SKU-1
    ("OLD-SKU-9", "WH-WEST", 4),  # an alias of SKU-9
    ("SKU-PACK", "WH-EAST", 18),  # 3 packs of 6
    ("SKU-2", "WH-NORTH", 5),  # a warehouse Driftwatch does not map
]
#: What every connector must report for SEED: (normalized SKU, location) -> on_hand units.
EXPECTED: dict[tuple[str, str], int] = {
    ("SKU-1", "east"): 10,
    ("SKU-9", "west"): 4,
    ("SKU-PACK", "east"): 18,
    ("SKU-2", "WH-NORTH"): 5,
}
PACK = 6


@dataclass
class Env:
    """What a world may use: the test's clock, mapping, HTTP client and tmp dir."""

    clock: ManualClock
    mapping: TableMapping
    http: httpx.AsyncClient
    tmp_path: Path


@dataclass
class World:
    """A connector and the fake behind it, seeded with SEED."""

    connector: InventorySystem
    #: The observation time every level of a read made now must carry.
    observed_at: datetime
    #: How this system names a warehouse Driftwatch does not map (Shopify: a gid).
    unmapped: dict[str, str] = field(default_factory=dict)

    def expected(self, wanted: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        return {(sku, self.unmapped.get(loc, loc)): units for (sku, loc), units in wanted.items()}


@dataclass(frozen=True)
class Case:
    id: str
    open: Callable[[Env], AbstractAsyncContextManager[World]]


@asynccontextmanager
async def wms_world(env: Env) -> AsyncIterator[World]:
    """The REST connector and the fake WMS; levels are observed when read."""
    async with FakeWMS(token=WMS_TOKEN, clock=env.clock) as wms:
        for raw_sku, warehouse, units in SEED:
            pack = PACK if raw_sku == "SKU-PACK" else 1
            wms.set_level(raw_sku, warehouse, on_hand=units // pack)
        connector = rest_connector(env.http, wms.base_url, env.mapping, env.clock)
        yield World(connector, observed_at=env.clock.now())


@asynccontextmanager
async def erp_world(env: Env) -> AsyncIterator[World]:
    """The CSV connector and the fake ERP; levels are observed at the export's time."""
    erp = FakeERP(env.tmp_path / "erp-drop", clock=env.clock)
    for raw_sku, warehouse, units in SEED:
        if raw_sku == "SKU-PACK":
            erp.set_level(raw_sku, warehouse, units // PACK, uom=f"CS{PACK}")
        else:
            erp.set_level(raw_sku, warehouse, units)
    exported_at = env.clock.now()
    erp.export_now()
    env.clock.advance(SETTLE)
    yield World(csv_connector(erp.directory, env.mapping, env.clock), observed_at=exported_at)


@asynccontextmanager
async def shopify_world(env: Env) -> AsyncIterator[World]:
    """The Shopify connector and the fake Admin GraphQL API; observed when read."""
    async with FakeShopify(clock=env.clock) as fake:
        gids = {wh: fake.add_location(wh) for wh in ("WH-EAST", "WH-WEST", "WH-NORTH")}
        env.mapping.locations["shopify"] = {gids["WH-EAST"]: "east", gids["WH-WEST"]: "west"}
        env.mapping.packs["shopify"] = {"SKU-PACK": PACK}
        for raw_sku, warehouse, units in SEED:
            pack = PACK if raw_sku == "SKU-PACK" else 1
            item = fake.add_item(raw_sku, locations=[gids[warehouse]])
            fake.set_quantities(item, gids[warehouse], on_hand=units // pack)
        connector = ShopifyConnector(
            env.http,
            name="shopify",
            shop_url=fake.url or "",
            token=fake.access_token,
            mapping=env.mapping,
            clock=env.clock,
            use_bulk=False,
        )
        yield World(connector, env.clock.now(), unmapped={"WH-NORTH": gids["WH-NORTH"]})


#: Every connector with its fake.
CASES: list[Case] = [
    Case("rest-wms", wms_world),
    Case("csv-erp", erp_world),
    Case("shopify", shopify_world),
]


@pytest.fixture(params=CASES, ids=[case.id for case in CASES])
async def world(
    request: pytest.FixtureRequest,
    clock: ManualClock,
    mapping: TableMapping,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> AsyncIterator[World]:
    case: Case = request.param
    async with case.open(Env(clock, mapping, http, tmp_path)) as opened:
        yield opened


def _on_hand(levels: list[Level]) -> dict[tuple[str, str], int]:
    return {(lv.sku, lv.location): lv.quantities["on_hand"] for lv in levels}


async def test_it_is_an_inventory_system(world: World) -> None:
    assert isinstance(world.connector, InventorySystem)


async def test_levels_are_normalized_mapped_in_units_and_timed(world: World) -> None:
    levels = await world.connector.read_levels()
    assert _on_hand(levels) == world.expected(EXPECTED)
    assert len(levels) == len(EXPECTED)
    assert {lv.system for lv in levels} == {world.connector.name}
    for level in levels:
        assert level.observed_at == world.observed_at
        assert level.observed_at.utcoffset() is not None


async def test_a_filtered_read_returns_only_those_skus(world: World) -> None:
    connector = world.connector
    levels = await connector.read_levels(["SKU-PACK", "SKU-2", "SKU-404"])
    assert _on_hand(levels) == world.expected(
        {
            ("SKU-PACK", "east"): 18,
            ("SKU-2", "WH-NORTH"): 5,
        }
    )
    assert await connector.read_levels([]) == []


async def test_after_a_full_read_filters_find_skus_the_system_spells_differently(
    world: World,
) -> None:
    await world.connector.read_levels()
    levels = await world.connector.read_levels(["SKU-1", "SKU-9"])
    assert _on_hand(levels) == {("SKU-1", "east"): 10, ("SKU-9", "west"): 4}


async def test_health_counts_requests_and_the_last_success(
    world: World, clock: ManualClock
) -> None:
    health = world.connector.health()
    assert health.system == world.connector.name
    assert (health.requests, health.last_success, health.failures) == (0, None, 0)
    await world.connector.read_levels()
    after_one = world.connector.health().requests
    assert after_one >= 1
    clock.advance(5)
    await world.connector.read_levels(["SKU-1"])
    health = world.connector.health()
    assert health.requests > after_one
    assert health.last_success == clock.now()
    assert (health.error_streak, health.failures, health.last_error) == (0, 0, None)


async def test_the_writable_flag_agrees_with_write_levels(world: World) -> None:
    connector = world.connector
    write = LevelWrite(
        sku="SKU-PACK", location="east", state="on_hand", quantity=24, expected=18, key="c-1"
    )
    if connector.writable:
        [outcome] = await connector.write_levels([write])
        assert (outcome.status, outcome.before, outcome.after) == ("applied", 18, 24)
        expected = 24
    else:
        with pytest.raises(WriteRejected):
            await connector.write_levels([write])
        expected = 18
    [level] = await connector.read_levels(["SKU-PACK"])
    assert level.quantities["on_hand"] == expected
