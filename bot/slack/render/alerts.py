"""Block Kit for incident alerts, built with slack_sdk's model classes (they validate).

Every value from outside (SKU, location, system and title, the likely cause, a person's
root cause) goes through :func:`monitors.mrkdwn.escape`, and every text object through
:mod:`bot.slack.render.blocks`, which keeps it within Slack's limit for its field. Every
number on a card comes from one read (``details``); once resolved, the card shows the
final counts and how it ended, never a live gap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    SectionBlock,
)

from bot.slack.render.actions import incident_actions
from bot.slack.render.blocks import confirm, field, header, md, message_text
from bot.slack.render.health import health_blocks
from ledger import Incident
from monitors.incidents import TITLES
from monitors.mrkdwn import clip, escape, person, public_error, when

ICON = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}


def _signed(n: object) -> str:
    return f"{n:+d}" if isinstance(n, int) and not isinstance(n, bool) else "n/a"


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
    if d.get("grouped"):
        return message_text(group_text(incident))
    if incident.status == "resolved":
        note = d.get("resolution")
        how = note.get("how") if isinstance(note, dict) else None
        return message_text(f"Resolved: {title}" + (f" — {escape(how, 300)}" if how else ""))
    system = escape(d.get("system", "?"), 60)
    text = f"{title} — {system} is off by {_signed(d.get('gap'))} units"
    policy = d.get("policy")
    if isinstance(policy, dict) and policy.get("outcome") == "escalated":
        text += " — escalated to on-call" if policy.get("oncall") else " — needs a person"
    return message_text(text)


def alert_blocks(incident: Incident) -> list[Block]:
    """The alert message for an incident in its current state: every number on it from
    one read (``details``), and, once resolved, the final counts and how it ended."""
    if incident.fingerprint.startswith(("health:", "webhook:")):
        return health_blocks(incident)
    if incident.kind == "duplicate_sku":
        return duplicate_blocks(incident)
    d: dict[str, Any] = dict(incident.details or {})
    if d.get("grouped"):
        return group_blocks(incident)
    status = incident.status
    note = d.get("resolution") if status == "resolved" else None
    note = note if isinstance(note, dict) else None
    final = note is not None and isinstance(note.get("values"), dict)
    values = (note or {}).get("values") if final else d.get("values") or {}
    truth = (note or {}).get("truth_system") if final else d.get("truth_system")
    lines = []
    for system, value in (values or {}).items():
        mark = " _(source of truth)_" if system == truth else ""
        shown = "not reported" if value is None else escape(value, 40)
        lines.append(f"• *{escape(system, 60)}*: {shown}{mark}")
    severity = escape(incident.severity, 20)
    blocks: list[Block] = [
        header(("✅ Resolved: " if status == "resolved" else "") + incident.title),
        SectionBlock(
            fields=[
                field(f"*SKU*\n`{escape(incident.sku or '?', 500)}`"),
                field(f"*Location*\n{escape(incident.location or '?', 200)}"),
                field(f"*Drifting system*\n{escape(d.get('system') or '?', 100)}"),
                field(_gap_field(incident, d, note)),
                field(f"*Severity*\n{ICON.get(incident.severity, '')} {severity}"),
                field(f"*Since*\n{when(incident.opened_at)}"),
            ]
        ),
        SectionBlock(
            text=md(
                ("*Final counts*\n" if final else "*What each system says*\n")
                + "\n".join(lines or ["no counts"])
            )
        ),
    ]
    if note is not None:
        blocks.append(SectionBlock(text=md(_resolution_text(note))))
    if incident.root_cause_hint:
        blocks.append(SectionBlock(text=md(_cause_text(incident, d))))
    policy = policy_line(d.get("policy"))
    decided = (d.get("policy") or {}).get("gap") if isinstance(d.get("policy"), dict) else None
    if policy and isinstance(decided, int) and decided != d.get("gap") and status != "resolved":
        policy += f" _(decided when the gap was {decided:+d})_"
    if policy:
        blocks.append(SectionBlock(text=md(policy)))
    plan = d.get("resync")
    if status != "resolved" and isinstance(plan, dict) and plan.get("can") is False:
        blocks.append(
            SectionBlock(
                text=md(
                    f"*Why no Resync*: {escape(plan.get('why'), 1200)}\n"
                    f"*Next step*: {escape(plan.get('next'), 1200)}"
                )
            )
        )
    blocks.append(ContextBlock(elements=[md(_status_line(incident))]))
    if status != "resolved":
        blocks += [DividerBlock(), _actions(incident)]
    return blocks


def _gap_field(incident: Incident, d: dict[str, Any], note: dict[str, Any] | None) -> str:
    """The gap now; once resolved, the final gap (never a live gap on a resolved alert)."""
    if incident.status == "resolved":
        if note is not None and "gap" in note:
            return (
                f"*Final gap*\n{_signed(note.get('gap'))} units vs expected "
                f"{_number(note.get('expected'))}"
            )
        return f"*Gap when last seen*\n{_signed(d.get('gap'))} units (before it was resolved)"
    gap_pct = d.get("gap_percent")
    gap_text = f"{_signed(d.get('gap'))} units" + (
        f" ({gap_pct:+.1f}%)" if isinstance(gap_pct, int | float) else ""
    )
    return f"*Gap*\n{gap_text} vs expected {_number(d.get('expected'))}"


def _resolution_text(note: dict[str, Any]) -> str:
    """How a resolved incident ended. ``after.text`` is composed (and escaped) by the
    re-check that resolved it; ``how`` is escaped here."""
    after = note.get("after")
    lead = f"{after.get('text')}\n" if isinstance(after, dict) and after.get("text") else ""
    return clip(f"*How it ended*\n{lead}{escape(note.get('how'), 1000)}", 3000)


def _cause_text(incident: Incident, d: dict[str, Any]) -> str:
    """The likely cause; when its sentence was written for other numbers than the
    alert's (a cause is kept from the drift's start), it says which."""
    seen = d.get("cause_seen")
    label = "*Likely cause*"
    if isinstance(seen, dict) and any(
        seen.get(k) != d.get(k) for k in ("actual", "expected", "gap")
    ):
        at = seen.get("at")
        stamp = when(datetime.fromisoformat(at)) if isinstance(at, str) else "earlier"
        label = (
            f"*Likely cause* _(as first seen {stamp}: {escape(seen.get('system'), 60)} "
            f"{_number(seen.get('actual'))}, expected {_number(seen.get('expected'))}, "
            f"gap {_signed(seen.get('gap'))})_"
        )
    return clip(f"{label}\n{public_error(incident.root_cause_hint, 2500)}", 3000)


def group_text(incident: Incident) -> str:
    """A storm's notification text: its size and its worst SKUs with their numbers."""
    d = incident.details or {}
    worst = [m for m in d.get("worst") or () if isinstance(m, dict)][:3]
    found = d.get("count")
    count = found if isinstance(found, int) else len(d.get("members") or ())
    what = escape(TITLES.get(incident.kind, incident.kind), 80)
    done = "Resolved: " if incident.status == "resolved" else ""
    head = f"{done}{what}: {count} SKUs at {escape(incident.location, 60)}"
    if not worst:
        return head
    named = ", ".join(
        f"{escape(m.get('sku'), 60)} ({escape(m.get('system'), 40)} {_signed(m.get('gap'))})"
        for m in worst
    )
    more = count - len(worst)
    return f"{head} — worst: {named}" + (f" and {more} more" if more > 0 else "")


