"""The adjustment service against the sandbox: the truth (the WMS) is written first with
compare-and-set, Shopify follows through the resync service with the mapped reason, the
ledger keeps one adjustment per key with its operator and reason code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cli.demo import DemoWorld, demo_config, demo_world
from connectors import ManualClock
from connectors.base import InventorySystem
from connectors.levels import LevelWrite, WriteOutcome
from connectors.shopify import REASONS
from ledger import Ledger
from monitors.adjustments import (
    REASON_CODES,
    AdjustmentRequest,
    AdjustmentService,
    adjustment_key,
)
from monitors.config import config_from_dict
from monitors.wiring import build_systems, rules_from_config

OPERATOR = "U0OPS001"


@dataclass
class Setup:
    demo: DemoWorld
    ledger: Ledger
    clock: ManualClock
    client: httpx.AsyncClient

    def service(
        self, config: dict[str, Any] | None = None, *, wrap: Any = None
    ) -> AdjustmentService:
        cfg = config_from_dict(config) if config is not None else self.demo.config
        systems: list[InventorySystem] = build_systems(
            cfg, client=self.client, clock=self.clock, environ=self.demo.environ
        )
        if wrap is not None:
            systems = [wrap(s) if s.name == "wms" else s for s in systems]
        return AdjustmentService(
            systems,
            rules_from_config(cfg),
            self.ledger,
            self.clock,
            {s.name: s.write_state for s in cfg.systems},
        )

    def pickable(self) -> int:
        return self.demo.world.wms.level("TEE-BLK-M", self.warehouse).pickable

    def shopify_available(self) -> int:
        gid = self.demo.world.locations["east"][0]
        return self.demo.world.shopify.quantities("TEE-BLK-M", gid)["available"]

    @property
    def warehouse(self) -> str:
        return self.demo.world.locations["east"][1]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'adjust.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        yield Setup(demo, ledger, ManualClock(), client)


def request(key: str = "view-1", **kw: Any) -> AdjustmentRequest:
    fields: dict[str, Any] = {
        "key": adjustment_key(key),
        "sku": "TEE-BLK-M",
        "location": "east",
        "operator": OPERATOR,
        "reason_code": "damaged",
    }
    return AdjustmentRequest(**(fields | kw))


def test_every_reason_code_maps_onto_a_shopify_reason() -> None:
    assert {shopify for _, shopify in REASON_CODES.values()} <= REASONS
    assert REASON_CODES["cycle_count"][1] == "cycle_count_available"
    assert REASON_CODES["return_restock"][1] == "restock"


async def test_a_new_count_is_written_to_the_wms_then_shopify_follows(setup: Setup) -> None:
    assert (setup.pickable(), setup.shopify_available()) == (28, 40)

    result = await setup.service().adjust(request(new_count=25))

    assert result.status == "applied", result.message
    assert (result.system, result.before, result.after) == ("wms", 28, 25)
    assert setup.pickable() == 25
    # available + committed (2) = pickable + allocated (2)
    assert setup.shopify_available() == 25
    [wms_write] = setup.demo.world.wms.writes
    assert (wms_write.field, wms_write.before.pickable, wms_write.after.pickable) == (
        "pickable",
        28,
        25,
    )
    [shop_write] = setup.demo.world.shopify.writes
    assert shop_write.reason == "damaged"
    assert result.message.startswith(
        "Adjusted TEE-BLK-M at east in wms (source of truth): available 28 → 25 (-3, Damaged)."
    )
    assert "Resynced shopify available for TEE-BLK-M at east: 40 → 25" in result.message
    [row] = await setup.ledger.list_adjustments(sku="TEE-BLK-M")
    assert (row.system, row.operator, row.reason_code, row.new_quantity, row.delta) == (
        "wms",
        OPERATOR,
        "damaged",
        25,
        None,
    )
    actions = [a.action for a in await setup.ledger.list_audit(subject=f"adjustment:{row.id}")]
    assert {"adjustment.recorded", "adjustment.applied"} <= set(actions)


async def test_a_change_applies_to_the_count_read_and_maps_the_reason(setup: Setup) -> None:
    result = await setup.service().adjust(
        request(delta=+4, reason_code="return_restock", note="RMA 1182")
    )

    assert result.status == "applied", result.message
    assert (setup.pickable(), setup.shopify_available()) == (32, 32)
    [shop_write] = setup.demo.world.shopify.writes
    assert shop_write.reason == "restock"
    [row] = await setup.ledger.list_adjustments()
    assert (row.delta, row.new_quantity, row.note) == (4, None, "RMA 1182")


async def test_the_same_key_records_and_writes_once(setup: Setup) -> None:
    service = setup.service()
    first = await service.adjust(request(delta=-3))
    again = await service.adjust(request(delta=-3))
    together = await asyncio.gather(
        service.adjust(request("view-2", delta=-1)), service.adjust(request("view-2", delta=-1))
    )

    assert (first.status, again.status) == ("applied", "duplicate")
    assert "already recorded" in again.message
    assert sorted(r.status for r in together) == ["applied", "duplicate"]
    assert setup.pickable() == 24
    assert len(setup.demo.world.wms.writes) == 2
    assert len(await setup.ledger.list_adjustments()) == 2


async def test_a_count_changed_between_read_and_write_is_not_overwritten(setup: Setup) -> None:
    class Racing:
        """The WMS, where a picker takes 5 just before the first write lands."""

        def __init__(self, inner: InventorySystem) -> None:
            self.inner = inner
            self.name = inner.name
            self.raced = False

        @property
        def writable(self) -> bool:
            return self.inner.writable

        async def read_levels(self, skus: Sequence[str] | None = None) -> Any:
            return await self.inner.read_levels(skus)

        async def write_levels(self, writes: Sequence[LevelWrite]) -> list[WriteOutcome]:
            if not self.raced:
                self.raced = True
                setup.demo.world.wms.set_level("TEE-BLK-M", setup.warehouse, pickable=23)
            return await self.inner.write_levels(writes)

        def health(self) -> Any:
            return self.inner.health()

    result = await setup.service(wrap=Racing).adjust(request(delta=-3))

    assert result.status == "applied", result.message
    assert (result.before, result.after) == (23, 20)
    assert setup.pickable() == 20


async def test_a_change_below_zero_is_refused_and_audited(setup: Setup) -> None:
    result = await setup.service().adjust(request(delta=-100))

    assert result.status == "failed"
    assert "would make it negative" in result.message
    assert setup.pickable() == 28
    assert setup.demo.world.wms.writes == []
    [row] = await setup.ledger.list_adjustments()
    actions = [a.action for a in await setup.ledger.list_audit(subject=f"adjustment:{row.id}")]
    assert "adjustment.failed" in actions


async def test_a_read_only_source_of_truth_is_not_adjusted(setup: Setup) -> None:
    raw = demo_config(setup.demo.world)
    wms = next(s for s in raw["systems"] if s["name"] == "wms")
    wms["writable"] = False
    del wms["write"]

    result = await setup.service(raw).adjust(request(new_count=25))

    assert result.status == "failed"
    assert "read-only" in result.message
    assert await setup.ledger.list_adjustments() == []
    assert setup.demo.world.shopify.writes == []
