"""Queries for the weekly KPIs, the signal chain and the reliability packet: when the
level history starts, the history of several systems over a window, captured weeks,
and a message's outbox entry by its dedupe key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select

from ledger import timeline
from ledger.errors import InvalidArgument
from ledger.records import LevelRow, OutboxEntry, _FromRow
from ledger.store import Store, dialect_insert
from ledger.tables import KPI_WEEKS, LEVEL_CURRENT, LEVEL_HISTORY, OUTBOX
from ledger.types import JSONDict, require_json, require_utc


@dataclass(frozen=True, slots=True)
class KpiWeek(_FromRow):
    """A week's KPIs as first captured (``week_start``: the ISO date of its first day)."""

    week_start: str
    figures: JSONDict
    captured_at: datetime

    @property
    def week(self) -> date:
        return date.fromisoformat(self.week_start)


class KpiQueries(Store):
    """Reads (and the one capture) behind the KPIs, the chain and the packet."""

    async def first_level_observation(self) -> datetime | None:
        """When the level history starts: the oldest change recorded, or None.

        Both tables' oldest (a key's first change is in current until it changes): one
        pass over ``level_current``, about a second at 100,000 SKUs, for a weekly report."""
        async with self._read() as conn:
            found = [
                (await conn.execute(select(func.min(column)))).scalar_one_or_none()
                for column in (LEVEL_HISTORY.c.observed_at, LEVEL_CURRENT.c.since)
            ]
        values = [require_utc(value) for value in found if value is not None]
        return min(values) if values else None

    async def level_history_window(
        self, systems: Sequence[str], start: datetime, end: datetime
    ) -> list[LevelRow]:
        """The changes of ``systems`` from ``start`` up to and including ``end``, oldest
        first, each key's last change before ``start`` leading (so every series starts
        from a known value).

        Keys are (system, SKU, location, state); rows carry no ``changed_at``."""
        start, end = require_utc(start, "start"), require_utc(end, "end")
        if end <= start:
            raise InvalidArgument("the window must end after it starts")
        if not systems:
            return []
        wanted = sorted(set(systems))
        both = timeline.from_last_before(
            lambda t: (t.system.in_(wanted),),
            start,
            end=end,
            key=("system", "sku", "location", "state"),
        ).subquery()
        query = select(both).order_by(*timeline.in_order(both))
        async with self._read() as conn:
            result = await conn.execute(query)
            return [LevelRow.from_row({**r, "changed_at": None}) for r in result.mappings()]

    async def capture_kpi_week(
        self, week_start: date, figures: Mapping[str, Any], at: datetime
    ) -> tuple[KpiWeek, bool]:
        """Keep a week's KPIs; a week captured before keeps its first figures (returned
        with ``False``)."""
        insert = (
            dialect_insert(self.dialect, KPI_WEEKS)
            .values(
                week_start=week_start.isoformat(),
                figures=require_json(dict(figures), "figures"),
                captured_at=require_utc(at, "at"),
            )
            .on_conflict_do_nothing(index_elements=["week_start"])
            .returning(*KPI_WEEKS.c)
        )
        async with self._write() as conn:
            row = (await conn.execute(insert)).mappings().first()
            if row is not None:
                return KpiWeek.from_row(row), True
            query = select(KPI_WEEKS).where(KPI_WEEKS.c.week_start == week_start.isoformat())
            existing = (await conn.execute(query)).mappings().one()
            return KpiWeek.from_row(existing), False

    async def kpi_week(self, week_start: date) -> KpiWeek | None:
        """The captured KPIs of the week starting ``week_start``, or None."""
        query = select(KPI_WEEKS).where(KPI_WEEKS.c.week_start == week_start.isoformat())
        async with self._read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return KpiWeek.from_row(row) if row is not None else None

    async def list_kpi_weeks(self, limit: int = 52) -> list[KpiWeek]:
        """Captured weeks, the most recent first."""
        query = select(KPI_WEEKS).order_by(KPI_WEEKS.c.week_start.desc()).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [KpiWeek.from_row(r) for r in rows]

    async def outbox_entry_by_key(self, dedupe_key: str) -> OutboxEntry | None:
        """The outbox entry queued under ``dedupe_key`` (e.g. a weekly summary), or None."""
        query = select(OUTBOX).where(OUTBOX.c.dedupe_key == dedupe_key)
        async with self._read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return OutboxEntry.from_row(row) if row is not None else None
