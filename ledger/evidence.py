"""Evidence queries: the facts behind root-cause hints, a few rows per diff.

The monitors explain a drift from what the ledger already holds: webhook deliveries
(which inventory levels were announced, which arrived out of order, which orders and
refunds came in), the resyncs applied to a system, and the history of the truth's
levels. Each method is one query over an indexed column (or one per chunk of
:data:`SKU_CHUNK` SKUs / resource keys, when a filter is given), so a diff pays a handful
of queries whatever the number of SKUs it explains.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, literal, select, union_all

from ledger import timeline
from ledger.store import Store
from ledger.tables import RESYNCS
from ledger.tables import WEBHOOK_DELIVERIES as WD
from ledger.types import require_text, require_utc

#: SKUs or resource keys per query when a filter is given.
SKU_CHUNK = 500
#: Outcomes of deliveries that were accepted (signed, for us, of a handled topic).
ACCEPTED_OUTCOMES: tuple[str, ...] = ("received", "processed", "stale", "duplicate", "error")


@dataclass(frozen=True, slots=True)
class DeliveryFact:
    """One accepted webhook delivery, as evidence: what, about which resource, when,
    and what became of it. ``detail`` is the recorded summary (only when asked for)."""

    topic: str | None
    resource_key: str | None
    outcome: str
    triggered_at: datetime | None
    received_at: datetime
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One change of one state of one SKU at one location in one system."""

    sku: str
    location: str
    state: str
    quantity: int
    observed_at: datetime


class EvidenceQueries(Store):
    """Reading the facts root-cause hints are made of."""

    async def recent_deliveries(
        self,
        system: str,
        since: datetime,
        *,
        topics: Collection[str] | None = None,
        resource_keys: Collection[str] | None = None,
        with_detail: bool = False,
    ) -> list[DeliveryFact]:
        """Accepted deliveries for ``system`` received at or after ``since``, oldest
        first; only ``topics`` and ``resource_keys`` when given (an empty collection
        matches nothing). ``detail`` is read only ``with_detail``."""
        system = require_text(system, "system")
        since = require_utc(since, "since")
        columns = [WD.c.topic, WD.c.resource_key, WD.c.outcome, WD.c.triggered_at]
        columns += [WD.c.received_at, WD.c.id]
        if with_detail:
            columns.append(WD.c.detail)
        where: list[ColumnElement[bool]] = [
            WD.c.system == system,
            WD.c.received_at >= since,
            WD.c.outcome.in_(ACCEPTED_OUTCOMES),
        ]
        if topics is not None:
            where.append(WD.c.topic.in_(sorted(topics)))
        query = select(*columns).where(*where)
        rows: list[Any] = []
        async with self._read() as conn:
            for chunk in _chunks(resource_keys):
                chunked = query if chunk is None else query.where(WD.c.resource_key.in_(chunk))
                rows.extend(await conn.execute(chunked))
        rows.sort(key=lambda r: (r.received_at, r.id))
        return [
            DeliveryFact(
                topic=r.topic,
                resource_key=r.resource_key,
                outcome=r.outcome,
                triggered_at=r.triggered_at,
                received_at=r.received_at,
                detail=(r.detail or {}) if with_detail else {},
            )
            for r in rows
        ]

    async def delivery_counts(
        self, system: str, since: datetime, *, topic: str | None = None
    ) -> dict[str, int]:
        """Deliveries for ``system`` received at or after ``since`` (of ``topic`` when
        given), counted by outcome, in one ``GROUP BY``."""
        since = require_utc(since, "since")
        where = [WD.c.system == require_text(system, "system"), WD.c.received_at >= since]
        if topic is not None:
            where.append(WD.c.topic == topic)
        query = select(WD.c.outcome, func.count()).where(*where).group_by(WD.c.outcome)
        async with self._read() as conn:
            return {outcome: count for outcome, count in await conn.execute(query)}

    async def topics_seen(
        self, system: str, since: datetime, *, topics: Collection[str] | None = None
    ) -> set[str]:
        """The topics of accepted deliveries for ``system`` received at or after
        ``since``: which webhooks are flowing at all. With ``topics``, only those are
        asked about, each with one EXISTS probe of the (system, topic, received_at) index (in
        one statement) that stops at the first accepted delivery, instead of a scan of
        every delivery in the window."""
        since = require_utc(since, "since")
        system = require_text(system, "system")
        recent = (WD.c.system == system, WD.c.received_at >= since)
        accepted = WD.c.outcome.in_(ACCEPTED_OUTCOMES)
        if topics is None:
            query = select(WD.c.topic).where(*recent, accepted, WD.c.topic.is_not(None))
            async with self._read() as conn:
                return set((await conn.execute(query.distinct())).scalars())
        if not topics:
            return set()
        probes = [
            select(literal(topic).label("topic")).where(
                exists().where(*recent, WD.c.topic == topic, accepted)
            )
            for topic in sorted(topics)
        ]
        async with self._read() as conn:
            return set((await conn.execute(union_all(*probes))).scalars())

    async def last_applied_resyncs(
        self, skus: Collection[str] | None = None
    ) -> dict[tuple[str, str, str], datetime]:
        """(system, sku, location) → when a resync to it was last applied; only for
        ``skus`` when given."""
        r = RESYNCS.c
        query = (
            select(r.system, r.sku, r.location, func.max(r.updated_at))
            .where(r.status == "applied")
            .group_by(r.system, r.sku, r.location)
        )
        out: dict[tuple[str, str, str], datetime] = {}
        async with self._read() as conn:
            for chunk in _chunks(skus):
                chunked = query if chunk is None else query.where(r.sku.in_(chunk))
                for system, sku, location, last in await conn.execute(chunked):
                    out[(system, sku, location)] = last
        return out

    async def level_changes_since(
        self, system: str, skus: Collection[str], states: Sequence[str], since: datetime
    ) -> list[HistoryPoint]:
        """The changes of ``states`` of ``skus`` in ``system``: each key's last change
        before ``since`` (so every series starts from a known value), then every change
        at or after it; ordered by ``observed_at``."""
        since = require_utc(since, "since")
        for state in states:
            require_text(state, "state")
        if not skus or not states:
            return []
        points: list[HistoryPoint] = []
        async with self._read() as conn:
            for chunk in _chunks(skus):
                assert chunk is not None
                query = _changes_query(system, chunk, states, since)
                points.extend(HistoryPoint(*row) for row in await conn.execute(query))
        points.sort(key=lambda p: (p.observed_at, p.sku, p.location, p.state))
        return points


def _changes_query(
    system: str, skus: Sequence[str], states: Sequence[str], since: datetime
) -> Select[Any]:
    both = timeline.from_last_before(
        lambda t: (t.system == system, t.sku.in_(skus), t.state.in_(list(states))),
        since,
        key=("sku", "location", "state"),
    ).subquery()
    # (ordered: two changes of a key at one time keep the order they were recorded in)
    return select(
        both.c.sku, both.c.location, both.c.state, both.c.quantity, both.c.observed_at
    ).order_by(*timeline.in_order(both))


def _chunks(values: Collection[str] | None) -> list[list[str] | None]:
    """``[None]`` (no filter) for None, else the sorted values in chunks (none for an
    empty collection: it matches nothing)."""
    if values is None:
        return [None]
    ordered = sorted(set(values))
    return [ordered[i : i + SKU_CHUNK] for i in range(0, len(ordered), SKU_CHUNK)]
