"""The work the scheduler runs. Each job is an object with one async ``run``; the
scheduler (bot/serve) decides when, and guarantees a job never overlaps itself."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.base import InventorySystem
from connectors.clock import Clock
from connectors.health import Health
from connectors.levels import Level
from ledger import SYSTEM_ACTOR, Incident, Ledger, Resync
from monitors.diffmemo import DiffMemo
from monitors.drift import DiffRules, Drift
from monitors.health import FAMILY, HealthWindow, evaluate_health
from monitors.hints import Evidence, hint_for
from monitors.mrkdwn import escape
from monitors.persistence import Persistence, Seen, debounce
from monitors.persistence import scope as covered_by
from monitors.pipeline import Action, Context, Pipeline, Scope, build_pipeline
from monitors.reconcile import DiffRun, cell_snapshot, run_diff, with_bundles
from monitors.resync import SHADOW, ResyncRequest, ResyncResult

#: whether (and how) Resync can fix a drift, from the levels of its read
#: (:class:`monitors.plans.ResyncPlanner`)
Planner = Callable[[Drift, Sequence[Level]], dict[str, Any] | None]

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
    """A full (or targeted) drift diff: read, record, diff, then the incident pipeline.

    :meth:`recheck` is the targeted diff that closes the loop after an action: it reads
    the SKU again from every system and evaluates it at once, telling its alerts how
    the action went. Runs never interleave; a recheck asked for from inside a run (the
    auto-resync policy, an after-diff hook, resyncs) runs inside it, at once."""

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
        planner: Planner | None = None,
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
        #: the task running a diff under the lock (a recheck it asks for runs inline)
        self._owner: asyncio.Task[Any] | None = None
        self._planner = planner
        self._systems = systems
        self._rules = rules
        #: the last full diff, so the next judges only what changed (monitors.diffmemo)
        self._memo = DiffMemo()
        self._ledger = ledger
        self._clock = clock
        self._channel = channel
        self.last: DiffResult | None = None

    @property
    def seen(self) -> dict[str, Seen]:
        """The debounce state (drift fingerprint -> its run of sightings), a copy."""
        return dict(self._seen)

    @seen.setter
    def seen(self, state: Mapping[str, Seen]) -> None:
        """Continue from ``state`` (kept by the replica that ran the diff before)."""
        self._seen = dict(state)

    async def run(
        self,
        skus: Sequence[str] | None = None,
        *,
        action: Action | None = None,
        after_hooks: bool = True,
    ) -> DiffResult:
        """One diff; runs never interleave (the debounce state is read and written).
        ``action``: what this diff re-checks (its alerts hear how it went);
        ``after_hooks`` False: the after-diff hooks (the policy) do not run."""
        if self._owner is not None and self._owner is asyncio.current_task():
            return await self._run(skus, action=action, after_hooks=after_hooks)
        async with self._lock:
            self._owner = asyncio.current_task()
            try:
                return await self._run(skus, action=action, after_hooks=after_hooks)
            finally:
                self._owner = None

    async def recheck(self, action: Action) -> DiffResult:
        """Read ``action``'s SKU again from every system (with its bundle relatives) and
        evaluate it at once; the policy does not act on it (it was just acted on)."""
        return await self.run([action.sku], action=action, after_hooks=False)

    async def _run(
        self,
        skus: Sequence[str] | None,
        *,
        action: Action | None = None,
        after_hooks: bool = True,
    ) -> DiffResult:
        started = self._clock.now()
        if skus is not None:
            skus = with_bundles(skus, self._rules)
        diff_run = await run_diff(
            self._systems, self._rules, self._ledger, skus=skus, memo=self._memo
        )
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
        cells = _by_cell(diff_run.levels)

        def here(sku: str, location: str) -> list[Level]:
            return [lv for s in with_bundles([sku], self._rules) for lv in cells[(s, location)]]

        planner = self._planner

        def plan(drift: Drift) -> dict[str, Any] | None:
            return planner(drift, here(drift.sku, drift.location)) if planner else None

        def snapshot_of(sku: str, location: str) -> dict[str, Any] | None:
            return cell_snapshot(here(sku, location), self._rules, sku, location)

        ctx = await self._pipeline.run(
            self._ledger,
            diff_run.drifts,
            scope=scope,
            now=started,
            channel=self._channel,
            confirmed=confirmed,
            hint=hint_for(evidence),
            plan=plan if planner is not None else None,
            snapshot_of=snapshot_of,
            action=action,
            failures=diff_run.failures,
        )
        result = DiffResult(diff_run, ctx)
        if after_hooks:
            self.last = result
        if after_hooks:
            for hook in self._after:
                try:
                    await hook(result)
                except Exception:  # one failing hook must not cost the diff its alerts
                    log.exception("after-diff hook %r failed", hook)
        return result


def _by_cell(levels: Sequence[Level]) -> defaultdict[tuple[str, str], list[Level]]:
    cells: defaultdict[tuple[str, str], list[Level]] = defaultdict(list)
    for level in levels:
        cells[(level.sku, level.location)].append(level)
    return cells


class Recheck:
    """Closes the loop after every resync: the hook :class:`~monitors.resync.ResyncService`
    runs after each one (a person's, the auto-resync policy's, one settled at start) re-
    reads the SKU from every system and evaluates it at once (:meth:`DriftDiffJob.recheck`),
    so within seconds its alert shows what is true now: resolved, with the final counts
    and how, or still drifting, with the new numbers and why."""

    def __init__(self, job: DriftDiffJob) -> None:
        self._job = job

    async def after_resync(self, request: ResyncRequest, result: ResyncResult) -> None:
        if result.status == SHADOW:
            return  # nothing was written: the policy shows what it would have written
        automatic = request.requested_by == SYSTEM_ACTOR
        message = escape(result.message, 1500)
        if automatic:
            text = f"Auto-resync by Driftwatch: {message}"
        else:
            text = f"{message} — requested by <@{escape(request.requested_by, 40)}>"
        await self._job.recheck(
            Action(
                what="auto-resync" if automatic else "resync",
                by=request.requested_by,
                text=text,
                sku=request.sku,
                location=request.location,
                status=result.status,
                incident_id=request.incident_id,
                # the policy says itself when its write does not go through
                reply=not (automatic and result.status != "applied"),
            )
        )

    async def after_settled(self, resync: Resync, result: ResyncResult) -> None:
        """After a resync left pending was settled at start (its person was told by the
        settler): its alert shows what is true now, resolved or still drifting, without
        a second account of the resync."""
        await self._job.recheck(
            Action(
                what="settle",
                by=resync.requested_by,
                text="",
                sku=resync.sku,
                location=resync.location,
                status=result.status,
                incident_id=resync.incident_id,
                reply=False,
            )
        )

    async def __call__(self, action: Action) -> DiffResult:
        """Re-check after an action the caller describes (an adjustment)."""
        return await self._job.recheck(action)

    async def refresh(self, skus: Sequence[str]) -> DiffResult:
        """Read ``skus`` again and evaluate them (their alerts are edited if the counts
        moved), before acting on what their alerts say."""
        return await self._job.run(list(skus), after_hooks=False)

    async def group(
        self, incident: Incident, skus: Sequence[str], by: str, text: str
    ) -> DiffResult:
        """Re-check a group's SKUs after acting on the group; its alert hears ``text``
        and how the group stands now, once."""
        action = Action(
            what="group-resync",
            by=by,
            text=text,
            sku="",
            location=incident.location,
            status="applied",
            incident_id=incident.id,
        )
        return await self._job.run(list(skus), action=action, after_hooks=False)


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

    @property
    def window(self) -> HealthWindow:
        """The rolling window of counter samples."""
        return self._window

    @window.setter
    def window(self, window: HealthWindow) -> None:
        """Continue from ``window`` (kept by the replica that ran the job before)."""
        self._window = window

    async def run(self, healths: Sequence[Health] | None = None) -> Context:
        """Evaluate ``healths`` (default: this process's connectors' own accounts; with
        replicas, every replica's counters combined)."""
        now = self._clock.now()
        candidates = evaluate_health(
            list(healths) if healths is not None else [s.health() for s in self._systems],
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
