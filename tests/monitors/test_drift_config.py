"""``rules_from_config``: the drift engine configured from a real configuration file —
thresholds by tag, the large threshold, SLAs, locations, bundles, pack sizes and safety
stock. Expected rows are written by hand from the configuration below."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from connectors.levels import Level
from monitors.config import Config, config_from_dict
from monitors.drift import Drift, Threshold, diff, no_safety_stock
from monitors.wiring import rules_from_config

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

CONFIG = """
source_of_truth = ["wms", "erp"]

[[systems]]
name = "shopify"
kind = "shopify"
shop_url = "https://demo.myshopify.com"

[[systems]]
name = "wms"
kind = "rest"
role = "warehouse"
base_url = "https://wms.example.com/api"
list = { path = "/levels" }
fields = { sku = "sku", location = "wh", quantities = { available = "free", committed = "alloc" } }

[[systems]]
name = "erp"
kind = "csv"
role = "erp"
directory = "drops/erp"
columns = { sku = "Item", location = "Whs", quantities = { available = "Free" } }

[locations.east]
shopify = "gid://shopify/Location/1"
wms = "WH-EAST"
erp = "01"

[locations.west]
shopify = "gid://shopify/Location/2"
wms = "WH-WEST"

[skus.tags]
hero = ["tee-blk-m"]
clearance = ["MUG-1"]

[pack_sizes.erp]
skus = { "MUG-1" = 12 }

[[bundles]]
sku = "gift-1"
components = { "TEE-BLK-M" = 1, "MUG-1" = 2 }

[safety_stock]
skus = { "TEE-BLK-M" = 3 }

[thresholds]
default = { absolute = 2, percent = 1.0 }
large = { absolute = 20, percent = 10.0 }

[thresholds.tags.hero]
absolute = 0
percent = 0.0

[thresholds.tags.clearance]
absolute = 5

