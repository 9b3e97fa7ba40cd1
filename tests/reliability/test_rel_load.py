"""Guarantee 7: load. 200 signed slash commands at once over HTTP are all acknowledged
(200) and all answered; a burst of Shopify webhooks (every event delivered twice) loses
none and collapses the duplicates. The latency distribution and the rate reached are
printed (run with -s) and recorded in docs/RELIABILITY.md; how fast the acks are is a
benchmark's to show (bench B4: p99 246 ms for 200 at once on a 500,000-level ledger),
not a timed test's on a shared CI machine."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from reliability_testing import WRITER, Bot, slack_headers

from connectors.shopify.webhooks import sign

COMMANDS = 200
EVENTS = 5_000  # each delivered twice: 10,000 webhooks
SENDERS = 50
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _percentiles(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return (
        f"n={len(samples)} p50={q[49] * 1000:.0f} ms p90={q[89] * 1000:.0f} ms "
        f"p99={q[98] * 1000:.0f} ms max={max(samples) * 1000:.0f} ms"
    )


async def test_200_concurrent_slash_commands_are_acknowledged_and_answered(
    bot: Bot,
) -> None:
    bodies = [bot.command_body("/drift", "TEE-BLK-M", WRITER) for _ in range(COMMANDS)]
    # aiohttp's client as Slack: httpx's pool spends O(n^2) time handing 200 concurrent
    # requests to connections, on the same event loop as the bot it would be measuring
    connector = aiohttp.TCPConnector(limit=COMMANDS + 10)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: str) -> tuple[int, float]:
            started = time.perf_counter()
            async with session.post(
                f"{bot.url}/slack/events", data=body.encode(), headers=slack_headers(body)
            ) as response:
                await response.read()
                return response.status, time.perf_counter() - started

        started = time.perf_counter()
        results = await asyncio.gather(*(one(b) for b in bodies))
        wall = time.perf_counter() - started
        await bot.settle()

    statuses = Counter(status for status, _ in results)
    latencies = [seconds for _, seconds in results]
    print(f"\n{COMMANDS} slash commands in {wall:.2f} s: {_percentiles(latencies)}")
    assert statuses == {200: COMMANDS}
    # every ack arrived before the client's own timeout; Slack's 3 s is benchmarked (B4)
    answers = [e for e in bot.slack.ephemerals if e.text.startswith("TEE-BLK-M:")]
    assert len(answers) == COMMANDS, "every command was answered after its ack"


@pytest.mark.timeout(1200)  # a hang guard sized for a loaded CI machine, not a verdict
async def test_a_burst_of_webhooks_loses_none_and_collapses_duplicates(bot: Bot) -> None:
    shopify = bot.demo.world.shopify
    secret = shopify.webhooks.secret
    item = shopify.store.item("TEE-BLK-M").gid.rsplit("/", 1)[1]
    locations = [gid.rsplit("/", 1)[1] for gid, _ in bot.demo.world.locations.values()]
    deliveries: list[tuple[bytes, dict[str, str]]] = []
    for n in range(EVENTS):
        body = json.dumps(
            {
                "inventory_item_id": int(item),
                "location_id": int(locations[n % len(locations)]),
                "available": 40 - n % 7,
                "updated_at": "2026-11-02T09:00:00Z",
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "inventory_levels/update",
            "X-Shopify-Shop-Domain": shopify.webhooks.shop_domain,
            "X-Shopify-Hmac-Sha256": sign(body, secret),
            "X-Shopify-Event-Id": f"evt-{n:05d}",
            "X-Shopify-Triggered-At": (T0 + timedelta(milliseconds=n)).isoformat(),
        }
        deliveries += [(body, headers), (body, headers)]  # Shopify delivers at least once
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for delivery in deliveries:
        queue.put_nowait(delivery)
    latencies: list[float] = []
    retried = 0
    url = f"{bot.url}/webhooks/shopify"

    # aiohttp's client, lighter than httpx: the senders share the bot's one event loop
    # (and its two cores with everything else), so their cost counts against the rate.
    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal retried
        while not queue.empty():
            body, headers = queue.get_nowait()
            while True:  # like Shopify: anything but 2xx is delivered again
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
                if response.status == 200:
                    break
                assert response.status == 503, response.status
                retried += 1

    connector = aiohttp.TCPConnector(limit=SENDERS)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(SENDERS)))
        wall = time.perf_counter() - started
    # 10,000 deliveries and their targeted diffs: minutes on a loaded 2-core machine
    await bot.settle(hang_guard=900)

    rate = len(deliveries) / wall
    print(
        f"\n{len(deliveries)} webhooks ({EVENTS} events, each twice) from {SENDERS} senders "
        f"in {wall:.2f} s = {rate:.0f}/s, {retried} answered 503 and re-sent: "
        f"{_percentiles(latencies)}"
    )
    records = await bot.ledger.list_deliveries(limit=100_000)
    by_event = Counter(r.event_id for r in records if r.outcome != "duplicate")
    assert len(by_event) == EVENTS, "an event was lost"
    assert set(by_event.values()) == {1}, "an event was taken twice"
    outcomes = Counter(r.outcome for r in records)
    # every delivery answered 200 is a row; one answered 503 may have landed late
    assert len(deliveries) <= len(records) <= len(deliveries) + retried
    assert EVENTS <= outcomes["duplicate"] <= EVENTS + retried, "a duplicate went unrecorded"
    assert set(outcomes) <= {"processed", "stale", "duplicate"}, outcomes
    assert outcomes["processed"] + outcomes["stale"] == EVENTS
    runs = bot.service.registry.get_sample_value(
        "driftwatch_job_runs_total", {"job": "targeted-diff", "outcome": "ok"}
    )
    assert runs is not None
    assert runs >= 1, "the level changes reached a targeted diff"
    # The rate is printed, not asserted: how fast is a benchmark's verdict, and a floor
    # that holds on a quiet machine fails on a loaded CI one (issue 12).
