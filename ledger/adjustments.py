"""Manual adjustments: every change an operator makes by hand, with its reason code,
recorded once per idempotency key and audited in the same transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.audit import insert_audit
from ledger.errors import InvalidArgument
from ledger.records import Adjustment
from ledger.store import Store
from ledger.tables import ADJUSTMENTS
from ledger.types import require_text, require_utc

_RECORD_ATTEMPTS = 3


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
            "delta": delta,
            "new_quantity": new_quantity,
            "reason_code": require_text(reason_code, "reason_code"),
            "operator": require_text(operator, "operator"),
            "note": note,
            "created_at": at,
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
                        detail={k: v for k, v in values.items() if k != "created_at"},
                        at=at,
                    )
                    return adjustment, True
            except IntegrityError:
                if attempt == _RECORD_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def list_adjustments(
        self, sku: str | None = None, since: datetime | None = None, limit: int = 100
    ) -> list[Adjustment]:
        """Adjustments, newest first: of ``sku``, and/or created since ``since``."""
        query = select(ADJUSTMENTS).order_by(
            ADJUSTMENTS.c.created_at.desc(), ADJUSTMENTS.c.id.desc()
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


async def _by_key(conn: AsyncConnection, key: str) -> Adjustment | None:
    row = (
        (await conn.execute(select(ADJUSTMENTS).where(ADJUSTMENTS.c.idempotency_key == key)))
        .mappings()
        .first()
    )
    return Adjustment.from_row(row) if row is not None else None
