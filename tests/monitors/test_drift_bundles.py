"""Bundles and pack sizes in the drift engine. Expected rows are worked out by hand:
a gift set of 1 tee and 2 mugs can be sold as often as min(tees ÷ 1, mugs ÷ 2), floored."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connectors.levels import Level
from monitors.drift import DiffRules, Drift, SystemRules, diff

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

SHOPIFY = SystemRules("shopify", "storefront", ("available", "committed"), sla_seconds=900)
WMS = SystemRules("wms", "warehouse", ("available", "committed"), sla_seconds=900)
ERP = SystemRules("erp", "erp", ("available",), sla_seconds=90_000)

BUNDLES = DiffRules(
    systems={"shopify": SHOPIFY, "wms": WMS},
    source_of_truth=("wms",),
    bundles={"GIFT": {"TEE": 1, "MUG": 2}},
)


def lv(system: str, sku: str, units: int, *, location: str = "east", ago: float = 0) -> Level:
    return Level(
        system=system,
        sku=sku,
        location=location,
        quantities={"available": units},
        observed_at=NOW - timedelta(seconds=ago),
    )


def world(wms: dict[str, int], shopify: dict[str, int], *, location: str = "east") -> list[Level]:
    return [lv("wms", sku, n, location=location) for sku, n in wms.items()] + [
        lv("shopify", sku, n, location=location) for sku, n in shopify.items()
    ]


Row = tuple[str, str, str, str, int | None, int | None]


def rows(drifts: list[Drift]) -> set[Row]:
    got = [(d.kind, d.system, d.sku, d.location, d.expected, d.actual) for d in drifts]
    assert len(got) == len(set(got)), f"a drift reported twice: {got}"
    return set(got)


@pytest.mark.parametrize(
    ("levels", "want"),
    [
        pytest.param(
            world({"TEE": 10, "MUG": 8}, {"TEE": 10, "MUG": 8, "GIFT": 4}),
            set(),
            id="10 tees, 8 mugs: 4 sets, as shown",
        ),
        pytest.param(
            world({"TEE": 10, "MUG": 3}, {"TEE": 10, "MUG": 3, "GIFT": 1}),
            set(),
            id="a component short: 3 mugs make 1 set, as shown",
        ),
        pytest.param(
            world({"TEE": 10, "MUG": 3}, {"TEE": 10, "MUG": 3, "GIFT": 4}),
            {("oversell_risk", "shopify", "GIFT", "east", 1, 4)},
            id="a component short, the storefront still shows 4 sets",
        ),
        pytest.param(
            world({"TEE": 7, "MUG": 5}, {"TEE": 7, "MUG": 5, "GIFT": 2}),
            set(),
            id="partial: 5 mugs make 2 sets (floor), as shown",
        ),
        pytest.param(
            world({"TEE": 7, "MUG": 5}, {"TEE": 7, "MUG": 5, "GIFT": 3}),
            {("oversell_risk", "shopify", "GIFT", "east", 2, 3)},
            id="partial: 2.5 sets is 2, not 3",
        ),
        pytest.param(
            world({"TEE": 1, "MUG": 20}, {"TEE": 1, "MUG": 20, "GIFT": 0}),
            {("undersell", "shopify", "GIFT", "east", 1, 0)},
            id="1 tee, 20 mugs: 1 set, but none shown",
        ),
        pytest.param(
            world({"TEE": 10, "MUG": 8}, {"TEE": 2, "MUG": 8, "GIFT": 2}),
            {("undersell", "shopify", "TEE", "east", 10, 2)},
            id="the storefront's tee count drifts: reported at the tee, not again at the set",
        ),
        pytest.param(
            world({"TEE": 10, "MUG": 8}, {"TEE": 10, "MUG": 8}),
            {("missing", "shopify", "GIFT", "east", 4, None)},
            id="4 sets could be sold, the storefront does not list the set",
        ),
        pytest.param(
            world({"TEE": 0, "MUG": 8}, {"TEE": 0, "MUG": 8}),
            set(),
            id="no tees: 0 sets, not listing it is fine",
        ),
        pytest.param(
            world({"TEE": 10}, {"TEE": 10, "GIFT": 3}),
            {("oversell_risk", "shopify", "GIFT", "east", 0, 3)},
            id="the truth has no mugs here: 0 sets",
        ),
        pytest.param(
            world({}, {"GIFT": 3}),
            {("oversell_risk", "shopify", "GIFT", "east", 0, 3)},
            id="the truth has no component here: 0 sets",
        ),
    ],
)
def test_bundles(levels: list[Level], want: set[Row]) -> None:
    assert rows(diff(levels, BUNDLES, now=NOW)) == want


def test_a_bundle_drift_names_its_basis() -> None:
    levels = world({"TEE": 10, "MUG": 3}, {"TEE": 10, "MUG": 3, "GIFT": 4})
    [drift] = diff(levels, BUNDLES, now=NOW)
    assert drift.components == {"TEE": 10, "MUG": 3}
    assert drift.truth_system == "wms"
    assert drift.evidence == (
        "bundle: shopify shows 4, its own components imply 1, the truth's components imply 1",
    )


def test_a_bundle_uses_each_components_storefront_expectation() -> None:
    # 3 tees held back: the storefront shows 7 tees and so 7 ÷ 1 = 7 sets, not 10
    rules = replace(BUNDLES, safety_stock=lambda sku, location: 3 if sku == "TEE" else 0)
    ok = world({"TEE": 10, "MUG": 40}, {"TEE": 7, "MUG": 40, "GIFT": 7})
    assert diff(ok, rules, now=NOW) == []
    over = world({"TEE": 10, "MUG": 40}, {"TEE": 7, "MUG": 40, "GIFT": 10})
    assert rows(diff(over, rules, now=NOW)) == {("oversell_risk", "shopify", "GIFT", "east", 7, 10)}


def test_bundles_at_several_locations() -> None:
    levels = world({"TEE": 10, "MUG": 8}, {"TEE": 10, "MUG": 8, "GIFT": 4}) + world(
        {"TEE": 10, "MUG": 1}, {"TEE": 10, "MUG": 1, "GIFT": 4}, location="west"
    )
    assert rows(diff(levels, BUNDLES, now=NOW)) == {
        ("oversell_risk", "shopify", "GIFT", "west", 0, 4)
    }


def test_a_stale_component_truth_leaves_the_bundle_unjudged() -> None:
    levels = [
        lv("wms", "TEE", 10),
        lv("wms", "MUG", 8, ago=3600),
        lv("shopify", "TEE", 10),
        lv("shopify", "MUG", 8),
        lv("shopify", "GIFT", 9),
    ]
    assert rows(diff(levels, BUNDLES, now=NOW)) == {("stale", "wms", "MUG", "east", None, 8)}


def test_a_warehouse_stocking_kitted_sets_compares_them_as_a_sku() -> None:
    rules = replace(
        BUNDLES,
        systems={"shopify": SHOPIFY, "wms": WMS, "erp": ERP},
        source_of_truth=("wms", "erp"),
    )
    erp = [lv("erp", "TEE", 10), lv("erp", "MUG", 8), lv("erp", "GIFT", 6)]
    levels = [*world({"TEE": 10, "MUG": 8, "GIFT": 5}, {"TEE": 10, "MUG": 8, "GIFT": 4}), *erp]
    # the storefront's sets follow the components (4); the ERP's kitted count follows the WMS's
    assert rows(diff(levels, rules, now=NOW)) == {("count_mismatch", "erp", "GIFT", "east", 5, 6)}


def test_a_virtual_bundle_is_not_missing_from_the_warehouse() -> None:
    rules = replace(
        BUNDLES,
        systems={"shopify": SHOPIFY, "wms": WMS, "erp": ERP},
        source_of_truth=("wms", "erp"),
    )
    erp = [lv("erp", "TEE", 10), lv("erp", "MUG", 8)]
    levels = [*world({"TEE": 10, "MUG": 8}, {"TEE": 10, "MUG": 8, "GIFT": 4}), *erp]
    assert diff(levels, rules, now=NOW) == []


# --- pack sizes: evidence for a unit-of-measure mismatch -------------------------------------

PACKS = DiffRules(
    systems={"shopify": SHOPIFY, "wms": WMS, "erp": ERP},
    source_of_truth=("wms",),
    pack_size=lambda system, sku: 12 if (system, sku) == ("erp", "MUG") else 1,
)


@pytest.mark.parametrize(
    ("levels", "want"),
    [
        pytest.param(
            [lv("wms", "MUG", 60), lv("shopify", "MUG", 60), lv("erp", "MUG", 720)],
            (
                "count_mismatch",
                "erp",
                60,
                720,
                (
                    "pack size 12: erp shows 720 = 60 × 12; a pack size of 12 may be applied "
                    "to a count already in units",
                ),
            ),
            id="the ERP now reports units, but the pack size of 12 is still applied",
        ),
        pytest.param(
            [lv("wms", "MUG", 60), lv("shopify", "MUG", 5), lv("erp", "MUG", 60)],
            (
                "undersell",
                "shopify",
                60,
                5,
                (
                    "pack size 12: shopify shows 5 and 5 × 12 = 60; "
                    "it may count packs of 12 as units",
                ),
            ),
            id="the storefront counts cases of 12 as single units",
        ),
        pytest.param(
            [lv("wms", "MUG", 60), lv("shopify", "MUG", 60), lv("erp", "MUG", 48)],
            ("count_mismatch", "erp", 60, 48, ()),
            id="a gap that is no pack pattern: no evidence",
        ),
        pytest.param(
            [lv("wms", "TEE", 60), lv("shopify", "TEE", 60), lv("erp", "TEE", 720)],
            ("count_mismatch", "erp", 60, 720, ()),
            id="no pack size configured for the SKU: no evidence",
        ),
    ],
)
def test_pack_size_evidence(
    levels: list[Level], want: tuple[str, str, int, int, tuple[str, ...]]
) -> None:
    [drift] = diff(levels, PACKS, now=NOW)
    assert (drift.kind, drift.system, drift.expected, drift.actual, drift.evidence) == want


def test_pack_evidence_against_the_truth_before_safety_stock() -> None:
    rules = replace(PACKS, safety_stock=lambda sku, location: 4)
    # truth 60, the storefront should show 56; it shows 5 = 60 ÷ 12
    levels = [lv("wms", "MUG", 60), lv("shopify", "MUG", 5), lv("erp", "MUG", 60)]
    [drift] = diff(levels, rules, now=NOW)
    assert (drift.kind, drift.expected, drift.actual) == ("undersell", 56, 5)
    assert drift.evidence == (
        "pack size 12: shopify shows 5 and 5 × 12 = 60; it may count packs of 12 as units",
    )
