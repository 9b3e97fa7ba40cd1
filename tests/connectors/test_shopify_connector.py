"""The Shopify connector against the fake Shopify Admin GraphQL server, over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from connectors import LevelWrite, ManualClock
from connectors.errors import AuthError
from connectors.shopify import ShopifyConnector
from monitors.config import Config, config_from_dict
from sandbox.shopify import FakeShopify


@dataclass
class Shop:
    fake: FakeShopify
    connector: ShopifyConnector
    clock: ManualClock
    east: str
    west: str
    config: Config


def _config(url: str, east: str, west: str) -> Config:
    return config_from_dict(
        {
            "source_of_truth": ["shopify"],
            "systems": [{"name": "shopify", "kind": "shopify", "shop_url": url, "writable": True}],
            "locations": {"east": {"shopify": east}, "west": {"shopify": west}},
            "skus": {"aliases": {"TEEBLKM": "TEE-BLK-M"}},
            "slack": {"alerts_channel": "C0DRIFT01"},
        }
    )


async def _shop(client: httpx.AsyncClient, **fake_args: int) -> Shop:
    clock = ManualClock()
    fake = FakeShopify(clock=clock, **fake_args)
    url = await fake.start()
    east, west = fake.add_location("Brooklyn DC"), fake.add_location("Reno DC")
    config = _config(url, east, west)
    connector = ShopifyConnector(
        client,
        name="shopify",
        shop_url=url,
        token=fake.access_token,
        mapping=config,
        clock=clock,
    )
    return Shop(fake, connector, clock, east, west, config)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as c:
        yield c


@pytest.fixture
async def shop(client: httpx.AsyncClient) -> AsyncIterator[Shop]:
    s = await _shop(client)
    yield s
    await s.fake.stop()


async def test_reads_levels_with_normalized_skus_mapped_locations_and_flags(shop: Shop) -> None:
    tee_gid = shop.fake.add_item(" teeblkm ", title="Tee")
    shop.fake.add_item("MUG-1", tracked=False, inventory_policy="CONTINUE")
    shop.fake.set_quantities(tee_gid, shop.east, available=40, committed=2)
    shop.fake.set_quantities("MUG-1", shop.west, available=3)

    levels = await shop.connector.read_levels()

    by_key = {(lv.sku, lv.location): lv for lv in levels}
    tee = by_key[("TEE-BLK-M", "east")]
    assert tee.quantities["available"] == 40
    assert tee.quantities["committed"] == 2
    assert tee.quantities["on_hand"] == 42
    assert tee.flags["tracked"] is True
    mug = by_key[("MUG-1", "west")]
    assert mug.flags == {"tracked": False, "inventory_policy": "CONTINUE"}
    assert {lv.location for lv in levels} == {"east", "west"}
    assert shop.connector.health().last_success == shop.clock.now()


async def test_targeted_read_by_sku_asks_shopify_only_for_those(shop: Shop) -> None:
    for i in range(30):
        shop.fake.add_item(f"SKU-{i:03d}")
    levels = await shop.connector.read_levels(["SKU-007", "SKU-012"])
    assert {lv.sku for lv in levels} == {"SKU-007", "SKU-012"}
    item_queries = [r for r in shop.fake.requests if r.operation_name == "InventoryItems"]
    assert item_queries[-1].variables["query"] == "sku:SKU-007 OR sku:SKU-012"


async def test_a_long_read_is_paced_and_never_throttled(client: httpx.AsyncClient) -> None:
    shop = await _shop(client, bucket_size=1000, restore_rate=50)
    try:
        for i in range(1200):
            shop.fake.add_item(f"SKU-{i:05d}")
        levels = await shop.connector.read_levels()
    finally:
        await shop.fake.stop()
    assert len({lv.sku for lv in levels}) == 1200
    assert not [r for r in shop.fake.requests if r.throttled]
    assert sum(shop.clock.slept) > 0, "the connector waited for the bucket to refill"
    assert shop.connector.health().throttles == 0


async def test_throttled_answers_are_backed_off_and_counted(shop: Shop) -> None:
    shop.fake.add_item("SKU-1")
    shop.fake.force_throttled(2)
    levels = await shop.connector.read_levels()
    assert [lv.sku for lv in levels] == ["SKU-1", "SKU-1"]
    health = shop.connector.health()
    assert health.throttles == 2
    assert health.retries >= 2


async def test_http_429_waits_for_retry_after(shop: Shop) -> None:
    shop.fake.add_item("SKU-1")
    shop.fake.force_http_429(1, retry_after=7.0)
    await shop.connector.read_levels()
    assert any(s >= 7.0 for s in shop.clock.slept)
    assert shop.connector.health().throttles == 1


async def test_a_wrong_token_is_an_auth_error(client: httpx.AsyncClient, shop: Shop) -> None:
    bad = ShopifyConnector(
        client,
        name="shopify",
        shop_url=shop.fake.url or "",
        token="shpat_wrong",
        mapping=shop.config,
        clock=shop.clock,
    )
    with pytest.raises(AuthError):
        await bad.read_levels()
    assert bad.health().error_streak == 1


async def test_write_sets_the_quantity_with_compare_and_set(shop: Shop) -> None:
    shop.fake.add_item("SKU-1")
    shop.fake.set_quantities("SKU-1", shop.east, available=40)
    await shop.connector.read_levels()

    write = LevelWrite("SKU-1", "east", "available", 28, expected=40, key="resync-1")
    [outcome] = await shop.connector.write_levels([write])

    assert outcome.status == "applied"
    assert shop.fake.quantities("SKU-1", shop.east)["available"] == 28
    [applied] = shop.fake.writes
    assert applied.change_from_quantity == 40
    assert applied.reference_document_uri == "gid://driftwatch/Resync/resync-1"
    assert applied.reason == "correction"


async def test_the_same_write_sent_twice_is_applied_once(shop: Shop) -> None:
    shop.fake.add_item("SKU-1")
    shop.fake.set_quantities("SKU-1", shop.east, available=40)
    write = LevelWrite("SKU-1", "east", "available", 28, expected=40, key="resync-2")
    first = await shop.connector.write_levels([write])
    second = await shop.connector.write_levels([write])
    assert [o.status for o in first + second] == ["applied", "applied"]
    assert len(shop.fake.writes) == 1


async def test_a_lost_response_is_retried_and_applied_once(shop: Shop) -> None:
    shop.fake.add_item("SKU-1")
    shop.fake.set_quantities("SKU-1", shop.east, available=40)
    await shop.connector.read_levels()
    shop.fake.force_lost_response(1)
    write = LevelWrite("SKU-1", "east", "available", 28, expected=40, key="resync-3")
    [outcome] = await shop.connector.write_levels([write])
    assert outcome.status == "applied"
    assert len(shop.fake.writes) == 1
    assert shop.fake.quantities("SKU-1", shop.east)["available"] == 28


async def test_a_value_changed_since_read_is_not_overwritten(shop: Shop) -> None:
    shop.fake.add_item("SKU-1")
    shop.fake.add_item("SKU-2")
    shop.fake.set_quantities("SKU-1", shop.east, available=40)
    shop.fake.set_quantities("SKU-2", shop.east, available=10)
    await shop.connector.read_levels()
    shop.fake.simulate_order("SKU-1", shop.east, 3)  # 37 now, not the 40 we read

    outcomes = await shop.connector.write_levels(
        [
            LevelWrite("SKU-1", "east", "available", 28, expected=40, key="k-1"),
            LevelWrite("SKU-2", "east", "available", 12, expected=10, key="k-2"),
        ]
    )

    assert [o.status for o in outcomes] == ["stale", "applied"]
    assert shop.fake.quantities("SKU-1", shop.east)["available"] == 37
    assert shop.fake.quantities("SKU-2", shop.east)["available"] == 12
    assert [w.sku for w in shop.fake.writes] == ["SKU-2"]


async def test_a_write_for_an_unknown_sku_fails_without_a_call(shop: Shop) -> None:
    [outcome] = await shop.connector.write_levels(
        [LevelWrite("NOPE", "east", "available", 1, expected=0, key="k-x")]
    )
    assert outcome.status == "failed"
    assert "NOPE" in (outcome.error or "")
    assert shop.fake.writes == []


async def test_writes_are_batched_at_most_250_quantities_per_call(shop: Shop) -> None:
    for i in range(300):
        shop.fake.add_item(f"SKU-{i:03d}")
    await shop.connector.read_levels()
    writes = [
        LevelWrite(f"SKU-{i:03d}", "east", "available", 5, expected=0, key=f"w-{i}")
        for i in range(300)
    ]
    outcomes = await shop.connector.write_levels(writes)
    assert {o.status for o in outcomes} == {"applied"}
    calls = [r for r in shop.fake.requests if r.operation_name == "SetQuantities"]
    sizes = [len(r.variables["input"]["quantities"]) for r in calls]
    assert sizes == [250, 50]
    assert len(shop.fake.writes) == 300
