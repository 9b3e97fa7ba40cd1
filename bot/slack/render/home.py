"""The KPI dashboard as a Home tab view: this week so far against last week and the
baseline (mismatch rate by location, oversells, auto-resync success, manual
interventions, MTTA, MTTR, shrinkage against its line), the latest weekly decision, the
open incidents, the trend charts, the signal chain and this week's cycle counts.

Slack allows 100 blocks in a Home tab; this view uses about twenty whatever the data
(the incident list is capped, long lists are cut to a section's 3000 characters)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    ImageBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.slack.render.kpi_format import decision_line, esc, fit, percent, when
from bot.slack.render.review import chain_text, cycle_count_text, shrinkage_text
from bot.slack.render.summary import format_value, trend
from ledger import Incident
from monitors.kpis import KPIS, Dashboard, compare

ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
CALLBACK = "driftwatch_home"
KPI_CHART = "kpis"
HOP_CHART = "hops"


def _kpi_fields(board: Dashboard) -> list[MarkdownTextObject]:
    last = {k.name: k for k in compare(board.this_week, board.last_week)}
    base = {k.name: k for k in compare(board.this_week, board.baseline)}
    fields = []
    for d in KPIS:
        kpi = last[d.label]
        label = d.label
        if d.key == "shrinkage_rate":
            label += f" (line {board.shrink.line:.0%})"
        text = f"*{label}*\n{format_value(kpi.this_week, d.unit)} {trend(kpi)}"
        text += f"\n_last week: {format_value(kpi.last_week, d.unit)}"
        if board.baseline is not None:
            text += f" · baseline: {format_value(base[d.label].last_week, d.unit)}"
        fields.append(MarkdownTextObject(text=text + "_"))
    fields.append(
        MarkdownTextObject(
            text=f"*Open incidents*\n{board.open_total}"
            + (" :white_check_mark:" if not board.open_total else "")
        )
    )
    return fields


def _mismatch_lines(board: Dashboard) -> str:
    by_location = board.this_week.get("mismatch_by_location") or {}
    lines = ["*Mismatch rate by location* (this week so far)"]
    for location, n in sorted(by_location.items()):
        compared, drifting = int(n.get("compared", 0)), int(n.get("drifting", 0))
        rate = drifting / compared if compared else None
        lines.append(
            f"• {esc(location, 80)}: {drifting} of {compared} SKUs drifted ({percent(rate)})"
        )
    if len(lines) == 1:
        lines.append("_No SKU compared yet._")
    return fit("\n".join(lines))


def _incident_line(incident: Incident, board: Dashboard) -> str:
    icon = ICONS.get(incident.severity, "•")
    where = ""
    if incident.sku:
        where = f" · `{esc(incident.sku, 80)}`" + (
            f" at {esc(incident.location, 80)}" if incident.location else ""
        )
    status = " · acknowledged" if incident.status == "acknowledged" else ""
    return (
        f"{icon} *{esc(incident.title, 150)}*{where} · {incident.kind.replace('_', ' ')} · "
        f"since {when(incident.opened_at, board.tz)}{status}"
    )


def _verdict_text(board: Dashboard) -> str:
    verdict = board.latest_verdict
    if verdict is None:
        return (
            "*Latest weekly verdict*\n_No decision recorded yet: every weekly summary asks "
            "for one (Pass: trend down / Not yet: escalate)._"
        )
    return (
        f"*Latest weekly verdict* (the week of {verdict.week:%b} {verdict.week.day})\n"
        f"{decision_line(verdict, board.tz)}"
    )


def home_blocks(board: Dashboard, charts: Mapping[str, str]) -> list[Block]:
    """The blocks of the Home tab; ``charts`` maps ``kpis``/``hops`` to uploaded file ids."""
    context = f"This week so far (since {board.week_start:%a %b} {board.week_start.day})"
    context += f" · updated {when(board.now, board.tz)}"
    if board.baseline_start is not None:
        context += f" · baseline: the week of {board.baseline_start:%b} {board.baseline_start.day}"
    blocks: list[Block] = [
        HeaderBlock(text="Driftwatch · inventory reliability"),
        ContextBlock(elements=[MarkdownTextObject(text=context)]),
        SectionBlock(fields=_kpi_fields(board)),
        SectionBlock(text=MarkdownTextObject(text=_mismatch_lines(board))),
        SectionBlock(text=MarkdownTextObject(text=f"*Shrinkage*\n{shrinkage_text(board.shrink)}")),
        DividerBlock(),
        SectionBlock(text=MarkdownTextObject(text=fit(_verdict_text(board)))),
        DividerBlock(),
    ]
    heading = f"*Open incidents* ({board.open_total})"
    lines = [_incident_line(i, board) for i in board.open_incidents]
    blocks.append(
        SectionBlock(
            text=MarkdownTextObject(
                text=fit("\n".join([heading, *lines]) if lines else f"{heading}\n_None open._")
            )
        )
    )
    more = board.open_total - len(board.open_incidents)
    if more > 0:
        blocks.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=f"…and {more} more: `/incidents` lists them.")]
            )
        )
    blocks.append(DividerBlock())
    if KPI_CHART in charts:
        blocks.append(
            ImageBlock(
                slack_file={"id": charts[KPI_CHART]},
                alt_text="Weekly KPIs: mismatch rate, oversells, auto-resync success, shrinkage",
                title="Weekly KPIs, the last 8 weeks and this one",
            )
        )
    if HOP_CHART in charts:
        blocks.append(
            ImageBlock(
                slack_file={"id": charts[HOP_CHART]},
                alt_text="Drift rate per hop over the last 30 days",
                title="Drift rate per hop, 30 days: which handoff is degrading",
            )
        )
    blocks.append(
        SectionBlock(
            text=MarkdownTextObject(
                text=chain_text(
                    board.chain,
                    f"*The signal chain* (changes of the last "
                    f"{(board.chain.end - board.chain.start).days} days)",
                )
            )
        )
    )
    blocks.append(SectionBlock(text=MarkdownTextObject(text=cycle_count_text(board.cycle_counts))))
    return blocks


def home_view(board: Dashboard, charts: Mapping[str, str]) -> dict[str, Any]:
    """The Home tab view, validated by slack_sdk's models."""
    return View(type="home", callback_id=CALLBACK, blocks=home_blocks(board, charts)).to_dict()
