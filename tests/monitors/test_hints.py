"""Root-cause hints, one table row per cause, then ambiguity and no-hint rows. Every
expected sentence and fact is written out by hand from the situation the row sets up."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from connectors.health import Health, ThrottleState
from connectors.levels import Level
from monitors.drift import DiffRules, Drift, SystemRules, diff
from monitors.hints import CAUSES, Evidence, RootCauseHint, WebhookFacts, explain, hint_for
from monitors.pipeline.evaluate import Explained

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)

SHOPIFY = SystemRules("shopify", "storefront", ("available", "committed"), sla_seconds=900)
WMS = SystemRules("wms", "warehouse", ("available", "committed"), sla_seconds=900)
ERP = SystemRules("erp", "erp", ("available",), sla_seconds=90_000)
ROLES = {"shopify": "storefront", "wms": "warehouse", "erp": "erp"}
KINDS = {"shopify": "shopify", "wms": "rest", "erp": "csv"}


def lv(
    system: str,
    sku: str = "TEE",
    *,
    ago: timedelta = timedelta(0),
    changed_ago: timedelta | None = None,
    **quantities: int,
) -> Level:
    return Level(
        system=system,
        sku=sku,
        location="east",
        quantities=quantities,
        observed_at=NOW - ago,
        changed_at=None if changed_ago is None else NOW - changed_ago,
    )


def drift(
    system: str,
    kind: str,
    expected: int | None,
    actual: int | None,
    *,
    sku: str = "TEE",
    age: timedelta = 2 * MIN,
    truth: str | None = "wms",
) -> Drift:
    return Drift(
        sku=sku,
        location="east",
        system=system,
        kind=kind,
        truth_system=truth,
        expected=expected,
        actual=actual,
        values={system: actual, "wms": expected},
        observed_at={system: NOW},
        since=NOW - age,
        age=age,
    )


@dataclass
class World:
    """The evidence of one row, built up in readable pieces."""

    levels: list[Level] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    def evidence(self) -> Evidence:
        levels = {(x.system, x.sku, x.location): x for x in self.levels}
        base = Evidence(now=NOW, levels=levels, kinds=KINDS, roles=ROLES)
        return replace(base, **self.extra)  # type: ignore[arg-type]


def engine_drift(rules: DiffRules, levels: list[Level], system: str, sku: str) -> Drift:
    """The real engine's drift for ``system`` at ``sku`` (its evidence lines included)."""
    found = [d for d in diff(levels, rules, now=NOW) if d.system == system and d.sku == sku]
    assert len(found) == 1
    return found[0]


# --- engine-made drifts for the rows that depend on the engine's evidence -------------

BUNDLE_LEVELS = [
    lv("wms", "TEE", available=10),
    lv("wms", "MUG", available=8),
    lv("shopify", "TEE", available=10),
    lv("shopify", "MUG", available=8),
    lv("shopify", "GIFT", available=7),
]
BUNDLE_DRIFT = engine_drift(
    DiffRules(
        systems={"shopify": SHOPIFY, "wms": WMS},
        source_of_truth=("wms",),
        bundles={"GIFT": {"TEE": 1, "MUG": 2}},
    ),
    BUNDLE_LEVELS,
    "shopify",
    "GIFT",
)
PACK_LEVELS = [lv("wms", available=20), lv("erp", available=240)]
PACK_DRIFT = engine_drift(
    DiffRules(
        systems={"wms": WMS, "erp": ERP},
        source_of_truth=("wms",),
        pack_size=lambda system, sku: 12 if system == "erp" else 1,
    ),
    PACK_LEVELS,
    "erp",
    "TEE",
)

# --- situations reused by several rows ------------------------------------------------

#: Shopify still counts 5 units committed that the WMS has already shipped.
RACE_LEVELS = [
    lv("shopify", on_hand=20, available=15, committed=5),
    lv("wms", on_hand=15, available=15, committed=0),
]
RACE = (
    "Likely a race with in-flight orders: Shopify has 5 units committed to orders the WMS "
    "has not allocated yet"
)
#: Someone typed 12 into Shopify's admin 30 minutes ago; the WMS pushed 2 hours ago.
MANUAL_LEVELS = [
    lv("shopify", available=12, changed_ago=30 * MIN),
    lv("wms", available=20, changed_ago=3 * 60 * MIN),
]
MANUAL_EXTRA: dict[str, object] = {
    "last_sync": {"shopify": NOW - 120 * MIN},
    "recent_orders": {"TEE": 0},
}
MANUAL = (
    "Likely a manual change in Shopify: its level changed 30 min ago, after the last sync "
    "from the WMS, with no order or refund to explain it"
)
THROTTLED = Health(
    system="shopify",
    throttles=7,
    retries=5,
    last_error="rate limited (HTTP 429)",
    last_error_at=NOW - 5 * MIN,
)


