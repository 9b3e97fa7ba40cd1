"""Replicas on one database: heartbeats, job leases with fencing tokens, per-tick claims.

Several Driftwatch processes (replicas) may share one PostgreSQL. What each scheduled job
does must happen once, and the work must spread over the replicas. Three kinds of rows
decide it, all inspectable in SQL:

``replicas``
    Every process heartbeats its row every :data:`HEARTBEAT_SECONDS`. One whose
    ``heartbeat_at`` is older than :data:`LEASE_TTL_SECONDS` (or that stopped) is dead.
``job_leases``
    One row per job and unit of work (a store, or ``all``): who runs it, until when. A
    holder renews its leases with every heartbeat; a lease that ran out (its holder died
    or stalled) is taken over by another replica, which bumps the row's ``token`` (the
    fencing token). Every write made under a lease names its token, and is refused once
    the token moved on: a holder that stalled past its lease cannot act on top of the
    replica that took over.
``job_claims``
    One row per job, unit and tick, under a primary key: whichever replica inserts it
    first runs that tick; the others (a late scheduler, a holder in the middle of a
    takeover) find it and skip. The same rows give one auto-resync decision per incident
    opening (job ``policy``).

Why leases rather than PostgreSQL advisory locks: a session lock lives as long as its
connection, and a pooled connection outlives the work that took the lock (or is
recycled under it), so who holds what is easy to get subtly wrong, and it cannot be seen
from outside the connection. A lease row with an expiry and a fencing token says who
holds what, until when, and since which takeover, in plain SQL and in ``/metrics``; a
replica killed with ``kill -9`` loses its leases after the TTL with no connection state
involved.

SQLite has one process by design; the same methods work there (the write lock taken at
``BEGIN IMMEDIATE`` serializes them).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.errors import InvalidArgument, LeaseLost
from ledger.store import Store, dialect_insert
from ledger.tables import (
    JOB_CLAIMS,
    JOB_LEASES,
    JOB_STATE,
    REPLICA_HEALTH,
    REPLICAS,
    SLACK_PACE,
)
from ledger.types import require_json, require_text, require_utc

#: how often a replica heartbeats and renews its leases
HEARTBEAT_SECONDS = 5.0
#: how long a lease (and a heartbeat) holds without renewal: a replica killed with
#: ``kill -9`` loses its leases this long after its last heartbeat, and another replica
#: takes them at its next heartbeat (failover ≤ TTL + heartbeat = 20 s)
LEASE_TTL_SECONDS = 15.0


def alive(now: datetime, ttl: float = LEASE_TTL_SECONDS) -> ColumnElement[bool]:
    """The ``replicas`` rows alive at ``now``: heartbeat within ``ttl``, not stopped (a
    claim held by any other replica is free to take, see ``ledger/outbox.py``)."""
    since = require_utc(now, "now") - timedelta(seconds=ttl)
    return and_(REPLICAS.c.heartbeat_at > since, REPLICAS.c.stopped_at.is_(None))


def new_replica_id() -> str:
    """An id for this process: host, pid, and a random part (a pid is reused)."""
    host = socket.gethostname()[:60] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Lease:
    """A job's lease for one unit, as stored."""

    job: str
    unit: str
    holder: str | None
    token: int
    expires_at: datetime | None
    acquired_at: datetime | None


@dataclass(frozen=True, slots=True)
class Acquired:
    """A lease this replica holds now; ``taken`` when it was just taken (its token
    bumped), ``previous`` the holder it was taken from (None: it was free)."""

    lease: Lease
    taken: bool
    previous: str | None


@dataclass(frozen=True, slots=True)
class HealthCounters:
    """One replica's account of one connector (its counters only grow)."""

    system: str
    requests: int
    throttles: int
    retries: int
    failures: int
    error_streak: int
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None


def _lease(row: object) -> Lease:
    return Lease(
        job=row.job,  # type: ignore[attr-defined]
        unit=row.unit,  # type: ignore[attr-defined]
        holder=row.holder,  # type: ignore[attr-defined]
        token=int(row.token),  # type: ignore[attr-defined]
        expires_at=row.expires_at,  # type: ignore[attr-defined]
        acquired_at=row.acquired_at,  # type: ignore[attr-defined]
    )


