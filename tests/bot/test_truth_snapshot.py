"""Issue 13, finding B / item 2: one snapshot per card. The counts, the gap, the likely
cause and the chart of an alert come from the same read; a resolved alert shows its
final counts, never a live gap. Through the production Service and the fake Slack."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from truth_testing import running

from bot.charts.sku import CHART_DAYS, sku_chart_png

SKU = "TEE-BLK-M"


async def test_the_alert_follows_the_counts_and_its_cause_says_which_numbers_it_explains(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as bot:
        incident = await bot.incident(SKU)
        assert "+12 units" in bot.card(incident)
        first_cause = incident.root_cause_hint
        assert first_cause

        # the storefront moves on; the next read is two hours later
        bot.world.shopify.set_quantities(SKU, bot.world.gid("east"), available=48)
        bot.clock.advance(2 * 3600)
        await bot.diff()

        after = await bot.ledger.get_incident(incident.id)
        assert (after.details["actual"], after.details["gap"]) == (50, 20)
        card = bot.card(incident)
        assert "+20 units" in card
        assert "*shopify*: 50" in card
        assert "+12 units" not in card
        # today's read names another cause; the one kept from the drift's start says
        # the numbers it was written for
        assert after.root_cause_hint == first_cause
        assert "as first seen" in card
        assert "shopify 42, expected 30, gap +12" in card
        # /drift shows the same read as the alert
        assert "shopify is off by +20 at east" in await bot.command("/drift", SKU)


async def test_a_resolved_alert_shows_its_final_counts_and_no_live_gap(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        incident = await bot.incident(SKU)

        # fixed by hand in Shopify's admin: the next read sees every system agree
        bot.world.shopify.set_quantities(SKU, bot.world.gid("east"), available=28)
        bot.clock.advance(600)
        await bot.diff()

        after = await bot.ledger.get_incident(incident.id)
        assert after.status == "resolved"
        card = bot.card(incident)
        assert "Resolved" in card
        assert "*Final counts*" in card
        assert "*shopify*: 30" in card
        assert "*Final gap*\\n+0 units vs expected 30" in card
        assert "+12" not in card
        assert "*shopify*: 42" not in card
        assert bot.buttons(incident) == []
        assert (
            "Recovered: every system agrees with the source of truth again "
            "(shopify 30, wms 30 (source of truth))."
        ) in bot.replies(incident)
        # a person resolving a live drift: the card says the gap was as last seen
        bot.world.shopify.set_quantities(SKU, bot.world.gid("east"), available=40)
        bot.clock.advance(600)
        await bot.diff()
        [again] = [i for i in await bot.ledger.list_incidents(sku=SKU) if i.status != "resolved"]
        await bot.click(again, "resolve")
        card = bot.card(again)
        assert "Resolved" in card
        assert "*Gap when last seen*\\n+12 units (before it was resolved)" in card
        assert "*Gap*\\n" not in card


async def test_the_chart_is_drawn_from_the_read_the_alert_shows(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        cap = "CAP-NAVY"
        gid = bot.world.gid("east")
        bot.world.shopify.set_quantities(cap, gid, available=20)
        bot.clock.advance(60)
        await bot.service.diff_job.run()  # the alert is queued, not delivered yet
        [incident] = await bot.ledger.list_incidents(sku=cap)
        read_at = max(datetime.fromisoformat(t) for t in incident.details["observed_at"].values())
        # a later read Shopify answers and the WMS does not: recorded, not evaluated
        bot.world.shopify.set_quantities(cap, gid, available=25)
        bot.world.wms.force_5xx(50)
        bot.clock.advance(60)
        await bot.service.diff_job.run()
        assert (await bot.ledger.get_incident(incident.id)).details["actual"] == 20

        await bot.settle()

        incident = await bot.ledger.get_incident(incident.id)
        assert "*shopify*: 20" in bot.card(incident)
        [chart] = [
            f for f in bot.slack.files.values() if (bot.channel, incident.slack_ts) in f.shared_to
        ]
        rows = await bot.ledger.level_series(cap, read_at - timedelta(days=CHART_DAYS))
        compare = {n: tuple(r.compare_states) for n, r in bot.service.rules.systems.items()}
        as_read = sku_chart_png(
            cap, [r for r in rows if r.observed_at <= read_at], compare, read_at, "east", "wms"
        )
        later = sku_chart_png(cap, rows, compare, bot.clock.now(), "east", "wms")
        assert chart.content == as_read
        assert chart.content != later


def _policy_on(raw: dict[str, Any]) -> None:
    raw["policy"] = {"auto_resync": True, "auto_resync_max_units": 3}


async def test_a_policy_decision_says_which_gap_it_was_made_on(tmp_path: Path) -> None:
    async with running(tmp_path, config=_policy_on) as bot:
        incident = await bot.incident(SKU)
        card = bot.card(incident)
        assert "Escalated to a person*: hero SKU; 12 units is over" in card
        assert "decided when" not in card

        bot.world.shopify.set_quantities(SKU, bot.world.gid("east"), available=48)
        bot.clock.advance(600)
        await bot.diff()

        card = bot.card(incident)
        assert "+20 units" in card
        assert (
            "12 units is over the auto-resync limit of 3 _(decided when the gap was +12)_" in card
        )
