"""The weekly summary's two decision buttons and the note modal they open. Writers only;
each listener acks at once and hands the work to the service."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.slack.deps import BotDeps, Who, run_for, tell
from bot.slack.middleware.authorize import Writers, writers_only
from bot.slack.render.review import ACTIONS, NOTE_CALLBACK, NoteContext, note_of
from bot.slack.verdicts import open_note, record_decision

WHAT = "record the weekly verification decision"


def register_verdicts(app: AsyncApp, deps: BotDeps, writers: Writers) -> None:
    for action_id, decision in ACTIONS.items():
        _register_button(app, deps, writers, action_id, decision)

    @app.view(NOTE_CALLBACK)
    async def submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        view = body.get("view") or {}
        try:
            context = NoteContext.loads(str(view.get("private_metadata") or ""))
        except ValueError:
            await ack(response_action="errors", errors={"note": "This form is not a decision."})
            return
        await ack()
        who = Who(Who.of(body).user, context.channel, None)
        if not await writers.allows(who.user, context.channel):
            run_for(
                deps, who, "verdict.refused", lambda: tell(deps, who, f"Only writers can {WHAT}.")
            )
            return
        note = note_of(view)
        run_for(deps, who, "verdict.record", lambda: record_decision(deps, who, context, note))


def _register_button(
    app: AsyncApp, deps: BotDeps, writers: Writers, action_id: str, decision: str
) -> None:
    @app.action(action_id, middleware=[writers_only(deps, writers, WHAT)])
    async def clicked(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        who = Who.of(body)
        action = (body.get("actions") or [{}])[0]
        value = str(action.get("value") or "")
        trigger_id = str(body.get("trigger_id") or "")
        message_ts = (body.get("container") or {}).get("message_ts")

        async def work() -> None:
            await open_note(deps, who, decision, value, trigger_id, message_ts)

        run_for(deps, who, action_id, work)