def _member_line(m: dict[str, Any]) -> str:
    return (
        f"• `{escape(m.get('sku'), 100)}`: {escape(m.get('system'), 40)} "
        f"{_number(m.get('actual'))}, expected {_number(m.get('expected'))} "
        f"({_signed(m.get('gap'))})"
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
    lines = [_member_line(m) for m in worst]
    more = count - len(worst)
    if more > 0:
        lines.append(f"…and {more} more")
    apart = d.get("tracked_apart")
    if isinstance(apart, int) and apart:
        lines.append(f"({apart} more of this kind here are on alerts of their own)")
    systems = ", ".join(escape(s, 60) for s in d.get("systems") or ()) or "unknown"
    severity = escape(incident.severity, 20)
    blocks: list[Block] = [
        header(f"{'✅ Resolved: ' if resolved else ''}{what}: {count} SKUs at {incident.location}"),
        SectionBlock(
            fields=[
                field(f"*Location*\n{escape(incident.location, 60)}"),
                field(f"*Systems*\n{systems}"),
                field(f"*SKUs drifting*\n{count}"),
                field(f"*Total gap*\n{_signed(d.get('total_gap'))} units"),
                field(f"*Severity*\n{ICON.get(incident.severity, '')} {severity}"),
                field(f"*Since*\n{when(incident.opened_at)}"),
            ]
        ),
    ]
    note = d.get("resolution")
    if resolved and isinstance(note, dict):
        blocks.append(SectionBlock(text=md(_resolution_text(note))))
    else:
        blocks.append(SectionBlock(text=md("*Worst drifts*\n" + "\n".join(lines))))
    safe = _safe_members(d)
    if not resolved and not safe:
        blocks.append(
            ContextBlock(
                elements=[
                    md(
                        "None of them is one the auto-resync policy deems safe to "
                        "resync: resync them one by one with `/resync SKU LOCATION`."
                    )
                ]
            )
        )
    blocks.append(ContextBlock(elements=[md(_status_line(incident))]))
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
            f"{_number(plan.get('before'))}→{_number(plan.get('target'))})"
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
    return label, confirm(f"Resync {n} SKU{'s' if n != 1 else ''}?", text, "Resync")


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
    """The buttons; Resync only when the write can be made (``details["resync"]``), its
    confirm saying exactly what will be written."""
    d = incident.details or {}
    plan = d.get("resync")
    if isinstance(plan, dict) and plan.get("can") is False:
        return incident_actions(incident.id, resync=None)
    sku, location = escape(incident.sku, 60), escape(incident.location, 40)
    truth = escape(d.get("truth_system"), 30)
    if isinstance(plan, dict) and plan.get("can"):
        what = (
            f"Set *{escape(plan.get('system'), 30)}* {escape(plan.get('state'), 20)} from "
            f"{_number(plan.get('before'))} to *{_number(plan.get('target'))}* for `{sku}` at "
            f"{location}, so it agrees with {truth}."
        )
    else:
        what = (
            f"Set *{escape(d.get('system'), 30)}* to *{_number(d.get('expected'))}* for `{sku}` "
            f"at {location}, the value {truth} holds."
        )
    dialog = confirm(
        "Resync from the source of truth?",
        f"{what} The write is compare-and-set: if the count changed since, nothing is overwritten.",
        "Resync",
    )
    return incident_actions(incident.id, resync=dialog)


def blocks_json(blocks: list[Block]) -> list[dict[str, Any]]:
    return [b.to_dict() for b in blocks]
