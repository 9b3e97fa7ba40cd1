"""Stage 5: queue what Slack must hear in the ledger's outbox (nothing is lost while
Slack is down; the bot renders and delivers). Dedupe keys make a repeated evaluation
queue nothing twice.

Reminders. An incident nobody has acknowledged is reminded of in its thread at most
once per ``Timers.repeat_interval`` (``[schedules] reminder_seconds``), counted on the
injected clock from the last time the thread was nudged: the opening, a reopening or
the previous reminder (``details["reminded_at"]``, kept across evaluations). Two
evaluations at once compute the same last nudge, hence the same dedupe key: one
reminder. An acknowledged incident has a person on it and is not reminded.

The replies are mrkdwn: the title carries a SKU and a location from outside, so it goes
through :func:`monitors.mrkdwn.escape`.

Besides openings, reopenings, reminders and resolutions:

* a live incident whose facts changed has its alert edited (no thread reply), so the
  alert, ``/drift`` and ``/synchealth`` show the same read;
* a re-check after an action (:class:`~monitors.pipeline.model.Action`) tells the
  incidents it concerns how it went: resolved, with the final counts, or still
  drifting, with the new numbers and the reason; and the incident the action was taken
  from hears back even when its SKU could not be read again.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from ledger import Incident, InvalidTransition
from monitors.mrkdwn import escape
from monitors.pipeline.model import Candidate, Context
from monitors.pipeline.words import (
    already_resolved,
    not_rechecked,
    resolved_reply,
    still_drifting,
)

#: the incident note holding when its thread was last nudged (ISO 8601)
REMINDED_NOTE = "reminded_at"

#: Words for an incident's threaded replies, by fingerprint family: (again, still, recovered).
_WORDS: dict[str, tuple[str, str, str]] = {
    "health:": (
        "Unhealthy again",
        "Still unhealthy",
        "Recovered: the system is reading normally again.",
    ),
    "webhook:": (
        "Webhook trouble again",
        "Still failing",
        "Recovered: webhooks are arriving and verifying normally again.",
    ),
}
_DRIFT_WORDS = (
    "Drifting again",
    "Still drifting",
    "Recovered: every system agrees with the source of truth again.",
)


def _words(fingerprint: str) -> tuple[str, str, str]:
    family = fingerprint.split(":", 1)[0] + ":"
    return _WORDS.get(family, _DRIFT_WORDS)


def _duration(span: timedelta) -> str:
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def reopened_text(incident: Incident) -> str:
    """The thread reply when an incident opens again."""
    return f"{_words(incident.fingerprint)[0]}: {escape(incident.title, 300)}"


def reminder_text(incident: Incident, details: dict[str, object], now: datetime) -> str:
    """The thread reply reminding that an incident is still open: how long, and the gap
    now (so consecutive reminders say what changed, if anything)."""
    words = _words(incident.fingerprint)[1]
    gap = details.get("gap")
    shown = f" (gap {gap:+d})" if isinstance(gap, int) and not isinstance(gap, bool) else ""
    since = _duration(now - incident.opened_at)
    return f"{words} after {since}: {escape(incident.title, 300)}{shown}"


def recovered_text(incident: Incident) -> str:
    return _words(incident.fingerprint)[2]


def last_nudge(incident: Incident) -> datetime:
    """When the incident's thread was last nudged: its opening, or the newest reopening
    or reminder recorded in ``details["reminded_at"]``."""
    noted = (incident.details or {}).get(REMINDED_NOTE)
    if isinstance(noted, str):
        try:
            at = datetime.fromisoformat(noted)
        except ValueError:
            return incident.opened_at
        return max(at, incident.opened_at)
    return incident.opened_at


async def _nudged(ctx: Context, incident: Incident) -> None:
    with contextlib.suppress(InvalidTransition):  # resolved meanwhile: nothing to remind
        await ctx.ledger.annotate_incident(incident.id, REMINDED_NOTE, ctx.now.isoformat(), ctx.now)


async def notify(ctx: Context, candidates: list[Candidate]) -> list[Candidate]:
    told: set[int] = set()
    for c in candidates:
        incident = c.incident
        if incident is None:
            continue
        if ctx.action is not None and await _after_action(ctx, c, incident):
            told.add(incident.id)
            continue
        if c.muted_by is not None:
            continue
        n = incident.reopened_count
        if c.notify == "opened" or (incident.slack_ts is None and incident.status != "resolved"):
            # A live incident whose alert was never posted (a crash between saving it
            # and queueing its alert, or it opened muted) has its opening queued again;
            # the dedupe key makes that a no-op while the first one is still queued.
            await ctx.ledger.enqueue(
                "incident.opened",
                ctx.channel_for(incident),
                {"incident_id": incident.id},
                at=ctx.now,
                incident_id=incident.id,
                dedupe_key=f"incident:{incident.id}:opened:{n}",
            )
        if c.notify == "reopened":
            entry = await ctx.ledger.enqueue(
                "incident.updated",
                ctx.channel_for(incident),
                {"incident_id": incident.id, "reply": reopened_text(incident)},
                at=ctx.now,
                incident_id=incident.id,
                dedupe_key=f"incident:{incident.id}:reopened:{n}",
            )
            if entry is not None:
                await _nudged(ctx, incident)
        elif (
            c.notify == "reminder"
            and incident.status == "open"
            and ctx.now - last_nudge(incident) >= ctx.timers.repeat_interval
        ):
            previous = last_nudge(incident)
            entry = await ctx.ledger.enqueue(
                "incident.updated",
                ctx.channel_for(incident),
                {"incident_id": incident.id, "reply": reminder_text(incident, c.details, ctx.now)},
                at=ctx.now,
                incident_id=incident.id,
                dedupe_key=f"incident:{incident.id}:reminder:{n}:{previous.isoformat()}",
            )
            if entry is not None:
                await _nudged(ctx, incident)
                ctx.reminded.append(incident)
        elif c.changed and incident.slack_ts is not None:
            # the counts moved: the alert shows this read (an edit notifies nobody)
            await ctx.ledger.enqueue(
                "incident.updated",
                ctx.channel_for(incident),
                {"incident_id": incident.id},
                at=ctx.now,
                incident_id=incident.id,
                dedupe_key=f"incident:{incident.id}:seen:{ctx.now.isoformat()}",
            )
    for incident in ctx.resolved:
        told.add(incident.id)
        note = (incident.details or {}).get("resolution")
        reply = (
            resolved_reply(note, grouped=incident.fingerprint.startswith("group:"))
            if isinstance(note, dict) and note.get("how")
            else recovered_text(incident)
        )
        await ctx.ledger.enqueue(
            "incident.resolved",
            ctx.channel_for(incident),
            {"incident_id": incident.id, "reply": reply},
            at=ctx.now,
            incident_id=incident.id,
            dedupe_key=f"incident:{incident.id}:resolved:{incident.reopened_count}",
        )
    action = ctx.action
    if (
        action is not None
        and action.reply
        and action.incident_id is not None
        and action.incident_id not in told
    ):
        # the incident it was done from was not evaluated (its SKU or system not read)
        incident = await ctx.ledger.get_incident(action.incident_id)
        if incident.status == "resolved":
            reply = already_resolved(action, (incident.details or {}).get("resolution"))
        else:
            reply = not_rechecked(action, ctx.failures)
        await ctx.ledger.enqueue(
            "incident.updated",
            ctx.channel_for(incident),
            {"incident_id": incident.id, "reply": reply},
            at=ctx.now,
            incident_id=incident.id,
        )
    return candidates


async def _after_action(ctx: Context, c: Candidate, incident: Incident) -> bool:
    """Tell an incident the action concerns that it still drifts (True if told)."""
    action = ctx.action
    assert action is not None
    concerned = action.incident_id == incident.id or (
        not c.members and action.concerns(incident.sku, incident.location)
    )
    if c.members:
        concerned = concerned or any(
            m.get("sku") == action.sku for m in (c.details.get("members") or ())
        )
    if not concerned or c.notify in ("opened", "reopened"):
        return False
    if not action.reply and action.incident_id != incident.id:
        return False
    reply = still_drifting(c.details, action, incident.root_cause_hint) if action.reply else None
    await ctx.ledger.enqueue(
        "incident.updated",
        ctx.channel_for(incident),
        {"incident_id": incident.id, **({"reply": reply} if reply else {})},
        at=ctx.now,
        incident_id=incident.id,
    )
    return True
