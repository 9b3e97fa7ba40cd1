"""Settling, at start, the resyncs a dead process left ``pending``, and telling whoever
asked.

A process killed after a system applied a write but before the ledger recorded it
leaves the resync ``pending``, and the person who clicked Resync never hears back. When
the process starts, before any scheduled job runs, :class:`ResyncSettler` takes every
pending resync through :meth:`monitors.resync.ResyncService.settle` (read the level
back; replay the same write under the same key where it may still be owed; record
``applied``, ``stale`` or ``failed``) and queues the answer in the Slack outbox:

* in the alert's thread, when the resync belongs to an incident (and an applied resync
  a person asked for acknowledges the incident, as the click would have);
* as a direct message to the person, when it does not;
* nowhere, for an automatic resync without an incident (the ledger and audit log keep
  it).

A resync whose system cannot be reached stays ``pending`` and is tried again by the
caller later (:attr:`Settled.left`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from connectors.clock import Clock
from ledger import SYSTEM_ACTOR, InvalidTransition, Ledger, NotFound, Resync
from monitors.resync import APPLIED, PENDING, SETTLED_ELSEWHERE, ResyncResult, ResyncService

log = logging.getLogger("driftwatch.settle")


@dataclass
class Settled:
    """What one settling pass did: the resyncs settled (with their answers) and the ids
    of those left pending because their system could not be reached."""

    done: list[ResyncResult] = field(default_factory=list)
    left: set[int] = field(default_factory=set)


#: how much of an outcome (it may carry a system's error text) a reply repeats
MAX_DETAIL = 600
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")


def _plain(text: str) -> str:
    """``text`` shown as itself in Slack mrkdwn: ``&``, ``<`` and ``>`` escaped as Slack
    asks (https://api.slack.com/reference/surfaces/formatting#escaping), so a SKU such as
    ``<!channel>`` cannot mention anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def settle_reply(resync: Resync, result: ResyncResult) -> str:
    """The answer to whoever asked, in words (Slack mrkdwn: the person is mentioned; the
    rest, SKUs and system errors included, is escaped and bounded)."""
    if resync.requested_by == SYSTEM_ACTOR:
        who = "Driftwatch's auto-resync"
    elif _USER_ID.fullmatch(resync.requested_by):
        who = f"<@{resync.requested_by}>'s resync"
    else:
        who = f"{_plain(resync.requested_by[:80])}'s resync"
    detail = result.message
    if len(detail) > MAX_DETAIL:
        detail = detail[: MAX_DETAIL - 1] + "…"
    if result.status == APPLIED:
        return (
            f"{who} was cut off when Driftwatch stopped, and has been confirmed: {_plain(detail)}"
        )
    level = f"{resync.system} {resync.state} for {resync.sku} at {resync.location}"
    return (
        f"{who} of {_plain(level[:300])} ({resync.before} → {resync.target}) was cut off "
        f"when Driftwatch stopped, and was {_plain(detail)}"
    )


class ResyncSettler:
    """Settles pending resyncs and queues the answers (see the module docstring)."""

    def __init__(self, resync: ResyncService, ledger: Ledger, clock: Clock, channel: str) -> None:
        self._resync = resync
        self._ledger = ledger
        self._clock = clock
        self._channel = channel
        #: run after each settled resync has been told (the SKU read again and its
        #: alert evaluated at once, :class:`monitors.jobs.Recheck`); failures are logged
        self.after: list[Callable[[Resync, ResyncResult], Awaitable[None]]] = []

    async def pending_ids(self) -> set[int]:
        """The resyncs a dead process left pending: at start, every pending one except
        those another replica on the database requested and is alive to finish (in
        flight there, not cut off)."""
        live = set(await self._ledger.live_replicas(self._clock.now()))
        live.discard(self._ledger.replica_id)
        return {r.id for r in await self._ledger.pending_resyncs() if r.replica not in live}

    async def settle(self, ids: Collection[int]) -> Settled:
        """Settle the pending resyncs among ``ids`` (others are not this pass's: a resync
        of this process in flight is pending too)."""
        wanted = set(ids)
        outcome = Settled()
        for resync in await self._ledger.pending_resyncs():
            if resync.id not in wanted:
                continue
            result = await self._resync.settle(resync)
            if result.status == PENDING:
                log.warning("resync %s left pending: %s", resync.id, result.message)
                outcome.left.add(resync.id)
                continue
            if result.status == SETTLED_ELSEWHERE:
                continue  # whoever settled it answered
            outcome.done.append(result)
            await self._tell(resync, result)
            for hook in self.after:
                try:
                    await hook(resync, result)
                except Exception:
                    log.exception("after-settle hook %r failed", hook)
        return outcome

    async def _tell(self, resync: Resync, result: ResyncResult) -> None:
        now = self._clock.now()
        reply = settle_reply(resync, result)
        dedupe = f"resync:{resync.id}:settled"
        person = resync.requested_by != SYSTEM_ACTOR
        if resync.incident_id is not None:
            try:
                incident = await self._ledger.get_incident(resync.incident_id)
            except NotFound:
                return
            if result.status == APPLIED and person and incident.status == "open":
                # (resolved in the meantime: the reply still goes to its thread)
                with contextlib.suppress(InvalidTransition):
                    incident = await self._ledger.acknowledge(
                        incident.id, resync.requested_by, now, detail={"via": "resync"}
                    )
            await self._ledger.enqueue(
                "incident.updated",
                incident.slack_channel or self._channel,
                {"incident_id": incident.id, "reply": reply},
                now,
                incident_id=incident.id,
                dedupe_key=dedupe,
            )
        elif person:
            await self._ledger.enqueue(
                "message", resync.requested_by, {"text": reply}, now, dedupe_key=dedupe
            )
