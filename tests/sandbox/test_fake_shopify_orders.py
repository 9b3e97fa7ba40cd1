"""Orders, fulfillments and refunds in the fake Shopify: what they do to inventory and
the webhooks a subscriber receives for them, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from sandbox.shopify import FakeShopify, ManualClock
from sandbox.shopify.orders import OutOfStock

TOPICS = ("orders/create", "refunds/create", "inventory_levels/update")


@dataclass
class Hook:
    url: str = ""
    received: list[tuple[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.headers["X-Shopify-Topic"], json.loads(await request.read())))
        return web.Response(status=200)

    def of(self, topic: str) -> list[Any]:
        return [body for t, body in self.received if t == topic]


@dataclass
class Shop:
    fake: FakeShopify
    hook: Hook
    east: str


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    hook = Hook()
    app = web.Application()
    app.router.add_post("/hooks", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    async with FakeShopify(clock=ManualClock()) as fake:
        east = fake.add_location("Brooklyn DC")
        fake.add_item("TEE", title="Tee")
        fake.add_item("MUG", title="Mug")
        fake.set_quantities("TEE", east, available=5)
        fake.set_quantities("MUG", east, available=9)
        fake.webhooks.flush()  # the seeding is announced to nobody
        for topic in TOPICS:
            fake.webhooks.subscribe(topic, f"http://{host}:{port}/hooks")
        yield Shop(fake, hook, east)
    await runner.cleanup()


async def test_an_order_commits_its_lines_and_is_announced(shop: Shop) -> None:
    fake = shop.fake
    order = fake.place_order(shop.east, {"TEE": 2, "MUG": 1})
    await fake.webhooks.idle()

    assert (
        fake.quantities("TEE", shop.east)["available"],
        fake.quantities("TEE", shop.east)["committed"],
    ) == (3, 2)
    assert fake.quantities("MUG", shop.east)["on_hand"] == 9
    [created] = shop.hook.of("orders/create")
    assert created["id"] == order.num
    assert created["name"] == "#1001"
    lines = {line["sku"]: line["quantity"] for line in created["line_items"]}
    assert lines == {"TEE": 2, "MUG": 1}
    levels = shop.hook.of("inventory_levels/update")
    assert sorted(body["available"] for body in levels) == [3, 8]


async def test_a_deny_item_refuses_the_whole_order_when_short(shop: Shop) -> None:
    fake = shop.fake
    with pytest.raises(OutOfStock):
        fake.place_order(shop.east, {"MUG": 1, "TEE": 6})
    await fake.webhooks.idle()
    assert fake.quantities("MUG", shop.east)["available"] == 9
    assert shop.hook.received == []


async def test_fulfilling_ships_the_committed_units(shop: Shop) -> None:
    fake = shop.fake
    order = fake.place_order(shop.east, {"TEE": 2})
    fake.fulfill_order(order)
    fake.fulfill_order(order)  # nothing left to ship
    snapshot = fake.quantities("TEE", shop.east)
    assert (snapshot["available"], snapshot["committed"], snapshot["on_hand"]) == (3, 0, 3)


async def test_a_refund_restocks_by_its_type_unless_a_fulfillment_service_does(
    shop: Shop,
) -> None:
    fake = shop.fake
    order = fake.place_order(shop.east, {"TEE": 3})
    fake.fulfill_order(order)
    fake.refund_order(order, {"TEE": 1}, restock_type="return")
    assert fake.quantities("TEE", shop.east)["available"] == 3
    fake.refund_order(order, {"TEE": 1}, restock_type="return", restock=False)
    fake.refund_order(order, {"TEE": 1}, restock_type="no_restock")
    assert fake.quantities("TEE", shop.east)["available"] == 3
    await fake.webhooks.idle()

    refunds = shop.hook.of("refunds/create")
    assert [r["order_id"] for r in refunds] == [order.num] * 3
    first = refunds[0]["refund_line_items"][0]
    assert (first["quantity"], first["restock_type"], first["line_item"]["sku"]) == (
        1,
        "return",
        "TEE",
    )
    assert [r["refund_line_items"][0]["restock_type"] for r in refunds] == [
        "return",
        "return",
        "no_restock",
    ]
    with pytest.raises(ValueError, match="no 4 of TEE"):
        fake.refund_order(order, {"TEE": 4})