class Coordination(Store):
    """Heartbeats, leases and claims (see the module docstring)."""

    # -- replicas ---------------------------------------------------------------------

    async def heartbeat(self, replica: str, now: datetime, *, host: str, pid: int) -> None:
        """Say ``replica`` is alive at ``now`` (registering it the first time)."""
        now = require_utc(now, "now")
        stmt = dialect_insert(self.dialect, REPLICAS).values(
            id=require_text(replica, "replica"),
            host=host,
            pid=pid,
            started_at=now,
            heartbeat_at=now,
            stopped_at=None,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"], set_={"heartbeat_at": now, "stopped_at": None}
        )
        async with self._write() as conn:
            await conn.execute(stmt)

    async def stop_replica(self, replica: str, now: datetime) -> None:
        """``replica`` stops: it is no longer alive and its leases are free at once."""
        now = require_utc(now, "now")
        async with self._write() as conn:
            await conn.execute(
                update(REPLICAS).where(REPLICAS.c.id == replica).values(stopped_at=now)
            )
            await conn.execute(
                update(JOB_LEASES)
                .where(JOB_LEASES.c.holder == replica)
                .values(holder=None, expires_at=None)
            )

    async def live_replicas(self, now: datetime, ttl: float = LEASE_TTL_SECONDS) -> list[str]:
        """The replicas that heartbeat within ``ttl`` of ``now`` and did not stop."""
        query = select(REPLICAS.c.id).where(alive(now, ttl)).order_by(REPLICAS.c.id)
        async with self._read() as conn:
            return list((await conn.execute(query)).scalars())

    async def replica_alive(
        self, replica: str, now: datetime, ttl: float = LEASE_TTL_SECONDS
    ) -> bool:
        """Whether ``replica`` heartbeat within ``ttl`` of ``now`` and did not stop."""
        return replica in await self.live_replicas(now, ttl)

    # -- leases -----------------------------------------------------------------------

    async def acquire_lease(
        self,
        job: str,
        unit: str,
        replica: str,
        now: datetime,
        *,
        ttl: float = LEASE_TTL_SECONDS,
        cap: int | None = None,
    ) -> Acquired | None:
        """Hold the lease of ``job`` for ``unit`` until ``now + ttl``.

        Renewed if ``replica`` holds it still; taken (``token`` + 1) if it is free or ran
        out, unless ``replica`` already holds ``cap`` unexpired leases (its fair share);
        None if another replica holds it (or the share is full)."""
        now = require_utc(now, "now")
        if ttl <= 0:
            raise InvalidArgument("ttl must be positive")
        until = now + timedelta(seconds=ttl)
        key = (JOB_LEASES.c.job == job, JOB_LEASES.c.unit == unit)
        async with self._write() as conn:
            await conn.execute(
                dialect_insert(self.dialect, JOB_LEASES)
                .values(job=require_text(job, "job"), unit=require_text(unit, "unit"), token=0)
                .on_conflict_do_nothing(index_elements=["job", "unit"])
            )
            row = (await conn.execute(select(JOB_LEASES).where(*key).with_for_update())).first()
            assert row is not None
            current = _lease(row)
            live = current.expires_at is not None and current.expires_at > now
            if current.holder == replica and live:
                renewed = (
                    await conn.execute(
                        update(JOB_LEASES)
                        .where(*key)
                        .values(expires_at=until)
                        .returning(*JOB_LEASES.c)
                    )
                ).first()
                return Acquired(_lease(renewed), taken=False, previous=None)
            if current.holder is not None and live:
                return None
            if cap is not None:
                held = (
                    await conn.execute(
                        select(func.count())
                        .select_from(JOB_LEASES)
                        .where(JOB_LEASES.c.holder == replica, JOB_LEASES.c.expires_at > now)
                    )
                ).scalar_one()
                if held >= cap:
                    return None
            taken = (
                await conn.execute(
                    update(JOB_LEASES)
                    .where(*key)
                    .values(
                        holder=replica,
                        token=JOB_LEASES.c.token + 1,
                        expires_at=until,
                        acquired_at=now,
                    )
                    .returning(*JOB_LEASES.c)
                )
            ).first()
            return Acquired(_lease(taken), taken=True, previous=current.holder)

    async def renew_leases(
        self, replica: str, now: datetime, ttl: float = LEASE_TTL_SECONDS
    ) -> list[Lease]:
        """Extend every lease ``replica`` still holds (unexpired) to ``now + ttl``; the
        leases that ran out are not renewed (another replica may have them already)."""
        now = require_utc(now, "now")
        stmt = (
            update(JOB_LEASES)
            .where(JOB_LEASES.c.holder == replica, JOB_LEASES.c.expires_at > now)
            .values(expires_at=now + timedelta(seconds=ttl))
            .returning(*JOB_LEASES.c)
        )
        async with self._write() as conn:
            rows = (await conn.execute(stmt)).all()
        return sorted((_lease(r) for r in rows), key=lambda lease: (lease.job, lease.unit))

    async def release_lease(self, job: str, unit: str, replica: str, token: int) -> bool:
        """Give the lease up (for another replica to take); False if it was not held by
        ``replica`` under ``token`` any more."""
        stmt = (
            update(JOB_LEASES)
            .where(
                JOB_LEASES.c.job == job,
                JOB_LEASES.c.unit == unit,
                JOB_LEASES.c.holder == replica,
                JOB_LEASES.c.token == token,
            )
            .values(holder=None, expires_at=None)
        )
        async with self._write() as conn:
            return (await conn.execute(stmt)).rowcount > 0

    async def list_leases(self, job: str | None = None) -> list[Lease]:
        """Every lease row (held or not), by job and unit."""
        query = select(JOB_LEASES).order_by(JOB_LEASES.c.job, JOB_LEASES.c.unit)
        if job is not None:
            query = query.where(JOB_LEASES.c.job == job)
        async with self._read() as conn:
            return [_lease(r) for r in await conn.execute(query)]

    # -- claims -----------------------------------------------------------------------

    async def claim_tick(
        self,
        job: str,
        unit: str,
        tick: str,
        replica: str,
        now: datetime,
        *,
        token: int | None = None,
    ) -> bool:
        """Claim the run of ``job`` for ``unit`` at ``tick``: True for the one replica
        that claims it first, False for every other.

        With ``token`` the claim is fenced: :class:`LeaseLost` (and nothing written)
        unless ``replica`` holds the job's lease for ``unit`` under that token, unexpired."""
        now = require_utc(now, "now")
        async with self._write() as conn:
            if token is not None:
                await _require_lease(conn, job, unit, replica, token, unexpired_at=now)
            stmt = (
                dialect_insert(self.dialect, JOB_CLAIMS)
                .values(
                    job=require_text(job, "job"),
                    unit=require_text(unit, "unit"),
                    tick=require_text(tick, "tick"),
                    replica=replica,
                    token=token or 0,
                    claimed_at=now,
                )
                .on_conflict_do_nothing(index_elements=["job", "unit", "tick"])
                .returning(JOB_CLAIMS.c.replica)
            )
            return (await conn.execute(stmt)).first() is not None

    async def claim_holder(self, job: str, unit: str, tick: str) -> str | None:
        """The replica that claimed ``job`` for ``unit`` at ``tick``; None if none did."""
        query = select(JOB_CLAIMS.c.replica).where(
            JOB_CLAIMS.c.job == job, JOB_CLAIMS.c.unit == unit, JOB_CLAIMS.c.tick == tick
        )
        async with self._read() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def take_over_claim(
        self, job: str, unit: str, tick: str, replica: str, dead: str, now: datetime
    ) -> bool:
        """Make ``replica`` the claimer in place of ``dead`` (which died holding it);
        False if the claim is not ``dead``'s any more (another replica took it)."""
        stmt = (
            update(JOB_CLAIMS)
            .where(
                JOB_CLAIMS.c.job == job,
                JOB_CLAIMS.c.unit == unit,
                JOB_CLAIMS.c.tick == tick,
                JOB_CLAIMS.c.replica == dead,
            )
            .values(replica=replica, claimed_at=require_utc(now, "now"))
        )
        async with self._write() as conn:
            return (await conn.execute(stmt)).rowcount > 0

    async def release_claim(self, job: str, unit: str, tick: str, replica: str) -> None:
        """Undo ``replica``'s claim (its work turned out to have nothing to decide)."""
        stmt = delete(JOB_CLAIMS).where(
            JOB_CLAIMS.c.job == job,
            JOB_CLAIMS.c.unit == unit,
            JOB_CLAIMS.c.tick == tick,
            JOB_CLAIMS.c.replica == replica,
        )
        async with self._write() as conn:
            await conn.execute(stmt)

    async def prune_claims(self, before: datetime, *, keep_job: str = "policy") -> int:
        """Forget the tick claims made before ``before`` (the ticks are long past); the
        decisions of ``keep_job`` stay."""
        stmt = delete(JOB_CLAIMS).where(
            JOB_CLAIMS.c.claimed_at < require_utc(before, "before"),
            JOB_CLAIMS.c.job != keep_job,
        )
        async with self._write() as conn:
            return (await conn.execute(stmt)).rowcount

    # -- the Slack pace ---------------------------------------------------------------

    async def reserve_slot(
        self, channel: str, now: datetime, spacing: float, max_wait: float
    ) -> datetime:
        """The channel's next free posting slot (at or after ``now``), taken (the next
        one moves ``spacing`` seconds on) only if it is at most ``max_wait`` seconds
        away. One row per channel, locked for the read-and-move: replicas reserving at
        once get different slots."""
        now = require_utc(now, "now")
        async with self._write() as conn:
            await conn.execute(
                dialect_insert(self.dialect, SLACK_PACE)
                .values(channel=require_text(channel, "channel"), next_at=now)
                .on_conflict_do_nothing(index_elements=["channel"])
            )
            next_at: datetime = (
                await conn.execute(
                    select(SLACK_PACE.c.next_at)
                    .where(SLACK_PACE.c.channel == channel)
                    .with_for_update()
                )
            ).scalar_one()
            slot = max(now, next_at)
            if (slot - now).total_seconds() <= max_wait:
                await conn.execute(
                    update(SLACK_PACE)
                    .where(SLACK_PACE.c.channel == channel)
                    .values(next_at=slot + timedelta(seconds=spacing))
                )
        return slot

    async def hold_channel(self, channel: str, until: datetime) -> None:
        """No slot in ``channel`` before ``until`` (Slack answered 429 Retry-After)."""
        until = require_utc(until, "until")
        later = func.max if self.dialect == "sqlite" else func.greatest
        stmt = dialect_insert(self.dialect, SLACK_PACE).values(
            channel=require_text(channel, "channel"), next_at=until
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["channel"],
            set_={"next_at": later(SLACK_PACE.c.next_at, stmt.excluded.next_at)},
        )
        async with self._write() as conn:
            await conn.execute(stmt)

    # -- leased jobs' state -----------------------------------------------------------

    async def save_job_state(
        self,
        job: str,
        unit: str,
        replica: str,
        token: int,
        state: Mapping[str, Any],
        now: datetime,
    ) -> None:
        """Keep ``state`` for the next holder of the lease of ``job`` for ``unit``;
        :class:`LeaseLost` (nothing written) unless ``replica`` holds it under ``token``."""
        now = require_utc(now, "now")
        async with self._write() as conn:
            await _require_lease(conn, job, unit, replica, token)
            stmt = dialect_insert(self.dialect, JOB_STATE).values(
                job=job,
                unit=unit,
                token=token,
                state=require_json(dict(state), "state"),
                updated_at=now,
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["job", "unit"],
                set_={"token": token, "state": stmt.excluded.state, "updated_at": now},
            )
            await conn.execute(stmt)

    async def load_job_state(self, job: str, unit: str) -> dict[str, Any] | None:
        """The state the last holder kept for ``job`` and ``unit``; None if none did."""
        query = select(JOB_STATE.c.state).where(JOB_STATE.c.job == job, JOB_STATE.c.unit == unit)
        async with self._read() as conn:
            state = (await conn.execute(query)).scalar_one_or_none()
        return dict(state) if isinstance(state, dict) else None

    # -- connector counters -----------------------------------------------------------

    async def publish_health(
        self, replica: str, counters: Sequence[HealthCounters], now: datetime
    ) -> None:
        """Store ``replica``'s current connector counters (one row per system)."""
        now = require_utc(now, "now")
        if not counters:
            return
        rows = [
            {
                "replica": replica,
                "system": c.system,
                "requests": c.requests,
                "throttles": c.throttles,
                "retries": c.retries,
                "failures": c.failures,
                "error_streak": c.error_streak,
                "last_success": c.last_success,
                "last_error": c.last_error,
                "last_error_at": c.last_error_at,
                "updated_at": now,
            }
            for c in counters
        ]
        stmt = dialect_insert(self.dialect, REPLICA_HEALTH).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["replica", "system"],
            set_={
                name: stmt.excluded[name] for name in rows[0] if name not in ("replica", "system")
            },
        )
        async with self._write() as conn:
            await conn.execute(stmt)

    async def replica_health(self) -> list[tuple[str, HealthCounters]]:
        """Every replica's last published counters, as (replica, counters)."""
        query = select(REPLICA_HEALTH).order_by(REPLICA_HEALTH.c.system, REPLICA_HEALTH.c.replica)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            (
                r["replica"],
                HealthCounters(
                    system=r["system"],
                    requests=r["requests"],
                    throttles=r["throttles"],
                    retries=r["retries"],
                    failures=r["failures"],
                    error_streak=r["error_streak"],
                    last_success=r["last_success"],
                    last_error=r["last_error"],
                    last_error_at=r["last_error_at"],
                ),
            )
            for r in rows
        ]


async def _require_lease(
    conn: AsyncConnection,
    job: str,
    unit: str,
    replica: str,
    token: int,
    *,
    unexpired_at: datetime | None = None,
) -> None:
    """Lock the lease row of ``job`` for ``unit`` for this transaction, or raise
    :class:`LeaseLost` unless ``replica`` holds it under ``token`` (and, with
    ``unexpired_at``, it has not run out by then)."""
    query = select(JOB_LEASES.c.token).where(
        JOB_LEASES.c.job == job,
        JOB_LEASES.c.unit == unit,
        JOB_LEASES.c.holder == replica,
        JOB_LEASES.c.token == token,
    )
    if unexpired_at is not None:
        query = query.where(JOB_LEASES.c.expires_at > unexpired_at)
    if (await conn.execute(query.with_for_update())).first() is None:
        raise LeaseLost(f"the lease of {job} for {unit} is not held by {replica} under {token}")
