"""Charts fit their data and stay readable where they are read (issue 13, K): in a
Slack thread, whose image preview is about 360 px wide.

Each chart is rendered by its real PNG renderer; the figure it saved is then measured
with matplotlib's own API (text sizes, legend and axes extents, font lookup)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from matplotlib import font_manager
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from test_summary import NY, SUMMARY, record_adjustments

from bot.charts.health import HealthSample, render_lag_png, render_rate_png, render_webhook_png
from bot.charts.sku import CHART_DAYS, chart_start, render_png, sku_chart_png
from bot.charts.summary import render_daily_png, render_weekly_png
from ledger import Ledger
from ledger.records import LevelRow
from monitors.reports import AdjustmentRules, daily_adjustments

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
#: the reading standard, stated here rather than taken from the code under test: Slack
#: shows an image in a thread about 360 px wide (its thumb_360 preview), and a legend
#: or title should then be at least 11 px tall, tick labels 10 px
THREAD_WIDTH_PX = 360
MIN_TEXT_PX = 11
COMPARE = {"shopify": ("available",), "wms": ("available",)}


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures the renderers save (matplotlib's ``Figure.savefig``, wrapped)."""
    figures: list[Figure] = []
    original = Figure.savefig

    def savefig(self: Figure, *args: Any, **kwargs: Any) -> None:
        figures.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return figures


def _rows(sku: str, first: datetime) -> list[LevelRow]:
    """A SKU first seen at ``first``: the WMS at 30, Shopify drifting to 42."""
    out = []
    for i, (system, qty) in enumerate([("wms", 30), ("shopify", 30), ("shopify", 42)]):
        at = first + timedelta(seconds=30 * i)
        out.append(LevelRow(system, sku, "east", "available", qty, at, "poll"))
    return out


def _png_width(png: bytes) -> int:
    return int(struct.unpack(">I", png[16:20])[0])


def _displayed_px(points: float, figure: Figure) -> float:
    """How tall text of ``points`` looks once the image is shown at the thread's width."""
    rendered_px = points * figure.dpi / 72
    return rendered_px * THREAD_WIDTH_PX / (figure.get_figwidth() * figure.dpi)


def _legends(figure: Figure) -> list[Legend]:
    found = list(figure.legends)
    found += [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None]
    return found


def _overlap(a: Any, b: Any) -> bool:
    return bool(a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1)


def test_the_time_axis_spans_the_data_of_a_new_sku(saved: list[Figure]) -> None:
    """K: a SKU first seen minutes ago got a 30-minute margin: ~90 % empty axis."""
    first = NOW - timedelta(minutes=3)
    rows = _rows("TEE-BLK-M", first)
    png = sku_chart_png("TEE-BLK-M", rows, COMPARE, NOW, "east", "wms")
    assert png.startswith(b"\x89PNG")
    [figure] = saved
    ax = figure.axes[0]
    left, right = ax.get_xlim()
    empty_before = (float(date2num(first)) - left) / (right - left)
    assert 0 < empty_before <= 0.1, f"{empty_before:.0%} of the axis is before the first point"
    start = chart_start({"wms": ([first, NOW], [30, 30])}, NOW - timedelta(days=CHART_DAYS), NOW)
    assert NOW - timedelta(minutes=4) < start < first


def test_a_week_of_history_keeps_the_week(saved: list[Figure]) -> None:
    first = NOW - timedelta(days=CHART_DAYS + 2)
    start = chart_start({"wms": ([first, NOW], [30, 30])}, NOW - timedelta(days=CHART_DAYS), NOW)
    assert start == NOW - timedelta(days=CHART_DAYS)


