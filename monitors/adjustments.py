"""Manual adjustments: an operator says "this SKU at this location changed by n" or "the
count is now n", with a reason code; Driftwatch records it, writes it where the truth
lives, and brings the other writable systems in line.

One adjustment, in order:

1. **Find the truth.** Read the SKU fresh from the source-of-truth systems; the first
   (in ``source_of_truth`` order) that reports a level at the location is the truth.
   It must be writable: Driftwatch never adjusts a copy and leaves the truth behind.
2. **Record.** ``ledger.record_adjustment`` under the caller's idempotency key (the bot
   derives it from the Slack view submission, so a double submit records once); a key
   already recorded returns ``duplicate`` and writes nothing.
3. **Write the truth** with compare-and-set against the value just read; if the count
   moved in between, read again and decide again (a bounded number of times). A
   ``delta`` is applied to the value read, so a concurrent change is never lost.
4. **Propagate** to every other writable system that reports the level, through
   :class:`~monitors.resync.ResyncService` (so a storefront ends at the truth net of its
   safety stock), with Shopify's reason mapped from the reason code.
5. **Settle** the adjustment ``applied`` (or ``failed``) with before, after and the
   reason it failed, audited as ``adjustment.applied`` / ``adjustment.failed`` in the
   same transaction, and return the outcome in plain words. The reports count only
   adjustments that applied.

Quantities are checked before anything is recorded or written: a change and a new
count are within Shopify's bounds (:mod:`monitors.quantities`), and so is the count the
change leads to, so nothing out of range reaches a system or the ledger.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from connectors.base import InventorySystem
from connectors.clock import Clock
from connectors.errors import ConnectorError
from connectors.health import Health
from connectors.levels import Level, LevelWrite, WriteOutcome
from ledger import Adjustment, Ledger
from monitors.drift import DiffRules
from monitors.quantities import out_of_bounds
from monitors.resync import ResyncRequest, ResyncResult, ResyncService

MAX_ATTEMPTS = 3

#: reason code -> (label, Shopify's inventory reason)
REASON_CODES: dict[str, tuple[str, str]] = {
    "cycle_count": ("Cycle count", "cycle_count_available"),
    "damaged": ("Damaged", "damaged"),
    "return_restock": ("Return restock", "restock"),
    "shrinkage": ("Shrinkage", "shrinkage"),
    "correction": ("Correction", "correction"),
    "received": ("Received", "received"),
    "promotion": ("Promotion", "promotion"),
    "other": ("Other", "other"),
}


def adjustment_key(source: str) -> str:
    """A stable idempotency key from where the adjustment came from (a view id)."""
    return "adj-" + hashlib.sha256(source.encode()).hexdigest()[:32]


def shopify_reason(reason_code: str) -> str:
    """Shopify's inventory reason for a reason code (``other`` for an unknown one)."""
    return REASON_CODES.get(reason_code, ("", "other"))[1]


@dataclass(frozen=True)
class AdjustmentRequest:
    key: str
    sku: str
    location: str
    operator: str
    reason_code: str
    delta: int | None = None
    new_count: int | None = None
    note: str = ""


@dataclass(frozen=True)
class AdjustmentResult:
    """What happened, in words a person can read."""

    status: str  # applied | duplicate | failed
    message: str
    adjustment: Adjustment | None = None
    system: str | None = None
    before: int | None = None
    after: int | None = None
    propagated: tuple[ResyncResult, ...] = ()


class _Reasoned:
    """A system whose writes carry a given reason (ResyncService writes ``correction``)."""

    def __init__(self, inner: InventorySystem, reason: str) -> None:
        self._inner = inner
        self._reason = reason
        self.name = inner.name

    @property
    def writable(self) -> bool:
        return self._inner.writable

    async def read_levels(self, skus: Sequence[str] | None = None) -> list[Level]:
        return await self._inner.read_levels(skus)

    async def write_levels(self, writes: Sequence[LevelWrite]) -> list[WriteOutcome]:
        return await self._inner.write_levels([replace(w, reason=self._reason) for w in writes])

    def health(self) -> Health:
        return self._inner.health()


