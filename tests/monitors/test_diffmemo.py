"""The memo of the last full diff (``monitors.diffmemo``): a diff that judges only the
cells that changed since finds exactly what the whole diff finds, read after read, however
the reads change (quantities, flags, levels gone or added, order, times, rules)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from operator import attrgetter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_drift_fast_path import NOW, worlds

from connectors.levels import Level, observed_again, tuple_map
from monitors.diffmemo import DiffMemo, _Coded, _coded
from monitors.drift import DiffRules, SystemRules, Threshold, diff


def judged(memo: DiffMemo, levels: list[Level], rules: DiffRules, **kw: object) -> list:
    """``memo.diff``, then ``settle`` (as run_diff does once the read is recorded)."""
    drifts = memo.diff(levels, rules, **kw)  # type: ignore[arg-type]
    memo.settle()
    return drifts


moves = st.lists(
    st.one_of(
        st.tuples(st.just("same")),
        st.tuples(st.just("quantity"), st.integers(0, 40), st.integers(-3, 3)),
        st.tuples(st.just("flags"), st.integers(0, 40), st.booleans()),
        st.tuples(st.just("drop"), st.integers(0, 40)),
        st.tuples(st.just("twice"), st.integers(0, 40)),
        st.tuples(st.just("late"), st.integers(0, 40)),
        st.tuples(st.just("swap"), st.integers(0, 40), st.integers(0, 40)),
        st.tuples(st.just("rebuilt"), st.integers(0, 40)),
        st.tuples(
            st.just("system"), st.integers(0, 40), st.sampled_from(["shopify", "wms", "erp"])
        ),
        st.tuples(st.just("threshold"), st.integers(0, 3)),
        st.tuples(st.just("changed"), st.integers(0, 40)),
        st.tuples(st.just("source"), st.integers(0, 40)),
    ),
    min_size=1,
    max_size=6,
)


def _moved(levels: list[Level], move: tuple, at: timedelta) -> list[Level]:
    """The next read: every level observed again at ``NOW + at`` (the same objects, as a
    connector's memo gives them), then ``move`` applied."""
    read = [observed_again(NOW + at, level) for level in levels]
    kind, *args = move
    if not read or kind in ("same", "threshold"):
        return read
    i = args[0] % len(read)
    level = read[i]
    if kind == "quantity":
        values = {state: q + args[1] for state, q in level.quantities.items()}
        read[i] = level._replace(quantities=tuple_map(values, values.values()))
    elif kind == "flags":
        read[i] = level._replace(flags={"tracked": args[1]})
    elif kind == "drop":
        del read[i]
    elif kind == "twice":  # the system reports another item for the SKU there
        read.insert(i, level._replace(refs={"inventory_item_id": "another"}))
    elif kind == "late":  # a level the connector did not see again
        read[i] = levels[i]
    elif kind == "swap":
        j = args[1] % len(read)
        read[i], read[j] = read[j], read[i]
    elif kind == "rebuilt":  # equal values in new objects: a read with no memo
        read[i] = _rebuilt(level)
    elif kind == "system":  # the same level, reported by another system
        read[i] = level._replace(system=args[1])
    elif kind == "changed":  # the system says it changed, though not what it holds
        read[i] = level._replace(changed_at=NOW + at)
    elif kind == "source":
        read[i] = level._replace(source=_copy(level.source) + "-again")
    return read


#: what the ledger records of a level besides its time (what ``DiffMemo.same`` vouches for)
def _recorded(level: Level) -> tuple[object, ...]:
    return (*level[:4], *level[5:7], level.flags)


def _copy(text: str) -> str:
    """An equal string, a new object (two or more characters: shorter ones are shared)."""
    return text[:1] + text[1:]


def _rebuilt(level: Level) -> Level:
    """``level`` as a connector with no memo reads it again: every field a new object
    with the same value."""
    quantities = tuple_map(list(level.quantities), list(level.quantities.values()))
    return level._replace(
        sku=_copy(level.sku),
        location=_copy(level.location),
        quantities=quantities,
        flags=dict(level.flags),
    )


@settings(max_examples=300, deadline=None)
@given(worlds(), moves)
def test_reads_diffed_with_the_memo_drift_as_diffed_whole(
    world: tuple[list[Level], DiffRules], steps: list[tuple]
) -> None:
    levels, rules = world
    rules = replace(rules, bundles={})  # a memo of rules with bundles diffs whole
    memo = DiffMemo()
    assert memo.diff(levels, rules, now=NOW) == diff(levels, rules, now=NOW)
    read = object()  # the read's record (ledger.RecordResult.read)
    memo.settle(read)
    for n, move in enumerate(steps, 1):
        at = timedelta(seconds=10 * n)
        before, levels = levels, _moved(levels, move, at)
        if move[0] == "threshold":
            rules = replace(rules, threshold=lambda sku, t=move[1]: Threshold(t))
        drifts = memo.diff(levels, rules, now=NOW + at)
        assert drifts == diff(levels, rules, now=NOW + at)
        if memo.same is not None:  # what it tells the ledger is so, of the read recorded
            assert memo.since is read
            assert memo.same.tolist() == [
                i < len(before) and _recorded(level) == _recorded(before[i])
                for i, level in enumerate(levels)
            ]
        read = object()
        memo.settle(read)


def _world(n: int) -> tuple[list[Level], DiffRules]:
    """Two systems agreeing on ``n`` SKUs at one location, read as connectors read."""
    rules = DiffRules(
        systems={
            "shopify": SystemRules("shopify", "storefront", ("available",), 900.0),
            "wms": SystemRules("wms", "warehouse", ("available",), 900.0),
        },
        source_of_truth=("wms",),
    )
    levels = [
        Level(system, f"SKU-{i}", "east", tuple_map(("available",), (5,)), NOW)
        for system in ("wms", "shopify")
        for i in range(n)
    ]
    return levels, rules


def test_a_drift_that_appears_and_goes_between_quiet_reads_is_found_and_then_gone() -> None:
    levels, rules = _world(50)
    memo = DiffMemo()
    assert judged(memo, levels, rules) == []
    second = [observed_again(NOW + timedelta(minutes=1), lv) for lv in levels]
    second[60] = second[60]._replace(quantities=tuple_map(("available",), (9,)))
    [drift] = judged(memo, second, rules)
    assert not memo.whole  # only the changed cell was judged
    assert (drift.sku, drift.system, drift.kind, drift.gap) == (
        "SKU-10",
        "shopify",
        "oversell_risk",
        4,
    )
    # the drift is judged again while it lasts: it says when each system last saw it
    third = [observed_again(NOW + timedelta(minutes=2), lv) for lv in second]
    [again] = judged(memo, third, rules)
    assert not memo.whole
    assert again.observed_at["shopify"] == NOW + timedelta(minutes=2)
    assert [again] == diff(third, rules)
    fourth = [observed_again(NOW + timedelta(minutes=3), lv) for lv in levels]
    assert judged(memo, fourth, rules) == []


def test_a_level_gone_stale_is_found_though_nothing_else_changed() -> None:
    levels, rules = _world(20)
    memo = DiffMemo()
    assert judged(memo, levels, rules) == []
    later = NOW + timedelta(seconds=901)
    second = [observed_again(later, lv) for lv in levels]
    second[3] = levels[3]  # the WMS did not report SKU-3 again: its level is 901 s old
    drifts = judged(memo, second, rules)
    assert drifts == diff(second, rules)
    assert [(d.sku, d.system, d.kind) for d in drifts] == [("SKU-3", "wms", "stale")]


def _again(levels: list[Level], minutes: int) -> list[Level]:
    return [observed_again(NOW + timedelta(minutes=minutes), lv) for lv in levels]


def test_a_storefront_level_no_longer_tracked_is_found() -> None:
    levels, rules = _world(20)
    memo = DiffMemo()
    assert judged(memo, levels, rules) == []
    second = _again(levels, 1)
    second[25] = second[25]._replace(flags={"tracked": False})  # the same quantities
    drifts = judged(memo, second, rules)
    assert not memo.whole
    assert [(d.sku, d.system, d.kind) for d in drifts] == [("SKU-5", "shopify", "untracked")]
    assert drifts == diff(second, rules)


def test_a_level_that_moved_to_another_sku_leaves_its_old_cell_judged_again() -> None:
    levels, rules = _world(20)
    memo = DiffMemo()
    assert judged(memo, levels, rules) == []
    second = _again(levels, 1)
    second[7] = second[7]._replace(sku="SKU-NEW")  # the WMS's SKU-7, renamed: same quantities
    drifts = judged(memo, second, rules)
    assert drifts == diff(second, rules)
    assert {(d.sku, d.kind) for d in drifts} >= {("SKU-7", "missing"), ("SKU-NEW", "missing")}


def test_a_read_rebuilt_equal_judges_only_what_changed() -> None:
    """A connector with no memo of its own builds every level anew each read: values
    equal to the held ones are as quiet as the same objects."""
    levels, rules = _world(50)
    memo = DiffMemo()
    assert judged(memo, levels, rules) == []
    second = [_rebuilt(lv) for lv in _again(levels, 1)]
    pairs = zip(levels, second, strict=True)
    assert not any(a.sku is b.sku or a.quantities is b.quantities for a, b in pairs)
    second[60] = second[60]._replace(quantities=tuple_map(("available",), (9,)))
    second[61] = second[61]._replace(flags={"tracked": False})
    drifts = judged(memo, second, rules)
    assert not memo.whole
    assert drifts == diff(second, rules)
    assert [(d.sku, d.kind) for d in drifts] == [
        ("SKU-10", "oversell_risk"),
        ("SKU-11", "untracked"),
    ]
    # the changed levels are held from now on: back to what they were, they are judged
    third = _again(levels, 2)
    assert judged(memo, third, rules) == diff(third, rules) == []
    assert not memo.whole


def test_a_level_another_system_reports_at_the_same_place_is_judged_again() -> None:
    """The read is as long, but a level at one place in it is now another system's: its
    cell has one system's level twice and the other's not at all."""
    levels, rules = _world(20)
    memo = DiffMemo()
    assert judged(memo, levels, rules) == []
    second = _again(levels, 1)
    second[5] = second[5]._replace(system="shopify")  # was the WMS's SKU-5
    drifts = judged(memo, second, rules)
    assert not memo.whole
    assert drifts == diff(second, rules)
    # the WMS no longer reports SKU-5 (Shopify's two levels there, with no references
    # that tell two items apart, are read as one)
    assert [(d.sku, d.kind) for d in drifts] == [("SKU-5", "missing")]


def test_rules_that_changed_judge_every_cell_again() -> None:
    levels, rules = _world(20)
    levels[25] = levels[25]._replace(quantities=tuple_map(("available",), (6,)))  # gap 1
    lenient = replace(rules, threshold=lambda sku: Threshold(2))
    memo = DiffMemo()
    assert judged(memo, levels, lenient) == []
    second = _again(levels, 1)
    [drift] = judged(memo, second, rules)  # exact again: the gap of 1 is a drift
    assert memo.whole
    assert (drift.sku, drift.gap) == ("SKU-5", 1)


def test_a_second_item_for_a_sku_is_found_though_only_its_references_changed() -> None:
    levels, rules = _world(20)
    item = {"inventory_item_id": "gid://shopify/InventoryItem/1"}
    levels[3] = levels[3]._replace(refs=item)
    levels.insert(4, levels[3])  # the WMS reports SKU-3's item twice: one item
    memo = DiffMemo()
    assert judged(memo, levels, rules) == []
    second = _again(levels, 1)
    second[4] = second[4]._replace(refs={"inventory_item_id": "gid://shopify/InventoryItem/2"})
    drifts = judged(memo, second, rules)
    assert not memo.whole
    assert [(d.sku, d.system, d.kind) for d in drifts] == [("SKU-3", "wms", "duplicate_sku")]
    assert drifts == diff(second, rules)


def test_a_column_of_few_values_reads_as_the_list_it_stands_for() -> None:
    """Systems and sources are held as codes (2 bytes a level): read back, set at a
    position, and past 65,535 distinct values, they are still the values."""
    levels = [
        Level(system, f"SKU-{i}", "east", tuple_map((), ()), NOW, source=source)
        for i, (system, source) in enumerate(
            [("shopify", "bulk"), ("wms", "poll"), ("shopify", "bulk"), ("erp", "csv")] * 3
        )
    ]
    column = _coded(levels, attrgetter("source"))
    assert isinstance(column, _Coded)
    assert list(column) == [lv.source for lv in levels]
    assert column.table == ["bulk", "poll", "csv"]
    column[5] = "webhook"
    assert column[5] == "webhook"
    assert list(column)[4:7] == ["bulk", "webhook", "bulk"]
    for n in range(70_000):  # wider than 2 bytes: codes widened, nothing lost
        column[n % len(levels)] = f"source-{n}"
    assert column.codes.dtype == np.uint32
    last = {n % len(levels): f"source-{n}" for n in range(70_000)}
    assert list(column) == [last[i] for i in range(len(levels))]
    assert column[3] == "source-69999"


def test_a_column_of_values_that_cannot_be_coded_is_a_list() -> None:
    levels = [Level("shopify", "SKU", "east", tuple_map((), ()), NOW, source=[])]  # type: ignore[arg-type]
    assert _coded(levels, attrgetter("source")) == [[]]


def test_a_later_read_with_a_value_that_cannot_be_coded_is_diffed_whole() -> None:
    """Sources are strings by the Level contract, but a connector's bug must not fail the
    diff: the memo lets go of what it held and judges the read as a whole diff would."""
    levels, rules = _world(20)
    memo = DiffMemo()
    assert judged(memo, levels, rules) == []
    later = NOW + timedelta(minutes=1)
    second = [observed_again(later, lv) for lv in levels]
    second[3] = second[3]._replace(source=["not", "a", "string"])  # type: ignore[arg-type]
    second[30] = second[30]._replace(quantities=tuple_map(("available",), (9,)))
    assert memo.diff(second, rules, now=later) == diff(second, rules, now=later)
    assert memo.whole
    # nothing held: the next read is judged whole too, and still as diff judges it
    third = [observed_again(later + timedelta(minutes=1), lv) for lv in second]
    at = later + timedelta(minutes=1)
    assert memo.diff(third, rules, now=at) == diff(third, rules, now=at)
    assert memo.whole
