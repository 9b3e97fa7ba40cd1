"""Stage 1: drifts become candidates, with severity, title and their facts.

The facts are one snapshot: every system's count, the expected count, the gap and the
time of the evaluation (``evaluated_at``) come from the same read, and so do the root
cause sentence (``cause_seen`` records the numbers it was written for) and the resync
plan (``details["resync"]``: whether Resync can fix it, see :mod:`monitors.plans`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitors.drift import Drift
from monitors.incidents import SEVERITY, drift_details, drift_title
from monitors.pipeline.model import Candidate, Context, Explained, Hint, Plan, Stage

__all__ = ["Explained", "Hint", "candidates_from_drifts", "cause_seen", "evaluating"]


def cause_seen(details: dict[str, Any]) -> dict[str, Any]:
    """The numbers a root-cause sentence was written for (shown beside it if they are
    not the alert's numbers any more)."""
    return {
        "at": details.get("evaluated_at"),
        "system": details.get("system"),
        "actual": details.get("actual"),
        "expected": details.get("expected"),
        "gap": details.get("gap"),
    }


def candidates_from_drifts(
    drifts: Sequence[Drift],
    *,
    confirmed: set[str] | None = None,
    hint: Hint | None = None,
    plan: Plan | None = None,
    now: datetime | None = None,
) -> list[Candidate]:
    """One candidate per drift. ``confirmed`` (fingerprints) marks the drifts that have
    persisted long enough to open an incident; None confirms all."""
    out = []
    for d in drifts:
        explained = hint(d) if hint else None
        details = drift_details(d)
        if now is not None:
            details["evaluated_at"] = now.isoformat()
        if explained is not None:
            details["root_cause"] = explained.cause
        summary = (explained.summary if explained else None) or ("; ".join(d.evidence) or None)
        if summary is not None:
            details["cause_seen"] = cause_seen(details)
        resync = plan(d) if plan is not None else None
        if resync is not None:
            details["resync"] = resync
        out.append(
            Candidate(
                fingerprint=d.fingerprint,
                kind=d.kind,
                severity=SEVERITY.get(d.kind, "warning"),
                title=drift_title(d),
                details=details,
                sku=d.sku,
                location=d.location,
                system=d.system,
                root_cause_hint=summary,
                confirmed=confirmed is None or d.fingerprint in confirmed,
            )
        )
    return out


def evaluating(hint: Hint | None = None) -> Stage:
    """The evaluate stage: the context's drifts become the candidates."""

    async def evaluate(ctx: Context, candidates: list[Candidate]) -> list[Candidate]:
        derived = candidates_from_drifts(
            ctx.drifts,
            confirmed=ctx.confirmed,
            hint=ctx.hint or hint,
            plan=ctx.plan,
            now=ctx.now,
        )
        return [*candidates, *ctx.given, *derived]

    return evaluate
