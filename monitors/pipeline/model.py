"""What flows through the incident pipeline, and the one signature every stage has.

A :class:`Candidate` is a would-be incident: one drift, or a group of drifts of one
kind at one location. Each stage takes the context and the candidates and returns the
candidates for the next stage (``async (ctx, candidates) -> candidates``), so the whole
pipeline reads in one place (:func:`monitors.pipeline.build_pipeline`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from ledger import Incident, Ledger
from monitors.drift import Drift


@dataclass(frozen=True)
class Explained:
    """A drift's likely root cause: its key (``monitors.hints.CAUSES``) and the sentence
    the alert shows. The key is kept in the incident's ``details["root_cause"]``."""

    cause: str
    summary: str


Hint = Callable[[Drift], Explained | None]
#: whether (and how) Resync can fix a drift, from the read it was found in
#: (:class:`monitors.plans.ResyncPlanner`); stored as ``details["resync"]``
Plan = Callable[[Drift], dict[str, Any] | None]
#: what every system said about a SKU at a location in this evaluation's read
#: (:func:`monitors.reconcile.cell_snapshot`); None where no system reported it
SnapshotOf = Callable[[str, str], dict[str, Any] | None]


@dataclass(frozen=True)
class Action:
    """What a person or Driftwatch just did to a SKU (a resync, an adjustment), whose
    immediate re-evaluation this is: the alert says how it ended, in these words.

    ``text``: the outcome in words (e.g. "Resynced shopify available for X at east:
    40 → 28 — requested by <@U1>"). ``reply``: whether the thread hears it when the
    drift goes on (the auto-resync policy says so itself when its write fails).
    ``incident_id``: the incident it was done from, if any; it hears back even when the
    re-evaluation could not read the SKU again."""

    what: str
    by: str
    text: str
    sku: str
    location: str | None = None
    status: str | None = None
    incident_id: int | None = None
    reply: bool = True

    def concerns(self, sku: str | None, location: str | None) -> bool:
        return sku == self.sku and (self.location is None or location == self.location)

    def as_note(self) -> dict[str, Any]:
        """How it was resolved, for ``details["resolution"]["after"]``."""
        return {"what": self.what, "by": self.by, "text": self.text, "status": self.status}


@dataclass
class Candidate:
    fingerprint: str
    kind: str
    severity: str
    title: str
    details: dict[str, Any]
    sku: str | None = None
    location: str | None = None
    system: str | None = None
    root_cause_hint: str | None = None
    #: fingerprints of the drifts a group stands for (empty for a single drift)
    members: list[str] = field(default_factory=list)
    #: whether this drift has persisted long enough to open an incident
    confirmed: bool = True
    #: set by the mute stage: the mute that silences notifications
    muted_by: str | None = None
    #: set by the dedupe stage: the incident, and what to tell Slack about it
    incident: Incident | None = None
    notify: str | None = None  # "opened" | "reopened" | "reminder" | None
    #: set by the dedupe stage: a live incident whose facts (counts, gap) changed, so
    #: its alert is edited to show them
    changed: bool = False


@dataclass(frozen=True)
class Mute:
    """Snoozes, silences and maintenance windows are one concept: a time range and
    matchers; an unset matcher matches anything."""

    id: str
    starts_at: datetime
    ends_at: datetime | None
    reason: str
    fingerprint: str | None = None
    kind: str | None = None
    sku: str | None = None
    location: str | None = None
    system: str | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def matches(self, c: Candidate) -> bool:
        pairs = (
            (self.fingerprint, c.fingerprint),
            (self.kind, c.kind),
            (self.sku, c.sku),
            (self.location, c.location),
            (self.system, c.system),
        )
        return all(want is None or want == have for want, have in pairs)


class MuteSource(Protocol):
    async def __call__(self, now: datetime) -> Sequence[Mute]: ...


@dataclass(frozen=True)
class Timers:
    """Named, documented timers (after Alertmanager's).

    :param repeat_interval: remind about a still-open incident this often.
    :param reopen_window: a drift that recurs within this time of its incident's
        resolution reopens that incident instead of opening a new one.
    :param group_threshold: more drifts than this of one kind at one location become
        one grouped incident.
    :param group_list: how many of the worst drifts a grouped incident lists.
    """

    repeat_interval: timedelta = timedelta(hours=1)
    reopen_window: timedelta = timedelta(hours=24)
    group_threshold: int = 10
    group_list: int = 10


@dataclass
class Scope:
    """What the evaluation looked at, so recovery is judged only there.

    ``skus`` None means every SKU (a full diff). ``systems`` are the systems that were
    read successfully: an incident about a system that could not be read is not
    resolved just because its drift was not seen.
    """

    systems: frozenset[str]
    skus: frozenset[str] | None = None


@dataclass
class Context:
    ledger: Ledger
    now: datetime
    channel: str
    scope: Scope
    timers: Timers = field(default_factory=Timers)
    mutes: Sequence[Mute] = ()
    #: the evaluation's input: the drifts seen, and which of them are confirmed
    #: (persisted long enough to open an incident; None confirms all)
    drifts: Sequence[Drift] = ()
    confirmed: set[str] | None = None
    #: fingerprint prefixes this evaluation owns: only their incidents are touched and
    #: auto-resolved (a drift diff does not resolve a sync-health incident)
    families: tuple[str, ...] = ("drift:", "group:")
    #: candidates given directly (health findings) rather than derived from drifts
    given: Sequence[Candidate] = ()
    #: this evaluation's root-cause explainer (it closes over this diff's evidence)
    hint: Hint | None = None
    #: whether Resync can fix each drift (None: not planned, the alert offers Resync)
    plan: Plan | None = None
    #: what every system said in this read, for the final counts of a resolved incident
    snapshot_of: SnapshotOf | None = None
    #: the action this evaluation re-checks (None: a scheduled or webhook diff)
    action: Action | None = None
    #: systems that could not be read, with why
    failures: Mapping[str, str] = field(default_factory=dict)
    #: what happened, for callers and tests
    opened: list[Incident] = field(default_factory=list)
    reopened: list[Incident] = field(default_factory=list)
    reminded: list[Incident] = field(default_factory=list)
    resolved: list[Incident] = field(default_factory=list)
    muted: list[Candidate] = field(default_factory=list)
    pending: list[Candidate] = field(default_factory=list)
    #: live incidents whose facts changed (their alerts are edited)
    updated: list[Incident] = field(default_factory=list)
    extras: Mapping[str, Any] = field(default_factory=dict)
    #: system → the channel its alerts go to (a store's own); others go to ``channel``
    routes: Mapping[str, str] = field(default_factory=dict)
    _live: dict[str, Incident] | None = None

    def channel_for(self, incident: Incident) -> str:
        """Where ``incident``'s messages go: the channel its alert was posted in, else
        its system's own channel, else :attr:`channel`."""
        if incident.slack_channel:
            return incident.slack_channel
        return self.routes.get(incident.system or "", self.channel)

    async def live(self, *, fresh: bool = False) -> dict[str, Incident]:
        """The live incidents of this evaluation's families, by fingerprint (read once
        per evaluation unless ``fresh``)."""
        if self._live is None or fresh:
            found: list[Incident] = []
            for status in ("open", "acknowledged"):
                found += await self.ledger.list_incidents(status=status, limit=100_000)
            mine = (i for i in found if i.fingerprint.startswith(self.families))
            self._live = {i.fingerprint: i for i in mine}
        return self._live


class Stage(Protocol):
    async def __call__(self, ctx: Context, candidates: list[Candidate]) -> list[Candidate]: ...
