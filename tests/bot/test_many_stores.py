"""Two Shopify stores in one deployment (issue 15, item 6): one webhook address serves
both, each delivery routed by the shop it names (``X-Shopify-Shop-Domain``,
https://shopify.dev/docs/apps/build/webhooks/delivery-structure), verified with that
store's own secret (the base64 HMAC-SHA256 of the raw body,
https://shopify.dev/docs/apps/build/webhooks/subscribe/https) and recorded under that
store; each store has its own range and its own Slack channel."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from stores_testing import (
    EU_CHANNEL,
    EU_DOMAIN,
    EU_SECRET,
    TwoStores,
    postgres_schema,
    two_stores,
)

from monitors.reports import previous_week_start, week_bounds
from sandbox.world import ALERTS_CHANNEL


async def subscribe_both(stores: TwoStores) -> None:
    address = f"{stores.url}/webhooks/shopify"
    stores.demo.world.shopify.webhooks.subscribe("inventory_levels/update", address)
    stores.eu.webhooks.subscribe("inventory_levels/update", address)


async def changed(stores: TwoStores) -> None:
    """Wait for the targeted diff a webhook caused, and its messages."""
    await stores.targeted()


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


def signed(body: bytes, secret: str) -> str:
    """Shopify's signature: base64 of the HMAC-SHA256 of the raw body under the secret
    (https://shopify.dev/docs/apps/build/webhooks/subscribe/https)."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def raw_post(url: str, head: bytes, body: bytes) -> int:
    """POST with header bytes as given (no client would send a bare CR); the status."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + head
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return int(status_line.split()[1])


async def test_hostile_shop_domains_are_refused_and_never_recorded_under_a_store(
    tmp_path: Path,
) -> None:
    body = b'{"inventory_item_id": 1, "location_id": 2, "available": 5}'
    async with two_stores(tmp_path) as stores:
        address = f"{stores.url}/webhooks/shopify"

        def headers(shop: str | bytes) -> dict[str, str | bytes]:
            return {
                "X-Shopify-Topic": "inventory_levels/update",
                "X-Shopify-Hmac-Sha256": signed(body, EU_SECRET),
                "X-Shopify-Shop-Domain": shop,
                "X-Shopify-Event-Id": "evt-hostile",
            }

        hostile: list[str | bytes] = [
            "a" * 6000 + ".myshopify.com",  # huge
            "drіftwatch-eu.myshopify.com".encode(),  # a Cyrillic і, sent as UTF-8
            "http://[driftwatch-eu.myshopify.com",  # not a URL urlsplit can read
            "driftwatch-eu.myshopify.com.evil.example",
        ]
        async with httpx.AsyncClient() as http:
            answers = [
                (await http.post(address, content=body, headers=headers(shop))).status_code
                for shop in hostile
            ]
            # no domain header at all
            bare = headers("x")
            del bare["X-Shopify-Shop-Domain"]
            answers.append((await http.post(address, content=body, headers=bare)).status_code)
            # the first store's domain with the second store's signature: checked with
            # the first store's secret, refused there
            wrong_secret = (
                await http.post(
                    address,
                    content=body,
                    headers=headers(stores.demo.world.shopify.webhooks.shop_domain),
                )
            ).status_code
        # a bare CR in the header: the HTTP parser refuses the request itself
        crlf = await raw_post(
            stores.url,
            b"X-Shopify-Topic: inventory_levels/update\r\n"
            + f"X-Shopify-Hmac-Sha256: {signed(body, EU_SECRET)}\r\n".encode()
            + b"X-Shopify-Shop-Domain: driftwatch-eu.myshopify.com\rX-Injected: 1\r\n",
            body,
        )
        await stores.settle()
        deliveries = await stores.ledger.list_deliveries()
        refusals = await stores.ledger.list_refusals()
        await stores.service.run_job("webhook-health")
        await stores.settle()
        incidents = await stores.ledger.list_incidents()
        global_texts = stores.texts(ALERTS_CHANNEL)
        eu_texts = stores.texts(EU_CHANNEL)

    assert answers == [403] * 5
    assert wrong_secret == 401
    assert crlf == 400
    assert deliveries == [], "nothing accepted"
    counted = {(r.system, r.outcome, r.reason): r.count for r in refusals}
    assert counted == {
        ("(unknown shop)", "wrong_shop", "unknown"): 4,
        ("(unknown shop)", "wrong_shop", "missing"): 1,
        ("shopify", "rejected_signature", "mismatch"): 1,
    }
    unknown = [r for r in refusals if r.reason == "unknown"]
    assert all(len(v) <= 200 for r in unknown for v in r.sample.values())
    assert not [i for i in incidents if i.system == "shopify_eu"]
    # webhook health says so, once, in the global channel (no store's)
    [wrong] = [i for i in incidents if i.kind == "webhook_wrong_shop"]
    assert wrong.system == "(unknown shop)"
    assert wrong.title == "5 webhooks named a shop no configured store serves"
    assert sum(t.startswith(wrong.title) for t in global_texts) == 1
    assert not any("webhooks named" in t for t in eu_texts)
    assert not [i for i in incidents if i.kind == "webhook_signatures_rejected"]  # 1 < 3


async def test_the_same_delivery_hours_later_is_a_duplicate_of_its_own_store(
    tmp_path: Path,
) -> None:
    async with two_stores(tmp_path) as stores:
        await subscribe_both(stores)
        stores.eu.set_quantities("MUG-STONE", stores.eu_locations["east"], available=63)
        await changed(stores)
        [first] = stores.eu.webhooks.deliveries
        stores.clock.advance(3 * 3600)
        again = await stores.eu.webhooks.replay(first)
        await stores.settle()
        eu = await stores.ledger.list_deliveries(system="shopify_eu")
        first_store = await stores.ledger.list_deliveries(system="shopify")
    assert again.status == 200
    outcomes = sorted(d.outcome for d in eu)
    assert outcomes == ["duplicate", "processed"]
    [dup] = [d for d in eu if d.outcome == "duplicate"]
    assert dup.event_id == first.event_id
    assert first_store == []


async def test_each_store_with_its_own_channel_gets_its_own_adjustment_report(
    tmp_path: Path,
) -> None:
    async with two_stores(tmp_path) as stores:
        yesterday = stores.clock.now() - timedelta(days=1)
        for key, sku, location, system in (
            ("a1", "MUG-STONE", "east", "shopify_eu"),
            ("a2", "TEE-WHT-M", "west", "shopify"),
            ("a3", "CAP-NAVY", "east", "wms"),
        ):
            adjustment, _ = await stores.ledger.record_adjustment(
                key, sku, location, system, "cycle_count", "U0OPS001", yesterday, delta=-1
            )
            await stores.ledger.settle_adjustment(adjustment.id, "applied", yesterday)
        await stores.service.run_job("daily-adjustments")
        await stores.settle()
        eu_texts = stores.texts(EU_CHANNEL)
        global_texts = stores.texts(ALERTS_CHANNEL)
        # the same job again (a second tick, a restart): no second report anywhere
        await stores.service.run_job("daily-adjustments")
        await stores.settle()
        eu_again = stores.texts(EU_CHANNEL)
        global_again = stores.texts(ALERTS_CHANNEL)
        eu_message = stores.demo.world.slack.messages(EU_CHANNEL)[-1]
        blocks = str(eu_message.blocks)

    [eu_report] = [t for t in eu_texts if t.startswith("Adjustments")]
    assert eu_report.startswith("Adjustments in shopify_eu on ")
    assert eu_report.endswith(": 1, 1 unusual")
    assert "MUG-STONE at east adjusted in shopify_eu, not in wms" in blocks
    assert "TEE-WHT-M" not in blocks
    [whole] = [t for t in global_texts if t.startswith("Adjustments")]
    assert whole.endswith(": 3, 2 unusual")
    assert " in shopify" not in whole
    assert eu_again == eu_texts
    assert global_again == global_texts


async def test_each_store_with_its_own_channel_gets_its_own_weekly_summary(
    tmp_path: Path,
) -> None:
    async with two_stores(tmp_path) as stores:
        week = previous_week_start(stores.clock.now(), stores.config.tz)
        tuesday = week_bounds(week, stores.config.tz)[0].astimezone(UTC) + timedelta(days=1)
        for name, sku, system in (
            ("eu", "MUG-STONE", "shopify_eu"),
            ("us-1", "TEE-WHT-M", "shopify"),
            ("us-2", "CAP-NAVY", "shopify"),
        ):
            await stores.ledger.open_incident(
                f"fp:{name}", "oversell_risk", "critical", name, tuesday, sku, "east", system
            )
        await stores.service.run_job("weekly-summary")
        await stores.settle()
        slack = stores.demo.world.slack
        eu_weekly = [m for m in slack.messages(EU_CHANNEL) if m.text.startswith("Weekly")]
        whole = [m for m in slack.messages(ALERTS_CHANNEL) if m.text.startswith("Weekly")]
        eu_replies = [r for m in eu_weekly for r in slack.thread(EU_CHANNEL, m.ts)[1:]]
        titles = {f.title for f in slack.files.values() if f.filename.startswith("weekly")}
        # the same job again (a second tick, a restart): no second summary anywhere
        await stores.service.run_job("weekly-summary")
        await stores.settle()
        eu_again = [m.text for m in slack.messages(EU_CHANNEL) if m.text.startswith("Weekly")]
        whole_again = [m.text for m in slack.messages(ALERTS_CHANNEL) if m.text.startswith("W")]

    [eu] = eu_weekly
    assert eu.text.startswith("Weekly drift summary in shopify_eu, ")
    assert "Oversell incidents 1 " in eu.text
    eu_blocks = str(eu.blocks)
    assert "MUG-STONE" in eu_blocks
    assert "TEE-WHT-M" not in eu_blocks
    assert "CAP-NAVY" not in eu_blocks
    # the review and its decision buttons are the deployment's
    assert "actions" not in [b["type"] for b in eu.blocks]
    # its own incidents chart, not the deployment's chain of hops
    [png] = [f["name"] for r in eu_replies for f in r.files]
    assert png.startswith("weekly-summary-")
    assert titles == {
        f"Incidents opened per day{where}, week of {week.isoformat()} vs the week before"
        for where in ("", " in shopify_eu")
    }
    [deployment] = whole
    assert " in shopify" not in deployment.text
    assert "Oversell incidents 3 " in deployment.text
    assert "actions" in [b["type"] for b in deployment.blocks]
    assert eu_again == [eu.text]
    assert whole_again == [deployment.text]


@pytest.mark.postgres
async def test_two_replicas_on_postgresql_route_each_store_and_process_a_delivery_once(
    tmp_path: Path,
) -> None:
    """Behind a round-robin balancer, Shopify's retry of a delivery reaches the other
    replica: it is recorded there as a duplicate of the same store, never processed
    twice; an unknown shop is counted apart on whichever replica it reaches."""
    async with (
        postgres_schema() as database,
        two_stores(tmp_path, database=database, replicas=2) as stores,
    ):
        one, other = stores.replicas
        assert other.url is not None
        stores.eu.webhooks.subscribe("inventory_levels/update", f"{one.url}/webhooks/shopify")
        stores.eu.set_quantities("MUG-STONE", stores.eu_locations["west"], available=50)
        await changed(stores)
        [delivery] = stores.eu.webhooks.deliveries
        retried = await stores.eu.webhooks.replay(delivery, url=f"{other.url}/webhooks/shopify")
        stranger = await stores.eu.webhooks.replay(
            delivery,
            url=f"{other.url}/webhooks/shopify",
            shop_domain="not-configured.myshopify.com",
        )
        await stores.settle()
        eu = await stores.ledger.list_deliveries(system="shopify_eu")
        first_store = await stores.ledger.list_deliveries(system="shopify")
        refusals = await stores.ledger.list_refusals()
        incidents = await stores.ledger.list_incidents()
    assert (retried.status, stranger.status) == (200, 403)
    assert sorted(d.outcome for d in eu) == ["duplicate", "processed"]
    assert first_store == []
    assert [(r.system, r.outcome, r.reason, r.count) for r in refusals] == [
        ("(unknown shop)", "wrong_shop", "unknown", 1)
    ]
    [oversell] = [i for i in incidents if i.title.startswith("Oversell risk: MUG-STONE at west")]
    assert oversell.system == "shopify_eu"


async def test_a_storm_of_both_kinds_is_sorted_without_loss(tmp_path: Path) -> None:
    """300 deliveries at once: 100 signed by the second store, 200 naming shops nobody
    serves; each store keeps its own, the strangers are counted, none is lost."""

    def body(n: int) -> bytes:
        return json.dumps(
            {"inventory_item_id": 900_000 + n, "location_id": 1, "available": n}
        ).encode()

    def headers(n: int, shop: str) -> dict[str, str]:
        return {
            "X-Shopify-Topic": "inventory_levels/update",
            "X-Shopify-Hmac-Sha256": signed(body(n), EU_SECRET),
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Event-Id": f"storm-{n}",
        }

    async with two_stores(tmp_path) as stores:
        address = f"{stores.url}/webhooks/shopify"
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(limits=limits, timeout=None) as http:

            async def send(n: int) -> int:
                """As Shopify does: a 503 (not recorded within the ack budget on a
                loaded machine) is sent again, with the same ids."""
                shop = EU_DOMAIN if n % 3 == 0 else f"shop-{n}.myshopify.com"
                for _ in range(50):
                    answer = await http.post(address, content=body(n), headers=headers(n, shop))
                    if answer.status_code != 503:
                        return answer.status_code
                raise AssertionError(f"delivery {n} was never recorded")

            # a TaskGroup: one failure cancels the rest (no sends left running into the
            # next test's event loop)
            async with asyncio.TaskGroup() as group:
                sent = [group.create_task(send(n)) for n in range(300)]
            statuses = [task.result() for task in sent]
        await stores.settle()
        eu = await stores.ledger.list_deliveries(system="shopify_eu", limit=1000)
        first_store = await stores.ledger.list_deliveries(system="shopify")
        refusals = await stores.ledger.list_refusals()
    assert statuses.count(200) == 100
    assert statuses.count(403) == 200
    processed = [d.event_id for d in eu if d.outcome == "processed"]
    assert sorted(processed) == sorted(f"storm-{n}" for n in range(0, 300, 3))
    assert {d.outcome for d in eu} <= {"processed", "duplicate"}  # a retried 503
    assert first_store == []
    assert sum(r.count for r in refusals if r.system == "(unknown shop)") == 200
    assert {r.system for r in refusals} == {"(unknown shop)"}


async def test_a_store_with_its_own_truth_is_judged_against_it(tmp_path: Path) -> None:
    """The second store mirrors the first (its truth is the first store, not the WMS):
    showing what the first shows is no drift, though the WMS counts less."""
    async with two_stores(tmp_path, source_of_truth=["shopify"]) as stores:
        # seeded with the WMS's 28 + 2, the second store showed less than the first
        [first] = [i for i in await stores.ledger.list_incidents() if i.system == "shopify_eu"]
        east = stores.eu_locations["east"]
        # the first store shows 40 + 2 TEE-BLK-M at east; the WMS 28 + 2
        stores.eu.set_quantities("TEE-BLK-M", east, available=40, committed=2)
        await stores.service.run_job("drift-diff")
        await stores.settle()
        quiet = [
            i
            for i in await stores.ledger.list_incidents()
            if i.system == "shopify_eu" and i.status != "resolved"
        ]
        stores.eu.set_quantities("TEE-BLK-M", east, available=50, committed=2)
        await stores.service.run_job("drift-diff")
        await stores.settle()
        loud = [
            i
            for i in await stores.ledger.list_incidents()
            if i.system == "shopify_eu" and i.status != "resolved"
        ]
    assert first.title.startswith("Undersell: stock not shown: TEE-BLK-M at east")
    assert first.details["truth_system"] == "shopify"
    assert quiet == [], "showing what its truth shows is no drift (the WMS has 30)"
    [oversell] = loud
    assert oversell.title.startswith("Oversell risk: TEE-BLK-M at east")
    assert oversell.details["truth_system"] == "shopify"
    assert oversell.details["expected"] == 42
