"""The work the scheduler runs. Each job is an object with one async ``run``; the
scheduler (bot/serve) decides when, and guarantees a job never overlaps itself."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.base import InventorySystem
from connectors.clock import Clock
from ledger import Ledger
from monitors.drift import DiffRules
from monitors.incidents import Raised, raise_incidents
from monitors.reconcile import DiffRun, run_diff

log = logging.getLogger("driftwatch.jobs")


@dataclass
class DiffResult:
    run: DiffRun
    raised: list[Raised]


class DriftDiffJob:
    """A full (or targeted) drift diff that records levels and raises incidents."""

    def __init__(
        self,
        systems: Sequence[InventorySystem],
        rules: DiffRules,
        ledger: Ledger,
        clock: Clock,
        *,
        channel: str,
    ) -> None:
        self._systems = systems
        self._rules = rules
        self._ledger = ledger
        self._clock = clock
        self._channel = channel
        self.last: DiffResult | None = None

    async def run(self, skus: Sequence[str] | None = None) -> DiffResult:
        started = self._clock.now()
        diff_run = await run_diff(self._systems, self._rules, self._ledger, skus=skus)
        for system, error in diff_run.failures.items():
            log.warning("could not read %s: %s", system, error)
        raised = await raise_incidents(
            diff_run.drifts, self._ledger, channel=self._channel, at=started
        )
        self.last = DiffResult(diff_run, raised)
        return self.last
