"""A store judged against its own source of truth (``[[systems]] source_of_truth``): a
B2B store whose counts come from the ERP is compared with the ERP, the retail store with
the WMS, in one diff; the truth systems themselves are judged once, as before."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.levels import Level
from monitors.drift import DiffRules, SystemRules, diff

T = datetime(2026, 12, 1, 9, tzinfo=UTC)
STATES = ("available",)
SYSTEMS = {
    "shopify": SystemRules("shopify", "storefront", STATES),
    "shopify_b2b": SystemRules("shopify_b2b", "storefront", STATES),
    "wms": SystemRules("wms", "warehouse", STATES),
    "erp": SystemRules("erp", "erp", STATES),
}
OWN = DiffRules(SYSTEMS, ("wms", "erp"), orders={"shopify_b2b": ("erp", "wms")})
SHARED = DiffRules(SYSTEMS, ("wms", "erp"))


def levels(**values: int) -> list[Level]:
    return [Level(system, "TEE", "east", {"available": v}, T) for system, v in values.items()]


def found(rules: DiffRules, **values: int) -> set[tuple[str, str, int | None, str | None]]:
    return {(d.system, d.kind, d.expected, d.truth_system) for d in diff(levels(**values), rules)}


def test_each_store_is_judged_against_its_own_truth() -> None:
    seen = levels(wms=10, erp=8, shopify=10, shopify_b2b=8)
    assert found(OWN, wms=10, erp=8, shopify=10, shopify_b2b=8) == {
        ("erp", "count_mismatch", 10, "wms")  # the truths disagree: judged once, as before
    }
    # with one order for all, the B2B store looked undersold against the WMS
    assert ("shopify_b2b", "undersell", 10, "wms") in found(SHARED, **_values(seen))
    assert ("shopify_b2b", "oversell_risk", 8, "erp") in found(
        OWN, wms=10, erp=8, shopify=10, shopify_b2b=12
    )


def test_a_store_falls_back_along_its_own_order() -> None:
    # the ERP has no level (missing there, as before): the B2B store falls back to the WMS
    erp_missing = ("erp", "missing", 10, "wms")
    assert found(OWN, wms=10, shopify=10, shopify_b2b=10) == {erp_missing}
    under = ("shopify_b2b", "undersell", 10, "wms")
    assert found(OWN, wms=10, shopify=10, shopify_b2b=4) == {erp_missing, under}


def test_a_store_missing_a_sku_its_own_truth_has_is_missing_there() -> None:
    drifts = diff(levels(wms=10, erp=8, shopify=10), OWN)
    [missing] = [d for d in drifts if d.system == "shopify_b2b"]
    assert (missing.kind, missing.expected, missing.truth_system) == ("missing", 8, "erp")


def test_a_store_whose_truth_was_not_read_finds_no_truth() -> None:
    # the ERP (and the WMS) could not be read: left out of the rules, as run_diff does
    down = DiffRules(
        {k: v for k, v in SYSTEMS.items() if k not in ("erp", "wms")},
        (),
        orders={"shopify_b2b": ("erp", "wms")},
    )
    assert diff(levels(shopify=10, shopify_b2b=3), down) == []


def _values(seen: list[Level]) -> dict[str, int]:
    return {lv.system: lv.quantities["available"] for lv in seen}


def test_stores_sharing_an_order_are_judged_together_each_for_itself() -> None:
    systems = {**SYSTEMS, "shopify_b2b2": SystemRules("shopify_b2b2", "storefront", STATES)}
    order = ("erp", "wms")
    rules = DiffRules(systems, ("wms", "erp"), orders={"shopify_b2b": order, "shopify_b2b2": order})
    got = {
        (d.system, d.kind, d.expected, d.truth_system)
        for d in diff(levels(wms=10, erp=8, shopify=10, shopify_b2b=8, shopify_b2b2=9), rules)
    }
    assert got == {
        ("erp", "count_mismatch", 10, "wms"),
        ("shopify_b2b2", "oversell_risk", 8, "erp"),
    }
