"""Resyncs and manual adjustments: once per idempotency key, audited with the change."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from ledger_testing import T0, at, scalar
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import Adjustment, InvalidArgument, Ledger, NotFound, Resync


async def resync(
    ledger: Ledger,
    key: str = "resync:1:shopify",
    *,
    target: int = 12,
    before: int | None = None,
    incident_id: int | None = None,
) -> tuple[Resync, bool]:
    return await ledger.create_resync(
        key,
        "shopify",
        "TEE-BLK-M",
        "east",
        "available",
        target,
        "U_ALICE",
        at(0),
        incident_id=incident_id,
        before=before,
    )


async def test_a_resync_is_created_once_per_key(ledger: Ledger, raw: AsyncEngine) -> None:
    created, new = await resync(ledger, before=9)
    assert new
    assert (created.status, created.attempts, created.before, created.target) == (
        "pending",
        0,
        9,
        12,
    )
    again, new = await resync(ledger, target=99)
    assert not new
    assert again == created
    assert await ledger.get_resync_by_key("resync:1:shopify") == created
    assert await ledger.get_resync_by_key("nope") is None
    assert await scalar(raw, "SELECT count(*) FROM resyncs") == 1
    [entry] = await ledger.list_audit(subject=f"resync:{created.id}")
    assert (entry.action, entry.actor, entry.detail["target"]) == (
        "resync.requested",
        "U_ALICE",
        12,
    )


async def test_concurrent_creates_make_one_resync(
    ledger: Ledger, db_url: str, raw: AsyncEngine
) -> None:
    async with Ledger.from_url(db_url) as replica:
        results = await asyncio.gather(*(resync(ledger if i % 2 else replica) for i in range(8)))
    assert sum(new for _, new in results) == 1
    assert await scalar(raw, "SELECT count(*) FROM resyncs") == 1


async def test_updating_a_resync_records_each_attempt(ledger: Ledger) -> None:
    created, _ = await resync(ledger, before=9)
    failed = await ledger.update_resync(created.id, "failed", at(1), error="429 throttled")
    assert (failed.status, failed.attempts, failed.error, failed.updated_at) == (
        "failed",
        1,
        "429 throttled",
        at(1),
    )
    applied = await ledger.update_resync(created.id, "applied", at(2), after=12, before=10)
    assert (applied.status, applied.attempts, applied.error) == ("applied", 2, None)
    assert (applied.before, applied.after, applied.created_at) == (10, 12, T0)
    assert await ledger.get_resync(created.id) == applied
    actions = [e.action for e in await ledger.list_audit(subject=f"resync:{created.id}")]
    assert actions == ["resync.applied", "resync.failed", "resync.requested"]
    skipped = await ledger.update_resync(created.id, "skipped", at(3), attempts_increment=0)
    assert skipped.attempts == 2


async def test_resync_errors(ledger: Ledger) -> None:
    with pytest.raises(NotFound):
        await ledger.update_resync(404, "applied", T0)
    with pytest.raises(NotFound):
        await ledger.get_resync(404)
    with pytest.raises(NotFound, match="incident"):
        await resync(ledger, incident_id=404)
    created, _ = await resync(ledger)
    with pytest.raises(InvalidArgument, match="status"):
        await ledger.update_resync(created.id, "done", T0)


async def test_listing_resyncs(ledger: Ledger) -> None:
    incident, _ = await ledger.open_incident("fp", "drift", "warning", "t", T0)
    a, _ = await resync(ledger, "a", incident_id=incident.id)
    b, _ = await ledger.create_resync("b", "wms", "X", "east", "on_hand", 1, "U", at(5))
    assert [r.id for r in await ledger.list_resyncs()] == [b.id, a.id]
    assert [r.id for r in await ledger.list_resyncs(incident_id=incident.id)] == [a.id]
    assert [r.id for r in await ledger.list_resyncs(since=at(1))] == [b.id]


async def test_the_occurrence_is_the_newest_settled_resync_of_the_level(ledger: Ledger) -> None:
    assert await ledger.resync_occurrence("shopify", "TEE-BLK-M", "east", "available") == 0
    a, _ = await resync(ledger, "a", before=40, target=28)
    # pending: a retry of a's decision still names the same occurrence
    assert await ledger.resync_occurrence("shopify", "TEE-BLK-M", "east", "available") == 0
    await ledger.update_resync(a.id, "applied", at(1), after=28)
    assert await ledger.resync_occurrence("shopify", "TEE-BLK-M", "east", "available") == a.id
    b, _ = await resync(ledger, "b", before=40, target=28)
    await ledger.update_resync(b.id, "stale", at(2))
    assert await ledger.resync_occurrence("shopify", "TEE-BLK-M", "east", "available") == b.id
    # other levels and states are other occurrences
    assert await ledger.resync_occurrence("shopify", "TEE-BLK-M", "east", "on_hand") == 0
    assert await ledger.resync_occurrence("shopify", "TEE-BLK-M", "west", "available") == 0
    assert await ledger.resync_occurrence("wms", "TEE-BLK-M", "east", "available") == 0


async def test_a_pending_resync_is_settled_once_with_its_reason_kept(ledger: Ledger) -> None:
    created, _ = await ledger.create_resync(
        "k", "shopify", "TEE-BLK-M", "east", "available", 28, "U_ALICE", at(0),
        before=40, reason="cycle_count_available",
    )  # fmt: skip
    other, _ = await resync(ledger, "other")
    await ledger.update_resync(other.id, "failed", at(1), error="down")
    assert created.reason == "cycle_count_available"
    assert [r.id for r in await ledger.pending_resyncs()] == [created.id]

    settled = await ledger.settle_resync(created.id, "applied", at(2), after=28)
    assert settled is not None
    assert (settled.status, settled.after, settled.attempts) == ("applied", 28, 1)
    assert settled.reason == "cycle_count_available"
    assert await ledger.settle_resync(created.id, "failed", at(3), error="late") is None
    assert (await ledger.get_resync(created.id)).status == "applied"  # the first stands
    assert await ledger.pending_resyncs() == []
    audit = await ledger.list_audit(subject=f"resync:{created.id}")
    assert [(e.action, e.detail.get("settled")) for e in reversed(audit)] == [
        ("resync.requested", None),
        ("resync.applied", True),
    ]
    with pytest.raises(InvalidArgument):
        await ledger.settle_resync(created.id, "pending", at(4))


async def test_concurrent_settles_record_one_outcome(ledger: Ledger, db_url: str) -> None:
    created, _ = await resync(ledger, before=40)
    async with Ledger.from_url(db_url) as replica:
        results = await asyncio.gather(
            *(
                (ledger if i % 2 else replica).settle_resync(created.id, "applied", at(1), after=i)
                for i in range(6)
            )
        )
    assert sum(r is not None for r in results) == 1
    audit = await ledger.list_audit(subject=f"resync:{created.id}")
    assert [e.action for e in audit].count("resync.applied") == 1


async def adjust(
    ledger: Ledger,
    key: str = "adj-1",
    *,
    delta: int | None = None,
    new_quantity: int | None = None,
    note: str = "",
    when: datetime = T0,
) -> tuple[Adjustment, bool]:
    return await ledger.record_adjustment(
        key,
        "TEE-BLK-M",
        "east",
        "wms",
        "cycle_count",
        "U_CAROL",
        when,
        delta=delta,
        new_quantity=new_quantity,
        note=note,
    )


async def test_an_adjustment_is_recorded_once_with_its_audit_entry(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    adjustment, new = await adjust(ledger, delta=-2, note="found two damaged")
    assert new
    assert (adjustment.delta, adjustment.new_quantity, adjustment.reason_code) == (
        -2,
        None,
        "cycle_count",
    )
    again, new = await adjust(ledger, delta=-5)
    assert (again, new) == (adjustment, False)
    assert await scalar(raw, "SELECT count(*) FROM adjustments") == 1
    [entry] = await ledger.list_audit(subject=f"adjustment:{adjustment.id}")
    assert (entry.action, entry.actor, entry.at) == ("adjustment.recorded", "U_CAROL", T0)
    assert (entry.detail["delta"], entry.detail["reason_code"]) == (-2, "cycle_count")
    assert await scalar(raw, "SELECT count(*) FROM audit_log") == 1


async def test_an_adjustment_needs_a_quantity(ledger: Ledger, raw: AsyncEngine) -> None:
    with pytest.raises(InvalidArgument, match="delta or a new quantity"):
        await adjust(ledger)
    assert await scalar(raw, "SELECT count(*) FROM adjustments") == 0


async def test_listing_adjustments(ledger: Ledger) -> None:
    a, _ = await adjust(ledger, "a", new_quantity=10)
    b, _ = await adjust(ledger, "b", delta=1, when=at(5))
    c, _ = await ledger.record_adjustment("c", "OTHER", "east", "wms", "damage", "U", at(6), 1)
    assert [x.id for x in await ledger.list_adjustments()] == [c.id, b.id, a.id]
    assert [x.id for x in await ledger.list_adjustments(sku="TEE-BLK-M")] == [b.id, a.id]
    assert [x.id for x in await ledger.list_adjustments(since=at(5))] == [c.id, b.id]
    assert await ledger.get_adjustment_by_key("b") == b
