"""Stage 4: one incident per fingerprint — open, touch, remind, reopen, auto-resolve.

* A confirmed candidate with no live incident opens one, or reopens the incident it
  had if that was resolved within ``reopen_window``.
* A candidate whose incident is live touches it (fresh facts, but the root cause it
  was opened with) and is due a reminder every ``repeat_interval``.
* A live incident whose drift was not seen, where the evaluation looked (its system
  read successfully, its SKU in scope), has recovered: it is resolved by Driftwatch.
"""

from __future__ import annotations

from ledger import Incident
from monitors.pipeline.model import Candidate, Context

LIVE = ("open", "acknowledged")


async def live_incidents(ctx: Context) -> list[Incident]:
    found: list[Incident] = []
    for status in LIVE:
        found += await ctx.ledger.list_incidents(status=status, limit=100_000)
    return [i for i in found if i.fingerprint.startswith(ctx.families)]


async def _recently_resolved(ctx: Context, c: Candidate) -> Incident | None:
    since = ctx.now - ctx.timers.reopen_window
    for incident in await ctx.ledger.list_incidents(
        status="resolved", sku=c.sku, since=since, limit=1000
    ):
        if (
            incident.fingerprint == c.fingerprint
            and incident.resolved_at is not None
            and incident.resolved_at >= since
        ):
            return incident
    return None


async def _record(ctx: Context, c: Candidate) -> tuple[Incident, bool]:
    return await ctx.ledger.open_incident(
        fingerprint=c.fingerprint,
        kind=c.kind,
        severity=c.severity,
        title=c.title,
        at=ctx.now,
        sku=c.sku,
        location=c.location,
        system=c.system,
        details=c.details,
        root_cause_hint=c.root_cause_hint,
    )


def _keep_first_cause(incident: Incident, c: Candidate) -> None:
    """A live incident keeps the root cause it was opened with: the evidence around a
    drift's start explains it best (orders in flight age out of their window, and a
    race that persisted would otherwise be re-explained as something else)."""
    cause = (incident.details or {}).get("root_cause")
    if cause is None:
        return
    c.details["root_cause"] = cause
    c.root_cause_hint = incident.root_cause_hint


def _in_scope(ctx: Context, incident: Incident) -> bool:
    if incident.system is not None and incident.system not in ctx.scope.systems:
        return False
    if ctx.scope.skus is None:
        return True
    return incident.sku is not None and incident.sku in ctx.scope.skus


async def dedupe(ctx: Context, candidates: list[Candidate]) -> list[Candidate]:
    live = {i.fingerprint: i for i in await live_incidents(ctx)}
    for c in candidates:
        existing = live.get(c.fingerprint)
        if existing is not None:
            _keep_first_cause(existing, c)
            c.incident, _ = await _record(ctx, c)
            if ctx.now - existing.opened_at >= ctx.timers.repeat_interval:
                c.notify = "reminder"
            continue
        if not c.confirmed:
            ctx.pending.append(c)
            continue
        previous = await _recently_resolved(ctx, c)
        if previous is not None:
            await ctx.ledger.reopen(previous.id, ctx.now)
            c.incident, _ = await _record(ctx, c)
            c.notify = "reopened"
            ctx.reopened.append(c.incident)
            continue
        c.incident, new = await _record(ctx, c)
        if new:
            c.notify = "opened"
            ctx.opened.append(c.incident)
    seen = {c.fingerprint for c in candidates}
    for fingerprint, incident in live.items():
        if fingerprint in seen or not _in_scope(ctx, incident):
            continue
        resolved = await ctx.ledger.resolve(incident.id, "driftwatch", ctx.now)
        ctx.resolved.append(resolved)
    return candidates
