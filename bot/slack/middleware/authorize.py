"""Who may trigger writes (resync, resolve, adjust): a listed user, a member of a listed
user group (``usergroups.users.list``, cached briefly), or anyone acting in a listed
channel. Everyone else is acked, told politely, and the refusal is audited."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.deps import BotDeps, Who, tell
from connectors.clock import Clock
from connectors.normalize import is_whole_number
from monitors.config.sections import SlackWriters

log = logging.getLogger("driftwatch.slack.authorize")

USERGROUP_TTL = timedelta(minutes=5)

ListenerMiddleware = Callable[..., Awaitable[BoltResponse | None]]


class Writers:
    """Decides whether a user may write, from the configuration and Slack user groups."""

    def __init__(
        self,
        writers: SlackWriters,
        client: AsyncWebClient,
        clock: Clock,
        ttl: timedelta = USERGROUP_TTL,
    ) -> None:
        self._writers = writers
        self._client = client
        self._clock = clock
        self._ttl = ttl
        self._groups: dict[str, tuple[frozenset[str], datetime]] = {}

    async def allows(self, user: str, channel: str | None) -> bool:
        """Whether ``user`` acting in ``channel`` may trigger a write."""
        if user in self._writers.users:
            return True
        if channel is not None and channel in self._writers.channels:
            return True
        for group in self._writers.usergroups:
            if user in await self.members(group):
                return True
        return False

    async def members(self, group: str) -> frozenset[str]:
        """The members of a user group, from Slack at most once per ``ttl``."""
        now = self._clock.now()
        cached = self._groups.get(group)
        if cached is not None and now - cached[1] < self._ttl:
            return cached[0]
        try:
            response = await self._client.usergroups_users_list(usergroup=group)
        except SlackApiError as exc:
            log.warning("could not list user group %s: %s", group, exc.response.get("error"))
            return cached[0] if cached else frozenset()
        members = frozenset(str(u) for u in response.get("users") or ())
        self._groups[group] = (members, now)
        return members


def writers_only(deps: BotDeps, writers: Writers, what: str) -> ListenerMiddleware:
    """A listener middleware that lets only writers through to the ``what`` listener."""

    async def authorize(
        body: Mapping[str, Any], ack: AsyncAck, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        who = Who.of(body)
        if await writers.allows(who.user, who.channel):
            await next()
            return None
        response = await ack()
        await deps.ledger.append_audit(
            who.user,
            "slack.refused",
            subject_of(body),
            {"what": what, "channel": who.channel, "reason": "not a writer"},
            deps.clock.now(),
        )

        async def refuse() -> None:
            await tell(
                deps,
                who,
                f"Sorry <@{who.user}>, only Driftwatch writers can {what}. "
                "Ask someone on the ops team, or ask an admin to add you to the writers "
                "in Driftwatch's configuration.",
            )

        deps.spawn("refusal", refuse)
        return response

    return authorize


def subject_of(body: Mapping[str, Any]) -> str:
    """What an interaction is about, as an audit subject (``incident:42``, ``/drift``)."""
    actions = body.get("actions") or []
    if actions:
        action = actions[0]
        value = action.get("value") or (action.get("selected_option") or {}).get("value") or ""
        head = str(value).split(":", 1)[0]
        if is_whole_number(head):
            return f"incident:{head}"
        return f"action:{action.get('action_id')}"
    if body.get("command"):
        return f"command:{body['command']}"
    view = body.get("view") or {}
    meta = str(view.get("private_metadata") or "")
    meta_head = meta.split(":", 1)[0]
    if is_whole_number(meta_head):
        return f"incident:{meta_head}"
    return f"view:{view.get('callback_id', '')}"
