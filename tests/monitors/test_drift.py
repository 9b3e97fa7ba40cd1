"""The drift engine, one table per concern. Every expected row is worked out by hand
from the domain (what each system says, what the truth says, what the storefront
should show), never computed by the code under test."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from connectors.levels import Level
from monitors.drift import DiffRules, Drift, SystemRules, Threshold, diff

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

SHOPIFY = SystemRules("shopify", "storefront", ("available", "committed"), sla_seconds=900)
WMS = SystemRules("wms", "warehouse", ("available", "committed"), sla_seconds=900)
ERP = SystemRules("erp", "erp", ("available",), sla_seconds=90_000)

#: Shopify against the WMS; every gap counts (threshold 0 units, 0 %).
TWO = DiffRules(systems={"shopify": SHOPIFY, "wms": WMS}, source_of_truth=("wms",))
#: Shopify, the WMS and the ERP; the WMS is the truth, the ERP the fallback.
THREE = DiffRules(
    systems={"shopify": SHOPIFY, "wms": WMS, "erp": ERP}, source_of_truth=("wms", "erp")
)


def lv(
    system: str,
    available: int,
    *,
    sku: str = "TEE",
    location: str = "east",
    committed: int | None = None,
    ago: float = 0,
    changed_ago: float | None = None,
    tracked: bool | None = None,
    policy: str | None = None,
) -> Level:
    """One level; ``ago`` seconds before NOW it was observed."""
    quantities = {"available": available}
    if committed is not None:
        quantities["committed"] = committed
    flags: dict[str, str | bool] = {}
    if tracked is not None:
        flags["tracked"] = tracked
    if policy is not None:
        flags["inventory_policy"] = policy
    return Level(
        system=system,
        sku=sku,
        location=location,
        quantities=quantities,
        observed_at=NOW - timedelta(seconds=ago),
        changed_at=None if changed_ago is None else NOW - timedelta(seconds=changed_ago),
        flags=flags,
    )


Row = tuple[str, str, str, str, int | None, int | None]


def rows(drifts: list[Drift]) -> set[Row]:
    """(kind, system, sku, location, expected, actual) of each drift."""
    got = [(d.kind, d.system, d.sku, d.location, d.expected, d.actual) for d in drifts]
    assert len(got) == len(set(got)), f"a drift reported twice: {got}"
    return set(got)


@dataclass
class Case:
    name: str
    levels: list[Level]
    want: set[Row]
    rules: DiffRules = field(default_factory=lambda: TWO)


def run(case: Case) -> None:
    assert rows(diff(case.levels, case.rules, now=NOW)) == case.want


def cases(*table: Case) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", table, ids=[c.name for c in table])


# --- the classes -----------------------------------------------------------------------


@cases(
    Case("all agree", [lv("wms", 30), lv("shopify", 30)], set()),
    Case(
        "storefront shows more than can be picked: oversell risk",
        [lv("wms", 28, committed=2), lv("shopify", 40, committed=2)],
        {("oversell_risk", "shopify", "TEE", "east", 30, 42)},
    ),
    Case(
        "storefront shows less than there is: undersell",
        [lv("wms", 30), lv("shopify", 20)],
        {("undersell", "shopify", "TEE", "east", 30, 20)},
    ),
    Case(
        "committed counts on both sides: available alone would mislead",
        [lv("wms", 25, committed=5), lv("shopify", 25, committed=5)],
        set(),
    ),
    Case(
        "negative storefront count: negative, not undersell",
        [lv("wms", 10), lv("shopify", -3)],
        {("negative", "shopify", "TEE", "east", 10, -3)},
    ),
    Case(
        "negative truth: reported at the truth; the storefront's 0 is right",
        [lv("wms", -2), lv("shopify", 0)],
        {("negative", "wms", "TEE", "east", None, -2)},
    ),
    Case(
        "in the truth, not in the storefront: missing",
        [lv("wms", 10)],
        {("missing", "shopify", "TEE", "east", 10, None)},
    ),
    Case(
        "in the truth with 0 units, not in the storefront: nothing to sell", [lv("wms", 0)], set()
    ),
    Case(
        "in the storefront, not in the truth: missing",
        [lv("shopify", 5)],
        {("missing", "shopify", "TEE", "east", None, 5)},
    ),
    Case("in the storefront with 0 units only: nothing sellable", [lv("shopify", 0)], set()),
    Case(
        "untracked on a stocked SKU",
        [lv("wms", 10), lv("shopify", 10, tracked=False)],
        {("untracked", "shopify", "TEE", "east", 10, 10)},
    ),
    Case(
        "untracked replaces the count classes: its count means nothing",
        [lv("wms", 10), lv("shopify", 50, tracked=False)],
        {("untracked", "shopify", "TEE", "east", 10, 50)},
    ),
    Case(
        "untracked while the truth holds 0: it sells what is not there",
        [lv("wms", 0), lv("shopify", 0, tracked=False)],
        {("untracked", "shopify", "TEE", "east", 0, 0)},
    ),
    Case("tracked", [lv("wms", 10), lv("shopify", 10, tracked=True)], set()),
    Case(
        "untracked SKU the truth does not stock (a gift card) with 0 shown",
        [lv("shopify", 0, tracked=False)],
        set(),
    ),
    Case(
        "CONTINUE at 0: sells when out of stock",
        [lv("wms", 0), lv("shopify", 0, policy="CONTINUE")],
        {("oversell_policy", "shopify", "TEE", "east", 0, 0)},
    ),
    Case(
        "CONTINUE with stock: not low",
        [lv("wms", 10), lv("shopify", 10, policy="CONTINUE")],
        set(),
    ),
    Case("DENY at 0", [lv("wms", 0), lv("shopify", 0, policy="DENY")], set()),
    Case(
        "CONTINUE oversold below 0: negative and the policy that allowed it",
        [lv("wms", 0), lv("shopify", -2, policy="CONTINUE")],
        {
            ("negative", "shopify", "TEE", "east", 0, -2),
            ("oversell_policy", "shopify", "TEE", "east", 0, -2),
        },
    ),
    Case(
        "CONTINUE and oversell risk are two drifts",
        [lv("wms", 0), lv("shopify", 4, policy="CONTINUE")],
        {
            ("oversell_risk", "shopify", "TEE", "east", 0, 4),
            ("oversell_policy", "shopify", "TEE", "east", 0, 4),
        },
    ),
    Case(
        "ERP disagrees: count mismatch, not oversell",
        [lv("wms", 30), lv("shopify", 30), lv("erp", 25)],
        {("count_mismatch", "erp", "TEE", "east", 30, 25)},
        THREE,
    ),
    Case(
        "ERP over: count mismatch",
        [lv("wms", 30), lv("shopify", 30), lv("erp", 31)],
        {("count_mismatch", "erp", "TEE", "east", 30, 31)},
        THREE,
    ),
    Case(
        "in the WMS, not in the ERP (below the truth in order): missing",
        [lv("wms", 30), lv("shopify", 30)],
        {("missing", "erp", "TEE", "east", 30, None)},
        THREE,
    ),
)
def test_classes(case: Case) -> None:
    run(case)


# --- source of truth: the first system in order that reports the SKU -------------------


@cases(
    Case(
        "the WMS lacks the SKU: the ERP is the truth, the WMS is reported missing",
        [lv("erp", 12), lv("shopify", 12)],
        {("missing", "wms", "TEE", "east", 12, None)},
        THREE,
    ),
    Case(
        "against the fallback truth the storefront still drifts",
        [lv("erp", 12), lv("shopify", 15)],
        {
            ("missing", "wms", "TEE", "east", 12, None),
            ("oversell_risk", "shopify", "TEE", "east", 12, 15),
        },
        THREE,
    ),
    Case(
        "the first truth wins even when the second disagrees",
        [lv("wms", 30), lv("erp", 40), lv("shopify", 40)],
        {
            ("count_mismatch", "erp", "TEE", "east", 30, 40),
            ("oversell_risk", "shopify", "TEE", "east", 30, 40),
        },
        THREE,
    ),
    Case(
        "no truth system has it; the storefront does",
        [lv("shopify", 4)],
        {("missing", "shopify", "TEE", "east", None, 4)},
        THREE,
    ),
)
def test_source_of_truth_fallback(case: Case) -> None:
    run(case)


def test_missing_says_which_side_lacks_the_sku() -> None:
    [in_truth_only] = diff([lv("wms", 10)], TWO, now=NOW)
    assert (in_truth_only.missing_from, in_truth_only.missing_side) == ("shopify", "system")
    assert in_truth_only.truth_system == "wms"

    [in_store_only] = diff([lv("shopify", 5)], TWO, now=NOW)
    assert (in_store_only.missing_from, in_store_only.missing_side) == ("wms", "truth")
    assert in_store_only.truth_system is None

    [fallback, _] = sorted(
        diff([lv("erp", 12), lv("shopify", 15)], THREE, now=NOW), key=lambda d: d.kind
    )
    assert (fallback.kind, fallback.system) == ("missing", "wms")
    assert (fallback.missing_from, fallback.missing_side) == ("wms", "truth")
    assert fallback.truth_system == "erp"


# --- stale observations ------------------------------------------------------------------

HOUR = 3600.0
DAY = 24 * HOUR


@cases(
    Case(
        "a two-day-old ERP count is stale, not a count mismatch",
        [lv("wms", 30), lv("shopify", 30), lv("erp", 25, ago=2 * DAY)],
        {("stale", "erp", "TEE", "east", 30, 25)},
        THREE,
    ),
    Case(
        "stale even when it agrees",
        [lv("wms", 30), lv("shopify", 30), lv("erp", 30, ago=2 * DAY)],
        {("stale", "erp", "TEE", "east", 30, 30)},
        THREE,
    ),
    Case(
        "a 24-hour-old ERP count is within its 25-hour SLA",
        [lv("wms", 30), lv("shopify", 30), lv("erp", 25, ago=DAY)],
        {("count_mismatch", "erp", "TEE", "east", 30, 25)},
        THREE,
    ),
    Case(
        "exactly at the SLA is not yet stale",
        [lv("wms", 30), lv("shopify", 30), lv("erp", 25, ago=90_000)],
        {("count_mismatch", "erp", "TEE", "east", 30, 25)},
        THREE,
    ),
    Case(
        "one second past the SLA is stale",
        [lv("wms", 30), lv("shopify", 30), lv("erp", 25, ago=90_001)],
        {("stale", "erp", "TEE", "east", 30, 25)},
        THREE,
    ),
    Case(
        "a stale truth is not the truth: the ERP is, and the storefront agrees with it",
        [lv("wms", 30, ago=HOUR), lv("erp", 40), lv("shopify", 40)],
        {("stale", "wms", "TEE", "east", 40, 30)},
        THREE,
    ),
    Case(
        "a stale truth: the storefront is judged against the fallback",
        [lv("wms", 30, ago=HOUR), lv("erp", 40), lv("shopify", 30)],
        {("stale", "wms", "TEE", "east", 40, 30), ("undersell", "shopify", "TEE", "east", 40, 30)},
        THREE,
    ),
    Case(
        "a stale truth and no fallback: nothing else is judged",
        [lv("wms", 30, ago=HOUR), lv("shopify", 50)],
        {("stale", "wms", "TEE", "east", None, 30)},
    ),
    Case(
        "a stale negative storefront count is only stale",
        [lv("wms", 10), lv("shopify", -5, ago=HOUR)],
        {("stale", "shopify", "TEE", "east", 10, -5)},
    ),
    Case(
        "a stale storefront level is not missing, and not an oversell",
        [lv("wms", 10), lv("shopify", 99, ago=HOUR, tracked=False, policy="CONTINUE")],
        {("stale", "shopify", "TEE", "east", 10, 99)},
    ),
)
def test_stale_observations(case: Case) -> None:
    run(case)


# --- safety stock: the storefront shows the truth minus what is held back ----------------

SAFETY = {"TEE": 3, "CAP": 5}
WITH_SAFETY = replace(TWO, safety_stock=lambda sku, location: SAFETY.get(sku, 0))


@cases(
    Case("the storefront holds back 3", [lv("wms", 30), lv("shopify", 27)], set(), WITH_SAFETY),
    Case(
        "the storefront ignores the safety stock",
        [lv("wms", 30), lv("shopify", 30)],
        {("oversell_risk", "shopify", "TEE", "east", 27, 30)},
        WITH_SAFETY,
    ),
    Case(
        "safety stock above the truth: expected 0, not −2",
        [lv("wms", 3, sku="CAP"), lv("shopify", 0, sku="CAP")],
        set(),
        WITH_SAFETY,
    ),
    Case(
        "safety stock above the truth, storefront shows all 3",
        [lv("wms", 3, sku="CAP"), lv("shopify", 3, sku="CAP")],
        {("oversell_risk", "shopify", "CAP", "east", 0, 3)},
        WITH_SAFETY,
    ),
    Case(
        "all of it held back: a storefront without the SKU is not missing it",
        [lv("wms", 4, sku="CAP")],
        set(),
        WITH_SAFETY,
    ),
    Case(
        "at the safety stock with CONTINUE: low stock, sells when out",
        [lv("wms", 5, sku="CAP"), lv("shopify", 0, sku="CAP", policy="CONTINUE")],
        {("oversell_policy", "shopify", "CAP", "east", 0, 0)},
        WITH_SAFETY,
    ),
    Case(
        "safety stock is the storefront's alone: the ERP compares the full count",
        [lv("wms", 30), lv("shopify", 27), lv("erp", 30)],
        set(),
        replace(THREE, safety_stock=lambda sku, location: SAFETY.get(sku, 0)),
    ),
)
def test_safety_stock(case: Case) -> None:
    run(case)


def test_low_stock_level_is_configurable() -> None:
    rules = replace(TWO, low_stock=lambda sku, location: 5)
    assert rows(diff([lv("wms", 4), lv("shopify", 4, policy="CONTINUE")], rules, now=NOW)) == {
        ("oversell_policy", "shopify", "TEE", "east", 4, 4)
    }
    assert diff([lv("wms", 6), lv("shopify", 6, policy="CONTINUE")], rules, now=NOW) == []


# --- thresholds: units AND percent; per tag; large ----------------------------------------

DEFAULT = Threshold(absolute=2, percent=1.0)
HERO = Threshold(absolute=0, percent=0.0)
THRESHOLDS = replace(
    TWO,
    threshold=lambda sku: HERO if sku == "HERO" else DEFAULT,
    large=Threshold(absolute=25, percent=20.0),
)


@pytest.mark.parametrize(
    ("sku", "truth", "shown", "want_kind", "want_large"),
    [
        pytest.param("TEE", 100, 102, None, False, id="2 units is not more than 2"),
        pytest.param("TEE", 1000, 1005, None, False, id="5 units but 0.5 % of 1000"),
        pytest.param("TEE", 100, 103, "oversell_risk", False, id="3 units and 3 %"),
        pytest.param("TEE", 100, 97, "undersell", False, id="−3 units and 3 %"),
        pytest.param("HERO", 100, 101, "oversell_risk", False, id="hero: any unit"),
        pytest.param("HERO", 100, 100, None, False, id="hero: equal"),
        pytest.param("TEE", 0, 3, "oversell_risk", False, id="any share of an expected 0"),
        pytest.param("TEE", 0, 2, None, False, id="expected 0, 2 units: within"),
        pytest.param("TEE", 100, 130, "oversell_risk", True, id="30 units and 30 %: large"),
        pytest.param("TEE", 100, 125, "oversell_risk", False, id="25 units is not more than 25"),
        pytest.param("TEE", 1000, 1030, "oversell_risk", False, id="30 units but 3 %: not large"),
        pytest.param("TEE", 40, 0, "undersell", True, id="−40 units, 100 %: large"),
    ],
)
def test_thresholds(
    sku: str, truth: int, shown: int, want_kind: str | None, want_large: bool
) -> None:
    drifts = diff([lv("wms", truth, sku=sku), lv("shopify", shown, sku=sku)], THRESHOLDS, now=NOW)
    if want_kind is None:
        assert drifts == []
        return
    [drift] = drifts
    assert (drift.kind, drift.large) == (want_kind, want_large)


@pytest.mark.parametrize(
    ("levels", "want"),
    [
        pytest.param([lv("wms", 40)], ("missing", True), id="missing 40 units: large"),
        pytest.param([lv("wms", 20)], ("missing", False), id="missing 20 units: not large"),
        pytest.param([lv("wms", 30), lv("shopify", -1)], ("negative", True), id="−1 vs 30"),
        pytest.param([lv("wms", 1), lv("shopify", -1)], ("negative", False), id="−1 vs 1"),
    ],
)
def test_large_applies_to_missing_and_negative(levels: list[Level], want: tuple[str, bool]) -> None:
    [drift] = diff(levels, THRESHOLDS, now=NOW)
    assert (drift.kind, drift.large) == want


def test_missing_and_negative_ignore_the_count_threshold() -> None:
    # one unit is within the default threshold of 2, but a SKU mismatch is not a count
    assert rows(diff([lv("wms", 1)], THRESHOLDS, now=NOW)) == {
        ("missing", "shopify", "TEE", "east", 1, None)
    }
    assert rows(diff([lv("wms", 0), lv("shopify", -1)], THRESHOLDS, now=NOW)) == {
        ("negative", "shopify", "TEE", "east", 0, -1)
    }


# --- several locations -------------------------------------------------------------------


def test_each_location_is_its_own_comparison() -> None:
    levels = [
        lv("wms", 30, location="east"),
        lv("shopify", 30, location="east"),
        lv("wms", 30, location="west"),
        lv("shopify", 20, location="west"),
        lv("wms", 5, location="north"),
    ]
    assert rows(diff(levels, TWO, now=NOW)) == {
        ("undersell", "shopify", "TEE", "west", 30, 20),
        ("missing", "shopify", "TEE", "north", 5, None),
    }


def test_a_system_without_a_location_is_never_missing_there() -> None:
    rules = replace(THREE, covers=lambda system, location: (system, location) != ("erp", "west"))
    levels = [
        lv("wms", 10, location="east"),
        lv("shopify", 10, location="east"),
        lv("wms", 10, location="west"),
        lv("shopify", 10, location="west"),
    ]
    assert rows(diff(levels, rules, now=NOW)) == {("missing", "erp", "TEE", "east", 10, None)}


def test_a_storefront_sku_at_a_location_no_truth_covers_is_not_missing_from_it() -> None:
    rules = replace(TWO, covers=lambda system, location: system == "shopify")
    assert diff([lv("shopify", 5, location="popup")], rules, now=NOW) == []


# --- age: since when the values have disagreed ---------------------------------------------


def test_age_runs_from_the_latest_change_of_either_value() -> None:
    levels = [lv("wms", 30, changed_ago=2 * HOUR), lv("shopify", 42, changed_ago=1800)]
    [drift] = diff(levels, TWO, now=NOW)
    assert drift.since == NOW - timedelta(minutes=30)
    assert drift.age == timedelta(minutes=30)
    assert drift.changed_at == NOW - timedelta(minutes=30)


def test_without_a_change_time_the_observation_time_counts() -> None:
    levels = [lv("wms", 30, changed_ago=2 * HOUR), lv("shopify", 42, ago=10)]
    [drift] = diff(levels, TWO, now=NOW)
    assert drift.since == NOW - timedelta(seconds=10)
    assert drift.age == timedelta(seconds=10)


def test_a_change_time_after_now_is_age_zero() -> None:
    levels = [lv("wms", 30), lv("shopify", 42, changed_ago=-60)]
    [drift] = diff(levels, TWO, now=NOW)
    assert drift.age == timedelta(0)


def test_a_stale_observation_is_as_old_as_the_observation() -> None:
    levels = [lv("wms", 30), lv("shopify", 30), lv("erp", 25, ago=2 * DAY, changed_ago=9 * DAY)]
    [drift] = diff(levels, THREE, now=NOW)
    assert drift.kind == "stale"
    assert drift.since == NOW - timedelta(days=2)
    assert drift.age == timedelta(days=2)


def test_missing_is_as_old_as_the_truth_level() -> None:
    [drift] = diff([lv("wms", 10, changed_ago=3 * HOUR)], TWO, now=NOW)
    assert drift.age == timedelta(hours=3)


# --- the drift's facts ---------------------------------------------------------------------


def test_a_drift_carries_every_systems_value_the_gap_and_direction() -> None:
    levels = [
        lv("wms", 28, committed=2, ago=5),
        lv("shopify", 40, committed=2),
        lv("erp", 30, ago=DAY),
    ]
    [drift] = diff(levels, THREE, now=NOW)
    assert drift.values == {"shopify": 42, "wms": 30, "erp": 30}
    assert drift.observed_at == {
        "wms": NOW - timedelta(seconds=5),
        "shopify": NOW,
        "erp": NOW - timedelta(days=1),
    }
    assert (drift.truth_system, drift.expected, drift.actual) == ("wms", 30, 42)
    assert (drift.gap, drift.gap_percent, drift.direction) == (12, 40.0, "over")
    assert drift.fingerprint == "drift:oversell_risk:shopify:TEE:east"
    assert drift.evidence == ()
    assert drift.components is None


def test_worst_first() -> None:
    levels = [
        lv("wms", 10, sku="A"),
        lv("shopify", 12, sku="A"),
        lv("wms", 10, sku="B"),
        lv("shopify", 3, sku="B"),
        lv("wms", 10, sku="C"),
        lv("shopify", 15, sku="C"),
    ]
    assert [(d.sku, d.gap) for d in diff(levels, TWO, now=NOW)] == [
        ("B", -7),
        ("C", 5),
        ("A", 2),
    ]


def test_systems_outside_the_rules_are_ignored() -> None:
    assert diff([lv("wms", 10), lv("shopify", 10), lv("pos", 99)], TWO, now=NOW) == []


def test_now_defaults_to_the_latest_observation() -> None:
    # read at NOW, the ERP's count from two days ago is stale without an explicit now
    levels = [lv("wms", 30), lv("shopify", 30), lv("erp", 30, ago=2 * DAY)]
    assert rows(diff(levels, THREE)) == {("stale", "erp", "TEE", "east", 30, 30)}
    assert diff([], THREE) == []
