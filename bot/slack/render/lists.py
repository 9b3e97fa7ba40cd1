"""``/incidents``, ``/synchealth`` and ``/driftwatch help``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from slack_sdk.models.blocks import Block, ContextBlock, SectionBlock

from bot.slack.render.blocks import header, md
from connectors.health import Health
from ledger import Incident
from monitors.mrkdwn import clip, escape, person, public_error, when

HELP = """*Driftwatch* watches what Shopify, the WMS and the ERP each believe in.
• `/drift SKU` — what each system says about a SKU at every location, the gap, incidents
• `/drift` — the worst drifts now
• `/incidents [open|all] [kind]` — incidents, newest first
• `/synchealth` — how each connected system is doing
• `/synchealth chain` — each hop's measured transit time against its SLA, with a chart
• `/resync SKU [LOCATION]` — resync from the source of truth (asks to confirm; writers only)
• `/adjust [SKU [LOCATION]]` — record a manual adjustment with a reason code (writers only)
On an alert: *Resync* and *Resolve* are for writers; anyone can *Acknowledge*, *Snooze* \
and *Log root cause*."""


def help_blocks() -> list[Block]:
    return [SectionBlock(text=md(HELP))]


def incident_list(incidents: Sequence[Incident], scope: str, kind: str | None) -> list[Block]:
    title = f"{'Open' if scope == 'open' else 'All'} incidents" + (f" ({kind})" if kind else "")
    if not incidents:
        where = f" ({escape(kind, 60)})" if kind else ""
        what = "Open" if scope == "open" else "All"
        return [SectionBlock(text=md(f"*{what} incidents{where}*: none."))]
    lines = []
    for i in incidents[:25]:
        who = f", acknowledged by {person(i.acknowledged_by)}" if i.acknowledged_by else ""
        if i.resolved_by:
            who = f", resolved by {person(i.resolved_by)}"
        lines.append(
            f"• #{i.id} [{escape(i.severity, 20)}] {escape(i.title, 200)} — "
            f"*{escape(i.status, 20)}*{who} · opened {when(i.opened_at)}"
        )
    blocks: list[Block] = [
        header(title),
        SectionBlock(text=md(clip("\n".join(lines), 3000))),
    ]
    if len(incidents) > 25:
        blocks.append(ContextBlock(elements=[md(f"…and {len(incidents) - 25} more.")]))
    return blocks


def _ago(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def sync_health(
    healths: Sequence[Health], now: datetime, incidents: Sequence[Incident] = ()
) -> list[Block]:
    """Each system: red while its reads fail or a critical incident about it (sync
    health, webhooks) is open, yellow while a warning is; then the open drift incidents
    (the numbers their alerts show)."""
    lines = []
    about: dict[str, list[Incident]] = {}
    for i in incidents:
        if i.fingerprint.startswith(("health:", "webhook:")) and i.system:
            about.setdefault(i.system, []).append(i)
    for h in healths:
        mine = about.get(h.system, [])
        icon = ":large_green_circle:"
        if h.last_success is None and h.error_streak == 0:
            icon = ":white_circle:"
        if any(i.severity == "warning" for i in mine):
            icon = ":large_yellow_circle:"
        if h.error_streak or any(i.severity == "critical" for i in mine):
            icon = ":red_circle:"
        good = (
            f"{when(h.last_success)} ({_ago(h.last_success, now)})"
            if h.last_success is not None
            else "never"
        )
        line = (
            f"{icon} *{escape(h.system, 60)}* — last good read {good}; "
            f"{h.requests} requests, {h.throttles} throttled, {h.failures} failed"
        )
        if h.error_streak:
            last = public_error(h.last_error or "unknown", 400)
            line += f"\n      {h.error_streak} errors in a row; last: {last}"
        for i in mine[:5]:
            severity = escape(i.severity, 20)
            line += f"\n      open: {escape(i.title, 200)} ({severity}, #{i.id})"
        lines.append(line)
    drifts = [i for i in incidents if i.fingerprint.startswith(("drift:", "group:"))]
    if drifts:
        critical = sum(1 for i in drifts if i.severity == "critical")
        worst = sorted(drifts, key=lambda i: -abs(_gap(i)))[:3]
        named = "; ".join(
            f"`{escape(i.sku, 100)}` at {escape(i.location, 60)}: "
            f"{escape((i.details or {}).get('system'), 40)} {_signed(_gap(i))} (#{i.id})"
            if not (i.details or {}).get("grouped")
            else f"{escape(i.title, 200)} (#{i.id})"
            for i in worst
        )
        drift_line = (
            f":warning: *Drift*: {len(drifts)} open incident{'s' if len(drifts) != 1 else ''}"
            f" ({critical} critical) — worst: {named}. `/drift` lists them."
        )
    else:
        drift_line = ":white_check_mark: *Drift*: no open drift incident."
    return [
        header("Sync health"),
        SectionBlock(text=md("\n".join(lines) or "No systems configured.")),
        SectionBlock(text=md(drift_line)),
    ]


def _gap(incident: Incident) -> int:
    gap = (incident.details or {}).get("gap")
    return gap if isinstance(gap, int) else 0


def _signed(n: int) -> str:
    return f"{n:+d}"
