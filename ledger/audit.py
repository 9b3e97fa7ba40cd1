"""The audit log: append and read, nothing else.

There is deliberately no way to change or delete an entry from Python; the migration adds
database triggers that refuse UPDATE and DELETE on ``audit_log`` as well. Other parts of
the ledger write their audit entries with :func:`insert_audit` inside their own
transaction, so a change and its audit entry land together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.records import AuditEntry
from ledger.store import Store
from ledger.tables import AUDIT_LOG
from ledger.types import require_json, require_text, require_utc


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
    row = (
        (
            await conn.execute(
                insert(AUDIT_LOG)
                .values(
                    at=require_utc(at, "at"),
                    actor=require_text(actor, "actor"),
                    action=require_text(action, "action"),
                    subject=require_text(subject, "subject"),
                    detail=require_json(dict(detail or {}), "detail"),
                )
                .returning(*AUDIT_LOG.c)
            )
        )
        .mappings()
        .one()
    )
    return AuditEntry.from_row(row)


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
