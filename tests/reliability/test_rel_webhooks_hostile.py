"""Webhooks that are poisoned, spoofed, stranded or abundant, against the running
Service (issue 14, finding 8).

* A captured body replayed with a new event id and ``X-Shopify-Triggered-At:
  9999-12-31`` made every later genuine delivery for that level ``stale`` and opened a
  false "webhooks arrived out of order" incident.
* Deliveries for another shop were processed.
* A delivery answered 200 whose process died before processing it stayed ``received``.
* 10,000 unsigned deliveries made 10,000 rows.
* A NUL in one ``/drift`` among 20 concurrent commands failed the other 19 (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from reliability_testing import WRITER, Bot, postgres_url, running_bot, slack_headers
from sqlalchemy import text

from bot.cli.demo import DemoWorld
from connectors.shopify.webhooks import level_key
from ledger import Ledger

OUT_OF_ORDER = "webhook_out_of_order"


async def _webhook_incidents(bot: Bot) -> set[str]:
    job = bot.service.webhook_health_job
    assert job is not None
    await job.run()
    return {i.kind for i in await bot.ledger.list_incidents(limit=500) if i.status != "resolved"}


async def test_a_poisoned_replay_makes_nothing_stale_and_opens_no_false_incident(
    bot: Bot,
) -> None:
    shopify = bot.demo.world.shopify
    # the fake shop keeps the wall clock: bring the bot's to the same time
    bot.clock.advance((datetime.now(UTC) - bot.clock.now()).total_seconds() + 1)
    shopify.webhooks.subscribe("inventory_levels/update", f"{bot.url}/webhooks/shopify")
    west = bot.demo.world.locations["west"][0]
    shopify.set_quantities("CAP-NAVY", west, available=12)
    await shopify.webhooks.idle()
    [captured] = shopify.webhooks.deliveries
    forged = await shopify.webhooks.replay(
        captured, event_id="forged", webhook_id="forged", triggered_at="9999-12-31T23:59:59Z"
    )
    assert forged.status == 200  # the body is Shopify's, so the HMAC verifies
    for available in range(11, 5, -1):  # six genuine changes after it
        bot.clock.advance(60)
        shopify.set_quantities("CAP-NAVY", west, available=available)
        await shopify.webhooks.idle()
    await bot.settle()

    deliveries = await bot.ledger.list_deliveries(limit=100)
    assert [d.outcome for d in deliveries] == ["processed"] * 8
    assert OUT_OF_ORDER not in await _webhook_incidents(bot)


async def test_a_delivery_for_another_shop_is_refused(bot: Bot) -> None:
    reads = len(bot.demo.world.shopify.requests)
    item = bot.demo.world.shopify.store.item("TEE-BLK-M").gid.rsplit("/", 1)[1]
    west = bot.demo.world.locations["west"][0].rsplit("/", 1)[1]
    body = json.dumps({"inventory_item_id": int(item), "location_id": int(west), "available": 3})
    response = await bot.webhook(
        body.encode(),
        headers={"X-Shopify-Shop-Domain": "someone-else.myshopify.com", "X-Shopify-Event-Id": "x"},
    )
    assert response.status_code == 403
    await bot.settle()
    assert await bot.ledger.list_deliveries() == []
    assert len(bot.demo.world.shopify.requests) == reads, "nothing was read for it"
    assert not bot.service.targeted_done.is_set()
    [refused] = await bot.ledger.list_refusals()
    assert (refused.outcome, refused.reason, refused.sample["shop"]) == (
        "wrong_shop",
        "other",
        "someone-else.myshopify.com",
    )


async def test_a_delivery_answered_but_never_processed_is_processed_at_start(
    tmp_path: Path,
) -> None:
    async def left_by_a_dead_process(demo: DemoWorld, ledger: Ledger) -> None:
        shopify = demo.world.shopify
        west = demo.world.locations["west"][0]
        shopify.set_quantities("CAP-NAVY", west, available=20)  # the WMS says 7 + 1
        item = shopify.store.item("CAP-NAVY").gid
        now = datetime(2026, 11, 2, 8, 59, tzinfo=UTC)
        await ledger.record_delivery(  # as the receiver recorded it before its 200
            system="shopify",
            topic="inventory_levels/update",
            event_id="evt-stranded",
            webhook_id="wh-stranded",
            triggered_at=now,
            received_at=now,
            outcome="received",
            resource_key=level_key(item, west),
            detail={"secret": 0, "available": 20, "updated_at": now.isoformat()},
            dedupe_key="evt-stranded",
        )

    async with running_bot(tmp_path, before_start=left_by_a_dead_process) as bot:
        await bot.settle()
        [delivery] = await bot.ledger.list_deliveries()
        assert delivery.outcome == "processed"
        assert bot.service.targeted_done.is_set(), "its level was diffed again"
        titles = [i.title for i in await bot.ledger.list_incidents()]
        assert "Oversell risk: CAP-NAVY at west" in titles


async def test_10000_unsigned_deliveries_add_no_rows_and_still_raise_the_alarm(
    bot: Bot,
) -> None:
    url = f"{bot.url}/webhooks/shopify"
    body = b'{"inventory_item_id": 1, "location_id": 2, "available": 3}'
    statuses: list[int] = []

    async def sender(session: aiohttp.ClientSession, n: int) -> None:
        for i in range(n):
            headers = {"X-Shopify-Topic": "inventory_levels/update", "X-Shopify-Event-Id": f"{i}"}
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                statuses.append(response.status)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as session:
        await asyncio.gather(*(sender(session, 200) for _ in range(50)))
    await bot.settle()

    assert len(statuses) == 10_000
    assert set(statuses) == {401}
    async with bot.ledger._read() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM webhook_deliveries"))).scalar()
    assert rows == 0
    async with bot.ledger._read() as conn:
        counted = (await conn.execute(text("SELECT count(*) FROM webhook_refusals"))).scalar()
    assert counted is not None
    assert counted <= 3  # one per 5-minute bucket and reason (the clock holds still)
    assert sum(r.count for r in await bot.ledger.list_refusals()) == 10_000
    assert "webhook_signatures_rejected" in await _webhook_incidents(bot)


async def test_a_nul_in_one_of_20_commands_fails_none_of_the_others(tmp_path: Path) -> None:
    async with postgres_url() as url, running_bot(tmp_path, database_url=url) as bot:
        texts = ["TEE-BLK-M"] * 20
        texts[7] = "TEE-BLK-M\u0000"
        bodies = [bot.command_body("/drift", t, WRITER) for t in texts]
        async with aiohttp.ClientSession() as session:

            async def send(body: str) -> int:
                headers = slack_headers(body, ts=int(time.time()))
                async with session.post(
                    f"{bot.url}/slack/events", data=body.encode(), headers=headers
                ) as response:
                    return response.status

            statuses = await asyncio.gather(*(send(b) for b in bodies))
        await bot.settle()
        assert statuses == [200] * 20
        answers = [e for e in bot.slack.ephemerals if e.text.startswith("TEE-BLK-M:")]
        assert len(answers) >= 19
        audited = await bot.ledger.list_audit(limit=100)
        commands = [e.detail.get("text") for e in audited if e.action == "slack.command"]
        assert sorted(commands).count("TEE-BLK-M") == 19
        assert "TEE-BLK-M\ufffd" in commands