def _samples() -> list[HealthSample]:
    return [
        HealthSample(NOW - timedelta(minutes=5 * i), 300.0 * i, i // 3, 100 + i, i, 2 * i, i, 0.5)
        for i in range(20, 0, -1)
    ]


def _every_chart(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    west = NOW - timedelta(hours=4)
    rows = [
        *_rows("TEE-BLK-M", NOW - timedelta(hours=5)),
        LevelRow("wms", "TEE-BLK-M", "west", "available", 8, west, "poll"),
        LevelRow("shopify", "TEE-BLK-M", "west", "available", 9, west, "poll"),
    ]
    yield "sku", sku_chart_png("TEE-BLK-M", rows, COMPARE, NOW, None, "wms")
    two_hours = NOW - timedelta(hours=2)
    yield "lag", render_lag_png("wms: sync lag against its SLA", _samples(), 900, two_hours, NOW)
    yield "rate", render_rate_png("shopify: throttles and bucket use", _samples(), two_hours, NOW)
    yield "webhooks", render_webhook_png("shopify webhooks", [], NOW - timedelta(hours=6), NOW)
    yield "weekly", render_weekly_png(SUMMARY)


def test_legends_and_titles_are_readable_at_a_threads_width(
    saved: list[Figure], tmp_path: Path
) -> None:
    """K: an 8 pt legend on an 880 px image shown 360 px wide is about 5 px tall."""
    for name, png in _every_chart(tmp_path):
        figure = saved[-1]
        assert _png_width(png) == round(figure.get_figwidth() * figure.dpi), name
        legends = _legends(figure)
        assert legends, f"{name}: no legend"
        whole = figure.bbox
        for legend in legends:
            for text in legend.get_texts():
                px = _displayed_px(text.get_fontsize(), figure)
                assert px >= MIN_TEXT_PX, f"{name}: legend text {px:.1f} px at thread width"
            box = legend.get_window_extent()
            inside = whole.x0 <= box.x0 <= box.x1 <= whole.x1
            inside &= whole.y0 <= box.y0 <= box.y1 <= whole.y1
            assert inside, f"{name}: the legend is cut off"
            for ax in figure.axes:  # below the plot, never over the data
                assert not _overlap(box, ax.get_window_extent()), f"{name}: legend over data"
        titles = [ax._left_title for ax in figure.axes if ax.get_title(loc="left")]
        assert titles, name
        for title in titles:
            assert _displayed_px(title.get_fontsize(), figure) >= MIN_TEXT_PX, name
        for ax in figure.axes:
            for label in ax.get_xticklabels() + ax.get_yticklabels():
                if label.get_text():
                    assert _displayed_px(label.get_fontsize(), figure) >= MIN_TEXT_PX - 1, name


async def test_the_daily_chart_is_readable_at_a_threads_width(
    saved: list[Figure], tmp_path: Path
) -> None:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'daily.db'}") as ledger:
        await ledger.upgrade()
        day = datetime(2026, 11, 3, tzinfo=NY)
        await record_adjustments(ledger, day)
        rules = AdjustmentRules(source_of_truth="wms")
        report = await daily_adjustments(ledger, day, rules)
        last = await daily_adjustments(ledger, day - timedelta(days=7), rules)
    png = render_daily_png(report, last, NY)
    [figure] = saved
    assert _png_width(png) == round(figure.get_figwidth() * figure.dpi)
    assert figure._suptitle is not None
    assert _displayed_px(figure._suptitle.get_fontsize(), figure) >= MIN_TEXT_PX
    for text in figure.texts + [t for ax in figure.axes for t in ax.texts]:
        if text.get_text().strip():
            assert _displayed_px(text.get_fontsize(), figure) >= MIN_TEXT_PX - 3, text.get_text()


def test_a_glyph_no_font_has_is_drawn_as_a_visible_placeholder(saved: list[Figure]) -> None:
    """K: an emoji in a SKU was dropped from the title. Every character of the title is
    found in the fonts matplotlib looks up for it (the last of which, Last Resort, draws
    a placeholder box for anything), and nothing warns of a missing glyph (warnings are
    errors in this suite)."""
    sku = "TEE-🔥-M"
    series = {"wms": ([NOW - timedelta(hours=1), NOW], [3, 3])}
    render_png(f"{sku} at east", series, NOW - timedelta(days=7), NOW)
    [figure] = saved
    title = figure.axes[0]._left_title
    assert "🔥" in title.get_text()
    paths = font_manager.fontManager._find_fonts_by_props(title.get_fontproperties())
    covered: set[int] = set()
    for path in paths:
        covered |= set(font_manager.get_font(path).get_charmap())
    missing = [c for c in title.get_text() if c != "\n" and ord(c) not in covered]
    assert missing == []


def test_a_dollar_in_a_sku_is_not_math(saved: list[Figure]) -> None:
    series = {"wms": ([NOW - timedelta(hours=1), NOW], [3, 3])}
    render_png("SKU-$A$-1 at east", series, NOW - timedelta(days=7), NOW)
    [figure] = saved
    title = figure.axes[0]._left_title
    assert "$A$" in title.get_text()
    assert title.get_parse_math() is False
