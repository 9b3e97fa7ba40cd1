"""Two Shopify stores in one deployment (issue 15, item 6): one webhook address serves
both, each delivery routed by the shop it names (``X-Shopify-Shop-Domain``,
https://shopify.dev/docs/apps/build/webhooks/delivery-structure), verified with that
store's own secret (the base64 HMAC-SHA256 of the raw body,
https://shopify.dev/docs/apps/build/webhooks/subscribe/https) and recorded under that
store; each store has its own range and its own Slack channel."""

from __future__ import annotations

from pathlib import Path

from stores_testing import EU_CHANNEL, EU_DOMAIN, TwoStores, two_stores

from sandbox.world import ALERTS_CHANNEL


async def subscribe_both(stores: TwoStores) -> None:
    address = f"{stores.url}/webhooks/shopify"
    stores.demo.world.shopify.webhooks.subscribe("inventory_levels/update", address)
    stores.eu.webhooks.subscribe("inventory_levels/update", address)


async def changed(stores: TwoStores) -> None:
    """Wait for the targeted diff a webhook caused, and its messages."""
    await stores.settle()
    await stores.service.targeted_done.wait()
    await stores.settle()


async def test_the_second_store_webhooks_are_accepted_and_recorded_under_it(
    tmp_path: Path,
) -> None:
    async with two_stores(tmp_path) as stores:
        await subscribe_both(stores)
        # the second store oversells MUG-STONE at west (the WMS has 30 + 3)
        stores.eu.set_quantities("MUG-STONE", stores.eu_locations["west"], available=50)
        await changed(stores)
        eu_deliveries = await stores.ledger.list_deliveries(system="shopify_eu")
        first_store = await stores.ledger.list_deliveries(system="shopify")
        refusals = await stores.ledger.list_refusals()
        incidents = await stores.ledger.list_incidents()
        eu_texts = stores.texts(EU_CHANNEL)

        stores.service.targeted_done.clear()
        west = stores.demo.world.gid("west")
        stores.demo.world.shopify.set_quantities("CAP-NAVY", west, available=20)
        await changed(stores)
        first_after = await stores.ledger.list_deliveries(system="shopify")
        global_texts = stores.texts(ALERTS_CHANNEL)

    assert [(d.topic, d.outcome) for d in eu_deliveries] == [
        ("inventory_levels/update", "processed")
    ]
    assert eu_deliveries[0].detail["shop"] == EU_DOMAIN
    assert first_store == []
    assert refusals == []
    [oversell] = [i for i in incidents if i.title.startswith("Oversell risk: MUG-STONE at west")]
    assert oversell.system == "shopify_eu"
    assert any(t.startswith("Oversell risk: MUG-STONE at west") for t in eu_texts)
    assert not any("MUG-STONE" in t for t in global_texts), "the store's own channel only"
    # the first store's deliveries still land under the first store, alerts globally
    assert [d.outcome for d in first_after] == ["processed"]
    assert any(t.startswith("Oversell risk: CAP-NAVY at west") for t in global_texts)
    assert not any("CAP-NAVY" in t for t in stores.texts(EU_CHANNEL))


async def test_a_sku_the_second_store_never_listed_is_not_missing_there(tmp_path: Path) -> None:
    async with two_stores(tmp_path) as stores:
        incidents = await stores.ledger.list_incidents()
        await stores.service.run_job("drift-diff")
        await stores.settle()
        again = await stores.ledger.list_incidents()
        eu_texts = stores.texts(EU_CHANNEL)
    # TEE-WHT-M and CAP-NAVY are sold by the first store only
    assert not [i for i in incidents + again if i.system == "shopify_eu"]
    assert not [i for i in incidents + again if "shopify_eu" in i.title]
    assert eu_texts == []
    # the first store's drift is still found (the demo world's one drift)
    assert any(i.title.startswith("Oversell risk: TEE-BLK-M at east") for i in incidents)


async def test_a_listing_the_second_store_carried_and_deleted_alerts(tmp_path: Path) -> None:
    async with two_stores(tmp_path) as stores:
        stores.eu.delete_product("MUG-STONE")
        await stores.service.run_job("drift-diff")
        await stores.settle()
        incidents = await stores.ledger.list_incidents()
        eu_texts = stores.texts(EU_CHANNEL)
        global_texts = stores.texts(ALERTS_CHANNEL)
    missing = sorted(i.title for i in incidents if i.kind == "missing")
    assert missing == [
        "SKU missing in shopify_eu: MUG-STONE at east",
        "SKU missing in shopify_eu: MUG-STONE at west",
    ]
    assert {i.system for i in incidents if i.kind == "missing"} == {"shopify_eu"}
    assert sum("SKU missing in shopify_eu: MUG-STONE" in t for t in eu_texts) == 2
    assert not any("MUG-STONE" in t for t in global_texts)


async def test_a_store_that_carries_all_reports_every_sku_it_lacks(tmp_path: Path) -> None:
    async with two_stores(tmp_path, carries="all") as stores:
        incidents = await stores.ledger.list_incidents()
    missing = sorted(i.title for i in incidents if i.kind == "missing")
    assert missing == [
        f"SKU missing in shopify_eu: {sku} at {where}"
        for sku in ("CAP-NAVY", "TEE-WHT-M")
        for where in ("east", "west")
    ]


async def test_a_range_pattern_excludes_a_sku_even_once_listed(tmp_path: Path) -> None:
    async with two_stores(tmp_path, excludes_skus=["mug-*"]) as stores:
        stores.eu.delete_product("MUG-STONE")
        await stores.service.run_job("drift-diff")
        await stores.settle()
        incidents = await stores.ledger.list_incidents()
    assert not [i for i in incidents if i.kind == "missing"]
