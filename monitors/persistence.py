"""Persistence (debounce): a drift opens an incident only once it has lasted.

In-flight orders make the storefront and the warehouse disagree for a moment on every
sale; paging someone for that is noise. So a drift is *confirmed* only when it has been
seen in ``diffs`` consecutive diffs and, if ``seconds`` is set, has lasted that long
since it was first seen (the configuration's ``thresholds.persistence_diffs`` and
``persistence_seconds``: "…and, if set, must have lasted at least this many seconds").
A ``large`` drift, and a drift of a kind that no order in flight explains (``stale``,
``untracked``, ``oversell_policy``), is confirmed at once. A drift that is not seen
again starts over. Confirmed drifts stay confirmed on every later diff in which they are
seen, so the caller keeps touching their open incidents.

:func:`debounce` is pure: (previous state, current drifts, now) → (new state, confirmed
drifts). The state is a small mapping fingerprint → :class:`Seen` that the caller keeps
(in memory, or stored with :func:`state_to_json` / :func:`state_from_json`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitors.config import Config
from monitors.drift import OVERSELL_POLICY, STALE, UNTRACKED, Drift

#: Kinds confirmed at once: states that in-flight orders do not explain.
IMMEDIATE_KINDS: frozenset[str] = frozenset({STALE, UNTRACKED, OVERSELL_POLICY})


@dataclass(frozen=True)
class Persistence:
    """How long a drift must last before it is confirmed."""

    diffs: int = 2
    seconds: float | None = None
    immediate_kinds: frozenset[str] = field(default=IMMEDIATE_KINDS)

    @classmethod
    def from_config(cls, config: Config) -> Persistence:
        t = config.thresholds
        seconds = None if t.persistence_seconds is None else float(t.persistence_seconds)
        return cls(diffs=t.persistence_diffs, seconds=seconds)


@dataclass(frozen=True)
class Seen:
    """One drift fingerprint's run of consecutive sightings."""

    first_seen: datetime
    count: int
    sku: str
    location: str
    system: str

    def to_json(self) -> dict[str, Any]:
        return {
            "first_seen": self.first_seen.isoformat(),
            "count": self.count,
            "sku": self.sku,
            "location": self.location,
            "system": self.system,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Seen:
        return cls(
            first_seen=datetime.fromisoformat(str(data["first_seen"])),
            count=int(data["count"]),
            sku=str(data["sku"]),
            location=str(data["location"]),
            system=str(data["system"]),
        )


PersistenceState = Mapping[str, Seen]


def confirmed(seen: Seen, drift: Drift, now: datetime, rules: Persistence) -> bool:
    """Whether ``drift``, seen as ``seen`` (this sighting counted), is confirmed."""
    if drift.large or drift.kind in rules.immediate_kinds:
        return True
    if seen.count < rules.diffs:
        return False
    return rules.seconds is None or (now - seen.first_seen).total_seconds() >= rules.seconds


def debounce(
    state: PersistenceState,
    drifts: Iterable[Drift],
    now: datetime,
    rules: Persistence,
    *,
    covered: Callable[[Seen], bool] | None = None,
) -> tuple[dict[str, Seen], list[Drift]]:
    """The new state and the confirmed drifts, in the order given.

    A fingerprint in ``state`` but not among ``drifts`` is dropped (it starts over if
    it comes back) — unless ``covered`` says this diff could not have seen it (a
    targeted diff of other SKUs, a system that could not be read): then it is kept as
    it was. See :func:`scope`.
    """
    new: dict[str, Seen] = {}
    out: list[Drift] = []
    for drift in drifts:
        key = drift.fingerprint
        if key in new:
            continue  # the same drift twice in one diff counts once
        before = state.get(key)
        first, count = (now, 1) if before is None else (before.first_seen, before.count + 1)
        seen = Seen(first, count, drift.sku, drift.location, drift.system)
        new[key] = seen
        if confirmed(seen, drift, now, rules):
            out.append(drift)
    if covered is not None:
        for key, seen in state.items():
            if key not in new and not covered(seen):
                new[key] = seen
    return new, out


def scope(
    skus: Collection[str] | None = None, systems: Collection[str] | None = None
) -> Callable[[Seen], bool]:
    """``covered`` for :func:`debounce`: this diff looked at ``skus`` (None: all) and
    compared ``systems`` (None: all). Leave out a system that could not be read, and
    when the source of truth could not be read, pass ``systems=()`` to keep everything."""

    def covered(seen: Seen) -> bool:
        return (skus is None or seen.sku in skus) and (systems is None or seen.system in systems)

    return covered


def state_to_json(state: PersistenceState) -> dict[str, dict[str, Any]]:
    return {key: seen.to_json() for key, seen in state.items()}


def state_from_json(data: Mapping[str, Mapping[str, Any]]) -> dict[str, Seen]:
    return {key: Seen.from_json(value) for key, value in data.items()}
