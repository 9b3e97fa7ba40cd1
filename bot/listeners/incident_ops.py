"""What the alert's buttons do, as plain async functions over the ledger and services:
each changes the incident, queues the alert's update (with a thread reply) and delivers
the outbox at once so the message changes without waiting for the next tick."""

from __future__ import annotations

from datetime import timedelta

from bot.render import replies
from bot.render.modals import RootCauseSubmission
from bot.slack_deps import BotDeps, Who, tell
from connectors.normalize import is_whole_number
from ledger import Incident
from monitors.resync import ResyncRequest, ResyncResult

SNOOZE_HOURS = {"1h": 1, "4h": 4, "24h": 24}


async def publish_update(deps: BotDeps, incident: Incident, reply: str, *, kind: str = "") -> None:
    """Queue the alert's update with a thread reply, then deliver it right away."""
    channel = incident.slack_channel or deps.config.slack.alerts_channel
    await deps.ledger.enqueue(
        kind or "incident.updated",
        channel,
        {"incident_id": incident.id, "reply": reply},
        deps.clock.now(),
        incident_id=incident.id,
    )
    await deps.outbox.deliver_due()


async def acknowledge(deps: BotDeps, who: Who, incident_id: int) -> None:
    before = await deps.ledger.get_incident(incident_id)
    if before.status == "acknowledged":
        await tell(deps, who, replies.already_acknowledged(incident_id, before.acknowledged_by))
        return
    incident = await deps.ledger.acknowledge(
        incident_id, who.user, deps.clock.now(), detail={"via": "slack"}
    )
    await publish_update(deps, incident, replies.acknowledged(who.user))


async def resolve(deps: BotDeps, who: Who, incident_id: int) -> None:
    before = await deps.ledger.get_incident(incident_id)
    if before.status == "resolved":
        await tell(deps, who, f"Incident #{incident_id} is already resolved.")
        return
    incident = await deps.ledger.resolve(
        incident_id, who.user, deps.clock.now(), detail={"via": "slack"}
    )
    await publish_update(deps, incident, replies.resolved(who.user), kind="incident.resolved")


async def snooze(deps: BotDeps, who: Who, value: str) -> None:
    head, _, code = value.partition(":")
    if not is_whole_number(head) or code not in SNOOZE_HOURS:
        await tell(deps, who, replies.unknown_snooze(value))
        return
    hours = SNOOZE_HOURS[code]
    now = deps.clock.now()
    until = now + timedelta(hours=hours)
    incident = await deps.ledger.snooze(int(head), until, who.user, now, detail={"via": "slack"})
    await publish_update(deps, incident, replies.snoozed(hours, who.user, until))


async def resync_incident(deps: BotDeps, who: Who, incident_id: int) -> ResyncResult | None:
    incident = await deps.ledger.get_incident(incident_id)
    system = incident.system or (incident.details or {}).get("system")
    if incident.status == "resolved":
        await tell(deps, who, f"Incident #{incident_id} is resolved; nothing to resync.")
        return None
    if not (system and incident.sku and incident.location):
        await tell(deps, who, f"Incident #{incident_id} is not about one SKU at one location.")
        return None
    result = await resync(deps, who, incident.sku, incident.location, str(system), incident_id)
    if result.status == "applied" and incident.status == "open":
        incident = await deps.ledger.acknowledge(
            incident_id, who.user, deps.clock.now(), detail={"via": "resync"}
        )
    else:
        incident = await deps.ledger.get_incident(incident_id)
    await publish_update(deps, incident, replies.resync_requested(result.message, who.user))
    if result.status not in ("applied", "in_sync"):
        await tell(deps, who, replies.resync_failed(result.message))
    return result


async def resync(
    deps: BotDeps, who: Who, sku: str, location: str, system: str, incident_id: int | None
) -> ResyncResult:
    try:
        state = deps.config.system(system).write_state
    except KeyError:
        state = "available"
    return await deps.resync.resync(
        ResyncRequest(
            sku=sku,
            location=location,
            system=system,
            requested_by=who.user,
            incident_id=incident_id,
            state=state,
        )
    )


async def save_root_cause(deps: BotDeps, who: Who, form: RootCauseSubmission) -> None:
    incident = await deps.ledger.set_root_cause(
        form.incident_id,
        form.label,
        form.remediation,
        form.follow_up,
        who.user,
        deps.clock.now(),
        detail={"via": "slack", "cause": form.cause},
    )
    reply = replies.root_cause_logged(who.user, form.label, form.remediation, form.follow_up)
    await publish_update(deps, incident, reply)
