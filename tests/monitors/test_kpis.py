"""Shrinkage against its line, the baseline week, captured weeks, the weekly review and
the cycle-count list, from a ledger seeded at known times."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from chain_testing import NOW, T0, at, chain_config, level, record_script

from ledger import Ledger
from monitors.cycle_count import cycle_count_list, rotation_slot, weeks_covering
from monitors.kpis import (
    baseline_week,
    shrinkage,
    units_moved,
    week_kpis,
    weekly_review,
)
from monitors.wiring import rules_from_config

WEEK = date(2026, 11, 2)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'kpis.db'}") as ledger:
        await ledger.upgrade()
        yield ledger


async def adjust(
    ledger: Ledger,
    key: str,
    sku: str,
    reason: str,
    when: datetime,
    *,
    status: str = "applied",
    **kw: int,
) -> None:
    """An adjustment as /adjust leaves it: recorded, then applied (or refused)."""
    adjustment, _ = await ledger.record_adjustment(
        key, sku, "east", "wms", reason, "U0OPS001", when, **kw
    )
    await ledger.settle_adjustment(adjustment.id, status, when)


async def test_units_moved_at_the_source_of_truth(ledger: Ledger) -> None:
    config = chain_config()
    await record_script(ledger)
    moved = await units_moved(ledger, rules_from_config(config), T0, NOW)
    # TEE 50 → 40 → 30 → 25 → 20; CAP 10 → 12; GIFT 5 → 1; MUG 30 → 25; SOCK appears
    assert moved == {("TEE", "east"): 30, ("CAP", "east"): 2, ("GIFT", "east"): 4,
                     ("MUG", "east"): 5}  # fmt: skip


async def test_shrinkage_is_shrink_and_damage_over_units_moved(ledger: Ledger) -> None:
    config = chain_config()
    await record_script(ledger)
    await adjust(ledger, "a", "TEE", "shrinkage", at(1), delta=-3)
    await adjust(ledger, "b", "CAP", "damaged", at(2), delta=-1)
    await adjust(ledger, "c", "CAP", "damaged", at(3), new_quantity=9)  # by how much? unknown
    await adjust(ledger, "d", "TEE", "cycle_count", at(4), delta=-5)  # not shrinkage
    await adjust(ledger, "e", "TEE", "shrinkage", at(5), delta=2)  # found again: not a loss
    await adjust(ledger, "f", "TEE", "shrinkage", NOW, delta=-9)  # next week
    await adjust(ledger, "g", "TEE", "shrinkage", at(6), delta=-7, status="failed")  # refused
    shrink = await shrinkage(ledger, config, rules_from_config(config), T0, NOW)
    assert (shrink.units, shrink.moved, shrink.unmeasured) == (4, 41, 1)
    assert shrink.rate == pytest.approx(4 / 41)
    assert shrink.line == pytest.approx(0.02)
    assert shrink.over_line
    strict = chain_config(kpis={"shrinkage_line_percent": 12.5})
    assert not (await shrinkage(ledger, strict, rules_from_config(strict), T0, NOW)).over_line


async def test_nothing_moved_is_no_rate_rather_than_a_division_by_zero(ledger: Ledger) -> None:
    config = chain_config()
    shrink = await shrinkage(ledger, config, rules_from_config(config), T0, NOW)
    assert (shrink.rate, shrink.over_line) == (None, False)


async def test_the_baseline_is_the_first_full_week_of_history(ledger: Ledger) -> None:
    config = chain_config()
    assert await baseline_week(ledger, config.tz) is None
    # first change on Sunday 1 November, 21:00 UTC: the first full week starts Monday
    await ledger.record_levels(level("wms", "TEE", 5, at(-3)))
    assert await baseline_week(ledger, config.tz) == WEEK
    # in Auckland that Sunday evening is already Monday morning: the week after
    nz = chain_config(timezone="Pacific/Auckland")
    assert await baseline_week(ledger, nz.tz) == date(2026, 11, 9)


async def test_history_starting_at_a_monday_midnight_makes_that_week_the_baseline(
    ledger: Ledger,
) -> None:
    await ledger.record_levels(level("wms", "TEE", 5, T0))
    assert await baseline_week(ledger, UTC) == WEEK


async def test_a_finished_week_is_captured_once_and_keeps_its_figures(ledger: Ledger) -> None:
    config = chain_config()
    rules = rules_from_config(config)
    await record_script(ledger)
    await ledger.open_incident("fp1", "oversell_risk", "warning", "t", at(3), sku="TEE",
                               location="east")  # fmt: skip
    during = await week_kpis(ledger, config, rules, WEEK, at(30))  # the week is not over
    assert await ledger.kpi_week(WEEK) is None
    after = await week_kpis(ledger, config, rules, WEEK, NOW)
    assert after["oversell_incidents"] == during["oversell_incidents"] == 1
    assert (await ledger.kpi_week(WEEK)) is not None
    # an incident recorded later in that week does not rewrite the captured baseline
    await ledger.open_incident("fp2", "oversell_risk", "warning", "t", at(50), sku="CAP",
                               location="east")  # fmt: skip
    assert (await week_kpis(ledger, config, rules, WEEK, NOW))["oversell_incidents"] == 1


async def test_the_weekly_review(ledger: Ledger) -> None:
    config = chain_config()
    rules = rules_from_config(config)
    await record_script(ledger)
    later = NOW + timedelta(days=7)
    await ledger.record_verdict(WEEK, "escalate", "U0OPS001", NOW + timedelta(hours=9),
                                note="storefront hop is losing changes")  # fmt: skip
    review = await weekly_review(ledger, config, rules, WEEK + timedelta(days=7), later)
    assert review.baseline_start == WEEK
    assert review.baseline is not None
    assert review.baseline == review.last  # the baseline is last week
    assert review.previous_verdict is not None
    assert review.previous_verdict.decision == "escalate"
    assert review.verdict is None
    assert [h.hop.key for h in review.chain.hops] == ["wms>shopify", "wms>erp"]
    assert len(review.chain.days) == 31
    assert review.cycle_counts.week_start == WEEK + timedelta(days=14)
    first = await weekly_review(ledger, config, rules, WEEK, NOW + timedelta(hours=9))
    assert first.is_baseline
    assert first.verdict is not None
    assert first.verdict.note == "storefront hop is losing changes"
    # the chain of the baseline week is the one chain_testing works out
    assert (first.chain.hops[0].arrived, first.chain.hops[0].lost) == (4, 1)
    kpis = {k.name: (k.this_week, k.last_week) for k in first.against_baseline()}
    assert kpis["Shrinkage"] == (0.0, 0.0)  # no shrink adjustments: 0 of 41 units moved
    assert first.this["units_moved"] == 41


def test_the_cycle_count_rotation_covers_the_catalog_over_a_quarter() -> None:
    config = chain_config()
    catalog = [f"SKU-{i:04d}" for i in range(500)] + ["GIFT"]
    counted: set[str] = set()
    sizes = []
    for week in weeks_covering(date(2026, 10, 5), 13):
        listed = cycle_count_list(config, week, catalog, incidents={}, moved={})
        assert listed.first == ()
        counted |= {i.sku for i in listed.items}
        sizes.append(len(listed.items))
    assert counted == set(catalog) - {"GIFT"}  # every SKU, the bundle left out
    assert sum(sizes) == 500  # each exactly once: no SKU counted twice in a quarter
    assert max(sizes) < 2 * 500 / 13  # spread over the weeks
    # any 13 consecutive weeks do: a slot never moves when the catalog grows
    assert rotation_slot("SKU-0042", 13) == rotation_slot("SKU-0042", 13)


def test_drift_prone_hero_and_fast_skus_come_first() -> None:
    config = chain_config(
        skus={"tags": {"hero": ["TEE"], "premium": ["WATCH"]}},
        cycle_count={"high_value_tags": ["premium"], "high_velocity_percent": 20.0},
    )
    catalog = ["TEE", "CAP", "MUG", "WATCH", "SOCK", "BELT", "HAT", "BAG", "PIN", "CUP"]
    listed = cycle_count_list(
        config,
        WEEK,
        catalog,
        incidents={"MUG": 4, "CAP": 1},
        moved={"SOCK": 900, "BELT": 300, "HAT": 20},
    )
    assert [(i.sku, i.reasons) for i in listed.first] == [
        ("MUG", ("drift-prone (4 incidents in 30 days)",)),
        ("CAP", ("drift-prone (1 incident in 30 days)",)),
        ("TEE", ("hero",)),
        ("SOCK", ("high velocity (900 units in 30 days)",)),
        ("BELT", ("high velocity (300 units in 30 days)",)),
        ("WATCH", ("high value",)),
    ]
    assert not {i.sku for i in listed.rotation} & {i.sku for i in listed.first}
    capped = cycle_count_list(
        chain_config(cycle_count={"max_priority": 2}),
        WEEK,
        catalog,
        incidents={"MUG": 4, "CAP": 1, "TEE": 1},
        moved={},
    )
    assert [i.sku for i in capped.first] == ["MUG", "CAP"]
