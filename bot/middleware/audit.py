"""Every command, button, menu choice and modal submission lands in the audit log with
the Slack user id of the person, before any listener runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.middleware.authorize import subject_of
from bot.slack_deps import BotDeps, Who

GlobalMiddleware = Callable[..., Awaitable[None]]


def describe(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``(action, detail)`` for an interaction worth auditing; None for anything else."""
    if body.get("command"):
        return "slack.command", {"command": body["command"], "text": body.get("text", "")}
    kind = body.get("type")
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        first = actions[0]
        value = first.get("value") or (first.get("selected_option") or {}).get("value")
        return "slack.action", {"action_id": first.get("action_id"), "value": value}
    if kind == "view_submission":
        return "slack.view_submission", {"callback_id": (body.get("view") or {}).get("callback_id")}
    return None


def audit_interactions(deps: BotDeps) -> GlobalMiddleware:
    """A global middleware appending one audit entry per interaction."""

    async def audit(body: Mapping[str, Any], next: Callable[[], Awaitable[None]]) -> None:
        described = describe(body)
        if described is not None:
            action, detail = described
            who = Who.of(body)
            await deps.ledger.append_audit(
                who.user or "unknown",
                action,
                subject_of(body),
                {**detail, "channel": who.channel},
                deps.clock.now(),
            )
        await next()

    return audit
