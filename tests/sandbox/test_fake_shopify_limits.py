"""Cost, the leaky bucket and the fault knobs of the fake Shopify, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.shopify import DEFAULT_TOKEN, FakeShopify, ManualClock

AUTH = {"X-Shopify-Access-Token": DEFAULT_TOKEN}
LOCATIONS = "query Locations { locations(first: 5) { nodes { id name } } }"
ITEMS = """
query Items($first: Int!, $levels: Int!) {
  inventoryItems(first: $first) {
    nodes { id sku inventoryLevels(first: $levels) {
      nodes { location { id } quantities(names: ["available"]) { name quantity } } } }
  }
}
"""
SET = """
mutation Set($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id changes { name delta } }
    userErrors { field message code }
  }
}
"""


@pytest.fixture
def shopify_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def shopify(shopify_clock: ManualClock) -> AsyncIterator[FakeShopify]:
    async with FakeShopify(clock=shopify_clock, restore_rate=50, bucket_size=1000) as fake:
        fake.add_location("Main")
        fake.add_item("SKU-1")
        yield fake


@pytest.fixture
async def shopify_client(shopify: FakeShopify) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def post(
    client: httpx.AsyncClient,
    fake: FakeShopify,
    query: str,
    variables: dict[str, Any] | None = None,
    **kw: Any,
) -> httpx.Response:
    return await client.post(
        fake.graphql_url(), headers=AUTH, json={"query": query, "variables": variables or {}}, **kw
    )


async def test_cost_is_reported_and_unused_points_are_refunded(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    body = (await post(shopify_client, shopify, ITEMS, {"first": 50, "levels": 5})).json()
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] > cost["actualQueryCost"] > 0
    assert cost["throttleStatus"] == {
        "maximumAvailable": 1000,
        "restoreRate": 50,
        "currentlyAvailable": 1000 - cost["actualQueryCost"],
    }
    bigger = (await post(shopify_client, shopify, ITEMS, {"first": 60, "levels": 5})).json()
    assert bigger["extensions"]["cost"]["requestedQueryCost"] > cost["requestedQueryCost"]


async def test_query_over_the_single_query_limit_is_refused(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    body = (await post(shopify_client, shopify, ITEMS, {"first": 250, "levels": 10})).json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert error["extensions"]["maxCost"] == 1000
    assert "data" not in body
    assert body["extensions"]["cost"]["actualQueryCost"] is None


async def test_throttled_when_the_bucket_is_empty_then_recovers(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient, shopify_clock: ManualClock
) -> None:
    shopify.drain_bucket(0)
    r = await post(shopify_client, shopify, LOCATIONS)
    assert r.status_code == 200
    body = r.json()
    assert body["errors"] == [
        {
            "message": "Throttled",
            "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits",
            },
        }
    ]
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0
    assert shopify.requests[-1].throttled
    shopify_clock.advance(0.5)  # 25 points back at 50/s: enough for this query (cost 7)
    body = (await post(shopify_client, shopify, LOCATIONS)).json()
    assert "errors" not in body
    assert body["data"]["locations"]["nodes"][0]["name"] == "Main"
    assert (
        body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        == 25 - body["extensions"]["cost"]["actualQueryCost"]
    )


async def test_forced_throttle_429_and_5xx(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    shopify.force_http_429(1, retry_after=3.0)
    shopify.force_5xx(1, status=502)
    shopify.force_throttled(1)
    r429 = await post(shopify_client, shopify, LOCATIONS)
    assert (r429.status_code, r429.headers["Retry-After"]) == (429, "3.0")
    assert "errors" in r429.json()
    assert (await post(shopify_client, shopify, LOCATIONS)).status_code == 502
    throttled = (await post(shopify_client, shopify, LOCATIONS)).json()
    assert throttled["errors"][0]["extensions"]["code"] == "THROTTLED"
    ok = await post(shopify_client, shopify, LOCATIONS)
    assert ok.status_code == 200
    assert "errors" not in ok.json()
    assert [(r.status, r.fault) for r in shopify.requests] == [
        (429, "http_429"),
        (502, "http_5xx"),
        (200, "throttled"),
        (200, None),
    ]
    assert shopify.requests[-1].operation_name == "Locations"


async def test_a_lost_response_still_applies_once_and_the_retry_replays(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    item, loc = shopify.store.item("SKU-1").gid, next(iter(shopify.store.locations.values())).gid
    variables = {
        "key": "resync-1",
        "input": {
            "name": "available",
            "reason": "correction",
            "quantities": [
                {"inventoryItemId": item, "locationId": loc, "quantity": 4, "changeFromQuantity": 0}
            ],
        },
    }
    shopify.force_lost_response(1)
    with pytest.raises(httpx.RemoteProtocolError):
        await post(shopify_client, shopify, SET, variables)
    body = (await post(shopify_client, shopify, SET, variables)).json()
    payload = body["data"]["inventorySetQuantities"]
    assert payload["userErrors"] == []
    assert [c["delta"] for c in payload["inventoryAdjustmentGroup"]["changes"]] == [4, 4]
    assert len(shopify.writes) == 1
    assert shopify.requests[-1].variables == variables


async def test_latency_makes_clients_time_out_and_down_drops_connections(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    shopify.latency = 5.0
    with pytest.raises(httpx.ReadTimeout):
        await post(shopify_client, shopify, LOCATIONS, timeout=0.2)
    shopify.latency = 0.0
    shopify.down = True
    with pytest.raises(httpx.TransportError):
        await post(shopify_client, shopify, LOCATIONS)
    shopify.down = False
    assert (await post(shopify_client, shopify, LOCATIONS)).status_code == 200


async def test_the_random_fault_mix_is_seeded(shopify_clock: ManualClock) -> None:
    async def statuses(seed: int) -> list[tuple[int, str | None]]:
        async with (
            FakeShopify(clock=shopify_clock, seed=seed) as fake,
            httpx.AsyncClient(timeout=5.0) as client,
        ):
            fake.fail_ratio = 0.5
            fake.faults.timeout_seconds = 0.01
            for _ in range(12):
                await post(client, fake, LOCATIONS)
            return [(r.status, r.fault) for r in fake.requests]

    first, again, other = await statuses(7), await statuses(7), await statuses(8)
    assert first == again
    assert first != other
    assert {fault for _, fault in first} >= {None}
    assert len({fault for _, fault in first}) > 2
