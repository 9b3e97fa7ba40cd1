"""The Slack listeners: thin. Each acks at once, then (after the ack) calls a service in
monitors/ or ledger/ and renders the answer. Authorization and audit are middleware."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.deps import BotDeps
from bot.slack.listeners.actions import register_actions
from bot.slack.listeners.commands import register_commands
from bot.slack.middleware.authorize import Writers


def register(app: AsyncApp, deps: BotDeps, writers: Writers) -> None:
    register_actions(app, deps, writers)
    register_commands(app, deps, writers)


__all__ = ["register"]
