"""Resyncs: requests to write the source-of-truth count into a drifting system, each
keyed by an idempotency key so a double click or a retry never writes twice."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.audit import insert_audit
from ledger.errors import InvalidArgument, NotFound
from ledger.incidents import require_incident
from ledger.records import Resync
from ledger.store import Store
from ledger.tables import RESYNCS
from ledger.types import RESYNC_STATUSES, SYSTEM_ACTOR, require_choice, require_text, require_utc

#: How often create_resync retries after losing an insert race to another writer.
_CREATE_ATTEMPTS = 3


def resync_subject(resync_id: int) -> str:
    """The audit subject of a resync."""
    return f"resync:{resync_id}"


class Resyncs(Store):
    """Creating resync requests and recording what became of them."""

    async def create_resync(
        self,
        idempotency_key: str,
        system: str,
        sku: str,
        location: str,
        state: str,
        target: int,
        requested_by: str,
        at: datetime,
        incident_id: int | None = None,
        before: int | None = None,
        reason: str | None = None,
    ) -> tuple[Resync, bool]:
        """The resync for ``idempotency_key``, and whether this call created it.

        A new one starts ``pending`` and is audited as ``resync.requested``; an existing
        key returns the stored resync unchanged, whatever the other arguments say.
        ``reason`` is the reason the write carries (kept so it can be replayed as sent).
        """
        key = require_text(idempotency_key, "idempotency_key")
        at = require_utc(at, "at")
        if not isinstance(target, int):
            raise InvalidArgument(f"target must be an int (got {target!r})")
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                async with self._write() as conn:
                    existing = await _by_key(conn, key)
                    if existing is not None:
                        return existing, False
                    if incident_id is not None:
                        await require_incident(conn, incident_id)
                    row = (
                        (
                            await conn.execute(
                                insert(RESYNCS)
                                .values(
                                    idempotency_key=key,
                                    incident_id=incident_id,
                                    system=system,
                                    sku=sku,
                                    location=location,
                                    state=state,
                                    before=before,
                                    target=target,
                                    after=None,
                                    status="pending",
                                    attempts=0,
                                    error=None,
                                    requested_by=require_text(requested_by, "by"),
                                    created_at=at,
                                    updated_at=at,
                                    reason=reason,
                                    replica=self.replica_id,
                                )
                                .returning(*RESYNCS.c)
                            )
                        )
                        .mappings()
                        .one()
                    )
                    resync = Resync.from_row(row)
                    await insert_audit(
                        conn,
                        actor=requested_by,
                        action="resync.requested",
                        subject=resync_subject(resync.id),
                        detail={
                            "idempotency_key": key,
                            "incident_id": incident_id,
                            "system": system,
                            "sku": sku,
                            "location": location,
                            "state": state,
                            "before": before,
                            "target": target,
                            "reason": reason,
                        },
                        at=at,
                    )
                    return resync, True
            except IntegrityError:
                if attempt == _CREATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def update_resync(
        self,
        resync_id: int,
        status: str,
        at: datetime,
        after: int | None = None,
        before: int | None = None,
        error: str | None = None,
        attempts_increment: int = 1,
    ) -> Resync:
        """Record an attempt's outcome (audited as ``resync.<status>``).

        ``after`` and ``before`` replace the stored values when given; ``error`` always
        replaces the stored one, so a success clears an earlier failure.
        """
        require_choice(status, RESYNC_STATUSES, "status")
        resync = await self._record_outcome(
            resync_id, status, at, after, before, error, attempts_increment, settling=False
        )
        if resync is None:
            raise NotFound(f"no resync {resync_id}")
        return resync

    async def settle_resync(
        self,
        resync_id: int,
        status: str,
        at: datetime,
        after: int | None = None,
        error: str | None = None,
    ) -> Resync | None:
        """Record the outcome of a resync found ``pending`` (one left by a process that
        died, settled at start); None, and nothing written, if it is no longer pending
        (someone else settled it first). Audited as ``resync.<status>`` with
        ``settled: true``."""
        require_choice(status, RESYNC_STATUSES, "status")
        if status == "pending":
            raise InvalidArgument("a resync is settled as something other than pending")
        return await self._record_outcome(
            resync_id, status, at, after, None, error, 1, settling=True
        )

    async def _record_outcome(
        self,
        resync_id: int,
        status: str,
        at: datetime,
        after: int | None,
        before: int | None,
        error: str | None,
        attempts_increment: int,
        *,
        settling: bool,
    ) -> Resync | None:
        """One outcome and its audit entry, in one transaction; None when no row matched
        (with ``settling``, only a row still ``pending`` matches)."""
        at = require_utc(at, "at")
        values: dict[str, Any] = {
            "status": status,
            "updated_at": at,
            "error": error,
            "attempts": RESYNCS.c.attempts + attempts_increment,
        }
        if after is not None:
            values["after"] = after
        if before is not None:
            values["before"] = before
        where = [RESYNCS.c.id == resync_id]
        if settling:
            where.append(RESYNCS.c.status == "pending")
        async with self._write() as conn:
            row = (
                (
                    await conn.execute(
                        update(RESYNCS).where(*where).values(**values).returning(*RESYNCS.c)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            resync = Resync.from_row(row)
            detail: dict[str, Any] = {
                "before": resync.before,
                "target": resync.target,
                "after": resync.after,
                "error": error,
                "attempts": resync.attempts,
            }
            if settling:
                detail["settled"] = True
            await insert_audit(
                conn,
                actor=SYSTEM_ACTOR,
                action=f"resync.{status}",
                subject=resync_subject(resync_id),
                detail=detail,
                at=at,
            )
        return resync

    async def pending_resyncs(self, limit: int = 1000) -> list[Resync]:
        """Resyncs still ``pending``, oldest first."""
        query = (
            select(RESYNCS).where(RESYNCS.c.status == "pending").order_by(RESYNCS.c.id).limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Resync.from_row(row) for row in rows]

    async def resync_occurrence(self, system: str, sku: str, location: str, state: str) -> int:
        """The id of the newest *settled* (not ``pending``) resync of this level, 0 if
        none: what a new resync decision's idempotency key names, so that retries and
        double clicks of one decision share a key and a decision made after an earlier
        one settled gets a new one."""
        r = RESYNCS.c
        query = select(func.max(r.id)).where(
            r.system == system,
            r.sku == sku,
            r.location == location,
            r.state == state,
            r.status != "pending",
        )
        async with self._read() as conn:
            newest = (await conn.execute(query)).scalar()
        return int(newest or 0)

    async def get_resync(self, resync_id: int) -> Resync:
        """The resync with this id; :class:`NotFound` if there is none."""
        async with self._read() as conn:
            row = (
                (await conn.execute(select(RESYNCS).where(RESYNCS.c.id == resync_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no resync {resync_id}")
        return Resync.from_row(row)

    async def get_resync_by_key(self, idempotency_key: str) -> Resync | None:
        """The resync with this idempotency key, or None."""
        async with self._read() as conn:
            return await _by_key(conn, idempotency_key)

    async def list_resyncs(
        self,
        incident_id: int | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Resync]:
        """Resyncs, newest first: an incident's, and/or those created since ``since``."""
        query = select(RESYNCS).order_by(RESYNCS.c.created_at.desc(), RESYNCS.c.id.desc())
        if incident_id is not None:
            query = query.where(RESYNCS.c.incident_id == incident_id)
        if since is not None:
            query = query.where(RESYNCS.c.created_at >= require_utc(since, "since"))
        async with self._read() as conn:
            rows = (await conn.execute(query.limit(limit))).mappings().all()
        return [Resync.from_row(row) for row in rows]


async def _by_key(conn: AsyncConnection, key: str) -> Resync | None:
    row = (
        (await conn.execute(select(RESYNCS).where(RESYNCS.c.idempotency_key == key)))
        .mappings()
        .first()
    )
    return Resync.from_row(row) if row is not None else None
