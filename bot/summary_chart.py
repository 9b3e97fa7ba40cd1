"""The weekly summary's chart: incidents opened per day, by kind, this week next to last
week, as PNG bytes. Rendered with matplotlib's object-oriented API off the event loop
(see :mod:`bot.charts`)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from datetime import date, tzinfo
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts import upload_chart
from bot.render.summary import WEEKLY_CHART
from ledger import Ledger
from monitors.reports import WeeklySummary, weekly_summary

BAR_WIDTH = 0.38


def render_weekly_png(summary: WeeklySummary) -> bytes:
    """Stacked bars per day: last week (faded, left) and this week (right), by kind."""
    this, last = summary.this_week, summary.last_week
    kinds = sorted({k for day in (*this.daily, *last.daily) for k in day})
    figure = Figure(figsize=(8, 3.8), dpi=110)
    FigureCanvasAgg(figure)
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
                label=kind.replace("_", " ") if label == "this week" else None,
            )
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        for d, total in zip(days, bottom, strict=True):
            if total:
                ax.text(d + offset, total, str(total), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(days, [f"{name}\nlast | this" for name in summary.day_labels], fontsize=8)
    ax.set_ylabel("incidents opened")
    ax.set_ylim(bottom=0, top=max(1, _tallest(summary)) * 1.18)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    total_this, total_last = this.incidents_opened, last.incidents_opened
    ax.set_title(
        f"Incidents opened per day: this week {total_this}, last week {total_last} (faded)",
        fontsize=11,
        loc="left",
    )
    ax.grid(True, axis="y", alpha=0.3)
    if kinds:
        ax.legend(loc="upper right", fontsize=8, frameon=False, ncols=min(len(kinds), 4))
    else:
        ax.text(0.5, 0.5, "no incident in either week", ha="center", transform=ax.transAxes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _tallest(summary: WeeklySummary) -> int:
    days = (*summary.this_week.daily, *summary.last_week.daily)
    return max((sum(day.values()) for day in days), default=0)


async def render_weekly_chart(summary: WeeklySummary) -> bytes:
    """:func:`render_weekly_png` in a worker thread."""
    return await asyncio.to_thread(render_weekly_png, summary)


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
        f"Incidents opened per day, week of {start.isoformat()} vs the week before",
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
        summary = await weekly_summary(self._ledger, week, self._tz)
        await upload_weekly_chart(self._client, channel, ts, summary)
