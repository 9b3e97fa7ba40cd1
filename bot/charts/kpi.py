"""The weekly KPI trend, as PNG bytes: mismatch rate, oversell incidents, auto-resync
success and shrinkage (against its 2 % line) over the recent weeks, the baseline week
marked. Shown in the Home tab and the reliability packet; rendered off the event loop
(:func:`bot.charts.sku.off_loop`)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from bot.charts.worker import off_loop

Weeks = Sequence[tuple[date, Mapping[str, Any]]]

#: (key, title, is a rate)
PANELS: tuple[tuple[str, str, bool], ...] = (
    ("mismatch_rate", "Mismatch rate", True),
    ("oversell_incidents", "Oversell incidents", False),
    ("auto_resync_success_rate", "Auto-resync success", True),
    ("shrinkage_rate", "Shrinkage (line: {line})", True),
)


def _panel(
    ax: Axes,
    weeks: Weeks,
    key: str,
    title: str,
    rate: bool,
    baseline: date | None,
    verdicts: Mapping[date, str],
) -> None:
    xs = list(range(len(weeks)))
    values = [data.get(key) for _, data in weeks]
    ys = [float("nan") if v is None else float(v) for v in values]
    if rate:
        ax.plot(xs, ys, marker="o", color="C0", linewidth=1.8)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    else:
        ax.bar(xs, [0 if v is None else v for v in values], color="C0", alpha=0.8)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    known = [v for v in ys if v == v]  # not NaN
    top = max(known, default=0.0)
    if not known:
        ax.text(0.5, 0.5, "no data yet", ha="center", va="center", color="0.5",
                transform=ax.transAxes)  # fmt: skip
    for x, (week, _) in zip(xs, weeks, strict=True):
        if week == baseline:
            ax.axvline(x, color="0.5", linestyle=":", linewidth=1)
            ax.annotate(
                "baseline",
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -10),
                textcoords="offset points",
                fontsize=7,
                color="0.4",
            )
        decision = verdicts.get(week)
        if decision:
            mark, color = ("✓", "C2") if decision == "pass" else ("!", "C3")
            ax.annotate(
                mark,
                (x, 0.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize=9,
                color=color,
            )
    ax.set_ylim(0, max(top * 1.3, 0.01 if rate else 1))
    ax.set_xticks(xs, [f"{w:%b} {w.day}" for w, _ in weeks], fontsize=7, rotation=45)
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(True, axis="y", alpha=0.3)


def render_kpi_trend_png(
    title: str,
    weeks: Weeks,
    *,
    baseline: date | None,
    line: float,
    verdicts: Mapping[date, str],
) -> bytes:
    """Four small panels over ``weeks`` (week start → figures); ``line`` is the
    shrinkage line (a rate); ``verdicts`` marks decided weeks (✓ pass, ! escalate)."""
    figure = Figure(figsize=(8.5, 5.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2)
    for ax, (key, label, rate) in zip(axes.flat, PANELS, strict=True):
        _panel(ax, weeks, key, label.format(line=f"{line:.0%}"), rate, baseline, verdicts)
        if key == "shrinkage_rate":
            ax.axhline(line, color="C3", linestyle="--", linewidth=1.2)
            ax.set_ylim(0, max(ax.get_ylim()[1], line * 1.5))
    figure.suptitle(title, fontsize=11, x=0.01, ha="left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


async def render_kpi_trend_chart(
    title: str,
    weeks: Weeks,
    *,
    baseline: date | None,
    line: float,
    verdicts: Mapping[date, str],
) -> bytes:
    """:func:`render_kpi_trend_png` in the chart worker."""
    plain = [(week, dict(data)) for week, data in weeks]
    return await off_loop(
        render_kpi_trend_png,
        title,
        plain,
        baseline=baseline,
        line=line,
        verdicts=dict(verdicts),
    )
