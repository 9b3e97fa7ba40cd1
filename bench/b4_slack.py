"""B4, Slack responsiveness: signed slash commands over HTTP to the running
``bot.service.Service`` (the real bolt app at ``/slack/events``), its ledger holding N
levels with a week of history.

* **Ack:** bursts of C ``/drift SKU`` commands sent at once from another process
  (:mod:`bench.b4_sender`, so the load generator does not share the bot's event loop);
  each one's time to the HTTP answer (Slack's ack) is measured by that sender, and
  the figure is the median of the bursts' p99s (every answer is sent between two
  bursts). The fake Shopify, WMS and Slack run in a third process
  (:mod:`bench.b4_fakes`): the bot's process holds only the bot (its answers through
  the response_url are received and validated by the fake Slack elsewhere, as Slack's
  own servers would).
* **Full answer with its chart:** ``/drift SKU`` answers privately through the
  ``response_url`` (no chart); the chart comes with its "Share in channel" button (the
  report posted in the channel and the 7-day chart uploaded in its thread). A sample is
  the time from sending ``/drift SKU`` until the chart's upload completes at the fake
  Slack, the click sent as soon as the private answer arrives.

Baseline: the same commands answered with no ledger history (an empty week), to show
what the history and the 500,000 levels cost.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._common import Check, Outcome, Stopwatch, median, percentile
from bench.b4_fakes import SECRET
from bench.child import Child
from bot.service import Service
from ledger import Ledger, LevelObservation
from monitors.config import config_from_dict

LOCATIONS = ("east", "west", "north", "south", "central")


@dataclass(frozen=True)
class Size:
    ledger_skus: int
    concurrent: int
    samples: int
    #: bursts of ``concurrent`` commands; the figure is the median of their p99s
    bursts: int = 5


FULL = Size(ledger_skus=50_000, concurrent=200, samples=20)  # × 5 locations × 2 systems
QUICK = Size(ledger_skus=500, concurrent=50, samples=5, bursts=2)


def _observations(skus: int, now: datetime) -> list[list[LevelObservation]]:
    """Batches for record_levels, oldest first: every level a week ago, then a change
    a day for one level in a hundred, and hourly changes for the SKUs asked about."""
    batches: list[list[LevelObservation]] = []
    week_ago = now - timedelta(days=7)

    def obs(system: str, i: int, loc: str, q: int, at: datetime) -> LevelObservation:
        return LevelObservation(system, f"SKU-{i:06d}", loc, "available", q, at, "poll")

    batches.append(
        [
            obs(s, i, loc, 20, week_ago)
            for i in range(skus)
            for loc in LOCATIONS
            for s in ("shopify", "wms")
        ]
    )
    for day in range(1, 7):
        at = week_ago + timedelta(days=day)
        batches.append(
            [
                obs(s, i, loc, 20 + day, at)
                for i in range(0, skus, 100)
                for loc in LOCATIONS
                for s in ("shopify", "wms")
            ]
        )
    for hour in range(1, 7 * 24):
        at = week_ago + timedelta(hours=hour)
        batches.append(
            [
                obs(s, i, "east", 20 + hour % 9 + (s == "shopify"), at)
                for i in range(20)
                for s in ("shopify", "wms")
            ]
        )
    return batches


async def _measure(size: Size, history: bool, tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with (
        Child("bench.b4_fakes", greets=True) as fakes,
        Child("bench.b4_sender") as load,
        Ledger.from_url(f"sqlite:///{tmp / f'b4-{history}.db'}") as ledger,
    ):
        await ledger.upgrade()
        levels = 0
        if history:
            with Stopwatch() as fill:
                for batch in _observations(size.ledger_skus, datetime.now(UTC)):
                    recorded = await ledger.record_levels(batch)
                    levels = max(levels, recorded.observed)
            result["fill_s"] = round(fill.seconds, 1)
            result["levels"] = levels
        config = config_from_dict(fakes.greeting["config"])
        service = Service(config, fakes.greeting["environ"], ledger)
        url = await service.start(host="127.0.0.1", port=0)
        try:
            await asyncio.wait_for(service.diff_done.wait(), 120)
            await service.idle()

            async def full_answer(sku: str) -> float:
                return float(
                    (await fakes.ask({"cmd": "full_answer", "url": url, "sku": sku}))["seconds"]
                )

            await full_answer("SKU-000000")  # warm-up: fonts, caches
            result["bursts"] = []
            for _ in range(size.bursts):
                skus = [f"SKU-{n % 20:06d}" for n in range(size.concurrent)]
                bodies = (await fakes.ask({"cmd": "bodies", "skus": skus}))["bodies"]
                answer = await load.ask({"url": url, "secret": SECRET, "bodies": bodies})
                acks = [(float(s), int(status)) for s, status in answer["acks"]]
                bad = [status for _, status in acks if status != 200]
                if bad:
                    raise RuntimeError(f"B4: acks failed: {bad[:5]}")
                result["bursts"].append([s for s, _ in acks])
                await service.idle()  # every answer of the burst sent before the next
            result["full"] = [await full_answer(f"SKU-{n % 20:06d}") for n in range(size.samples)]
        finally:
            await service.stop()
    return result


def _burst_p99(result: dict[str, Any]) -> float:
    """The median over the bursts of each burst's p99 (one burst is one sample of the
    machine's mood; several make the figure steadier)."""
    return median([percentile(burst, 99) for burst in result["bursts"]])


async def run(size: Size) -> Outcome:
    out = Outcome()
    with tempfile.TemporaryDirectory(prefix="bench-b4-") as tmp:
        loaded = await _measure(size, True, Path(tmp))
        empty = await _measure(size, False, Path(tmp))
    ack_p99 = 1000 * _burst_p99(loaded)
    every_ack = [s for burst in loaded["bursts"] for s in burst]
    full_p95 = percentile(loaded["full"], 95)
    out.facts.update(
        {
            "ledger_levels": loaded["levels"],
            "ledger_fill_s": loaded["fill_s"],
            "concurrent_commands": size.concurrent,
            "bursts": size.bursts,
            "ack_p50_ms": round(1000 * percentile(every_ack, 50), 1),
            "ack_p99_ms_per_burst": ", ".join(
                f"{1000 * percentile(b, 99):.0f}" for b in loaded["bursts"]
            ),
            "ack_p99_ms": round(ack_p99, 1),
            "full_answer_samples": size.samples,
            "full_answer_p50_s": round(percentile(loaded["full"], 50), 2),
            "full_answer_p95_s": round(full_p95, 2),
            "baseline_empty_ledger_ack_p99_ms": round(1000 * _burst_p99(empty), 1),
            "baseline_empty_ledger_full_p95_s": round(percentile(empty["full"], 95), 2),
        }
    )
    out.checks += [
        Check(
            f"B4 ack p99, {size.concurrent} concurrent /drift",
            ack_p99,
            "ms",
            "<=",
            150.0,
            1000 * _burst_p99(empty),
        ),
        Check(
            "B4 /drift SKU full answer with its chart p95",
            full_p95,
            "s",
            "<=",
            1.5,
            percentile(empty["full"], 95),
        ),
    ]
    return out


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL)
