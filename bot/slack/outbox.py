"""Delivering the ledger's outbox to Slack: in order per incident, each message posted
once, nothing held up for ever.

**One entry at a time.** The worker claims one entry, does its Slack calls, records the
outcome, and only then claims the next: a lease covers one entry's work, never a batch
sent one after another. Before each Slack call the lease is renewed when less than half
of it is left, and the lease is at least three of the client's timeouts; through
:class:`LeaseKeepingClient` every Web API call of the entry (the chart hooks' uploads
too) renews it first, so a slow Slack does not let another worker take the entry over. Every claim
carries a fencing token (:attr:`ledger.OutboxEntry.fence`); recording anything requires
it, so a worker that lost its lease anyway cannot record a delivery
(:class:`ledger.LeaseLost`) — it stops.

**Posted once.** Every ``chat.postMessage`` carries message metadata naming the entry
(``event_type`` :data:`EVENT_TYPE`, ``event_payload`` ``{"outbox_id", "part"}``). When an
earlier attempt may have reached Slack without being recorded — the process died between
the post and the record, or the call timed out — the entry is ``in_doubt``, and the next
attempt first looks for that post (``conversations.history`` / ``conversations.replies``
with ``include_all_metadata``) and adopts it instead of posting again.

**The chart is a separate step.** Recording the alert's delivery queues an
``alert.chart`` entry in the same transaction; the chart hooks (``on_alert_posted``,
``on_message_posted``) run when that entry is delivered, after the post is recorded.
Chart entries belong to no incident, so a chart that keeps failing holds up nothing.

**Refused payloads are reduced, never retried for ever.** When slack_sdk refuses to
build a message or Slack answers ``invalid_blocks``, ``msg_too_long`` and the like, the
message is rendered again in a reduced form (:mod:`bot.slack.render.reduced`), then as
bare text; if even that is refused, the entry is dead-lettered and a
``health:slack_refused`` incident is raised, so on-call hears of it. The incident's
later messages then go out as usual. Errors that are neither outages, rate limits nor
something a person must fix are retried at most :data:`MAX_ATTEMPTS` times.

Callers in this process take turns (one delivery loop at a time); other processes claim
other entries.

**Paced.** ``chat.postMessage`` is limited to about one message per second per channel;
the worker reserves a slot from a :class:`Pacer` before each post and waits for it (or,
past :data:`MAX_PACE_WAIT`, puts the entry back until then). :class:`ChannelPacer` keeps
the slots in this process; :class:`~bot.slack.pace.LedgerPacer` keeps them in the
database, one pace per channel shared by every replica. Rate-limited answers (429) push the slot
back by their Retry-After.

Outages (5xx, timeouts), rate limits and errors a person must fix (a revoked token, a
channel the bot is not in) keep the entry and retry it: backoff, Retry-After, every ten
minutes. Nothing is lost while Slack is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.slack.errors import SlackDeliveryError, SlackRateLimited, SlackUnavailable, classify
from bot.slack.pace import POST_SPACING_SECONDS, ChannelPacer, Pacer
from bot.slack.posts import CHANNEL_ID, EVENT_TYPE, PostFinder, post_metadata
from bot.slack.render.alerts import alert_blocks, alert_text, blocks_json
from bot.slack.render.reduced import bare_alert, bare_text, reduced_alert
from connectors.clock import Clock
from ledger import FollowUp, Incident, LeaseLost, Ledger, OutboxEntry

log = logging.getLogger("driftwatch.outbox")

ATTENTION_RETRY_SECONDS = 600.0
MAX_BACKOFF_SECONDS = 300.0
#: a lease lasts at least this long, and at least three of the client's timeouts
LEASE_SECONDS = 60.0
#: attempts for an error that is neither an outage, a rate limit nor a person's to fix
MAX_ATTEMPTS = 8
#: a post whose slot is further away than this goes back to the outbox until then
MAX_PACE_WAIT = 10.0
#: a Slack call renews its entry's lease unless it was renewed this recently
CONFIRMED_WITHIN_SECONDS = 1.0
#: how far before an entry was queued its post may carry a timestamp (clock skew)
LOOKUP_MARGIN_SECONDS = 300.0
HEALTH_FINGERPRINT = "health:slack_refused"
CHART_KINDS = frozenset({"alert.chart", "message.chart"})

#: called after an alert is posted, with the incident and the message's channel and ts
AlertPosted = Callable[[Incident, str, str], Awaitable[None]]
#: called after a ``message`` entry is posted, with its payload, channel and ts
MessagePosted = Callable[[Mapping[str, Any], str, str], Awaitable[None]]
#: a way to render one message: its text and blocks (None: text only)
Form = Callable[[], tuple[str, list[dict[str, Any]] | None]]


@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    retried: list[tuple[int, str]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)
    #: put back unattempted until the channel's pace allows a post
    deferred: list[int] = field(default_factory=list)
    #: taken over by another worker while this one held it: nothing was recorded
    lost: list[int] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        self.deferred += other.deferred
        self.lost += other.lost

    @property
    def busy(self) -> bool:
        """Whether anything was delivered, retried or given up on."""
        return bool(self.delivered or self.retried or self.dead or self.lost)


class Undeliverable(Exception):
    """Every form of the message was refused: give it up."""


class _Deferred(Exception):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"paced until {until.isoformat()}")
        self.until = until


@dataclass
class _Outcome:
    response: dict[str, Any]
    incident_message: tuple[int, str, str] | None = None
    then: list[FollowUp] = field(default_factory=list)


class _Attempt:
    """One claim of one entry: its fence, its lease, and whether it may already have
    reached Slack."""

    def __init__(self, entry: OutboxEntry, ledger: Ledger, clock: Clock, lease: float):
        self.entry = entry
        self.doubt = entry.in_doubt
        self._ledger = ledger
        self._clock = clock
        self._lease = lease
        self._until = entry.lease_until or clock.now()
        self._renewed_at: datetime | None = None

    async def renew(self, *, force: bool = False) -> None:
        """Keep the lease: renewed when less than half of it is left (LeaseLost if
        another worker has taken the entry over)."""
        now = self._clock.now()
        if force or (self._until - now).total_seconds() < self._lease / 2:
            until = now + timedelta(seconds=self._lease)
            await self._ledger.renew_lease(self.entry.id, self.entry.fence, until)
            self._until = until
            self._renewed_at = now

    async def confirm(self) -> None:
        """Before a Slack call: renew (and so confirm the entry is still this worker's)
        unless that was done within the last :data:`CONFIRMED_WITHIN_SECONDS`."""
        now = self._clock.now()
        recent = self._renewed_at is not None and (
            (now - self._renewed_at).total_seconds() < CONFIRMED_WITHIN_SECONDS
        )
        await self.renew(force=not recent)


#: the claim being delivered in this task: :class:`LeaseKeepingClient` renews its lease
#: before every Slack call, the chart hooks' calls included
_DELIVERING: ContextVar[_Attempt | None] = ContextVar("driftwatch_outbox_attempt", default=None)


class LeaseKeepingClient(AsyncWebClient):
    """slack_sdk's client, renewing the lease of the outbox entry being delivered (in
    this task) before each Web API call, so however many slow calls an entry takes (a
    chart upload is three), its lease never runs out between two of them while Slack
    answers within the client's timeout; a worker that lost its entry stops before the
    next call (:class:`ledger.LeaseLost`). Not when it was renewed within the last
    second: a post goes out right after its pace slot (renewed just before it was
    reserved), with no database round trip between."""

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        attempt = _DELIVERING.get()
        if attempt is not None:
            await attempt.confirm()
        return await super().api_call(api_method, **kwargs)


class OutboxWorker:
    """Sends due outbox entries through the real slack_sdk client."""

    def __init__(
        self,
        ledger: Ledger,
        client: AsyncWebClient,
        clock: Clock,
        *,
        pacer: Pacer | None = None,
        health_channel: str | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._clock = clock
        self._pacer: Pacer = pacer or ChannelPacer()
        self._finder = PostFinder(client)
        self._health_channel = health_channel
        timeout = float(getattr(client, "timeout", 30) or 30)
        self._lease = lease_seconds or max(LEASE_SECONDS, 3 * timeout)
        self._lock = asyncio.Lock()
        #: channel names (``#ops``) to the ids Slack answered with
        self._channel_ids: dict[str, str] = {}
        self.last_error: str | None = None
        #: run by each alert's chart step, after the alert is posted and recorded
        self.on_alert_posted: list[AlertPosted] = []
        #: run by the chart step of each ``message`` entry that names a chart
        self.on_message_posted: list[MessagePosted] = []

    # ------------------------------------------------------------------ the loop

    async def deliver_due(self, limit: int = 20) -> DeliveryReport:
        """Deliver what is due now, one entry at a time, at most ``limit`` entries.
        Callers in this process take turns; other processes claim other entries."""
        report = DeliveryReport()
        async with self._lock:
            for _ in range(limit):
                claimed = await self._ledger.claim_outbox(
                    self._clock.now(), limit=1, lease_seconds=self._lease
                )
                if not claimed:
                    break
                await self._deliver(claimed[0], report)
        return report

    async def drain(self, max_rounds: int = 100) -> DeliveryReport:
        """Deliver until nothing is due (used by the demo and at shutdown)."""
        total = DeliveryReport()
        for _ in range(max_rounds):
            report = await self.deliver_due()
            total.add(report)
            if not report.busy:
                break
        return total

    async def _deliver(self, entry: OutboxEntry, report: DeliveryReport) -> None:
        attempt = _Attempt(entry, self._ledger, self._clock, self._lease)
        delivering = _DELIVERING.set(attempt)
        try:
            try:
                outcome = await self._send(attempt)
            except _Deferred as deferred:
                await self._ledger.defer(
                    entry.id, deferred.until, fence=entry.fence, in_doubt=attempt.doubt
                )
                report.deferred.append(entry.id)
                return
            except (LeaseLost, asyncio.CancelledError):
                raise
            except Undeliverable as refused:
                await self._give_up(attempt, str(refused), report)
                return
            except Exception as exc:  # every failure is classified, none escapes
                await self._failed(attempt, classify(exc), report)
                return
            await self._ledger.mark_delivered(
                entry.id,
                self._clock.now(),
                outcome.response,
                fence=entry.fence,
                incident_message=outcome.incident_message,
                then=outcome.then,
            )
            report.delivered.append(entry.id)
        except LeaseLost as lost:
            log.warning("outbox entry %s: %s; leaving it to its new holder", entry.id, lost)
            report.lost.append(entry.id)
        finally:
            _DELIVERING.reset(delivering)

    async def _failed(
        self, attempt: _Attempt, error: SlackDeliveryError, report: DeliveryReport
    ) -> None:
        entry = attempt.entry
        self.last_error = error.reason
        if not error.retryable:
            await self._give_up(attempt, error.reason, report)
            return
        transient = isinstance(error, SlackRateLimited | SlackUnavailable)
        if not transient and not error.needs_attention and entry.attempts >= MAX_ATTEMPTS:
            await self._give_up(attempt, f"{error.reason} ({entry.attempts} attempts)", report)
            return
        if error.retry_after is not None:
            wait = error.retry_after
        elif error.needs_attention:
            wait = ATTENTION_RETRY_SECONDS
            log.error("Slack needs attention: %s (outbox entry %s kept)", error.reason, entry.id)
        else:
            wait = min(MAX_BACKOFF_SECONDS, 2.0 ** min(entry.attempts, 8))
        await self._ledger.mark_retry(
            entry.id,
            error.reason,
            self._clock.now() + timedelta(seconds=wait),
            fence=entry.fence,
            in_doubt=attempt.doubt,
        )
        report.retried.append((entry.id, error.reason))

    async def _give_up(self, attempt: _Attempt, reason: str, report: DeliveryReport) -> None:
        """Dead-letter the entry; unless it is a chart or about this very trouble, raise
        (or add to) the ``health:slack_refused`` incident so on-call hears of it."""
        entry = attempt.entry
        self.last_error = reason
        log.error("outbox entry %s (%s) given up: %s", entry.id, entry.kind, reason)
        if entry.kind not in CHART_KINDS and not await self._about_refusals(entry):
            await self._raise_health(entry, reason)
        await self._ledger.mark_dead(entry.id, reason, self._clock.now(), fence=entry.fence)
        report.dead.append((entry.id, reason))

    async def _about_refusals(self, entry: OutboxEntry) -> bool:
        if entry.incident_id is None:
            return False
        incident = await self._ledger.get_incident(entry.incident_id)
        return incident.fingerprint == HEALTH_FINGERPRINT

    async def _raise_health(self, entry: OutboxEntry, reason: str) -> None:
        now = self._clock.now()
        what = f"outbox entry {entry.id} ({entry.kind}"
        what += f", incident #{entry.incident_id})" if entry.incident_id else ")"
        incident, opened = await self._ledger.open_incident(
            HEALTH_FINGERPRINT,
            "slack_refused",
            "warning",
            "Slack refused a message Driftwatch could not reduce",
            now,
            system="slack",
            details={"system": "slack", "last_error": f"{what}: {reason}"},
        )
        channel = self._health_channel or entry.channel
        if opened or incident.slack_ts is None:
            await self._ledger.enqueue(
                "incident.opened",
                channel,
                {"incident_id": incident.id},
                at=now,
                incident_id=incident.id,
                dedupe_key=f"incident:{incident.id}:opened:{incident.reopened_count}",
            )
        else:
            await self._ledger.enqueue(
                "incident.updated",
                channel,
                {"incident_id": incident.id, "reply": f"Also given up: {what}."},
                at=now,
                incident_id=incident.id,
                dedupe_key=f"outbox:{entry.id}:refused",
            )

    # ------------------------------------------------------------------ one entry

    async def _send(self, attempt: _Attempt) -> _Outcome:
        kind = attempt.entry.kind
        if kind == "incident.opened":
            return await self._send_opened(attempt)
        if kind in ("incident.updated", "incident.resolved"):
            return await self._send_update(attempt)
        if kind == "message":
            return await self._send_message(attempt)
        if kind in CHART_KINDS:
            return await self._send_chart(attempt)
        raise Undeliverable(f"unknown outbox kind {kind}")

    async def _send_opened(self, attempt: _Attempt) -> _Outcome:
        incident = await self._incident(attempt)
        if incident.slack_channel and incident.slack_ts:
            # posted already, by an update that found the alert missing
            return _Outcome({"channel": incident.slack_channel, "ts": incident.slack_ts})
        return await self._post_alert(attempt, incident)

    async def _post_alert(self, attempt: _Attempt, incident: Incident) -> _Outcome:
        channel, ts = await self._post(
            attempt, "alert", attempt.entry.channel, self._alert_forms(incident)
        )
        outcome = _Outcome({"channel": channel, "ts": ts}, (incident.id, channel, ts))
        if self.on_alert_posted:
            outcome.then.append(
                FollowUp(
                    "alert.chart",
                    channel,
                    {"incident_id": incident.id, "channel": channel, "ts": ts},
                    dedupe_key=f"outbox:{attempt.entry.id}:chart",
                )
            )
        return outcome

    async def _send_update(self, attempt: _Attempt) -> _Outcome:
        incident = await self._incident(attempt)
        reply = attempt.entry.payload.get("reply")
        if not (incident.slack_channel and incident.slack_ts):
            if incident.status == "resolved" or attempt.entry.kind == "incident.resolved":
                # never shown (it opened muted, or its alert was given up): nothing to edit
                return _Outcome({"skipped": "the alert was never posted"})
            # its alert was given up (or never queued): post it now, then the reply
            outcome = await self._post_alert(attempt, incident)
            assert outcome.incident_message is not None
            _, channel, ts = outcome.incident_message
        else:
            channel, ts = incident.slack_channel, incident.slack_ts
            await self._update(attempt, channel, ts, self._alert_forms(incident, update=True))
            outcome = _Outcome({"channel": channel, "ts": ts})
        if reply:
            text = str(reply)
            await self._post(
                attempt,
                "reply",
                channel,
                [lambda: (text, None), lambda: (bare_text(text), None)],
                thread_ts=ts,
            )
        return outcome

    async def _send_message(self, attempt: _Attempt) -> _Outcome:
        payload = dict(attempt.entry.payload)
        text = str(payload.get("text", ""))
        blocks = payload.get("blocks")
        thread_ts = payload.get("thread_ts")
        forms: list[Form] = [lambda: (text, blocks), lambda: (bare_text(text), None)]
        channel, ts = await self._post(
            attempt,
            "message",
            attempt.entry.channel,
            forms,
            thread_ts=str(thread_ts) if thread_ts else None,
        )
        outcome = _Outcome({"channel": channel, "ts": ts})
        if self.on_message_posted and payload.get("chart"):
            outcome.then.append(
                FollowUp(
                    "message.chart",
                    channel,
                    {"message": payload, "channel": channel, "ts": ts},
                    dedupe_key=f"outbox:{attempt.entry.id}:chart",
                )
            )
        return outcome

    async def _send_chart(self, attempt: _Attempt) -> _Outcome:
        payload = attempt.entry.payload
        channel, ts = str(payload["channel"]), str(payload["ts"])
        if attempt.doubt and await self._thread_has_file(attempt, channel, ts):
            return _Outcome({"channel": channel, "ts": ts, "skipped": "already in the thread"})
        if attempt.entry.kind == "alert.chart":
            incident = await self._ledger.get_incident(int(payload["incident_id"]))
            for alert_hook in self.on_alert_posted:
                await attempt.renew(force=True)
                await self._hook(attempt, alert_hook(incident, channel, ts))
        else:
            message = dict(payload.get("message") or {})
            for message_hook in self.on_message_posted:
                await attempt.renew(force=True)
                await self._hook(attempt, message_hook(message, channel, ts))
        return _Outcome({"channel": channel, "ts": ts})

    async def _hook(self, attempt: _Attempt, call: Awaitable[None]) -> None:
        try:
            await call
        except Exception:
            attempt.doubt = True  # it may have uploaded before it failed
            log.exception("outbox entry %s: a chart hook failed", attempt.entry.id)
            raise

    async def _incident(self, attempt: _Attempt) -> Incident:
        return await self._ledger.get_incident(int(attempt.entry.payload["incident_id"]))

    def _alert_forms(self, incident: Incident, *, update: bool = False) -> list[Form]:
        return [
            lambda: (alert_text(incident), blocks_json(alert_blocks(incident))),
            lambda: reduced_alert(incident),
            # an update without blocks would keep the old ones: remove them
            lambda: (bare_alert(incident), [] if update else None),
        ]

    # ------------------------------------------------------------------ Slack calls

    async def _post(
        self,
        attempt: _Attempt,
        part: str,
        channel: str,
        forms: Sequence[Form],
        *,
        thread_ts: str | None = None,
    ) -> tuple[str, str]:
        """``chat.postMessage`` of the first form Slack accepts, once per (entry, part):
        when in doubt, an earlier post of this part is found and adopted instead."""
        if attempt.doubt:
            found = await self._find(attempt, part, channel, thread_ts)
            if found is not None:
                log.info("outbox entry %s: adopting its earlier %s post", attempt.entry.id, part)
                return found
            attempt.doubt = False  # looked: it is not there
        metadata = post_metadata(attempt.entry.id, part)
        refusals: list[str] = []
        for form in forms:
            rendered = self._render(attempt, form, refusals)
            if rendered is None:
                continue
            text, blocks = rendered
            await self._pace(attempt, channel)
            try:
                result = await self._client.chat_postMessage(
                    channel=channel,
                    text=text,
                    blocks=blocks,
                    thread_ts=thread_ts,
                    metadata=metadata,
                    unfurl_links=False,
                )
            except Exception as exc:
                error = classify(exc)
                if error.maybe_sent:
                    attempt.doubt = True
                if isinstance(error, SlackRateLimited):
                    wait = error.retry_after or POST_SPACING_SECONDS
                    until = self._clock.now() + timedelta(seconds=wait)
                    await self._pacer.hold(self._pace_key(channel), until)
                if error.payload:
                    refusals.append(error.reason)
                    continue
                raise error from exc
            posted = str(result["channel"])
            self._channel_ids[channel] = posted
            return posted, str(result["ts"])
        raise Undeliverable("Slack refused every form: " + "; ".join(refusals))

    async def _update(
        self, attempt: _Attempt, channel: str, ts: str, forms: Sequence[Form]
    ) -> None:
        """``chat.update`` with the first form Slack accepts (an edit is idempotent)."""
        refusals: list[str] = []
        for form in forms:
            rendered = self._render(attempt, form, refusals)
            if rendered is None:
                continue
            text, blocks = rendered
            await attempt.renew()
            try:
                await self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
            except Exception as exc:
                error = classify(exc)
                if error.payload:
                    refusals.append(error.reason)
                    continue
                raise error from exc
            return
        raise Undeliverable("Slack refused every form of the update: " + "; ".join(refusals))

    def _render(
        self, attempt: _Attempt, form: Form, refusals: list[str]
    ) -> tuple[str, list[dict[str, Any]] | None] | None:
        try:
            return form()
        except Exception as exc:  # slack_sdk's validation, or a renderer's bug
            reason = classify(exc).reason
            log.warning("outbox entry %s: a form was refused: %s", attempt.entry.id, reason)
            refusals.append(reason)
            return None

    def _pace_key(self, channel: str) -> str:
        return self._channel_ids.get(channel, channel)

    async def _pace(self, attempt: _Attempt, channel: str) -> None:
        """Wait for the channel's next post slot, or defer. The lease is renewed first
        (it covers the wait, at most :data:`MAX_PACE_WAIT`): once the slot comes the post
        goes out at once, before another replica's next slot."""
        await attempt.renew(force=True)
        now = self._clock.now()
        slot = await self._pacer.reserve(self._pace_key(channel), now, MAX_PACE_WAIT)
        wait = (slot - now).total_seconds()
        if wait > MAX_PACE_WAIT:
            raise _Deferred(slot)
        if wait > 0:
            await self._clock.sleep(wait)

    async def _find(
        self, attempt: _Attempt, part: str, channel: str, thread_ts: str | None
    ) -> tuple[str, str] | None:
        """The (channel id, ts) of this entry's earlier ``part`` post, if Slack has it."""
        channel_id = self._channel_ids.get(channel) or (
            channel if CHANNEL_ID.match(channel) else None
        )
        if channel_id is None:
            channel_id = await self._ledger.delivered_channel_id(channel)
        if channel_id is None:
            log.warning(
                "outbox entry %s: cannot look for an earlier post in %r (no channel id)",
                attempt.entry.id,
                channel,
            )
            return None
        try:
            ts = await self._finder.find(
                channel_id,
                attempt.entry.id,
                part,
                oldest=attempt.entry.created_at - timedelta(seconds=LOOKUP_MARGIN_SECONDS),
                thread_ts=thread_ts,
                before_each_call=attempt.renew,
            )
        except LeaseLost:
            raise
        except Exception as exc:
            raise classify(exc) from exc
        return (channel_id, ts) if ts is not None else None

    async def _thread_has_file(self, attempt: _Attempt, channel: str, ts: str) -> bool:
        await attempt.renew()
        try:
            return await self._finder.thread_has_file(channel, ts)
        except Exception as exc:
            raise classify(exc) from exc


__all__ = [
    "ATTENTION_RETRY_SECONDS",
    "EVENT_TYPE",
    "HEALTH_FINGERPRINT",
    "MAX_ATTEMPTS",
    "ChannelPacer",
    "DeliveryReport",
    "OutboxWorker",
    "Pacer",
    "Undeliverable",
]
