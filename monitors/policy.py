"""The auto-resync policy: after each diff, resync low-risk drifts from the source of
truth, escalate high-risk ones to the on-call group, and in shadow mode write nothing
but show what would have been written.

Which drifts are low-risk (:func:`decide`, a pure function):

* a **count drift** — ``oversell_risk``, ``undersell`` or ``count_mismatch``. A
  ``negative`` count is high-risk (units were already sold that are not there); a SKU
  ``missing`` in a system, ``stale``, ``untracked`` and ``oversell_policy`` drifts are
  not fixed by writing a count, so the policy leaves them alone;
* of at most ``policy.auto_resync_max_units`` units;
* on a SKU without a tag in ``policy.never_auto_tags`` (tags from ``[skus.tags]`` and
  from the ledger's items);
* in the **safe direction**: the write *lowers* the drifting system's count. The seeds
  agree that the WMS (the source of truth) wins and that overselling is the costly
  failure (cancellations, chargebacks, reviews) while underselling costs a sale: a
  storefront that shows more than can be picked is lowered at once, by a machine. A
  write that *raises* a count puts stock on sale on the truth's word alone — if the
  truth lags (a receipt not yet booked, returns counted twice) it creates the oversell
  it meant to fix — so it is left to a person unless ``policy.auto_resync_raise``;
* in a system configured ``writable``.

A drift that fails one of the risk rules (tag, size, direction, negative) is
escalated: the alert names ``slack.oncall_usergroup`` and says why it was not
auto-resynced. A drift that the policy would resync but whose auto-resync does not go
through (a refused or failed write, a count that kept changing) is escalated too.

Exactly once. Each incident opening (its ``reopened_count``) gets at most one decision,
across every replica on the database: the replica that decides first claims the opening
(a ``job_claims`` row, job ``policy``, under a primary key); the others leave it alone
while that replica is alive (its resync is *in progress* there, not unfinished), and
only once it is dead does an unrecorded resync of it count as "did not finish". The
decision is recorded in the audit log (``policy.applied``, ``policy.shadow``,
``policy.escalated``, subject ``incident:<id>``) before anything is shown; the resync
itself is a row in the ledger linked to the incident, requested by
:data:`ledger.SYSTEM_ACTOR` (which is how the weekly report counts automatic resyncs).
The next diff that still sees the drift — a write Shopify has not reflected yet, a
failed write — finds the decision and does not write again; a process that died after
the write but before its audit entry finds the resync row and does not write again
either (an unfinished one is escalated, never retried blindly; a process that starts
settles such a resync first, see :mod:`monitors.settle`). A drift that comes back after
Driftwatch fixed it (the incident reopens) is escalated rather than fought over.

Keys. The policy does not make idempotency keys: :class:`ResyncService` keys each
decision by its occurrence (the newest settled resync of the level), so the policy's
resync and a person's click on the same drift at the same moment share one key and one
write, while a drift that comes back after being fixed — by a person, or by the policy
in an earlier incident past the reopen window — is a new occurrence with a new key and
a real write (never the replay of the old one's result).
Incidents that are muted (snoozed, silenced, in a maintenance window) or already
acknowledged by a person are left alone, as are grouped storms.

Showing it. The outcome is stored on the incident (``details["policy"]``), which is
what the alert is rendered from, and an update of the alert with a thread reply is
queued once per decision. It is written with ``Ledger.annotate_incident``, so the
pipeline's fresh details at every later diff keep it.

When the policy is off (``auto_resync`` and ``shadow_mode`` both false) nothing is
resynced; high-risk drifts are still escalated if an on-call group is configured.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.clock import Clock
from ledger import SYSTEM_ACTOR, AuditEntry, Incident, InvalidTransition, Ledger, Resync
from monitors.config import Config, Policy
from monitors.drift import MISSING, NEGATIVE, Drift
from monitors.jobs import DiffResult
from monitors.mrkdwn import escape, public_error, usergroup
from monitors.pipeline.dedupe import live_incidents
from monitors.resync import WRITABLE_KINDS, ResyncRequest, ResyncResult, ResyncService

#: the actor of automatic resyncs and policy decisions (what reports count as automatic)
ACTOR = SYSTEM_ACTOR

RESYNC = "resync"
SHADOW = "shadow"
ESCALATE = "escalate"
NONE = "none"

#: the incident note naming the opening its ``policy`` note belongs to
OPENING_NOTE = "policy_opening"
#: outcomes stored in ``details["policy"]["outcome"]``
APPLIED = "applied"
SHADOWED = "shadow"
ESCALATED = "escalated"
IN_SYNC = "in_sync"
#: outcomes that settle an incident opening (``in_sync`` wrote nothing: try again)
FINAL = frozenset({APPLIED, SHADOWED, ESCALATED})
#: the claim job of a decision (one claim row per incident and opening)
POLICY_JOB = "policy"
#: what :meth:`AutoResyncPolicy._recorded` says of an opening a live replica decides now
IN_PROGRESS: dict[str, Any] = {"outcome": "in_progress"}


@dataclass(frozen=True)
class Decision:
    """What the policy does about one drift, and why."""

    action: str  # resync | shadow | escalate | none
    reasons: tuple[str, ...] = ()


def risk_reasons(drift: Drift, policy: Policy, tags: Collection[str]) -> tuple[str, ...]:
    """Why a resyncable drift is high-risk (empty: low-risk), in words for the alert."""
    reasons = [f"{tag} SKU" for tag in sorted(set(tags) & set(policy.never_auto_tags))]
    size = abs(drift.gap)
    if drift.kind == NEGATIVE:
        reasons.append(f"negative inventory ({drift.actual} in {drift.system})")
    elif drift.gap < 0 and not policy.auto_resync_raise:
        reasons.append(f"it would raise {drift.system} by {size} (only lowering is automatic)")
    if size > policy.auto_resync_max_units:
        reasons.append(
            f"{size} units is over the auto-resync limit of {policy.auto_resync_max_units}"
        )
    return tuple(reasons)


def decide(
    drift: Drift,
    policy: Policy,
    *,
    tags: Collection[str] = (),
    writable: bool = True,
    oncall: str | None = None,
) -> Decision:
    """The policy's decision for ``drift`` (see the module docstring for the rules)."""
    fixable = drift.kind in WRITABLE_KINDS and drift.kind != MISSING
    if not fixable or drift.expected is None or drift.actual is None:
        return Decision(NONE, (f"a {drift.kind} drift is not fixed by writing a count",))
    active = policy.auto_resync or policy.shadow_mode
    risks = risk_reasons(drift, policy, tags)
    if risks:
        return Decision(ESCALATE if active or oncall else NONE, risks)
    if not writable:
        return Decision(NONE, (f"{drift.system} is read-only in the configuration",))
    if not active:
        return Decision(NONE, ("auto-resync is off",))
    return Decision(SHADOW if policy.shadow_mode else RESYNC)


