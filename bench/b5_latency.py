"""B5, detection latency: from a change in the fake Shopify that creates a drift, through
its signed ``inventory_levels/update`` webhook to the running ``bot.service.Service``
(receiver → debounced targeted diff → incident pipeline → outbox), to the alert posted
in the fake Slack.

The service runs on a :class:`~connectors.clock.ManualClock` shared with the fake Slack:
the debounce wait (``schedules.debounce_seconds``, 2 s here) advances the clock instead
of sleeping. A sample's latency is the wall time from the change to the
``chat.postMessage`` plus the clock seconds the service waited on the way.

Baseline: polling every 3 minutes, no webhooks. A change waits for the next poll (its
phase in the cycle spread evenly over the samples), then one full diff and delivery,
whose wall time is measured here on the same world.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import Check, Outcome, Stopwatch, percentile
from bot.cli.demo import demo_config
from bot.service import Service
from connectors.clock import ManualClock
from ledger import Ledger
from monitors.config import config_from_dict
from sandbox.shopify import FakeShopify
from sandbox.slack import FakeSlack
from sandbox.wms import FakeWMS
from sandbox.world import ALERTS_CHANNEL, SLACK_TOKEN, WMS_TOKEN, World

POLL_SECONDS = 180.0
DEBOUNCE = 2


@dataclass(frozen=True)
class Size:
    skus: int
    samples: int


FULL = Size(skus=200, samples=20)
QUICK = Size(skus=50, samples=5)


async def _world(skus: int, clock: ManualClock) -> tuple[World, list[str], str]:
    shopify = FakeShopify()
    wms = FakeWMS(token=WMS_TOKEN)
    slack = FakeSlack(bot_token=SLACK_TOKEN, clock=clock, channels={ALERTS_CHANNEL: "ops"})
    await shopify.start()
    await wms.start()
    await slack.start()
    world = World(shopify, wms, slack)
    gid = shopify.add_location("Brooklyn DC")
    world.locations["east"] = (gid, "WH-EAST")
    items = []
    for i in range(skus):
        sku = f"SKU-{i:04d}"
        items.append(shopify.add_item(sku, title=sku))
        shopify.set_quantities(items[-1], gid, available=20, committed=0)
        wms.set_level(sku, "WH-EAST", pickable=20, allocated=0, on_hand=20, damaged=0)
    return world, items, gid


async def run(size: Size) -> Outcome:
    out = Outcome()
    clock = ManualClock()
    world, items, gid = await _world(size.skus, clock)
    data: dict[str, Any] = demo_config(world)
    data["schedules"] = {"debounce_seconds": DEBOUNCE}
    config = config_from_dict(data)
    environ = {
        "DEMO_SHOPIFY_ACCESS_TOKEN": world.shopify_token,
        "DEMO_SHOPIFY_WEBHOOK_SECRET": world.shopify.webhooks.secret,
        "DEMO_WMS_TOKEN": WMS_TOKEN,
        "DEMO_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "DEMO_SLACK_SIGNING_SECRET": world.slack.signing_secret,
    }
    latencies: list[float] = []
    polls: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-b5-") as tmp:
            async with Ledger.from_url(f"sqlite:///{Path(tmp) / 'b5.db'}") as ledger:
                await ledger.upgrade()
                service = Service(config, environ, ledger, clock=clock)
                url = await service.start(host="127.0.0.1", port=0)
                world.shopify.webhooks.subscribe(
                    "inventory_levels/update", f"{url}/webhooks/shopify"
                )
                try:
                    await asyncio.wait_for(service.diff_done.wait(), 120)
                    await service.idle()
                    for n in range(size.samples):
                        latencies.append(await _sample(world, service, clock, items[n], gid, n))
                    for _ in range(3):  # the baseline's poll: a full diff and delivery
                        with Stopwatch() as sw:
                            await service.diff_job.run()
                            await service.outbox.deliver_due()
                        polls.append(sw.seconds)
                finally:
                    await service.stop()
    finally:
        await world.slack.stop()
        await world.wms.stop()
        await world.shopify.stop()
    poll = sorted(polls)[len(polls) // 2]
    baseline = [POLL_SECONDS * (n + 0.5) / size.samples + poll for n in range(size.samples)]
    out.facts.update(
        {
            "skus": size.skus,
            "samples": size.samples,
            "debounce_s": DEBOUNCE,
            "latency_p50_s": round(percentile(latencies, 50), 2),
            "latency_p95_s": round(percentile(latencies, 95), 2),
            "latency_max_s": round(max(latencies), 2),
            "baseline_poll_every_s": POLL_SECONDS,
            "baseline_full_diff_and_deliver_s": round(poll, 2),
            "baseline_p95_s": round(percentile(baseline, 95), 1),
        }
    )
    out.checks.append(
        Check(
            "B5 webhook → Slack alert p95",
            percentile(latencies, 95),
            "s",
            "<=",
            3.0,
            percentile(baseline, 95),
        )
    )
    return out


async def _sample(
    world: World, service: Service, clock: ManualClock, item: str, gid: str, n: int
) -> float:
    sku = f"SKU-{n:04d}"
    waited = sum(clock.slept)
    found = asyncio.ensure_future(
        world.slack.wait_for_call(
            lambda c: c.method == "chat.postMessage" and sku in str(c.args.get("text", ""))
        )
    )
    start = time.perf_counter()
    world.shopify.set_quantities(item, gid, available=35)  # 15 over the WMS: oversell risk
    call = await asyncio.wait_for(found, 60)
    elapsed = time.perf_counter() - start
    if not call.ok:
        raise RuntimeError(f"B5: the alert for {sku} failed: {call.error}")
    await service.idle()
    return elapsed + (sum(clock.slept) - waited)


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL)
