"""The weekly summary and the daily adjustment report, from a ledger seeded at known times.

The weeks are in New York: last week (Oct 26 – Nov 1, 2026) has the 25-hour day when
daylight saving time ends, so local days are checked against UTC storage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ledger import Ledger, LevelObservation, LocationMismatch, ResponseTimes, SkuDrift
from monitors.reports import (
    AdjustmentRules,
    Flag,
    Kpi,
    daily_adjustments,
    previous_day_start,
    previous_week_start,
    weekly_summary,
)

NY = ZoneInfo("America/New_York")
WEEK = date(2026, 11, 2)


def local(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=NY)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'reports.db'}") as ledger:
        await ledger.upgrade()
        yield ledger


async def incident(
    ledger: Ledger, name: str, kind: str, opened: datetime, sku: str | None, loc: str | None
) -> int:
    row, new = await ledger.open_incident(
        f"fp:{name}", kind, "warning", name, opened, sku=sku, location=loc
    )
    assert new
    return row.id


async def resync(
    ledger: Ledger, key: str, by: str, status: str, when: datetime, incident_id: int | None
) -> None:
    row, _ = await ledger.create_resync(
        key, "shopify", "TEE", "east", "available", 5, by, when, incident_id=incident_id
    )
    await ledger.update_resync(row.id, status, when + timedelta(minutes=1), after=5)


async def adjust(
    ledger: Ledger,
    key: str,
    when: datetime,
    sku: str = "TEE",
    location: str = "east",
    system: str = "wms",
    operator: str = "U1",
    reason: str = "cycle_count",
    delta: int | None = -2,
    new_quantity: int | None = None,
) -> None:
    adjustment, _ = await ledger.record_adjustment(
        key, sku, location, system, reason, operator, when, delta=delta, new_quantity=new_quantity
    )
    await ledger.settle_adjustment(adjustment.id, "applied", when)


async def seed_weeks(ledger: Ledger) -> None:
    # this week
    i1 = await incident(ledger, "i1", "oversell_risk", local(11, 2, 10), "TEE", "east")
    await ledger.acknowledge(i1, "U1", local(11, 2, 10, 10))
    await ledger.set_root_cause(i1, "Bundle math", None, None, "U1", local(11, 2, 10, 20))
    await ledger.resolve(i1, "U1", local(11, 2, 10, 40))
    i2 = await incident(ledger, "i2", "undersell", local(11, 3, 9), "TEE", "west")
    await ledger.resolve(i2, "driftwatch", local(11, 3, 10))
    await incident(ledger, "i3", "sync_stale", local(11, 3, 12), None, None)
    await incident(ledger, "i4", "oversell_policy", local(11, 8, 23, 30), "MUG", "east")
    await incident(ledger, "i5", "oversell_risk", local(11, 9, 0, 30), "MUG", "west")  # next
    for n, status in enumerate(["applied", "applied", "applied", "failed", "stale"]):
        await resync(ledger, f"auto{n}", "driftwatch", status, local(11, 4, 9, n), i1)
    await resync(ledger, "m1", "U1", "applied", local(11, 4, 10), i1)
    await resync(ledger, "m2", "U1", "stale", local(11, 4, 11), i1)
    await resync(ledger, "m3", "U1", "applied", local(11, 4, 12), None)  # from an adjustment
    await adjust(ledger, "a1", local(11, 4, 12))
    await adjust(ledger, "a2", local(11, 5, 12), operator="U2")
    # last week
    l1 = await incident(ledger, "l1", "count_mismatch", local(10, 27, 9), "MUG", "east")
    await ledger.acknowledge(l1, "U2", local(10, 27, 9, 30))
    await ledger.resolve(l1, "U2", local(10, 27, 10))
    await incident(ledger, "l2", "oversell_risk", local(11, 1, 22), "CAP", "east")
    await incident(ledger, "l3", "oversell_risk", local(10, 26), "TEE", "east")
    await resync(ledger, "old1", "driftwatch", "applied", local(10, 28, 9), l1)
    await resync(ledger, "old2", "driftwatch", "failed", local(10, 28, 10), l1)
    await adjust(ledger, "a0", local(10, 29, 12))
    # what is known now
    now = local(11, 9, 9)
    await ledger.record_levels(
        LevelObservation(system, sku, loc, "available", 5, now, "poll")
        for system, sku, loc in [
            ("shopify", "TEE", "east"),
            ("wms", "TEE", "east"),
            ("wms", "MUG", "east"),
            ("wms", "CAP", "east"),
            ("wms", "TEE", "west"),
        ]
    )


async def test_the_weekly_summary_sets_this_week_against_last(ledger: Ledger) -> None:
    await seed_weeks(ledger)
    summary = await weekly_summary(ledger, WEEK, NY)
    this, last = summary.this_week, summary.last_week
    assert (this.start, this.end) == (local(11, 2), local(11, 9))
    assert (last.start, last.end) == (local(10, 26), local(11, 2))
    assert last.end.astimezone(UTC) - last.start.astimezone(UTC) == timedelta(days=7, hours=1)
    assert summary.kpis() == [
        Kpi("Mismatch rate", 0.5, 0.75, "%", True),
        Kpi("Oversell incidents", 2, 2, "", True),
        Kpi("Auto-resync success", 0.75, 0.5, "%", False),
        Kpi("Manual interventions", 4, 2, "", True),
    ]
    assert this.mismatch == (
        LocationMismatch("east", 3, 1),
        LocationMismatch("west", 1, 1),
    )
    assert last.mismatch == (
        LocationMismatch("east", 3, 3),
        LocationMismatch("west", 1, 0),
    )
    assert (this.adjustments, this.manual_resyncs, this.manual_resolutions) == (2, 1, 1)
    assert (last.adjustments, last.manual_resyncs, last.manual_resolutions) == (1, 0, 1)
    assert this.response == ResponseTimes(1, timedelta(minutes=10), 2, timedelta(minutes=50))
    assert [k.this_week for k in summary.response_kpis()] == [10, 50]
    assert [k.last_week for k in summary.response_kpis()] == [30, 60]
    assert this.by_root_cause == {None: 3, "Bundle math": 1}
    assert this.by_kind == {
        "oversell_policy": 1,
        "oversell_risk": 1,
        "sync_stale": 1,
        "undersell": 1,
    }
    assert this.top_skus == (SkuDrift("TEE", 2, 2), SkuDrift("MUG", 1, 1))
    assert (this.incidents_opened, this.incidents_resolved) == (4, 2)
    assert this.daily == (
        {"oversell_risk": 1},
        {"sync_stale": 1, "undersell": 1},
        {},
        {},
        {},
        {},
        {"oversell_policy": 1},
    )
    assert last.daily == (
        {"oversell_risk": 1},
        {"count_mismatch": 1},
        {},
        {},
        {},
        {},
        {"oversell_risk": 1},
    )
    assert summary.day_labels == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


async def test_an_empty_ledger_gives_no_rates(ledger: Ledger) -> None:
    summary = await weekly_summary(ledger, WEEK, NY)
    assert [k.this_week for k in summary.kpis()] == [None, 0, None, 0]
    assert summary.this_week.daily == ({},) * 7


async def seed_day(ledger: Ledger) -> None:
    await adjust(ledger, "b0", local(11, 2, 23, 59))  # the day before
    await adjust(ledger, "b1", local(11, 3, 9), delta=-2, new_quantity=8)  # 20%: fine
    await adjust(ledger, "b2", local(11, 3, 10), delta=3)
    await adjust(
        ledger, "b3", local(11, 3, 11), location="west", system="shopify", operator="U2",
        reason="manual_override", delta=None, new_quantity=5,
    )  # fmt: skip
    await adjust(
        ledger, "b4", local(11, 3, 12), sku="MUG", operator="U2", reason="damage", delta=-60
    )
    await adjust(
        ledger, "b5", local(11, 3, 13), sku="CAP", reason="damage", delta=-6, new_quantity=10
    )
    await adjust(
        ledger, "b6", local(11, 3, 14), sku="CAP", reason="damage", delta=-1, new_quantity=1
    )
    await adjust(ledger, "b7", local(11, 4))  # the day after


async def test_the_daily_adjustment_report_flags_unusual_patterns(ledger: Ledger) -> None:
    await seed_day(ledger)
    report = await daily_adjustments(ledger, local(11, 3), AdjustmentRules(source_of_truth="wms"))
    assert report.total == 6
    assert report.by_operator == {"U1": 4, "U2": 2}
    assert report.by_reason == {"damage": 3, "cycle_count": 2, "manual_override": 1}
    ids = {a.idempotency_key: a.id for a in report.adjustments}
    assert list(ids) == ["b1", "b2", "b3", "b4", "b5", "b6"]
    assert report.flags == (
        Flag(
            "repeated",
            "TEE",
            "TEE adjusted 3 times (east, west)",
            (ids["b1"], ids["b2"], ids["b3"]),
        ),
        Flag("large", "MUG", "MUG at east: -60, 60 units by U2 (damage)", (ids["b4"],)),
        Flag(
            "large",
            "CAP",
            "CAP at east: -6 (16 → 10), 38% of the count by U1 (damage)",
            (ids["b5"],),
        ),
        Flag(
            "off_truth",
            "TEE",
            "TEE at west adjusted in shopify, not in wms (the source of truth), by U2",
            (ids["b3"],),
        ),
    )


async def test_without_a_source_of_truth_no_off_truth_flag(ledger: Ledger) -> None:
    await seed_day(ledger)
    report = await daily_adjustments(ledger, local(11, 3))
    assert [f.kind for f in report.flags] == ["repeated", "large", "large"]
    quiet = await daily_adjustments(ledger, local(11, 5))
    assert (quiet.total, quiet.flags, quiet.by_operator) == (0, (), {})


def test_the_default_periods_are_the_last_complete_ones() -> None:
    now = local(11, 9, 8)  # a Monday morning
    assert previous_week_start(now, NY) == date(2026, 11, 2)
    assert previous_week_start(local(11, 15, 23), NY) == date(2026, 11, 2)
    assert previous_day_start(now, NY) == local(11, 8)
