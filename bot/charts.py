"""Charts of a SKU's level per system, as PNG bytes, and their upload into a thread.

matplotlib's object-oriented API (``Figure`` + ``FigureCanvasAgg``) is thread-safe and
needs no global backend, so rendering runs off the event loop in ``asyncio.to_thread``.
``files_upload_v2`` returns no message ts, so the alert is posted first and the chart
goes into its thread.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from slack_sdk.web.async_client import AsyncWebClient

from connectors.clock import Clock
from ledger import Incident, Ledger, LevelRow
from monitors.drift import DiffRules

log = logging.getLogger("driftwatch.charts")

CHART_DAYS = 7
Series = dict[str, tuple[list[datetime], list[int]]]


def compared_series(
    rows: Sequence[LevelRow], rules: DiffRules, now: datetime, location: str | None
) -> Series:
    """Per system (per ``system @ location`` when ``location`` is None), the compared
    value (the sum of the system's compare states) each time it changed, up to ``now``."""
    states: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    out: Series = {}
    for row in sorted(rows, key=lambda r: r.observed_at):
        system_rules = rules.systems.get(row.system)
        if system_rules is None or (location is not None and row.location != location):
            continue
        if row.state not in system_rules.compare_states:
            continue
        key = (row.system, row.location)
        states[key][row.state] = row.quantity
        name = row.system if location is not None else f"{row.system} @ {row.location}"
        xs, ys = out.setdefault(name, ([], []))
        value = sum(states[key].values())
        if xs and xs[-1] == row.observed_at:
            ys[-1] = value
        else:
            xs.append(row.observed_at)
            ys.append(value)
    for xs, ys in out.values():
        if xs and xs[-1] < now:
            xs.append(now)
            ys.append(ys[-1])
    return out


def render_png(
    title: str, series: Series, start: datetime, now: datetime, truth: str | None = None
) -> bytes:
    """A step chart of ``series`` from ``start`` to ``now``, as PNG bytes."""
    figure = Figure(figsize=(8, 3.6), dpi=110)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for name, (xs, ys) in sorted(series.items()):
        xs = [max(x, start) for x in xs]
        is_truth = truth is not None and name.split(" @ ")[0] == truth
        label = f"{name} (source of truth)" if is_truth else name
        ax.step(
            date2num(xs),  # type: ignore[no-untyped-call]
            ys,
            where="post",
            label=label,
            linewidth=2.6 if is_truth else 1.8,
            linestyle="--" if is_truth else "-",
        )
    if not series:
        ax.text(0.5, 0.5, "no level history yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(start, now)  # type: ignore[arg-type]
    ax.set_ylim(bottom=0)
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.set_ylabel("units")
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(loc="best", fontsize=8, frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


async def render_sku_chart(
    sku: str,
    rows: Sequence[LevelRow],
    rules: DiffRules,
    now: datetime,
    *,
    location: str | None,
    truth: str | None = None,
) -> bytes:
    """The last :data:`CHART_DAYS` days of ``sku`` (at ``location``, or everywhere)."""
    series = compared_series(rows, rules, now, location)
    where = f" at {location}" if location else ""
    title = f"{sku}{where}: last {CHART_DAYS} days, compared units per system"
    start = now - timedelta(days=CHART_DAYS)
    truth = truth or (rules.source_of_truth[0] if rules.source_of_truth else None)
    return await asyncio.to_thread(render_png, title, series, start, now, truth)


async def upload_chart(
    client: AsyncWebClient,
    channel: str,
    thread_ts: str,
    png: bytes,
    filename: str,
    title: str,
) -> None:
    await client.files_upload_v2(
        channel=channel,
        thread_ts=thread_ts,
        file=png,
        filename=filename,
        title=title,
        alt_txt=title,
    )


class AlertChart:
    """An outbox hook: after an alert is posted, its chart goes into the thread."""

    def __init__(self, ledger: Ledger, client: AsyncWebClient, rules: DiffRules, clock: Clock):
        self._ledger = ledger
        self._client = client
        self._rules = rules
        self._clock = clock

    async def __call__(self, incident: Incident, channel: str, ts: str) -> None:
        if incident.sku is None:
            return
        now = self._clock.now()
        rows = await self._ledger.level_series(incident.sku, now - timedelta(days=CHART_DAYS))
        truth = (incident.details or {}).get("truth_system")
        png = await render_sku_chart(
            incident.sku,
            rows,
            self._rules,
            now,
            location=incident.location,
            truth=str(truth) if truth else None,
        )
        await upload_chart(
            self._client,
            channel,
            ts,
            png,
            f"incident-{incident.id}-{incident.sku}.png",
            f"{incident.sku} at {incident.location}: the last {CHART_DAYS} days",
        )
