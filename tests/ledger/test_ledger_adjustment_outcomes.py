"""Adjustment outcomes (migration 0008): each adjustment settles once as applied or
failed, audited in the same transaction; rows from before the migration take their
outcome from the audit log; quantities out of an integer column's range are refused
with a plain error, never stored as something else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import InvalidArgument, Ledger

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def test_an_adjustment_settles_once_with_its_audit_entry(ledger: Ledger) -> None:
    adjustment, _ = await ledger.record_adjustment(
        "k1", "TEE", "east", "wms", "damaged", "U1", T0, delta=-1
    )
    assert adjustment.status == "pending"

    settled = await ledger.settle_adjustment(
        adjustment.id, "failed", T0, before=3, error="wms refused the write"
    )
    again = await ledger.settle_adjustment(adjustment.id, "applied", T0, before=3, after=2)

    assert (settled.status, settled.before, settled.error) == ("failed", 3, "wms refused the write")
    assert again == settled, "the first outcome stands"
    actions = [a.action for a in await ledger.list_audit(subject=f"adjustment:{adjustment.id}")]
    assert sorted(actions) == ["adjustment.failed", "adjustment.recorded"]
    assert [a.id for a in await ledger.list_adjustments(status="failed")] == [adjustment.id]
    assert await ledger.list_adjustments(status="applied") == []


async def test_quantities_beyond_an_integer_column_are_refused_plainly(ledger: Ledger) -> None:
    with pytest.raises(InvalidArgument, match="out of range"):
        await ledger.record_adjustment(
            "k2", "TEE", "east", "wms", "damaged", "U1", T0, new_quantity=10**20
        )
    assert await ledger.list_adjustments() == []


async def test_rows_from_before_0008_take_their_outcome_from_the_audit_log(
    db_url: str, raw: AsyncEngine
) -> None:
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade("0004")
        async with raw.begin() as conn:
            for i in (1, 2, 3):
                await conn.execute(
                    text(
                        "INSERT INTO adjustments (id, idempotency_key, sku, location, system, "
                        "delta, reason_code, operator, note, created_at) VALUES "
                        "(:id, :key, 'TEE', 'east', 'wms', -1, 'damaged', 'U1', '', :at)"
                    ),
                    {"id": i, "key": f"k{i}", "at": T0},
                )
            for subject, action in (("adjustment:1", "applied"), ("adjustment:2", "failed")):
                await conn.execute(
                    text(
                        "INSERT INTO audit_log (at, actor, action, subject, detail) "
                        "VALUES (:at, 'U1', :action, :subject, :detail)"
                    ),
                    {
                        "at": T0,
                        "action": f"adjustment.{action}",
                        "subject": subject,
                        "detail": "{}",
                    },
                )
        await ledger.upgrade()
        statuses = {a.idempotency_key: a.status for a in await ledger.list_adjustments()}
    assert statuses == {"k1": "applied", "k2": "failed", "k3": "pending"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("sku", "TEE\x00NUL"), ("location", "east\ud800"), ("operator", "U\x001")],
)
async def test_text_no_backend_can_store_is_refused_by_name(
    ledger: Ledger, field: str, value: str
) -> None:
    """A NUL or a lone surrogate (Slack and other systems can send both) failed on
    PostgreSQL with a driver error mid-transaction and was stored by SQLite: both
    refuse it first, naming the field, and record nothing."""
    fields = {"sku": "TEE", "location": "east", "operator": "U1", field: value}
    with pytest.raises(InvalidArgument, match=f"^{field} "):
        await ledger.record_adjustment(
            "k3",
            fields["sku"],
            fields["location"],
            "wms",
            "damaged",
            fields["operator"],
            T0,
            delta=-1,
        )
    assert await ledger.list_adjustments() == []
