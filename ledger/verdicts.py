"""Weekly verification decisions: who decided a week passed (the trend is down) or must
be escalated, when, with what note. One per week, recorded once and audited in the same
transaction: a double click, or two people deciding at once, leaves one decision, and
the second caller is told whose it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.audit import insert_audit
from ledger.errors import InvalidArgument
from ledger.records import _FromRow
from ledger.store import Store, dialect_insert
from ledger.tables import WEEK_VERDICTS
from ledger.types import (
    VERDICT_DECISIONS,
    JSONDict,
    require_choice,
    require_json,
    require_text,
    require_utc,
)

#: The longest note kept (a longer one is refused, never cut silently).
MAX_NOTE = 2000


def verdict_subject(week_start: date) -> str:
    """The audit subject of a week's decision."""
    return f"verdict:{week_start.isoformat()}"


@dataclass(frozen=True, slots=True)
class Verdict(_FromRow):
    """A week's decision. ``week_start`` is the ISO date of the week's first day."""

    id: int
    week_start: str
    decision: str
    decided_by: str
    decided_at: datetime
    note: str
    figures: JSONDict

    @property
    def week(self) -> date:
        return date.fromisoformat(self.week_start)

    @property
    def passed(self) -> bool:
        return self.decision == "pass"


class Verdicts(Store):
    """Recording and reading weekly verification decisions."""

    async def record_verdict(
        self,
        week_start: date,
        decision: str,
        decided_by: str,
        at: datetime,
        *,
        note: str = "",
        figures: Mapping[str, Any] | None = None,
    ) -> tuple[Verdict, bool]:
        """The decision for ``week_start``, and whether this call recorded it.

        A week already decided keeps its decision: the existing one comes back with
        ``False`` and nothing is written. A new one is audited as ``verdict.recorded``
        with ``decided_by`` as the actor."""
        if isinstance(week_start, datetime) or not isinstance(week_start, date):
            raise InvalidArgument("week_start must be a date")
        require_choice(decision, VERDICT_DECISIONS, "decision")
        who = require_text(decided_by, "decided_by")
        at = require_utc(at, "at")
        note = (note or "").strip()
        if len(note) > MAX_NOTE:
            raise InvalidArgument(f"the note is {len(note)} characters; at most {MAX_NOTE}")
        values = {
            "week_start": week_start.isoformat(),
            "decision": decision,
            "decided_by": who,
            "decided_at": at,
            "note": note,
            "figures": require_json(dict(figures or {}), "figures"),
        }
        insert = (
            dialect_insert(self.dialect, WEEK_VERDICTS)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["week_start"])
            .returning(*WEEK_VERDICTS.c)
        )
        async with self._write() as conn:
            row = (await conn.execute(insert)).mappings().first()
            if row is None:
                existing = await _by_week(conn, week_start)
                assert existing is not None, "a conflicting decision must exist"
                return existing, False
            verdict = Verdict.from_row(row)
            await insert_audit(
                conn,
                actor=who,
                action="verdict.recorded",
                subject=verdict_subject(week_start),
                detail={"week_start": verdict.week_start, "decision": decision, "note": note},
                at=at,
            )
            return verdict, True

    async def get_verdict(self, week_start: date) -> Verdict | None:
        """The decision for the week starting ``week_start``, or None."""
        async with self._read() as conn:
            return await _by_week(conn, week_start)

    async def list_verdicts(self, limit: int = 52) -> list[Verdict]:
        """Decisions, the most recent week first."""
        query = select(WEEK_VERDICTS).order_by(WEEK_VERDICTS.c.week_start.desc()).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Verdict.from_row(r) for r in rows]


async def _by_week(conn: AsyncConnection, week_start: date) -> Verdict | None:
    query = select(WEEK_VERDICTS).where(WEEK_VERDICTS.c.week_start == week_start.isoformat())
    row = (await conn.execute(query)).mappings().first()
    return Verdict.from_row(row) if row is not None else None
