"""The signal chain's charts, as PNG bytes: each hop's measured transit time against its
SLA (``/synchealth chain``, a hop's health alert, the packet), and each hop's daily drift
rate over 30 days (the weekly summary's thread, the Home tab, the packet). Rendered off
the event loop like every chart (:func:`bot.charts.sku.off_loop`); the outbox hooks that put
them in a thread live here too."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, DateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, PercentFormatter
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts.upload import upload_chart
from bot.charts.worker import off_loop
from bot.slack.render.summary import WEEKLY_CHART
from connectors.clock import Clock
from ledger import Incident, Ledger
from monitors.chain import FAMILY, ChainReport, HopStats, hops_from_config, measure_chain
from monitors.config import Config
from monitors.drift import DiffRules
from monitors.kpis import trend_days
from monitors.reports import week_bounds

SECOND = 1.0
#: where the transit axis is labelled: 1 s, 10 s, 1 min, 10 min, 1 h, 6 h, 1 d, 7 d
TICKS = (1.0, 10.0, 60.0, 600.0, 3600.0, 21_600.0, 86_400.0, 604_800.0)


def _duration(seconds: float, _pos: object = None) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds % 86_400 == 0:
        return f"{seconds / 86400:.0f} d"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.1f} d"


def render_chain_png(title: str, hops: Sequence[HopStats]) -> bytes:
    """One row per hop: p50 (solid bar), p95 (pale bar), max (diamond) on a log scale of
    seconds, the declared SLA as a red tick; never-arrived changes named on the right."""
    rows = max(len(hops), 1)
    figure = Figure(figsize=(8.5, 1.6 + 0.75 * rows), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ys = list(range(len(hops)))
    floor = SECOND
    widest = 60.0
    for y, stats in zip(ys, hops, strict=True):
        p50 = stats.p50.total_seconds() if stats.p50 is not None else None
        p95 = stats.p95.total_seconds() if stats.p95 is not None else None
        top = stats.max.total_seconds() if stats.max is not None else None
        sla = float(stats.hop.sla_seconds) if stats.hop.sla_seconds else None
        color = "C3" if stats.over_sla else "C0"
        if p95 is not None:
            ax.barh(y, max(p95, floor) - floor, left=floor, height=0.5, color=color, alpha=0.3)
        if p50 is not None:
            ax.barh(y, max(p50, floor) - floor, left=floor, height=0.5, color=color)
        if top is not None:
            ax.plot([max(top, floor)], [y], marker="D", color=color, markersize=6)
            if top < floor:
                ax.annotate(
                    "under 1 s: seen at the same poll",
                    (floor, y),
                    xytext=(10, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    color="0.35",
                )
        if sla is not None:
            ax.plot([sla, sla], [y - 0.38, y + 0.38], color="C3", linewidth=2.4)
            ax.annotate(
                f"SLA {_duration(sla)}",
                (sla, y - 0.38),  # the y axis runs downwards: above the tick
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
                color="C3",
            )
        widest = max([widest, *(v for v in (p95, top, sla) if v is not None)])
        note = f"{stats.changes} change{'s' if stats.changes != 1 else ''}"
        if stats.lost_share:
            note += f"\n{stats.lost_share:.0%} never arrived"
        if stats.pending:
            note += f"\n{stats.pending} in transit"
        if not stats.changes and not stats.pending:
            note = "no change measured"
        ax.annotate(
            note,
            (1.0, y),
            xycoords=("axes fraction", "data"),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color="C3" if stats.lost_share else "0.3",
        )
    ax.set_xscale("log")
    ax.set_xlim(floor, widest * 3)
    ax.xaxis.set_major_locator(FixedLocator([t for t in TICKS if t <= widest * 3]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_duration))
    labels = [
        f"{s.hop.name}" + (f"\n({s.hop.trigger})" if s.hop.trigger else "") for s in hops
    ] or ["no hop"]
    ax.set_yticks(ys or [0], labels, fontsize=9)
    ax.set_ylim(rows - 0.4, -0.7)
    ax.set_xlabel("transit time: p50 (bar), p95 (pale), max (◆); SLA in red")
    ax.grid(True, axis="x", alpha=0.3)
    if not hops:
        ax.text(0.5, 0.5, "no hop to measure", ha="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=11, loc="left")
    figure.tight_layout()
    figure.subplots_adjust(right=0.8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def render_hop_trend_png(
    title: str,
    days: Sequence[datetime],
    rates: Mapping[str, Sequence[float | None]],
    names: Mapping[str, str],
) -> bytes:
    """One line per hop: its daily drift rate (the share of SKU-time out of sync)."""
    figure = Figure(figsize=(8.5, 3.6), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    xs = [date2num(d) for d in days[:-1]]  # type: ignore[no-untyped-call]
    tallest = 0.0
    for i, (key, values) in enumerate(sorted(rates.items())):
        ys = [float("nan") if v is None else v for v in values]
        known = [v for v in values if v is not None]
        tallest = max([tallest, *known])
        last = f": {known[-1]:.1%} on the last day" if known else ": no data"
        label = f"{names.get(key, key)}{last}"
        ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.8, color=f"C{i % 10}", label=label)
    ax.set_ylim(0, min(1.05, max(0.05, tallest * 1.25)))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    if len(days) > 1:
        # the whole window, however few days have data (one point must not stretch it)
        ax.set_xlim(date2num(days[0]), date2num(days[-1]))  # type: ignore[no-untyped-call]
    locator = AutoDateLocator(maxticks=10)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(DateFormatter("%b %d"))  # type: ignore[no-untyped-call]
    ax.set_ylabel("share of SKU-time drifting")
    ax.grid(True, alpha=0.3)
    if rates:
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no hop to measure", ha="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=11, loc="left")
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def chain_title(report: ChainReport) -> str:
    days = round((report.end - report.start) / timedelta(days=1))
    return f"Signal chain: transit time per hop, last {days} days, against its SLA"


async def render_chain_chart(report: ChainReport) -> bytes:
    return await off_loop(render_chain_png, chain_title(report), list(report.hops))


async def render_hop_trend_chart(report: ChainReport, title: str | None = None) -> bytes:
    names = {s.hop.key: s.hop.name for s in report.hops}
    shown = title or f"Drift rate per hop, {len(report.days) - 1} days: which handoff is degrading"
    return await off_loop(
        render_hop_trend_png, shown, list(report.days), dict(report.drift_rates), names
    )


class HopTrendChart:
    """An outbox hook: once a weekly summary is posted, the 30-day drift rate per hop goes
    into its thread (next to the incidents chart). The hops are the deployment's: a
    store's own summary (its chart names ``systems``) gets none."""

    def __init__(
        self, config: Config, rules: DiffRules, ledger: Ledger, client: AsyncWebClient
    ) -> None:
        self._config = config
        self._rules = rules
        self._ledger = ledger
        self._client = client

    async def __call__(self, payload: Mapping[str, Any], channel: str, ts: str) -> None:
        chart = payload.get("chart")
        if not isinstance(chart, Mapping) or chart.get("kind") != WEEKLY_CHART:
            return
        if chart.get("systems"):
            return
        week = date.fromisoformat(str(chart["week_start"]))
        start, end = week_bounds(week, self._config.tz)
        report = await measure_chain(
            self._ledger,
            hops_from_config(self._config),
            self._rules,
            start=start,
            end=end,
            now=end,
            lost_after_seconds=self._config.chain.lost_after_seconds,
            days=trend_days(end, self._config.tz),
        )
        png = await render_hop_trend_chart(report)
        await upload_chart(
            self._client,
            channel,
            ts,
            png,
            f"hop-drift-{week.isoformat()}.png",
            f"Drift rate per hop, the 30 days to {end.date().isoformat()}",
        )


class HopAlertChart:
    """An outbox hook: a hop's over-SLA alert gets the chain chart in its thread."""

    def __init__(
        self,
        config: Config,
        rules: DiffRules,
        ledger: Ledger,
        client: AsyncWebClient,
        clock: Clock,
    ) -> None:
        self._config = config
        self._rules = rules
        self._ledger = ledger
        self._client = client
        self._clock = clock

    async def __call__(self, incident: Incident, channel: str, ts: str) -> None:
        if not incident.fingerprint.startswith(FAMILY):
            return
        now = self._clock.now()
        report = await measure_chain(
            self._ledger,
            hops_from_config(self._config),
            self._rules,
            start=now - timedelta(days=self._config.chain.window_days),
            end=now,
            now=now,
            lost_after_seconds=self._config.chain.lost_after_seconds,
        )
        png = await render_chain_chart(report)
        await upload_chart(self._client, channel, ts, png, "signal-chain.png", chain_title(report))
