"""``/drift``: what each system says about a SKU at every location, and the worst drifts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    SectionBlock,
)

from bot.slack.render.blocks import header, md, message_text
from connectors.levels import Level
from ledger import Adjustment, Incident, LevelRow
from monitors.drift import DiffRules, Drift, compared_value, diff
from monitors.mrkdwn import escape, person, public_error, when


@dataclass
class LocationView:
    """One location of a SKU: each system's compared value, the truth, the gap."""

    location: str
    values: dict[str, int | None] = field(default_factory=dict)
    truth_system: str | None = None
    drifts: list[Drift] = field(default_factory=list)


def levels_from_rows(rows: Sequence[LevelRow]) -> list[Level]:
    """The ledger's current rows as the drift engine's levels (one per system×location)."""
    grouped: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    observed: dict[tuple[str, str, str], datetime] = {}
    for row in rows:
        key = (row.system, row.sku, row.location)
        grouped[key][row.state] = row.quantity
        observed[key] = max(observed.get(key, row.observed_at), row.observed_at)
    return [
        Level(system=s, sku=k, location=loc, quantities=q, observed_at=observed[(s, k, loc)])
        for (s, k, loc), q in grouped.items()
    ]


def location_views(rows: Sequence[LevelRow], rules: DiffRules) -> list[LocationView]:
    """Per location, in order: what each system says (its compared states), the truth."""
    levels = levels_from_rows(rows)
    drifts = diff(levels, rules) if levels else []
    views: dict[str, LocationView] = {}
    for level in sorted(levels, key=lambda lv: (lv.location, lv.system)):
        view = views.setdefault(level.location, LocationView(level.location))
        system_rules = rules.systems.get(level.system)
        if system_rules is not None:
            view.values[level.system] = compared_value(level, system_rules)
    for drift in drifts:
        if drift.location in views:
            views[drift.location].drifts.append(drift)
    for view in views.values():
        truths = [d.truth_system for d in view.drifts if d.truth_system]
        view.truth_system = (
            truths[0]
            if truths
            else next((s for s in rules.source_of_truth if view.values.get(s) is not None), None)
        )
    return list(views.values())


def _location_text(view: LocationView) -> str:
    lines = [f"*{escape(view.location, 200)}*"]
    for system, value in view.values.items():
        shown = "not reported" if value is None else str(value)
        mark = " _(source of truth)_" if system == view.truth_system else ""
        lines.append(f"• {escape(system, 60)}: *{shown}*{mark}")
    if view.drifts:
        for d in view.drifts:
            lines.append(
                f":warning: {escape(d.system, 60)} is off by {d.gap:+d} "
                f"({escape(d.kind.replace('_', ' '), 40)}; expected {d.expected})"
            )
    else:
        lines.append(":white_check_mark: in agreement")
    return "\n".join(lines)


def sku_report(
    sku: str,
    views: Sequence[LocationView],
    incidents: Sequence[Incident],
    adjustments: Sequence[Adjustment],
    *,
    shareable: bool = True,
) -> list[Block]:
    """The answer to ``/drift SKU``."""
    blocks: list[Block] = [header(f"{sku}: what each system says")]
    blocks += [SectionBlock(text=md(_location_text(v))) for v in views[:40]]
    if incidents:
        lines = [
            f"• #{i.id} {escape(i.title, 200)} — {escape(i.status, 20)}"
            + (f", acknowledged by {person(i.acknowledged_by)}" if i.acknowledged_by else "")
            for i in incidents
        ]
        blocks.append(SectionBlock(text=md("*Open incidents*\n" + "\n".join(lines))))
    else:
        blocks.append(ContextBlock(elements=[md("No open incident.")]))
    if adjustments:
        lines = [_adjustment_line(a) for a in adjustments]
        blocks.append(SectionBlock(text=md("*Recent adjustments*\n" + "\n".join(lines))))
    else:
        blocks.append(ContextBlock(elements=[md("No recent adjustments.")]))
    if shareable:
        blocks.append(
            ActionsBlock(
                block_id=f"drift:{sku}"[:255],
                elements=[
                    ButtonElement(
                        text="Share in channel", action_id="share_drift", value=sku[:2000]
                    )
                ],
            )
        )
    return blocks


def _adjustment_line(a: Adjustment) -> str:
    """One adjustment and what became of it: one that did not apply is marked refused
    (struck through, with why), never shown as a change that happened."""
    change = f"{a.delta:+d}" if a.delta is not None else f"set to {a.new_quantity}"
    line = f"{when(a.created_at)} {escape(a.system, 60)} at {escape(a.location, 100)}: {change}"
    who = f" ({escape(a.reason_code, 60)}) by {person(a.operator)}"
    if a.status == "applied":
        moved = f", {a.before} → {a.after}" if a.before is not None and a.after is not None else ""
        return f"• {line}{moved}{who}"
    if a.status == "failed":
        why = f": {public_error(a.error, 200)}" if a.error else ""
        return f"• ~{line}~{who} — *refused, not applied*{why}"
    return f"• {line}{who} — _pending, not applied yet_"


def sku_report_text(sku: str, views: Sequence[LocationView]) -> str:
    drifting = [d for v in views for d in v.drifts]
    name = escape(sku, 200)
    if not drifting:
        return message_text(f"{name}: every system agrees")
    worst = drifting[0]
    return message_text(
        f"{name}: {escape(worst.system, 60)} is off by {worst.gap:+d} "
        f"at {escape(worst.location, 100)}"
    )


def worst_drifts(incidents: Sequence[Incident], limit: int = 10) -> list[Block]:
    """The answer to a bare ``/drift``: the open drift incidents, largest gap first."""

    def gap(incident: Incident) -> int:
        value = (incident.details or {}).get("gap")
        return abs(value) if isinstance(value, int) else 0

    ranked = sorted(incidents, key=gap, reverse=True)[:limit]
    if not ranked:
        return [SectionBlock(text=md(":white_check_mark: No drift right now."))]
    lines = [_drift_line(i) for i in ranked]
    return [
        header("The worst drifts now"),
        SectionBlock(text=md("\n".join(lines))),
        ContextBlock(elements=[md("`/drift SKU` for the details of one SKU.")]),
    ]


def _drift_line(incident: Incident) -> str:
    d: Mapping[str, object] = incident.details or {}
    gap = d.get("gap")
    gap_text = f"{gap:+d}" if isinstance(gap, int) else "?"
    return (
        f"• `{escape(incident.sku, 100)}` at {escape(incident.location, 60)}: "
        f"{escape(d.get('system', '?'), 60)} off by {gap_text} "
        f"(#{incident.id}, {escape(incident.status, 20)})"
    )
