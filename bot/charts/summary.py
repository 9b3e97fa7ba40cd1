"""The reports' charts, as PNG bytes, and the outbox hooks that upload them into the
report's thread: the weekly summary's (incidents opened per day, by kind, this week next
to last week) and the daily adjustment report's (adjustments and net units by reason
code, the day next to the same weekday a week before, flagged SKUs called out). Rendered
with matplotlib's object-oriented API off the event loop (see :mod:`bot.charts.sku`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts.style import drawable, legend_below, new_figure, styled, to_png, wrapped
from bot.charts.upload import upload_chart
from bot.charts.worker import off_loop
from bot.slack.render.summary import DAILY_CHART, WEEKLY_CHART
from ledger import Ledger
from monitors.adjustments import REASON_CODES
from monitors.mrkdwn import plain
from monitors.reports import (
    AdjustmentReport,
    AdjustmentRules,
    WeeklySummary,
    daily_adjustments,
    weekly_summary,
)

BAR_WIDTH = 0.38


def render_weekly_png(summary: WeeklySummary) -> bytes:
    """:func:`weekly_figure` as PNG bytes."""
    return to_png(weekly_figure(summary))


@styled()
def weekly_figure(summary: WeeklySummary) -> Figure:
    """Stacked bars per day: last week (faded, left) and this week (right), by kind."""
    this, last = summary.this_week, summary.last_week
    kinds = sorted({k for day in (*this.daily, *last.daily) for k in day})
    figure = new_figure(3.6)
    ax = figure.add_subplot()
    days = list(range(len(this.daily)))
    colors = {kind: f"C{i % 10}" for i, kind in enumerate(kinds)}
    for offset, week, alpha, label in (
        (-BAR_WIDTH / 2, last, 0.35, "last week"),
        (BAR_WIDTH / 2, this, 1.0, "this week"),
    ):
        bottom = [0] * len(days)
        for kind in kinds:
            heights = [day.get(kind, 0) for day in week.daily]
            ax.bar(
                [d + offset for d in days],
                heights,
                BAR_WIDTH,
                bottom=bottom,
                color=colors[kind],
                alpha=alpha,
                label=drawable(kind.replace("_", " ")) if label == "this week" else None,
            )
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        for d, total in zip(days, bottom, strict=True):
            if total:
                ax.text(d + offset, total, str(total), ha="center", va="bottom", fontsize=10)
    ax.set_xticks(days, [drawable(name) for name in summary.day_labels])
    ax.set_ylabel("incidents opened")
    ax.set_ylim(bottom=0, top=max(1, _tallest(summary)) * 1.18)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    total_this, total_last = this.incidents_opened, last.incidents_opened
    ax.set_title(
        wrapped(
            f"Incidents opened per day{_where(summary)}: this week {total_this}, "
            f"last week {total_last} (faded, left of each day)"
        ),
        loc="left",
    )
    ax.grid(True, axis="y", alpha=0.3)
    if not kinds:
        ax.text(0.5, 0.5, "no incident in either week", ha="center", transform=ax.transAxes)
    legend_below(figure, ax)
    return figure


def _where(summary: WeeklySummary) -> str:
    """`` in shopify_eu`` for a store's own summary; nothing for the deployment's."""
    return f" in {', '.join(summary.systems)}" if summary.systems else ""


def _tallest(summary: WeeklySummary) -> int:
    days = (*summary.this_week.daily, *summary.last_week.daily)
    return max((sum(day.values()) for day in days), default=0)


async def render_weekly_chart(summary: WeeklySummary) -> bytes:
    """:func:`render_weekly_png` in a worker thread."""
    return await off_loop(render_weekly_png, summary)


async def upload_weekly_chart(
    client: AsyncWebClient, channel: str, thread_ts: str, summary: WeeklySummary
) -> None:
    """Render the chart and upload it into the summary's thread."""
    png = await render_weekly_chart(summary)
    start = summary.this_week.start.astimezone(summary.tz).date()
    await upload_chart(
        client,
        channel,
        thread_ts,
        png,
        f"weekly-summary-{start.isoformat()}.png",
        f"Incidents opened per day{_where(summary)}, week of {start.isoformat()} "
        "vs the week before",
    )


class WeeklyChart:
    """An outbox hook: once a weekly summary is posted, its chart goes into the thread.

    The summary is computed again from the ledger for the week the payload names (a
    past week: the figures are the ones the message shows)."""

    def __init__(self, ledger: Ledger, client: AsyncWebClient, tz: tzinfo) -> None:
        self._ledger = ledger
        self._client = client
        self._tz = tz

    async def __call__(self, payload: Mapping[str, Any], channel: str, ts: str) -> None:
        chart = payload.get("chart")
        if not isinstance(chart, Mapping) or chart.get("kind") != WEEKLY_CHART:
            return
        week = date.fromisoformat(str(chart["week_start"]))
        systems = chart.get("systems")  # a store's own summary: its systems only
        mine = [str(s) for s in systems] if isinstance(systems, list) else None
        summary = await weekly_summary(self._ledger, week, self._tz, mine)
        await upload_weekly_chart(self._client, channel, ts, summary)


