"""The SKUs offered for "Did you mean": read once for a storm, again after a minute."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sql_testing import sent_statements, sku_lists

from bot.slack.known_skus import KnownSkus
from connectors import ManualClock
from ledger import Ledger, LevelObservation

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def level(sku: str) -> LevelObservation:
    return LevelObservation("wms", sku, "east", "available", 1, T0, "poll")


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'skus.db'}") as ledger:
        await ledger.upgrade()
        await ledger.record_levels([level("TEE-BLK-M"), level("MUG-STONE")])
        yield ledger


async def test_fifty_at_once_share_one_read(ledger: Ledger) -> None:
    skus = KnownSkus(ledger, ManualClock(T0))
    with sent_statements(ledger) as sent:
        lists = await asyncio.gather(*(skus.get() for _ in range(50)))
    assert lists == [["MUG-STONE", "TEE-BLK-M"]] * 50
    assert len(sku_lists(sent)) == 1


async def test_the_list_is_read_again_a_minute_later_with_what_came_since(
    ledger: Ledger,
) -> None:
    clock = ManualClock(T0)
    skus = KnownSkus(ledger, clock)
    with sent_statements(ledger) as sent:
        assert await skus.get() == ["MUG-STONE", "TEE-BLK-M"]
        await ledger.record_levels([level("NEW-1")])
        clock.advance(59)
        assert await skus.get() == ["MUG-STONE", "TEE-BLK-M"]
        clock.advance(1)
        assert await skus.get() == ["MUG-STONE", "NEW-1", "TEE-BLK-M"]
    assert len(sku_lists(sent)) == 2


async def test_a_failed_read_fails_its_waiters_and_the_next_call_reads_again(
    tmp_path: Path,
) -> None:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'bare.db'}") as ledger:
        skus = KnownSkus(ledger, ManualClock(T0))
        results = await asyncio.gather(skus.get(), skus.get(), return_exceptions=True)
        assert all(isinstance(r, Exception) for r in results), results  # no tables yet
        await ledger.upgrade()
        await ledger.record_levels([level("TEE-BLK-M")])
        assert await skus.get() == ["TEE-BLK-M"]


async def test_a_waiter_given_up_leaves_the_read_to_the_others(ledger: Ledger) -> None:
    skus = KnownSkus(ledger, ManualClock(T0))
    with sent_statements(ledger) as sent:
        first = asyncio.ensure_future(skus.get())
        second = asyncio.ensure_future(skus.get())
        await asyncio.sleep(0)  # both waiting on the one read
        first.cancel()
        assert await second == ["MUG-STONE", "TEE-BLK-M"]
        assert first.cancelled()
    assert len(sku_lists(sent)) == 1
