"""Charts of a SKU's level per system, as PNG bytes, and their upload into a thread.

Rendering runs off the event loop (:func:`off_loop`) in one worker *process*: matplotlib
(Agg, text layout) holds the GIL for long stretches, so renders on threads kept the
event loop waiting up to 100-180 ms while fifty charts rendered (bench B7). The render
functions are module-level and take plain data, so they pickle. Should the worker
process be unavailable or die, rendering falls back to one dedicated thread.
``files_upload_v2`` returns no message ts, so the alert is posted first and the chart
goes into its thread.

Every chart is drawn for where it is read: in a Slack thread, whose image preview is
about :data:`THREAD_WIDTH_PX` wide (the width of Slack's ``thumb_360`` preview). Figures
are :data:`FIGURE_WIDTH_IN` inches at :data:`DPI` (about twice that, for sharp text on
dense screens) and :func:`styled` sets fonts large enough to stay readable once scaled
down; legends sit below the plot (:func:`legend_below`), never over the data. Text comes
from outside (SKUs, system names): the font list falls back to matplotlib's bundled
*Last Resort* font, which draws a visible placeholder for any character the others lack
(an emoji in a SKU shows as a box, not as nothing), ``$`` is not read as math, and
:func:`drawable` replaces what no font has with U+FFFD.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import multiprocessing
import re
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import matplotlib
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from slack_sdk.web.async_client import AsyncWebClient

from connectors.clock import Clock
from ledger import Incident, Ledger, LevelRow
from monitors.drift import DiffRules
from monitors.mrkdwn import plain

log = logging.getLogger("driftwatch.charts")

P = ParamSpec("P")
R = TypeVar("R")

_PROCESS: ProcessPoolExecutor | None = None
_NO_PROCESS = False
_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftwatch-chart")


def _renderer() -> ProcessPoolExecutor | None:
    global _PROCESS
    if _NO_PROCESS:
        return None
    if _PROCESS is None:
        try:
            # forkserver: a clean process, not a fork of one running threads and a loop
            context = multiprocessing.get_context("forkserver")
            _PROCESS = ProcessPoolExecutor(max_workers=1, mp_context=context)
        except (OSError, ValueError) as exc:  # no process support here
            log.warning("charts render on a thread: no worker process (%s)", exc)
            return None
    return _PROCESS


async def off_loop(render: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``render(*args, **kwargs)`` in the chart worker process (else the chart thread),
    awaited from the event loop."""
    global _PROCESS, _NO_PROCESS
    loop = asyncio.get_running_loop()
    call = functools.partial(render, *args, **kwargs)
    pool = _renderer()
    if pool is not None:
        try:
            future = loop.run_in_executor(pool, call)  # submits (and starts the worker) now
        except (OSError, RuntimeError, BrokenProcessPool) as exc:
            # e.g. a __main__ script without the ``if __name__ == "__main__"`` guard,
            # which a fresh process cannot import: render on the thread from now on
            log.warning("charts render on a thread: no worker process (%s)", exc)
            _NO_PROCESS = True
            _PROCESS = None
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            try:
                return await future  # an error the render raised comes back as is
            except BrokenProcessPool:
                log.warning("the chart worker process died; rendering on a thread")
                _PROCESS = None
                pool.shutdown(wait=False, cancel_futures=True)
    return await loop.run_in_executor(_THREAD, call)


CHART_DAYS = 7
Series = dict[str, tuple[list[datetime], list[int]]]

# ------------------------------------------------------------------ style