class AdjustmentService:
    """Records a manual adjustment, writes it to the source of truth, propagates it."""

    def __init__(
        self,
        systems: Sequence[InventorySystem],
        rules: DiffRules,
        ledger: Ledger,
        clock: Clock,
        write_states: Mapping[str, str],
    ) -> None:
        self._systems = {s.name: s for s in systems}
        self._rules = rules
        self._ledger = ledger
        self._clock = clock
        self._write_states = dict(write_states)

    def _state(self, system: str) -> str:
        return self._write_states.get(system, "available")

    async def adjust(self, request: AdjustmentRequest) -> AdjustmentResult:
        if (request.delta is None) == (request.new_count is None):
            return AdjustmentResult("failed", "Give either a change or a new count, not both.")
        if request.reason_code not in REASON_CODES:
            return AdjustmentResult("failed", f"`{request.reason_code}` is not a reason code.")
        for value, what in ((request.delta, "The change"), (request.new_count, "The new count")):
            problem = None if value is None else out_of_bounds(value, what)
            if problem is not None:
                return AdjustmentResult("failed", f"{problem} Nothing was recorded or written.")
        if request.new_count is not None and request.new_count < 0:
            return AdjustmentResult(
                "failed", "The new count cannot be negative. Nothing was recorded or written."
            )
        done = await self._ledger.get_adjustment_by_key(request.key)
        if done is not None:
            return self._duplicate(done)
        try:
            truth, level = await self._truth(request.sku, request.location)
        except ConnectorError as exc:
            return AdjustmentResult("failed", f"Could not read the source of truth: {exc}")
        if truth is None or level is None:
            return AdjustmentResult(
                "failed",
                f"No source-of-truth system reports {request.sku} at {request.location}; "
                "nothing was recorded.",
            )
        if not truth.writable:
            return AdjustmentResult(
                "failed",
                f"{truth.name} holds the truth for {request.sku} at {request.location} but is "
                f"read-only in the configuration; adjust it in {truth.name}. Nothing was recorded.",
            )
        adjustment, new = await self._ledger.record_adjustment(
            request.key,
            request.sku,
            request.location,
            truth.name,
            request.reason_code,
            request.operator,
            self._clock.now(),
            delta=request.delta,
            new_quantity=request.new_count,
            note=request.note,
        )
        if not new:
            return self._duplicate(adjustment)
        return await self._apply(request, adjustment, truth, level)

    def _duplicate(self, adjustment: Adjustment) -> AdjustmentResult:
        return AdjustmentResult(
            "duplicate",
            f"Adjustment #{adjustment.id} of {adjustment.sku} at {adjustment.location} was "
            "already recorded; nothing was written again.",
            adjustment=adjustment,
            system=adjustment.system,
        )

    async def _truth(self, sku: str, location: str) -> tuple[InventorySystem | None, Level | None]:
        """The first source-of-truth system with a fresh level here that has its state."""
        for name in self._rules.source_of_truth:
            system = self._systems.get(name)
            if system is None:
                continue
            level = await self._read(system, sku, location)
            if level is not None and self._state(name) in level.quantities:
                return system, level
        return None, None

    @staticmethod
    async def _read(system: InventorySystem, sku: str, location: str) -> Level | None:
        levels = await system.read_levels([sku])
        return next((lv for lv in levels if lv.location == location and lv.sku == sku), None)

    async def _apply(
        self,
        request: AdjustmentRequest,
        adjustment: Adjustment,
        truth: InventorySystem,
        level: Level | None,
    ) -> AdjustmentResult:
        state = self._state(truth.name)
        reason = shopify_reason(request.reason_code)
        for _ in range(MAX_ATTEMPTS):
            if level is None or state not in level.quantities:
                return await self._failed(
                    request, adjustment, truth.name, f"{truth.name} no longer reports the level"
                )
            before = level.quantities[state]
            target = (
                request.new_count
                if request.new_count is not None
                else before + (request.delta or 0)
            )
            if target < 0:
                return await self._failed(
                    request,
                    adjustment,
                    truth.name,
                    f"{truth.name} has {before} {state}; a change of {request.delta:+d} "
                    "would make it negative",
                    before=before,
                )
            too_large = out_of_bounds(target, f"The count it leads to ({target:,})")
            if too_large is not None:
                return await self._failed(
                    request, adjustment, truth.name, too_large.rstrip("."), before=before
                )
            write = LevelWrite(
                sku=request.sku,
                location=request.location,
                state=state,
                quantity=target,
                expected=before,
                key=f"{adjustment.idempotency_key}-{before}-{target}",
                reason=reason,
                reference=f"gid://driftwatch/Adjustment/{adjustment.id}",
            )
            try:
                [outcome] = await truth.write_levels([write])
            except ConnectorError as exc:
                return await self._failed(
                    request, adjustment, truth.name, f"the write failed: {exc}", before=before
                )
            if outcome.status == "applied":
                after = outcome.after if outcome.after is not None else target
                return await self._applied(request, adjustment, truth.name, state, before, after)
            if outcome.status != "stale":
                return await self._failed(
                    request,
                    adjustment,
                    truth.name,
                    f"{truth.name} refused the write: {outcome.error}",
                    before=before,
                )
            try:
                level = await self._read(truth, request.sku, request.location)
            except ConnectorError as exc:
                return await self._failed(
                    request, adjustment, truth.name, f"could not read again: {exc}"
                )
        return await self._failed(
            request, adjustment, truth.name, f"{truth.name} kept changing; not overwritten"
        )

    async def _applied(
        self,
        request: AdjustmentRequest,
        adjustment: Adjustment,
        system: str,
        state: str,
        before: int,
        after: int,
    ) -> AdjustmentResult:
        propagated = await self._propagate(request, system)
        label = REASON_CODES[request.reason_code][0]
        text = (
            f"Adjusted {request.sku} at {request.location} in {system} (source of truth): "
            f"{state} {before} → {after} ({after - before:+d}, {label})."
        )
        for result in propagated:
            text += f"\n{result.message}."
        adjustment = await self._ledger.settle_adjustment(
            adjustment.id,
            "applied",
            self._clock.now(),
            before=before,
            after=after,
            detail={
                "state": state,
                "reason_code": request.reason_code,
                "shopify_reason": shopify_reason(request.reason_code),
                "propagated": {r.resync.system: r.status for r in propagated if r.resync},
            },
        )
        return AdjustmentResult(
            "applied",
            text,
            adjustment=adjustment,
            system=system,
            before=before,
            after=after,
            propagated=tuple(propagated),
        )

    async def _propagate(self, request: AdjustmentRequest, truth: str) -> list[ResyncResult]:
        reason = shopify_reason(request.reason_code)
        others = [
            s.name
            for s in self._systems.values()
            if s.name != truth and s.writable and self._rules.covers(s.name, request.location)
        ]
        if not others:
            return []
        resync = ResyncService(
            [_Reasoned(s, reason) for s in self._systems.values()],
            self._rules,
            self._ledger,
            self._clock,
        )
        results: list[ResyncResult] = []
        for name in others:
            result = await resync.resync(
                ResyncRequest(
                    sku=request.sku,
                    location=request.location,
                    system=name,
                    requested_by=request.operator,
                    state=self._state(name),
                    reason=reason,
                )
            )
            if result.status == "failed" and "has no level" in result.message:
                continue  # the system does not stock the SKU here
            results.append(result)
        return results

    async def _failed(
        self,
        request: AdjustmentRequest,
        adjustment: Adjustment,
        system: str,
        why: str,
        *,
        before: int | None = None,
    ) -> AdjustmentResult:
        adjustment = await self._ledger.settle_adjustment(
            adjustment.id, "failed", self._clock.now(), before=before, error=why
        )
        return AdjustmentResult(
            "failed",
            f"Adjustment #{adjustment.id} of {request.sku} at {request.location} was recorded "
            f"but not applied: {why}.",
            adjustment=adjustment,
            system=system,
            before=before,
        )


__all__ = [
    "REASON_CODES",
    "AdjustmentRequest",
    "AdjustmentResult",
    "AdjustmentService",
    "adjustment_key",
    "shopify_reason",
]
