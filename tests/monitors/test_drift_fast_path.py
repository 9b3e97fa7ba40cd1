"""The drift engine's fast path (a quiet cell skipped without being built) against its
general path, on random small worlds: every drift, field by field, must be the same."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.levels import Level, tuple_map
from monitors.drift import DiffRules, SystemRules, Threshold, _Context, _diff, _fast_plan

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SKUS = ("TEE", "MUG", "KIT")  # KIT may be a bundle of TEE and MUG
LOCATIONS = ("east", "west")
SLA = 900.0

states = st.sampled_from(
    [
        ("available",),
        ("available", "committed"),
        ("on_hand",),
        ("available", "committed", "on_hand"),
    ]
)
#: near the SLA's edge on both sides, and well inside it
ages = st.sampled_from(
    [0.0, 0.0, 0.0, 0.0, 1.0, SLA - 0.001, SLA - 0.0000005, SLA, SLA + 0.0000005, 901.0]
)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Level], DiffRules]:
    systems = {
        "shopify": SystemRules(
            "shopify", "storefront", draw(states), draw(st.sampled_from([SLA, None]))
        ),
        "wms": SystemRules("wms", "warehouse", draw(states), SLA),
        "erp": SystemRules(
            "erp", "erp", draw(states), draw(st.sampled_from([SLA, SLA, SLA, 1e300]))
        ),
    }
    truth = tuple(
        draw(st.permutations(["wms", "erp", "shopify", "pos"]))[: draw(st.integers(0, 3))]
    )
    safety = draw(st.dictionaries(st.sampled_from(SKUS), st.integers(0, 3), max_size=2))
    thresholds = draw(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 10.0])))
    packs = draw(st.sampled_from([1, 2, 6]))
    bundles = {"KIT": {"TEE": 1, "MUG": 2}} if draw(st.booleans()) else {}
    uncovered = draw(st.sets(st.sampled_from([(s, loc) for s in systems for loc in LOCATIONS])))
    rules = DiffRules(
        systems=systems,
        source_of_truth=truth,
        threshold=lambda sku: Threshold(*thresholds),
        safety_stock=lambda sku, location: safety.get(sku, 0),
        large=Threshold(5, 20.0),
        bundles=bundles,
        pack_size=lambda system, sku: packs if system == "erp" else 1,
        low_stock=lambda sku, location: 5,
        covers=lambda system, location: (system, location) not in uncovered,
    )
    levels = []
    shared: dict[tuple[tuple[str, object], ...], Mapping[str, object]] = {}
    for sku in SKUS:
        for location in LOCATIONS:
            base = draw(st.integers(-1, 9))  # mostly agreeing systems: the fast path's case
            for system in ("shopify", "wms", "erp", "pos"):
                if not draw(st.integers(0, 6)):
                    continue
                spec = systems.get(system, systems["wms"])
                value = base + draw(st.sampled_from([0, 0, 0, 0, -1, 1, 4, -base]))
                # the value spread over every compared state (zeros for most)
                compared = spec.compare_states
                rest = draw(st.lists(st.sampled_from([0, 0, 1, 4]), min_size=len(compared) - 1))
                rest = rest[: len(compared) - 1]
                quantities = {
                    compared[0]: value - sum(rest),
                    **dict(zip(compared[1:], rest, strict=True)),
                }
                if draw(st.integers(0, 5)) == 0:  # now and then, any states at all
                    quantities = draw(
                        st.dictionaries(
                            st.sampled_from(["available", "committed", "on_hand"]),
                            st.integers(-2, 8),
                        )
                    )
                flags = draw(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "tracked": st.booleans(),
                            "inventory_policy": st.sampled_from(["DENY", "continue"]),
                        },
                    )
                )
                # as connectors build them: TupleMaps (read by position on the fast
                # path), flags shared between levels (judged once per map)
                if draw(st.booleans()):
                    quantities = tuple_map(quantities, quantities.values())
                if flags and draw(st.booleans()):
                    flags = shared.setdefault(
                        tuple(sorted(flags.items())), tuple_map(flags, flags.values())
                    )
                levels.append(
                    Level(
                        system,
                        sku,
                        location,
                        quantities,
                        NOW - timedelta(seconds=draw(ages)),
                        changed_at=draw(st.sampled_from([None, NOW - timedelta(hours=1)])),
                        flags=flags,
                    )
                )
    return draw(st.permutations(levels)), rules


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_the_fast_path_finds_exactly_what_the_general_path_finds(
    world: tuple[list[Level], DiffRules],
) -> None:
    levels, rules = world
    assert _diff(levels, rules, NOW, fast=True) == _diff(levels, rules, NOW, fast=False)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 50), st.integers(0, 50), st.integers(0, 3))
def test_agreeing_systems_within_the_threshold_are_quiet_on_both_paths(
    truth: int, shown: int, absolute: int
) -> None:
    rules = DiffRules(
        systems={
            "shopify": SystemRules("shopify", "storefront", ("available",), SLA),
            "wms": SystemRules("wms", "warehouse", ("available",), SLA),
        },
        source_of_truth=("wms",),
        threshold=lambda sku: Threshold(absolute),
    )
    levels = [
        Level("wms", "TEE", "east", {"available": truth}, NOW),
        Level("shopify", "TEE", "east", {"available": shown}, NOW),
    ]
    fast, general = _diff(levels, rules, NOW, fast=True), _diff(levels, rules, NOW, fast=False)
    assert fast == general
    assert _fast_plan(_Context(rules, NOW, {})), "these rules take the fast path"
    assert [d.kind for d in fast] == (
        []
        if abs(shown - truth) <= absolute
        else ["oversell_risk" if shown > truth else "undersell"]
    )


def test_a_negative_absolute_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Threshold(absolute=-1)


@pytest.mark.parametrize("committed", [0, 3])
def test_every_compared_state_of_a_tuple_map_counts_on_the_fast_path(committed: int) -> None:
    """A connector's quantities are TupleMaps, read by position on the fast path: a
    storefront comparing available + committed drifts by what committed adds."""
    rules = DiffRules(
        systems={
            "wms": SystemRules("wms", "warehouse", ("available",), SLA),
            "shopify": SystemRules("shopify", "storefront", ("available", "committed"), SLA),
        },
        source_of_truth=("wms",),
        threshold=lambda sku: Threshold(1),
    )
    levels = [
        Level("wms", "TEE", "east", tuple_map(("available",), (5,)), NOW),
        Level("shopify", "TEE", "east", tuple_map(("available", "committed"), (5, committed)), NOW),
    ]
    fast = _diff(levels, rules, NOW, fast=True)
    assert fast == _diff(levels, rules, NOW, fast=False)
    assert [(d.kind, d.actual, d.expected) for d in fast] == (
        [("oversell_risk", 8, 5)] if committed else []
    )
