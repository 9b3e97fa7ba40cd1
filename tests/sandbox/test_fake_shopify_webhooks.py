"""The fake Shopify's webhooks over real HTTP: subscriptions, signed deliveries, knobs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web

from sandbox.shopify import DEFAULT_TOKEN, FakeShopify, ManualClock
from sandbox.shopify.webhooks import DEFAULT_WEBHOOK_SECRET, RETRY_DELAYS

AUTH = {"X-Shopify-Access-Token": DEFAULT_TOKEN}
LEVELS = "inventory_levels/update"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        digest = hmac.new(secret.encode(), self.body, hashlib.sha256).digest()
        return hmac.compare_digest(
            base64.b64encode(digest).decode(), self.headers["X-Shopify-Hmac-Sha256"]
        )


@dataclass
class Recorder:
    """A webhook endpoint on loopback that keeps what it gets and answers as told."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.popleft() if self.statuses else 200)


@dataclass
class World:
    fake: FakeShopify
    clock: ManualClock
    hook: Recorder
    client: httpx.AsyncClient
    east: str
    item: str

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        r = await self.client.post(
            self.fake.graphql_url(), headers=AUTH, json={"query": query, "variables": variables}
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture
async def world() -> AsyncIterator[World]:
    hook = Recorder()
    app = web.Application()
    app.router.add_post("/hooks", hook.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    clock = ManualClock()
    async with FakeShopify(clock=clock) as fake, httpx.AsyncClient(timeout=5) as client:
        east = fake.add_location("Brooklyn DC")
        item = fake.add_item("TEE-BLK-M")
        yield World(fake, clock, hook, client, east, item)
    await runner.cleanup()


async def test_a_level_change_sends_one_signed_inventory_levels_update(world: World) -> None:
    world.fake.webhooks.subscribe(LEVELS, world.hook.url)
    world.fake.set_quantities(world.item, world.east, available=6, committed=2)
    await world.fake.webhooks.idle()

    [got] = world.hook.received
    level_gid = world.fake.store.level(world.item, world.east).gid
    item_num = int(world.item.rsplit("/", 1)[1])
    location_num = int(world.east.rsplit("/", 1)[1])
    assert got.json == {
        "inventory_item_id": item_num,
        "location_id": location_num,
        "available": 6,
        "updated_at": "2026-07-01T12:00:00+00:00",
        "admin_graphql_api_id": level_gid,
    }
    assert got.signed_with(DEFAULT_WEBHOOK_SECRET)
    h = got.headers
    assert h["X-Shopify-Topic"] == LEVELS
    assert h["X-Shopify-Shop-Domain"] == "driftwatch-sandbox.myshopify.com"
    assert h["X-Shopify-API-Version"] == "2026-07"
    assert h["X-Shopify-Triggered-At"] == "2026-07-01T12:00:00.000000Z"
    assert h["X-Shopify-Event-Id"]
    assert h["X-Shopify-Webhook-Id"]
    [attempt] = world.fake.webhooks.attempts
    assert (attempt.status, attempt.number, attempt.delivery.status) == (200, 1, "delivered")


async def test_writes_through_the_api_and_orders_emit_too(world: World) -> None:
    world.fake.webhooks.subscribe(LEVELS, world.hook.url)
    body = await world.gql(
        """mutation($input: InventorySetQuantitiesInput!) {
             inventorySetQuantities(input: $input) @idempotent(key: "k-1") {
               userErrors { code } } }""",
        {
            "input": {
                "name": "available",
                "reason": "correction",
                "quantities": [
                    {
                        "inventoryItemId": world.item,
                        "locationId": world.east,
                        "quantity": 40,
                        "changeFromQuantity": 0,
                    }
                ],
            }
        },
    )
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    await world.fake.webhooks.idle()
    world.clock.advance(30)
    world.fake.simulate_order(world.item, world.east, 3)  # available and committed: one hook
    await world.fake.webhooks.idle()
    assert [r.json["available"] for r in world.hook.received] == [40, 37]
    event_ids = {r.headers["X-Shopify-Event-Id"] for r in world.hook.received}
    assert len(event_ids) == 2


async def test_duplicates_repeat_the_same_delivery(world: World) -> None:
    world.fake.webhooks.subscribe(LEVELS, world.hook.url)
    world.fake.webhooks.duplicate = True
    world.fake.set_quantities(world.item, world.east, available=5)
    await world.fake.webhooks.idle()
    first, second = world.hook.received
    assert first.body == second.body
    for name in ("X-Shopify-Event-Id", "X-Shopify-Webhook-Id", "X-Shopify-Hmac-Sha256"):
        assert first.headers[name] == second.headers[name]
    assert [a.duplicate for a in world.fake.webhooks.attempts] == [False, True]


async def test_held_deliveries_can_be_released_out_of_order(world: World) -> None:
    world.fake.webhooks.subscribe(LEVELS, world.hook.url)
    world.fake.webhooks.holding = True
    for qty in (1, 2, 3):
        world.fake.set_quantities(world.item, world.east, available=qty)
        await world.fake.webhooks.idle()
        world.clock.advance(60)
    assert world.hook.received == []
    assert len(world.fake.webhooks.held) == 3
    assert world.fake.webhooks.release(reverse=True) == 3
    await world.fake.webhooks.idle()
    assert [r.json["available"] for r in world.hook.received] == [3, 2, 1]
    triggered = [r.headers["X-Shopify-Triggered-At"] for r in world.hook.received]
    assert triggered == sorted(triggered, reverse=True)


async def test_a_rotated_secret_signs_with_the_new_one(world: World) -> None:
    world.fake.webhooks.subscribe(LEVELS, world.hook.url)
    world.fake.webhooks.secret = "shpss_rotated"
    world.fake.set_quantities(world.item, world.east, available=5)
    await world.fake.webhooks.idle()
    [got] = world.hook.received
    assert got.signed_with("shpss_rotated")
    assert not got.signed_with(DEFAULT_WEBHOOK_SECRET)


async def test_failed_deliveries_are_retried_8_times_over_4_hours(world: World) -> None:
    hooks = world.fake.webhooks
    hooks.subscribe(LEVELS, world.hook.url)
    world.hook.statuses.extend([500, 503])
    world.fake.set_quantities(world.item, world.east, available=5)
    await hooks.idle()
    [delivery] = hooks.deliveries
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert await hooks.deliver_due() == 0  # not due yet
    world.clock.advance(RETRY_DELAYS[0])
    assert await hooks.deliver_due() == 1
    assert delivery.status == "retrying"
    world.clock.advance(RETRY_DELAYS[1])
    await hooks.deliver_due()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    ids = {r.headers["X-Shopify-Webhook-Id"] for r in world.hook.received}
    assert len(ids) == 1
    assert len(world.hook.received) == 3

    world.hook.statuses.extend([500] * 20)
    world.fake.set_quantities(world.item, world.east, available=6)
    await hooks.idle()
    while (due := hooks.next_retry_at()) is not None:
        world.clock.advance((due - world.clock.now()).total_seconds())
        await hooks.deliver_due()
    failing = hooks.deliveries[-1]
    assert (failing.status, failing.attempts) == ("failed", 1 + 8)
    assert sum(RETRY_DELAYS) == 4 * 3600


async def test_an_unreachable_endpoint_is_retried_too(world: World) -> None:
    hooks = world.fake.webhooks
    hooks.subscribe(LEVELS, "http://127.0.0.1:9/nothing-listens-here")
    world.fake.set_quantities(world.item, world.east, available=5)
    await hooks.idle()
    [attempt] = hooks.attempts
    assert attempt.status is None
    assert attempt.error
    assert hooks.deliveries[0].status == "retrying"


async def test_a_deleted_subscription_gets_nothing(world: World) -> None:
    gid = world.fake.webhooks.subscribe(LEVELS, world.hook.url)
    assert world.fake.webhooks.delete_subscription(gid)
    assert not world.fake.webhooks.delete_subscription(gid)
    world.fake.set_quantities(world.item, world.east, available=5)
    await world.fake.webhooks.idle()
    assert world.hook.received == []
    assert world.fake.webhooks.deliveries == []


async def test_other_topics_can_be_emitted_by_hand(world: World) -> None:
    world.fake.webhooks.subscribe("orders/create", world.hook.url)
    world.fake.webhooks.subscribe(LEVELS, world.hook.url)
    [delivery] = world.fake.webhooks.emit("orders/create", {"id": 1, "name": "#1001"})
    await world.fake.webhooks.idle()
    [got] = world.hook.received
    assert got.headers["X-Shopify-Topic"] == "orders/create"
    assert got.body == delivery.body == b'{"id":1,"name":"#1001"}'


CREATE = """
mutation($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription {
      id topic uri format
      endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } }
    }
    userErrors { field message }
  }
}"""
LIST = """
query($first: Int!, $after: String, $topics: [WebhookSubscriptionTopic!]) {
  webhookSubscriptions(first: $first, after: $after, topics: $topics) {
    nodes { id topic uri createdAt }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def test_subscriptions_over_graphql(world: World) -> None:
    created = []
    for topic in ("INVENTORY_LEVELS_UPDATE", "ORDERS_CREATE", "REFUNDS_CREATE"):
        body = await world.gql(CREATE, {"topic": topic, "sub": {"uri": world.hook.url}})
        payload = body["data"]["webhookSubscriptionCreate"]
        assert payload["userErrors"] == []
        sub = payload["webhookSubscription"]
        assert (sub["topic"], sub["uri"], sub["format"]) == (topic, world.hook.url, "JSON")
        assert sub["endpoint"] == {
            "__typename": "WebhookHttpEndpoint",
            "callbackUrl": world.hook.url,
        }
        created.append(sub["id"])

    page1 = (await world.gql(LIST, {"first": 2}))["data"]["webhookSubscriptions"]
    assert [n["id"] for n in page1["nodes"]] == created[:2]
    assert page1["pageInfo"]["hasNextPage"] is True
    after = page1["pageInfo"]["endCursor"]
    page2 = (await world.gql(LIST, {"first": 2, "after": after}))["data"]["webhookSubscriptions"]
    assert [n["id"] for n in page2["nodes"]] == created[2:]
    only = (await world.gql(LIST, {"first": 10, "topics": ["ORDERS_CREATE"]}))["data"]
    assert [n["topic"] for n in only["webhookSubscriptions"]["nodes"]] == ["ORDERS_CREATE"]

    # it works: a level change reaches the subscriber made over GraphQL
    world.fake.set_quantities(world.item, world.east, available=9)
    await world.fake.webhooks.idle()
    assert [r.json["available"] for r in world.hook.received] == [9]

    delete = """mutation($id: ID!) { webhookSubscriptionDelete(id: $id) {
                  deletedWebhookSubscriptionId userErrors { field message } } }"""
    gone = (await world.gql(delete, {"id": created[0]}))["data"]["webhookSubscriptionDelete"]
    assert gone == {"deletedWebhookSubscriptionId": created[0], "userErrors": []}
    again = (await world.gql(delete, {"id": created[0]}))["data"]["webhookSubscriptionDelete"]
    assert again["deletedWebhookSubscriptionId"] is None
    assert again["userErrors"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://example.com/hooks", "Address protocol http:// is not supported"),
        ("", "Address can't be blank"),
    ],
)
async def test_subscription_create_refuses_what_shopify_refuses(
    world: World, uri: str, message: str
) -> None:
    body = await world.gql(CREATE, {"topic": "ORDERS_CREATE", "sub": {"uri": uri}})
    payload = body["data"]["webhookSubscriptionCreate"]
    assert payload["webhookSubscription"] is None
    assert payload["userErrors"] == [
        {"field": ["webhookSubscription", "callbackUrl"], "message": message}
    ]


async def test_the_same_address_twice_for_a_topic_is_refused(world: World) -> None:
    world.fake.webhooks.subscribe(LEVELS, world.hook.url)
    body = await world.gql(
        CREATE, {"topic": "INVENTORY_LEVELS_UPDATE", "sub": {"uri": world.hook.url}}
    )
    [error] = body["data"]["webhookSubscriptionCreate"]["userErrors"]
    assert error["message"] == "Address for this topic has already been taken"
    with pytest.raises(ValueError, match="already been taken"):
        world.fake.webhooks.subscribe(LEVELS, world.hook.url)


async def test_a_captured_delivery_can_be_replayed_with_forged_headers(world: World) -> None:
    world.fake.webhooks.subscribe(LEVELS, world.hook.url)
    world.fake.set_quantities(world.item, world.east, available=6)
    await world.fake.webhooks.idle()
    [captured] = world.fake.webhooks.deliveries
    world.fake.webhooks.secret = "shpss_rotated_since"  # the replay keeps what was signed
    attempt = await world.fake.webhooks.replay(
        captured,
        event_id="forged-event",
        webhook_id=None,
        triggered_at="9999-12-31T23:59:59Z",
        shop_domain="elsewhere.myshopify.com",
    )
    original, replayed = world.hook.received
    assert attempt.status == 200
    assert replayed.body == original.body
    assert replayed.signed_with(DEFAULT_WEBHOOK_SECRET)  # the HMAC covers only the body
    assert replayed.headers["X-Shopify-Event-Id"] == "forged-event"
    assert "X-Shopify-Webhook-Id" not in replayed.headers
    assert replayed.headers["X-Shopify-Triggered-At"] == "9999-12-31T23:59:59Z"
    assert replayed.headers["X-Shopify-Shop-Domain"] == "elsewhere.myshopify.com"
    assert replayed.headers["X-Shopify-Topic"] == original.headers["X-Shopify-Topic"]
    assert captured.status == "delivered"  # not a delivery of Shopify's: nothing retried
    assert [a.duplicate for a in world.fake.webhooks.attempts] == [False, True]


async def test_two_shops_post_to_one_address_each_with_its_own_domain_and_secret(
    world: World,
) -> None:
    """One app installed in two shops: both post to the same URL; each names itself in
    X-Shopify-Shop-Domain and signs the raw body with its secret
    (https://shopify.dev/docs/apps/build/webhooks/delivery-structure,
    https://shopify.dev/docs/apps/build/webhooks/subscribe/https)."""
    second = FakeShopify(
        clock=world.clock,
        access_token="shpat_second",
        shop_domain="second-shop.myshopify.com",
        webhook_secret="second-secret",
    )
    await second.start()
    try:
        east = second.add_location("East")
        second.add_item("TEE", locations=[east])
        second.webhooks.subscribe(LEVELS, world.hook.url)
        world.fake.webhooks.subscribe(LEVELS, world.hook.url)
        second.set_quantities("TEE", east, available=4)
        world.fake.set_quantities(world.item, world.east, available=9)
        await second.webhooks.idle()
        await world.fake.webhooks.idle()
        shop = await world.client.post(
            second.graphql_url(),
            headers={"X-Shopify-Access-Token": "shpat_second"},
            json={"query": "{ shop { myshopifyDomain } }"},
        )
    finally:
        await second.stop()
    by_shop = {r.headers["X-Shopify-Shop-Domain"]: r for r in world.hook.received}
    assert set(by_shop) == {"second-shop.myshopify.com", world.fake.webhooks.shop_domain}
    assert by_shop["second-shop.myshopify.com"].signed_with("second-secret")
    assert not by_shop["second-shop.myshopify.com"].signed_with(DEFAULT_WEBHOOK_SECRET)
    assert by_shop[world.fake.webhooks.shop_domain].signed_with(DEFAULT_WEBHOOK_SECRET)
    assert by_shop["second-shop.myshopify.com"].json["available"] == 4
    assert shop.json()["data"]["shop"]["myshopifyDomain"] == "second-shop.myshopify.com"
