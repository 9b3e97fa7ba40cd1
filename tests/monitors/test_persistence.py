"""Persistence (debounce): which drifts open incidents, diff after diff. Each scenario is
a sequence of diffs (seconds after the first, the drifts seen) and, by hand, the
drifts confirmed at each."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from monitors.config import config_from_dict
from monitors.drift import Drift
from monitors.persistence import (
    Persistence,
    Seen,
    debounce,
    scope,
    state_from_json,
    state_to_json,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def drift(
    sku: str = "TEE",
    kind: str = "oversell_risk",
    *,
    system: str = "shopify",
    large: bool = False,
) -> Drift:
    return Drift(
        sku=sku,
        location="east",
        system=system,
        kind=kind,
        truth_system="wms",
        expected=30,
        actual=42,
        values={"wms": 30, system: 42},
        observed_at={},
        large=large,
    )


TEE = drift("TEE")
MUG = drift("MUG")
TEE_LARGE = drift("TEE", large=True)
TEE_UNDER = drift("TEE", "undersell")

Step = tuple[float, list[Drift], list[Drift]]


def play(rules: Persistence, steps: list[Step]) -> None:
    state: Mapping[str, Seen] = {}
    for i, (at, seen, want) in enumerate(steps):
        state, confirmed = debounce(state, seen, T0 + timedelta(seconds=at), rules)
        assert confirmed == want, f"diff {i} at +{at}s"


SCENARIOS: dict[str, tuple[Persistence, list[Step]]] = {
    "seen in 2 consecutive diffs": (
        Persistence(diffs=2),
        [(0, [TEE], []), (900, [TEE], [TEE]), (1800, [TEE], [TEE])],
    ),
    "an in-flight order: seen once, then gone": (
        Persistence(diffs=2),
        [(0, [TEE], []), (900, [], []), (1800, [], [])],
    ),
    "gone in between: starts over": (
        Persistence(diffs=2),
        [(0, [TEE], []), (900, [], []), (1800, [TEE], []), (2700, [TEE], [TEE])],
    ),
    "3 diffs": (
        Persistence(diffs=3),
        [(0, [TEE], []), (60, [TEE], []), (120, [TEE], [TEE])],
    ),
    "1 diff: at once": (Persistence(diffs=1), [(0, [TEE], [TEE])]),
    "large: at once": (
        Persistence(diffs=2),
        [(0, [TEE_LARGE], [TEE_LARGE]), (900, [TEE_LARGE], [TEE_LARGE])],
    ),
    "2 diffs within 10 minutes are not enough when 10 minutes are required": (
        Persistence(diffs=2, seconds=600),
        [(0, [TEE], []), (300, [TEE], []), (599, [TEE], []), (600, [TEE], [TEE])],
    ),
    "10 minutes but seen once are not enough": (
        Persistence(diffs=2, seconds=600),
        [(0, [TEE], []), (900, [], []), (1500, [TEE], []), (2100, [TEE], [TEE])],
    ),
    "time-based: 1 diff and 10 minutes": (
        Persistence(diffs=1, seconds=600),
        [(0, [TEE], []), (600, [TEE], [TEE])],
    ),
    "large skips the wait for time too": (
        Persistence(diffs=2, seconds=600),
        [(0, [TEE_LARGE], [TEE_LARGE])],
    ),
    "a drift turning from oversell to undersell is a new drift": (
        Persistence(diffs=2),
        [(0, [TEE], []), (900, [TEE_UNDER], []), (1800, [TEE_UNDER], [TEE_UNDER])],
    ),
    "each drift counts on its own": (
        Persistence(diffs=2),
        [(0, [TEE], []), (900, [TEE, MUG], [TEE]), (1800, [MUG], [MUG]), (2700, [TEE], [])],
    ),
    "growing large mid-way confirms at once": (
        Persistence(diffs=3),
        [(0, [TEE], []), (900, [TEE_LARGE], [TEE_LARGE])],
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_debounce(name: str) -> None:
    play(*SCENARIOS[name])


@pytest.mark.parametrize("kind", ["stale", "untracked", "oversell_policy"])
def test_states_no_order_explains_are_confirmed_at_once(kind: str) -> None:
    d = drift(kind=kind)
    _, confirmed = debounce({}, [d], T0, Persistence(diffs=2, seconds=600))
    assert confirmed == [d]


@pytest.mark.parametrize("kind", ["negative", "missing", "undersell", "count_mismatch"])
def test_count_drifts_wait(kind: str) -> None:
    _, confirmed = debounce({}, [drift(kind=kind)], T0, Persistence(diffs=2))
    assert confirmed == []


def test_the_state_is_first_seen_and_count_per_fingerprint() -> None:
    state, _ = debounce({}, [TEE], T0, Persistence())
    state, _ = debounce(state, [TEE, MUG], T0 + timedelta(minutes=15), Persistence())
    assert state == {
        "drift:oversell_risk:shopify:TEE:east": Seen(T0, 2, "TEE", "east", "shopify"),
        "drift:oversell_risk:shopify:MUG:east": Seen(
            T0 + timedelta(minutes=15), 1, "MUG", "east", "shopify"
        ),
    }


def test_debounce_does_not_change_the_state_it_is_given() -> None:
    before = {TEE.fingerprint: Seen(T0, 1, "TEE", "east", "shopify")}
    copy = dict(before)
    debounce(before, [], T0 + timedelta(minutes=15), Persistence())
    debounce(before, [TEE], T0 + timedelta(minutes=15), Persistence())
    assert before == copy


def test_the_same_drift_twice_in_one_diff_counts_once() -> None:
    state, confirmed = debounce({}, [TEE, TEE], T0, Persistence(diffs=2))
    assert confirmed == []
    assert state[TEE.fingerprint].count == 1


def test_a_targeted_diff_does_not_reset_what_it_did_not_look_at() -> None:
    rules = Persistence(diffs=2)
    state, _ = debounce({}, [TEE], T0, rules)
    # a diff of MUG only: TEE was not looked at, so it is neither reset nor counted
    state, _ = debounce(state, [], T0 + timedelta(minutes=1), rules, covered=scope(skus={"MUG"}))
    assert state[TEE.fingerprint] == Seen(T0, 1, "TEE", "east", "shopify")
    state, confirmed = debounce(state, [TEE], T0 + timedelta(minutes=15), rules)
    assert confirmed == [TEE]


def test_a_targeted_diff_of_the_sku_resets_it() -> None:
    rules = Persistence(diffs=2)
    state, _ = debounce({}, [TEE], T0, rules)
    state, _ = debounce(state, [], T0 + timedelta(minutes=1), rules, covered=scope(skus={"TEE"}))
    assert state == {}


def test_a_system_that_could_not_be_read_keeps_its_drifts() -> None:
    rules = Persistence(diffs=2)
    erp = drift("TEE", "count_mismatch", system="erp")
    state, _ = debounce({}, [TEE, erp], T0, rules)
    state, _ = debounce(
        state, [TEE], T0 + timedelta(minutes=15), rules, covered=scope(systems={"shopify", "wms"})
    )
    assert state[erp.fingerprint].count == 1
    _, confirmed = debounce(state, [erp], T0 + timedelta(minutes=30), rules)
    assert confirmed == [erp]


def test_the_state_survives_json() -> None:
    state, _ = debounce({}, [TEE, MUG], T0, Persistence())
    data = state_to_json(state)
    assert data[TEE.fingerprint] == {
        "first_seen": "2026-11-02T09:00:00+00:00",
        "count": 1,
        "sku": "TEE",
        "location": "east",
        "system": "shopify",
    }
    assert state_from_json(data) == state


def test_persistence_from_the_configuration() -> None:
    raw = tomllib.loads(
        """
        source_of_truth = ["wms"]
        [[systems]]
        name = "wms"
        kind = "rest"
        base_url = "https://wms.example.com"
        list = { path = "/levels" }
        fields = { sku = "sku", location = "wh", quantities = { available = "free" } }
        [locations.east]
        wms = "E"
        [thresholds]
        persistence_diffs = 3
        persistence_seconds = 600
        [slack]
        alerts_channel = "C0123ABCD"
        """
    )
    assert Persistence.from_config(config_from_dict(raw)) == Persistence(diffs=3, seconds=600.0)
    del raw["thresholds"]
    assert Persistence.from_config(config_from_dict(raw)) == Persistence(diffs=2, seconds=None)
