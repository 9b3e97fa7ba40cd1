"""The resync service against the sandbox: the count Shopify ends with, the ledger row,
the audit entry, and exactly one write however many times it is asked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.demo import DemoClock, DemoWorld, demo_config, demo_world
from connectors import ManualClock
from ledger import Ledger
from monitors.config import config_from_dict
from monitors.resync import ResyncRequest, ResyncService
from monitors.wiring import build_systems, rules_from_config


@dataclass
class Setup:
    demo: DemoWorld
    ledger: Ledger
    service: ResyncService

    def shopify_available(self, sku: str, location: str) -> int:
        gid = self.demo.world.locations[location][0]
        return self.demo.world.shopify.quantities(sku, gid)["available"]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'resync.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        yield Setup(
            demo, ledger, ResyncService(systems, rules_from_config(demo.config), ledger, clock)
        )


REQUEST = ResyncRequest(sku="TEE-BLK-M", location="east", system="shopify", requested_by="U0OPS001")


async def test_resync_sets_shopify_to_the_source_of_truth(setup: Setup) -> None:
    result = await setup.service.resync(REQUEST)

    assert result.status == "applied"
    # WMS: pickable 28 + allocated 2 = 30; Shopify keeps 2 committed, so available → 28
    assert setup.shopify_available("TEE-BLK-M", "east") == 28
    assert result.message == "Resynced shopify available for TEE-BLK-M at east: 40 → 28"
    [write] = setup.demo.world.shopify.writes
    assert write.change_from_quantity == 40
    assert write.reference_document_uri == f"gid://driftwatch/Resync/{result.resync.id}"  # type: ignore[union-attr]
    [row] = await setup.ledger.list_resyncs()
    assert (row.status, row.before, row.target, row.requested_by) == ("applied", 40, 28, "U0OPS001")
    audit = await setup.ledger.list_audit(subject=f"resync:{row.id}")
    assert "resync.applied" in [a.action for a in audit]


async def test_two_simultaneous_clicks_write_once_and_both_see_the_outcome(setup: Setup) -> None:
    other = ResyncRequest(
        sku="TEE-BLK-M", location="east", system="shopify", requested_by="U0ONCALL1"
    )
    results = await asyncio.gather(setup.service.resync(REQUEST), setup.service.resync(other))

    assert {r.status for r in results} <= {"applied", "in_sync"}
    assert any(r.status == "applied" for r in results)
    assert len(setup.demo.world.shopify.writes) == 1
    assert setup.shopify_available("TEE-BLK-M", "east") == 28
    assert len(await setup.ledger.list_resyncs()) == 1


async def test_a_level_already_in_sync_is_not_written(setup: Setup) -> None:
    result = await setup.service.resync(
        ResyncRequest(sku="MUG-STONE", location="east", system="shopify", requested_by="U0OPS001")
    )
    assert result.status == "in_sync"
    assert setup.demo.world.shopify.writes == []


async def test_shadow_mode_writes_nothing_and_says_what_it_would_do(setup: Setup) -> None:
    shadow = ResyncRequest(
        sku="TEE-BLK-M", location="east", system="shopify", requested_by="driftwatch", shadow=True
    )
    result = await setup.service.resync(shadow)
    assert result.status == "shadow"
    assert "from 40 to 28" in result.message
    assert setup.demo.world.shopify.writes == []
    assert setup.shopify_available("TEE-BLK-M", "east") == 40


async def test_a_read_only_system_is_refused_plainly(setup: Setup) -> None:
    raw = demo_config(setup.demo.world)  # the demo's WMS is writable (for /adjust): undo it
    wms = next(s for s in raw["systems"] if s["name"] == "wms")
    wms["writable"] = False
    del wms["write"]
    config = config_from_dict(raw)
    async with httpx.AsyncClient() as client:
        clock = ManualClock()
        systems = build_systems(config, client=client, clock=clock, environ=setup.demo.environ)
        service = ResyncService(systems, rules_from_config(config), setup.ledger, clock)
        result = await service.resync(
            ResyncRequest(sku="TEE-BLK-M", location="east", system="wms", requested_by="U0OPS001")
        )
    assert result.status == "failed"
    assert result.message == "wms is read-only in the configuration"


async def test_a_bundle_is_resynced_to_what_its_components_allow(tmp_path: Path) -> None:
    """The gift set is two mugs: its truth is the mugs' truth ÷ 2. Reading the bundle
    alone judged it against no components, and the resync wrote 0."""
    clock = DemoClock()  # the world's clock too: the ERP's drop is stamped with it
    async with (
        demo_world(scenarios=True, clock=clock) as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'resync.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        clock.advance(120)  # the ERP's first drop settles
        world, gid = demo.world, demo.world.locations["east"][0]
        mugs = world.wms.level("MUG-STONE", world.warehouse("east")).pickable
        allowed = mugs // world.bundles["MUG-GIFT-2"]["MUG-STONE"]
        world.shopify.set_quantities("MUG-GIFT-2", gid, available=allowed + 6)
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        service = ResyncService(systems, rules_from_config(demo.config), ledger, clock)
        result = await service.resync(
            ResyncRequest(
                sku="MUG-GIFT-2", location="east", system="shopify", requested_by="U0OPS001"
            )
        )
        assert result.status == "applied", result.message
        assert world.shopify.quantities("MUG-GIFT-2", gid)["available"] == allowed
        assert result.message.endswith(f"{allowed + 6} → {allowed}")
