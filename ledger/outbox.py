"""The outbox: messages for Slack, written in the same database as the facts they report
and delivered by workers that claim them one at a time under a lease.

Delivery order per incident is guaranteed by claiming, for each incident, only its oldest
pending entry: the next one becomes claimable once that one is delivered or dead. A
claim takes a lease (``lease_until``), counts an attempt and bumps the entry's
``fence``. Everything the worker records afterwards (a renewed lease, the delivery, a
retry, a dead letter) names that fence and is refused with :class:`LeaseLost` once the
entry was claimed again: a worker whose lease ran out while Slack was slow cannot record
a delivery on top of the worker that took over.

An entry claimed again while its previous lease was still unsettled (the worker died or
stalled) is marked ``in_doubt``: the earlier attempt may have reached Slack, so the next
one looks for that post before posting again. The worker also sets ``in_doubt`` itself
when a call failed in a way that may have happened after Slack accepted it (a timeout).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.audit import insert_audit
from ledger.coordination import LEASE_TTL_SECONDS, alive
from ledger.errors import InvalidArgument, LeaseLost, NotFound
from ledger.incidents import require_incident
from ledger.records import OutboxEntry, OutboxStats
from ledger.store import Store, dialect_insert
from ledger.tables import INCIDENTS, OUTBOX, REPLICAS
from ledger.types import SYSTEM_ACTOR, require_json, require_text, require_utc


def outbox_subject(entry_id: int) -> str:
    """The audit subject of an outbox entry."""
    return f"outbox:{entry_id}"


@dataclass(frozen=True)
class FollowUp:
    """An entry to queue in the same transaction that records a delivery (e.g. the
    chart that goes into the thread of the alert just posted)."""

    kind: str
    channel: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None
    incident_id: int | None = None


class Outbox(Store):
    """Enqueueing, claiming and settling outbox entries."""

    async def enqueue(
        self,
        kind: str,
        channel: str,
        payload: Mapping[str, Any],
        at: datetime,
        incident_id: int | None = None,
        dedupe_key: str | None = None,
    ) -> OutboxEntry | None:
        """Queue a message, due at ``at``; None if ``dedupe_key`` was queued before."""
        at = require_utc(at, "at")
        async with self._write() as conn:
            return await self._insert(conn, kind, channel, payload, at, incident_id, dedupe_key)

    async def _insert(
        self,
        conn: AsyncConnection,
        kind: str,
        channel: str,
        payload: Mapping[str, Any],
        at: datetime,
        incident_id: int | None,
        dedupe_key: str | None,
    ) -> OutboxEntry | None:
        stmt = dialect_insert(self.dialect, OUTBOX).values(
            incident_id=incident_id,
            kind=require_text(kind, "kind"),
            channel=require_text(channel, "channel"),
            payload=require_json(dict(payload), "payload"),
            dedupe_key=dedupe_key,
            status="pending",
            attempts=0,
            next_attempt_at=at,
            created_at=at,
            fence=0,
            in_doubt=False,
        )
        if dedupe_key is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
        if incident_id is not None:
            await require_incident(conn, incident_id)
        row = (await conn.execute(stmt.returning(*OUTBOX.c))).mappings().first()
        return OutboxEntry.from_row(row) if row is not None else None

    async def claim_outbox(
        self,
        now: datetime,
        limit: int = 20,
        lease_seconds: float = 60,
        *,
        dead_after: float = LEASE_TTL_SECONDS,
    ) -> list[OutboxEntry]:
        """Lease up to ``limit`` due entries for delivery, oldest first (a worker claims
        one at a time, so each lease covers one entry's work).

        An entry is due when it is pending, ``next_attempt_at <= now``, its lease (if
        any) has run out or is held by a replica that is no longer alive (see
        :meth:`~ledger.coordination.Coordination.live_replicas`: a ``kill -9`` stops its
        heartbeat, so its claims are free after ``dead_after`` seconds, not after the
        whole lease), and no older pending entry of the same incident exists. Claimed
        entries get ``lease_until = now + lease_seconds``, one more attempt, a new
        ``fence`` and ``claimed_by`` = this ledger's replica; one whose previous claim
        was unsettled becomes ``in_doubt``. Two workers claiming at once get disjoint
        sets (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: the write lock taken at
        BEGIN IMMEDIATE). A claimer with no ``replicas`` row (one process on SQLite,
        nothing heartbeats) is never judged dead: its lease alone counts.
        """
        now = require_utc(now, "now")
        if lease_seconds <= 0:
            raise InvalidArgument("lease_seconds must be positive")
        dead = select(REPLICAS.c.id).where(~alive(now, dead_after))
        older = OUTBOX.alias("older")
        blocked = exists().where(
            older.c.incident_id == OUTBOX.c.incident_id,
            older.c.status == "pending",
            older.c.id < OUTBOX.c.id,
        )
        due = (
            select(OUTBOX.c.id)
            .where(
                OUTBOX.c.status == "pending",
                OUTBOX.c.next_attempt_at <= now,
                or_(
                    OUTBOX.c.lease_until.is_(None),
                    OUTBOX.c.lease_until <= now,
                    OUTBOX.c.claimed_by.in_(dead.scalar_subquery()),
                ),
                or_(OUTBOX.c.incident_id.is_(None), ~blocked),
            )
            .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=OUTBOX)
        )
        async with self._write() as conn:
            ids = list((await conn.execute(due)).scalars())
            if not ids:
                return []
            rows = (
                (
                    await conn.execute(
                        update(OUTBOX)
                        .where(OUTBOX.c.id.in_(ids))
                        .values(
                            lease_until=now + timedelta(seconds=lease_seconds),
                            attempts=OUTBOX.c.attempts + 1,
                            fence=OUTBOX.c.fence + 1,
                            claimed_by=self.replica_id or None,
                            in_doubt=case(
                                (OUTBOX.c.lease_until.is_not(None), True),
                                else_=OUTBOX.c.in_doubt,
                            ),
                        )
                        .returning(*OUTBOX.c)
                    )
                )
                .mappings()
                .all()
            )
        order = {entry_id: i for i, entry_id in enumerate(ids)}
        return sorted((OutboxEntry.from_row(r) for r in rows), key=lambda e: order[e.id])

    async def renew_lease(self, entry_id: int, fence: int, until: datetime) -> OutboxEntry:
        """Extend the lease of an entry still held under ``fence`` to ``until``;
        :class:`LeaseLost` if it is not."""
        values = {"lease_until": require_utc(until, "until")}
        async with self._write() as conn:
            return await _settle(conn, entry_id, values, fence)

    async def mark_delivered(
        self,
        entry_id: int,
        at: datetime,
        response: Mapping[str, Any] | None = None,
        *,
        fence: int | None = None,
        incident_message: tuple[int, str, str] | None = None,
        then: Sequence[FollowUp] = (),
    ) -> OutboxEntry:
        """Delivered at ``at``; ``response`` keeps what Slack returned (e.g. the ts).

        In the same transaction: ``incident_message`` ``(incident_id, channel, ts)``
        becomes the incident's Slack message, and the ``then`` entries are queued (due
        at ``at``). With ``fence``, :class:`LeaseLost` (and nothing recorded) unless
        the entry is still pending under that fence.
        """
        at = require_utc(at, "at")
        values = {
            "status": "delivered",
            "delivered_at": at,
            "response": require_json(dict(response), "response") if response is not None else None,
            "lease_until": None,
            "last_error": None,
            "in_doubt": False,
        }
        async with self._write() as conn:
            entry = await _settle(conn, entry_id, values, fence)
            if incident_message is not None:
                incident_id, channel, ts = incident_message
                result = await conn.execute(
                    update(INCIDENTS)
                    .where(INCIDENTS.c.id == incident_id)
                    .values(slack_channel=channel, slack_ts=ts)
                )
                if result.rowcount == 0:
                    raise NotFound(f"no incident {incident_id}")
            for follow in then:
                await self._insert(
                    conn,
                    follow.kind,
                    follow.channel,
                    follow.payload,
                    at,
                    follow.incident_id,
                    follow.dedupe_key,
                )
        return entry

    async def mark_retry(
        self,
        entry_id: int,
        error: str,
        next_attempt_at: datetime,
        *,
        fence: int | None = None,
        in_doubt: bool | None = None,
    ) -> OutboxEntry:
        """Failed for now: due again at ``next_attempt_at``, lease released. ``in_doubt``
        (when given) says whether the post may have reached Slack anyway."""
        values: dict[str, Any] = {
            "status": "pending",
            "last_error": error,
            "next_attempt_at": require_utc(next_attempt_at, "next_attempt_at"),
            "lease_until": None,
        }
        if in_doubt is not None:
            values["in_doubt"] = in_doubt
        async with self._write() as conn:
            return await _settle(conn, entry_id, values, fence)

    async def defer(
        self, entry_id: int, until: datetime, *, fence: int, in_doubt: bool | None = None
    ) -> OutboxEntry:
        """Not attempted after all (e.g. the channel's pace): due again at ``until``,
        lease released, the claim's attempt not counted, the last error kept."""
        values: dict[str, Any] = {
            "next_attempt_at": require_utc(until, "until"),
            "lease_until": None,
            "attempts": func.max(OUTBOX.c.attempts - 1, 0)
            if self.dialect == "sqlite"
            else func.greatest(OUTBOX.c.attempts - 1, 0),
        }
        if in_doubt is not None:
            values["in_doubt"] = in_doubt
        async with self._write() as conn:
            return await _settle(conn, entry_id, values, fence)

    async def mark_dead(
        self, entry_id: int, error: str, at: datetime, *, fence: int | None = None
    ) -> OutboxEntry:
        """Given up on (audited as ``outbox.dead``); the incident's next entry may go."""
        at = require_utc(at, "at")
        values = {"status": "dead", "last_error": error, "lease_until": None}
        async with self._write() as conn:
            entry = await _settle(conn, entry_id, values, fence)
            await insert_audit(
                conn,
                actor=SYSTEM_ACTOR,
                action="outbox.dead",
                subject=outbox_subject(entry_id),
                detail={
                    "kind": entry.kind,
                    "channel": entry.channel,
                    "incident_id": entry.incident_id,
                    "attempts": entry.attempts,
                    "error": error,
                },
                at=at,
            )
        return entry

    async def get_outbox_entry(self, entry_id: int) -> OutboxEntry:
        """The entry with this id; :class:`NotFound` if there is none."""
        async with self._read() as conn:
            row = (
                (await conn.execute(select(OUTBOX).where(OUTBOX.c.id == entry_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no outbox entry {entry_id}")
        return OutboxEntry.from_row(row)

    async def list_outbox(
        self,
        incident_id: int | None = None,
        status: str | None = None,
        limit: int = 100,
        kind: str | None = None,
    ) -> list[OutboxEntry]:
        """Entries in the order they were queued, filtered by incident, status and kind."""
        query = select(OUTBOX).order_by(OUTBOX.c.id).limit(limit)
        if incident_id is not None:
            query = query.where(OUTBOX.c.incident_id == incident_id)
        if status is not None:
            query = query.where(OUTBOX.c.status == status)
        if kind is not None:
            query = query.where(OUTBOX.c.kind == kind)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [OutboxEntry.from_row(row) for row in rows]

    async def delivered_channel_id(self, channel: str) -> str | None:
        """The channel id Slack answered with for the newest delivered entry sent to
        ``channel`` (a name like ``#ops`` or an id), or None if none was delivered."""
        query = (
            select(OUTBOX.c.response)
            .where(
                OUTBOX.c.channel == channel,
                OUTBOX.c.status == "delivered",
                OUTBOX.c.response.is_not(None),
            )
            .order_by(OUTBOX.c.id.desc())
            .limit(20)
        )
        async with self._read() as conn:
            responses = list((await conn.execute(query)).scalars())
        for response in responses:
            if isinstance(response, dict) and isinstance(response.get("channel"), str):
                return str(response["channel"])
        return None

    async def outbox_stats(self) -> OutboxStats:
        """How many entries are pending, delivered and dead; the oldest pending one's age."""
        counts = select(OUTBOX.c.status, func.count()).group_by(OUTBOX.c.status)
        oldest = select(func.min(OUTBOX.c.created_at)).where(OUTBOX.c.status == "pending")
        async with self._read() as conn:
            by_status: dict[str, int] = {
                status: count for status, count in await conn.execute(counts)
            }
            oldest_pending = (await conn.execute(oldest)).scalar_one_or_none()
        return OutboxStats(
            pending=by_status.get("pending", 0),
            delivered=by_status.get("delivered", 0),
            dead=by_status.get("dead", 0),
            oldest_pending_at=oldest_pending,
        )


async def _settle(
    conn: AsyncConnection, entry_id: int, values: dict[str, Any], fence: int | None
) -> OutboxEntry:
    """Update the entry; with ``fence``, only while it is pending under that fence."""
    stmt = update(OUTBOX).where(OUTBOX.c.id == entry_id)
    if fence is not None:
        stmt = stmt.where(OUTBOX.c.fence == fence, OUTBOX.c.status == "pending")
    row = (await conn.execute(stmt.values(**values).returning(*OUTBOX.c))).mappings().first()
    if row is not None:
        return OutboxEntry.from_row(row)
    if fence is None:
        raise NotFound(f"no outbox entry {entry_id}")
    current = (
        await conn.execute(select(OUTBOX.c.status, OUTBOX.c.fence).where(OUTBOX.c.id == entry_id))
    ).first()
    if current is None:
        raise NotFound(f"no outbox entry {entry_id}")
    raise LeaseLost(
        f"outbox entry {entry_id} is {current.status} under fence {current.fence}, "
        f"not pending under fence {fence}"
    )
