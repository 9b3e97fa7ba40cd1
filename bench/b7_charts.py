"""B7, charts: ``bot.charts.sku.render_sku_chart`` (matplotlib's Agg canvas in the chart
worker process, ``bot.charts.sku.off_loop``) for a SKU with a week of history, while a
ticker on the event loop measures how late it wakes (event-loop lag).

Baseline: the same charts rendered on the event loop itself (``render_png`` called
directly), the lag a bot would show without the thread.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench._common import Check, Outcome, percentile
from bot.charts.sku import CHART_DAYS, compared_series, render_png, render_sku_chart
from ledger import LevelRow
from monitors.drift import DiffRules, SystemRules

NOW = datetime(2026, 11, 9, 9, 0, tzinfo=UTC)
RULES = DiffRules(
    systems={
        "shopify": SystemRules("shopify", "storefront", ("available", "committed")),
        "wms": SystemRules("wms", "warehouse", ("available", "committed")),
    },
    source_of_truth=("wms",),
)
TICK = 0.005


@dataclass(frozen=True)
class Size:
    charts: int
    changes_per_day: int


FULL = Size(charts=50, changes_per_day=48)
QUICK = Size(charts=10, changes_per_day=48)


def week_of_history(sku: str, changes_per_day: int) -> list[LevelRow]:
    rows: list[LevelRow] = []
    start = NOW - timedelta(days=CHART_DAYS)
    steps = CHART_DAYS * changes_per_day
    for n in range(steps):
        at = start + timedelta(days=CHART_DAYS) * n / steps
        for system in ("shopify", "wms"):
            for state in ("available", "committed"):
                q = 40 + (n * 7 + len(system)) % 23 if state == "available" else n % 3
                rows.append(LevelRow(system, sku, "east", state, q, at, "poll"))
    return rows


class LagMeter:
    """A ticker that asks to wake every ``TICK`` seconds and records how late it is."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, time.perf_counter() - before - TICK))

    def __enter__(self) -> LagMeter:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


async def _one(sku: str, rows: list[LevelRow], times: list[float]) -> None:
    start = time.perf_counter()
    await render_sku_chart(sku, rows, RULES, NOW, location="east")
    times.append(time.perf_counter() - start)


async def run(size: Size) -> Outcome:
    out = Outcome()
    rows = week_of_history("TEE-BLK-M", size.changes_per_day)
    await render_sku_chart("WARM-UP", rows, RULES, NOW, location="east")  # fonts, caches
    times: list[float] = []
    with LagMeter() as meter:
        await asyncio.sleep(TICK * 2)
        start = time.perf_counter()
        for _ in range(size.charts):  # one after another: each chart's own time
            await _one("TEE-BLK-M", rows, times)
        sequential_wall = time.perf_counter() - start
    with LagMeter() as concurrent_meter:  # all at once, as a storm of alerts would
        concurrent_times: list[float] = []
        await asyncio.gather(
            *(_one("TEE-BLK-M", rows, concurrent_times) for _ in range(size.charts))
        )
    series = compared_series(rows, RULES, NOW, "east")
    start_at = NOW - timedelta(days=CHART_DAYS)
    with LagMeter() as base_meter:
        await asyncio.sleep(TICK * 2)
        for _ in range(size.charts):
            render_png("baseline", series, start_at, NOW, "wms")
            await asyncio.sleep(0)
    lag = max(concurrent_meter.lags or [0.0])
    base_lag = max(base_meter.lags or [0.0])
    out.facts.update(
        {
            "charts": size.charts,
            "history_rows_per_chart": len(rows),
            "chart_p50_ms": round(1000 * percentile(times, 50), 1),
            "chart_p95_ms": round(1000 * percentile(times, 95), 1),
            "sequential_wall_s": round(sequential_wall, 2),
            "concurrent_p95_ms": round(1000 * percentile(concurrent_times, 95), 1),
            "sequential_lag_max_ms": round(1000 * max(meter.lags or [0.0]), 1),
            "sequential_lag_p99_ms": round(1000 * percentile(meter.lags, 99), 1),
            "concurrent_lag_p99_ms": round(1000 * percentile(concurrent_meter.lags, 99), 1),
            "baseline_on_loop_lag_max_ms": round(1000 * base_lag, 1),
        }
    )
    out.checks += [
        Check("B7 chart render p95", 1000 * percentile(times, 95), "ms", "<=", 250.0),
        Check(
            f"B7 event-loop lag (max) while {size.charts} charts render",
            1000 * lag,
            "ms",
            "<=",
            50.0,
            1000 * base_lag,
        ),
    ]
    return out


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL)
