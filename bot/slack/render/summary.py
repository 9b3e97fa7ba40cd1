"""The weekly summary and the daily adjustment report as Block Kit, and helpers that put
them in the outbox as ``message`` entries (one per period, deduplicated).

KPIs show this week's figure, an arrow against last week (▲ up, ▼ down, = unchanged) and
whether that is better or worse: fewer mismatches, oversells and manual interventions are
better, a higher auto-resync success rate is better.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime, tzinfo
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.slack.render.alerts import blocks_json
from bot.slack.render.blocks import field, header, md, message_text
from ledger import Ledger, OutboxEntry
from monitors.mrkdwn import escape, person
from monitors.reports import (
    AdjustmentReport,
    AdjustmentRules,
    Kpi,
    WeekFigures,
    WeeklySummary,
    daily_adjustments,
    previous_day_start,
    previous_week_start,
    weekly_summary,
)

WEEKLY_KIND = "message"
#: the ``chart`` marker in a weekly summary's outbox payload
WEEKLY_CHART = "weekly-summary"
#: the ``chart`` marker in a daily adjustment report's outbox payload
DAILY_CHART = "daily_adjustments"
FLAG_ICONS = {
    "repeated": ":repeat:",
    "large": ":warning:",
    "off_truth": ":twisted_rightwards_arrows:",
}


def format_value(value: float | None, unit: str) -> str:
    """A KPI value for people: ``12.5%``, ``14 min``, ``3``; ``n/a`` when unknown."""
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{value:.1%}"
    if unit == "min":
        return f"{value:.0f} min"
    return f"{value:g}"


def trend(kpi: Kpi) -> str:
    """``▲ +2 (worse)``, ``▼ 2.5 pts (better)``, ``= unchanged``, or ``no data last week``."""
    if kpi.this_week is None or kpi.last_week is None:
        return "no comparison"
    change = kpi.this_week - kpi.last_week
    if abs(change) < 1e-9:
        return "= unchanged"
    arrow = "▲" if change > 0 else "▼"
    if kpi.unit == "%":
        size = f"{change * 100:+.1f} pts"
    elif kpi.unit == "min":
        size = f"{change:+.0f} min"
    else:
        size = f"{change:+g}"
    better = (change < 0) == kpi.lower_is_better
    return f"{arrow} {size} ({'better' if better else 'worse'})"


def kpi_field(kpi: Kpi) -> MarkdownTextObject:
    return field(
        f"*{escape(kpi.name, 100)}*\n{format_value(kpi.this_week, kpi.unit)} {trend(kpi)}\n"
        f"_last week: {format_value(kpi.last_week, kpi.unit)}_"
    )


def _period(figures: WeekFigures, tz: tzinfo) -> str:
    start = figures.start.astimezone(tz)
    last_day = (figures.end.astimezone(tz)).date().toordinal() - 1
    end = date.fromordinal(last_day)
    return f"{start:%b} {start.day} – {end:%b} {end.day}, {end.year}"


def _lines(title: str, lines: Sequence[str], empty: str) -> SectionBlock:
    body = "\n".join(lines) if lines else f"_{empty}_"
    return SectionBlock(text=md(f"*{title}*\n{body}"))


def weekly_blocks(summary: WeeklySummary) -> list[Block]:
    """The weekly summary: the four KPIs, response times, then the lists."""
    this, last = summary.this_week, summary.last_week
    last_rates = {m.location: m.rate for m in last.mismatch}
    mismatch = [
        f"• {escape(m.location, 100)}: {m.drifting} of {m.compared} SKUs drifted "
        f"({format_value(m.rate, '%')}; last week {format_value(last_rates.get(m.location), '%')})"
        for m in this.mismatch
    ]
    causes = [
        f"• {escape(cause or 'not set', 100)}: {n}"
        + (f" (last week {last.by_root_cause.get(cause, 0)})" if last.by_root_cause else "")
        for cause, n in this.by_root_cause.items()
    ]
    kinds = [f"• {escape(kind.replace('_', ' '), 60)}: {n}" for kind, n in this.by_kind.items()]
    top = [
        f"• `{escape(s.sku, 100)}`: {s.incidents} incident{'s' if s.incidents != 1 else ''} "
        f"at {s.locations} location{'s' if s.locations != 1 else ''}"
        for s in this.top_skus
    ]
    return [
        header(f"Weekly drift summary{_in(summary.systems)}: {_period(this, summary.tz)}"),
        SectionBlock(fields=[kpi_field(k) for k in summary.kpis()]),
        _lines("Mismatch rate by location", mismatch, "no SKU compared yet"),
        DividerBlock(),
        SectionBlock(
            fields=[kpi_field(k) for k in summary.response_kpis()]
            + [
                field(
                    f"*Incidents opened*\n{this.incidents_opened} "
                    f"_(last week {last.incidents_opened})_"
                ),
                field(
                    f"*Incidents resolved*\n{this.incidents_resolved} "
                    f"_(last week {last.incidents_resolved})_"
                ),
            ]
        ),
        _lines("Incidents by root cause", causes, "no incident opened"),
        _lines("Incidents by kind", kinds, "no incident opened"),
        _lines("SKUs that drifted most", top, "no SKU drifted"),
        ContextBlock(
            elements=[
                md(
                    f"Auto-resyncs: {this.auto_resyncs_applied} applied, "
                    f"{this.auto_resyncs_failed} failed. Manual interventions: "
                    f"{this.adjustments} adjustments, {this.manual_resyncs} resyncs, "
                    f"{this.manual_resolutions} resolutions. Mismatch rate: SKUs with "
                    "a count-gap incident opened this week over SKUs known there."
                )
            ]
        ),
    ]


def weekly_text(summary: WeeklySummary) -> str:
    """The notification text: the four KPIs in one line."""
    parts = [
        f"{escape(k.name, 100)} {format_value(k.this_week, k.unit)} ({trend(k)})"
        for k in summary.kpis()
    ]
    period = _period(summary.this_week, summary.tz)
    return message_text(
        f"Weekly drift summary{_in(summary.systems)}, {period}: " + "; ".join(parts)
    )


def adjustment_blocks(report: AdjustmentReport, tz: tzinfo) -> list[Block]:
    """The daily adjustment report: counts by operator and reason code, then the flags."""
    day = report.start.astimezone(tz)
    title = header(f"Adjustments{_in(report.systems)} on {day:%a %b} {day.day}: {report.total}")
    refused: list[Block] = []
    if report.refused:
        listed = "; ".join(
            f"{escape(a.sku, 100)} at {escape(a.location, 60)} by {person(a.operator)}"
            for a in report.refused[:10]
        )
        refused.append(
            ContextBlock(
                elements=[
                    md(
                        f"{len(report.refused)} not applied (refused or failed), not "
                        f"counted: {listed}"
                    )
                ]
            )
        )
    if not report.total:
        return [title, SectionBlock(text=md("No manual adjustment was applied.")), *refused]
    operators = [f"• {person(op)}: {n}" for op, n in report.by_operator.items()]
    reasons = [f"• `{escape(reason, 60)}`: {n}" for reason, n in report.by_reason.items()]
    icons = {
        "repeated": ":repeat:",
        "large": ":warning:",
        "off_truth": ":twisted_rightwards_arrows:",
    }
    flags = [f"{icons.get(f.kind, '•')} {escape(f.text, 400)}" for f in report.flags]
    return [
        title,
        SectionBlock(
            fields=[
                field("*By operator*\n" + "\n".join(operators)),
                field("*By reason code*\n" + "\n".join(reasons)),
            ]
        ),
        _lines("Unusual patterns", flags, "nothing unusual"),
        *refused,
    ]


def adjustment_text(report: AdjustmentReport, tz: tzinfo) -> str:
    day = report.start.astimezone(tz)
    unusual = f", {len(report.flags)} unusual" if report.flags else ""
    return f"Adjustments{_in(report.systems)} on {day:%a %b} {day.day}: {report.total}{unusual}"


def _in(systems: Sequence[str]) -> str:
    """`` in shopify_eu`` for a store's own report; nothing for the deployment's."""
    return f" in {escape(', '.join(systems), 200)}" if systems else ""


def weekly_summary_key(channel: str, week: date) -> str:
    """The outbox dedupe key of a week's summary (one per channel and week)."""
    return f"weekly-summary:{channel}:{week.isoformat()}"


