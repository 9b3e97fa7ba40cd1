"""The adjustment report judges "off the source of truth" by the whole source-of-truth
order, as the drift engine does (it used ``source_of_truth[0]`` alone), and a store's
own report covers that store's adjustments only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger import Ledger, LevelObservation
from monitors.reports import AdjustmentRules, daily_adjustments

DAY = datetime(2026, 11, 3, tzinfo=UTC)
RULES = AdjustmentRules(source_of_truth="wms", truths=("wms", "erp"))


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'store_reports.db'}") as ledger:
        await ledger.upgrade()
        yield ledger


async def adjust(ledger: Ledger, key: str, sku: str, system: str, location: str = "east") -> None:
    at = DAY + timedelta(hours=len(key))
    row, _ = await ledger.record_adjustment(
        key, sku, location, system, "cycle_count", "U1", at, delta=-1
    )
    await ledger.settle_adjustment(row.id, "applied", at)


async def listed(ledger: Ledger, system: str, sku: str, location: str = "east") -> None:
    await ledger.record_levels(
        [LevelObservation(system, sku, location, "available", 5, DAY - timedelta(days=9), "poll")]
    )


async def test_an_adjustment_at_the_fallback_truth_is_not_off_truth(ledger: Ledger) -> None:
    await listed(ledger, "wms", "TEE")  # the WMS stocks TEE: it is TEE's truth
    await listed(ledger, "erp", "TEE")
    await listed(ledger, "erp", "CANDLE")  # the WMS never stocked CANDLE: the ERP is its truth
    await adjust(ledger, "a", "CANDLE", "erp")
    await adjust(ledger, "bb", "TEE", "erp")
    await adjust(ledger, "ccc", "TEE", "wms")
    await adjust(ledger, "dddd", "MUG", "shopify_eu")  # no truth has MUG: the first one
    report = await daily_adjustments(ledger, DAY, RULES)
    off = sorted(f.text for f in report.flags if f.kind == "off_truth")
    assert off == [
        "MUG at east adjusted in shopify_eu, not in wms (the source of truth), by U1",
        "TEE at east adjusted in erp, not in wms (the source of truth), by U1",
    ]


async def test_a_store_report_covers_that_store_only(ledger: Ledger) -> None:
    await adjust(ledger, "a", "MUG", "shopify_eu")
    await adjust(ledger, "bb", "MUG", "shopify_eu", location="west")
    await adjust(ledger, "ccc", "TEE", "shopify")
    await adjust(ledger, "dddd", "TEE", "wms")
    rules = AdjustmentRules(source_of_truth="wms", systems=frozenset({"shopify_eu"}))
    report = await daily_adjustments(ledger, DAY, rules)
    assert [(a.sku, a.system) for a in report.adjustments] == [
        ("MUG", "shopify_eu"),
        ("MUG", "shopify_eu"),
    ]
    assert report.total == 2
    assert report.by_operator == {"U1": 2}
    assert report.systems == ("shopify_eu",)
    whole = await daily_adjustments(ledger, DAY, AdjustmentRules(source_of_truth="wms"))
    assert whole.total == 4
    assert whole.systems == ()
