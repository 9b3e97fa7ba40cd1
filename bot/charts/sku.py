"""The chart of a SKU's level per system, as the alert's thread shows it.

:class:`AlertChart` is an outbox hook: after an alert is posted, its chart is rendered
(off the loop, :mod:`bot.charts.worker`) from the ledger's level history, up to the
read the alert shows, and uploaded into the thread (:mod:`bot.charts.upload`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from matplotlib.axes import Axes
from matplotlib.dates import ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts.style import (
    axis_start,
    date_locator,
    drawable,
    legend_below,
    new_figure,
    styled,
    to_png,
    wrapped,
)
from bot.charts.upload import upload_chart
from bot.charts.worker import off_loop
from connectors.clock import Clock
from ledger import Incident, Ledger, LevelRow
from monitors.drift import DiffRules
from monitors.mrkdwn import plain

log = logging.getLogger("driftwatch.charts")

CHART_DAYS = 7
Series = dict[str, tuple[list[datetime], list[int]]]


def compared_series(
    rows: Sequence[LevelRow], rules: DiffRules, now: datetime, location: str | None
) -> Series:
    """Per system (per ``system @ location`` when ``location`` is None), the compared
    value (the sum of the system's compare states) each time it changed, up to ``now``."""
    return _series(rows, _compare_states(rules), now, location)


def _compare_states(rules: DiffRules) -> dict[str, tuple[str, ...]]:
    return {name: tuple(r.compare_states) for name, r in rules.systems.items()}


def _series(
    rows: Sequence[LevelRow],
    compare: Mapping[str, Sequence[str]],
    now: datetime,
    location: str | None,
) -> Series:
    states: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    out: Series = {}
    for row in sorted(rows, key=lambda r: r.observed_at):
        compared = compare.get(row.system)
        if compared is None or (location is not None and row.location != location):
            continue
        if row.state not in compared:
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


def chart_start(series: Series, start: datetime, now: datetime) -> datetime:
    """Where the time axis starts: ``start``, or just before the first observation when
    the history is younger than the window (a new install, a new SKU): the axis spans
    the data, with a margin of a twentieth of it before the first point, so no chart
    is mostly empty time."""
    return axis_start(min((xs[0] for xs, _ in series.values() if xs), default=None), start, now)


def render_png(
    title: str, series: Series, start: datetime, now: datetime, truth: str | None = None
) -> bytes:
    """:func:`sku_figure` as PNG bytes."""
    return to_png(sku_figure(title, series, start, now, truth))


def sku_figure(
    title: str, series: Series, start: datetime, now: datetime, truth: str | None = None
) -> Figure:
    """A step chart of ``series`` from ``start`` (or just before the first observation)
    to ``now``. Observations are dotted; the legend, below, says each value now."""
    start = chart_start(series, start, now)
    with styled():
        figure = new_figure(3.9)
        ax = figure.add_subplot()
        for name, (xs, ys) in sorted(series.items()):
            xs = [max(x, start) for x in xs]
            is_truth = truth is not None and name.split(" @ ")[0] == truth
            label = f"{name} (source of truth)" if is_truth else name
            label += f": {ys[-1]} now" if ys else ""
            (line,) = ax.step(
                date2num(xs),  # type: ignore[no-untyped-call]
                ys,
                where="post",
                label=drawable(label),
                linewidth=2.6 if is_truth else 1.8,
                linestyle="--" if is_truth else "-",
            )
            observed = [(x, y) for x, y in zip(xs, ys, strict=True) if x < now] or [
                (xs[-1], ys[-1])
            ]
            ax.plot(
                date2num([x for x, _ in observed]),  # type: ignore[no-untyped-call]
                [y for _, y in observed],
                linestyle="none",
                marker="o",
                markersize=4,
                color=line.get_color(),
            )
        if not series:
            ax.text(
                0.5, 0.5, "no level history yet", ha="center", va="center", transform=ax.transAxes
            )
        _mark_gaps(ax, series, truth, now)
        ax.set_xlim(start, now + (now - start) * 0.02)  # type: ignore[arg-type]
        tallest = max((max(ys) for _, ys in series.values() if ys), default=0)
        ax.set_ylim(bottom=0, top=max(1, tallest) * 1.3)
        locator = date_locator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        ax.set_ylabel("units")
        ax.set_title(wrapped(title), loc="left")
        ax.grid(True, alpha=0.3)
        legend_below(figure, ax)
    return figure


def _mark_gaps(ax: Axes, series: Series, truth: str | None, now: datetime) -> None:
    """On a one-location chart, the gap now between each system and the truth: a
    vertical arrow at the right edge, labelled with the signed difference."""
    if truth is None or truth not in series:
        return
    truth_now = series[truth][1][-1]
    x = float(date2num(now))  # type: ignore[no-untyped-call]
    for name, (_, ys) in series.items():
        gap = ys[-1] - truth_now if ys and name != truth else 0
        if not gap:
            continue
        ax.annotate(
            "",
            xy=(x, ys[-1]),
            xytext=(x, truth_now),
            arrowprops={"arrowstyle": "<->", "color": "C3", "linewidth": 1.2},
        )
        ax.annotate(
            f"gap {gap:+d}",
            xy=(x, (ys[-1] + truth_now) / 2),
            xytext=(-6, 0),
            textcoords="offset points",
            ha="right",
            va="center",
            fontsize=11,
            color="C3",
        )


async def render_sku_chart(
    sku: str,
    rows: Sequence[LevelRow],
    rules: DiffRules,
    now: datetime,
    *,
    location: str | None,
    truth: str | None = None,
) -> bytes:
    """The last :data:`CHART_DAYS` days of ``sku`` (at ``location``, or everywhere),
    the series included computed in the chart worker (plain data crosses over)."""
    truth = truth or (rules.source_of_truth[0] if rules.source_of_truth else None)
    compare = _compare_states(rules)
    return await off_loop(sku_chart_png, sku, list(rows), compare, now, location, truth)


def sku_chart_png(
    sku: str,
    rows: Sequence[LevelRow],
    compare: Mapping[str, Sequence[str]],
    now: datetime,
    location: str | None,
    truth: str | None,
) -> bytes:
    """The PNG of :func:`render_sku_chart`, from plain data (runs in the chart worker)."""
    series = _series(rows, compare, now, location)
    start = now - timedelta(days=CHART_DAYS)
    period = f"last {CHART_DAYS} days"
    if chart_start(series, start, now) > start:
        first = min(xs[0] for xs, _ in series.values() if xs)
        period = f"since first seen {first:%b} {first.day}, {first:%H:%M} UTC"
    title = f"{sku_title(sku, location)}: {period}, compared units per system"
    return render_png(title, series, start, now, truth)


def sku_title(sku: str, location: str | None) -> str:
    """The chart's title names the SKU (shortened if very long) and the location."""
    return plain(sku, 60) + (f" at {plain(location, 40)}" if location else "")


def snapshot_time(incident: Incident) -> datetime | None:
    """When the read the incident's alert shows was made (its latest observation)."""
    observed = (incident.details or {}).get("observed_at")
    if not isinstance(observed, dict):
        return None
    times = []
    for value in observed.values():
        try:
            times.append(datetime.fromisoformat(str(value)))
        except ValueError:
            continue
    return max(times) if times else None


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
        now = snapshot_time(incident) or self._clock.now()
        rows = await self._ledger.level_series(incident.sku, now - timedelta(days=CHART_DAYS))
        # "now" on the chart is the read the alert shows: no later observation
        rows = [r for r in rows if r.observed_at <= now]
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
            f"{incident.sku} at {incident.location}: units per system over time",
        )
