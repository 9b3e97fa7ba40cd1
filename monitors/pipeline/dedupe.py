"""Stage 4: one incident per fingerprint — open, touch, remind, reopen, auto-resolve.

* A confirmed candidate with no live incident opens one, or reopens the incident it
  had if that was resolved within ``reopen_window``.
* A candidate whose incident is live touches it: fresh facts (one snapshot), the root
  cause it was opened with, and ``changed`` when the counts moved, so the alert is
  edited to show them. It is due a reminder every ``repeat_interval``.
* A live incident whose drift was not seen, where the evaluation looked (its system
  read successfully, its SKU — every SKU of a group — in scope), has ended: it is
  resolved by Driftwatch with how it ended and the final counts of that read
  (``details["resolution"]``): every system agreeing, a gap now within the threshold,
  a drift of another kind (on its own alert), or no level left.
"""

from __future__ import annotations

from typing import Any

from ledger import SYSTEM_ACTOR, Incident
from monitors.mrkdwn import escape
from monitors.pipeline.evaluate import cause_seen
from monitors.pipeline.model import Candidate, Context
from monitors.pipeline.words import kind_words

LIVE = ("open", "acknowledged")
#: the facts whose change makes an alert worth editing
_NUMBERS = ("kind", "values", "expected", "actual", "gap", "count", "members", "resync")


async def live_incidents(ctx: Context) -> list[Incident]:
    return list((await ctx.live(fresh=True)).values())


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
    race that persisted would otherwise be re-explained as something else). When this
    evaluation names the same cause, its sentence (written for today's numbers) is
    used; otherwise the first sentence stays with the numbers it was written for
    (``cause_seen``), so the alert can say they are not today's."""
    old = incident.details or {}
    cause = old.get("root_cause")
    if cause is None or c.details.get("root_cause") == cause:
        return
    c.details["root_cause"] = cause
    c.root_cause_hint = incident.root_cause_hint
    seen = old.get("cause_seen")
    c.details["cause_seen"] = seen if isinstance(seen, dict) else cause_seen(old)


def _numbers(details: dict[str, Any] | None) -> tuple[Any, ...]:
    d = details or {}
    return tuple(d.get(k) for k in _NUMBERS)


def _members(incident: Incident) -> list[dict[str, Any]]:
    d = incident.details or {}
    listed = d.get("members") or []
    return [m for m in listed if isinstance(m, dict)]


def _in_scope(ctx: Context, incident: Incident) -> bool:
    """Whether this evaluation looked where ``incident`` is: its system and the system
    it was compared with (a truth that could not be read is no evidence of recovery:
    the fallback truth may be the drifting system itself) were read, and its SKU (every
    SKU of a group) was in scope."""
    if incident.system is not None and incident.system not in ctx.scope.systems:
        return False
    truth = (incident.details or {}).get("truth_system")
    if isinstance(truth, str) and truth not in ctx.scope.systems:
        return False
    if incident.fingerprint.startswith("group:"):
        members = _members(incident)
        read = ctx.scope.systems
        if any(
            m.get("system") not in read or m.get("truth_system") not in (None, *read)
            for m in members
        ):
            return False
        if ctx.scope.skus is None:
            return True
        return bool(members) and all(m.get("sku") in ctx.scope.skus for m in members)
    if ctx.scope.skus is None:
        return True
    return incident.sku is not None and incident.sku in ctx.scope.skus


def resolution(ctx: Context, incident: Incident) -> dict[str, Any] | None:
    """How ``incident`` ended, from this evaluation's read (None: not a drift family)."""
    note: dict[str, Any] = {"at": ctx.now.isoformat(), "by": SYSTEM_ACTOR}
    if ctx.action is not None and (
        ctx.action.incident_id == incident.id
        or ctx.action.concerns(incident.sku, incident.location)
        or any(ctx.action.sku == m.get("sku") for m in _members(incident))
    ):
        note["after"] = ctx.action.as_note()
    if incident.fingerprint.startswith("group:"):
        count = (incident.details or {}).get("count")
        note["how"] = (
            f"none of its {count} SKUs drifts any more" if count else "none of its SKUs drifts"
        )
        note["agrees"] = True
        return note
    if not incident.fingerprint.startswith("drift:"):
        return None
    sku, location, system = incident.sku, incident.location, incident.system
    if ctx.snapshot_of is None:  # no read to show: not seen where it was looked for
        note["how"] = "every system agrees with the source of truth again"
        note["agrees"] = True
        return note
    snapshot = ctx.snapshot_of(sku, location) if sku is not None and location else None
    if snapshot is None:
        note["how"] = f"no system reports {escape(sku, 100)} at {escape(location, 60)} any more"
        note["agrees"] = False
        return note
    gap = snapshot["gaps"].get(system)
    name = escape(system, 60)
    note.update(
        values=snapshot["values"],
        truth_system=snapshot["truth_system"],
        expected=snapshot["expected"].get(system),
        gap=gap,
        observed_at=snapshot["observed_at"],
    )
    other = next(
        (
            d
            for d in ctx.drifts
            if (d.system, d.sku, d.location) == (system, sku, location)
            and d.fingerprint != incident.fingerprint
        ),
        None,
    )
    if other is not None:
        note["how"] = (
            f"no longer {kind_words(incident.kind)}: {name} now drifts as "
            f"{kind_words(other.kind)} ({other.gap:+d}), on an alert of its own"
        )
        note["agrees"] = False
        note["drifting"] = other.kind
    else:
        if not gap:
            note["how"] = f"{name} agrees with the source of truth again"
        else:
            note["how"] = f"{name} is {gap:+d} from the source of truth, within the threshold"
        others = {s: g for s, g in snapshot["gaps"].items() if s != system and g}
        if not gap and not others:
            note["how"] = "every system agrees with the source of truth again"
        elif others:  # another system of this SKU still differs: no "every system agrees"
            note["how"] += "; " + ", ".join(
                f"{escape(s, 60)} still differs by {g:+d}" for s, g in others.items()
            )
        note["agrees"] = not gap and not others
    return note


async def dedupe(ctx: Context, candidates: list[Candidate]) -> list[Candidate]:
    live = await ctx.live()
    for c in candidates:
        existing = live.get(c.fingerprint)
        if existing is not None:
            _keep_first_cause(existing, c)
            c.incident, _ = await _record(ctx, c)
            c.changed = _numbers(existing.details) != _numbers(c.incident.details)
            if c.changed:
                ctx.updated.append(c.incident)
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
        resolved = await ctx.ledger.resolve(
            incident.id, SYSTEM_ACTOR, ctx.now, resolution=resolution(ctx, incident)
        )
        ctx.resolved.append(resolved)
    return candidates
