"""Whether Resync can fix a drift, decided from the same read the drift was found in, so
an alert offers Resync only when the write can be made and otherwise says why and what
to do instead.

A plan is what :func:`monitors.resync.decide` would decide before its write (the state
written, the value it replaces, the target) plus whether the auto-resync policy deems
the write safe (:func:`monitors.policy.decide` with the policy on: a count drift, small,
lowering, no protected tag, a writable system). It is stored on the incident
(``details["resync"]``) with the drift's facts:

* ``{"can": True, "system", "state", "before", "target", "safe", "risks"}``;
* ``{"can": False, "why": ..., "next": ...}``: why a resync cannot work (a negative
  target because more units are committed to orders than the source of truth holds, a
  read-only system, a drift no count fixes, no level to write) and the next step.

The resync itself decides again from a fresh read when it runs; the plan only keeps the
alert from promising what the write would refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.levels import Level
from monitors.config import Policy
from monitors.drift import MISSING, MISSING_IN_TRUTH, DiffRules, Drift
from monitors.policy import RESYNC, decide
from monitors.resync import WRITABLE_KINDS
from monitors.resync import decide as decide_resync

#: the next step for drift classes no written count fixes
_NOT_A_COUNT = {
    "stale": (
        "its count is stale, and writing over a count that stopped updating fixes nothing",
        "find out why {system} stopped reporting it (`/synchealth`)",
    ),
    "untracked": (
        "{system} does not track inventory for it, so a count written there is ignored",
        "turn inventory tracking on for {sku} in {system}",
    ),
    "oversell_policy": (
        "{system} keeps selling it when out of stock; no count changes that",
        "set {sku} to stop selling when out of stock in {system}, or receive stock",
    ),
}


@dataclass(frozen=True)
class ResyncPlanner:
    """Plans resyncs for one configuration: the rules, the state each writable system is
    written in, the auto-resync policy and the SKU tags it reads."""

    rules: DiffRules
    write_states: Mapping[str, str]
    policy: Policy | None = None
    tags: Callable[[str], Collection[str]] = lambda sku: ()

    def __call__(self, drift: Drift, levels: Sequence[Level]) -> dict[str, Any]:
        """The plan for ``drift``, from ``levels`` (the read it was found in: at least its
        SKU and bundle relatives at its location)."""
        words = {"system": drift.system, "sku": drift.sku, "location": drift.location}
        if drift.kind not in WRITABLE_KINDS:
            why, step = _NOT_A_COUNT.get(
                drift.kind, ("a {kind} drift is not fixed by writing a count", "look into it")
            )
            return _cannot(why.format(kind=drift.kind, **words), step.format(**words))
        if drift.kind == MISSING and drift.missing_side == MISSING_IN_TRUTH:
            truth = drift.missing_from or "the source of truth"
            return _cannot(
                f"the source of truth ({truth}) has no count of {drift.sku} at "
                f"{drift.location} to copy",
                f"add {drift.sku} at {drift.location} to {truth}, or check the SKU mapping",
            )
        state = self.write_states.get(drift.system)
        if state is None:
            return _cannot(
                f"{drift.system} is read-only in the configuration",
                f"correct the count in {drift.system} itself",
            )
        decision = decide_resync(self.rules, levels, drift.system, drift.sku, drift.location, state)
        if decision.result is not None or decision.target is None or decision.before is None:
            message = decision.result.message if decision.result else "nothing to write"
            return _cannot(*self._refused(drift, levels, state, message))
        risks: tuple[str, ...] = ()
        safe = False
        if self.policy is not None:
            on = self.policy.model_copy(update={"auto_resync": True, "shadow_mode": False})
            verdict = decide(drift, on, tags=self.tags(drift.sku), writable=True)
            safe, risks = verdict.action == RESYNC, verdict.reasons
        return {
            "can": True,
            "system": drift.system,
            "state": state,
            "before": decision.before,
            "target": decision.target,
            "safe": safe,
            "risks": list(risks),
        }

    def _refused(
        self, drift: Drift, levels: Sequence[Level], state: str, message: str
    ) -> tuple[str, str]:
        """Why the write would be refused, and what to do instead."""
        level = next(
            (
                lv
                for lv in levels
                if (lv.system, lv.sku, lv.location) == (drift.system, drift.sku, drift.location)
            ),
            None,
        )
        adjust = f"`/adjust {drift.sku} {drift.location}`"
        if level is None:
            return (
                f"{drift.system} has no level of {drift.sku} at {drift.location} to write",
                f"stock {drift.sku} at {drift.location} in {drift.system} first",
            )
        committed = level.quantities.get("committed")
        if "negative" in message and committed and drift.expected is not None:
            return (
                f"{drift.system} has {committed} units committed to orders, more than the "
                f"{drift.expected} the source of truth allows, so no {state} count can "
                f"bring it in line ({message})",
                f"release or cancel orders in {drift.system}; if the source of truth is "
                f"wrong, correct it with {adjust}",
            )
        return message, f"if the source of truth is wrong, correct it with {adjust}"


def _cannot(why: str, step: str) -> dict[str, Any]:
    return {"can": False, "why": why, "next": step}


__all__ = ["ResyncPlanner"]
