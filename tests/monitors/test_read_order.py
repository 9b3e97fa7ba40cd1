"""A full diff takes each system's levels in SKU order, whatever order the system lists
them in (``monitors.reconcile.read_all``): Shopify lists items in the order they were
created, not by SKU. The ledger then writes a first read in the order of its key, and a
later read compares with the last one position by position. What the ledger ends with
must be what each system said, level by level, read after read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.cli.demo import DemoWorld, demo_world
from connectors import ManualClock
from connectors.base import InventorySystem
from connectors.levels import Level
from ledger import Ledger
from monitors.diffmemo import DiffMemo
from monitors.reconcile import run_diff
from monitors.wiring import build_systems, rules_from_config

#: created in this order, which is not SKU order; text from other systems and people
#: (quotes, markup, accents, astral characters, a SKU that is a prefix of another)
SKUS = [
    "ZED-9",
    "émile-1",
    "A-2",
    "a-1",
    "SKU 'x'; DROP TABLE levels; --",
    'b<&>"',
    "Ω-5",
    "0-0",
    "🙂-3",
    "M-10",
    "M-1",
    "M-9",
]


@pytest.fixture
async def demo() -> AsyncIterator[DemoWorld]:
    async with demo_world() as d:
        world = d.world
        keys = list(world.locations)
        for n, sku in enumerate(SKUS):
            # the first SKUs at two locations, listed in the world's order of them
            stocked = keys[:2] if n % 2 == 0 else keys[:1]
            world.shopify.add_item(
                sku, title=f"Item {n}", locations=[world.gid(k) for k in stocked]
            )
            for key in stocked:
                world.shopify.set_quantities(sku, world.gid(key), available=n, committed=1)
                world.wms.set_level(
                    sku, world.warehouse(key), pickable=n, allocated=1, on_hand=n + 1, damaged=0
                )
        yield d


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'order.db'}") as led:
        await led.upgrade()
        yield led


def _of(levels: list[Level], system: str) -> list[Level]:
    return [lv for lv in levels if lv.system == system]


async def _recorded(ledger: Ledger) -> dict[tuple[str, str, str, str], int]:
    return {
        (r.system, r.sku, r.location, r.state): r.quantity for r in await ledger.current_levels()
    }


def _said(levels: list[Level]) -> dict[tuple[str, str, str, str], int]:
    return {
        (lv.system, lv.sku, lv.location, state): quantity
        for lv in levels
        for state, quantity in lv.quantities.items()
    }


async def _listed(systems: list[InventorySystem]) -> dict[str, list[Level]]:
    return {s.name: await s.read_levels() for s in systems}


async def test_a_full_read_is_taken_in_sku_order_and_recorded_as_each_system_said(
    demo: DemoWorld, ledger: Ledger
) -> None:
    clock = ManualClock()
    rules = rules_from_config(demo.config)
    async with httpx.AsyncClient() as client:
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        listed = await _listed(systems)
        # the fake Shopify lists items as created: out of SKU order, or this test tests nothing
        shopify_skus = [lv.sku for lv in listed["shopify"]]
        assert shopify_skus != sorted(shopify_skus)
        normalized = [demo.config.normalize_sku(sku) for sku in SKUS]
        assert {*normalized} <= {*shopify_skus}

        memo = DiffMemo()
        first = await run_diff(systems, rules, ledger, memo=memo)
        assert first.failures == {}
        for system, as_listed in listed.items():
            taken = _of(first.levels, system)
            assert [lv.sku for lv in taken] == sorted(lv.sku for lv in as_listed)
            # stable: a SKU's levels keep the order the system listed them in
            for sku in normalized:
                assert [lv.location for lv in taken if lv.sku == sku] == [
                    lv.location for lv in as_listed if lv.sku == sku
                ]
        before = await _recorded(ledger)
        assert before == _said(first.levels)

        # hours later one level changes in Shopify: the same order, only that recorded
        clock.advance(3 * 3600)
        world = demo.world
        east = next(iter(world.locations))
        world.shopify.set_quantities("M-1", world.gid(east), available=77)
        second = await run_diff(systems, rules, ledger, memo=memo)
        assert second.failures == {}
        assert [lv.sku for lv in _of(second.levels, "shopify")] == sorted(shopify_skus)
        recorded = await _recorded(ledger)
        assert recorded == _said(second.levels)
        moved = {key for key, quantity in recorded.items() if before.get(key) != quantity}
        # Shopify's on_hand moves with available
        assert moved == {("shopify", "M-1", east, "available"), ("shopify", "M-1", east, "on_hand")}
        assert recorded[("shopify", "M-1", east, "available")] == 77
        assert second.recorded is not None
        assert second.recorded.changed == len(moved)
