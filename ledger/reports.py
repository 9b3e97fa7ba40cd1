"""Report queries: what happened in a period ``[start, end)``, counted in the database.

Every query is one ``GROUP BY`` (or one aggregate) over an indexed time column, so a
weekly report reads a few dozen rows whatever the size of the tables. Periods are
half-open: a row at ``start`` counts, a row at ``end`` belongs to the next period.

Which time places a row in a period:

- incidents *opened* by ``opened_at``, *resolved* by ``resolved_at``, *acknowledged* by
  ``acknowledged_at`` (an incident reopened since keeps only its latest
  acknowledgement and resolution, the audit log keeps the others);
- resyncs by ``created_at`` (the request), with their current status;
- adjustments by ``created_at``; the counts take only those whose write ``applied``
  (an adjustment the source of truth refused, or that kept meeting a newer count, changed
  nothing and is not counted).

Mismatch rate by location is an approximation, documented on
:meth:`Reports.mismatch_by_location`.

``systems`` (every query of the weekly summary takes it) narrows a report to one
store's systems: incidents, resyncs and adjustments whose ``system`` is one of them, and
the levels those systems hold. An incident about no single system (a storm grouped over
several, a health incident of the deployment) is only in the report of every system.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.sql.elements import KeyedColumnElement

from ledger.errors import InvalidArgument
from ledger.records import Adjustment
from ledger.store import Store
from ledger.tables import ADJUSTMENTS, INCIDENTS, LEVEL_CURRENT, RESYNCS
from ledger.types import SYSTEM_ACTOR, require_utc

IncidentField = Literal["kind", "location", "root_cause"]


@dataclass(frozen=True, slots=True)
class IncidentCount:
    """How many incidents of one kind, at one location, with one root cause."""

    kind: str
    location: str | None
    root_cause: str | None
    count: int


@dataclass(frozen=True, slots=True)
class IncidentStats:
    """Incidents opened and resolved in a period, by kind × location × root cause.

    ``resolved_by_person``: resolutions in the period by someone other than Driftwatch.
    """

    opened: tuple[IncidentCount, ...]
    resolved: tuple[IncidentCount, ...]
    resolved_by_person: int

    @property
    def opened_total(self) -> int:
        return sum(c.count for c in self.opened)

    @property
    def resolved_total(self) -> int:
        return sum(c.count for c in self.resolved)

    def opened_by(self, field: IncidentField) -> dict[str | None, int]:
        """Opened incidents tallied by ``field``, largest first."""
        return _tally(self.opened, field)

    def resolved_by(self, field: IncidentField) -> dict[str | None, int]:
        """Resolved incidents tallied by ``field``, largest first."""
        return _tally(self.resolved, field)

    def opened_of(self, kinds: Sequence[str]) -> int:
        """How many opened incidents have one of ``kinds``."""
        return sum(c.count for c in self.opened if c.kind in kinds)


@dataclass(frozen=True, slots=True)
class ResponseTimes:
    """Mean time to acknowledge (over incidents acknowledged in the period) and to resolve
    (over incidents resolved in the period), both measured from ``opened_at``."""

    acknowledged: int
    mtta: timedelta | None
    resolved: int
    mttr: timedelta | None


@dataclass(frozen=True, slots=True)
class ResyncCount:
    """Resyncs with one status, one requester, linked to an incident or not."""

    status: str
    requested_by: str
    linked: bool
    count: int

    @property
    def automatic(self) -> bool:
        """Requested by Driftwatch itself rather than a person."""
        return self.requested_by == SYSTEM_ACTOR


@dataclass(frozen=True, slots=True)
class ResyncStats:
    """Resyncs requested in a period, by status and requester."""

    counts: tuple[ResyncCount, ...]

    def count(
        self,
        status: str | None = None,
        *,
        automatic: bool | None = None,
        linked: bool | None = None,
    ) -> int:
        """How many with ``status``, automatic or not, linked to an incident or not (None:
        any)."""
        return sum(
            c.count
            for c in self.counts
            if (status is None or c.status == status)
            and (automatic is None or c.automatic == automatic)
            and (linked is None or c.linked == linked)
        )


@dataclass(frozen=True, slots=True)
class AdjustmentCount:
    operator: str
    reason_code: str
    count: int


@dataclass(frozen=True, slots=True)
class SkuDrift:
    """A SKU's incidents opened in a period, and at how many locations."""

    sku: str
    incidents: int
    locations: int


@dataclass(frozen=True, slots=True)
class LocationMismatch:
    """At one location: SKUs compared (known there now) and SKUs that drifted."""

    location: str
    compared: int
    drifting: int

    @property
    def rate(self) -> float | None:
        """``drifting / compared``; None when nothing is compared there."""
        return self.drifting / self.compared if self.compared else None