class AutoResyncPolicy:
    """The after-diff hook: one decision per incident opening, recorded, then shown."""

    def __init__(self, config: Config, ledger: Ledger, resync: ResyncService, clock: Clock) -> None:
        self._config = config
        self._policy = config.policy
        self._oncall = config.slack.oncall_usergroup
        self._ledger = ledger
        self._resync = resync
        self._clock = clock

    async def __call__(self, result: DiffResult) -> None:
        ctx = result.incidents
        muted = {c.fingerprint for c in ctx.muted}
        live = {i.fingerprint: i for i in await live_incidents(ctx)}
        for drift in result.run.drifts:
            incident = live.get(drift.fingerprint)
            if incident is None or drift.fingerprint in muted:
                continue  # pending, grouped into a storm, or muted
            if _shown(incident):
                continue  # this opening's decision is settled and on the alert already
            outcome = await self._recorded(incident)
            if outcome is IN_PROGRESS:
                continue  # another replica is deciding this opening now
            if outcome is None:
                outcome = await self._claimed_decision(drift, incident)
            if outcome is not None and outcome["outcome"] in FINAL:
                await self._show(incident, outcome)

    async def _claimed_decision(self, drift: Drift, incident: Incident) -> dict[str, Any] | None:
        """Claim the opening, then decide and act; None (nothing done) if another
        replica claimed it first. A decision that settles nothing (nothing to do, or
        in sync) gives the claim back, so a later diff may decide."""
        unit, opening = _subject(incident.id), str(incident.reopened_count)
        replica, now = self._ledger.replica_id, self._clock.now()
        if not await self._ledger.claim_tick(POLICY_JOB, unit, opening, replica, now):
            # claimed already: by a replica deciding now, or by one that died before
            # it wrote anything (no resync of it was found), whose claim is taken over
            holder = await self._ledger.claim_holder(POLICY_JOB, unit, opening)
            if holder is None or holder == replica:
                return None
            if await self._ledger.replica_alive(holder, now):
                return None
            if not await self._ledger.take_over_claim(
                POLICY_JOB, unit, opening, replica, holder, now
            ):
                return None
        outcome = await self._decide_and_act(drift, incident)
        if outcome is None or outcome["outcome"] not in FINAL:
            await self._ledger.release_claim(POLICY_JOB, unit, opening, replica)
        return outcome

    # -- the record ----------------------------------------------------------------

    async def _recorded(self, incident: Incident) -> dict[str, Any] | None:
        """This opening's settled decision: from the audit log, else :data:`IN_PROGRESS`
        while another live replica holds the opening's claim, else (a process that died
        between writing and auditing) from a resync row the policy requested."""
        entries = await self._ledger.list_audit(subject=_subject(incident.id), limit=1000)
        for entry in entries:  # newest first
            detail = entry.detail or {}
            if (
                entry.action.startswith("policy.")
                and detail.get("opening") == incident.reopened_count
                and isinstance(detail.get("policy"), dict)
                and detail["policy"].get("outcome") in FINAL
            ):
                return dict(detail["policy"])
        holder = await self._ledger.claim_holder(
            POLICY_JOB, _subject(incident.id), str(incident.reopened_count)
        )
        if (
            holder is not None
            and holder != self._ledger.replica_id
            and await self._ledger.replica_alive(holder, self._clock.now())
        ):
            return IN_PROGRESS
        reopened_at = _reopened_at(entries)
        mine = [
            r
            for r in await self._ledger.list_resyncs(incident_id=incident.id, limit=1000)
            if r.requested_by == ACTOR and (reopened_at is None or r.created_at >= reopened_at)
        ]
        if not mine:
            return None
        outcome = _from_row(mine[0], self._oncall)
        await self._audit(incident, outcome)
        return outcome

    async def _decide_and_act(self, drift: Drift, incident: Incident) -> dict[str, Any] | None:
        try:
            system = self._config.system(drift.system)
        except KeyError:
            return None
        tags = set(self._config.sku_tags(drift.sku))
        item = await self._ledger.get_item(drift.sku)
        if item is not None:
            tags |= set(item.tags)
        decision = decide(
            drift, self._policy, tags=tags, writable=system.writable, oncall=self._oncall
        )
        if decision.action == NONE or incident.status != "open":
            return None  # nothing to do, or a person has it already
        state = system.write_state
        if decision.action in (RESYNC, SHADOW) and await self._fixed_before(incident):
            decision = Decision(
                ESCALATE, ("it drifted again after Driftwatch auto-resynced it (not retried)",)
            )
        if decision.action == ESCALATE:
            outcome = _escalation(drift.system, state, decision.reasons, self._oncall)
        else:
            result = await self._resync.resync(
                ResyncRequest(
                    sku=drift.sku,
                    location=drift.location,
                    system=drift.system,
                    requested_by=ACTOR,
                    incident_id=incident.id,
                    state=state,
                    shadow=decision.action == SHADOW,
                )
            )
            outcome = _from_result(result, drift.system, state, self._oncall)
        outcome["gap"] = drift.gap  # what it was decided on (the alert may show later reads)
        await self._audit(incident, outcome)
        return outcome

    async def _fixed_before(self, incident: Incident) -> bool:
        """Whether Driftwatch already resynced this incident at an earlier opening."""
        if incident.reopened_count == 0:
            return False
        rows = await self._ledger.list_resyncs(incident_id=incident.id, limit=1000)
        return any(r.requested_by == ACTOR and r.status == "applied" for r in rows)

    async def _audit(self, incident: Incident, outcome: dict[str, Any]) -> None:
        await self._ledger.append_audit(
            ACTOR,
            f"policy.{outcome['outcome']}",
            _subject(incident.id),
            {"opening": incident.reopened_count, "policy": outcome},
            self._clock.now(),
        )

    # -- showing it ------------------------------------------------------------------

    async def _show(self, incident: Incident, outcome: dict[str, Any]) -> None:
        """Stamp the outcome on the incident (what the alert renders) and, once per
        decision, queue the alert's update with a thread reply."""
        current = await self._ledger.get_incident(incident.id)
        if current.status == "resolved":
            return
        details = dict(current.details or {})
        if details.get("policy") == outcome:
            return
        try:
            now = self._clock.now()
            await self._ledger.annotate_incident(current.id, "policy", outcome, now)
            await self._ledger.annotate_incident(
                current.id, OPENING_NOTE, current.reopened_count, now
            )
        except InvalidTransition:
            return  # resolved in the meantime: nothing left to show
        await self._ledger.enqueue(
            "incident.updated",
            current.slack_channel or self._config.slack.alerts_channel,
            {"incident_id": current.id, "reply": reply_text(outcome)},
            at=self._clock.now(),
            incident_id=current.id,
            dedupe_key=f"incident:{current.id}:policy:{current.reopened_count}",
        )


