"""The Slack listeners: thin. Each acks at once, then (after the ack) calls a service in
monitors/ or ledger/ and renders the answer. Authorization and audit are middleware."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.deps import BotDeps
from bot.slack.listeners.actions import register_actions
from bot.slack.listeners.commands import register_commands
from bot.slack.middleware.authorize import Writers


def register(app: AsyncApp, deps: BotDeps, writers: Writers) -> None:
    # Commands first: bolt tries listeners in the order they were registered, and each
    # try costs about 40 µs (it builds every argument a listener could ask for). A
    # burst of /drift then matches at the first listener instead of after ten buttons;
    # a click, never a burst, pays six cheap misses.
    register_commands(app, deps, writers)
    register_actions(app, deps, writers)


__all__ = ["register"]
