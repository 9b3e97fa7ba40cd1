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
from monitors.incidents import TITLES
from monitors.mrkdwn import escape

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
    if d.get("grouped"):
        return group_text(incident)
    gap = d.get("gap")
    text = f"{incident.title} — {d.get('system', '?')} is off by {_signed(gap)} units"
    if incident.status == "resolved":
        note = d.get("resolution")
        how = note.get("how") if isinstance(note, dict) else None
        return f"Resolved: {incident.title}" + (f" — {how}" if how else "")
    policy = d.get("policy")
    if isinstance(policy, dict) and policy.get("outcome") == "escalated" and policy.get("oncall"):
        text += f" — escalated to <!subteam^{policy['oncall']}>"
    return text


def alert_blocks(incident: Incident) -> list[Block]:
    """The alert message for an incident in its current state: every number on it from
    one read (``details``), and, once resolved, the final counts and how it ended."""
    if incident.fingerprint.startswith(("health:", "webhook:")):
        return health_blocks(incident)
    d: dict[str, Any] = dict(incident.details or {})
    if d.get("grouped"):
        return group_blocks(incident)
    status = incident.status
    header = f"{'✅ Resolved: ' if status == 'resolved' else ''}{incident.title}"
    note = d.get("resolution") if status == "resolved" else None
    note = note if isinstance(note, dict) else None
    final = note is not None and isinstance(note.get("values"), dict)
    values = (note or {}).get("values") if final else d.get("values") or {}
    truth = (note or {}).get("truth_system") if final else d.get("truth_system")
    lines = []
    for system, value in (values or {}).items():
        mark = " _(source of truth)_" if system == truth else ""
        shown = "not reported" if value is None else f"{value}"
        lines.append(f"• *{system}*: {shown}{mark}")
    blocks: list[Block] = [
        HeaderBlock(text=header[:150]),
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*SKU*\n`{incident.sku}`"),
                MarkdownTextObject(text=f"*Location*\n{incident.location}"),
                MarkdownTextObject(text=f"*Drifting system*\n{d.get('system')}"),
                MarkdownTextObject(text=_gap_field(incident, d, note)),
                MarkdownTextObject(
                    text=f"*Severity*\n{ICON.get(incident.severity, '')} {incident.severity}"
                ),
                MarkdownTextObject(text=f"*Since*\n{_when(incident.opened_at)}"),
            ]
        ),
        SectionBlock(
            text=MarkdownTextObject(
                text=("*Final counts*\n" if final else "*What each system says*\n")
                + "\n".join(lines or ["no counts"])
            )
        ),
    ]
    if note is not None:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_resolution_text(note))))
    if incident.root_cause_hint:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_cause_text(incident, d))))
    policy = policy_line(d.get("policy"))
    decided = (d.get("policy") or {}).get("gap") if isinstance(d.get("policy"), dict) else None
    if policy and isinstance(decided, int) and decided != d.get("gap") and status != "resolved":
        policy += f" _(decided when the gap was {decided:+d})_"
    if policy:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=policy)))
    plan = d.get("resync")
    if status != "resolved" and isinstance(plan, dict) and plan.get("can") is False:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=(
                        f"*Why no Resync*: {escape(plan.get('why'), 1200)}\n"
                        f"*Next step*: {escape(plan.get('next'), 1200)}"
                    )
                )
            )
        )
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_status_line(incident))]))
    if status != "resolved":
        blocks += [DividerBlock(), _actions(incident)]
    return blocks


def _gap_field(incident: Incident, d: dict[str, Any], note: dict[str, Any] | None) -> str:
    """The gap now; once resolved, the final gap (never a live gap on a resolved alert)."""
    if incident.status == "resolved":
        if note is not None and "gap" in note:
            return (
                f"*Final gap*\n{_signed(note.get('gap'))} units vs expected {note.get('expected')}"
            )
        return f"*Gap when last seen*\n{_signed(d.get('gap'))} units (before it was resolved)"
    gap_pct = d.get("gap_percent")
    gap_text = f"{_signed(d.get('gap'))} units" + (
        f" ({gap_pct:+.1f}%)" if isinstance(gap_pct, int | float) else ""
    )
    return f"*Gap*\n{gap_text} vs expected {d.get('expected')}"


def _resolution_text(note: dict[str, Any]) -> str:
    after = note.get("after")
    lead = f"{after.get('text')}\n" if isinstance(after, dict) and after.get("text") else ""
    return f"*How it ended*\n{lead}{escape(note.get('how'), 1000)}"[:3000]


def _cause_text(incident: Incident, d: dict[str, Any]) -> str:
    """The likely cause; when its sentence was written for other numbers than the
    alert's (a cause is kept from the drift's start), it says which."""
    seen = d.get("cause_seen")
    label = "*Likely cause*"
    if isinstance(seen, dict) and any(
        seen.get(k) != d.get(k) for k in ("actual", "expected", "gap")
    ):
        when = seen.get("at")
        stamp = _when(datetime.fromisoformat(when)) if isinstance(when, str) else "earlier"
        label = (
            f"*Likely cause* _(as first seen {stamp}: {escape(seen.get('system'), 60)} "
            f"{seen.get('actual')}, expected {seen.get('expected')}, "
            f"gap {_signed(seen.get('gap'))})_"
        )
    return f"{label}\n{incident.root_cause_hint}"[:3000]


