"""The cyclic collector's pause around a reconciliation (monitors/collector.py): nested
and overlapping pauses leave it as the first found it, once the last one ends; a full
diff's pause freezes what it leaves alive, and cycles frozen meanwhile are collected
within FULL_COLLECTION_EVERY such pauses."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest

from connectors.levels import Level
from monitors.collector import FULL_COLLECTION_EVERY, cyclic_gc_paused
from monitors.drift import DiffRules, SystemRules, diff
from monitors.reconcile import run_diff

RULES = DiffRules(
    systems={
        "shopify": SystemRules("shopify", "storefront", ("available",)),
        "wms": SystemRules("wms", "warehouse", ("available",)),
    },
    source_of_truth=("wms",),
)


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


class Node:
    """A container the collector tracks, weakly referable, that can be made a cycle."""

    def __init__(self) -> None:
        self.other: object = None


def walked(obj: object) -> bool:
    """Whether the collector's walks still go over ``obj`` (frozen objects are left out of
    every generation ``gc.get_objects`` lists)."""
    return any(o is obj for o in gc.get_objects())


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
    young: list[int] = []

    def started(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and not young:
            young.append(gc.get_count()[0])  # objects made since the last walk, alive

    gc.collect()
    gc.callbacks.append(started)
    try:
        drifts = diff(levels, RULES, now=now)
        [[] for _ in range(1_000)]  # a walk due since the pause ended runs by now
    finally:
        gc.callbacks.remove(started)
    assert sorted((d.sku, d.location, d.system) for d in drifts) == [
        ("SKU-00000", f"loc{j}", "shopify") for j in range(3)
    ]
    assert young
    # about 2,000 here (the 1,000 lists above among them), about 36,000 with the grid
    assert young[0] < 6_000


def test_a_full_diffs_pause_leaves_what_it_kept_out_of_later_walks() -> None:
    """The read's levels, kept by the drift job until its next full diff, are frozen when
    the pause ends, so the collections in between do not walk them again (about 0.9 s of
    CPU each at 100,000 SKUs × 5 locations; BENCHMARKS.md, issue 16)."""
    with cyclic_gc_paused(freeze=True):
        kept = Node()
    assert gc.isenabled()
    assert not walked(kept)
    gc.collect()  # a full collection after the pause leaves it where it is
    assert not walked(kept)
    assert isinstance(kept, Node)  # and reference counting still holds it, alive


def test_a_targeted_pause_freezes_nothing() -> None:
    with cyclic_gc_paused():
        kept = Node()
    assert walked(kept)


def test_the_freeze_waits_for_the_last_pause_to_end() -> None:
    with cyclic_gc_paused():
        with cyclic_gc_paused(freeze=True):
            kept = Node()
        assert walked(kept)  # the outer pause is still on: the diff is not over
    assert not walked(kept)


def test_a_targeted_pause_inside_a_full_one_does_not_cancel_its_freeze() -> None:
    # a /drift command's diff while the full diff runs
    with cyclic_gc_paused(freeze=True), cyclic_gc_paused():
        kept = Node()
    assert not walked(kept)


def test_a_collector_that_was_off_is_not_frozen_either() -> None:
    gc.disable()
    with cyclic_gc_paused(freeze=True):
        kept = Node()
    assert not gc.isenabled()
    assert walked(kept)


def test_cycles_frozen_by_a_pause_are_collected_within_a_few_full_diffs() -> None:
    """Cyclic garbage alive when a pause freezes waits, but not for ever: a freezing
    pause runs a full collection first on every FULL_COLLECTION_EVERY-th end."""
    with cyclic_gc_paused(freeze=True):
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: reference counting alone never frees it
        gone = weakref.ref(a)
        del a, b
    pauses = 1
    while gone() is not None and pauses <= FULL_COLLECTION_EVERY:
        [[] for _ in range(10_000)]  # the service's ordinary work between full diffs
        with cyclic_gc_paused(freeze=True):
            pass
        pauses += 1
    assert gone() is None, f"a frozen cycle outlived {FULL_COLLECTION_EVERY} full diffs"


class Listed:
    """A system whose every read is the levels given (all ``run_diff`` asks of one)."""

    writable = False

    def __init__(self, name: str, levels: list[Level]) -> None:
        self.name, self.levels = name, levels

    async def read_levels(self, skus: Sequence[str] | None = None) -> list[Level]:
        return [lv for lv in self.levels if skus is None or lv.sku in skus]


async def test_run_diff_freezes_after_a_full_diff_and_not_after_a_targeted_one() -> None:
    now = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
    systems = [
        Listed(name, [Level(name, "SKU-1", "loc1", {"available": 4}, now)])
        for name in ("shopify", "wms")
    ]
    before_targeted = Node()
    await run_diff(systems, RULES, None, skus=["SKU-1"])  # /drift SKU-1
    assert walked(before_targeted)
    await run_diff(systems, RULES, None)  # the drift job's full diff
    assert not walked(before_targeted)
