"""Complete reads from Shopify, over HTTP against the fake: locations added while
running, nested level connections paged to the end, legacy fulfillment-service
locations, queries sized to the cost limit, transient errors retried, SKUs in Shopify's
search syntax, and items that share a SKU."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx
import pytest

from connectors import LevelWrite, ManualClock
from connectors.errors import TransportError
from connectors.http import RetryPolicy
from connectors.shopify import ShopifyConnector
from monitors.config import Config, config_from_dict
from sandbox.shopify import FakeShopify, RequestRecord


@dataclass
class Shop:
    fake: FakeShopify
    connector: ShopifyConnector
    clock: ManualClock
    locations: list[str]
    config: Config

    def calls(self, operation: str, since: int = 0) -> list[RequestRecord]:
        return [r for r in self.fake.requests[since:] if r.operation_name == operation]


def _config(url: str, locations: Sequence[str]) -> Config:
    return config_from_dict(
        {
            "source_of_truth": ["shopify"],
            "systems": [{"name": "shopify", "kind": "shopify", "shop_url": url, "writable": True}],
            "locations": {f"loc{i}": {"shopify": gid} for i, gid in enumerate(locations)},
            "slack": {"alerts_channel": "C0DRIFT01"},
        }
    )


async def _shop(
    client: httpx.AsyncClient, n_locations: int = 2, **fake_args: int
) -> AsyncIterator[Shop]:
    clock = ManualClock()
    fake = FakeShopify(clock=clock, **fake_args)
    url = await fake.start()
    try:
        locations = [fake.add_location(f"DC {i}") for i in range(n_locations)]
        config = _config(url, locations)
        connector = ShopifyConnector(
            client,
            name="shopify",
            shop_url=url,
            token=fake.access_token,
            mapping=config,
            clock=clock,
            use_bulk=False,
            policy=RetryPolicy(attempts=4, base_delay=0.5, max_delay=4.0),
        )
        yield Shop(fake, connector, clock, locations, config)
    finally:
        await fake.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as c:
        yield c


@pytest.fixture
async def shop(client: httpx.AsyncClient) -> AsyncIterator[Shop]:
    async for s in _shop(client, n_locations=3):
        yield s


# -- item 2: complete reads ---------------------------------------------------------------


async def test_a_location_added_while_running_is_read_without_a_restart(shop: Shop) -> None:
    items = [shop.fake.add_item(f"SKU-{i:02d}") for i in range(20)]
    assert len(await shop.connector.read_levels()) == 60

    fourth = shop.fake.add_location("DC new")
    for item in items:
        shop.fake.stock(item, fourth)
        shop.fake.set_quantities(item, fourth, available=5)
    levels = await shop.connector.read_levels()

    assert len(levels) == 80
    at_new = [lv for lv in levels if lv.refs["location_id"] == fourth]
    assert len(at_new) == 20
    assert {lv.quantities["available"] for lv in at_new} == {5}


async def test_a_targeted_read_pages_an_items_levels_and_then_knows_the_location(
    shop: Shop,
) -> None:
    item = shop.fake.add_item("SKU-1")
    await shop.connector.read_levels()
    fourth = shop.fake.add_location("DC new")
    shop.fake.stock(item, fourth)
    shop.fake.set_quantities(item, fourth, available=7)

    start = len(shop.fake.requests)
    levels = await shop.connector.read_levels(["SKU-1"])
    assert {lv.refs["location_id"] for lv in levels} == {*shop.locations, fourth}
    assert (
        next(lv for lv in levels if lv.refs["location_id"] == fourth).quantities["available"] == 7
    )
    assert len(shop.calls("InventoryItemLevels", start)) == 1, "the rest of the levels paged"

    start = len(shop.fake.requests)
    again = await shop.connector.read_levels(["SKU-1"])
    assert len(again) == 4
    assert len(shop.calls("Locations", start)) == 1, "the locations were read again"
    assert shop.calls("InventoryItemLevels", start) == [], "and one page holds every level"
    assert shop.calls("InventoryItems", start)[0].variables["levels"] == 4


async def test_an_item_at_more_locations_than_one_page_holds_is_read_whole(
    client: httpx.AsyncClient,
) -> None:
    async for shop in _shop(client, n_locations=130, bucket_size=2000, restore_rate=100):
        item = shop.fake.add_item("WIDE-1")
        for i, gid in enumerate(shop.locations):
            shop.fake.set_quantities(item, gid, available=i)
        levels = await shop.connector.read_levels()
        assert len(levels) == 130
        assert sorted(lv.quantities["available"] for lv in levels) == list(range(130))
        assert shop.calls("InventoryItems")[0].variables["levels"] == 100
        assert len(shop.calls("InventoryItemLevels")) == 1


async def test_stock_at_a_legacy_fulfillment_service_location_is_read(
    client: httpx.AsyncClient,
) -> None:
    async for shop in _shop(client, n_locations=2):
        legacy = shop.fake.add_location("Acme 3PL", fulfillment_service="Acme Fulfillment")
        items = [shop.fake.add_item(f"SKU-{i}") for i in range(3)]
        for item in items:
            shop.fake.stock(item, legacy)
            shop.fake.set_quantities(item, legacy, available=11)

        levels = await shop.connector.read_levels()

        assert len(levels) == 9
        assert [lv.quantities["available"] for lv in levels if lv.location == legacy] == [11] * 3
        assert shop.calls("InventoryItems")[0].variables["levels"] == 3, "counted as a location"
        assert shop.calls("InventoryItemLevels") == []


# -- item 4: transient errors ---------------------------------------------------------------


async def test_internal_server_error_is_retried_like_a_5xx(shop: Shop) -> None:
    shop.fake.add_item("SKU-1")
    shop.fake.force_internal_error(2)
    levels = await shop.connector.read_levels()
    assert len(levels) == 3
    assert shop.connector.health().retries >= 2
    assert shop.clock.slept, "it backed off before trying again"


async def test_internal_server_error_on_a_write_is_retried_and_applied_once(shop: Shop) -> None:
    shop.fake.add_item("SKU-1")
    shop.fake.set_quantities("SKU-1", shop.locations[0], available=40)
    await shop.connector.read_levels()
    shop.fake.force_internal_error(1)
    [outcome] = await shop.connector.write_levels(
        [LevelWrite("SKU-1", "loc0", "available", 28, expected=40, key="k-ise")]
    )
    assert outcome.status == "applied"
    assert shop.fake.quantities("SKU-1", shop.locations[0])["available"] == 28
    assert len(shop.fake.writes) == 1


async def test_internal_server_errors_that_persist_are_a_retryable_transport_error(
    shop: Shop,
) -> None:
    shop.fake.add_item("SKU-1")
    shop.fake.force_internal_error(50)
    with pytest.raises(TransportError) as caught:
        await shop.connector.read_levels()
    assert caught.value.retryable
    assert "INTERNAL_SERVER_ERROR" in str(caught.value)
    assert shop.connector.health().error_streak == 1


# -- item 5: the cost limit -----------------------------------------------------------------


async def test_no_query_asks_for_more_than_shopify_allows_and_the_size_is_remembered(
    client: httpx.AsyncClient,
) -> None:
    async for shop in _shop(client, n_locations=4, bucket_size=2000, restore_rate=100):
        for i in range(600):
            shop.fake.add_item(f"SKU-{i:04d}")

        first = await shop.connector.read_levels()
        assert len(first) == 2400
        pages = shop.calls("InventoryItems")
        assert [r.error_codes for r in shop.fake.requests if r.error_codes] == []
        assert all(r.requested_cost is not None and r.requested_cost <= 1000 for r in pages)
        assert max(r.requested_cost or 0 for r in pages) > 900, "pages as large as fit"

        start = len(shop.fake.requests)
        await shop.connector.read_levels()
        await shop.connector.read_levels([f"SKU-{i:04d}" for i in range(0, 600, 7)])
        again = shop.calls("InventoryItems", start)
        assert [r.error_codes for r in shop.fake.requests[start:] if r.error_codes] == []
        assert again[0].variables["first"] == pages[-2].variables["first"], "remembered"
        assert all((r.requested_cost or 0) <= 1000 for r in again)


async def test_a_shop_that_prices_higher_is_learned_from_its_refusal(
    client: httpx.AsyncClient,
) -> None:
    async for shop in _shop(client, n_locations=2, max_query_cost=300):
        for i in range(200):
            shop.fake.add_item(f"SKU-{i:04d}")
        levels = await shop.connector.read_levels()
        assert len(levels) == 400
        refused = [r for r in shop.fake.requests if "MAX_COST_EXCEEDED" in r.error_codes]
        assert len(refused) == 1, "one refusal, then every page fits"
        start = len(shop.fake.requests)
        await shop.connector.read_levels()
        assert not [r for r in shop.fake.requests[start:] if r.error_codes]


# -- item 7: SKUs in the search syntax -------------------------------------------------------

HOSTILE = [
    "TEE BLK M",
    'TEE"BLK',
    "TEE'BLK",
    "<TEE>",
    "TEE>2",
    "tee@shop",
    "TEE:BLK",
    "TEE\\BLK",
    "TEE(BLK)",
    "TEE*",
    "-TEE",
    "OR",
    "ÜBER-TEE",
]


async def test_skus_with_search_syntax_in_them_are_looked_up_and_written(shop: Shop) -> None:
    for sku in HOSTILE:
        shop.fake.add_item(sku)
        shop.fake.set_quantities(shop.fake.store.item(sku).gid, shop.locations[0], available=40)
    shop.fake.add_item("TEE")  # what a prefix or an unescaped search would also match
    for sku in HOSTILE:
        normalized = shop.config.normalize_sku(sku)
        levels = await shop.connector.read_levels([normalized])
        assert {lv.refs["sku"] for lv in levels} == {sku}, sku
        [outcome] = await shop.connector.write_levels(
            [LevelWrite(normalized, "loc0", "available", 28, expected=40, key=f"k-{sku}")]
        )
        assert outcome.status == "applied", (sku, outcome.error)
        assert (
            shop.fake.quantities(shop.fake.store.item(sku).gid, shop.locations[0])["available"]
            == 28
        )


# -- item 3: items that share a SKU ---------------------------------------------------------


async def test_two_items_with_one_sku_are_both_read_and_a_write_is_refused(shop: Shop) -> None:
    a, b = shop.fake.add_item("DUP-1"), shop.fake.add_item("DUP-1")
    shop.fake.set_quantities(a, shop.locations[0], available=40)
    shop.fake.set_quantities(b, shop.locations[0], available=12)
    levels = await shop.connector.read_levels()
    here = [lv for lv in levels if lv.location == "loc0"]
    assert sorted((lv.refs["inventory_item_id"], lv.quantities["available"]) for lv in here) == [
        (a, 40),
        (b, 12),
    ]
    [outcome] = await shop.connector.write_levels(
        [LevelWrite("DUP-1", "loc0", "available", 28, expected=40, key="k-dup")]
    )
    assert outcome.status == "failed"
    assert a in (outcome.error or "")
    assert b in (outcome.error or "")
    assert "will not guess" in (outcome.error or "")
    assert shop.fake.writes == []
    assert [r for r in shop.fake.requests if r.operation_name == "SetQuantities"] == []


async def test_a_write_goes_to_the_item_stocked_where_it_is_written(shop: Shop) -> None:
    east, west = shop.locations[0], shop.locations[1]
    a = shop.fake.add_item("DUP-2", locations=[east])
    b = shop.fake.add_item("DUP-2", locations=[west])
    shop.fake.set_quantities(a, east, available=40)
    shop.fake.set_quantities(b, west, available=3)
    await shop.connector.read_levels()
    outcomes = await shop.connector.write_levels(
        [
            LevelWrite("DUP-2", "loc0", "available", 28, expected=40, key="k-east"),
            LevelWrite("DUP-2", "loc1", "available", 5, expected=3, key="k-west"),
        ]
    )
    assert [o.status for o in outcomes] == ["applied", "applied"]
    assert shop.fake.quantities(a, east)["available"] == 28
    assert shop.fake.quantities(b, west)["available"] == 5


async def test_a_targeted_read_finds_every_spelling_of_a_sku(client: httpx.AsyncClient) -> None:
    clock = ManualClock()
    async with FakeShopify(clock=clock) as fake:
        east = fake.add_location("East")
        config = config_from_dict(
            {
                "source_of_truth": ["shopify"],
                "systems": [{"name": "shopify", "kind": "shopify", "shop_url": fake.url}],
                "locations": {"east": {"shopify": east}},
                "skus": {"aliases": {"TEEBLKM": "TEE-BLK-M"}},
                "slack": {"alerts_channel": "C0DRIFT01"},
            }
        )
        spelled = {fake.add_item("TEE-BLK-M"): "TEE-BLK-M", fake.add_item("teeblkm"): "teeblkm"}
        connector = ShopifyConnector(
            client,
            name="shopify",
            shop_url=fake.url or "",
            token=fake.access_token,
            mapping=config,
            clock=clock,
            use_bulk=False,
        )
        full = await connector.read_levels()
        assert {lv.refs["inventory_item_id"] for lv in full} == set(spelled)

        targeted = await connector.read_levels(["TEE-BLK-M"])

        assert {lv.refs["inventory_item_id"]: lv.refs["sku"] for lv in targeted} == spelled


async def test_shopify_going_down_between_the_pages_of_an_item_fails_the_read_whole(
    shop: Shop,
) -> None:
    item = shop.fake.add_item("SKU-1")

    async def dies_on_the_nested_page(request: httpx.Request) -> None:
        if b"InventoryItemLevels" in request.content:
            shop.fake.down = True

    async with httpx.AsyncClient(
        timeout=10.0, event_hooks={"request": [dies_on_the_nested_page]}
    ) as dying:
        connector = ShopifyConnector(
            dying,
            name="shopify",
            shop_url=shop.fake.url or "",
            token=shop.fake.access_token,
            mapping=shop.config,
            clock=shop.clock,
            use_bulk=False,
            policy=RetryPolicy(attempts=3, base_delay=0.5, max_delay=2.0),
        )
        await connector.read_levels()  # learns the three locations
        fourth = shop.fake.add_location("DC new")
        shop.fake.stock(item, fourth)
        with pytest.raises(TransportError):
            await connector.read_levels(["SKU-1"])  # a partial item is never returned
        assert connector.health().error_streak == 1
        shop.fake.down = False
        dying.event_hooks = {"request": []}
        levels = await connector.read_levels(["SKU-1"])
    assert {lv.refs["location_id"] for lv in levels} == {*shop.locations, fourth}
