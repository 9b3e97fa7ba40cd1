"""Every resync goes through here: read fresh, compute the target from the source of
truth, write idempotently with compare-and-set, record before and after, report.

The idempotency key is derived from the decision (system, SKU, location, state, the
value read, the target), so two people clicking Resync on the same alert at the same
moment make the same decision with the same key: the ledger keeps one resync and the
system applies one write. If the value changes between the read and the write, the
write comes back stale, nothing is overwritten, and the service reads again and
decides again (a bounded number of times).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.base import InventorySystem
from connectors.clock import Clock
from connectors.errors import ConnectorError
from connectors.levels import Level, LevelWrite
from ledger import Ledger, Resync
from monitors.drift import DUPLICATE_SKU, DiffRules, diff
from monitors.incidents import duplicate_reason

MAX_DECISIONS = 3
#: Drift classes a resync can fix by writing a count (not stale, untracked or a policy).
WRITABLE_KINDS = frozenset({"oversell_risk", "undersell", "count_mismatch", "negative", "missing"})


@dataclass(frozen=True)
class ResyncRequest:
    sku: str
    location: str
    system: str
    requested_by: str
    incident_id: int | None = None
    #: the state written: "available" or "on_hand" for Shopify, as configured
    state: str = "available"
    shadow: bool = False


@dataclass(frozen=True)
class ResyncResult:
    """What happened, in words a person can read, plus the ledger row when one exists."""

    status: str  # applied | in_sync | shadow | stale | failed
    message: str
    resync: Resync | None = None
    before: int | None = None
    target: int | None = None
    after: int | None = None


def resync_key(system: str, sku: str, location: str, state: str, before: int, target: int) -> str:
    raw = f"{system}|{sku}|{location}|{state}|{before}|{target}"
    return "dw-" + hashlib.sha256(raw.encode()).hexdigest()[:32]


class ResyncService:
    """Resyncs one system's level at one SKU×location from the source of truth."""

    def __init__(
        self,
        systems: Sequence[InventorySystem],
        rules: DiffRules,
        ledger: Ledger,
        clock: Clock,
    ) -> None:
        self._systems = {s.name: s for s in systems}
        self._rules = rules
        self._ledger = ledger
        self._clock = clock

    async def resync(self, request: ResyncRequest) -> ResyncResult:
        target_system = self._systems.get(request.system)
        if target_system is None:
            return ResyncResult("failed", f"{request.system} is not a configured system")
        if not target_system.writable:
            return ResyncResult("failed", f"{request.system} is read-only in the configuration")
        last: ResyncResult | None = None
        for _ in range(MAX_DECISIONS):
            last = await self._decide_and_write(request, target_system)
            if last.status != "stale":
                return last
        assert last is not None
        return last

    async def _fresh(self, sku: str) -> list[Level]:
        levels: list[Level] = []
        for system in self._systems.values():
            levels.extend(await system.read_levels([sku]))
        return levels

    async def _decide_and_write(
        self, request: ResyncRequest, system: InventorySystem
    ) -> ResyncResult:
        now = self._clock.now()
        try:
            levels = await self._fresh(request.sku)
        except ConnectorError as exc:
            return ResyncResult("failed", f"could not read fresh counts: {exc}")
        here = [lv for lv in levels if lv.location == request.location]
        drifts = diff(here, self._rules)
        drift = next(
            (
                d
                for d in drifts
                if d.system == request.system
                and d.kind in WRITABLE_KINDS
                and not (d.kind == "missing" and d.missing_side == "truth")
            ),
            None,
        )
        # Several items with this SKU here: in the system written (which one to write?),
        # or, when no drift could be judged, in a source of truth (what is the truth?).
        duplicates = [d for d in drifts if d.kind == DUPLICATE_SKU]
        ambiguous = next((d for d in duplicates if d.system == request.system), None)
        if ambiguous is None and drift is None:
            truths = self._rules.source_of_truth
            ambiguous = next((d for d in duplicates if d.system in truths), None)
        if ambiguous is not None:
            items = (ident for ident, _ in ambiguous.items)
            reason = duplicate_reason(ambiguous.system, request.sku, request.location, items)
            return ResyncResult("failed", reason)
        current = next((lv for lv in here if lv.system == request.system), None)
        if current is None:
            return ResyncResult(
                "failed", f"{request.system} has no level for {request.sku} at {request.location}"
            )
        before = current.quantities.get(request.state)
        if before is None:
            return ResyncResult("failed", f"{request.system} does not report {request.state}")
        if drift is None or drift.expected is None or drift.actual is None:
            return ResyncResult(
                "in_sync",
                f"{request.system} already agrees with the source of truth for "
                f"{request.sku} at {request.location}",
                before=before,
            )
        target = before + (drift.expected - drift.actual)
        if target < 0:
            return ResyncResult(
                "failed",
                f"the source of truth implies {target} {request.state}; refusing a negative count",
            )
        key = resync_key(
            request.system, request.sku, request.location, request.state, before, target
        )
        resync, new = await self._ledger.create_resync(
            key,
            request.system,
            request.sku,
            request.location,
            request.state,
            target,
            request.requested_by,
            now,
            incident_id=request.incident_id,
            before=before,
        )
        if not new and resync.status == "applied":
            return ResyncResult(
                "applied",
                self._applied_text(request, before, target, resync.after),
                resync=resync,
                before=before,
                target=target,
                after=resync.after,
            )
        if request.shadow:
            resync = await self._ledger.update_resync(
                resync.id, "skipped", now, error="shadow mode: nothing written"
            )
            return ResyncResult(
                "shadow",
                f"Shadow mode: would set {request.system} {request.state} for {request.sku} at "
                f"{request.location} from {before} to {target}",
                resync=resync,
                before=before,
                target=target,
            )
        write = LevelWrite(
            sku=request.sku,
            location=request.location,
            state=request.state,
            quantity=target,
            expected=before,
            key=key,
            reason="correction",
            reference=f"gid://driftwatch/Resync/{resync.id}",
        )
        try:
            [outcome] = await system.write_levels([write])
        except ConnectorError as exc:
            resync = await self._ledger.update_resync(resync.id, "failed", now, error=str(exc))
            return ResyncResult("failed", f"the write failed: {exc}", resync=resync, before=before)
        done = self._clock.now()
        if outcome.status == "applied":
            resync = await self._ledger.update_resync(
                resync.id, "applied", done, after=outcome.after
            )
            await self._ledger.append_audit(
                request.requested_by,
                "resync.applied",
                f"resync:{resync.id}",
                {
                    "system": request.system,
                    "sku": request.sku,
                    "location": request.location,
                    "state": request.state,
                    "before": before,
                    "after": outcome.after,
                    "incident_id": request.incident_id,
                },
                done,
            )
            return ResyncResult(
                "applied",
                self._applied_text(request, before, target, outcome.after),
                resync=resync,
                before=before,
                target=target,
                after=outcome.after,
            )
        if outcome.status == "stale":
            resync = await self._ledger.update_resync(
                resync.id, "stale", done, error="the count changed since it was read"
            )
            return ResyncResult(
                "stale",
                f"{request.system} changed while resyncing; not overwritten",
                resync=resync,
                before=before,
            )
        resync = await self._ledger.update_resync(resync.id, "failed", done, error=outcome.error)
        return ResyncResult(
            "failed", f"{request.system} refused the write: {outcome.error}", resync=resync
        )

    @staticmethod
    def _applied_text(request: ResyncRequest, before: int, target: int, after: int | None) -> str:
        return (
            f"Resynced {request.system} {request.state} for {request.sku} at {request.location}: "
            f"{before} → {after if after is not None else target}"
        )
