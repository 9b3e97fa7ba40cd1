"""The resync service against the sandbox: the count Shopify ends with, the ledger row,
the audit entry, and exactly one write however many times it is asked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.cli.demo import DemoClock, DemoWorld, demo_config, demo_world
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
    clock: ManualClock

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
            demo,
            ledger,
            ResyncService(systems, rules_from_config(demo.config), ledger, clock),
            clock,
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


# -- one key per decision (issue 14, finding 1) ------------------------------------------


def _service(setup: Setup, client: httpx.AsyncClient) -> ResyncService:
    """Another process's resync service: its own connectors, the same ledger and world."""
    config = setup.demo.config
    systems = build_systems(config, client=client, clock=setup.clock, environ=setup.demo.environ)
    return ResyncService(systems, rules_from_config(config), setup.ledger, setup.clock)


def _is_write(request: httpx.Request) -> bool:
    return b"inventorySetQuantities" in request.content


async def test_the_same_drift_coming_back_hours_later_is_written_again(setup: Setup) -> None:
    first = await setup.service.resync(REQUEST)
    assert (first.status, setup.shopify_available("TEE-BLK-M", "east")) == ("applied", 28)

    # Hours later something pushes the storefront back to 40: the same 40 -> 28 drift.
    gid = setup.demo.world.locations["east"][0]
    setup.demo.world.shopify.set_quantities("TEE-BLK-M", gid, available=40)
    setup.clock.advance(3 * 3600)
    again = await setup.service.resync(REQUEST)

    assert again.status == "applied"
    assert again.message == "Resynced shopify available for TEE-BLK-M at east: 40 → 28"
    assert setup.shopify_available("TEE-BLK-M", "east") == 28
    writes = setup.demo.world.shopify.writes
    assert [(w.before, w.after) for w in writes] == [(40, 28), (40, 28)]
    assert len({w.idempotency_key for w in writes}) == 2, "a new occurrence, a new key"
    rows = await setup.ledger.list_resyncs()
    assert [(r.status, r.before, r.after) for r in rows] == [("applied", 40, 28)] * 2
    assert {r.idempotency_key for r in rows} == {w.idempotency_key for w in writes}

    # The next day, again: a third occurrence, a third key.
    setup.demo.world.shopify.set_quantities("TEE-BLK-M", gid, available=40)
    setup.clock.advance(24 * 3600)
    assert (await setup.service.resync(REQUEST)).status == "applied"
    assert setup.shopify_available("TEE-BLK-M", "east") == 28
    assert len({w.idempotency_key for w in setup.demo.world.shopify.writes}) == 3


async def test_a_storm_of_clicks_on_one_decision_shares_one_key(setup: Setup) -> None:
    people = [f"U0OPS{i:03d}" for i in range(12)]
    results = await asyncio.gather(
        *(
            setup.service.resync(
                ResyncRequest(sku="TEE-BLK-M", location="east", system="shopify", requested_by=p)
            )
            for p in people
        )
    )
    assert {r.status for r in results} <= {"applied", "in_sync"}
    assert [w.after for w in setup.demo.world.shopify.writes] == [28]
    assert len(await setup.ledger.list_resyncs()) == 1
    assert setup.shopify_available("TEE-BLK-M", "east") == 28


async def test_a_resync_left_pending_does_not_replay_an_old_result_as_a_new_fix(
    setup: Setup,
) -> None:
    """A process died after Shopify applied 40 -> 28 and before the ledger heard. Hours
    later the storefront is back at 40 and someone clicks Resync: the decision is the
    same (40 -> 28, nothing settled since), so the key is the same and Shopify replays
    its original "applied". The read-back shows 40: the bot must not claim a fix."""

    async def die(response: httpx.Response) -> None:
        if _is_write(response.request) and response.status_code == 200:
            raise asyncio.CancelledError  # killed: Shopify applied it, the ledger never hears

    async with httpx.AsyncClient(event_hooks={"response": [die]}) as doomed:
        task = asyncio.create_task(_service(setup, doomed).resync(REQUEST))
        await asyncio.wait([task])
    assert task.cancelled()
    [left] = await setup.ledger.list_resyncs()
    assert left.status == "pending"
    assert setup.shopify_available("TEE-BLK-M", "east") == 28

    gid = setup.demo.world.locations["east"][0]
    setup.demo.world.shopify.set_quantities("TEE-BLK-M", gid, available=40)
    setup.clock.advance(3 * 3600)
    result = await setup.service.resync(REQUEST)

    assert setup.shopify_available("TEE-BLK-M", "east") == 28
    assert result.status == "applied"
    assert result.message == "Resynced shopify available for TEE-BLK-M at east: 40 → 28"
    writes = setup.demo.world.shopify.writes
    assert [(w.before, w.after) for w in writes] == [(40, 28), (40, 28)]
    rows = {r.id: r for r in await setup.ledger.list_resyncs()}
    assert rows[left.id].status == "applied"  # Shopify did apply it, hours ago
    assert rows[left.id].after == 40  # and this is what it held when read back
    assert [r.status for r in rows.values()] == ["applied", "applied"]


async def test_the_answer_says_what_shopify_holds_after_the_write(setup: Setup) -> None:
    """An order lands right after the write: Shopify's answer does not say so
    (``quantityAfterChange`` is null), the read-back does."""
    gid = setup.demo.world.locations["east"][0]
    ordered: list[int] = []

    async def order_after_write(response: httpx.Response) -> None:
        if _is_write(response.request) and not ordered:
            ordered.append(1)
            setup.demo.world.shopify.simulate_order("TEE-BLK-M", gid, 1)

    async with httpx.AsyncClient(event_hooks={"response": [order_after_write]}) as client:
        result = await _service(setup, client).resync(REQUEST)

    assert setup.demo.world.shopify.quantities("TEE-BLK-M", gid)["available"] == 27
    assert result.status == "applied"
    assert result.after == 27
    assert result.message == (
        "Resynced shopify available for TEE-BLK-M at east: 40 → 28, but shopify now holds 27, "
        "which agrees with the source of truth"
    )
    [row] = await setup.ledger.list_resyncs()
    assert (row.status, row.before, row.target, row.after) == ("applied", 40, 28, 27)
    assert len(setup.demo.world.shopify.writes) == 1  # the order is not written over


async def test_a_write_undone_at_once_is_reported_not_fought(setup: Setup) -> None:
    """Another app pushes the storefront back to 40 right after each write: one write,
    and the answer says Shopify holds 40, not that it was resynced."""
    gid = setup.demo.world.locations["east"][0]

    async def undo(response: httpx.Response) -> None:
        if _is_write(response.request):
            setup.demo.world.shopify.set_quantities("TEE-BLK-M", gid, available=40)

    async with httpx.AsyncClient(event_hooks={"response": [undo]}) as client:
        result = await _service(setup, client).resync(REQUEST)

    assert result.status == "unconfirmed"
    assert result.message == (
        "Wrote 28 to shopify available for TEE-BLK-M at east over 40, but shopify now holds 40"
    )
    assert len(setup.demo.world.shopify.writes) == 1
    [row] = await setup.ledger.list_resyncs()
    assert (row.status, row.before, row.target, row.after) == ("applied", 40, 28, 40)