#: about how wide Slack shows an image in a thread (its 360 px preview)
THREAD_WIDTH_PX = 360
#: every chart is this wide; at :data:`DPI` that is about twice the thread's width
FIGURE_WIDTH_IN = 5.4
DPI = 120
#: the smallest a legend or title may look at thread width, in pixels; ticks: one less
MIN_TEXT_PX = 11
#: characters of a title per line at the title's size and the figure's width
TITLE_CHARS = 48
#: characters of legend per row at the legend's size and the figure's width
LEGEND_CHARS = 56
#: fonts tried in order for each character; the last draws a placeholder for anything
FONT_FALLBACK = ("DejaVu Sans", "STIXGeneral", "Last Resort High-Efficiency")
STYLE: dict[str, Any] = {
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "figure.titlesize": 13,
    "text.parse_math": False,  # a ``$`` in a SKU is a dollar sign, not mathtext
}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@functools.cache
def font_families() -> tuple[str, ...]:
    """The fallback fonts this installation has (a missing one is skipped, not warned)."""
    found = []
    for family in FONT_FALLBACK:
        with contextlib.suppress(ValueError):
            font_manager.findfont(
                font_manager.FontProperties(family=[family]), fallback_to_default=False
            )
            found.append(family)
    return tuple(found) or ("DejaVu Sans",)


@functools.cache
def _covered() -> frozenset[int]:
    points: set[int] = set()
    for family in font_families():
        path = font_manager.findfont(font_manager.FontProperties(family=[family]))
        points |= set(font_manager.get_font(path).get_charmap())
    return frozenset(points)


def drawable(text: str) -> str:
    """``text`` with every character no fallback font has replaced by U+FFFD (with
    *Last Resort* installed, as matplotlib bundles it, nothing is replaced)."""
    covered = _covered()
    return "".join(ch if ch == "\n" or ord(ch) in covered else "\ufffd" for ch in text)


def wrapped(title: str, width: int = TITLE_CHARS) -> str:
    """A title in lines that fit the figure's width (matplotlib's own wrapping would
    read a ``$`` in a SKU as math), each character drawable."""
    return drawable("\n".join(textwrap.wrap(title, width, break_on_hyphens=False)[:3]))


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """matplotlib's settings for Driftwatch's charts (fonts, sizes, no mathtext)."""
    rc: dict[Any, Any] = dict(STYLE)
    rc["font.family"] = list(font_families())
    with matplotlib.rc_context(rc):
        yield


def new_figure(height_in: float) -> Figure:
    """A figure of the charts' width, laid out by matplotlib's constrained layout (which
    makes room for a legend outside the plot)."""
    figure = Figure(figsize=(FIGURE_WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def legend_below(figure: Figure, ax: Axes, *, max_cols: int = 2) -> Legend | None:
    """``ax``'s legend under the plot, centered, in as many columns as fit the width."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    widest = max(len(label) for label in labels)
    cols = max(1, min(max_cols, len(labels), LEGEND_CHARS // (widest + 6)))
    rows = -(-len(labels) // cols)
    # the plot keeps its height: the figure grows by the legend's rows
    figure.set_size_inches(FIGURE_WIDTH_IN, figure.get_figheight() + 0.3 * rows)
    return figure.legend(handles, labels, loc="outside lower center", ncols=cols, frameon=False)


def date_locator() -> AutoDateLocator:
    """Time ticks that fit the width: three to seven, from seconds to months apart."""
    return AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]


def to_png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    with styled():
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


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


def axis_start(first: datetime | None, start: datetime, now: datetime) -> datetime:
    """A time axis meant to start at ``start`` starts just before ``first`` (the first
    observation) instead when that is later: a margin of a twentieth of the data's span
    (at least a few seconds) before it."""
    margin = max((now - first) / 20, timedelta(seconds=5)) if first is not None else None
    if first is None or margin is None or first - margin <= start:
        return start
    return first - margin


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


async def upload_chart(
    client: AsyncWebClient,
    channel: str,
    thread_ts: str,
    png: bytes,
    filename: str,
    title: str,
) -> None:
    """Upload ``png`` into the thread; the file name keeps only safe characters and the
    title (from a SKU, a system name) is one bounded line."""
    stem, _, ext = filename.rpartition(".")
    safe = (_UNSAFE_NAME.sub("_", stem).strip("._") or "chart")[:100] + "." + (ext or "png")
    await client.files_upload_v2(
        channel=channel,
        thread_ts=thread_ts,
        file=png,
        filename=safe,
        title=plain(title, 250),
        alt_txt=plain(title, 1000),
    )


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
