"""The alert's buttons, the root-cause modal, and the buttons of ephemeral answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.slack.deps import BotDeps, Who, run_for, tell
from bot.slack.listeners import incident_ops as ops
from bot.slack.listeners.drift_report import share_drift
from bot.slack.middleware.authorize import Writers, writers_only
from bot.slack.render import replies
from bot.slack.render.modals import ROOT_CAUSE_CALLBACK, parse_root_cause, root_cause_modal
from connectors.normalize import is_whole_number


def _value(body: Mapping[str, Any]) -> str:
    action = (body.get("actions") or [{}])[0]
    return str(action.get("value") or (action.get("selected_option") or {}).get("value") or "")


def _incident_id(body: Mapping[str, Any]) -> int:
    head = _value(body).split(":", 1)[0]
    if not is_whole_number(head):
        raise ValueError("this button does not name an incident")
    return int(head)


def register_actions(app: AsyncApp, deps: BotDeps, writers: Writers) -> None:
    @app.action("acknowledge")
    async def acknowledge(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        run_for(deps, who, "acknowledge", lambda: ops.acknowledge(deps, who, _incident_id(body)))

    @app.action("resolve", middleware=[writers_only(deps, writers, "resolve incidents")])
    async def resolve(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        run_for(deps, who, "resolve", lambda: ops.resolve(deps, who, _incident_id(body)))

    @app.action("snooze")
    async def snooze(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        run_for(deps, who, "snooze", lambda: ops.snooze(deps, who, _value(body)))

    @app.action("resync", middleware=[writers_only(deps, writers, "resync")])
    async def resync(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)

        async def work() -> None:
            await ops.resync_incident(deps, who, _incident_id(body))

        run_for(deps, who, "resync", work)

    @app.action("resync_group", middleware=[writers_only(deps, writers, "resync")])
    async def resync_group(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        run_for(deps, who, "resync_group", lambda: ops.resync_group(deps, who, _incident_id(body)))

    @app.action("root_cause")
    async def root_cause(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        trigger_id = str(body.get("trigger_id", ""))

        async def work() -> None:
            incident = await deps.ledger.get_incident(_incident_id(body))
            view = root_cause_modal(incident, who.channel)
            await deps.client.views_open(trigger_id=trigger_id, view=view.to_dict())

        run_for(deps, who, "root_cause", work)

    @app.view(ROOT_CAUSE_CALLBACK)
    async def root_cause_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        try:
            form = parse_root_cause(body.get("view") or {})
        except ValueError as exc:
            await ack(response_action="errors", errors={"cause": str(exc)})
            return
        await ack()
        who = Who(Who.of(body).user, form.channel, None)
        run_for(deps, who, "root_cause.save", lambda: ops.save_root_cause(deps, who, form))

    @app.action("resync_sku", middleware=[writers_only(deps, writers, "resync")])
    async def resync_sku(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        sku, location, system = ([*_value(body).split("|"), "", "", ""])[:3]

        async def work() -> None:
            open_ = [
                i
                for i in await deps.ledger.list_incidents(sku=sku)
                if i.status != "resolved" and i.location == location and i.system == system
            ]
            if open_:
                await ops.resync_incident(deps, who, open_[0].id)
                await tell(deps, who, replies.resync_done(sku, location))
                return
            result = await ops.resync(deps, who, sku, location, system, None)
            await tell(deps, who, replies.service_message(result.message))

        run_for(deps, who, "resync_sku", work)

    @app.action("resync_cancel")
    async def resync_cancel(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        run_for(deps, who, "resync_cancel", lambda: tell(deps, who, "OK, nothing was changed."))

    @app.action("share_drift")
    async def share(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        run_for(deps, who, "share_drift", lambda: share_drift(deps, who, _value(body)))