# --- the daily adjustment report's chart --------------------------------------------------

#: flagged SKUs named next to a reason's bar, at most
CALLOUT_SKUS = 3
FLAG_WORDS = {"repeated": "repeated", "large": "large", "off_truth": "outside the source of truth"}


@dataclass(frozen=True)
class ReasonTally:
    """One reason code's adjustments on the day and on the same weekday a week before.

    ``net`` sums the known changes (an adjustment that only set a new count has none);
    ``flagged`` names the SKUs among the day's adjustments that a flag points at."""

    reason: str
    count: int
    last_count: int
    net: int
    last_net: int
    flagged: tuple[str, ...]

    @property
    def label(self) -> str:
        return REASON_CODES.get(self.reason, (self.reason.replace("_", " ").capitalize(),))[0]


def reason_tallies(day: AdjustmentReport, last_week: AdjustmentReport) -> list[ReasonTally]:
    """Per reason code used on either day: the day's busiest first."""
    counts, last_counts = day.by_reason, last_week.by_reason
    nets, last_nets = _net_units(day), _net_units(last_week)
    by_id = {a.id: a for a in day.adjustments}
    flagged: dict[str, set[str]] = defaultdict(set)
    for flag in day.flags:
        for adjustment_id in flag.adjustment_ids:
            if adjustment_id in by_id:
                flagged[by_id[adjustment_id].reason_code].add(flag.sku)
    reasons = sorted(
        {*counts, *last_counts},
        key=lambda r: (-counts.get(r, 0), -last_counts.get(r, 0), r),
    )
    return [
        ReasonTally(
            reason=r,
            count=counts.get(r, 0),
            last_count=last_counts.get(r, 0),
            net=nets.get(r, 0),
            last_net=last_nets.get(r, 0),
            flagged=tuple(sorted(flagged.get(r, ()))),
        )
        for r in reasons
    ]


def _net_units(report: AdjustmentReport) -> dict[str, int]:
    net: dict[str, int] = defaultdict(int)
    for a in report.adjustments:
        if a.delta is not None:
            net[a.reason_code] += a.delta
    return net


def _flagged_skus(report: AdjustmentReport) -> str:
    """``MUG (large, repeated); TEE (outside the source of truth)``."""
    kinds: dict[str, set[str]] = defaultdict(set)
    for flag in report.flags:
        kinds[flag.sku].add(FLAG_WORDS.get(flag.kind, flag.kind))
    return "; ".join(
        f"{plain(sku, 30)} ({', '.join(sorted(words))})" for sku, words in sorted(kinds.items())
    )


def _day_label(report: AdjustmentReport, tz: tzinfo) -> str:
    day = report.start.astimezone(tz)
    return f"{day:%a %b} {day.day}"


def render_daily_png(day: AdjustmentReport, last_week: AdjustmentReport, tz: tzinfo) -> bytes:
    """:func:`daily_figure` as PNG bytes."""
    return to_png(daily_figure(day, last_week, tz))


