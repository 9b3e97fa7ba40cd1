"""The Shopify connector as the configuration builds it, against the fake over HTTP:
``bulk_threshold`` decides between paging and a bulk operation, and SKUs that carry
Shopify's search syntax in them are resynced like any other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.cli.demo import demo_world
from connectors import ManualClock
from ledger import Ledger
from monitors.config import config_from_dict
from monitors.resync import ResyncRequest, ResyncService
from monitors.wiring import build_systems, rules_from_config
from sandbox.shopify import FakeShopify


@pytest.fixture
async def fake() -> AsyncIterator[FakeShopify]:
    async with FakeShopify(clock=ManualClock()) as shop:
        yield shop


@pytest.mark.parametrize(("threshold", "bulk"), [(3, True), (50, False)])
async def test_bulk_threshold_from_the_configuration_chooses_the_read(
    fake: FakeShopify, threshold: int, bulk: bool
) -> None:
    east = fake.add_location("East")
    for i in range(10):
        fake.add_item(f"SKU-{i}")
    config = config_from_dict(
        {
            "source_of_truth": ["shopify"],
            "systems": [
                {
                    "name": "shopify",
                    "kind": "shopify",
                    "shop_url": fake.url,
                    "bulk_threshold": threshold,
                }
            ],
            "locations": {"east": {"shopify": east}},
            "slack": {"alerts_channel": "C0DRIFT01"},
        }
    )
    clock = fake.clock
    assert isinstance(clock, ManualClock)
    async with httpx.AsyncClient(timeout=10.0) as client:
        [shopify] = build_systems(
            config, client=client, clock=clock, environ={"SHOPIFY_ACCESS_TOKEN": fake.access_token}
        )
        levels = await shopify.read_levels()
    assert len(levels) == 10
    ran_bulk = any(r.operation_name == "BulkRunQuery" for r in fake.requests)
    paged = any(r.operation_name == "InventoryItems" for r in fake.requests)
    assert (ran_bulk, paged) == (bulk, not bulk)


HOSTILE = ['TEE "LTD" M', "TEE <M>", "TEE@STORE", "TEE:M", "TEE\\M", "TEE (M)"]


@pytest.mark.parametrize("sku", HOSTILE)
async def test_a_sku_with_search_syntax_in_it_is_resynced(tmp_path: Path, sku: str) -> None:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'resync.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        world = demo.world
        east, warehouse = world.gid("east"), world.warehouse("east")
        world.shopify.add_item(sku, locations=[east])
        world.shopify.set_quantities(sku, east, available=40)
        world.wms.set_level(sku, warehouse, pickable=28, allocated=0, on_hand=28, damaged=0)
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        service = ResyncService(systems, rules_from_config(demo.config), ledger, clock)

        result = await service.resync(
            ResyncRequest(sku=sku, location="east", system="shopify", requested_by="U0OPS001")
        )

        assert result.status == "applied", result.message
        assert world.shopify.quantities(sku, east)["available"] == 28
        [write] = world.shopify.writes
        assert write.change_from_quantity == 40
