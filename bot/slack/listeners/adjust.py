"""``/adjust``: a modal for a manual adjustment, checked field by field before it closes,
then handed to :class:`~monitors.adjustments.AdjustmentService` after the ack.

The modal's ``private_metadata`` carries the channel and the slash command's
``response_url`` (a view submission has neither), so the answer reaches the person
ephemerally where they typed the command, and channel-based writers stay writers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.response import BoltResponse

from bot.matches import close_matches
from bot.slack.deps import BotDeps, Who, run_for, tell
from bot.slack.listeners.drift_report import resolve_sku
from bot.slack.listeners.incident_ops import publish_update
from bot.slack.middleware.authorize import ListenerMiddleware, Writers, writers_only
from bot.slack.render import replies
from bot.slack.render.modals import ADJUST_CALLBACK, AdjustSubmission, adjust_modal, parse_adjust
from monitors.adjustments import (
    REASON_CODES,
    AdjustmentRequest,
    AdjustmentService,
    adjustment_key,
)
from monitors.mrkdwn import plain
from monitors.pipeline import Action

#: a modal's error message under an input (plain text, shown as typed)
ERROR_TEXT = 150

WHAT = "adjust inventory"


def adjustment_service(deps: BotDeps) -> AdjustmentService:
    return AdjustmentService(
        deps.systems,
        deps.rules,
        deps.ledger,
        deps.clock,
        {s.name: s.write_state for s in deps.config.systems},
    )


def locations(deps: BotDeps) -> list[str]:
    return sorted(deps.config.locations)


def _metadata(who: Who) -> str:
    return json.dumps({"channel": who.channel, "response_url": who.response_url})


def _origin(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body with the channel and response_url the modal was opened from."""
    view = body.get("view") or {}
    try:
        meta = json.loads(str(view.get("private_metadata") or "{}"))
    except ValueError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    out = dict(body)
    if meta.get("channel"):
        out["channel"] = {"id": str(meta["channel"])}
    if meta.get("response_url"):
        out["response_url"] = str(meta["response_url"])
    return out


def _from_origin(inner: ListenerMiddleware) -> ListenerMiddleware:
    """Run ``inner`` as if the submission came from where the modal was opened."""

    async def middleware(
        body: Mapping[str, Any], ack: AsyncAck, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        return await inner(body=_origin(body), ack=ack, next=next)

    return middleware


async def open_adjust(deps: BotDeps, body: Mapping[str, Any]) -> None:
    """Open the modal for a ``/adjust [SKU [LOCATION]]`` command (after its ack)."""
    who = Who.of(body)
    words = str(body.get("text") or "").split()
    known = locations(deps)
    view = adjust_modal(
        known,
        [(code, label) for code, (label, _) in REASON_CODES.items()],
        _metadata(who),
        sku=words[0] if words else None,
        location=words[1] if len(words) > 1 else None,
    )
    trigger_id = str(body.get("trigger_id", ""))
    await deps.client.views_open(trigger_id=trigger_id, view=view.to_dict())


async def field_errors(deps: BotDeps, form: AdjustSubmission) -> tuple[str | None, dict[str, str]]:
    """The normalized SKU, and errors for an unknown SKU or location (with close matches)."""
    errors: dict[str, str] = {}
    sku, suggestions = await resolve_sku(deps, form.sku)
    if sku is None:
        errors["sku"] = unknown_text("SKU", form.sku, suggestions)
    known = locations(deps)
    if form.location not in known:
        close = close_matches(form.location, known)
        errors["location"] = unknown_text("location", form.location, close)
    return sku, errors


def unknown_text(what: str, raw: str, suggestions: list[str]) -> str:
    """A field error (Slack shows it as plain text): the typed value and the close
    matches, shortened so the whole message fits."""
    text = f"No {what} {plain(raw, 40)}."
    if suggestions:
        text += " Did you mean " + " or ".join(plain(s, 30) for s in suggestions) + "?"
    return plain(text, ERROR_TEXT)


def register_adjust(app: AsyncApp, deps: BotDeps, writers: Writers) -> None:
    service = adjustment_service(deps)

    @app.view(ADJUST_CALLBACK, middleware=[_from_origin(writers_only(deps, writers, WHAT))])
    async def adjust_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        view = body.get("view") or {}
        form = parse_adjust(view, REASON_CODES)
        if isinstance(form, dict):
            await ack(response_action="errors", errors=form)
            return
        sku, errors = await field_errors(deps, form)
        if errors or sku is None:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        who = Who.of(_origin(body))
        source = str(view.get("id") or f"random:{uuid.uuid4()}")
        request = AdjustmentRequest(
            key=adjustment_key(f"slack-view:{source}"),
            sku=sku,
            location=form.location,
            operator=who.user,
            reason_code=form.reason_code,
            delta=form.delta,
            new_count=form.new_count,
            note=form.note,
        )

        async def work() -> None:
            result = await service.adjust(request)
            await tell(deps, who, replies.service_message(result.message))
            if result.status != "applied":
                return
            reply = replies.adjusted(result.message, who.user, form.note)
            if deps.recheck is not None:
                # read the SKU again everywhere; its alerts say what is true now
                await deps.recheck(
                    Action(
                        what="adjustment",
                        by=who.user,
                        text=reply,
                        sku=sku,
                        location=form.location,
                        status=result.status,
                    )
                )
                await deps.outbox.deliver_due()
                return
            for incident in await deps.ledger.list_incidents(sku=sku):
                if incident.status != "resolved" and incident.location == form.location:
                    await publish_update(deps, incident, reply)

        run_for(deps, who, "adjust", work)


__all__ = ["WHAT", "adjustment_service", "open_adjust", "register_adjust"]