async def post_weekly_summary(
    ledger: Ledger,
    channel: str,
    now: datetime,
    tz: tzinfo,
    week_start: date | None = None,
    extra: Sequence[Block] = (),
    systems: Collection[str] | None = None,
) -> OutboxEntry | None:
    """Queue the summary of ``week_start`` (default: the last complete week before
    ``now``) as a ``message``, ``extra`` blocks after it (the weekly review); of
    ``systems`` only (a store's own summary), if given. None if that week's summary was
    queued for ``channel`` before."""
    week = week_start or previous_week_start(now, tz)
    summary = await weekly_summary(ledger, week, tz, systems)
    # the chart goes into the message's thread once posted (bot.summary_chart)
    chart: dict[str, Any] = {"kind": WEEKLY_CHART, "week_start": week.isoformat()}
    if summary.systems:
        chart["systems"] = list(summary.systems)
    return await ledger.enqueue(
        WEEKLY_KIND,
        channel,
        {
            "text": weekly_text(summary),
            "blocks": blocks_json([*weekly_blocks(summary), *extra]),
            "chart": chart,
        },
        now,
        dedupe_key=weekly_summary_key(channel, week),
    )


async def post_daily_adjustments(
    ledger: Ledger,
    channel: str,
    now: datetime,
    tz: tzinfo,
    rules: AdjustmentRules | None = None,
    day_start: datetime | None = None,
) -> OutboxEntry | None:
    """Queue the adjustment report of ``day_start`` (default: yesterday in ``tz``) as a
    ``message``; None if that day's report was queued before."""
    start = day_start or previous_day_start(now, tz)
    report = await daily_adjustments(ledger, start, rules)
    payload: dict[str, Any] = {
        "text": adjustment_text(report, tz),
        "blocks": blocks_json(adjustment_blocks(report, tz)),
    }
    if report.total:
        # the chart goes into the message's thread once posted (bot.summary_chart); a
        # day without adjustments gets none: the message says so
        payload["chart"] = {"kind": DAILY_CHART, "day_start": start.isoformat()}
        if report.systems:
            payload["chart"]["systems"] = list(report.systems)
    return await ledger.enqueue(
        WEEKLY_KIND,
        channel,
        payload,
        now,
        dedupe_key=f"daily-adjustments:{channel}:{start.isoformat()}",
    )