[slack]
alerts_channel = "C0123ABCD"
"""


@pytest.fixture(scope="module")
def config() -> Config:
    return config_from_dict(tomllib.loads(CONFIG))


def lv(system: str, sku: str, available: int, *, location: str = "east", ago: float = 0) -> Level:
    return Level(
        system=system,
        sku=sku,
        location=location,
        quantities={"available": available},
        observed_at=NOW - timedelta(seconds=ago),
    )


def rows(drifts: list[Drift]) -> set[tuple[str, str, str, str, int | None, int | None, bool]]:
    return {(d.kind, d.system, d.sku, d.location, d.expected, d.actual, d.large) for d in drifts}


def test_the_rules_carry_the_configuration(config: Config) -> None:
    rules = rules_from_config(config)
    assert {n: (s.role, s.compare_states, s.sla_seconds) for n, s in rules.systems.items()} == {
        "shopify": ("storefront", ("available", "committed"), 900.0),
        "wms": ("warehouse", ("available", "committed"), 900.0),
        "erp": ("erp", ("available",), 90_000.0),
    }
    assert rules.source_of_truth == ("wms", "erp")
    assert rules.large == Threshold(absolute=20, percent=10.0)
    assert rules.bundles == {"GIFT-1": {"TEE-BLK-M": 1, "MUG-1": 2}}
    assert rules.threshold("TEE-BLK-M") == Threshold(absolute=0, percent=0.0)
    assert rules.threshold("MUG-1") == Threshold(absolute=5, percent=1.0)
    assert rules.threshold("CAP-NAVY") == Threshold(absolute=2, percent=1.0)
    assert rules.safety_stock("TEE-BLK-M", "east") == 3
    assert rules.pack_size("erp", "MUG-1") == 12
    assert rules.covers("erp", "east") is True
    assert rules.covers("erp", "west") is False
    assert rules.covers("erp", "gid://shopify/Location/99") is True


@pytest.mark.parametrize(
    ("levels", "want"),
    [
        pytest.param(
            [
                lv("wms", "TEE-BLK-M", 30),
                lv("shopify", "TEE-BLK-M", 28),
                lv("erp", "TEE-BLK-M", 30),
            ],
            {("oversell_risk", "shopify", "TEE-BLK-M", "east", 27, 28, False)},
            id="hero: one unit over (30 − 3 safety = 27 expected) is a drift",
        ),
        pytest.param(
            [lv("wms", "CAP", 30), lv("shopify", "CAP", 31), lv("erp", "CAP", 30)],
            set(),
            id="default: one unit is within 2",
        ),
        pytest.param(
            [lv("wms", "MUG-1", 100), lv("shopify", "MUG-1", 96), lv("erp", "MUG-1", 100)],
            set(),
            id="clearance: 4 units are within 5",
        ),
        pytest.param(
            [lv("wms", "MUG-1", 100), lv("shopify", "MUG-1", 94), lv("erp", "MUG-1", 100)],
            {("undersell", "shopify", "MUG-1", "east", 100, 94, False)},
            id="clearance: 6 units and 6 % exceed 5 and 1 %",
        ),
        pytest.param(
            [lv("wms", "CAP", 100), lv("shopify", "CAP", 121), lv("erp", "CAP", 100)],
            {("oversell_risk", "shopify", "CAP", "east", 100, 121, True)},
            id="21 units and 21 %: large",
        ),
        pytest.param(
            [lv("wms", "CAP", 1000), lv("shopify", "CAP", 1021), lv("erp", "CAP", 1000)],
            {("oversell_risk", "shopify", "CAP", "east", 1000, 1021, False)},
            id="21 units but 2.1 %: not large",
        ),
        pytest.param(
            [lv("wms", "CAP", 10, location="west"), lv("shopify", "CAP", 10, location="west")],
            set(),
            id="the ERP has no west location: not missing there",
        ),
        pytest.param(
            [lv("wms", "CAP", 10), lv("shopify", "CAP", 10)],
            {("missing", "erp", "CAP", "east", 10, None, False)},
            id="the ERP has an east location: missing there",
        ),
        pytest.param(
            [lv("wms", "CAP", 10), lv("shopify", "CAP", 10), lv("erp", "CAP", 10, ago=26 * 3600)],
            {("stale", "erp", "CAP", "east", 10, 10, False)},
            id="the ERP's default SLA is 25 hours",
        ),
        pytest.param(
            [lv("wms", "CAP", 10, ago=901), lv("shopify", "CAP", 10), lv("erp", "CAP", 10)],
            {("stale", "wms", "CAP", "east", 10, 10, False)},
            id="the WMS's default SLA is 15 minutes; the ERP takes over as the truth",
        ),
        pytest.param(
            [
                lv("wms", "MUG-1", 60),
                lv("erp", "MUG-1", 60),
                lv("wms", "TEE-BLK-M", 9),
                lv("erp", "TEE-BLK-M", 9),
                lv("shopify", "MUG-1", 60),
                lv("shopify", "TEE-BLK-M", 6),
                lv("shopify", "GIFT-1", 10),
            ],
            {("oversell_risk", "shopify", "GIFT-1", "east", 6, 10, False)},
            id="gift set: 9 − 3 tees and 60 ÷ 2 mugs make 6 sets, not 10",
        ),
    ],
)
def test_configured_diff(
    config: Config, levels: list[Level], want: set[tuple[object, ...]]
) -> None:
    assert rows(diff(levels, rules_from_config(config), now=NOW)) == want


def test_pack_size_evidence_from_the_configuration(config: Config) -> None:
    levels = [lv("wms", "MUG-1", 60), lv("shopify", "MUG-1", 60), lv("erp", "MUG-1", 720)]
    [drift] = diff(levels, rules_from_config(config), now=NOW)
    assert (drift.kind, drift.system, drift.large) == ("count_mismatch", "erp", True)
    assert drift.evidence == (
        "pack size 12: erp shows 720 = 60 × 12; a pack size of 12 may be applied to a count "
        "already in units",
    )


@pytest.mark.parametrize(
    ("section", "held_back"),
    [
        ({}, 0),
        ({"default": 0, "skus": {"CAP-NAVY": 0}, "locations": {"east": {"default": 0}}}, 0),
        ({"locations": {"east": {"default": 5}}}, 5),
        ({"locations": {"east": {"skus": {"CAP-NAVY": 6}}}}, 6),
        ({"skus": {"CAP-NAVY": 7}}, 7),
    ],
)
def test_safety_stock_is_asked_per_cell_only_where_some_is_configured(
    section: dict[str, object], held_back: int
) -> None:
    data = tomllib.loads(CONFIG)
    data["safety_stock"] = section
    rules = rules_from_config(config_from_dict(data))
    # nothing held back anywhere: the engine never asks (a third of its time at 100k SKUs)
    assert (rules.safety_stock is no_safety_stock) == (held_back == 0)
    shown = [lv("wms", "CAP-NAVY", 30), lv("erp", "CAP-NAVY", 30), lv("shopify", "CAP-NAVY", 30)]
    expected = {("oversell_risk", "shopify", "CAP-NAVY", "east", 30 - held_back, 30, False)}
    assert rows(diff(shown, rules, now=NOW)) == (expected if held_back else set())
