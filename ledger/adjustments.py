"""Manual adjustments: every change an operator makes by hand, with its reason code,
recorded once per idempotency key and audited in the same transaction; then settled,
once, as ``applied`` or ``failed`` with the levels before and after (and audited as
``adjustment.applied`` / ``adjustment.failed`` in that transaction), so the reports
count only what applied."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.audit import insert_audit
from ledger.errors import InvalidArgument, NotFound
from ledger.records import Adjustment
from ledger.store import Store
from ledger.tables import ADJUSTMENTS
from ledger.types import ADJUSTMENT_STATUSES, require_choice, require_text, require_utc

_RECORD_ATTEMPTS = 3
#: the largest magnitude an integer column holds on both backends (BIGINT; SQLite's
#: INTEGER is 8 bytes): beyond it SQLite would store a REAL, PostgreSQL refuse
_INT64 = 2**63 - 1


def _quantity(value: int | None, name: str) -> int | None:
    """``value`` if it is a whole number an integer column can hold, else InvalidArgument."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be a whole number, not {type(value).__name__}")
    if abs(value) > _INT64:
        raise InvalidArgument(f"{name} is out of range ({len(str(abs(value)))} digits)")
    return value


def adjustment_subject(adjustment_id: int) -> str:
    """The audit subject of an adjustment."""
    return f"adjustment:{adjustment_id}"


class Adjustments(Store):
    """Recording and listing manual adjustments."""

    async def record_adjustment(
        self,
        idempotency_key: str,
        sku: str,
        location: str,
        system: str,
        reason_code: str,
        operator: str,
        at: datetime,
        delta: int | None = None,
        new_quantity: int | None = None,
        note: str = "",
    ) -> tuple[Adjustment, bool]:
        """The adjustment for ``idempotency_key``, and whether this call recorded it.

        Needs ``delta``, ``new_quantity`` or both. A new one is audited as
        ``adjustment.recorded`` with ``operator`` as the actor.
        """
        key = require_text(idempotency_key, "idempotency_key")
        at = require_utc(at, "at")
        if delta is None and new_quantity is None:
            raise InvalidArgument("an adjustment needs a delta or a new quantity")
        values = {
            "idempotency_key": key,
            "sku": require_text(sku, "sku"),
            "location": require_text(location, "location"),
            "system": require_text(system, "system"),
            "delta": _quantity(delta, "delta"),
            "new_quantity": _quantity(new_quantity, "new_quantity"),
            "reason_code": require_text(reason_code, "reason_code"),
            "operator": require_text(operator, "operator"),
            "note": note,
            "created_at": at,
            "status": "pending",
        }
        for attempt in range(_RECORD_ATTEMPTS):
            try:
                async with self._write() as conn:
                    existing = await _by_key(conn, key)
                    if existing is not None:
                        return existing, False
                    row = (
                        (
                            await conn.execute(
                                insert(ADJUSTMENTS).values(**values).returning(*ADJUSTMENTS.c)
                            )
                        )
                        .mappings()
                        .one()
                    )
                    adjustment = Adjustment.from_row(row)
                    await insert_audit(
                        conn,
                        actor=operator,
                        action="adjustment.recorded",
                        subject=adjustment_subject(adjustment.id),
                        detail={
                            k: v for k, v in values.items() if k not in ("created_at", "status")
                        },
                        at=at,
                    )
                    return adjustment, True
            except IntegrityError:
                if attempt == _RECORD_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def settle_adjustment(
        self,
        adjustment_id: int,
        status: str,
        at: datetime,
        *,
        before: int | None = None,
        after: int | None = None,
        error: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Adjustment:
        """Record the outcome of a ``pending`` adjustment (``applied`` or ``failed``) and
        audit it as ``adjustment.<status>`` by its operator, in one transaction. An
        adjustment already settled is returned as it is (its first outcome stands)."""
        require_choice(status, ADJUSTMENT_STATUSES, "status")
        if status == "pending":
            raise InvalidArgument("an adjustment settles as applied or failed")
        at = require_utc(at, "at")
        values = {
            "status": status,
            "before": _quantity(before, "before"),
            "after": _quantity(after, "after"),
            "error": error,
            "settled_at": at,
        }
        async with self._write() as conn:
            row = (
                (
                    await conn.execute(
                        update(ADJUSTMENTS)
                        .where(ADJUSTMENTS.c.id == adjustment_id, ADJUSTMENTS.c.status == "pending")
                        .values(**values)
                        .returning(*ADJUSTMENTS.c)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                current = await _by_id(conn, adjustment_id)
                if current is None:
                    raise NotFound(f"no adjustment {adjustment_id}")
                return current
            adjustment = Adjustment.from_row(row)
            await insert_audit(
                conn,
                actor=adjustment.operator,
                action=f"adjustment.{status}",
                subject=adjustment_subject(adjustment.id),
                detail={
                    "sku": adjustment.sku,
                    "location": adjustment.location,
                    "system": adjustment.system,
                    "before": before,
                    "after": after,
                    "error": error,
                    **(detail or {}),
                },
                at=at,
            )
            return adjustment

    async def list_adjustments(
        self,
        sku: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        *,
        status: str | None = None,
    ) -> list[Adjustment]:
        """Adjustments, newest first: of ``sku``, created since ``since``, with ``status``."""
        query = select(ADJUSTMENTS).order_by(
            ADJUSTMENTS.c.created_at.desc(), ADJUSTMENTS.c.id.desc()
        )
        if status is not None:
            query = query.where(
                ADJUSTMENTS.c.status == require_choice(status, ADJUSTMENT_STATUSES, "status")
            )
        if sku is not None:
            query = query.where(ADJUSTMENTS.c.sku == sku)
        if since is not None:
            query = query.where(ADJUSTMENTS.c.created_at >= require_utc(since, "since"))
        async with self._read() as conn:
            rows = (await conn.execute(query.limit(limit))).mappings().all()
        return [Adjustment.from_row(row) for row in rows]

    async def get_adjustment_by_key(self, idempotency_key: str) -> Adjustment | None:
        """The adjustment with this idempotency key, or None."""
        async with self._read() as conn:
            return await _by_key(conn, idempotency_key)


async def _by_id(conn: AsyncConnection, adjustment_id: int) -> Adjustment | None:
    query = select(ADJUSTMENTS).where(ADJUSTMENTS.c.id == adjustment_id)
    row = (await conn.execute(query)).mappings().first()
    return Adjustment.from_row(row) if row is not None else None


async def _by_key(conn: AsyncConnection, key: str) -> Adjustment | None:
    row = (
        (await conn.execute(select(ADJUSTMENTS).where(ADJUSTMENTS.c.idempotency_key == key)))
        .mappings()
        .first()
    )
    return Adjustment.from_row(row) if row is not None else None
