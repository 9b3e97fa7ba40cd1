"""The work the scheduler runs. Each job is an object with one async ``run``; the
scheduler (bot/serve) decides when, and guarantees a job never overlaps itself."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from connectors.base import InventorySystem
from connectors.clock import Clock
from ledger import Ledger
from monitors.drift import DiffRules
from monitors.health import FAMILY, HealthWindow, evaluate_health
from monitors.hints import Evidence, hint_for
from monitors.persistence import Persistence, Seen, debounce
from monitors.persistence import scope as covered_by
from monitors.pipeline import Context, Pipeline, Scope, build_pipeline
from monitors.reconcile import DiffRun, run_diff, with_bundles

log = logging.getLogger("driftwatch.jobs")


@dataclass
class DiffResult:
    run: DiffRun
    incidents: Context


class EvidenceSource(Protocol):
    """Adds what the ledger and configuration know (webhooks, orders, syncs, movement)
    to the evidence the job assembled from the diff itself."""

    async def __call__(self, run: DiffRun, base: Evidence) -> Evidence: ...


class AfterDiff(Protocol):
    """Work that follows a diff and its incidents (the auto-resync policy)."""

    async def __call__(self, result: DiffResult) -> None: ...


class DriftDiffJob:
    """A full (or targeted) drift diff: read, record, diff, then the incident pipeline."""

    def __init__(
        self,
        systems: Sequence[InventorySystem],
        rules: DiffRules,
        ledger: Ledger,
        clock: Clock,
        *,
        channel: str,
        pipeline: Pipeline | None = None,
        persistence: Persistence | None = None,
        kinds: Mapping[str, str] | None = None,
        evidence: EvidenceSource | None = None,
        after: Sequence[AfterDiff] = (),
    ) -> None:
        self._evidence = evidence
        self._after = tuple(after)
        self._pipeline = pipeline or build_pipeline()
        self._kinds = dict(kinds or {})
        self._persistence = persistence
        #: debounce state: fingerprint -> when first seen and how often (in memory; a
        #: restart starts persistence counting over, which only delays a page)
        self._seen: dict[str, Seen] = {}
        self._lock = asyncio.Lock()
        self._systems = systems
        self._rules = rules
        self._ledger = ledger
        self._clock = clock
        self._channel = channel
        self.last: DiffResult | None = None

    async def run(self, skus: Sequence[str] | None = None) -> DiffResult:
        """One diff; runs never interleave (the debounce state is read and written)."""
        async with self._lock:
            return await self._run(skus)

    async def _run(self, skus: Sequence[str] | None) -> DiffResult:
        started = self._clock.now()
        if skus is not None:
            skus = with_bundles(skus, self._rules)
        diff_run = await run_diff(self._systems, self._rules, self._ledger, skus=skus)
        for system, error in diff_run.failures.items():
            log.warning("could not read %s: %s", system, error)
        healthy = frozenset(s.name for s in self._systems if s.name not in diff_run.failures)
        scope = Scope(systems=healthy, skus=frozenset(skus) if skus is not None else None)
        confirmed: set[str] | None = None
        if self._persistence is not None:
            truth_read = any(name in healthy for name in self._rules.source_of_truth)
            self._seen, steady = debounce(
                self._seen,
                diff_run.drifts,
                started,
                self._persistence,
                covered=covered_by(skus=skus, systems=healthy if truth_read else ()),
            )
            confirmed = {d.fingerprint for d in steady}
        evidence = Evidence(
            now=started,
            levels={(lv.system, lv.sku, lv.location): lv for lv in diff_run.levels},
            kinds=self._kinds,
            roles={name: r.role for name, r in self._rules.systems.items()},
            health={s.name: copy.deepcopy(s.health()) for s in self._systems},
        )
        if self._evidence is not None:
            evidence = await self._evidence(diff_run, evidence)
        ctx = await self._pipeline.run(
            self._ledger,
            diff_run.drifts,
            scope=scope,
            now=started,
            channel=self._channel,
            confirmed=confirmed,
            hint=hint_for(evidence),
        )
        self.last = DiffResult(diff_run, ctx)
        for hook in self._after:
            try:
                await hook(self.last)
            except Exception:  # one failing hook must not cost the diff its alerts
                log.exception("after-diff hook %r failed", hook)
        return self.last


class HealthJob:
    """Sync health and rate limits of every connector, through the incident pipeline."""

    def __init__(
        self,
        systems: Sequence[InventorySystem],
        ledger: Ledger,
        clock: Clock,
        *,
        channel: str,
        sla_seconds: Mapping[str, int],
        window: HealthWindow | None = None,
        pipeline: Pipeline | None = None,
    ) -> None:
        self._systems = systems
        self._ledger = ledger
        self._clock = clock
        self._channel = channel
        self._sla = dict(sla_seconds)
        self._window = window or HealthWindow()
        self._pipeline = pipeline or build_pipeline()
        self._started = clock.now()

    async def run(self) -> Context:
        now = self._clock.now()
        candidates = evaluate_health(
            [s.health() for s in self._systems],
            sla_seconds=self._sla,
            window=self._window,
            now=now,
            started_at=self._started,
        )
        return await self._pipeline.run(
            self._ledger,
            (),
            scope=Scope(systems=frozenset(s.name for s in self._systems)),
            now=now,
            channel=self._channel,
            given=candidates,
            families=(FAMILY,),
        )
