"""Issue 13, finding I / items 7-8: wrong answers. Resync is offered only when its write
can be made; unknown locations and kinds are errors listing the valid ones;
``/synchealth`` is not green while a critical incident is open; quantities are ASCII
digits within Shopify's bounds, checked before anything is written; an adjustment the
source of truth refused is shown as refused and counted nowhere. Through the production
Service, signed requests and the fake Slack."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, time
from pathlib import Path

from truth_testing import running

from bot.slack.render.summary import post_daily_adjustments
from monitors.reports import AdjustmentRules, daily_adjustments, weekly_summary
from sandbox.world import World

SKU = "TEE-BLK-M"


def committed_beyond_the_truth(world: World) -> None:
    """CAP-NAVY at east: Shopify has 120 units committed to orders, the WMS holds 100."""
    world.shopify.set_quantities("CAP-NAVY", world.gid("east"), available=10, committed=120)
    world.wms.set_level(
        "CAP-NAVY", world.warehouse("east"), pickable=100, allocated=0, on_hand=100, damaged=0
    )


async def test_resync_is_not_offered_when_the_write_would_be_refused(tmp_path: Path) -> None:
    async with running(tmp_path, setup=committed_beyond_the_truth) as bot:
        incident = await bot.incident("CAP-NAVY")
        assert incident.details["gap"] == 30

        card = bot.card(incident)
        assert "resync" not in bot.buttons(incident)
        assert "Set *shopify*" not in card
        assert "*Why no Resync*: shopify has 120 units committed to orders" in card
        assert "*Next step*: release or cancel orders in shopify" in card
        assert "`/adjust CAP-NAVY east`" in card
        # /resync says the same, and offers no button either
        answer = await bot.command("/resync", "CAP-NAVY east")
        assert "Why no Resync" in answer
        assert "resync_sku" not in answer
        assert bot.world.shopify.writes == []


async def test_the_resync_confirm_says_exactly_what_will_be_written(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        incident = await bot.incident(SKU)
        [button] = [
            e
            for b in bot.message(incident).blocks or []
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == "resync"
        ]
        confirm = button["confirm"]["text"]["text"]
        assert confirm.startswith("Set *shopify* available from 40 to *28* for `TEE-BLK-M`")
        await bot.click(incident, "resync")
        assert bot.shopify(SKU)["available"] == 28


async def test_an_unknown_location_or_kind_is_an_error_listing_the_valid_ones(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as bot:
        answer = await bot.command("/resync", "CAP-NAVY mars")
        assert "No location `mars`. The locations are: `east`, `west`" in answer
        assert "in sync" not in answer

        answer = await bot.command("/incidents", "bogus")
        assert "No incident kind `bogus`" in answer
        assert "`oversell_risk`" in answer
        assert "`webhook_signatures_rejected`" in answer
        assert "`sync_stale`" in answer
        assert "none" not in answer

        answer = await bot.command("/incidents", "open oversell_risk")
        assert "Oversell risk: TEE-BLK-M at east" in answer
        assert bot.world.shopify.writes == []


async def test_synchealth_is_not_green_while_a_critical_webhook_incident_is_open(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as bot:
        health = await bot.command("/synchealth", "")
        assert ":large_green_circle: *shopify*" in health

        body = json.dumps({"inventory_item_id": 1, "location_id": 1, "available": 3}).encode()
        assert bot.service.url is not None
        for _ in range(4):  # signed with a secret this deployment does not have
            response = await bot.http.post(
                f"{bot.service.url}/webhooks/shopify",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Shopify-Topic": "inventory_levels/update",
                    "X-Shopify-Hmac-Sha256": "bm90IHRoZSBzaWduYXR1cmU=",
                },
            )
            assert response.status_code == 401
        await bot.service.run_job("webhook-health")
        await bot.settle()
        [webhook] = [
            i
            for i in await bot.ledger.list_incidents(limit=100)
            if i.kind == "webhook_signatures_rejected"
        ]
        assert webhook.severity == "critical"

        health = await bot.command("/synchealth", "")
        assert ":large_green_circle: *shopify*" not in health
        assert ":red_circle: *shopify*" in health
        assert f"open: {webhook.title} (critical, #{webhook.id})" in health
        assert ":warning: *Drift*: 1 open incident (1 critical)" in health


async def test_quantities_are_ascii_digits_within_bounds_checked_before_any_write(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as bot:
        wms_before = len(bot.world.wms.writes)
        cases = {
            "1000000000000": ("count", "between -1,000,000,000 and 1,000,000,000"),
            "99999999999999999999": ("count", "between -1,000,000,000 and 1,000,000,000"),
            "٣٠": ("count", "digits 0-9"),
        }
        for raw, (field, words) in cases.items():
            response = await bot.adjust(count=raw)
            errors = response.json()["errors"]
            assert set(errors) == {field}, raw
            assert words in errors[field], raw
            assert "Python int" not in errors[field]
        response = await bot.adjust(delta="-٣")
        assert "digits 0-9" in response.json()["errors"]["delta"]
        assert await bot.ledger.list_adjustments() == []

        # within bounds itself, but the count it leads to is not: refused before writing
        response = await bot.adjust(delta="999999999")
        assert response.status_code == 200
        [row] = await bot.ledger.list_adjustments()
        assert (row.status, row.after) == ("failed", None)
        assert row.error is not None
        assert "1,000,000,000" in row.error
        assert len(bot.world.wms.writes) == wms_before
        assert bot.world.wms.level(SKU, bot.world.warehouse("east")).pickable == 28
        assert any("was recorded but not applied" in t for t in bot.private())


async def test_a_refused_adjustment_is_shown_refused_and_not_counted(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        await bot.adjust(delta="-100", reason="shrinkage", note="lost in the move")

        drift = await bot.command("/drift", SKU)
        assert "refused, not applied" in drift
        assert "~" in drift
        day = datetime.combine(bot.clock.now().date(), time(), bot.clock.now().tzinfo)
        summary = await weekly_summary(bot.ledger, day.date(), bot.demo.config.tz)
        assert summary.this_week.adjustments == 0
        [row] = await bot.ledger.list_adjustments()
        assert row.status == "failed"
        assert "would make it negative" in (row.error or "")
        outcomes = [
            a.action
            for a in await bot.ledger.list_audit()
            if a.subject == f"adjustment:{row.id}" and a.action != "adjustment.recorded"
        ]
        assert outcomes == ["adjustment.failed"]
        report = await daily_adjustments(bot.ledger, day, AdjustmentRules(source_of_truth="wms"))
        assert (report.total, len(report.refused)) == (0, 1)
        await post_daily_adjustments(
            bot.ledger, bot.channel, bot.clock.now(), bot.demo.config.tz, day_start=day
        )
        await bot.settle()
        messages = bot.slack.messages(bot.channel)
        [posted] = [m for m in messages if "Adjustments on" in (m.text or "")]
        assert (posted.text or "").endswith(": 0")
        assert "1 not applied (refused or failed), not counted" in json.dumps(posted.blocks)


async def test_five_concurrent_adjustments_count_only_those_applied(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        views = [await bot.open_adjust() for _ in range(5)]
        submitted = await asyncio.gather(
            *(bot.submit_adjust(view, delta="-1", reason="damaged") for view in views)
        )
        assert [r.status_code for r in submitted] == [200] * 5
        await bot.settle()

        rows = await bot.ledger.list_adjustments()
        assert len(rows) == 5
        applied = [r for r in rows if r.status == "applied"]
        assert all(r.status in ("applied", "failed") for r in rows)
        level = bot.world.wms.level(SKU, bot.world.warehouse("east"))
        assert level.pickable == 28 - len(applied)
        audit = [a for a in await bot.ledger.list_audit(limit=1000)]
        for row in rows:
            outcome = [
                a.action
                for a in audit
                if a.subject == f"adjustment:{row.id}" and a.action != "adjustment.recorded"
            ]
            assert outcome == [f"adjustment.{row.status}"]
        day = datetime.combine(bot.clock.now().date(), time(), bot.clock.now().tzinfo)
        report = await daily_adjustments(bot.ledger, day)
        assert report.total == len(applied)
        assert len(report.refused) == 5 - len(applied)
        summary = await weekly_summary(bot.ledger, bot.clock.now().date(), bot.demo.config.tz)
        assert summary.this_week.adjustments == len(applied)


async def test_hostile_words_in_a_command_are_shown_not_obeyed(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        answer = await bot.command("/resync", "CAP-NAVY <!channel>")
        assert "No location `&lt;!channel&gt;`" in answer
        assert "<!channel>" not in answer
        answer = await bot.command("/incidents", "<@U0CFO0042>")
        assert "No incident kind `&lt;@U0CFO0042&gt;`" in answer
        assert "<@U0CFO0042>" not in answer
        assert bot.world.shopify.writes == []


async def test_a_resync_refused_after_the_alert_was_posted_leaves_a_card_with_the_next_step(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as bot:
        incident = await bot.incident(SKU)
        assert "resync" in bot.buttons(incident)
        # orders land: Shopify now has more committed than the WMS holds
        bot.world.shopify.set_quantities(SKU, bot.world.gid("east"), available=0, committed=50)

        await bot.click(incident, "resync")

        assert bot.world.shopify.writes == []
        after = await bot.ledger.get_incident(incident.id)
        assert after.status == "open"
        assert after.details["resync"]["can"] is False
        card = bot.card(incident)
        assert "resync" not in bot.buttons(incident)
        assert "*Why no Resync*: shopify has 50 units committed to orders" in card
        assert "*Next step*: release or cancel orders in shopify" in card
        assert "*shopify*: 50" in card
        reply = bot.replies(incident)[-1]
        assert "refusing a negative count — requested by <@U0OPS001>" in reply
        assert "Still drifting: shopify 50, expected 30 (+20" in reply
        [told] = [t for t in bot.private() if t.startswith("The resync did not go through")]
        assert "Next step: release or cancel orders in shopify" in told
