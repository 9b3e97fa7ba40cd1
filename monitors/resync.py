"""Every resync goes through here: read fresh, compute the target from the source of
truth, write idempotently with compare-and-set, read back what the system now holds,
record before and after, report.

One key per decision. The idempotency key names the decision: the level (system, SKU,
location, state), the value read, the target, and the *occurrence* — the newest
resync of that level that had settled (applied, stale, failed or skipped) when the
decision was made (:meth:`ledger.Ledger.resync_occurrence`, looked up before the fresh
read). So:

* two people clicking Resync on the same alert at the same moment, a double click,
  Slack's retry of a click, the policy and a person deciding at once, a transport
  retry, and a new process retrying a resync a dead one left ``pending``: all make the
  same decision with the same key, and the ledger keeps one resync while the system
  applies one write (and replays its result to the others);
* the same drift coming back later (40 → 28 again, hours after the first 40 → 28 was
  applied) is a new occurrence: the first resync has settled, so the key is new and the
  write is made. Shopify's rule is the same: the same key replays the original result,
  and a new operation needs a new key
  (https://shopify.dev/docs/api/usage/implementing-idempotency, principles 1 and 2).

The answer says what the system holds, not what was meant: after an applied write the
level is read back (Shopify answers ``quantityAfterChange: null``), and the value read is
recorded as ``after``. If it is not the target and the key was already in use (a retry
of a resync left pending, whose "applied" may be an old write's result replayed), the
service decides once more, with a new key. Otherwise nothing more is written: the answer
is ``applied`` if the level now agrees with the source of truth (an order landed right
after the write), else ``unconfirmed``, saying what the system holds.

If the value changes between the read and the write, the write comes back stale,
nothing is overwritten, and the service reads again and decides again (bounded too).

After every resync the :attr:`ResyncService.after` hooks run with the outcome: the bot
wires :class:`monitors.jobs.Recheck`, which reads the SKU again from every system and
evaluates it at once, so the alert shows what is now true (the loop closes). The
decision itself is :func:`decide`, so an alert can say beforehand whether Resync can
work (:mod:`monitors.plans`); a target beyond Shopify's bounds is refused there, before
anything is written.

:meth:`ResyncService.settle` finishes a resync a dead process left ``pending``: read the
level back, replay the same write with the same key where the decision still holds
(the system either replays the original result or applies it now, under
compare-and-set), and record the outcome.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from connectors.base import InventorySystem
from connectors.clock import Clock
from connectors.errors import ConnectorError
from connectors.levels import Level, LevelWrite, WriteOutcome
from ledger import Ledger, Resync
from monitors.drift import DUPLICATE_SKU, DiffRules, diff
from monitors.incidents import duplicate_reason
from monitors.quantities import out_of_bounds
from monitors.reconcile import with_bundles

log = logging.getLogger("driftwatch.resync")

MAX_DECISIONS = 3
#: Drift classes a resync can fix by writing a count (not stale, untracked or a policy).
WRITABLE_KINDS = frozenset({"oversell_risk", "undersell", "count_mismatch", "negative", "missing"})
#: the reason a resync's write carries unless the request names another
CORRECTION = "correction"

#: statuses of :class:`ResyncResult`
APPLIED = "applied"
IN_SYNC = "in_sync"
SHADOW = "shadow"
STALE = "stale"
FAILED = "failed"
#: written (or replayed) as applied, but the level read back is not the target
UNCONFIRMED = "unconfirmed"
#: :meth:`ResyncService.settle` could not reach the system: still pending
PENDING = "pending"
#: :meth:`ResyncService.settle` found it settled by someone else meanwhile
SETTLED_ELSEWHERE = "settled_elsewhere"


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
    #: the reason the write carries (Shopify's list; adjustments pass their own)
    reason: str = CORRECTION


@dataclass(frozen=True)
class ResyncResult:
    """What happened, in words a person can read, plus the ledger row when one exists.

    ``after`` is what the system held when it was read back after the write (or what it
    reported, if it could not be read back)."""

    status: str  # applied | in_sync | shadow | stale | failed | unconfirmed | pending
    message: str
    resync: Resync | None = None
    before: int | None = None
    target: int | None = None
    after: int | None = None
    #: the write went out under a key already in use (a retry of a pending resync), so
    #: the system may have replayed an earlier result
    reused_key: bool = False


def resync_key(
    system: str,
    sku: str,
    location: str,
    state: str,
    before: int,
    target: int,
    occurrence: int,
) -> str:
    """The idempotency key of one decision (see the module docstring)."""
    raw = f"{system}|{sku}|{location}|{state}|{before}|{target}|{occurrence}"
    return "dw-" + hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Decision:
    """What the fresh read says to write: ``target`` over ``before`` (both set), or why
    nothing is written (``result``)."""

    before: int | None = None
    target: int | None = None
    result: ResyncResult | None = None


def decide(
    rules: DiffRules,
    levels: Sequence[Level],
    system: str,
    sku: str,
    location: str,
    state: str,
) -> _Decision:
    """What ``levels`` (a fresh read) say a resync of ``system``'s ``state`` for ``sku``
    at ``location`` should write, or why nothing can be: the same decision the service
    makes before its write, so an alert can say beforehand whether Resync can work."""
    here = [lv for lv in levels if lv.location == location]
    drifts = [d for d in diff(here, rules) if d.sku == sku]
    drift = next(
        (
            d
            for d in drifts
            if d.system == system
            and d.kind in WRITABLE_KINDS
            and not (d.kind == "missing" and d.missing_side == "truth")
        ),
        None,
    )
    # Several items with this SKU here: in the system written (which one to write?),
    # or, when no drift could be judged, in a source of truth (what is the truth?).
    duplicates = [d for d in drifts if d.kind == DUPLICATE_SKU]
    ambiguous = next((d for d in duplicates if d.system == system), None)
    if ambiguous is None and drift is None:
        ambiguous = next((d for d in duplicates if d.system in rules.source_of_truth), None)
    if ambiguous is not None:
        items = (ident for ident, _ in ambiguous.items)
        reason = duplicate_reason(ambiguous.system, sku, location, items)
        return _Decision(result=ResyncResult(FAILED, reason))
    current = next((lv for lv in here if (lv.system, lv.sku) == (system, sku)), None)
    if current is None:
        return _Decision(
            result=ResyncResult(FAILED, f"{system} has no level for {sku} at {location}")
        )
    before = current.quantities.get(state)
    if before is None:
        return _Decision(result=ResyncResult(FAILED, f"{system} does not report {state}"))
    if drift is None or drift.expected is None or drift.actual is None:
        return _Decision(
            before=before,
            result=ResyncResult(
                IN_SYNC,
                f"{system} already agrees with the source of truth for {sku} at {location}",
                before=before,
            ),
        )
    target = before + (drift.expected - drift.actual)
    if target < 0:
        return _Decision(
            before=before,
            result=ResyncResult(
                FAILED,
                f"the source of truth implies {target} {state}; refusing a negative count",
            ),
        )
    too_large = out_of_bounds(target, f"The {state} count to write ({target:,})")
    if too_large is not None:
        return _Decision(before=before, result=ResyncResult(FAILED, too_large.rstrip(".")))
    return _Decision(before=before, target=target)


#: called after every resync with what was asked and what came of it: the service that
#: closes the loop (the alert re-evaluated from a fresh read; :mod:`monitors.settle` does
#: the same after settling a resync left pending)
AfterResync = Callable[[ResyncRequest, ResyncResult], Awaitable[None]]


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
        #: run after every resync (see :data:`AfterResync`); a failing hook is logged and
        #: costs the resync nothing
        self.after: list[AfterResync] = []

    async def resync(self, request: ResyncRequest, *, after: bool = True) -> ResyncResult:
        """Resync ``request``'s level (see the module docstring), then run the
        :attr:`after` hooks with the outcome (``after`` False: the caller re-checks)."""
        result = await self._resync(request)
        if after:
            await self._after(request, result)
        return result

    async def _after(self, request: ResyncRequest, result: ResyncResult) -> None:
        for hook in self.after:
            try:
                await hook(request, result)
            except Exception:
                log.exception("after-resync hook %r failed", hook)

    async def _resync(self, request: ResyncRequest) -> ResyncResult:
        target_system = self._systems.get(request.system)
        if target_system is None:
            return ResyncResult(FAILED, f"{request.system} is not a configured system")
        if not target_system.writable:
            return ResyncResult(FAILED, f"{request.system} is read-only in the configuration")
        last: ResyncResult | None = None
        decided_again = False
        for _ in range(MAX_DECISIONS):
            last = await self._decide_and_write(request, target_system)
            if last.status == STALE:
                continue
            if last.status != UNCONFIRMED:
                return last
            if last.reused_key and not decided_again:
                # The key was already in use (a resync left pending): the "applied" may
                # be an old write's result replayed. That resync is now settled, so a new
                # decision has a new key and writes for real.
                decided_again = True
                continue
            # A write of ours that the system does not show: check, never fight over it.
            return await self._after_unconfirmed(request, last)
        assert last is not None
        return last

    async def _after_unconfirmed(self, request: ResyncRequest, wrote: ResyncResult) -> ResyncResult:
        """``wrote`` was applied but the level read back is not its target (it moved
        since): ``applied`` if the level agrees with the source of truth now, else the
        unconfirmed answer as it is. Nothing more is written."""
        try:
            levels = await self._fresh(request.sku)
        except ConnectorError:
            return wrote
        decision = self._decide(
            levels, request.system, request.sku, request.location, request.state
        )
        if decision.result is None or decision.result.status != IN_SYNC:
            return wrote
        what = f"{request.system} {request.state} for {request.sku} at {request.location}"
        return replace(
            wrote,
            status=APPLIED,
            message=f"Resynced {what}: {wrote.before} → {wrote.target}, but {request.system} "
            f"now holds {decision.before}, which agrees with the source of truth",
            after=decision.before,
        )

    async def _fresh(self, sku: str) -> list[Level]:
        """Every system's levels of ``sku`` and of what judging it needs: a bundle is
        judged by its components (read alone, its truth looked like 0)."""
        skus = with_bundles([sku], self._rules)
        levels: list[Level] = []
        for system in self._systems.values():
            levels.extend(await system.read_levels(skus))
        return levels

    def _decide(
        self, levels: Sequence[Level], system: str, sku: str, location: str, state: str
    ) -> _Decision:
        return decide(self._rules, levels, system, sku, location, state)

    async def _decide_and_write(
        self, request: ResyncRequest, system: InventorySystem
    ) -> ResyncResult:
        now = self._clock.now()
        # Looked up before the read: a resync that settles after it is one this decision
        # may be a retry of (same key), never one it overwrites blindly.
        occurrence = await self._ledger.resync_occurrence(
            request.system, request.sku, request.location, request.state
        )
        try:
            levels = await self._fresh(request.sku)
        except ConnectorError as exc:
            return ResyncResult(FAILED, f"could not read fresh counts: {exc}")
        decision = self._decide(
            levels, request.system, request.sku, request.location, request.state
        )
        if decision.result is not None:
            return decision.result
        assert decision.before is not None
        assert decision.target is not None
        before, target = decision.before, decision.target
        key = resync_key(
            request.system,
            request.sku,
            request.location,
            request.state,
            before,
            target,
            occurrence,
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
            reason=request.reason,
        )
        if not new and resync.status == "applied":
            # The same decision, already written (a double click): say what it holds now.
            found = await self._confirmed(request.sku, system, resync, None)
            return replace(found, reused_key=True)
        if not new and resync.status == "skipped" and request.shadow:
            return self._shadow_result(request, resync, before, target)
        if not new and resync.status != "pending":
            # The same decision settled (stale or failed) since the occurrence was read:
            # decide again, which names that resync and so makes a new key.
            return ResyncResult(STALE, f"{request.system} changed while resyncing", resync=resync)
        if request.shadow:
            resync = await self._ledger.update_resync(
                resync.id, "skipped", now, error="shadow mode: nothing written"
            )
            return self._shadow_result(request, resync, before, target)
        try:
            [outcome] = await system.write_levels([_write_of(resync)])
        except ConnectorError as exc:
            resync = await self._ledger.update_resync(resync.id, "failed", now, error=str(exc))
            return ResyncResult(FAILED, f"the write failed: {exc}", resync=resync, before=before)
        done = self._clock.now()
        if outcome.status == "applied":
            confirmed = await self._confirmed(request.sku, system, resync, outcome)
            return replace(confirmed, reused_key=not new)
        if outcome.status == "stale":
            resync = await self._ledger.update_resync(
                resync.id, "stale", done, error="the count changed since it was read"
            )
            return ResyncResult(
                STALE,
                f"{request.system} changed while resyncing; not overwritten",
                resync=resync,
                before=before,
            )
        resync = await self._ledger.update_resync(resync.id, "failed", done, error=outcome.error)
        return ResyncResult(
            FAILED, f"{request.system} refused the write: {outcome.error}", resync=resync
        )

    @staticmethod
    def _shadow_result(
        request: ResyncRequest, resync: Resync, before: int, target: int
    ) -> ResyncResult:
        return ResyncResult(
            SHADOW,
            f"Shadow mode: would set {request.system} {request.state} for {request.sku} at "
            f"{request.location} from {before} to {target}",
            resync=resync,
            before=before,
            target=target,
        )

    async def _read_back(self, system: InventorySystem, resync: Resync) -> int | None:
        """What ``system`` holds now for the resync's level (None: no such level)."""
        for level in await system.read_levels([resync.sku]):
            if level.location == resync.location:
                return level.quantities.get(resync.state)
        return None

    async def _confirmed(
        self,
        sku: str,
        system: InventorySystem,
        resync: Resync,
        outcome: WriteOutcome | None,
    ) -> ResyncResult:
        """An applied write (``outcome``) or an applied resync found by its key (None):
        read the level back, record it (a new write only), and answer with what the
        system holds."""
        before, target = resync.before, resync.target
        unread = ""
        try:
            holds = await self._read_back(system, resync)
        except ConnectorError as exc:
            holds = None
            unread = f" (could not read it back: {exc})"
        reported = outcome.after if outcome is not None else resync.after
        after = holds if holds is not None else reported
        if outcome is not None:
            resync = await self._ledger.update_resync(
                resync.id, "applied", self._clock.now(), after=after
            )
            await self._ledger.append_audit(
                resync.requested_by,
                "resync.applied",
                f"resync:{resync.id}",
                {
                    "system": resync.system,
                    "sku": sku,
                    "location": resync.location,
                    "state": resync.state,
                    "before": before,
                    "after": after,
                    "read_back": holds,
                    "incident_id": resync.incident_id,
                },
                self._clock.now(),
            )
        what = f"{resync.system} {resync.state} for {sku} at {resync.location}"
        if holds is None or holds == target:
            return ResyncResult(
                APPLIED,
                f"Resynced {what}: {before} → {after if after is not None else target}{unread}",
                resync=resync,
                before=before,
                target=target,
                after=after,
            )
        return ResyncResult(
            UNCONFIRMED,
            f"Wrote {target} to {what} over {before}, but {resync.system} now holds {holds}",
            resync=resync,
            before=before,
            target=target,
            after=holds,
        )

    # -- settling what a dead process left pending -------------------------------------

    async def settle(self, resync: Resync) -> ResyncResult:
        """Finish ``resync``, found ``pending`` (its process died between deciding and
        recording the outcome), and record what became of it.

        * The system holds the target: ``applied``.
        * Otherwise, if the write may still be owed — the level is still the value the
          decision read and the source of truth still implies the same target, or the
          level moved to something else — the same write is sent again with the same
          key. The system replays the original result if it applied it (Shopify:
          "the result of the original operation"), or applies it now under
          compare-and-set. The level is then read back.
        * The level is still the value read but the truth moved: ``stale``, not
          written (an old decision is not carried out blindly).
        * The system cannot be reached: left ``pending`` (status ``pending``) for a
          later try.
        """
        system = self._systems.get(resync.system)
        what = f"{resync.system} {resync.state} for {resync.sku} at {resync.location}"
        if system is None or not system.writable or resync.before is None:
            why = (
                f"{resync.system} is no longer a writable system"
                if resync.before is not None
                else "the value it replaced was not recorded"
            )
            return await self._settled(resync, FAILED, f"not finished: {why}", error=why)
        try:
            levels = await self._fresh(resync.sku)
        except ConnectorError as exc:
            if exc.retryable:  # down or throttled: try again later
                return ResyncResult(PENDING, f"could not read {what}: {exc}", resync=resync)
            why = f"could not read it: {exc}"
            return await self._settled(resync, FAILED, f"not finished: {why}", error=why)
        decision = self._decide(levels, resync.system, resync.sku, resync.location, resync.state)
        holds = decision.before
        if holds is None:
            why = decision.result.message if decision.result else f"{what} was not read"
            return await self._settled(resync, FAILED, f"not finished: {why}", error=why)
        if holds == resync.target:
            return await self._settled(
                resync, APPLIED, f"{what}: {resync.before} → {holds}", after=holds
            )
        if holds == resync.before and (decision.before, decision.target) != (
            resync.before,
            resync.target,
        ):
            if decision.result is None:
                implied = f"the source of truth now implies {decision.target}"
            elif decision.result.status == IN_SYNC:
                implied = "it now agrees with the source of truth"
            else:
                implied = decision.result.message
            why = f"{resync.system} still holds {holds} and {implied}; not written"
            return await self._settled(resync, STALE, f"not finished: {why}", error=why)
        try:
            [outcome] = await system.write_levels([_write_of(resync)])
        except ConnectorError as exc:
            if exc.retryable:
                return ResyncResult(PENDING, f"could not write {what}: {exc}", resync=resync)
            return await self._settled(resync, FAILED, f"not finished: {exc}", error=str(exc))
        if outcome.status == "applied":
            try:
                after = await self._read_back(system, resync)
            except ConnectorError:
                after = outcome.after
            return await self._settled(
                resync, APPLIED, f"{what}: {resync.before} → {after}", after=after
            )
        if outcome.status == "stale":
            why = f"{resync.system} changed since it was read (it holds {holds}); not overwritten"
            return await self._settled(resync, STALE, f"not finished: {why}", error=why)
        why = f"{resync.system} refused the write: {outcome.error}"
        return await self._settled(resync, FAILED, f"not finished: {why}", error=why)

    async def _settled(
        self,
        resync: Resync,
        status: str,
        message: str,
        *,
        after: int | None = None,
        error: str | None = None,
    ) -> ResyncResult:
        row = await self._ledger.settle_resync(
            resync.id, status, self._clock.now(), after=after, error=error
        )
        if row is None:  # settled by someone else meanwhile: theirs stands
            row = await self._ledger.get_resync(resync.id)
            return ResyncResult(
                SETTLED_ELSEWHERE, f"already settled as {row.status}", resync=row, after=row.after
            )
        return ResyncResult(
            status, message, resync=row, before=row.before, target=row.target, after=row.after
        )


def _write_of(resync: Resync) -> LevelWrite:
    """The one write a resync makes: the same input whenever it is sent, so a replay
    under the same key is the same operation."""
    assert resync.before is not None
    return LevelWrite(
        sku=resync.sku,
        location=resync.location,
        state=resync.state,
        quantity=resync.target,
        expected=resync.before,
        key=resync.idempotency_key,
        reason=resync.reason or CORRECTION,
        reference=f"gid://driftwatch/Resync/{resync.id}",
    )
