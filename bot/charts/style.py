"""How every chart looks where it is read: in a Slack thread.

A thread's image preview is about :data:`THREAD_WIDTH_PX` wide (Slack's ``thumb_360``).
Figures are :data:`FIGURE_WIDTH_IN` inches at :data:`DPI` (about twice that, for sharp
text on dense screens) and :func:`styled` sets fonts large enough to stay readable once
scaled down; legends sit below the plot (:func:`legend_below`), never over the data.
Text comes from outside (SKUs, system names): the font list falls back to matplotlib's
bundled *Last Resort* font, which draws a visible placeholder for any character the
others lack (an emoji in a SKU shows as a box, not as nothing), ``$`` is not read as
math, and :func:`drawable` replaces what no font has with U+FFFD. A time axis spans the
data (:func:`axis_start`), so no chart is mostly empty time.
"""

from __future__ import annotations

import contextlib
import functools
import io
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import matplotlib
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator
from matplotlib.figure import Figure
from matplotlib.legend import Legend

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


def axis_start(first: datetime | None, start: datetime, now: datetime) -> datetime:
    """A time axis meant to start at ``start`` starts just before ``first`` (the first
    observation) instead when that is later: a margin of a twentieth of the data's span
    (at least a few seconds) before it."""
    margin = max((now - first) / 20, timedelta(seconds=5)) if first is not None else None
    if first is None or margin is None or first - margin <= start:
        return start
    return first - margin
