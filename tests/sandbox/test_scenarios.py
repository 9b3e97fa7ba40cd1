"""The scripted scenarios on the fakes alone: each is deterministic with its seed and
leaves its drift pattern in the fakes (what the field notes describe), with the webhooks
a subscriber would receive. No product code: a stage without a monitor plays them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from sandbox.erp import units_per
from sandbox.scenarios import SCENARIOS, LocalStage, Scenario, by_name, names
from sandbox.shopify import ManualClock
from sandbox.shopify.webhooks import DEFAULT_WEBHOOK_SECRET
from sandbox.world import SandboxWorld, World

TOPICS = ("inventory_levels/update", "orders/create", "refunds/create")


@dataclass
class Delivery:
    topic: str
    triggered_at: str
    body: Any
    valid: bool


@dataclass
class Subscriber:
    """A webhook endpoint that checks signatures with the secret it was given (as a
    deployment would) and refuses the others with 401."""

    url: str = ""
    got: list[Delivery] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        digest = hmac.new(DEFAULT_WEBHOOK_SECRET.encode(), raw, hashlib.sha256).digest()
        valid = hmac.compare_digest(
            base64.b64encode(digest).decode(), request.headers["X-Shopify-Hmac-Sha256"]
        )
        self.got.append(
            Delivery(
                request.headers["X-Shopify-Topic"],
                request.headers["X-Shopify-Triggered-At"],
                json.loads(raw),
                valid,
            )
        )
        return web.Response(status=200 if valid else 401)

    def of(self, topic: str, *, valid: bool = True) -> list[Delivery]:
        return [d for d in self.got if d.topic == topic and d.valid == valid]


@dataclass
class Played:
    world: World
    clock: ManualClock
    stage: LocalStage
    hook: Subscriber
    started: datetime

    def shop(self, sku: str, state: str = "available") -> int:
        return self.world.shopify.quantities(sku, self.world.gid("east"))[state]

    def wms(self, sku: str) -> tuple[int, int]:
        level = self.world.wms.level(sku, "WH-EAST")
        return level.pickable, level.allocated

    def erp_units(self, sku: str) -> tuple[int, str]:
        assert self.world.erp is not None
        row = next(r for r in self.world.erp.levels() if (r.sku, r.warehouse) == (sku, "WH-EAST"))
        return row.qty, row.uom


Play = Callable[[Scenario], Any]


@pytest.fixture
async def play() -> AsyncIterator[Callable[[Scenario], Any]]:
    hook = Subscriber()
    app = web.Application()
    app.router.add_post("/hooks", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    worlds: list[SandboxWorld] = []

    async def run(scenario: Scenario) -> Played:
        hook.got.clear()
        clock = ManualClock()
        sandbox = SandboxWorld(clock, scenarios=True)
        worlds.append(sandbox)
        world = await sandbox.start()
        world.shopify.webhooks.flush()  # the seeding is announced to nobody
        for topic in TOPICS:
            world.shopify.webhooks.subscribe(topic, f"http://{host}:{port}/hooks")
        stage = LocalStage(world, clock)
        started = clock.now()
        await scenario.play(stage)
        await world.shopify.webhooks.idle()
        return Played(world, clock, stage, hook, started)

    yield run
    for sandbox in worlds:
        await sandbox.stop()
    await runner.cleanup()


def fingerprint(p: Played, scenario: Scenario) -> Any:
    """Everything the scenario left in the fakes that a monitor could observe."""
    world = p.world
    levels = []
    for sku in scenario.skus:
        levels.append(world.shopify.quantities(sku, world.gid("east")))
        if sku in world.bundles:
            continue
        levels.append(world.wms.level(sku, "WH-EAST"))
        levels.append(p.erp_units(sku))
    deliveries = [(d.topic, d.triggered_at, d.valid, d.body) for d in p.hook.got]
    return p.clock.now(), levels, deliveries, [r.status for r in world.shopify.requests]


def test_there_are_eleven_scenarios_with_distinct_names_seeds_and_skus() -> None:
    assert len(SCENARIOS) == 11
    assert len(set(names())) == 11
    assert len({s.seed for s in SCENARIOS}) == 11
    skus = [sku for s in SCENARIOS for sku in s.skus]
    assert len(skus) == len(set(skus))
    assert all(s.expected for s in SCENARIOS)
    with pytest.raises(KeyError, match="choose one of: flash-sale-race, "):
        by_name("flash-sale")


@pytest.mark.parametrize("name", names())
async def test_a_scenario_plays_the_same_with_the_same_seed(
    name: str, play: Callable[[Scenario], Any]
) -> None:
    scenario = by_name(name)
    first = await play(scenario)
    once = fingerprint(first, scenario)
    second = await play(scenario)
    assert fingerprint(second, scenario) == once
    assert first.stage.checkpoints, "the monitor is asked to look at least once"


async def test_flash_sale_oversells_500_checkouts_for_100_units(
    play: Callable[[Scenario], Any],
) -> None:
    p = await play(by_name("flash-sale-race"))
    orders = p.world.shopify.orders.orders
    sold = sum(line.quantity for order in orders for line in order.lines)
    assert sold == p.shop("HOODIE-DROP", "committed")
    assert sold > 150, "the storefront kept selling after the 100 units were gone"
    assert p.wms("HOODIE-DROP") == (0, 100)
    span = (orders[-1].created_at - orders[0].created_at).total_seconds()
    assert span <= 300
    assert len(p.hook.of("orders/create")) == len(orders)


async def test_returns_reach_the_shelf_but_not_the_storefront(
    play: Callable[[Scenario], Any],
) -> None:
    p = await play(by_name("returns-not-flowing"))
    refunds = p.hook.of("refunds/create")
    returned = sum(line["quantity"] for r in refunds for line in r.body["refund_line_items"])
    assert len(refunds) == 4
    assert {line["restock_type"] for r in refunds for line in r.body["refund_line_items"]} == {
        "return"
    }
    pickable, _ = p.wms("JACKET-RAIN")
    assert pickable - p.shop("JACKET-RAIN") == returned
    assert p.erp_units("JACKET-RAIN") == (pickable, "EA")


async def test_the_bundle_and_its_component_drift_in_opposite_ways(
    play: Callable[[Scenario], Any],
) -> None:
    p = await play(by_name("bundle-mismodelled"))
    mugs, _ = p.wms("MUG-STONE")
    assert mugs == 64 - 2 * 5 - 8
    assert p.shop("MUG-STONE") == 64 - 8, "the sets did not deduct their mugs"
    assert p.shop("MUG-GIFT-2") == 32 - 5
    assert p.shop("MUG-GIFT-2") > mugs // 2, "the sets show more than the mugs allow"
    sold = [line["sku"] for d in p.hook.of("orders/create") for line in d.body["line_items"]]
    assert sorted(set(sold)) == ["MUG-GIFT-2", "MUG-STONE"]


async def test_a_manual_edit_moves_shopify_alone(play: Callable[[Scenario], Any]) -> None:
    p = await play(by_name("manual-storefront-override"))
    assert p.shop("CAP-NAVY") > p.wms("CAP-NAVY")[0] == 12
    assert p.hook.of("orders/create") == []
    [announced] = p.hook.of("inventory_levels/update")
    assert announced.body["available"] == p.shop("CAP-NAVY")


async def test_the_erp_keeps_last_nights_count(play: Callable[[Scenario], Any]) -> None:
    p = await play(by_name("erp-batch-window"))
    assert p.world.erp is not None
    pickable, allocated = p.wms("BEANIE-GRY")
    assert p.shop("BEANIE-GRY") == pickable
    assert p.erp_units("BEANIE-GRY") == (45, "EA") != (pickable + allocated, "EA")
    last = p.world.erp.exports[-1].stat().st_mtime
    assert p.clock.now().timestamp() - last >= 15 * 60


async def test_the_upgraded_exporter_writes_units_where_cases_are_configured(
    play: Callable[[Scenario], Any],
) -> None:
    p = await play(by_name("pack-size-mismatch"))
    assert p.world.pack_sizes["erp"]["CANDLE-CEDAR"] == 12
    assert p.world.erp is not None
    first = p.world.erp.exports[0].read_text("utf-8")
    assert "CANDLE-CEDAR,WH-EAST,5,CS12," in first
    qty, uom = p.erp_units("CANDLE-CEDAR")
    assert (qty, units_per(uom)) == (60, 1)
    assert qty * p.world.pack_sizes["erp"]["CANDLE-CEDAR"] == 12 * p.wms("CANDLE-CEDAR")[0]


async def test_a_retried_push_overwrites_a_newer_count_and_webhooks_arrive_newest_first(
    play: Callable[[Scenario], Any],
) -> None:
    p = await play(by_name("out-of-sequence-retry"))
    pickable, _ = p.wms("TOTE-CNVS")
    assert p.shop("TOTE-CNVS") > pickable
    updates = p.hook.of("inventory_levels/update")
    assert len(updates) == 3
    triggered = [d.triggered_at for d in updates]
    assert triggered == sorted(triggered, reverse=True)
    assert updates[0].body["available"] == p.shop("TOTE-CNVS")


async def test_the_storm_drops_the_integrations_push(play: Callable[[Scenario], Any]) -> None:
    p = await play(by_name("rate-limit-storm"))
    pickable, _ = p.wms("SOCKS-WOOL")
    assert p.shop("SOCKS-WOOL") == 36 < pickable
    refused = [r for r in p.world.shopify.requests if r.status == 429]
    assert len(refused) == 3
    assert p.world.shopify.writes == []


async def test_a_deleted_subscription_silences_level_changes(
    play: Callable[[Scenario], Any],
) -> None:
    p = await play(by_name("webhook-subscription-deleted"))
    topics = {s.topic for s in p.world.shopify.webhooks.subscriptions.values()}
    assert "INVENTORY_LEVELS_UPDATE" not in topics
    assert p.hook.of("orders/create"), "orders are still announced"
    assert p.hook.of("inventory_levels/update") == []
    assert p.shop("SCARF-RED") < 18


async def test_a_rotated_secret_signs_what_the_old_one_cannot_verify(
    play: Callable[[Scenario], Any],
) -> None:
    p = await play(by_name("webhook-secret-rotated"))
    assert p.world.shopify.webhooks.secret != DEFAULT_WEBHOOK_SECRET
    refused = p.hook.of("orders/create", valid=False)
    assert refused
    assert p.hook.of("orders/create") == []
    retried = [d for d in p.world.shopify.webhooks.deliveries if d.attempts >= 2]
    assert retried, "Shopify retries what was refused"
