"""Stage 1: drifts become candidates, with severity, title and their facts."""

from __future__ import annotations

from collections.abc import Sequence

from monitors.drift import Drift
from monitors.incidents import SEVERITY, drift_details, drift_title
from monitors.pipeline.model import Candidate, Context, Explained, Hint, Stage

__all__ = ["Explained", "Hint", "candidates_from_drifts", "evaluating"]


def candidates_from_drifts(
    drifts: Sequence[Drift],
    *,
    confirmed: set[str] | None = None,
    hint: Hint | None = None,
) -> list[Candidate]:
    """One candidate per drift. ``confirmed`` (fingerprints) marks the drifts that have
    persisted long enough to open an incident; None confirms all."""
    out = []
    for d in drifts:
        explained = hint(d) if hint else None
        details = drift_details(d)
        if explained is not None:
            details["root_cause"] = explained.cause
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
                root_cause_hint=(explained.summary if explained else None)
                or ("; ".join(d.evidence) or None),
                confirmed=confirmed is None or d.fingerprint in confirmed,
            )
        )
    return out


def evaluating(hint: Hint | None = None) -> Stage:
    """The evaluate stage: the context's drifts become the candidates."""

    async def evaluate(ctx: Context, candidates: list[Candidate]) -> list[Candidate]:
        derived = candidates_from_drifts(ctx.drifts, confirmed=ctx.confirmed, hint=ctx.hint or hint)
        return [*candidates, *ctx.given, *derived]

    return evaluate
