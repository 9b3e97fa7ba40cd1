"""Block Kit for incident alerts, built with slack_sdk's model classes (they validate).

Every value from outside (SKU, location, system and title, the likely cause, a person's
root cause) goes through :func:`monitors.mrkdwn.escape`, and every text object through
:mod:`bot.render.blocks`, which keeps it within Slack's limit for its field."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ContextBlock,
    DividerBlock,
    SectionBlock,
)

from bot.alert_actions import incident_actions
from bot.health_alerts import health_blocks
from bot.render.blocks import confirm, field, header, md, message_text
from ledger import Incident
from monitors.mrkdwn import escape, person, public_error, when

ICON = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def _signed(n: int | None) -> str:
    return "n/a" if n is None else f"{n:+d}"


def _number(value: object) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "n/a"


def alert_text(incident: Incident) -> str:
    """The notification text (shown in push notifications and where blocks cannot be).
    It names no one: an escalation pages the on-call group once, in the thread reply
    that announces it (monitors/policy.py)."""
    title = escape(incident.title, 300)
    if incident.fingerprint.startswith(("health:", "webhook:")):
        return message_text(title)
    d = incident.details or {}
    if incident.kind == "duplicate_sku":
        return message_text(
            f"{title} — several items share a SKU; none is compared or resynced "
            "until each has its own"
        )
    gap = d.get("gap")
    system = escape(d.get("system", "?"), 60)
    text = f"{title} — {system} is off by {_signed(gap if isinstance(gap, int) else None)} units"
    policy = d.get("policy")
    if isinstance(policy, dict) and policy.get("outcome") == "escalated":
        text += " — escalated to on-call" if policy.get("oncall") else " — needs a person"
    return message_text(text)


def alert_blocks(incident: Incident) -> list[Block]:
    """The alert message for an incident in its current state."""
    if incident.fingerprint.startswith(("health:", "webhook:")):
        return health_blocks(incident)
    if incident.kind == "duplicate_sku":
        return duplicate_blocks(incident)
    d: dict[str, Any] = dict(incident.details or {})
    status = incident.status
    values = d.get("values") or {}
    truth = d.get("truth_system")
    lines = []
    for system, value in values.items():
        mark = " _(source of truth)_" if system == truth else ""
        shown = "not reported" if value is None else escape(value, 40)
        lines.append(f"• *{escape(system, 60)}*: {shown}{mark}")
    gap = d.get("gap")
    gap_pct = d.get("gap_percent")
    gap_text = f"{_signed(gap if isinstance(gap, int) else None)} units" + (
        f" ({gap_pct:+.1f}%)" if isinstance(gap_pct, int | float) else ""
    )
    severity = escape(incident.severity, 20)
    blocks: list[Block] = [
        header(("✅ Resolved: " if status == "resolved" else "") + incident.title),
        SectionBlock(
            fields=[
                field(f"*SKU*\n`{escape(incident.sku or '?', 500)}`"),
                field(f"*Location*\n{escape(incident.location or '?', 200)}"),
                field(f"*Drifting system*\n{escape(d.get('system') or '?', 100)}"),
                field(f"*Gap*\n{gap_text} vs expected {_number(d.get('expected'))}"),
                field(f"*Severity*\n{ICON.get(incident.severity, '')} {severity}"),
                field(f"*Since*\n{when(incident.opened_at)}"),
            ]
        ),
        SectionBlock(text=md("*What each system says*\n" + "\n".join(lines))),
    ]
    if incident.root_cause_hint:
        blocks.append(
            SectionBlock(text=md(f"*Likely cause*\n{public_error(incident.root_cause_hint, 2900)}"))
        )
    policy = policy_line(d.get("policy"))
    if policy:
        blocks.append(SectionBlock(text=md(policy)))
    blocks.append(ContextBlock(elements=[md(_status_line(incident))]))
    if status != "resolved":
        blocks += [DividerBlock(), _actions(incident)]
    return blocks


def duplicate_blocks(incident: Incident) -> list[Block]:
    """A SKU that several of one system's items carry (or a storm of them at one
    location): every item with its count, and no Resync button (a write would be
    refused: which item should it go to?)."""
    d: dict[str, Any] = dict(incident.details or {})
    status = incident.status
    severity = escape(incident.severity, 20)
    when_fields = [
        field(f"*Severity*\n{ICON.get(incident.severity, '')} {severity}"),
        field(f"*Since*\n{when(incident.opened_at)}"),
    ]
    location = escape(incident.location or "?", 200)
    if d.get("grouped"):
        members = [w for w in d.get("worst") or [] if isinstance(w, dict)]
        systems = ", ".join(escape(s, 60) for s in d.get("systems") or [])
        fields = [
            field(f"*Location*\n{location}"),
            field(f"*SKUs*\n{_number(d.get('count'))}"),
            field(f"*System*\n{systems}"),
            *when_fields,
        ]
        text = "*Items sharing each SKU*\n" + "\n".join(
            f"• `{escape(m.get('sku'), 200)}` in {escape(m.get('system'), 60)}: {_items_text(m)}"
            for m in members
        )
        count = d.get("count")
        more = (count if isinstance(count, int) else 0) - len(members)
        if more > 0:
            text += f"\n…and {more} more"
        subject = "these SKUs"
    else:
        items = [i for i in d.get("items") or [] if isinstance(i, dict)]
        system = escape(d.get("system") or "?", 60)
        fields = [
            field(f"*SKU*\n`{escape(incident.sku or '?', 500)}`"),
            field(f"*Location*\n{location}"),
            field(f"*System*\n{system}"),
            field(f"*Items with this SKU*\n{len(items)}"),
            *when_fields,
        ]
        text = f"*Items in {system} with this SKU*\n" + "\n".join(
            f"• `{escape(i.get('id'), 200)}`: {_count(i.get('value'))}" for i in items
        )
        subject = f"`{escape(incident.sku or '?', 200)}`"
    blocks: list[Block] = [
        header(("✅ Resolved: " if status == "resolved" else "") + incident.title),
        SectionBlock(fields=fields),
        SectionBlock(text=md(text)),
        SectionBlock(
            text=md(
                "*What to do*\nSKUs are not unique in every system (Shopify does not "
                "enforce it). Give each item its own SKU, or remove the one that should not "
                "exist. Until then Driftwatch compares none of them here and refuses to "
                f"resync {subject}: it will not guess which item is meant."
            )
        ),
        ContextBlock(elements=[md(_status_line(incident))]),
    ]
    if status != "resolved":
        blocks += [DividerBlock(), incident_actions(incident.id)]
    return blocks


def _items_text(member: dict[str, Any]) -> str:
    items = [i for i in member.get("items") or [] if isinstance(i, dict)]
    return ", ".join(f"`{escape(i.get('id'), 200)}` {_count(i.get('value'))}" for i in items)


def _count(value: object) -> str:
    return "no count" if value is None else _number(value)


def policy_line(policy: object) -> str | None:
    """What the auto-resync policy did about this incident (``details["policy"]``, see
    monitors/policy.py), or None when it did nothing."""
    if not isinstance(policy, dict):
        return None
    what = f"*{escape(policy.get('system'), 60)}* {escape(policy.get('state'), 40)}"
    before, target = _number(policy.get("before")), _number(policy.get("target"))
    outcome = policy.get("outcome")
    if outcome == "applied":
        after = policy.get("after")
        shown = target if after is None else _number(after)
        return f":robot_face: *Auto-resynced by Driftwatch*: {what} {before} → {shown}"
    if outcome == "shadow":
        return (
            f":ghost: *Shadow mode*: would have set {what} {before} → {target} "
            "(nothing was written)"
        )
    if outcome == "escalated":
        reasons = "; ".join(public_error(r, 600) for r in policy.get("reasons") or ())
        reasons = reasons or "high risk"
        # the on-call group is paged once, by the thread reply announcing the escalation;
        # the alert (posted, then edited) only says so
        who = "on-call (paged in the thread)" if policy.get("oncall") else "a person"
        return f":sos: *Escalated to {who}*: {reasons}"
    return None


def _status_line(incident: Incident) -> str:
    kind = escape(incident.kind, 60)
    parts = [f"Incident #{incident.id} · {kind} · opened {when(incident.opened_at)}"]
    if incident.acknowledged_by:
        parts.append(f"acknowledged by {person(incident.acknowledged_by)}")
    if incident.resolved_by:
        parts.append(f"resolved by {person(incident.resolved_by)} {when(incident.resolved_at)}")
    if incident.root_cause:
        parts.append(f"root cause: {escape(incident.root_cause, 200)}")
    return " · ".join(parts)


def _actions(incident: Incident) -> ActionsBlock:
    d = incident.details or {}
    dialog = confirm(
        "Resync from the source of truth?",
        f"Set *{escape(d.get('system'), 30)}* to *{_number(d.get('expected'))}* for "
        f"`{escape(incident.sku, 60)}` at {escape(incident.location, 40)}, the value "
        f"{escape(d.get('truth_system'), 30)} holds. The write is compare-and-set: if the "
        "count changed since, nothing is overwritten.",
        "Resync",
    )
    return incident_actions(incident.id, resync=dialog)


def blocks_json(blocks: list[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]
