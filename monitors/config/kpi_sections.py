"""The optional tables of the configuration for the signal chain, the weekly KPIs and the
cycle counts: ``[chain]`` with its ``[[chain.hops]]``, ``[kpis]`` and ``[cycle_count]``.

Every key has a default, so a file without these tables keeps working: the chain then
has one hop from the first source of truth to every other system, undeclared (no
trigger, transform or SLA), and is measured all the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from monitors.config.messages import Finding
from monitors.config.systems import StrictModel
from monitors.config.types import Name, NonEmptyStr, Percent, PositiveInt

#: How a change travels over a hop: pushed by an event, pulled on a schedule, or
#: carried by a periodic file or bulk job.
Trigger = Literal["webhook", "poll", "batch"]
TRIGGERS: tuple[str, ...] = ("webhook", "poll", "batch")


class Hop(StrictModel):
    """One handoff of the signal chain: changes in ``upstream`` should show up in
    ``downstream``. ``trigger``, ``transform`` and ``sla_seconds`` are what the team
    declares; Driftwatch measures the rest from the level history."""

    upstream: Name
    downstream: Name
    trigger: Trigger | None = None
    transform: Annotated[str, Field(max_length=300)] = ""
    sla_seconds: PositiveInt | None = None


class Chain(StrictModel):
    """The signal chain: the declared hops, and how it is measured.

    Without ``hops`` the chain is the first source of truth → every other system.
    Hops listed here replace the default one for the same pair and add others (e.g.
    between two sources of truth, ``wms`` → ``erp``)."""

    hops: tuple[Hop, ...] = ()
    #: a change not reflected downstream after this long never arrived (unless the
    #: hop's SLA is longer: then twice the SLA)
    lost_after_seconds: PositiveInt = 86_400
    #: how often the hops are checked against their SLA (a health finding when over)
    check_seconds: PositiveInt = 3_600
    #: days of history the SLA check measures (a rolling window)
    window_days: Annotated[int, Field(strict=True, ge=1, le=90)] = 7


class Kpis(StrictModel):
    """The weekly KPIs' targets and the weekly verification decision."""

    #: the shrinkage rate (shrinkage and damaged adjustments over units moved) to stay
    #: under, in percent
    shrinkage_line_percent: Percent = 2.0
    #: remind the reports channel once when a weekly summary's verification decision
    #: is still open this many hours after the summary was posted
    verdict_reminder_hours: PositiveInt = 24
    #: adjustment reason codes counted as shrinkage
    shrinkage_reasons: tuple[NonEmptyStr, ...] = ("shrinkage", "damaged")


class CycleCount(StrictModel):
    """The weekly cycle-count list: every SKU once per ``weeks`` (a quarter by
    default), with drift-prone, hero, high-value and high-velocity SKUs first."""

    weeks: Annotated[int, Field(strict=True, ge=1, le=52)] = 13
    #: SKUs with these tags ([skus.tags]) are counted every week
    priority_tags: tuple[Name, ...] = ("hero",)
    #: SKUs with these tags are high-value: counted every week as well
    high_value_tags: tuple[Name, ...] = ()
    #: the share of SKUs that moved the most units in the last 30 days counted every
    #: week, in percent
    high_velocity_percent: Percent = 10.0
    #: at most this many SKUs are put first; the rest of the list is the rotation
    max_priority: PositiveInt = 25


def _table(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: object) -> list[tuple[int, Any]]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(enumerate(value))
    return []


def kpi_findings(
    data: Mapping[str, Any],
    systems: Sequence[str],
    systems_known: bool,
    tags: Sequence[str],
    tags_known: bool,
) -> Iterator[Finding]:
    """Cross-references of these tables: hop systems that exist, hops that are not
    loops or repeated, tags that are defined."""
    known = f"(known: {', '.join(systems)})" if systems else "(no systems are defined)"
    seen: dict[tuple[str, str], int] = {}
    for i, hop in _items(_table(data.get("chain")).get("hops")):
        hop = _table(hop)
        ends = [hop.get("upstream"), hop.get("downstream")]
        for key, name in zip(("upstream", "downstream"), ends, strict=True):
            if isinstance(name, str) and name not in systems and systems_known:
                yield ("chain", "hops", i, key), f"names unknown system `{name}` {known}"
        up, down = ends
        if isinstance(up, str) and isinstance(down, str):
            if up == down:
                yield ("chain", "hops", i, "downstream"), "a hop must join two systems"
            elif (up, down) in seen:
                first = seen[up, down]
                yield ("chain", "hops", i), f"{up} → {down} is already at chain.hops[{first}]"
            seen.setdefault((up, down), i)
    for key in ("priority_tags", "high_value_tags"):
        for i, tag in _items(_table(data.get("cycle_count")).get(key)):
            if isinstance(tag, str) and tag not in tags and tags_known:
                defined = ", ".join(tags) if tags else "none defined in [skus.tags]"
                yield ("cycle_count", key, i), f"names unknown tag `{tag}` (known: {defined})"