@dataclass(frozen=True)
class Row:
    drift: Drift
    world: World
    expected: RootCauseHint | None


ROWS = [
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 15, 20),
            World(RACE_LEVELS),
            RootCauseHint(
                "race_in_flight_orders",
                RACE,
                ["gap +5, the drift is 2 min old", "Shopify has 5 more committed than the WMS"],
            ),
        ),
        id="race: committed to orders the truth has not allocated",
    ),
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 17, 20),
            World(
                [lv("shopify", available=20), lv("wms", available=17)],
                {"recent_orders": {"TEE": 4}},
            ),
            RootCauseHint(
                "race_in_flight_orders",
                "Likely a race with in-flight orders: Shopify is 3 over the WMS, within the "
                "4 units ordered in the last few minutes",
                ["gap +3, the drift is 2 min old", "4 units of TEE ordered recently"],
            ),
        ),
        id="race: within recent orders",
    ),
    pytest.param(
        Row(
            drift("shopify", "undersell", 20, 17),
            World(
                [lv("shopify", available=17), lv("wms", available=20)],
                {"recent_refunds": {"TEE": 3}},
            ),
            RootCauseHint(
                "returns_damages_not_flowing",
                "Likely returns not flowing: Shopify is 3 under the WMS, within the 3 units "
                "refunded and restocked recently",
                ["3 units of TEE at east refunded"],
            ),
        ),
        id="returns: restocked at the truth, not downstream",
    ),
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 20, 22),
            World(
                [lv("shopify", available=22), lv("wms", available=20)],
                {"recent_refunds": {"TEE": 2}, "recent_orders": {"TEE": 0}},
            ),
            RootCauseHint(
                "returns_damages_not_flowing",
                "Likely returns not flowing: Shopify is 2 over the WMS, within the 2 units "
                "refunded and restocked recently",
                ["2 units of TEE at east refunded"],
            ),
        ),
        id="returns: restocked in the storefront, not at the truth",
    ),
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 17, 20, age=30 * MIN),
            World(
                [
                    lv("shopify", on_hand=20, available=20, damaged=0),
                    lv("wms", on_hand=20, available=17, damaged=3),
                ]
            ),
            RootCauseHint(
                "returns_damages_not_flowing",
                "Likely damages not flowing: the WMS records 3 damaged and Shopify 0, and the "
                "3-unit gap fits damaged stock not written off or restocked in step",
                [
                    "damaged: the WMS 3, Shopify 0",
                    "gap +3",
                    "runner-up: partial_state_update: Likely a partial state update: Shopify "
                    "and the WMS agree on on-hand (20) but not on the compared states (20 vs 17)",
                ],
            ),
        ),
        id="damages: on-hand agrees, so not taken for a partial update",
    ),
    pytest.param(
        Row(
            drift("erp", "count_mismatch", 20, 23),
            World([lv("erp", available=23), lv("wms", available=20, damaged=3)]),
            RootCauseHint(
                "returns_damages_not_flowing",
                "Likely damages not flowing: the WMS records 3 damaged and the ERP 0, and the "
                "3-unit gap fits damaged stock not written off or restocked in step",
                ["damaged: the WMS 3, the ERP 0", "gap +3"],
            ),
        ),
        id="damages: written off at the truth only",
    ),
    pytest.param(
        Row(
            BUNDLE_DRIFT,
            World(BUNDLE_LEVELS),
            RootCauseHint(
                "bundle_math",
                "Likely bundle math: Shopify shows 7 of bundle GIFT, but the components at "
                "the WMS allow 4",
                [
                    "bundle: shopify shows 7, its own components imply 4, the truth's "
                    "components imply 4",
                    "components at the WMS: MUG 8, TEE 10",
                ],
            ),
        ),
        id="bundle: engine evidence on the bundle",
    ),
    pytest.param(
        Row(
            drift("shopify", "undersell", 10, 6, sku="MUG"),
            World(extra={"bundles_of": {"MUG": {"GIFT": 2}}, "recent_orders": {"GIFT": 3}}),
            RootCauseHint(
                "bundle_math",
                "Likely bundle math: Shopify is 4 under on MUG, which fits recent sales of "
                "bundle GIFT deducted at the wrong level",
                [
                    "MUG is a component of GIFT (2 per bundle)",
                    "3 of GIFT ordered recently: 6 units of MUG",
                    "gap -4 (Shopify 6, expected 10)",
                ],
            ),
        ),
        id="bundle: a component off by bundle sales",
    ),
    pytest.param(
        Row(
            drift("shopify", "undersell", 20, 12, age=30 * MIN),
            World(MANUAL_LEVELS, MANUAL_EXTRA),
            RootCauseHint(
                "manual_storefront_override",
                MANUAL,
                [
                    "Shopify changed 30 min ago, last sync 2 h ago",
                    "no orders or refunds of TEE recorded",
                ],
            ),
        ),
        id="manual override in Shopify",
    ),
    pytest.param(
        Row(
            drift("erp", "count_mismatch", 20, 26, age=6 * 60 * MIN),
            World(
                [lv("erp", available=26, ago=6 * 60 * MIN), lv("wms", available=20)],
                {"movement": {("erp", "TEE", "east"): -6}},
            ),
            RootCauseHint(
                "batch_window",
                "Likely a batch window: the ERP's data is 6 h older than the WMS's and the "
                "WMS moved -6 since, exactly the gap",
                ["the ERP observed 6 h before the WMS", "the WMS moved -6 since, exactly the gap"],
            ),
        ),
        id="batch window: gap equals movement since the drop",
    ),
    pytest.param(
        Row(
            drift("erp", "count_mismatch", 20, 26, age=6 * 60 * MIN),
            World(
                [
                    lv("erp", available=26, ago=6 * 60 * MIN),
                    lv("wms", available=20, changed_ago=60 * MIN),
                ]
            ),
            RootCauseHint(
                "batch_window",
                "Likely a batch window: the ERP's data is 6 h older than the WMS's and the "
                "WMS changed since (by how much is not known)",
                [
                    "the ERP observed 6 h before the WMS",
                    "the WMS changed since (by how much is not known)",
                ],
            ),
        ),
        id="batch window: the truth changed after the drop",
    ),
    pytest.param(
        Row(
            PACK_DRIFT,
            World(PACK_LEVELS, {"pack_sizes": {("erp", "TEE"): 12}}),
            RootCauseHint(
                "pack_size_transformation",
                "Likely a pack-size transformation: the ERP shows 240 = 20 × 12, as if a pack "
                "size of 12 were applied to a count already in units",
                [
                    "pack size 12: erp shows 240 = 20 × 12; a pack size of 12 may be applied "
                    "to a count already in units",
                    "the ERP packs TEE in 12s",
                ],
            ),
        ),
        id="pack size: engine evidence and configured size",
    ),
    pytest.param(
        Row(
            drift("erp", "count_mismatch", 24, 2),
            World(extra={"pack_sizes": {("erp", "TEE"): 12}}),
            RootCauseHint(
                "pack_size_transformation",
                "Likely a pack-size transformation: the ERP shows 2 and 2 × 12 = 24, as if it "
                "counted packs of 12 as units",
                ["the ERP packs TEE in 12s"],
            ),
        ),
        id="pack size: packs counted as units",
    ),
    pytest.param(
        Row(
            drift("shopify", "undersell", 20, 15),
            World(
                [
                    lv("shopify", on_hand=20, available=15),
                    lv("wms", on_hand=20, available=15, committed=5),
                ]
            ),
            RootCauseHint(
                "partial_state_update",
                "Likely a partial state update: Shopify and the WMS agree on on-hand (20) but "
                "not on the compared states (15 vs 20)",
                [
                    "on_hand 20 in both",
                    "Shopify: on_hand 20, available 15; the WMS: on_hand 20, available 15, "
                    "committed 5",
                ],
            ),
        ),
        id="partial update: on-hand agrees",
    ),
    pytest.param(
        Row(
            drift("shopify", "undersell", 20, 15),
            World(
                [
                    lv("shopify", on_hand=25, available=15),
                    lv("wms", on_hand=20, available=15, committed=5),
                ]
            ),
            RootCauseHint(
                "partial_state_update",
                "Likely a partial state update: Shopify reports no committed quantity while "
                "the WMS has 5 committed",
                [
                    "Shopify: on_hand 25, available 15; the WMS: on_hand 20, available 15, "
                    "committed 5"
                ],
            ),
        ),
        id="partial update: committed missing on one side",
    ),
    pytest.param(
        Row(
            drift("shopify", "undersell", 20, 14),
            World(extra={"item_webhooks": {("shopify", "TEE", "east"): WebhookFacts(4, 2)}}),
            RootCauseHint(
                "out_of_sequence_retry",
                "Likely an out-of-sequence retry: 2 Shopify updates for TEE at east arrived "
                "after a newer one, so an old level may have overwritten it",
                ["2 stale webhook deliveries for TEE at east"],
            ),
        ),
        id="out-of-sequence retry",
    ),
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 10, 14, age=30 * MIN),
            World(extra={"item_webhooks": {("shopify", "TEE", "east"): WebhookFacts(missed=True)}}),
            RootCauseHint(
                "webhook_gap",
                "Likely a webhook gap: the last poll of Shopify found a change to TEE at east "
                "that no webhook announced",
                ["poll found an unannounced change (Shopify)"],
            ),
        ),
        id="webhook gap: missed flag",
    ),
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 10, 14, age=30 * MIN),
            World(
                [lv("shopify", available=14, changed_ago=20 * MIN), lv("wms", available=10)],
                {
                    "system_webhooks": {"shopify": WebhookFacts(received=0)},
                    "last_sync": {"shopify": NOW - 10 * MIN},
                },
            ),
            RootCauseHint(
                "webhook_gap",
                "Likely a webhook gap: Shopify's level of TEE at east changed 20 min ago but "
                "no webhook delivery arrived",
                ["Shopify changed 20 min ago", "0 webhook deliveries"],
            ),
        ),
        id="webhook gap: level changed, no deliveries",
    ),
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 10, 14, age=12 * MIN),
            World(extra={"health": {"shopify": THROTTLED}}),
            RootCauseHint(
                "rate_limit_drops",
                "Likely updates dropped under rate limiting: Shopify was throttled around "
                "when the drift began 12 min ago",
                [
                    "Shopify: 7 throttles, 5 retries",
                    "last error 5 min ago: rate limited (HTTP 429)",
                ],
            ),
        ),
        id="rate limit: a 429 near when the drift began",
    ),
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 10, 14, age=12 * MIN),
            World(
                extra={
                    "health": {
                        "shopify": Health(
                            system="shopify",
                            throttles=2,
                            throttle=ThrottleState(maximum=1000, available=50, at=NOW - 3 * MIN),
                        )
                    }
                }
            ),
            RootCauseHint(
                "rate_limit_drops",
                "Likely updates dropped under rate limiting: Shopify was throttled around "
                "when the drift began 12 min ago",
                ["Shopify: 2 throttles, 0 retries", "bucket 95% drained 3 min ago"],
            ),
        ),
        id="rate limit: bucket drained near when the drift began",
    ),
    # --- ambiguity: the more specific cause wins, the runner-up is named --------------
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 15, 20),
            World(
                RACE_LEVELS,
                {"item_webhooks": {("shopify", "TEE", "east"): WebhookFacts(1, 0, True)}},
            ),
            RootCauseHint(
                "race_in_flight_orders",
                RACE,
                [
                    "gap +5, the drift is 2 min old",
                    "Shopify has 5 more committed than the WMS",
                    "runner-up: webhook_gap: Likely a webhook gap: the last poll of Shopify "
                    "found a change to TEE at east that no webhook announced",
                ],
            ),
        ),
        id="ambiguous: race over webhook gap",
    ),
    pytest.param(
        Row(
            drift("shopify", "undersell", 20, 12, age=30 * MIN),
            World(
                MANUAL_LEVELS,
                {
                    **MANUAL_EXTRA,
                    "health": {"shopify": replace(THROTTLED, last_error_at=NOW - 28 * MIN)},
                },
            ),
            RootCauseHint(
                "manual_storefront_override",
                MANUAL,
                [
                    "Shopify changed 30 min ago, last sync 2 h ago",
                    "no orders or refunds of TEE recorded",
                    "runner-up: rate_limit_drops: Likely updates dropped under rate limiting: "
                    "Shopify was throttled around when the drift began 30 min ago",
                ],
            ),
        ),
        id="ambiguous: manual override over rate limiting",
    ),
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 15, 20),
            World(
                [
                    lv("shopify", on_hand=20, available=15, committed=5),
                    lv("wms", on_hand=20, available=15, committed=0),
                ]
            ),
            RootCauseHint(
                "race_in_flight_orders",
                RACE,
                [
                    "gap +5, the drift is 2 min old",
                    "Shopify has 5 more committed than the WMS",
                    "runner-up: partial_state_update: Likely a partial state update: Shopify "
                    "and the WMS agree on on-hand (20) but not on the compared states (20 vs 15)",
                ],
            ),
        ),
        id="ambiguous: young, race over partial update",
    ),
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 15, 20, age=30 * MIN),
            World(
                [
                    lv("shopify", on_hand=20, available=15, committed=5),
                    lv("wms", on_hand=20, available=15, committed=0),
                ]
            ),
            RootCauseHint(
                "partial_state_update",
                "Likely a partial state update: Shopify and the WMS agree on on-hand (20) but "
                "not on the compared states (20 vs 15)",
                [
                    "on_hand 20 in both",
                    "Shopify: on_hand 20, available 15, committed 5; the WMS: on_hand 20, "
                    "available 15, committed 0",
                ],
            ),
        ),
        id="ambiguous: the same drift aged out of the race window",
    ),
    pytest.param(
        Row(
            drift("shopify", "undersell", 20, 12, age=30 * MIN),
            World(
                MANUAL_LEVELS,
                {
                    **MANUAL_EXTRA,
                    "item_webhooks": {("shopify", "TEE", "east"): WebhookFacts(missed=True)},
                },
            ),
            RootCauseHint(
                "webhook_gap",
                "Likely a webhook gap: the last poll of Shopify found a change to TEE at east "
                "that no webhook announced",
                ["poll found an unannounced change (Shopify)"],
            ),
        ),
        id="ambiguous: an unannounced change is a webhook gap, not a manual edit",
    ),
    pytest.param(
        Row(
            drift("shopify", "undersell", 20, 12, age=30 * MIN),
            World(
                MANUAL_LEVELS,
                {**MANUAL_EXTRA, "item_syncs": {("shopify", "TEE", "east"): NOW - 20 * MIN}},
            ),
            None,
        ),
        id="manual-shaped but a resync wrote the level after the change",
    ),
    # --- no hint ----------------------------------------------------------------------
    pytest.param(
        Row(drift("shopify", "oversell_risk", 10, 14), World(), None),
        id="no evidence at all",
    ),
    pytest.param(
        Row(drift("shopify", "oversell_risk", 15, 20, age=30 * MIN), World(RACE_LEVELS), None),
        id="race-shaped but too old, nothing else",
    ),
    pytest.param(
        Row(
            drift("shopify", "undersell", 20, 12, age=30 * MIN),
            World(MANUAL_LEVELS, {**MANUAL_EXTRA, "recent_orders": {"TEE": 2}}),
            None,
        ),
        id="manual-shaped but orders explain the change",
    ),
    pytest.param(
        Row(
            drift("shopify", "oversell_risk", 10, 14, age=3 * MIN),
            World(extra={"health": {"shopify": replace(THROTTLED, last_error_at=NOW - 40 * MIN)}}),
            None,
        ),
        id="throttled, but long before the drift began",
    ),
    pytest.param(
        Row(
            drift("shopify", "stale", 15, 20),
            World(RACE_LEVELS, {"item_webhooks": {("shopify", "TEE", "east"): WebhookFacts(1, 3)}}),
            None,
        ),
        id="state class: stale",
    ),
    pytest.param(
        Row(
            drift("shopify", "missing", 20, None),
            World(extra={"recent_refunds": {"TEE": 30}}),
            None,
        ),
        id="state class: missing",
    ),
    pytest.param(
        Row(drift("shopify", "negative", None, -2, truth=None), World(), None),
        id="no expected value",
    ),
]


@pytest.mark.parametrize("row", ROWS)
def test_explain(row: Row) -> None:
    assert explain(row.drift, row.world.evidence()) == row.expected


def test_every_cause_has_a_row() -> None:
    causes = {p.values[0].expected.cause for p in ROWS if p.values[0].expected}  # type: ignore[union-attr]
    assert causes == set(CAUSES)


def test_the_taxonomy_keys() -> None:
    assert set(CAUSES) == {
        "race_in_flight_orders",
        "returns_damages_not_flowing",
        "bundle_math",
        "manual_storefront_override",
        "batch_window",
        "pack_size_transformation",
        "partial_state_update",
        "out_of_sequence_retry",
        "webhook_gap",
        "rate_limit_drops",
    }
    assert len(CAUSES) == 10


def test_hint_for_gives_the_pipeline_the_summary() -> None:
    hint = hint_for(World(RACE_LEVELS).evidence())
    assert hint(drift("shopify", "oversell_risk", 15, 20)) == Explained(
        "race_in_flight_orders", RACE
    )
    assert hint(drift("shopify", "oversell_risk", 15, 20, age=30 * MIN)) is None
