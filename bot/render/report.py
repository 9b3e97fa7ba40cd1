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
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from connectors.levels import Level
from ledger import Adjustment, Incident, LevelRow
from monitors.drift import DiffRules, Drift, compared_value, diff
from monitors.mrkdwn import escape


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
    lines = [f"*{view.location}*"]
    for system, value in view.values.items():
        shown = "not reported" if value is None else str(value)
        mark = " _(source of truth)_" if system == view.truth_system else ""
        lines.append(f"• {system}: *{shown}*{mark}")
    if view.drifts:
        for d in view.drifts:
            lines.append(
                f":warning: {d.system} is off by {d.gap:+d} ({d.kind.replace('_', ' ')}; "
                f"expected {d.expected})"
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
    blocks: list[Block] = [HeaderBlock(text=f"{sku}: what each system says"[:150])]
    blocks += [SectionBlock(text=MarkdownTextObject(text=_location_text(v))) for v in views]
    if incidents:
        lines = [
            f"• #{i.id} {i.title} — {i.status}"
            + (f", acknowledged by <@{i.acknowledged_by}>" if i.acknowledged_by else "")
            for i in incidents
        ]
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text="*Open incidents*\n" + "\n".join(lines)))
        )
    else:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="No open incident.")]))
    if adjustments:
        lines = [_adjustment_line(a) for a in adjustments]
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text="*Recent adjustments*\n" + "\n".join(lines)))
        )
    else:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="No recent adjustments.")]))
    if shareable:
        blocks.append(
            ActionsBlock(
                block_id=f"drift:{sku}"[:255],
                elements=[
                    ButtonElement(text="Share in channel", action_id="share_drift", value=sku)
                ],
            )
        )
    return blocks


def _adjustment_line(a: Adjustment) -> str:
    """One adjustment and what became of it: one that did not apply is marked refused
    (struck through, with why), never shown as a change that happened."""
    change = f"{a.delta:+d}" if a.delta is not None else f"set to {a.new_quantity}"
    line = f"{a.created_at:%b %d %H:%M} {a.system} at {a.location}: {change}"
    who = f" ({a.reason_code}) by <@{a.operator}>"
    if a.status == "applied":
        moved = f", {a.before} → {a.after}" if a.before is not None and a.after is not None else ""
        return f"• {line}{moved}{who}"
    if a.status == "failed":
        why = f": {escape(a.error, 200)}" if a.error else ""
        return f"• ~{line}~{who} — *refused, not applied*{why}"
    return f"• {line}{who} — _pending, not applied yet_"


def sku_report_text(sku: str, views: Sequence[LocationView]) -> str:
    drifting = [d for v in views for d in v.drifts]
    if not drifting:
        return f"{sku}: every system agrees"
    worst = drifting[0]
    return f"{sku}: {worst.system} is off by {worst.gap:+d} at {worst.location}"


def worst_drifts(incidents: Sequence[Incident], limit: int = 10) -> list[Block]:
    """The answer to a bare ``/drift``: the open drift incidents, largest gap first."""

    def gap(incident: Incident) -> int:
        value = (incident.details or {}).get("gap")
        return abs(value) if isinstance(value, int) else 0

    ranked = sorted(incidents, key=gap, reverse=True)[:limit]
    if not ranked:
        return [
            SectionBlock(text=MarkdownTextObject(text=":white_check_mark: No drift right now."))
        ]
    lines = [_drift_line(i) for i in ranked]
    return [
        HeaderBlock(text="The worst drifts now"),
        SectionBlock(text=MarkdownTextObject(text="\n".join(lines))),
        ContextBlock(
            elements=[MarkdownTextObject(text="`/drift SKU` for the details of one SKU.")]
        ),
    ]


def _drift_line(incident: Incident) -> str:
    d: Mapping[str, object] = incident.details or {}
    gap = d.get("gap")
    gap_text = f"{gap:+d}" if isinstance(gap, int) else "?"
    return (
        f"• `{incident.sku}` at {incident.location}: {d.get('system', '?')} off by {gap_text} "
        f"(#{incident.id}, {incident.status})"
    )
