"""A full read handed to the ledger as columns (``level_blocks``): the blocks hold exactly
the observations the levels make, whatever their quantities are held in, and their
columns read as the lists they stand for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.levels import Level, build_level, tuple_map
from monitors.diffmemo import DiffMemo
from monitors.drift import DiffRules, SystemRules
from monitors.reconcile import level_blocks, observations

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
STATES = st.sampled_from(["on_hand", "available", "committed", "incoming", "damaged"])


def level(system: str, sku: str, quantities: object, minutes: int = 0) -> Level:
    return build_level(
        system=system,
        sku=sku,
        location="east",
        quantities=quantities,  # type: ignore[arg-type]
        observed_at=T0 + timedelta(minutes=minutes),
        changed_at=None if minutes % 2 else T0,
        source="bulk" if minutes % 3 else "poll",
    )


@st.composite
def reads(draw: st.DrawFn) -> list[Level]:
    made: list[Level] = []
    for system in draw(st.lists(st.sampled_from(["shopify", "wms", "erp"]), max_size=4)):
        for n in range(draw(st.integers(0, 6))):
            pairs = draw(st.lists(st.tuples(STATES, st.integers(-5, 10**6)), max_size=4))
            held = draw(st.sampled_from(["tuple_map", "dict"]))
            quantities = tuple_map(*zip(*pairs, strict=True)) if pairs else tuple_map((), ())
            if held == "dict":
                quantities = dict(pairs)
            made.append(level(system, f"SKU-{n}", quantities, minutes=n))
    return made


@given(reads())
def test_blocks_hold_exactly_the_observations_of_the_levels(levels: list[Level]) -> None:
    from_blocks = [o for block in level_blocks(levels) for o in block.observations()]
    assert sorted(from_blocks) == sorted(observations(levels))


def test_one_system_reporting_the_same_states_is_one_block() -> None:
    levels = [
        level("shopify", f"SKU-{n}", tuple_map(("on_hand", "available"), (n, n + 1)))
        for n in range(5)
    ]
    levels.append(level("wms", "SKU-0", {"on_hand": 3}))
    shopify, wms = level_blocks(levels)
    assert (shopify.system, len(shopify)) == ("shopify", 5)
    assert shopify.states == ("on_hand", "available")
    assert list(shopify.quantities) == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    assert (wms.system, wms.states, list(wms.quantities)) == ("wms", ("on_hand",), [3])


def test_columns_read_as_the_lists_they_stand_for() -> None:
    levels = [
        level("shopify", f"SKU-{n}", tuple_map(("on_hand", "available"), (10 * n, 10 * n + 1)), n)
        for n in range(4)
    ]
    (block,) = level_blocks(levels)
    values = [0, 1, 10, 11, 20, 21, 30, 31]
    quantities = block.quantities
    assert len(quantities) == 8
    assert [quantities[i] for i in range(8)] == values
    assert quantities[-1] == 31
    for start in range(-9, 9):
        for stop in range(-9, 10):
            assert quantities[start:stop] == values[start:stop]
    assert quantities[::2] == values[::2]
    with pytest.raises(IndexError):
        quantities[8]
    assert block.skus[1:3] == ["SKU-1", "SKU-2"]
    assert block.skus[-1] == "SKU-3"
    assert list(block.sources) == ["poll", "bulk", "bulk", "poll"]
    assert list(block.changed_at) == [T0, None, T0, None]
    assert list(block.observations([2])) == [o for o in observations(levels) if o.sku == "SKU-2"]


def test_a_block_says_where_its_levels_sit_in_the_read() -> None:
    kinds = ("on_hand", "available")
    levels = [level("shopify", f"SKU-{n}", tuple_map(kinds, (n, n))) for n in range(3)]
    levels += [level("wms", f"SKU-{n}", tuple_map(kinds, (n, n))) for n in range(2)]
    levels += [level("erp", "SKU-0", {"on_hand": 1}), level("erp", "SKU-1", {"available": 1})]
    shopify, wms, *erp = level_blocks(levels)
    assert shopify.place is not None
    assert shopify.place.positions == range(0, 3)
    assert wms.place is not None
    assert wms.place.positions == range(3, 5)
    # a system whose levels report different states: its blocks are not one run of the read
    assert [block.place for block in erp] == [None, None]
    assert shopify.place.since is None
    assert shopify.place.same is None


def test_a_block_carries_what_the_memo_found_the_same() -> None:
    rules = DiffRules(
        systems={
            "shopify": SystemRules("shopify", "storefront", ("available",), None),
            "wms": SystemRules("wms", "warehouse", ("available",), None),
        },
        source_of_truth=("wms",),
    )
    kinds = ("on_hand", "available")
    levels = [
        level(system, f"SKU-{n}", tuple_map(kinds, (n, n)))
        for system in ("shopify", "wms")
        for n in range(3)
    ]
    memo = DiffMemo()
    memo.diff(levels, rules)
    read = object()
    memo.settle(read)
    again = [*levels[:4], levels[4]._replace(source="webhook"), levels[5]]
    memo.diff(again, rules)
    shopify, wms = level_blocks(again, memo)
    assert shopify.place is not None
    assert wms.place is not None
    assert (shopify.place.since, list(shopify.place.same)) == (read, [True] * 3)
    assert (wms.place.since, list(wms.place.same)) == (read, [True, False, True])
