"""A Shopify inventory webhook makes a drift visible in seconds: the receiver verifies
it, a debounced targeted diff reads just that SKU, and the alert reaches Slack."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.cli.demo import demo_world
from bot.service import Service
from connectors import ManualClock
from ledger import Ledger


async def test_a_webhook_triggers_a_targeted_diff_that_alerts(tmp_path: Path) -> None:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'hook.db'}") as ledger,
    ):
        await ledger.upgrade()
        world = demo.world
        service = Service(demo.config, demo.environ, ledger, clock=clock)
        url = await service.start(host="127.0.0.1", port=0)
        try:
            async with asyncio.timeout(30):
                await service.diff_done.wait()
                await service.idle()
            world.shopify.webhooks.subscribe("inventory_levels/update", f"{url}/webhooks/shopify")
            before = len(world.shopify.requests)

            west = world.locations["west"][0]
            world.shopify.set_quantities("CAP-NAVY", west, available=20)  # WMS: 7 + 1 = 8
            async with asyncio.timeout(30):
                await service.targeted_done.wait()
                await world.shopify.webhooks.idle()
                assert service.webhooks is not None
                await service.webhooks.idle()
                await service.idle()
            deliveries = await ledger.list_deliveries()
            titles = [i.title for i in await ledger.list_incidents()]
        finally:
            await service.stop()

    assert deliveries
    assert {d.outcome for d in deliveries} <= {"processed", "duplicate"}
    reads = [r for r in world.shopify.requests[before:] if r.operation_name == "InventoryItems"]
    assert reads, "the webhook caused a read"
    assert {r.variables["query"] for r in reads} == {"sku:CAP-NAVY"}, "only that SKU was read"
    assert "Oversell risk: CAP-NAVY at west" in titles
    texts = [m.text for m in world.slack.messages(world.alerts_channel)]
    assert any(t.startswith("Oversell risk: CAP-NAVY at west") for t in texts)


async def test_a_forged_webhook_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'forged.db'}") as ledger,
    ):
        await ledger.upgrade()
        service = Service(demo.config, demo.environ, ledger, clock=ManualClock())
        url = await service.start(host="127.0.0.1", port=0)
        try:
            async with asyncio.timeout(30):
                await service.diff_done.wait()
                await service.idle()
            demo.world.shopify.webhooks.secret = "not-the-shared-secret"
            demo.world.shopify.webhooks.subscribe(
                "inventory_levels/update", f"{url}/webhooks/shopify"
            )
            west = demo.world.locations["west"][0]
            demo.world.shopify.set_quantities("CAP-NAVY", west, available=20)
            async with asyncio.timeout(30):
                await demo.world.shopify.webhooks.idle()
                assert service.webhooks is not None
                await service.webhooks.idle()
        finally:
            await service.stop()
        assert await ledger.list_deliveries() == []
        [refused] = await ledger.list_refusals()
    assert (refused.outcome, refused.reason, refused.count) == ("rejected_signature", "mismatch", 1)
    assert not service.targeted_done.is_set()