class Reports(Store):
    """Aggregates over a period, for the weekly summary and the daily adjustment report."""

    async def incident_stats(
        self, start: datetime, end: datetime, *, systems: Collection[str] | None = None
    ) -> IncidentStats:
        """Incidents opened and resolved in ``[start, end)`` (about ``systems``, if given)."""
        start, end = _period(start, end)
        opened = await self._incident_counts(INCIDENTS.c.opened_at, start, end, systems)
        resolved = await self._incident_counts(INCIDENTS.c.resolved_at, start, end, systems)
        query = select(func.count()).where(
            _within(INCIDENTS.c.resolved_at, start, end),
            INCIDENTS.c.resolved_by != SYSTEM_ACTOR,
            *_of(INCIDENTS.c.system, systems),
        )
        async with self._read() as conn:
            by_person = int((await conn.execute(query)).scalar_one())
        return IncidentStats(opened, resolved, by_person)

    async def _incident_counts(
        self,
        column: KeyedColumnElement[Any],
        start: datetime,
        end: datetime,
        systems: Collection[str] | None,
    ) -> tuple[IncidentCount, ...]:
        c = INCIDENTS.c
        query = (
            select(c.kind, c.location, c.root_cause, func.count().label("n"))
            .where(_within(column, start, end), *_of(c.system, systems))
            .group_by(c.kind, c.location, c.root_cause)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        counts = [IncidentCount(r.kind, r.location, r.root_cause, int(r.n)) for r in rows]
        counts.sort(key=lambda x: (x.kind, x.location or "", x.root_cause or ""))
        return tuple(counts)

    async def response_times(
        self, start: datetime, end: datetime, *, systems: Collection[str] | None = None
    ) -> ResponseTimes:
        """MTTA over incidents acknowledged in ``[start, end)``, MTTR over those resolved
        (about ``systems``, if given)."""
        start, end = _period(start, end)
        c = INCIDENTS.c
        ack = self._mean_seconds(c.opened_at, c.acknowledged_at)
        res = self._mean_seconds(c.opened_at, c.resolved_at)
        mine = _of(c.system, systems)
        async with self._read() as conn:
            acked = (
                await conn.execute(
                    select(func.count(), ack).where(_within(c.acknowledged_at, start, end), *mine)
                )
            ).one()
            resolved = (
                await conn.execute(
                    select(func.count(), res).where(_within(c.resolved_at, start, end), *mine)
                )
            ).one()
        return ResponseTimes(
            acknowledged=int(acked[0]),
            mtta=_seconds(acked[1]),
            resolved=int(resolved[0]),
            mttr=_seconds(resolved[1]),
        )

    def _mean_seconds(
        self, since: KeyedColumnElement[Any], until: KeyedColumnElement[Any]
    ) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return func.avg(func.extract("epoch", until - since))
        # SQLite keeps UTC wall times as text; julianday() reads them (in days).
        return func.avg((func.julianday(until) - func.julianday(since)) * literal(86400.0))

    async def resync_stats(
        self, start: datetime, end: datetime, *, systems: Collection[str] | None = None
    ) -> ResyncStats:
        """Resyncs requested in ``[start, end)`` (of ``systems``' levels, if given), by
        current status, requester and whether they are linked to an incident."""
        start, end = _period(start, end)
        c = RESYNCS.c
        linked = case((c.incident_id.is_(None), literal(0)), else_=literal(1)).label("linked")
        query = (
            select(c.status, c.requested_by, linked, func.count().label("n"))
            .where(_within(c.created_at, start, end), *_of(c.system, systems))
            .group_by(c.status, c.requested_by, linked)
            .order_by(c.status, c.requested_by, linked)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return ResyncStats(
            tuple(ResyncCount(r.status, r.requested_by, bool(r.linked), int(r.n)) for r in rows)
        )

    async def adjustment_counts(
        self,
        start: datetime,
        end: datetime,
        status: str = "applied",
        *,
        systems: Collection[str] | None = None,
    ) -> list[AdjustmentCount]:
        """Adjustments recorded in ``[start, end)`` (in ``systems``, if given) that ended
        ``status`` (those that applied, by default) by operator and reason code, most
        first."""
        start, end = _period(start, end)
        c = ADJUSTMENTS.c
        n = func.count().label("n")
        query = (
            select(c.operator, c.reason_code, n)
            .where(_within(c.created_at, start, end), c.status == status, *_of(c.system, systems))
            .group_by(c.operator, c.reason_code)
            .order_by(n.desc(), c.operator, c.reason_code)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [AdjustmentCount(r.operator, r.reason_code, int(r.n)) for r in rows]

    async def adjustments_between(
        self,
        start: datetime,
        end: datetime,
        limit: int = 10_000,
        *,
        status: str | None = "applied",
    ) -> list[Adjustment]:
        """The adjustments recorded in ``[start, end)`` that ended ``status`` (None: any),
        oldest first (at most ``limit``)."""
        start, end = _period(start, end)
        c = ADJUSTMENTS.c
        query = (
            select(ADJUSTMENTS)
            .where(
                _within(c.created_at, start, end),
                *(() if status is None else (c.status == status,)),
            )
            .order_by(c.created_at, c.id)
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Adjustment.from_row(row) for row in rows]

    async def top_drifting_skus(
        self,
        start: datetime,
        end: datetime,
        limit: int = 10,
        kinds: Sequence[str] | None = None,
        *,
        systems: Collection[str] | None = None,
    ) -> list[SkuDrift]:
        """The SKUs with the most incidents opened in ``[start, end)`` (of ``kinds``, about
        ``systems``, if given), most first, then by SKU."""
        start, end = _period(start, end)
        c = INCIDENTS.c
        n = func.count().label("incidents")
        query = (
            select(c.sku, n, func.count(func.distinct(c.location)).label("locations"))
            .where(_within(c.opened_at, start, end), c.sku.is_not(None), *_of(c.system, systems))
            .group_by(c.sku)
            .order_by(n.desc(), c.sku)
            .limit(limit)
        )
        if kinds is not None:
            query = query.where(c.kind.in_(list(kinds)))
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [SkuDrift(r.sku, int(r.incidents), int(r.locations)) for r in rows]

    async def mismatch_by_location(
        self,
        start: datetime,
        end: datetime,
        kinds: Sequence[str] | None = None,
        *,
        systems: Collection[str] | None = None,
    ) -> list[LocationMismatch]:
        """Per location, SKUs compared and SKUs in drift, in location order.

        An approximation, since the ledger keeps levels as changes only and does not store
        each diff run: ``compared`` is the number of distinct SKUs with a current level at
        the location (in any system) *now*, not during the period; ``drifting`` is the
        number of distinct SKUs with an incident (of ``kinds``, if given) opened at the
        location during the period. An incident opened before the period and still open
        is not counted; a SKU that drifted twice counts once. With ``systems``: the SKUs
        those systems hold at the location, and their incidents.
        """
        start, end = _period(start, end)
        lc, inc = LEVEL_CURRENT.c, INCIDENTS.c
        compared_q = (
            select(lc.location, func.count(func.distinct(lc.sku)).label("n"))
            .where(*_of(lc.system, systems))
            .group_by(lc.location)
        )
        drifting_q = (
            select(inc.location, func.count(func.distinct(inc.sku)).label("n"))
            .where(
                _within(inc.opened_at, start, end),
                inc.sku.is_not(None),
                inc.location.is_not(None),
                *_of(inc.system, systems),
            )
            .group_by(inc.location)
        )
        if kinds is not None:
            drifting_q = drifting_q.where(inc.kind.in_(list(kinds)))
        async with self._read() as conn:
            compared = {r.location: int(r.n) for r in (await conn.execute(compared_q)).all()}
            drifting = {r.location: int(r.n) for r in (await conn.execute(drifting_q)).all()}
        return [
            LocationMismatch(loc, compared.get(loc, 0), drifting.get(loc, 0))
            for loc in sorted(compared.keys() | drifting.keys())
        ]

    async def incidents_opened_by_bucket(
        self, boundaries: Sequence[datetime], *, systems: Collection[str] | None = None
    ) -> dict[tuple[int, str], int]:
        """Incidents opened in each ``[boundaries[i], boundaries[i+1])`` (about
        ``systems``, if given), by kind: ``(i, kind) → count``. Bucketing happens in the
        database (a CASE on the boundaries), so days in any time zone cost one query."""
        edges = [require_utc(b, "boundary") for b in boundaries]
        if len(edges) < 2 or any(a >= b for a, b in pairwise(edges)):
            raise InvalidArgument("boundaries must be at least two increasing datetimes")
        c = INCIDENTS.c
        bucket = case(
            *((c.opened_at < edge, literal(i)) for i, edge in enumerate(edges[1:])),
        ).label("bucket")
        query = (
            select(bucket, c.kind, func.count().label("n"))
            .where(_within(c.opened_at, edges[0], edges[-1]), *_of(c.system, systems))
            .group_by(bucket, c.kind)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return {(int(r.bucket), r.kind): int(r.n) for r in rows}


def _period(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = require_utc(start, "start"), require_utc(end, "end")
    if end <= start:
        raise InvalidArgument(f"the period must end after it starts ({start} .. {end})")
    return start, end


def _within(column: KeyedColumnElement[Any], start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


def _of(
    column: KeyedColumnElement[Any], systems: Collection[str] | None
) -> tuple[ColumnElement[bool], ...]:
    """The condition that ``column`` names one of ``systems`` (None: no condition)."""
    if systems is None:
        return ()
    return (column.in_(sorted(systems)),)


def _seconds(value: Any) -> timedelta | None:
    if value is None:
        return None
    return timedelta(seconds=round(float(value), 3))


def _tally(counts: Sequence[IncidentCount], field: IncidentField) -> dict[str | None, int]:
    tally: Counter[str | None] = Counter()
    for c in counts:
        tally[getattr(c, field)] += c.count
    return dict(sorted(tally.items(), key=lambda kv: (-kv[1], kv[0] or "")))


__all__ = [
    "AdjustmentCount",
    "IncidentCount",
    "IncidentStats",
    "LocationMismatch",
    "Reports",
    "ResponseTimes",
    "ResyncCount",
    "ResyncStats",
    "SkuDrift",
]
