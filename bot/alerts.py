"""Block Kit for incident alerts, built with slack_sdk's model classes (they validate)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.alert_actions import incident_actions
from bot.health_alerts import health_blocks
from ledger import Incident

ICON = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def _when(value: datetime | None) -> str:
    if value is None:
        return "unknown"
    epoch = int(value.timestamp())
    fallback = value.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{fallback}>"


def _signed(n: int | None) -> str:
    return "n/a" if n is None else f"{n:+d}"


def alert_text(incident: Incident) -> str:
    """The notification text (shown in push notifications and where blocks cannot be)."""
    if incident.fingerprint.startswith(("health:", "webhook:")):
        return incident.title
    d = incident.details or {}
    if incident.kind == "duplicate_sku":
        return _mrkdwn(
            f"{incident.title} — several items share a SKU; none is compared or resynced "
            "until each has its own"
        )
    gap = d.get("gap")
    text = f"{incident.title} — {d.get('system', '?')} is off by {_signed(gap)} units"
    policy = d.get("policy")
    if isinstance(policy, dict) and policy.get("outcome") == "escalated" and policy.get("oncall"):
        text += f" — escalated to <!subteam^{policy['oncall']}>"
    return text


def alert_blocks(incident: Incident) -> list[Block]:
    """The alert message for an incident in its current state."""
    if incident.fingerprint.startswith(("health:", "webhook:")):
        return health_blocks(incident)
    if incident.kind == "duplicate_sku":
        return duplicate_blocks(incident)
    d: dict[str, Any] = dict(incident.details or {})
    status = incident.status
    header = f"{'✅ Resolved: ' if status == 'resolved' else ''}{incident.title}"
    values = d.get("values") or {}
    truth = d.get("truth_system")
    lines = []
    for system, value in values.items():
        mark = " _(source of truth)_" if system == truth else ""
        shown = "not reported" if value is None else f"{value}"
        lines.append(f"• *{system}*: {shown}{mark}")
    gap_pct = d.get("gap_percent")
    gap_text = f"{_signed(d.get('gap'))} units" + (
        f" ({gap_pct:+.1f}%)" if isinstance(gap_pct, int | float) else ""
    )
    blocks: list[Block] = [
        HeaderBlock(text=header[:150]),
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*SKU*\n`{incident.sku}`"),
                MarkdownTextObject(text=f"*Location*\n{incident.location}"),
                MarkdownTextObject(text=f"*Drifting system*\n{d.get('system')}"),
                MarkdownTextObject(text=f"*Gap*\n{gap_text} vs expected {d.get('expected')}"),
                MarkdownTextObject(
                    text=f"*Severity*\n{ICON.get(incident.severity, '')} {incident.severity}"
                ),
                MarkdownTextObject(text=f"*Since*\n{_when(incident.opened_at)}"),
            ]
        ),
        SectionBlock(text=MarkdownTextObject(text="*What each system says*\n" + "\n".join(lines))),
    ]
    if incident.root_cause_hint:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text=f"*Likely cause*\n{incident.root_cause_hint}")
            )
        )
    policy = policy_line(d.get("policy"))
    if policy:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=policy)))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_status_line(incident))]))
    if status != "resolved":
        blocks += [DividerBlock(), _actions(incident)]
    return blocks


def duplicate_blocks(incident: Incident) -> list[Block]:
    """A SKU that several of one system's items carry (or a storm of them at one
    location): every item with its count, and no Resync button (a write would be
    refused: which item should it go to?)."""
    d: dict[str, Any] = dict(incident.details or {})
    status = incident.status
    header = f"{'✅ Resolved: ' if status == 'resolved' else ''}{incident.title}"
    when = [
        MarkdownTextObject(
            text=f"*Severity*\n{ICON.get(incident.severity, '')} {incident.severity}"
        ),
        MarkdownTextObject(text=f"*Since*\n{_when(incident.opened_at)}"),
    ]
    if d.get("grouped"):
        members = [w for w in d.get("worst") or [] if isinstance(w, dict)]
        systems = ", ".join(str(s) for s in d.get("systems") or [])
        fields = [
            MarkdownTextObject(text=f"*Location*\n{incident.location}"),
            MarkdownTextObject(text=f"*SKUs*\n{d.get('count')}"),
            MarkdownTextObject(text=f"*System*\n{systems}"),
            *when,
        ]
        text = "*Items sharing each SKU*\n" + "\n".join(
            f"• `{_mrkdwn(str(m.get('sku')))}` in {m.get('system')}: {_items_text(m)}"
            for m in members
        )
        more = int(d.get("count") or 0) - len(members)
        if more > 0:
            text += f"\n…and {more} more"
        subject = "these SKUs"
    else:
        items = [i for i in d.get("items") or [] if isinstance(i, dict)]
        fields = [
            MarkdownTextObject(text=f"*SKU*\n`{_mrkdwn(str(incident.sku))}`"),
            MarkdownTextObject(text=f"*Location*\n{incident.location}"),
            MarkdownTextObject(text=f"*System*\n{d.get('system')}"),
            MarkdownTextObject(text=f"*Items with this SKU*\n{len(items)}"),
            *when,
        ]
        text = f"*Items in {d.get('system')} with this SKU*\n" + "\n".join(
            f"• `{_mrkdwn(str(i.get('id')))}`: {_count(i.get('value'))}" for i in items
        )
        subject = f"`{_mrkdwn(str(incident.sku))}`"
    blocks: list[Block] = [
        HeaderBlock(text=header[:150]),
        SectionBlock(fields=fields),
        SectionBlock(text=MarkdownTextObject(text=_fit(text))),
        SectionBlock(
            text=MarkdownTextObject(
                text="*What to do*\nSKUs are not unique in every system (Shopify does not "
                "enforce it). Give each item its own SKU, or remove the one that should not "
                "exist. Until then Driftwatch compares none of them here and refuses to "
                f"resync {subject}: it will not guess which item is meant."
            )
        ),
        ContextBlock(elements=[MarkdownTextObject(text=_status_line(incident))]),
    ]
    if status != "resolved":
        blocks += [DividerBlock(), incident_actions(incident.id)]
    return blocks


def _items_text(member: dict[str, Any]) -> str:
    items = [i for i in member.get("items") or [] if isinstance(i, dict)]
    return ", ".join(f"`{_mrkdwn(str(i.get('id')))}` {_count(i.get('value'))}" for i in items)


def _count(value: object) -> str:
    return "no count" if value is None else str(value)


def _mrkdwn(text: str) -> str:
    """``text`` shown as written in mrkdwn: Slack reads ``&``, ``<`` and ``>`` as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fit(text: str, limit: int = 3000) -> str:
    """A section's text within Slack's 3,000 characters, cut at a line."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit - 2)
    return text[: cut if cut > 0 else limit - 2] + "\n…"


def policy_line(policy: object) -> str | None:
    """What the auto-resync policy did about this incident (``details["policy"]``, see
    monitors/policy.py), or None when it did nothing."""
    if not isinstance(policy, dict):
        return None
    what = f"*{policy.get('system')}* {policy.get('state')}"
    outcome = policy.get("outcome")
    if outcome == "applied":
        after = policy.get("after")
        shown = policy.get("target") if after is None else after
        return (
            f":robot_face: *Auto-resynced by Driftwatch*: {what} {policy.get('before')} → {shown}"
        )
    if outcome == "shadow":
        return (
            f":ghost: *Shadow mode*: would have set {what} {policy.get('before')} → "
            f"{policy.get('target')} (nothing was written)"
        )
    if outcome == "escalated":
        reasons = "; ".join(str(r) for r in policy.get("reasons") or ()) or "high risk"
        oncall = policy.get("oncall")
        who = f"<!subteam^{oncall}>" if oncall else "a person"
        return f":sos: *Escalated to {who}*: {reasons}"
    return None


def _status_line(incident: Incident) -> str:
    parts = [f"Incident #{incident.id} · {incident.kind} · opened {_when(incident.opened_at)}"]
    if incident.acknowledged_by:
        parts.append(f"acknowledged by <@{incident.acknowledged_by}>")
    if incident.resolved_by:
        parts.append(f"resolved by <@{incident.resolved_by}> {_when(incident.resolved_at)}")
    if incident.root_cause:
        parts.append(f"root cause: {incident.root_cause}")
    return " · ".join(parts)


def _actions(incident: Incident) -> ActionsBlock:
    d = incident.details or {}
    confirm = ConfirmObject(
        title="Resync from the source of truth?",
        text=MarkdownTextObject(
            text=(
                f"Set *{d.get('system')}* to *{d.get('expected')}* for `{incident.sku}` at "
                f"{incident.location}, the value {d.get('truth_system')} holds. "
                "The write is compare-and-set: if the count changed since, nothing is overwritten."
            )
        ),
        confirm="Resync",
        deny="Cancel",
    )
    return incident_actions(incident.id, resync=confirm)


def blocks_json(blocks: list[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]