def _shown(incident: Incident) -> bool:
    """Whether the incident already shows a settled decision of its current opening
    (then a diff costs it no ledger reads)."""
    details = incident.details or {}
    note = details.get("policy")
    return (
        details.get(OPENING_NOTE) == incident.reopened_count
        and isinstance(note, dict)
        and note.get("outcome") in FINAL
    )


def reply_text(outcome: dict[str, Any]) -> str:
    """The thread reply announcing a decision (mrkdwn). An escalation mentions the
    on-call group here, and only here: once per decision (the reply's dedupe key is per
    opening), whether or not the alert was already posted; the alert itself only says
    that on-call was paged. The reasons may quote a SKU or an error: escaped, without
    addresses."""
    what = f"{escape(outcome.get('system'), 60)} {escape(outcome.get('state'), 40)}"
    kind = outcome.get("outcome")
    if kind == APPLIED:
        after = outcome.get("after", outcome.get("target"))
        return f"Auto-resynced by Driftwatch: {what} {_n(outcome.get('before'))} → {_n(after)}"
    if kind == SHADOWED:
        return (
            f"Shadow mode: would have set {what} {_n(outcome.get('before'))} → "
            f"{_n(outcome.get('target'))}; nothing was written"
        )
    reasons = "; ".join(public_error(r, 600) for r in outcome.get("reasons") or ())
    group = usergroup(outcome.get("oncall"))
    if group is not None:
        return f"{group} escalated, not auto-resynced: {reasons}"
    return f"Escalated, not auto-resynced: {reasons}"


