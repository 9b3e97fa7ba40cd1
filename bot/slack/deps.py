"""What the Slack listeners and middleware need, in one object, and how they answer a
person: through the interaction's ``response_url`` when it has one, else ephemerally.

Listeners ack at once and hand slow work to :attr:`BotDeps.spawn`, which the
:class:`~bot.service.Service` tracks (so shutdown waits for a resync in flight).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.slack.known_skus import KnownSkus
from bot.slack.outbox import OutboxWorker
from connectors.base import InventorySystem
from connectors.clock import Clock
from ledger import InvalidArgument, InvalidTransition, Ledger, NotFound
from monitors.config import Config
from monitors.drift import DiffRules
from monitors.jobs import Recheck
from monitors.mrkdwn import escape, public_error
from monitors.resync import ResyncService

log = logging.getLogger("driftwatch.slack")

Work = Callable[[], Awaitable[object]]
Spawn = Callable[[str, Work], None]


@dataclass
class BotDeps:
    """The services behind the Slack face."""

    config: Config
    ledger: Ledger
    clock: Clock
    client: AsyncWebClient
    outbox: OutboxWorker
    resync: ResyncService
    systems: Sequence[InventorySystem]
    rules: DiffRules
    #: run slow work after the ack, tracked by the owner (the Service)
    spawn: Spawn
    #: reads a SKU again after an action and tells its alerts what is true now
    recheck: Recheck | None = None
    #: the ledger's SKUs for "Did you mean", read once for a storm of unknown SKUs
    known_skus: KnownSkus = field(init=False)

    def __post_init__(self) -> None:
        self.known_skus = KnownSkus(self.ledger, self.clock)


@dataclass(frozen=True)
class Who:
    """Who did something, where, and how to answer them."""

    user: str
    channel: str | None
    response_url: str | None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Who:
        """From a command, block action or view submission payload."""
        user = body.get("user_id") or (body.get("user") or {}).get("id") or ""
        channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
        if channel is None:
            channel = (body.get("container") or {}).get("channel_id")
        return cls(str(user), channel, body.get("response_url"))


async def tell(
    deps: BotDeps,
    who: Who,
    text: str,
    blocks: Sequence[Block] | None = None,
    *,
    in_channel: bool = False,
) -> None:
    """Answer ``who`` privately (or in the channel) in plain words; never raises."""
    rendered = [b.to_dict() for b in blocks] if blocks else None
    try:
        if who.response_url:
            body: dict[str, Any] = {
                "text": text,
                "response_type": "in_channel" if in_channel else "ephemeral",
                "replace_original": False,
            }
            if rendered:
                body["blocks"] = rendered
            response = await AsyncWebhookClient(who.response_url).send_dict(body)
            if response.status_code == 200:
                return
            log.warning("response_url answered %s: %s", response.status_code, response.body)
        if who.channel:
            if in_channel:
                await deps.client.chat_postMessage(channel=who.channel, text=text, blocks=rendered)
            else:
                await deps.client.chat_postEphemeral(
                    channel=who.channel, user=who.user, text=text, blocks=rendered
                )
            return
        await deps.client.chat_postMessage(channel=who.user, text=text, blocks=rendered)
    except Exception:
        log.exception("could not answer %s", who.user)


#: errors whose words are Driftwatch's own, meant for the person who asked
_OURS = (InvalidArgument, InvalidTransition, NotFound, ValueError)


def sorry(exc: BaseException) -> str:
    """What a person is told when their request failed. Driftwatch's own refusals say
    why; Slack's refusals name Slack's error code; anything else (a database or network
    error, whose text may name internal addresses or tables) is only named by its
    kind: the details are in the log. Never an address, always escaped."""
    if isinstance(exc, SlackApiError):
        code = exc.response.get("error") if exc.response is not None else None
        return f"Sorry, Slack refused that ({escape(code or 'no error code', 60)})."
    if isinstance(exc, _OURS) and str(exc):
        return f"Sorry, that did not work: {public_error(exc, 500)}"
    return (
        f"Sorry, that did not work: an unexpected error ({escape(type(exc).__name__, 60)}). "
        "The details are in Driftwatch's log."
    )


def run_for(deps: BotDeps, who: Who, name: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` after the ack; if it fails, tell the person in plain words."""

    async def guarded() -> None:
        try:
            await work()
        except Exception as exc:
            log.exception("%s failed for %s", name, who.user)
            await tell(deps, who, sorry(exc))

    deps.spawn(name, guarded)
