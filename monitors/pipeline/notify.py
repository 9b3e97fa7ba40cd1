"""Stage 5: queue what Slack must hear in the ledger's outbox (nothing is lost while
Slack is down; the bot renders and delivers). Dedupe keys make a repeated evaluation
queue nothing twice."""

from __future__ import annotations

from monitors.pipeline.model import Candidate, Context

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


def _still(c: Candidate, title: str) -> str:
    words = _words(c.fingerprint)[1]
    gap = c.details.get("gap")
    return f"{words}: {title}" + (f" (gap {gap})" if gap is not None else "")


def _reminder_bucket(ctx: Context, c: Candidate) -> int:
    assert c.incident is not None
    age = ctx.now - c.incident.opened_at
    return int(age / ctx.timers.repeat_interval)


async def notify(ctx: Context, candidates: list[Candidate]) -> list[Candidate]:
    for c in candidates:
        incident = c.incident
        if incident is None or c.muted_by is not None:
            continue
        n = incident.reopened_count
        if c.notify == "opened" or (incident.slack_ts is None and incident.status != "resolved"):
            # A live incident whose alert was never posted (a crash between saving it
            # and queueing its alert, or it opened muted) has its opening queued again;
            # the dedupe key makes that a no-op while the first one is still queued.
            await ctx.ledger.enqueue(
                "incident.opened",
                ctx.channel,
                {"incident_id": incident.id},
                at=ctx.now,
                incident_id=incident.id,
                dedupe_key=f"incident:{incident.id}:opened:{n}",
            )
        if c.notify == "reopened":
            await ctx.ledger.enqueue(
                "incident.updated",
                ctx.channel,
                {
                    "incident_id": incident.id,
                    "reply": f"{_words(incident.fingerprint)[0]}: {incident.title}",
                },
                at=ctx.now,
                incident_id=incident.id,
                dedupe_key=f"incident:{incident.id}:reopened:{n}",
            )
        elif c.notify == "reminder":
            bucket = _reminder_bucket(ctx, c)
            entry = await ctx.ledger.enqueue(
                "incident.updated",
                ctx.channel,
                {
                    "incident_id": incident.id,
                    "reply": _still(c, incident.title),
                },
                at=ctx.now,
                incident_id=incident.id,
                dedupe_key=f"incident:{incident.id}:reminder:{n}:{bucket}",
            )
            if entry is not None:
                ctx.reminded.append(incident)
    for incident in ctx.resolved:
        await ctx.ledger.enqueue(
            "incident.resolved",
            ctx.channel,
            {
                "incident_id": incident.id,
                "reply": _words(incident.fingerprint)[2],
            },
            at=ctx.now,
            incident_id=incident.id,
            dedupe_key=f"incident:{incident.id}:resolved:{incident.reopened_count}",
        )
    return candidates