def _n(value: object) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "?"


def _subject(incident_id: int) -> str:
    return f"incident:{incident_id}"


def _reopened_at(entries: list[AuditEntry]) -> datetime | None:
    return next((e.at for e in entries if e.action == "incident.reopened"), None)


def _escalation(
    system: str, state: str, reasons: tuple[str, ...], oncall: str | None
) -> dict[str, Any]:
    return {
        "outcome": ESCALATED,
        "system": system,
        "state": state,
        "reasons": list(reasons),
        "oncall": oncall,
    }


def _from_result(
    result: ResyncResult, system: str, state: str, oncall: str | None
) -> dict[str, Any]:
    resync_id = result.resync.id if result.resync is not None else None
    base: dict[str, Any] = {"system": system, "state": state, "resync_id": resync_id}
    if result.status == "applied":
        return {
            **base,
            "outcome": APPLIED,
            "before": result.before,
            "target": result.target,
            "after": result.after,
        }
    if result.status == "shadow":
        return {**base, "outcome": SHADOWED, "before": result.before, "target": result.target}
    if result.status == "in_sync":
        return {**base, "outcome": IN_SYNC, "message": result.message}
    reason = f"the auto-resync did not go through: {result.message}"
    return {**_escalation(system, state, (reason,), oncall), "resync_id": resync_id}


def _from_row(row: Resync, oncall: str | None) -> dict[str, Any]:
    """The outcome of a resync the policy requested but did not record (it died)."""
    base: dict[str, Any] = {"system": row.system, "state": row.state, "resync_id": row.id}
    if row.status == "applied":
        return {
            **base,
            "outcome": APPLIED,
            "before": row.before,
            "target": row.target,
            "after": row.after,
        }
    if row.status == "skipped":
        return {**base, "outcome": SHADOWED, "before": row.before, "target": row.target}
    reason = (
        f"an earlier auto-resync did not finish (resync #{row.id} is {row.status}); not retried"
    )
    return {**_escalation(row.system, row.state, (reason,), oncall), "resync_id": row.id}
