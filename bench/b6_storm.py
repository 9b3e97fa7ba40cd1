"""B6, incident storm: N SKUs drift at once (Shopify over the WMS at one location, plus a
few undersold at another). The drifts go through the incident pipeline
(``monitors.pipeline``: evaluate → group → mute → dedupe → notify) into the ledger's
outbox, and the outbox worker (``bot.slack.outbox.OutboxWorker``, slack_sdk's real client)
delivers them to the fake Slack, which allows 1 post per second per channel (burst 3).

The fake Slack and the worker share a :class:`~connectors.clock.ManualClock`; the worker
is run every 2 clock seconds, as ``driftwatch serve`` runs it, until the outbox is empty.

Baseline: one message per drift, as an alerting script without grouping sends, paced at
the channel's 1 message per second.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bench._common import Check, Outcome, Stopwatch
from bot.slack.outbox import OutboxWorker
from connectors.clock import ManualClock
from connectors.levels import Level
from ledger import Ledger
from monitors.drift import DiffRules, SystemRules, diff
from monitors.pipeline import Scope, build_pipeline
from sandbox.slack import FakeSlack

CHANNEL = "C0STORM01"
TOKEN = "xoxb-bench-storm"
OUTBOX_EVERY = 2.0
RULES = DiffRules(
    systems={
        "shopify": SystemRules("shopify", "storefront", ("available", "committed")),
        "wms": SystemRules("wms", "warehouse", ("available", "committed")),
    },
    source_of_truth=("wms",),
)


@dataclass(frozen=True)
class Size:
    skus: int


FULL = Size(10_000)
QUICK = Size(1_000)


def storm(skus: int, now: datetime) -> list[Level]:
    levels: list[Level] = []
    for i in range(skus):
        sku = f"SKU-{i:06d}"
        location = "east" if i % 10 else "west"
        shop = 25 if location == "east" else 5
        levels.append(Level("shopify", sku, location, {"available": shop, "committed": 0}, now))
        levels.append(Level("wms", sku, location, {"available": 10, "committed": 0}, now))
    return levels


async def run(size: Size) -> Outcome:
    out = Outcome()
    clock = ManualClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    slack = FakeSlack(bot_token=TOKEN, clock=clock, channels={CHANNEL: "ops-inventory"})
    await slack.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-b6-") as tmp:
            async with Ledger.from_url(f"sqlite:///{Path(tmp) / 'b6.db'}") as ledger:
                await ledger.upgrade()
                drifts = diff(storm(size.skus, clock.now()), RULES, now=clock.now())
                with Stopwatch() as pipeline_wall:
                    await build_pipeline().run(
                        ledger,
                        drifts,
                        scope=Scope(systems=frozenset({"shopify", "wms"}), skus=None),
                        now=clock.now(),
                        channel=CHANNEL,
                    )
                client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
                worker = OutboxWorker(ledger, client, clock)
                start = clock.now()
                with Stopwatch() as deliver_wall:
                    for _ in range(1000):
                        await worker.deliver_due()
                        if (await ledger.outbox_stats()).pending == 0:
                            break
                        clock.advance(OUTBOX_EVERY)
                stats = await ledger.outbox_stats()
                incidents = await ledger.list_incidents()
        delivered_after = (clock.now() - start).total_seconds()
    finally:
        await slack.stop()
    posts = [c for c in slack.requests if c.method == "chat.postMessage"]
    limited = [c for c in slack.requests if c.status == 429]
    messages = slack.messages(CHANNEL)
    out.facts.update(
        {
            "skus_drifting": size.skus,
            "drifts": len(drifts),
            "incidents": len(incidents),
            "pipeline_wall_s": round(pipeline_wall.seconds, 2),
            "deliver_wall_s": round(deliver_wall.seconds, 2),
            "delivered_within_clock_s": delivered_after,
            "post_calls": len(posts),
            "outbox_pending": stats.pending,
            "outbox_dead": stats.dead,
            "baseline_messages": len(drifts),
            "baseline_minutes_at_1_per_s": round(len(drifts) / 60, 1),
        }
    )
    out.checks += [
        Check("B6 Slack messages for the storm", len(messages), "", "<=", 5, len(drifts)),
        Check("B6 Slack 429 answers", len(limited), "", "==", 0),
    ]
    return out


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL)
