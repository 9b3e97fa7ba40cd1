"""The audit log: append and read, nothing else.

There is deliberately no way to change or delete an entry from Python; the migration adds
database triggers that refuse UPDATE and DELETE on ``audit_log`` as well. Other parts of
the ledger write their audit entries with :func:`insert_audit` inside their own
transaction, so a change and its audit entry land together or not at all.

Entries often carry what people typed or what an outside system sent: text and detail
are made storable on every backend first (:mod:`ledger.storable`: a NUL, a lone
surrogate or a NaN no longer fails the transaction), and :meth:`AuditLog.append_audit_each`
writes a group of unrelated entries so that one the database refuses fails alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.errors import DatabaseUnavailable, InvalidArgument
from ledger.records import AuditEntry
from ledger.storable import refusal_reason, storable_json, storable_text
from ledger.store import Store
from ledger.tables import AUDIT_LOG
from ledger.types import require_json, require_text, require_utc

log = logging.getLogger(__name__)

Entry = tuple[str, str, str, Mapping[str, Any] | None, datetime]


async def insert_audit(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    subject: str,
    detail: Mapping[str, Any] | None,
    at: datetime,
) -> AuditEntry:
    """Append one entry within the caller's transaction."""
    values = _audit_values(actor, action, subject, detail, at)
    row = await conn.execute(insert(AUDIT_LOG).values(**values).returning(*AUDIT_LOG.c))
    return AuditEntry.from_row(row.mappings().one())


def _audit_values(
    actor: str, action: str, subject: str, detail: Mapping[str, Any] | None, at: datetime
) -> dict[str, Any]:
    """The row of one entry, checked and made storable."""
    return {
        "at": require_utc(at, "at"),
        "actor": require_text(_text(actor), "actor"),
        "action": require_text(_text(action), "action"),
        "subject": require_text(_text(subject), "subject"),
        "detail": require_json(storable_json(dict(detail or {})), "detail"),
    }


def _text(value: Any) -> Any:
    return storable_text(value) if isinstance(value, str) else value


class AuditLog(Store):
    """Reading and appending the audit log."""

    async def append_audit(
        self,
        actor: str,
        action: str,
        subject: str,
        detail: Mapping[str, Any] | None,
        at: datetime,
    ) -> AuditEntry:
        """Append an entry. ``actor`` is a Slack user id or ``"driftwatch"``."""
        async with self._write() as conn:
            return await insert_audit(
                conn, actor=actor, action=action, subject=subject, detail=detail, at=at
            )

    async def append_audit_many(
        self, entries: Sequence[tuple[str, str, str, Mapping[str, Any] | None, datetime]]
    ) -> list[AuditEntry]:
        """Append ``(actor, action, subject, detail, at)`` entries in one transaction
        (all or none), in order."""
        async with self._write() as conn:
            return [
                await insert_audit(
                    conn, actor=actor, action=action, subject=subject, detail=detail, at=at
                )
                for actor, action, subject, detail, at in entries
            ]

    async def append_audit_each(self, entries: Sequence[Entry]) -> list[AuditEntry | Exception]:
        """Append unrelated ``(actor, action, subject, detail, at)`` entries (say, one
        per Slack request) in one transaction where possible, yet each on its own: the
        result per entry, in order, is the entry written or the error that refused it
        (:class:`InvalidArgument` for an entry the ledger refuses; the database's error
        for one it refuses even with the detail replaced by the reason). Only
        :class:`DatabaseUnavailable` is raised: then nothing was written."""
        results = await self._append_each(entries, returning=True)
        return [InvalidArgument("not written") if isinstance(r, bool) else r for r in results]

    async def write_audit_each(self, entries: Sequence[Entry]) -> list[Exception | None]:
        """:meth:`append_audit_each` for a caller that needs only each entry's outcome:
        None where it was written, else the error. The entries go in one executemany
        with no RETURNING, which costs a fraction of reading every row back (the Slack
        middleware audits every request before its ack)."""
        results = await self._append_each(entries, returning=False)
        return [r if isinstance(r, Exception) else None for r in results]

    async def _append_each(
        self, entries: Sequence[Entry], *, returning: bool
    ) -> list[AuditEntry | Exception | bool]:
        """Per entry: the entry written (``returning``) or True, or the error."""
        results: list[AuditEntry | Exception | bool] = []
        values: dict[int, dict[str, Any]] = {}
        for index, (actor, action, subject, detail, at) in enumerate(entries):
            try:
                values[index] = _audit_values(actor, action, subject, detail, at)
                results.append(False)
            except InvalidArgument as exc:
                results.append(exc)
        if values:
            try:
                async with self._write() as conn:
                    if returning:
                        stmt = insert(AUDIT_LOG).returning(
                            *AUDIT_LOG.c, sort_by_parameter_order=True
                        )
                        rows = (await conn.execute(stmt, list(values.values()))).mappings().all()
                        for index, row in zip(values, rows, strict=True):
                            results[index] = AuditEntry.from_row(row)
                    else:
                        await conn.execute(insert(AUDIT_LOG), list(values.values()))
                        for index in values:
                            results[index] = True
            except DatabaseUnavailable:
                raise
            except Exception as exc:  # a value the database refused: find it, keep the rest
                log.warning(
                    "appending %d audit entries failed (%s); each on its own",
                    len(values),
                    refusal_reason(exc),
                )
                async with self._write() as conn:
                    for index, value in values.items():
                        results[index] = await _append_isolated(conn, value)
        return results

    async def list_audit(
        self,
        subject: str | None = None,
        limit: int = 100,
        *,
        since: datetime | None = None,
    ) -> list[AuditEntry]:
        """Entries, newest first; only ``subject``'s and only from ``since`` when given."""
        query = select(AUDIT_LOG).order_by(AUDIT_LOG.c.id.desc()).limit(limit)
        if subject is not None:
            query = query.where(AUDIT_LOG.c.subject == subject)
        if since is not None:
            query = query.where(AUDIT_LOG.c.at >= require_utc(since, "since"))
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [AuditEntry.from_row(row) for row in rows]


async def _append_isolated(conn: AsyncConnection, value: dict[str, Any]) -> AuditEntry | Exception:
    """Write one entry in a savepoint; if the database refuses it, write it with its
    detail replaced by the reason; the error if that is refused too."""
    stmt = insert(AUDIT_LOG).returning(*AUDIT_LOG.c)
    try:
        async with conn.begin_nested():
            return AuditEntry.from_row((await conn.execute(stmt, value)).mappings().one())
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        fallback = {**value, "detail": {"unstorable": refusal_reason(exc)}}
    try:
        async with conn.begin_nested():
            return AuditEntry.from_row((await conn.execute(stmt, fallback)).mappings().one())
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        return exc
