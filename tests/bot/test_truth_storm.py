"""Issue 13, finding C / item 3: storms never hide anything. A storm of drifts becomes one
alert naming its worst SKUs with their numbers; a drift already on an alert of its own
stays there (never "recovered" while it drifts); the group never resolves while one of
its SKUs drifts; its one action resyncs the members the policy deems safe, behind a
confirm that lists them. Through the production Service and the fake Slack."""

from __future__ import annotations

import json
import re
from pathlib import Path

from truth_testing import Bot, running

from sandbox.world import World

STORM = [f"STORM-{i:02d}" for i in range(1, 13)]  # shopify over by +3 … +14


def storm(world: World) -> None:
    gid = world.gid("east")
    for i, sku in enumerate(STORM, start=1):
        world.shopify.add_item(sku, locations=[gid])
        world.shopify.set_quantities(sku, gid, available=22 + i, committed=0)
        world.wms.set_level(
            sku, world.warehouse("east"), pickable=20, allocated=0, on_hand=20, damaged=0
        )


def placeholders(text: str) -> list[str]:
    return re.findall(r"\bNone\b|\bn/a\b|\?\s+is off|\*None\*", text)


async def _group(bot: Bot) -> object:
    groups = [
        i for i in await bot.ledger.list_incidents(limit=1000) if i.fingerprint.startswith("group:")
    ]
    assert len(groups) == 1, groups
    return groups[0]


async def test_a_storm_hides_nothing_and_its_action_works_on_the_group(tmp_path: Path) -> None:
    async with running(tmp_path) as bot:
        tee = await bot.incident("TEE-BLK-M")
        assert tee.status == "open"

        storm(bot.world)
        bot.clock.advance(600)
        await bot.diff()

        # the drift on its own alert stays there, still drifting, never "recovered"
        tee = await bot.ledger.get_incident(tee.id)
        assert tee.status == "open"
        assert tee.details["gap"] == 12
        assert not any("Recovered" in r for r in bot.replies(tee))
        group = await _group(bot)
        assert group.details["count"] == 12
        assert group.details["tracked_apart"] == 1
        message = bot.message(group)
        text = message.text or ""
        card = bot.card(group)
        assert text.startswith("Oversell risk: 12 SKUs at east — worst: STORM-12 (shopify +14)")
        assert "and 9 more" in text
        assert "`STORM-12`: shopify 34, expected 20 (+14)" in card
        assert "…and 2 more" in card
        assert "1 more of this kind here are on alerts of their own" in card
        assert placeholders(text) == []
        assert placeholders(card) == []
        # one action for the group, behind a confirm listing the safe ones (5 units max:
        # STORM-01 … 03)
        assert bot.buttons(group)[0] == "resync_group"
        assert "resync" not in bot.buttons(group)
        [button] = [
            e
            for b in message.blocks or []
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == "resync_group"
        ]
        assert button["text"]["text"] == "Resync the 3 the policy deems safe"
        confirm = button["confirm"]["text"]["text"]
        assert len(confirm) <= 300
        for i in range(1, 4):
            assert f"STORM-{i:02d} (shopify {22 + i}→20)" in confirm
        assert "STORM-04" not in confirm
        assert placeholders(json.dumps(button)) == []

        await bot.click(group, "resync_group")

        for i, sku in enumerate(STORM, start=1):
            expected = 20 if i <= 3 else 22 + i
            assert bot.shopify(sku)["available"] == expected, sku
        group = await bot.ledger.get_incident(group.id)
        assert group.status == "open"
        assert group.details["count"] == 9
        assert "STORM-01" not in bot.card(group)
        reply = bot.replies(group)[-1]
        assert reply.startswith("Resynced 3 of the 3 SKUs the policy deems safe — requested by")
        assert "Still drifting: 9 SKUs still drift." in reply
        assert bot.buttons(group)[0] != "resync_group", "none of the rest is safe"

        # the storm ebbs below the threshold: the group stays until its last SKU agrees
        for sku in STORM[3:11]:
            bot.world.shopify.set_quantities(sku, bot.world.gid("east"), available=20)
        bot.clock.advance(600)
        await bot.diff()
        group = await bot.ledger.get_incident(group.id)
        assert (group.status, group.details["count"]) == ("open", 1)
        assert not any("Recovered" in r for r in bot.replies(group))
        assert [
            i.sku for i in await bot.ledger.list_incidents(limit=1000) if i.sku == "STORM-12"
        ] == [], "no second alert for a SKU the group holds"

        bot.world.shopify.set_quantities(STORM[-1], bot.world.gid("east"), available=20)
        bot.clock.advance(600)
        await bot.diff()
        group = await bot.ledger.get_incident(group.id)
        assert group.status == "resolved"
        assert "Recovered: none of its" in bot.replies(group)[-1]
        assert bot.buttons(group) == []
        # TEE-BLK-M drifted all along, on its own alert
        assert (await bot.ledger.get_incident(tee.id)).status == "open"


async def test_a_targeted_read_of_one_member_keeps_the_others_as_last_seen(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, setup=storm) as bot:
        group = await _group(bot)
        assert group.details["count"] == 13  # the storm and TEE-BLK-M, all new at once

        bot.world.shopify.set_quantities("STORM-03", bot.world.gid("east"), available=20)
        await bot.diff(["STORM-03"])  # what a webhook's targeted diff reads

        group = await bot.ledger.get_incident(group.id)
        assert group.status == "open"
        assert group.details["count"] == 12
        members = {m["sku"] for m in group.details["members"]}
        assert members == {*STORM, "TEE-BLK-M"} - {"STORM-03"}
        assert "12 SKUs" in (bot.message(group).text or "")
        assert [i for i in await bot.ledger.list_incidents(sku="STORM-05")] == []