def group_text(incident: Incident) -> str:
    """A storm's notification text: its size and its worst SKUs with their numbers."""
    d = incident.details or {}
    worst = [m for m in d.get("worst") or () if isinstance(m, dict)][:3]
    count = d.get("count") or len(d.get("members") or ())
    what = TITLES.get(incident.kind, incident.kind)
    done = "Resolved: " if incident.status == "resolved" else ""
    head = f"{done}{what}: {count} SKUs at {escape(incident.location, 60)}"
    if not worst:
        return head
    named = ", ".join(
        f"{escape(m.get('sku'), 60)} ({escape(m.get('system'), 40)} {_signed(m.get('gap'))})"
        for m in worst
    )
    more = count - len(worst) if isinstance(count, int) else 0
    return f"{head} — worst: {named}" + (f" and {more} more" if more > 0 else "")


def _member_line(m: dict[str, Any]) -> str:
    return (
        f"• `{escape(m.get('sku'), 100)}`: {escape(m.get('system'), 40)} {m.get('actual')}, "
        f"expected "
        f"{m.get('expected')} ({_signed(m.get('gap'))})"
    )


def group_blocks(incident: Incident) -> list[Block]:
    """A storm's alert: how many SKUs, the worst with their numbers and how many more,
    and one action for the group: resync the members the policy deems safe."""
    d = incident.details or {}
    members = [m for m in d.get("members") or d.get("worst") or () if isinstance(m, dict)]
    worst = [m for m in d.get("worst") or members if isinstance(m, dict)]
    found = d.get("count")
    count: int = found if isinstance(found, int) else len(members)
    what = TITLES.get(incident.kind, incident.kind)
    resolved = incident.status == "resolved"
    header = f"{'✅ Resolved: ' if resolved else ''}{what}: {count} SKUs at {incident.location}"
    lines = [_member_line(m) for m in worst]
    more = count - len(worst)
    if more > 0:
        lines.append(f"…and {more} more")
    apart = d.get("tracked_apart")
    if isinstance(apart, int) and apart:
        lines.append(f"({apart} more of this kind here are on alerts of their own)")
    blocks: list[Block] = [
        HeaderBlock(text=header[:150]),
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*Location*\n{escape(incident.location, 60)}"),
                MarkdownTextObject(
                    text=f"*Systems*\n{escape(', '.join(d.get('systems') or ()) or 'unknown', 200)}"
                ),
                MarkdownTextObject(text=f"*SKUs drifting*\n{count}"),
                MarkdownTextObject(text=f"*Total gap*\n{_signed(d.get('total_gap'))} units"),
                MarkdownTextObject(
                    text=f"*Severity*\n{ICON.get(incident.severity, '')} {incident.severity}"
                ),
                MarkdownTextObject(text=f"*Since*\n{_when(incident.opened_at)}"),
            ]
        ),
    ]
    note = d.get("resolution")
    if resolved and isinstance(note, dict):
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_resolution_text(note))))
    else:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(text=("*Worst drifts*\n" + "\n".join(lines))[:3000])
            )
        )
    safe = _safe_members(d)
    if not resolved and not safe:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text="None of them is one the auto-resync policy deems safe to "
                        "resync: resync them one by one with `/resync SKU LOCATION`."
                    )
                ]
            )
        )
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_status_line(incident))]))
    if not resolved:
        blocks += [
            DividerBlock(),
            incident_actions(incident.id, group=_group_confirm(incident, safe)),
        ]
    return blocks


def _safe_members(d: dict[str, Any]) -> list[dict[str, Any]]:
    safe = set(d.get("safe") or ())
    return [
        m for m in d.get("members") or () if isinstance(m, dict) and m.get("fingerprint") in safe
    ]


def _group_confirm(
    incident: Incident, safe: list[dict[str, Any]]
) -> tuple[str, ConfirmObject] | None:
    """The group's "Resync the N safe ones" button text and its confirm listing them
    (bounded to Slack's 300 characters)."""
    if not safe:
        return None
    listed: list[str] = []
    budget = 200
    for m in safe:
        plan = m.get("resync") or {}
        item = (
            f"{escape(m.get('sku'), 60)} ({escape(m.get('system'), 40)} "
            f"{plan.get('before')}→{plan.get('target')})"
        )
        if len(", ".join([*listed, item])) > budget:
            break
        listed.append(item)
    rest = len(safe) - len(listed)
    text = f"Resync from the source of truth: {', '.join(listed)}" + (
        f" and {rest} more" if rest else ""
    )
    n = len(safe)
    label = f"Resync the {n} the policy deems safe" if n > 1 else "Resync the 1 deemed safe"
    return label[:75], ConfirmObject(
        title=f"Resync {n} SKU{'s' if n != 1 else ''}?"[:100],
        text=MarkdownTextObject(text=text[:300]),
        confirm="Resync",
        deny="Cancel",
    )


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
    """The buttons; Resync only when the write can be made (``details["resync"]``), its
    confirm saying exactly what will be written."""
    d = incident.details or {}
    plan = d.get("resync")
    if isinstance(plan, dict) and plan.get("can") is False:
        return incident_actions(incident.id, resync=None)
    if isinstance(plan, dict) and plan.get("can"):
        what = (
            f"Set *{plan.get('system')}* {plan.get('state')} from {plan.get('before')} to "
            f"*{plan.get('target')}* for `{str(incident.sku)[:60]}` at {incident.location}, "
            f"so it agrees with {d.get('truth_system')}."
        )
    else:
        what = (
            f"Set *{d.get('system')}* to *{d.get('expected')}* for `{str(incident.sku)[:60]}` "
            f"at {incident.location}, the value {d.get('truth_system')} holds."
        )
    confirm = ConfirmObject(
        title="Resync from the source of truth?",
        text=MarkdownTextObject(
            text=(
                f"{what} The write is compare-and-set: if the count changed since, nothing is "
                "overwritten."
            )[:300]
        ),
        confirm="Resync",
        deny="Cancel",
    )
    return incident_actions(incident.id, resync=confirm)


def blocks_json(blocks: list[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]
