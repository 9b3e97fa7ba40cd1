"""Delivering the ledger's outbox to Slack, in order per incident, at least once.

An entry is claimed with a lease, sent, and marked delivered with Slack's answer (the
message ts). A failure is classified (:mod:`bot.slack_errors`): rate limits wait for
Retry-After, outages back off exponentially, errors a person must fix (a revoked
token, a channel the bot is not in) are retried every ten minutes until fixed, and
only errors in the message itself are given up on. ``chat.postMessage`` is about one
message per second per channel, so a burst is paced, not sprayed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts import alert_blocks, alert_text, blocks_json
from bot.slack_errors import SlackDeliveryError, classify
from connectors.clock import Clock
from ledger import Incident, Ledger, OutboxEntry

log = logging.getLogger("driftwatch.outbox")

ATTENTION_RETRY_SECONDS = 600.0
MAX_BACKOFF_SECONDS = 300.0

#: called after an alert is posted, with the incident and the message's channel and ts
AlertPosted = Callable[[Incident, str, str], Awaitable[None]]
#: called after a ``message`` entry is posted, with its payload, channel and ts
MessagePosted = Callable[[Mapping[str, Any], str, str], Awaitable[None]]


@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    retried: list[tuple[int, str]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)


class OutboxWorker:
    """Sends due outbox entries through the real slack_sdk client."""

    def __init__(self, ledger: Ledger, client: AsyncWebClient, clock: Clock) -> None:
        self._ledger = ledger
        self._client = client
        self._clock = clock
        self.last_error: str | None = None
        #: run after each alert is posted (e.g. the chart into its thread); their
        #: failures are logged, never undo or repeat the post
        self.on_alert_posted: list[AlertPosted] = []
        #: run after each ``message`` entry is posted (e.g. a report's chart), likewise
        self.on_message_posted: list[MessagePosted] = []

    async def deliver_due(self, limit: int = 20) -> DeliveryReport:
        """Deliver what is due now; returns what happened to each entry."""
        report = DeliveryReport()
        for entry in await self._ledger.claim_outbox(self._clock.now(), limit=limit):
            try:
                response = await self._send(entry)
            except Exception as exc:  # every failure is classified, none escapes
                error = classify(exc)
                self.last_error = error.reason
                await self._failed(entry, error, report)
            else:
                await self._ledger.mark_delivered(entry.id, self._clock.now(), response)
                report.delivered.append(entry.id)
        return report

    async def drain(self, max_rounds: int = 100) -> DeliveryReport:
        """Deliver until nothing is due (used by the demo and at shutdown)."""
        total = DeliveryReport()
        for _ in range(max_rounds):
            report = await self.deliver_due()
            total.delivered += report.delivered
            total.retried += report.retried
            total.dead += report.dead
            if not (report.delivered or report.retried or report.dead):
                break
        return total

    async def _failed(
        self, entry: OutboxEntry, error: SlackDeliveryError, report: DeliveryReport
    ) -> None:
        now = self._clock.now()
        if not error.retryable:
            log.error("outbox entry %s dropped: Slack refused it (%s)", entry.id, error.reason)
            await self._ledger.mark_dead(entry.id, error.reason, now)
            report.dead.append((entry.id, error.reason))
            return
        if error.retry_after is not None:
            wait = error.retry_after
        elif error.needs_attention:
            wait = ATTENTION_RETRY_SECONDS
            log.error("Slack needs attention: %s (outbox entry %s kept)", error.reason, entry.id)
        else:
            wait = min(MAX_BACKOFF_SECONDS, 2.0 ** min(entry.attempts, 8))
        await self._ledger.mark_retry(entry.id, error.reason, now + timedelta(seconds=wait))
        report.retried.append((entry.id, error.reason))

    async def _send(self, entry: OutboxEntry) -> dict[str, Any]:
        payload: dict[str, Any] = dict(entry.payload or {})
        if entry.kind == "incident.opened":
            incident = await self._ledger.get_incident(int(payload["incident_id"]))
            result = await self._client.chat_postMessage(
                channel=entry.channel,
                text=alert_text(incident),
                blocks=blocks_json(alert_blocks(incident)),
                unfurl_links=False,
            )
            channel, ts = str(result["channel"]), str(result["ts"])
            await self._ledger.set_incident_message(incident.id, channel, ts)
            for hook in self.on_alert_posted:
                try:
                    await hook(incident, channel, ts)
                except Exception:
                    log.exception("after posting incident %s's alert", incident.id)
            return {"channel": channel, "ts": ts}
        if entry.kind in ("incident.updated", "incident.resolved"):
            incident = await self._ledger.get_incident(int(payload["incident_id"]))
            if not (incident.slack_channel and incident.slack_ts):
                raise SlackDeliveryError("the incident's alert has not been posted yet")
            result = await self._client.chat_update(
                channel=incident.slack_channel,
                ts=incident.slack_ts,
                text=alert_text(incident),
                blocks=blocks_json(alert_blocks(incident)),
            )
            if payload.get("reply"):
                await self._client.chat_postMessage(
                    channel=incident.slack_channel,
                    thread_ts=incident.slack_ts,
                    text=str(payload["reply"]),
                )
            return {"channel": str(result["channel"]), "ts": str(result["ts"])}
        if entry.kind == "message":
            result = await self._client.chat_postMessage(
                channel=entry.channel,
                text=str(payload.get("text", "")),
                blocks=payload.get("blocks"),
                thread_ts=payload.get("thread_ts"),
            )
            channel, ts = str(result["channel"]), str(result["ts"])
            for message_hook in self.on_message_posted:
                try:
                    await message_hook(payload, channel, ts)
                except Exception:
                    log.exception("after posting outbox message %s", entry.id)
            return {"channel": channel, "ts": ts}
        raise SlackDeliveryError(f"unknown outbox kind {entry.kind}")
