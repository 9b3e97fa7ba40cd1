"""The ledger-backed evidence source: what it adds to a diff's evidence, from deliveries,
resyncs and level history recorded in a real ledger, and how few queries it costs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

import monitors.evidence as evidence_module
from connectors import ManualClock
from connectors.levels import Level
from ledger import Ledger
from monitors.assemble import evidence_source
from monitors.config import Config, config_from_dict
from monitors.drift import diff
from monitors.hints import Evidence, WebhookFacts
from monitors.jobs import EvidenceSource
from monitors.reconcile import DiffRun, observations
from monitors.wiring import rules_from_config

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
ITEM = "gid://shopify/InventoryItem/{}"
EAST = "gid://shopify/Location/7"


def config(tmp_path: Path) -> Config:
    return config_from_dict(
        {
            "source_of_truth": ["wms"],
            "systems": [
                {
                    "name": "shopify",
                    "kind": "shopify",
                    "shop_url": "https://example.myshopify.com",
                    "token_env": "T",
                    "webhook_secret_env": "W",
                },
                {
                    "name": "wms",
                    "kind": "rest",
                    "role": "warehouse",
                    "base_url": "https://wms.example.com",
                    "list": {"path": "/inventory"},
                    "fields": {
                        "sku": "sku",
                        "location": "wh",
                        "quantities": {"available": "pickable", "committed": "allocated"},
                    },
                },
                {
                    "name": "erp",
                    "kind": "csv",
                    "role": "erp",
                    "directory": str(tmp_path),
                    "columns": {"sku": "I", "location": "W", "quantities": {"on_hand": "Q"}},
                    "compare_states": ["on_hand"],
                },
            ],
            "locations": {"east": {"shopify": EAST, "wms": "WH-EAST", "erp": "WH-EAST"}},
            "thresholds": {"default": {"absolute": 0, "percent": 0.0}},
            "bundles": [{"sku": "gift", "components": {"tee": 2, "mug": 1}}],
            "pack_sizes": {"erp": {"skus": {"MUG": 12}}},
            "slack": {
                "alerts_channel": "C0EVIDENCE",
                "bot_token_env": "B",
                "signing_secret_env": "S",
            },
        }
    )


def shop(sku: str, num: int, *, changed: timedelta | None = None, **q: int) -> Level:
    return Level(
        "shopify",
        sku,
        "east",
        q,
        NOW,
        changed_at=NOW - changed if changed is not None else None,
        refs={"inventory_item_id": ITEM.format(num), "location_id": EAST},
    )


def wms(sku: str, *, at: datetime = NOW, **q: int) -> Level:
    return Level("wms", sku, "east", q, at)


@dataclass
class Setup:
    ledger: Ledger
    source: EvidenceSource
    config: Config

    async def explain(self, levels: list[Level]) -> Evidence:
        drifts = diff(levels, rules_from_config(self.config), now=NOW)
        base = Evidence(now=NOW, levels={(lv.system, lv.sku, lv.location): lv for lv in levels})
        return await self.source(DiffRun(levels, drifts), base)

    async def deliver(
        self,
        topic: str,
        *,
        ago: timedelta,
        resource: str | None = None,
        outcome: str = "processed",
        detail: dict[str, Any] | None = None,
    ) -> None:
        row, _ = await self.ledger.record_delivery(
            system="shopify",
            topic=topic,
            event_id=None,
            webhook_id=None,
            triggered_at=NOW - ago,
            received_at=NOW - ago + timedelta(seconds=2),
            outcome="received",
            resource_key=resource,
        )
        await self.ledger.finish_delivery(
            row.id, outcome=outcome, processed_at=NOW - ago, detail=detail
        )


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    cfg = config(tmp_path)
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'ev.db'}") as ledger:
        await ledger.upgrade()
        source = evidence_source(cfg, ledger, ManualClock(NOW))
        assert source is not None
        yield Setup(ledger, source, cfg)


def key(num: int) -> str:
    return f"{ITEM.format(num)}@{EAST}"


async def test_no_drift_no_evidence(setup: Setup) -> None:
    levels = [shop("TEE", 1, available=5), wms("TEE", available=5)]
    base = Evidence(now=NOW, levels={(lv.system, lv.sku, lv.location): lv for lv in levels})
    assert await setup.source(DiffRun(levels, []), base) is base


async def test_webhook_counts_stale_and_missed(setup: Setup) -> None:
    inventory = "inventory_levels/update"
    await setup.deliver(inventory, ago=20 * MIN, resource=key(1))
    await setup.deliver(inventory, ago=19 * MIN, resource=key(1), outcome="stale")
    await setup.deliver(inventory, ago=2 * 60 * MIN, resource=key(2))  # before the window
    await setup.deliver(inventory, ago=30 * MIN, resource=key(3))  # announces TEE-3's change
    ev = await setup.explain(
        [
            # TEE-1 changed 20 min ago: announced (and once out of order)
            shop("TEE-1", 1, changed=20 * MIN, available=9),
            wms("TEE-1", available=5),
            # TEE-2 changed 10 min ago; its only delivery is 2 h old: missed
            shop("TEE-2", 2, changed=10 * MIN, available=9),
            wms("TEE-2", available=5),
            # TEE-3 changed 30 min ago, announced within the tolerance
            shop("TEE-3", 3, changed=30 * MIN + 30 * timedelta(seconds=1), available=9),
            wms("TEE-3", available=5),
            # TEE-4 changed 2 min ago: its webhook may still be in flight
            shop("TEE-4", 4, changed=2 * MIN, available=9),
            wms("TEE-4", available=5),
        ]
    )
    assert ev.item_webhooks == {
        ("shopify", "TEE-1", "east"): WebhookFacts(received=2, stale=1),
        ("shopify", "TEE-2", "east"): WebhookFacts(received=0, missed=True),
        ("shopify", "TEE-3", "east"): WebhookFacts(received=1),
    }
    assert ev.system_webhooks == {"shopify": WebhookFacts(received=3, stale=1)}


async def test_nothing_is_missed_when_no_inventory_webhook_ever_came(setup: Setup) -> None:
    ev = await setup.explain(
        [shop("TEE", 1, changed=10 * MIN, available=9), wms("TEE", available=5)]
    )
    assert ev.item_webhooks == {}
    assert ev.system_webhooks == {"shopify": WebhookFacts(received=0)}


async def test_orders_and_restocked_refunds_per_sku(setup: Setup) -> None:
    def order(*lines: tuple[str, int]) -> dict[str, Any]:
        return {"line_items": [{"sku": s, "quantity": q} for s, q in lines]}

    await setup.deliver("orders/create", ago=3 * MIN, detail=order(("tee", 2), ("GIFT", 1)))
    await setup.deliver("orders/create", ago=5 * MIN, detail=order(("TEE", 1), ("MUG", 0)))
    await setup.deliver("orders/create", ago=30 * MIN, detail=order(("TEE", 7)))  # too old
    refund = {
        "refund_line_items": [
            {"sku": "TEE", "quantity": 2, "restock_type": "return"},
            {"sku": "TEE", "quantity": 5, "restock_type": "no_restock"},
        ]
    }
    await setup.deliver("refunds/create", ago=5 * 60 * MIN, detail=refund)
    ev = await setup.explain(
        [
            shop("TEE", 1, available=9),
            wms("TEE", available=5),
            shop("CAP", 2, available=9),
            wms("CAP", available=5),
        ]
    )
    assert ev.recent_orders == {"TEE": 3, "GIFT": 1, "CAP": 0}
    assert ev.recent_refunds == {"TEE": 2, "CAP": 0}


async def test_sales_unknown_when_those_webhooks_never_came(setup: Setup) -> None:
    ev = await setup.explain([shop("TEE", 1, available=9), wms("TEE", available=5)])
    assert (ev.recent_orders, ev.recent_refunds) == ({}, {})


async def test_configuration_and_resyncs(setup: Setup) -> None:
    for sku, minutes in (("TEE", 50), ("TEE", 40), ("CAP", 30)):
        row, _ = await setup.ledger.create_resync(
            f"{sku}-{minutes}", "shopify", sku, "east", "available", 5, "U1", NOW - minutes * MIN
        )
        await setup.ledger.update_resync(row.id, "applied", NOW - minutes * MIN, after=5)
    ev = await setup.explain(
        [
            shop("TEE", 1, available=9),
            wms("TEE", available=5),
            shop("MUG", 2, available=4),
            wms("MUG", available=2),
        ]
    )
    assert ev.item_syncs == {("shopify", "TEE", "east"): NOW - 40 * MIN}
    assert ev.bundles_of == {"TEE": {"GIFT": 2}, "MUG": {"GIFT": 1}}
    assert ev.pack_sizes == {("erp", "MUG"): 12}


async def test_movement_of_the_truth_since_a_batch_observation(setup: Setup) -> None:
    exported = NOW - 6 * 60 * MIN

    async def record(level: Level) -> None:
        await setup.ledger.record_levels(observations([level]))

    await record(wms("TEE", at=exported - 10 * MIN, available=20, committed=2))
    await record(wms("TEE", at=exported + 60 * MIN, available=18, committed=2))
    await record(wms("TEE", at=NOW, available=15, committed=1))
    await record(wms("CAP", at=exported + 10 * MIN, available=4))  # history starts later
    await record(wms("CAP", at=NOW, available=3))
    erp = [
        Level("erp", "TEE", "east", {"on_hand": 22}, exported),
        Level("erp", "CAP", "east", {"on_hand": 4}, exported),
    ]
    ev = await setup.explain([*erp, wms("TEE", available=15, committed=1), wms("CAP", available=3)])
    assert ev.movement == {("erp", "TEE", "east"): -6}


async def test_large_diffs_read_the_window_not_a_list(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    await setup.deliver("inventory_levels/update", ago=20 * MIN, resource=key(1))
    await setup.deliver("orders/create", ago=2 * MIN, detail={"line_items": []})
    levels = [shop("TEE-1", 1, changed=20 * MIN, available=9), wms("TEE-1", available=5)]
    for n in range(2, 40):
        levels += [shop(f"TEE-{n}", n, available=9), wms(f"TEE-{n}", available=5)]
    narrow = await setup.explain(levels)
    monkeypatch.setattr(evidence_module, "FILTER_MAX", 10)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = setup.ledger._engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        wide = await setup.explain(levels)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert wide == narrow
    assert wide.item_webhooks == {("shopify", "TEE-1", "east"): WebhookFacts(received=1)}
    # topics flowing, sales, inventory deliveries, their count, resyncs: one query each
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 5
