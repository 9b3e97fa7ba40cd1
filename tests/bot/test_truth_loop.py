"""Issue 13, finding A / item 1: after every resync or adjustment the SKU is read again
from every system and evaluated at once; the alert, ``/drift`` and ``/synchealth`` then
say what is true. Through the production Service, signed requests, the fake Slack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from truth_testing import WRITER, running

from bot.service import Service
from connectors import ManualClock
from ledger import SYSTEM_ACTOR
from monitors.resync import ResyncRequest, ResyncResult

SKU = "TEE-BLK-M"


async def test_resync_resolves_the_alert_at_once_and_drift_and_synchealth_agree(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as bot:
        incident = await bot.incident(SKU)
        assert "resync" in bot.buttons(incident)
        assert "42" in bot.card(incident)

        await bot.click(incident, "resync")

        assert bot.shopify(SKU)["available"] == 28
        after = await bot.ledger.get_incident(incident.id)
        assert (after.status, after.resolved_by) == ("resolved", SYSTEM_ACTOR)
        resolution = after.details["resolution"]
        assert resolution["after"]["what"] == "resync"
        assert resolution["values"] == {"shopify": 30, "wms": 30}
        assert resolution["gap"] == 0
        # the alert as Slack holds it: resolved, the final counts, no buttons
        card = bot.card(incident)
        assert "Resolved" in card
        assert "*Final counts*" in card
        assert "*shopify*: 30" in card
        assert "*wms*: 30" in card
        assert "+12" not in card
        assert bot.buttons(incident) == []
        assert bot.message(incident).edited
        [reply] = bot.replies(incident)
        assert "40 → 28 — requested by <@U0OPS001>" in reply
        assert "Recovered: every system agrees with the source of truth again" in reply
        assert "shopify 30, wms 30 (source of truth)" in reply
        # /drift and /synchealth say the same
        drift = await bot.command("/drift", SKU)
        assert f"{SKU}: every system agrees" in drift
        assert "shopify: *30*" in drift
        assert "No open incident." in drift
        assert "off by" not in drift
        health = await bot.command("/synchealth", "")
        assert "no open drift incident" in health
        worst = await bot.command("/drift", "")
        assert "No drift right now" in worst


async def test_a_drift_that_goes_on_after_the_resync_shows_the_new_numbers_and_why(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as bot:
        incident = await bot.incident(SKU)

        async def merchandiser_edits_shopify(request: ResyncRequest, result: Any) -> None:
            # someone types a count into Shopify's admin right after the write
            bot.world.shopify.set_quantities(SKU, bot.world.gid("east"), available=33)

        bot.service.resync.after.insert(0, merchandiser_edits_shopify)
        await bot.click(incident, "resync")

        after = await bot.ledger.get_incident(incident.id)
        assert after.status != "resolved"
        assert (after.details["actual"], after.details["gap"]) == (35, 5)
        card = bot.card(incident)
        assert "+5 units" in card
        assert "*shopify*: 35" in card
        assert "+12" not in card
        assert "resync" in bot.buttons(incident), "Resync can still fix it"
        reply = bot.replies(incident)[0]
        assert "40 → 28 — requested by <@U0OPS001>" in reply
        assert "Still drifting: shopify 35, expected 30 (+5" in reply
        drift = await bot.command("/drift", SKU)
        assert "shopify is off by +5 at east" in drift
        health = await bot.command("/synchealth", "")
        assert f"`{SKU}` at east: shopify +5" in health


async def test_an_adjustment_closes_the_loop(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        incident = await bot.incident(SKU)

        await bot.adjust(count="40", note="Counted the bin")

        after = await bot.ledger.get_incident(incident.id)
        assert after.status == "resolved"
        assert after.details["resolution"]["after"]["what"] == "adjustment"
        card = bot.card(incident)
        assert "*wms*: 42" in card
        assert "*shopify*: 42" in card
        assert bot.buttons(incident) == []
        [reply] = bot.replies(incident)
        assert reply.startswith("Adjusted TEE-BLK-M at east in wms (source of truth)")
        assert "Adjusted by <@U0OPS001>, noting:\n> Counted the bin" in reply  # quoted
        assert "Recovered: every system agrees" in reply
        assert "No open incident." in await bot.command("/drift", SKU)


def _policy_on(raw: dict[str, Any]) -> None:
    raw["skus"] = {"tags": {}}  # TEE-BLK-M is no hero here: the policy may write it
    raw["thresholds"] = {"persistence_diffs": 1}
    raw["policy"] = {"auto_resync": True, "auto_resync_max_units": 20}


async def test_the_auto_resync_policy_closes_the_loop_in_the_same_diff(tmp_path: Path) -> None:
    async with running(tmp_path, config=_policy_on) as bot:
        incident = await bot.incident(SKU)

        assert bot.shopify(SKU)["available"] == 28
        after = await bot.ledger.get_incident(incident.id)
        assert after.status == "resolved"
        assert after.details["resolution"]["after"]["what"] == "auto-resync"
        card = bot.card(incident)
        assert "Auto-resync by Driftwatch: Resynced shopify available" in card
        assert "*shopify*: 30" in card
        assert bot.buttons(incident) == []
        [row] = await bot.ledger.list_resyncs()
        assert (row.status, row.requested_by) == ("applied", SYSTEM_ACTOR)
        assert "No open incident." in await bot.command("/drift", SKU)


async def test_a_resync_settled_at_start_closes_the_loop(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        incident = await bot.incident(SKU)
        # a process wrote 28 to Shopify and died before recording it: pending
        resync, _ = await bot.ledger.create_resync(
            "dw-dead-process",
            "shopify",
            SKU,
            "east",
            "available",
            28,
            WRITER,
            bot.clock.now(),
            incident_id=incident.id,
            before=40,
        )
        bot.world.shopify.set_quantities(SKU, bot.world.gid("east"), available=28)
        assert (await bot.ledger.get_incident(incident.id)).status == "open"
        environ = {**bot.demo.environ, "DEMO_SLACK_SIGNING_SECRET": "x"}
        # that process is gone (it held the SQLite file: a second one is refused)
        await bot.service.stop()

        restarted = Service(bot.demo.config, environ, bot.ledger, clock=ManualClock())
        await restarted.start(host="127.0.0.1", port=0, schedule=False)
        try:
            await restarted.idle()
            await restarted.outbox.drain()
        finally:
            await restarted.stop()

        assert (await bot.ledger.get_resync(resync.id)).status == "applied"
        after = await bot.ledger.get_incident(incident.id)
        assert after.status == "resolved"
        assert "*Final counts*" in bot.card(incident)
        assert bot.buttons(incident) == []


async def test_a_resync_whose_sku_cannot_be_read_again_still_hears_back(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        incident = await bot.incident(SKU)

        async def wms_goes_down(request: ResyncRequest, result: ResyncResult) -> None:
            bot.world.wms.force_5xx(50)

        bot.service.resync.after.insert(0, wms_goes_down)
        await bot.click(incident, "resync")

        assert bot.shopify(SKU)["available"] == 28
        reply = bot.replies(incident)[0]
        assert "40 → 28 — requested by <@U0OPS001>" in reply
        assert "Could not read it again to check the result (wms did not answer)" in reply


async def test_the_same_resync_twice_hours_apart_each_closes_its_loop(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        first = await bot.incident(SKU)
        await bot.click(first, "resync")
        assert (await bot.ledger.get_incident(first.id)).status == "resolved"

        bot.clock.advance(3 * 3600)
        bot.world.shopify.set_quantities(SKU, bot.world.gid("east"), available=40)
        await bot.diff()
        [again] = [i for i in await bot.ledger.list_incidents(sku=SKU) if i.status != "resolved"]
        assert "resync" in bot.buttons(again)
        await bot.click(again, "resync")

        assert bot.shopify(SKU)["available"] == 28
        assert (await bot.ledger.get_incident(again.id)).status == "resolved"
        assert bot.buttons(again) == []
        assert len([r for r in await bot.ledger.list_resyncs() if r.status == "applied"]) == 2
