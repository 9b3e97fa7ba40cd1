"""What the alert's buttons do, as plain async functions over the ledger and services:
each changes the incident, queues the alert's update (with a thread reply) and delivers
the outbox at once so the message changes without waiting for the next tick."""

from __future__ import annotations

from datetime import timedelta

from bot.slack.deps import BotDeps, Who, tell
from bot.slack.render import replies
from bot.slack.render.modals import RootCauseSubmission
from connectors.normalize import is_whole_number
from ledger import Incident
from monitors.mrkdwn import escape, person
from monitors.resync import ResyncRequest, ResyncResult

SNOOZE_HOURS = {"1h": 1, "4h": 4, "24h": 24}


async def publish_update(
    deps: BotDeps, incident: Incident, reply: str | None, *, kind: str = ""
) -> None:
    """Queue the alert's update (with a thread reply, if any), then deliver it right away."""
    channel = incident.slack_channel or deps.config.slack.alerts_channel
    payload: dict[str, object] = {"incident_id": incident.id}
    if reply:
        payload["reply"] = reply
    await deps.ledger.enqueue(
        kind or "incident.updated",
        channel,
        payload,
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
    """Resync the incident's level. The service's after-resync hook reads the SKU again
    and edits the alert to what is now true (resolved with the final counts, or still
    drifting with the new numbers and why), with the outcome in its thread."""
    incident = await deps.ledger.get_incident(incident_id)
    system = incident.system or (incident.details or {}).get("system")
    if incident.status == "resolved":
        await tell(deps, who, f"Incident #{incident_id} is resolved; nothing to resync.")
        return None
    if not (system and incident.sku and incident.location):
        await tell(deps, who, f"Incident #{incident_id} is not about one SKU at one location.")
        return None
    result = await resync(deps, who, incident.sku, incident.location, str(system), incident_id)
    incident = await deps.ledger.get_incident(incident_id)
    plan = (incident.details or {}).get("resync")  # as the read after the resync says
    if result.status == "applied" and incident.status == "open":
        incident = await deps.ledger.acknowledge(
            incident_id, who.user, deps.clock.now(), detail={"via": "resync"}
        )
        await publish_update(deps, incident, None)
    elif deps.recheck is None:  # nothing re-checks it: say what happened at least
        await publish_update(deps, incident, replies.resync_requested(result.message, who.user))
    else:
        await deps.outbox.deliver_due()
    if result.status not in ("applied", "in_sync"):
        step = plan.get("next") if isinstance(plan, dict) and plan.get("can") is False else None
        text = replies.resync_failed(result.message)
        await tell(deps, who, text + (f"\nNext step: {escape(step, 600)}" if step else ""))
    return result


async def resync_group(deps: BotDeps, who: Who, incident_id: int) -> None:
    """A storm's "Resync the N the policy deems safe": read its SKUs again, resync the
    members still safe (their tags checked again, the ledger's too), then read them
    again and tell the group's alert how it went, once."""
    incident = await deps.ledger.get_incident(incident_id)
    if incident.status == "resolved" or not (incident.details or {}).get("grouped"):
        await tell(deps, who, f"Incident #{incident_id} is not an open group of drifts.")
        return
    recheck = deps.recheck
    skus = [str(m.get("sku")) for m in _members(incident) if m.get("sku")]
    if recheck is not None and skus:
        await recheck.refresh(skus)
        incident = await deps.ledger.get_incident(incident_id)
    if incident.status == "resolved":
        await deps.outbox.deliver_due()
        await tell(deps, who, "Every SKU of that group agrees again; nothing was written.")
        return
    safe = set((incident.details or {}).get("safe") or ())
    never = set(deps.config.policy.never_auto_tags)
    chosen = []
    for m in _members(incident):
        if m.get("fingerprint") not in safe:
            continue
        item = await deps.ledger.get_item(str(m.get("sku")))
        if item is not None and never & set(item.tags):
            continue
        chosen.append(m)
    if not chosen:
        await tell(deps, who, "None of those SKUs is safe to resync from here any more.")
        return
    done: list[str] = []
    applied = 0
    for m in chosen:
        result = await resync(
            deps, who, str(m["sku"]), str(incident.location), str(m["system"]), None, after=False
        )
        message = replies.service_message(result.message)
        if result.status == "applied":
            applied += 1
            done.append(message)
        else:
            done.append(f"{escape(m['sku'], 100)}: {message}")
    text = (
        f"Resynced {applied} of the {len(chosen)} SKUs the policy deems safe — requested by "
        f"{person(who.user)}:\n" + "\n".join(f"• {line}" for line in done[:20])
    )
    if len(done) > 20:
        text += f"\n…and {len(done) - 20} more"
    if recheck is not None:
        await recheck.group(incident, skus, who.user, text)
    else:
        await publish_update(deps, incident, text)
    await deps.outbox.deliver_due()


def _members(incident: Incident) -> list[dict[str, object]]:
    listed = (incident.details or {}).get("members") or ()
    return [m for m in listed if isinstance(m, dict)]


async def resync(
    deps: BotDeps,
    who: Who,
    sku: str,
    location: str,
    system: str,
    incident_id: int | None,
    *,
    after: bool = True,
) -> ResyncResult:
    """``after`` False: the after-resync hooks do not run (the caller re-checks once)."""
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
        ),
        after=after,
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
