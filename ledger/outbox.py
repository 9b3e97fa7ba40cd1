"""The outbox: messages for Slack, written in the same database as the facts they report
and delivered by workers that claim them under a lease.

Delivery order per incident is guaranteed by claiming, for each incident, only its oldest
pending entry: the next one becomes claimable once that one is delivered or dead. A
claim takes a lease (``lease_until``) and counts an attempt; an entry whose worker died
becomes claimable again when the lease runs out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.audit import insert_audit
from ledger.errors import InvalidArgument, NotFound
from ledger.incidents import require_incident
from ledger.records import OutboxEntry, OutboxStats
from ledger.store import Store, dialect_insert
from ledger.tables import OUTBOX
from ledger.types import SYSTEM_ACTOR, require_json, require_text, require_utc


def outbox_subject(entry_id: int) -> str:
    """The audit subject of an outbox entry."""
    return f"outbox:{entry_id}"


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
        )
        if dedupe_key is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
        async with self._write() as conn:
            if incident_id is not None:
                await require_incident(conn, incident_id)
            row = (await conn.execute(stmt.returning(*OUTBOX.c))).mappings().first()
        return OutboxEntry.from_row(row) if row is not None else None

    async def claim_outbox(
        self, now: datetime, limit: int = 20, lease_seconds: float = 60
    ) -> list[OutboxEntry]:
        """Lease up to ``limit`` due entries for delivery, oldest first.

        An entry is due when it is pending, ``next_attempt_at <= now``, its lease (if
        any) has run out, and no older pending entry of the same incident exists. Claimed
        entries get ``lease_until = now + lease_seconds`` and one more attempt. Two
        workers claiming at once get disjoint sets (PostgreSQL: ``FOR UPDATE SKIP
        LOCKED``; SQLite: the write lock taken at BEGIN IMMEDIATE).
        """
        now = require_utc(now, "now")
        if lease_seconds <= 0:
            raise InvalidArgument("lease_seconds must be positive")
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
                or_(OUTBOX.c.lease_until.is_(None), OUTBOX.c.lease_until <= now),
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
                        )
                        .returning(*OUTBOX.c)
                    )
                )
                .mappings()
                .all()
            )
        order = {entry_id: i for i, entry_id in enumerate(ids)}
        return sorted((OutboxEntry.from_row(r) for r in rows), key=lambda e: order[e.id])

    async def mark_delivered(
        self, entry_id: int, at: datetime, response: Mapping[str, Any] | None = None
    ) -> OutboxEntry:
        """Delivered at ``at``; ``response`` keeps what Slack returned (e.g. the ts)."""
        values = {
            "status": "delivered",
            "delivered_at": require_utc(at, "at"),
            "response": require_json(dict(response), "response") if response is not None else None,
            "lease_until": None,
            "last_error": None,
        }
        async with self._write() as conn:
            return await _settle(conn, entry_id, values)

    async def mark_retry(self, entry_id: int, error: str, next_attempt_at: datetime) -> OutboxEntry:
        """Failed for now: due again at ``next_attempt_at``, lease released."""
        values = {
            "status": "pending",
            "last_error": error,
            "next_attempt_at": require_utc(next_attempt_at, "next_attempt_at"),
            "lease_until": None,
        }
        async with self._write() as conn:
            return await _settle(conn, entry_id, values)

    async def mark_dead(self, entry_id: int, error: str, at: datetime) -> OutboxEntry:
        """Given up on (audited as ``outbox.dead``); the incident's next entry may go."""
        at = require_utc(at, "at")
        values = {"status": "dead", "last_error": error, "lease_until": None}
        async with self._write() as conn:
            entry = await _settle(conn, entry_id, values)
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
        self, incident_id: int | None = None, status: str | None = None, limit: int = 100
    ) -> list[OutboxEntry]:
        """Entries in the order they were queued, filtered by incident and status."""
        query = select(OUTBOX).order_by(OUTBOX.c.id).limit(limit)
        if incident_id is not None:
            query = query.where(OUTBOX.c.incident_id == incident_id)
        if status is not None:
            query = query.where(OUTBOX.c.status == status)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [OutboxEntry.from_row(row) for row in rows]

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


async def _settle(conn: AsyncConnection, entry_id: int, values: dict[str, Any]) -> OutboxEntry:
    row = (
        (
            await conn.execute(
                update(OUTBOX).where(OUTBOX.c.id == entry_id).values(**values).returning(*OUTBOX.c)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no outbox entry {entry_id}")
    return OutboxEntry.from_row(row)
