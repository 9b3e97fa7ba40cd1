"""Report queries: counts over a period, exact on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ledger_testing import T0, at, obs

from ledger import (
    AdjustmentCount,
    IncidentCount,
    InvalidArgument,
    Ledger,
    LocationMismatch,
    ResponseTimes,
    ResyncCount,
    SkuDrift,
)

WEEK = T0 + timedelta(days=7)


async def _incident(
    ledger: Ledger,
    name: str,
    kind: str,
    minutes: float,
    sku: str | None = None,
    location: str | None = None,
) -> int:
    incident, new = await ledger.open_incident(
        f"fp:{name}", kind, "warning", f"{kind} {name}", at(minutes), sku=sku, location=location
    )
    assert new
    return incident.id


async def seed(ledger: Ledger) -> None:
    """Incidents, resyncs, adjustments and levels at known times around the week from T0."""
    one = await _incident(ledger, "1", "oversell_risk", 0, "TEE", "east")
    await ledger.acknowledge(one, "U1", at(10))
    await ledger.set_root_cause(one, "Bundle math", None, None, "U1", at(11))
    await ledger.resolve(one, "U1", at(60))
    two = await _incident(ledger, "2", "undersell", 30, "TEE", "west")
    await ledger.acknowledge(two, "U2", at(50))
    await ledger.resolve(two, "driftwatch", at(150))
    await _incident(ledger, "3", "count_mismatch", 120, "MUG", "east")
    await _incident(ledger, "4", "sync_stale", 5)
    before = await _incident(ledger, "5", "oversell_risk", -60, "CAP", "east")
    await ledger.resolve(before, "driftwatch", at(30))
    await ledger.open_incident("fp:6", "oversell_risk", "warning", "later", WEEK, sku="CAP")

    async def resync(key: str, by: str, status: str, minutes: float, linked: bool) -> None:
        row, _ = await ledger.create_resync(
            key, "shopify", "TEE", "east", "available", 5, by, at(minutes),
            incident_id=one if linked else None,
        )  # fmt: skip
        if status != "pending":
            await ledger.update_resync(row.id, status, at(minutes + 1), after=5)

    await resync("a", "driftwatch", "applied", 1, True)
    await resync("b", "driftwatch", "applied", 2, True)
    await resync("c", "driftwatch", "failed", 3, True)
    await resync("d", "U1", "applied", 4, True)
    await resync("e", "U1", "stale", 5, False)
    await resync("f", "driftwatch", "pending", 6, False)
    await resync("old", "driftwatch", "failed", -10, True)

    async def adjust(
        key: str, operator: str, reason: str, minutes: float, status: str = "applied"
    ) -> None:
        adjustment, _ = await ledger.record_adjustment(
            key, "TEE", "east", "wms", reason, operator, at(minutes), delta=-2
        )
        if status != "pending":
            error = None if status == "applied" else "wms refused the write"
            await ledger.settle_adjustment(
                adjustment.id, status, at(minutes), before=10, after=8, error=error
            )

    await adjust("x1", "U1", "cycle_count", 20)
    await adjust("x2", "U1", "cycle_count", 40)
    await adjust("x3", "U2", "damage", 70)
    await adjust("x4", "U2", "damage", 7 * 24 * 60)  # at the end: next period
    # written nowhere: refused by the source of truth, and one never settled
    await adjust("r1", "U2", "damage", 80, status="failed")
    await adjust("p1", "U1", "damage", 90, status="pending")

    await ledger.record_levels(
        [
            obs(5, sku="TEE", location="east"),
            obs(5, sku="TEE", location="east", system="wms"),
            obs(5, sku="MUG", location="east"),
            obs(5, sku="CAP", location="east", system="wms"),
            obs(5, sku="TEE", location="west"),
        ]
    )


async def test_incident_stats(ledger: Ledger) -> None:
    await seed(ledger)
    stats = await ledger.incident_stats(T0, WEEK)
    assert (stats.opened_total, stats.resolved_total, stats.resolved_by_person) == (4, 3, 1)
    assert stats.opened == (
        IncidentCount("count_mismatch", "east", None, 1),
        IncidentCount("oversell_risk", "east", "Bundle math", 1),
        IncidentCount("sync_stale", None, None, 1),
        IncidentCount("undersell", "west", None, 1),
    )
    assert stats.opened_by("location") == {"east": 2, None: 1, "west": 1}
    assert stats.opened_by("root_cause") == {None: 3, "Bundle math": 1}
    assert stats.resolved_by("kind") == {"oversell_risk": 2, "undersell": 1}
    assert stats.resolved_by("location") == {"east": 2, "west": 1}
    assert stats.opened_of(("oversell_risk", "oversell_policy")) == 1


async def test_response_times(ledger: Ledger) -> None:
    await seed(ledger)
    assert await ledger.response_times(T0, WEEK) == ResponseTimes(
        acknowledged=2, mtta=timedelta(minutes=15), resolved=3, mttr=timedelta(minutes=90)
    )
    empty = await ledger.response_times(WEEK, WEEK + timedelta(days=7))
    assert empty == ResponseTimes(0, None, 0, None)


async def test_resync_stats(ledger: Ledger) -> None:
    await seed(ledger)
    stats = await ledger.resync_stats(T0, WEEK)
    assert stats.counts == (
        ResyncCount("applied", "U1", True, 1),
        ResyncCount("applied", "driftwatch", True, 2),
        ResyncCount("failed", "driftwatch", True, 1),
        ResyncCount("pending", "driftwatch", False, 1),
        ResyncCount("stale", "U1", False, 1),
    )
    assert stats.count("applied", automatic=True) == 2
    assert stats.count(automatic=False) == 2
    assert stats.count(automatic=False, linked=True) == 1
    assert stats.count() == 6


async def test_adjustments(ledger: Ledger) -> None:
    await seed(ledger)
    assert await ledger.adjustment_counts(T0, WEEK) == [
        AdjustmentCount("U1", "cycle_count", 2),
        AdjustmentCount("U2", "damage", 1),
    ]
    rows = await ledger.adjustments_between(T0, WEEK)
    assert [a.idempotency_key for a in rows] == ["x1", "x2", "x3"]
    assert rows[0].created_at == at(20)
    assert (rows[0].status, rows[0].before, rows[0].after) == ("applied", 10, 8)
    everything = await ledger.adjustments_between(T0, WEEK, status=None)
    assert [(a.idempotency_key, a.status) for a in everything] == [
        ("x1", "applied"),
        ("x2", "applied"),
        ("x3", "applied"),
        ("r1", "failed"),
        ("p1", "pending"),
    ]
    assert await ledger.adjustment_counts(T0, WEEK, status="failed") == [
        AdjustmentCount("U2", "damage", 1)
    ]


async def test_top_drifting_skus_and_mismatch_by_location(ledger: Ledger) -> None:
    await seed(ledger)
    assert await ledger.top_drifting_skus(T0, WEEK) == [
        SkuDrift("TEE", 2, 2),
        SkuDrift("MUG", 1, 1),
    ]
    assert await ledger.top_drifting_skus(T0, WEEK, limit=1, kinds=["undersell"]) == [
        SkuDrift("TEE", 1, 1)
    ]
    mismatch = await ledger.mismatch_by_location(T0, WEEK)
    assert mismatch == [LocationMismatch("east", 3, 2), LocationMismatch("west", 1, 1)]
    assert [m.rate for m in mismatch] == [pytest.approx(2 / 3), 1.0]
    only = await ledger.mismatch_by_location(T0, WEEK, kinds=["oversell_risk"])
    assert only == [LocationMismatch("east", 3, 1), LocationMismatch("west", 1, 0)]


async def test_incidents_opened_by_bucket(ledger: Ledger) -> None:
    await seed(ledger)
    buckets = await ledger.incidents_opened_by_bucket([T0, at(60), at(24 * 60)])
    assert buckets == {
        (0, "oversell_risk"): 1,
        (0, "undersell"): 1,
        (0, "sync_stale"): 1,
        (1, "count_mismatch"): 1,
    }
    with pytest.raises(InvalidArgument):
        await ledger.incidents_opened_by_bucket([T0, T0])
    with pytest.raises(InvalidArgument):
        await ledger.incident_stats(WEEK, T0)


async def seed_two_stores(ledger: Ledger) -> None:
    """Two stores' incidents, resyncs, adjustments and levels in one week, and some of
    the deployment's own (an incident about no single system, the WMS's levels)."""
    for name, kind, minutes, sku, location, system in (
        ("eu-1", "oversell_risk", 10, "MUG", "east", "shopify_eu"),
        ("eu-2", "undersell", 20, "MUG", "west", "shopify_eu"),
        ("us-1", "oversell_risk", 30, "TEE", "east", "shopify"),
        ("storm", "drift_storm", 40, None, None, None),
    ):
        incident, _ = await ledger.open_incident(
            f"fp:{name}", kind, "warning", name, at(minutes), sku, location, system
        )
        await ledger.acknowledge(incident.id, "U1", at(minutes + (5 if system else 45)))
        await ledger.resolve(incident.id, "U1", at(minutes + 60))
    for key, system in (("r-eu", "shopify_eu"), ("r-us", "shopify"), ("r-us2", "shopify")):
        row, _ = await ledger.create_resync(
            key, system, "MUG", "east", "available", 5, "driftwatch", at(50)
        )
        await ledger.update_resync(row.id, "applied", at(51), after=5)
    for key, system in (("a-eu", "shopify_eu"), ("a-wms", "wms")):
        adjustment, _ = await ledger.record_adjustment(
            key, "MUG", "east", system, "cycle_count", "U2", at(70), delta=-1
        )
        await ledger.settle_adjustment(adjustment.id, "applied", at(70), before=3, after=2)
    await ledger.record_levels(
        [
            obs(5, sku="MUG", location="east", system="shopify_eu"),
            obs(5, sku="MUG", location="west", system="shopify_eu"),
            obs(5, sku="TEE", location="east", system="shopify"),
            obs(5, sku="CAP", location="east", system="wms"),
        ]
    )


async def test_every_weekly_query_narrows_to_a_stores_systems(ledger: Ledger) -> None:
    await seed_two_stores(ledger)
    eu = {"shopify_eu"}
    stats = await ledger.incident_stats(T0, WEEK, systems=eu)
    assert (stats.opened_total, stats.resolved_total, stats.resolved_by_person) == (2, 2, 2)
    assert stats.opened_by("kind") == {"oversell_risk": 1, "undersell": 1}
    everyone = await ledger.incident_stats(T0, WEEK)
    assert everyone.opened_total == 4
    # the storm was acknowledged after 45 min, the store's incidents after 5
    assert await ledger.response_times(T0, WEEK, systems=eu) == ResponseTimes(
        acknowledged=2, mtta=timedelta(minutes=5), resolved=2, mttr=timedelta(minutes=60)
    )
    assert (await ledger.response_times(T0, WEEK)).mtta == timedelta(minutes=15)
    assert (await ledger.resync_stats(T0, WEEK, systems=eu)).count("applied") == 1
    assert (await ledger.resync_stats(T0, WEEK, systems={"shopify"})).count("applied") == 2
    assert await ledger.adjustment_counts(T0, WEEK, systems=eu) == [
        AdjustmentCount("U2", "cycle_count", 1)
    ]
    assert await ledger.adjustment_counts(T0, WEEK) == [AdjustmentCount("U2", "cycle_count", 2)]
    assert await ledger.top_drifting_skus(T0, WEEK, systems=eu) == [SkuDrift("MUG", 2, 2)]
    assert await ledger.mismatch_by_location(T0, WEEK, systems=eu) == [
        LocationMismatch("east", 1, 1),
        LocationMismatch("west", 1, 1),
    ]
    # every system: MUG, TEE and CAP are known at east, MUG and TEE drifted there
    assert await ledger.mismatch_by_location(T0, WEEK) == [
        LocationMismatch("east", 3, 2),
        LocationMismatch("west", 1, 1),
    ]
    buckets = await ledger.incidents_opened_by_bucket([T0, at(25), WEEK], systems=eu)
    assert buckets == {(0, "oversell_risk"): 1, (0, "undersell"): 1}
    # a store with nothing recorded reads as an empty week, not as everyone's
    assert (await ledger.incident_stats(T0, WEEK, systems={"shopify_ca"})).opened_total == 0
    assert await ledger.mismatch_by_location(T0, WEEK, systems={"shopify_ca"}) == []
