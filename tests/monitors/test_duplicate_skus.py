"""Items that share a SKU (Shopify does not enforce unique SKUs) are a finding of their
own: never collapsed into one level, listed item by item in the incident and the Slack
alert, kept out of the ledger's level history, and never written to by a resync."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli.demo import DemoWorld, demo_world
from bot.slack.outbox import OutboxWorker
from connectors import Level, ManualClock
from ledger import Ledger
from monitors.drift import DiffRules, SystemRules, diff
from monitors.jobs import DriftDiffJob
from monitors.resync import ResyncRequest, ResyncService
from monitors.wiring import build_systems, rules_from_config

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RULES = DiffRules(
    systems={
        "wms": SystemRules("wms", "warehouse", ("available",)),
        "shopify": SystemRules("shopify", "storefront", ("available",)),
    },
    source_of_truth=("wms",),
)


def level(system: str, available: int, item: str | None = None, sku: str = "DUP-1") -> Level:
    refs = {"inventory_item_id": item} if item else {}
    return Level(system, sku, "east", {"available": available}, NOW, refs=refs)


def test_two_items_of_one_sku_are_one_duplicate_finding_and_no_count() -> None:
    drifts = diff(
        [level("wms", 30), level("shopify", 40, "gid:A"), level("shopify", 12, "gid:B")], RULES
    )
    [drift] = drifts
    assert (drift.kind, drift.system, drift.sku, drift.location) == (
        "duplicate_sku",
        "shopify",
        "DUP-1",
        "east",
    )
    assert drift.items == (("gid:A", 40), ("gid:B", 12))
    assert drift.values["shopify"] is None, "no one value stands for both items"
    assert drift.fingerprint == "drift:duplicate_sku:shopify:DUP-1:east"


def test_the_same_item_read_twice_is_one_item() -> None:
    drifts = diff(
        [level("wms", 30), level("shopify", 41, "gid:A"), level("shopify", 40, "gid:A")], RULES
    )
    assert [(d.kind, d.actual) for d in drifts] == [("oversell_risk", 40)]


def test_a_truth_with_two_items_judges_nothing_against_either() -> None:
    drifts = diff(
        [
            level("wms", 30, sku="DUP-1"),
            Level("wms", "DUP-1", "east", {"available": 5}, NOW, refs={"sku": "dup-1"}),
            level("shopify", 99, "gid:A"),
        ],
        RULES,
    )
    assert [(d.kind, d.system) for d in drifts] == [("duplicate_sku", "wms")]
    assert drifts[0].items == (("", 30), ("dup-1", 5))


@dataclass
class Setup:
    demo: DemoWorld
    ledger: Ledger
    clock: ManualClock
    client: httpx.AsyncClient
    duplicate: str  # the second item with SKU TEE-WHT-M

    async def diff_and_deliver(self) -> None:
        config = self.demo.config
        systems = build_systems(
            config, client=self.client, clock=self.clock, environ=self.demo.environ
        )
        job = DriftDiffJob(
            systems,
            rules_from_config(config),
            self.ledger,
            self.clock,
            channel=config.slack.alerts_channel,
        )
        result = await job.run()
        assert result.run.failures == {}
        world = self.demo.world
        slack = AsyncWebClient(token=world.slack_token, base_url=world.slack_api_url)
        await OutboxWorker(self.ledger, slack, self.clock).drain()

    def resync(self) -> ResyncService:
        config = self.demo.config
        systems = build_systems(
            config, client=self.client, clock=self.clock, environ=self.demo.environ
        )
        return ResyncService(systems, rules_from_config(config), self.ledger, self.clock)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'dup.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        shopify = demo.world.shopify
        east = demo.world.gid("east")
        # a second listing carries the SKU of the seeded White Tee, at east only
        duplicate = shopify.add_item("TEE-WHT-M", title="White Tee (old listing)", locations=[east])
        shopify.set_quantities(duplicate, east, available=5)
        yield Setup(demo, ledger, clock, client, duplicate)


async def test_duplicates_open_one_incident_listing_every_item(setup: Setup) -> None:
    await setup.diff_and_deliver()

    incidents = [i for i in await setup.ledger.list_incidents() if i.sku == "TEE-WHT-M"]
    [incident] = incidents
    assert (incident.kind, incident.system, incident.location) == (
        "duplicate_sku",
        "shopify",
        "east",
    )
    original = setup.demo.world.shopify.store.item("TEE-WHT-M").gid
    assert {(i["id"], i["value"]) for i in incident.details["items"]} == {
        (original, 23),  # available 22 + committed 1
        (setup.duplicate, 5),
    }

    [message] = [
        m
        for m in setup.demo.world.slack.messages(setup.demo.world.alerts_channel)
        if "TEE-WHT-M" in (m.text or "")
    ]
    assert message.blocks is not None
    text = str(message.blocks)
    assert original in text
    assert setup.duplicate in text
    header = message.blocks[0]["text"]["text"]
    assert header == "Duplicate SKU in shopify (2 items): TEE-WHT-M at east"
    actions = next(b for b in message.blocks if b["type"] == "actions")
    assert "resync" not in [e.get("action_id") for e in actions["elements"]]


async def test_hours_later_still_one_incident_and_no_level_history_for_either_item(
    setup: Setup,
) -> None:
    await setup.diff_and_deliver()
    setup.clock.advance(3 * 3600)
    await setup.diff_and_deliver()

    incidents = [i for i in await setup.ledger.list_incidents() if i.sku == "TEE-WHT-M"]
    assert [(i.kind, i.status) for i in incidents] == [("duplicate_sku", "open")]
    rows = await setup.ledger.current_levels(sku="TEE-WHT-M")
    assert not [r for r in rows if (r.system, r.location) == ("shopify", "east")]
    assert [r for r in rows if (r.system, r.location) == ("shopify", "west")], "others recorded"


async def test_once_each_item_has_its_own_sku_the_incident_resolves(setup: Setup) -> None:
    await setup.diff_and_deliver()
    item = setup.demo.world.shopify.store.item(setup.duplicate)
    item.sku = item.variant.sku = "TEE-WHT-M-OLD"
    setup.clock.advance(900)
    await setup.diff_and_deliver()

    [incident] = [i for i in await setup.ledger.list_incidents() if i.kind == "duplicate_sku"]
    assert incident.status == "resolved"


async def test_a_resync_of_a_duplicated_sku_is_refused_with_the_reason(setup: Setup) -> None:
    result = await setup.resync().resync(
        ResyncRequest(sku="TEE-WHT-M", location="east", system="shopify", requested_by="U0OPS001")
    )
    assert result.status == "failed"
    assert "2 items with SKU TEE-WHT-M at east" in result.message
    assert setup.duplicate in result.message
    assert "will not guess" in result.message
    assert setup.demo.world.shopify.writes == []
    assert await setup.ledger.list_resyncs() == []


async def test_the_other_location_of_the_sku_still_resyncs(setup: Setup) -> None:
    shopify, west = setup.demo.world.shopify, setup.demo.world.gid("west")
    shopify.set_quantities("TEE-WHT-M", west, available=30)  # the WMS says 9
    result = await setup.resync().resync(
        ResyncRequest(sku="TEE-WHT-M", location="west", system="shopify", requested_by="U0OPS001")
    )
    assert result.status == "applied", result.message
    assert shopify.quantities("TEE-WHT-M", west)["available"] == 9


async def test_a_storm_of_duplicates_is_one_grouped_alert_listing_them(setup: Setup) -> None:
    world = setup.demo.world
    east, warehouse = world.gid("east"), world.warehouse("east")
    twins: dict[str, tuple[str, str]] = {}
    for i in range(15):
        sku = f"SET-{i:02d}"
        twins[sku] = (
            world.shopify.add_item(sku, locations=[east]),
            world.shopify.add_item(sku, locations=[east]),
        )
        world.wms.set_level(sku, warehouse, pickable=0, allocated=0, on_hand=0, damaged=0)
    await setup.diff_and_deliver()

    grouped = [i for i in await setup.ledger.list_incidents() if i.kind == "duplicate_sku"]
    assert [(i.fingerprint, i.details["count"]) for i in grouped] == [
        ("group:duplicate_sku:east", 16)  # the 15 sets and TEE-WHT-M
    ]
    [message] = [
        m
        for m in world.slack.messages(world.alerts_channel)
        if m.blocks and m.blocks[0]["text"]["text"].startswith("Duplicate SKU: 16 SKUs")
    ]
    text = str(message.blocks)
    listed = [sku for sku in twins if f"`{sku}`" in text]
    assert len(listed) == 10 - ("TEE-WHT-M" in text)
    for sku in listed:
        assert twins[sku][0] in text
        assert twins[sku][1] in text
    assert "…and 6 more" in text
    actions = next(b for b in message.blocks if b["type"] == "actions")
    assert "resync" not in [e.get("action_id") for e in actions["elements"]]


async def test_a_hostile_sku_is_shown_as_written_and_pings_nobody(setup: Setup) -> None:
    world = setup.demo.world
    east, warehouse = world.gid("east"), world.warehouse("east")
    sku = "<!CHANNEL> & <@U0BOSS>"  # as normalized (upper-cased)
    for _ in range(2):
        world.shopify.add_item(sku, locations=[east])
    world.wms.set_level(sku, warehouse, pickable=0, allocated=0, on_hand=0, damaged=0)
    await setup.diff_and_deliver()

    [message] = [
        m
        for m in world.slack.messages(world.alerts_channel)
        if m.blocks and "&lt;@U0BOSS&gt;" in str(m.blocks)
    ]
    assert "<!CHANNEL>" not in (message.text or "")
    assert "<@U0BOSS>" not in (message.text or "")
    mrkdwn = [
        str(f["text"])
        for b in message.blocks or []
        if b["type"] == "section"
        for f in [*(b.get("fields") or []), *([b["text"]] if b.get("text") else [])]
        if f.get("type") == "mrkdwn"
    ]
    assert not [t for t in mrkdwn if "<!CHANNEL>" in t or "<@U0BOSS>" in t]
    assert any("`&lt;!CHANNEL&gt; &amp; &lt;@U0BOSS&gt;`" in t for t in mrkdwn)
