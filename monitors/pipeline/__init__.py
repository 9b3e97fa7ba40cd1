"""The incident pipeline: evaluate → group → mute → dedupe → notify.

Every stage has one signature, ``async (ctx, candidates) -> candidates``, and
:func:`build_pipeline` assembles them in order — the whole flow from drifts to queued
Slack notifications reads here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ledger import Ledger
from monitors.drift import Drift
from monitors.pipeline.dedupe import dedupe, live_incidents
from monitors.pipeline.evaluate import Hint, candidates_from_drifts, evaluating
from monitors.pipeline.group import group
from monitors.pipeline.model import (
    Action,
    Candidate,
    Context,
    Mute,
    MuteSource,
    Plan,
    Scope,
    SnapshotOf,
    Stage,
    Timers,
)
from monitors.pipeline.mute import mute
from monitors.pipeline.notify import notify

__all__ = [
    "Action",
    "Candidate",
    "Context",
    "Mute",
    "MuteSource",
    "Pipeline",
    "Plan",
    "Scope",
    "SnapshotOf",
    "Stage",
    "Timers",
    "build_pipeline",
    "candidates_from_drifts",
]


@dataclass
class Pipeline:
    stages: Sequence[Stage]
    timers: Timers = field(default_factory=Timers)
    mute_source: MuteSource | None = None
    #: system → the channel its alerts go to (see :meth:`Context.channel_for`)
    routes: Mapping[str, str] = field(default_factory=dict)

    async def run(
        self,
        ledger: Ledger,
        drifts: Sequence[Drift],
        *,
        scope: Scope,
        now: datetime,
        channel: str,
        confirmed: set[str] | None = None,
        given: Sequence[Candidate] = (),
        families: tuple[str, ...] = ("drift:", "group:"),
        hint: Hint | None = None,
        plan: Plan | None = None,
        snapshot_of: SnapshotOf | None = None,
        action: Action | None = None,
        failures: Mapping[str, str] | None = None,
    ) -> Context:
        """Push one evaluation's drifts (or ``given`` candidates of other ``families``)
        through every stage; return what happened. ``plan``, ``snapshot_of``: what the
        read says about resyncs and final counts; ``action``: what this evaluation
        re-checks (see :class:`Context`)."""
        mutes: list[Mute] = list(await self.mute_source(now)) if self.mute_source else []
        ctx = Context(
            ledger=ledger,
            now=now,
            channel=channel,
            scope=scope,
            timers=self.timers,
            drifts=drifts,
            confirmed=confirmed,
            given=given,
            families=families,
            hint=hint,
            plan=plan,
            snapshot_of=snapshot_of,
            action=action,
            failures=dict(failures or {}),
            routes=self.routes,
        )
        for incident in await live_incidents(ctx):
            if incident.is_snoozed(now):
                mutes.append(
                    Mute(
                        id=f"snooze:{incident.id}",
                        starts_at=now,
                        ends_at=incident.snoozed_until,
                        reason="snoozed",
                        fingerprint=incident.fingerprint,
                    )
                )
        ctx.mutes = mutes
        candidates: list[Candidate] = []
        for stage in self.stages:
            candidates = await stage(ctx, candidates)
        return ctx


def build_pipeline(
    *,
    timers: Timers | None = None,
    hint: Hint | None = None,
    mute_source: MuteSource | None = None,
) -> Pipeline:
    """evaluate → group → mute → dedupe → notify."""
    evaluate = evaluating(hint)
    return Pipeline(
        stages=(evaluate, group, mute, dedupe, notify),
        timers=timers or Timers(),
        mute_source=mute_source,
    )
