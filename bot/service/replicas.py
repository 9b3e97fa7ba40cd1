"""Which replica runs which scheduled job: the service's side of ledger/coordination.py.

Every replica keeps its own APScheduler with its own in-memory job store (APScheduler 3's
job stores must not be shared between schedulers); its timers fire on every replica.
What a fired job then does is decided in the database:

* **Leases, per job and unit** (a unit is a store, or ``all``). Every
  :data:`~ledger.HEARTBEAT_SECONDS` a replica heartbeats, renews the leases it holds for
  :data:`~ledger.LEASE_TTL_SECONDS`, and takes free or expired ones up to its fair share,
  ``ceil(leases / live replicas)``: with 50 stores and three replicas each polls about
  17, and there is no single leader. A replica over its share (another one joined) gives
  the excess back for the newcomer to take. A replica killed with ``kill -9`` stops
  renewing; its leases run out after the TTL and the others take them at their next
  heartbeat (failover within TTL + heartbeat = 20 s), and run the job at once.
* **Tick claims.** Only the lease holder runs a leased job, and before running it claims
  (job, unit, tick) under its fencing token: a holder whose lease was taken over is
  refused (``LeaseLost``), and two holders in the middle of a takeover cannot both run
  one tick. Jobs with no lease (the daily and weekly reports, on cron timers that fire on
  every replica) claim their tick alone: one report per day or week.

SQLite is one process by design (:class:`Solo`): every job runs there, as before.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from connectors.clock import Clock
from ledger import HEARTBEAT_SECONDS, LEASE_TTL_SECONDS, LeaseLost, Ledger

log = logging.getLogger("driftwatch.replicas")

#: the unit of a job that is not split by store
ALL = "all"
#: how long tick claims are kept (the ticks are long past)
CLAIMS_KEPT = timedelta(days=2)

Taken = Callable[[str, str], Awaitable[None]]


class Metrics:
    """What ``/metrics`` shows of the coordination."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.live = Gauge(
            "driftwatch_replicas_live",
            "Replicas heartbeating on this database, as this replica last saw",
            registry=registry,
        )
        self.held = Gauge(
            "driftwatch_leases_held",
            "Job leases this replica holds, by job",
            ["job"],
            registry=registry,
        )
        self.takeovers = Counter(
            "driftwatch_lease_takeovers",
            "Leases this replica took from a replica whose lease ran out (its token bumped)",
            ["job"],
            registry=registry,
        )
        self.lost = Counter(
            "driftwatch_leases_lost",
            "Leases this replica found taken over or run out before it renewed them",
            ["job"],
            registry=registry,
        )
        self.claims = Counter(
            "driftwatch_job_claims",
            "Tick claims by job and outcome: won (ran), lost (another replica ran the "
            "tick), not_holder (another replica holds the lease), fenced (lease lost)",
            ["job", "outcome"],
            registry=registry,
        )


class Solo:
    """One process on SQLite: this replica runs everything."""

    def __init__(self, ledger: Ledger) -> None:
        self.replica_id = ledger.replica_id
        self.shared = False
        self.on_taken: list[Taken] = []

    def holds(self, job: str, unit: str = ALL) -> bool:
        return True

    async def beat(self) -> None:
        return None

    async def should_run(self, job: str, unit: str, tick: str | None) -> bool:
        return True

    async def claim_once(self, job: str, tick: str) -> bool:
        return True

    async def stop(self) -> None:
        return None


