"""The cyclic collector's pause around a reconciliation (monitors/collector.py): nested
and overlapping pauses leave it as the first found it, once the last one ends."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connectors.levels import Level
from monitors.collector import cyclic_gc_paused
from monitors.drift import DiffRules, SystemRules, diff


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


async def test_overlapping_pauses_turn_the_collector_back_on_after_the_last() -> None:
    first_in, second_in, first_out = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: list[tuple[str, bool]] = []

    async def first() -> None:
        with cyclic_gc_paused():
            first_in.set()
            await second_in.wait()
        seen.append(("first ended", gc.isenabled()))
        first_out.set()

    async def second() -> None:
        await first_in.wait()
        with cyclic_gc_paused():
            second_in.set()
            await first_out.wait()
            seen.append(("second still inside", gc.isenabled()))
        seen.append(("second ended", gc.isenabled()))

    await asyncio.gather(first(), second())
    assert seen == [
        ("first ended", False),
        ("second still inside", False),
        ("second ended", True),
    ]


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with cyclic_gc_paused(), cyclic_gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_an_error_inside_still_ends_the_pause() -> None:
    with pytest.raises(RuntimeError), cyclic_gc_paused():
        raise RuntimeError("the read failed")
    assert gc.isenabled()


def test_a_diff_frees_its_grid_before_the_collector_is_back_on() -> None:
    """The engine's grid (objects per cell) is gone when its pause ends: the collector's
    first walk, which starts from every object made since the last one and still alive,
    finds the drifts and little else, not the grid of 18,000 cells (a third of a
    1,000,000-row diff's time went to walking it; BENCHMARKS.md, issue 16)."""
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    levels = [
        Level(
            system=system,
            sku=f"SKU-{i:05}",
            location=f"loc{j}",
            quantities={"available": 7 + 5 * (i == 0 and system == "shopify")},
            observed_at=now,
        )
        for i in range(6_000)
        for j in range(3)
        for system in ("wms", "shopify")
    ]
    rules = DiffRules(
        systems={
            "shopify": SystemRules("shopify", "storefront", ("available",)),
            "wms": SystemRules("wms", "warehouse", ("available",)),
        },
        source_of_truth=("wms",),
    )
    young: list[int] = []

    def started(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and not young:
            young.append(gc.get_count()[0])  # objects made since the last walk, alive

    gc.collect()
    gc.callbacks.append(started)
    try:
        drifts = diff(levels, rules, now=now)
        [[] for _ in range(1_000)]  # a walk due since the pause ended runs by now
    finally:
        gc.callbacks.remove(started)
    assert sorted((d.sku, d.location, d.system) for d in drifts) == [
        ("SKU-00000", f"loc{j}", "shopify") for j in range(3)
    ]
    assert young
    # about 2,000 here (the 1,000 lists above among them), about 36,000 with the grid
    assert young[0] < 6_000