@styled()
def daily_figure(day: AdjustmentReport, last_week: AdjustmentReport, tz: tzinfo) -> Figure:
    """Horizontal bars per reason code: adjustments (left) and net units (right), the day
    (solid) above the same weekday last week (faded); flagged SKUs in red by their reason."""
    tallies = reason_tallies(day, last_week)
    this_label, last_label = _day_label(day, tz), _day_label(last_week, tz)
    figure = new_figure(2.2 + 0.6 * max(len(tallies), 2))
    count_ax, net_ax = figure.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    rows = list(range(len(tallies)))
    solid = [r - BAR_WIDTH / 2 for r in rows]
    faded = [r + BAR_WIDTH / 2 for r in rows]
    count_ax.barh(solid, [t.count for t in tallies], BAR_WIDTH, color="C0", label=this_label)
    count_ax.barh(
        faded,
        [t.last_count for t in tallies],
        BAR_WIDTH,
        color="C0",
        alpha=0.35,
        label=last_label,
    )
    tallest = max((max(t.count, t.last_count) for t in tallies), default=0)
    for t, y_solid, y_faded in zip(tallies, solid, faded, strict=True):
        count_ax.text(t.count, y_solid, f" {t.count}", va="center", fontsize=10)
        count_ax.text(
            t.last_count, y_faded, f" {t.last_count}", va="center", fontsize=10, color="0.45"
        )
        if t.flagged:
            names = ", ".join(plain(sku, 16) for sku in t.flagged[:CALLOUT_SKUS])
            more = len(t.flagged) - CALLOUT_SKUS
            names += f" +{more}" if more > 0 else ""
            count_ax.annotate(
                drawable(f"flagged: {names}"),
                (t.count, y_solid),
                xytext=(18, 0),
                textcoords="offset points",
                va="center",
                fontsize=10,
                color="C3",
            )
    count_ax.set_xlim(0, max(1, tallest) * 1.9)
    count_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    count_ax.set_yticks(rows, [drawable(plain(t.label, 22)) for t in tallies])
    pad = 0.5 if len(tallies) < 2 else 0.0  # one reason: bars as thin as with two
    count_ax.set_ylim(len(tallies) - 0.5 + pad, -0.5 - pad)  # the busiest on top
    count_ax.set_xlabel("adjustments")
    count_ax.grid(True, axis="x", alpha=0.3)

    nets = [t.net for t in tallies]
    last_nets = [t.last_net for t in tallies]
    widest = max((abs(v) for v in (*nets, *last_nets)), default=0) or 1
    net_ax.barh(solid, nets, BAR_WIDTH, color=["C2" if v >= 0 else "C3" for v in nets])
    net_ax.barh(
        faded,
        last_nets,
        BAR_WIDTH,
        color=["C2" if v >= 0 else "C3" for v in last_nets],
        alpha=0.35,
    )
    for value, y, size, color in (
        *((v, y, 10, "black") for v, y in zip(nets, solid, strict=True)),
        *((v, y, 10, "0.45") for v, y in zip(last_nets, faded, strict=True)),
    ):
        net_ax.text(
            value,
            y,
            f" {value:+d} ".replace("-", "\N{MINUS SIGN}") if value else " 0 ",
            va="center",
            fontsize=size,
            color=color,
            ha="left" if value >= 0 else "right",
        )
    net_ax.set_xlim(-widest * 1.45, widest * 1.45)
    net_ax.axvline(0, color="0.3", linewidth=0.8)
    net_ax.set_xlabel("net units")
    net_ax.grid(True, axis="x", alpha=0.3)
    net_ax.tick_params(axis="y", length=0)

    figure.suptitle(
        wrapped(
            f"Adjustments by reason code on {this_label}: {day.total} "
            f"(same day last week, {last_label}: {last_week.total}, faded)"
        ),
        x=0.01,
        ha="left",
    )
    notes = []
    if day.flags:
        notes.append(f"Flagged SKUs: {_flagged_skus(day)}")
    unknown = sum(1 for a in day.adjustments if a.delta is None)
    if unknown:
        notes.append(
            f"{unknown} adjustment{'s' if unknown != 1 else ''} set a new count without a "
            "known change: left out of the net units"
        )
    if notes:
        text = "\n".join(wrapped(note, 60) for note in notes)
        figure.supxlabel(text, x=0.01, ha="left", fontsize=11, color="0.25")
    # no legend: the title says which day is faded
    return figure


async def render_daily_chart(
    day: AdjustmentReport, last_week: AdjustmentReport, tz: tzinfo
) -> bytes:
    """:func:`render_daily_png` in a worker thread."""
    return await off_loop(render_daily_png, day, last_week, tz)


def same_day_last_week(day_start: datetime, tz: tzinfo) -> datetime:
    """The same wall time seven local days before ``day_start`` (DST-safe)."""
    local = day_start.astimezone(tz)
    return datetime.combine(local.date() - timedelta(days=7), local.time(), tz)


class DailyAdjustmentsChart:
    """An outbox hook: once a daily adjustment report is posted, its chart goes into the
    thread. The report is computed again from the ledger for the day the payload names,
    with the rules the service reports with, and so is the same weekday a week before. A
    day without adjustments gets no chart (its message says so, and carries no marker)."""

    def __init__(
        self, ledger: Ledger, client: AsyncWebClient, tz: tzinfo, rules: AdjustmentRules
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._tz = tz
        self._rules = rules

    async def __call__(self, payload: Mapping[str, Any], channel: str, ts: str) -> None:
        chart = payload.get("chart")
        if not isinstance(chart, Mapping) or chart.get("kind") != DAILY_CHART:
            return
        start = datetime.fromisoformat(str(chart["day_start"])).astimezone(self._tz)
        rules = self._rules
        systems = chart.get("systems")
        if isinstance(systems, list):  # a store's own report: its adjustments only
            rules = replace(rules, systems=frozenset(str(s) for s in systems))
        day = await daily_adjustments(self._ledger, start, rules)
        if not day.total:
            return
        before = await daily_adjustments(self._ledger, same_day_last_week(start, self._tz), rules)
        png = await render_daily_chart(day, before, self._tz)
        iso = start.date().isoformat()
        await upload_chart(
            self._client,
            channel,
            ts,
            png,
            f"daily-adjustments-{iso}.png",
            f"Adjustments by reason code on {iso} vs the same day last week",
        )