class Shared:
    """Leases, heartbeats and claims in PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        registry: CollectorRegistry,
        units: Mapping[str, Sequence[str]],
        *,
        ttl: float = LEASE_TTL_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.replica_id = ledger.replica_id
        self.shared = True
        self._ledger = ledger
        self._clock = clock
        self.ttl = ttl
        self.heartbeat_seconds = heartbeat
        #: every (job, unit) lease there is, in this replica's order of preference (a
        #: hash of the replica id: replicas starting together reach for different ones)
        self._pairs = sorted(
            ((job, unit) for job, job_units in units.items() for unit in job_units),
            key=lambda pair: hashlib.sha256(f"{self.replica_id}/{pair}".encode()).digest(),
        )
        #: the leases held, with their fencing tokens, as of the last heartbeat or claim
        self._held: dict[tuple[str, str], int] = {}
        self._metrics = Metrics(registry)
        self._last_prune: datetime | None = None
        #: called with (job, unit) for each lease just taken (the service runs it now)
        self.on_taken: list[Taken] = []

    @property
    def held(self) -> dict[tuple[str, str], int]:
        """The leases this replica holds, with their tokens (a copy)."""
        return dict(self._held)

    def holds(self, job: str, unit: str = ALL) -> bool:
        return (job, unit) in self._held

    async def beat(self) -> None:
        """Heartbeat, renew, give back what is over the fair share, take what is free."""
        now = self._clock.now()
        ledger = self._ledger
        await ledger.heartbeat(self.replica_id, now, host=socket.gethostname(), pid=os.getpid())
        renewed = {
            (lease.job, lease.unit): lease.token
            for lease in await ledger.renew_leases(self.replica_id, now, self.ttl)
        }
        for job, _unit in set(self._held) - set(renewed):
            self._metrics.lost.labels(job).inc()
        self._held = renewed
        live = await ledger.live_replicas(now, self.ttl)
        self._metrics.live.set(len(live))
        share = math.ceil(len(self._pairs) / max(1, len(live)))
        for pair in [p for p in reversed(self._pairs) if p in self._held][
            : max(0, len(self._held) - share)
        ]:
            await ledger.release_lease(*pair, self.replica_id, self._held.pop(pair))
        taken: list[tuple[str, str]] = []
        for job, unit in self._pairs:
            if len(self._held) >= share:
                break
            if (job, unit) in self._held:
                continue
            got = await ledger.acquire_lease(
                job, unit, self.replica_id, now, ttl=self.ttl, cap=share
            )
            if got is None:
                continue
            self._held[(job, unit)] = got.lease.token
            if got.taken:
                taken.append((job, unit))
                if got.previous is not None:
                    self._metrics.takeovers.labels(job).inc()
                    log.info("took over %s for %s from %s", job, unit, got.previous)
        self._show_held()
        if self._last_prune is None or now - self._last_prune > timedelta(hours=1):
            self._last_prune = now
            await ledger.prune_claims(now - CLAIMS_KEPT)
        for job, unit in taken:
            for callback in self.on_taken:
                await callback(job, unit)

    def _show_held(self) -> None:
        jobs = {job for job, _ in self._pairs}
        for job in jobs:
            self._metrics.held.labels(job).set(sum(1 for j, _ in self._held if j == job))

    async def should_run(self, job: str, unit: str, tick: str | None) -> bool:
        """Whether this replica runs ``job`` for ``unit`` now: it holds the lease and
        (``tick`` given: a scheduled run) won the tick's claim under its token."""
        token = self._held.get((job, unit))
        if token is None:
            self._metrics.claims.labels(job, "not_holder").inc()
            return False
        if tick is None:
            return True
        try:
            won = await self._ledger.claim_tick(
                job, unit, tick, self.replica_id, self._clock.now(), token=token
            )
        except LeaseLost:
            self._held.pop((job, unit), None)
            self._show_held()
            self._metrics.lost.labels(job).inc()
            self._metrics.claims.labels(job, "fenced").inc()
            return False
        self._metrics.claims.labels(job, "won" if won else "lost").inc()
        return won

    async def claim_once(self, job: str, tick: str) -> bool:
        """Whether this replica runs ``job`` (no lease: a report) at ``tick``."""
        won = await self._ledger.claim_tick(job, ALL, tick, self.replica_id, self._clock.now())
        self._metrics.claims.labels(job, "won" if won else "lost").inc()
        return won

    async def stop(self) -> None:
        """Leave: the leases are free for the other replicas at once."""
        self._held.clear()
        self._show_held()
        await self._ledger.stop_replica(self.replica_id, self._clock.now())


Coordinator = Solo | Shared


class HeldState:
    """What a leased job keeps between runs (``job_state``), for whoever holds its lease.

    The holder continues from the stored state when it has just taken the lease (its
    token is not the one it last loaded under) and stores its state after each run
    under its token; a holder whose lease was taken over cannot overwrite the new
    holder's state (``LeaseLost``, logged)."""

    def __init__(
        self, ledger: Ledger, coordinator: Shared, clock: Clock, job: str, unit: str = ALL
    ) -> None:
        self._ledger = ledger
        self._coordinator = coordinator
        self._clock = clock
        self._job = job
        self._unit = unit
        self._loaded: int | None = None

    async def resume(self) -> dict[str, Any] | None:
        """The stored state to continue from, when the lease is newly this replica's;
        None to go on with what this replica has."""
        token = self._coordinator.held.get((self._job, self._unit))
        if token is None or token == self._loaded:
            return None
        self._loaded = token
        return await self._ledger.load_job_state(self._job, self._unit)

    async def keep(self, state: Mapping[str, Any]) -> None:
        token = self._coordinator.held.get((self._job, self._unit))
        if token is None:
            return
        try:
            await self._ledger.save_job_state(
                self._job, self._unit, self._ledger.replica_id, token, state, self._clock.now()
            )
        except LeaseLost as lost:
            log.warning("%s state not kept: %s", self._job, lost)
