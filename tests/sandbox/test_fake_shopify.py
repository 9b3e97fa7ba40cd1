"""The fake Shopify over real HTTP: protocol, validation errors, reads and pagination."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.shopify import DEFAULT_TOKEN, FakeShopify, ManualClock

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures/shopify/captures"
AUTH = {"X-Shopify-Access-Token": DEFAULT_TOKEN}


def capture(name: str) -> Any:
    return json.loads((CAPTURES / name).read_text(encoding="utf-8"))


def shape(value: Any) -> Any:
    """Keys, nesting, list lengths and leaf types, without the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


@pytest.fixture
def shopify_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def shopify(shopify_clock: ManualClock) -> AsyncIterator[FakeShopify]:
    async with FakeShopify(clock=shopify_clock) as fake:
        yield fake


@pytest.fixture
async def shopify_client(shopify: FakeShopify) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def gql(
    client: httpx.AsyncClient,
    fake: FakeShopify,
    query: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        fake.graphql_url(), headers=AUTH, json={"query": query, "variables": variables or {}}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_wrong_token_answers_401_like_shopify(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    r = await shopify_client.post(
        shopify.graphql_url(),
        json={"query": "{ shop { name } }"},
        headers={"X-Shopify-Access-Token": "nope"},
    )
    assert r.status_code == 401
    assert r.json() == {
        "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
    }


async def test_unknown_version_404_and_bad_json_400(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    r = await shopify_client.post(
        shopify.graphql_url("2019-10"), headers=AUTH, json={"query": "{ shop { name } }"}
    )
    assert r.status_code == 404
    r = await shopify_client.post(shopify.graphql_url(), headers=AUTH, content=b"{not json")
    assert r.status_code == 400
    assert [rec.status for rec in shopify.requests] == [404, 400]


async def test_invalid_query_is_rejected_with_shopify_error_shape(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    body = await gql(shopify_client, shopify, "query Q {\n  shop { nmae }\n}")
    assert "data" not in body
    assert body["errors"] == [
        {
            "message": "Field 'nmae' doesn't exist on type 'Shop'",
            "locations": [{"line": 2, "column": 10}],
            "path": ["query Q", "shop", "nmae"],
            "extensions": {"code": "undefinedField", "typeName": "Shop", "fieldName": "nmae"},
        }
    ]


async def test_invalid_enum_argument_matches_the_captured_error(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    recorded = capture("webhook-subscription-list-connection.json")
    expected = recorded["validation"]["invalidSortKey"]["response"]["payload"]
    query = (
        "query InvalidWebhookSubscriptionSortKey {\n"
        "  webhookSubscriptions(first: 1, sortKey: TOPIC) {\n    nodes { id }\n  }\n}\n"
    )
    assert await gql(shopify_client, shopify, query) == expected


async def test_syntax_error(shopify: FakeShopify, shopify_client: httpx.AsyncClient) -> None:
    body = await gql(shopify_client, shopify, "{ shop { name }")
    assert body == {
        "errors": [
            {
                "message": "syntax error, unexpected end of file",
                "locations": [{"line": 1, "column": 16}],
            }
        ]
    }


ITEMS_PAGE = """
query Page($first: Int!, $after: String, $query: String) {
  inventoryItems(first: $first, after: $after, query: $query) {
    edges { cursor node { id sku } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def test_600_items_page_in_three_pages_of_250(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    shopify.add_location("Main")
    created = [shopify.add_item(f"SKU-{i:04d}") for i in range(600)]
    seen: list[str] = []
    infos: list[dict[str, Any]] = []
    after = None
    while True:
        body = await gql(shopify_client, shopify, ITEMS_PAGE, {"first": 250, "after": after})
        conn = body["data"]["inventoryItems"]
        edges, info = conn["edges"], conn["pageInfo"]
        infos.append(info)
        seen += [e["node"]["id"] for e in edges]
        assert info["startCursor"] == edges[0]["cursor"]
        assert info["endCursor"] == edges[-1]["cursor"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert seen == created
    assert [(i["hasNextPage"], i["hasPreviousPage"]) for i in infos] == [
        (True, False),
        (True, True),
        (False, True),
    ]
    cursor = json.loads(base64.b64decode(infos[0]["endCursor"]))
    assert set(cursor) == {"last_id", "last_value"}
    assert cursor["last_id"] == int(created[249].rsplit("/", 1)[1])


async def test_sku_query_filter_and_unknown_field_warning(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    shopify.add_location("Main")
    for sku in ("ABC", "DEF", "GHI", "ABC-2"):
        shopify.add_item(sku)

    async def skus(query: str) -> tuple[list[str], dict[str, Any]]:
        body = await gql(shopify_client, shopify, ITEMS_PAGE, {"first": 50, "query": query})
        return [e["node"]["sku"] for e in body["data"]["inventoryItems"]["edges"]], body

    assert (await skus("sku:ABC"))[0] == ["ABC"]
    assert (await skus("sku:ABC OR sku:DEF"))[0] == ["ABC", "DEF"]
    assert (await skus("sku:ABC*"))[0] == ["ABC", "ABC-2"]
    found, body = await skus("colour:red")
    assert found == ["ABC", "DEF", "GHI", "ABC-2"]
    assert body["extensions"]["search"][0]["warnings"] == [
        {
            "field": "colour",
            "message": "Invalid search field for this query.",
            "code": "invalid_field",
        }
    ]


async def test_inventory_levels_window_like_the_capture(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    ops = capture("inventory-item-levels-connection-windowing-2026-04.json")["operations"]
    source, dest = shopify.add_location("Source"), shopify.add_location("Destination")
    item = shopify.add_item("INV-1")
    shopify.set_quantities(item, source, available=4)
    shopify.set_quantities(item, dest, available=10)
    num = item.rsplit("/", 1)[1]
    read = await gql(
        shopify_client,
        shopify,
        ops["activeRead"]["query"],
        {
            "inventoryItemId": item,
            "itemQuery": f"inventory_item_id:{num}",
            "missingItemQuery": "inventory_item_id:1",
            "invalidLocationQuery": f"location_id:{dest.rsplit('/', 1)[1]}",
        },
    )
    want = ops["activeRead"]["response"]
    got_item, want_item = read["data"]["inventoryItem"], want["data"]["inventoryItem"]
    for alias in (
        "activeLevels",
        "allLevels",
        "firstPage",
        "filtered",
        "emptyFilter",
        "invalidLocationFilter",
        "reverseLevels",
    ):
        assert shape(got_item[alias]) == shape(want_item[alias]), alias
        flags = ("hasNextPage", "hasPreviousPage")
        assert [got_item[alias]["pageInfo"][f] for f in flags] == [
            want_item[alias]["pageInfo"][f] for f in flags
        ], alias
    assert [w["path"] for w in read["extensions"]["search"]] == [
        w["path"] for w in want["extensions"]["search"]
    ]
    cursors = [e["cursor"] for e in got_item["allLevels"]["edges"]]
    window = await gql(
        shopify_client,
        shopify,
        ops["windowRead"]["query"],
        {"inventoryItemId": item, "after": cursors[0], "before": cursors[1]},
    )
    want_window = ops["windowRead"]["response"]["data"]["inventoryItem"]
    got_window = window["data"]["inventoryItem"]
    assert shape(got_window) == shape(want_window)
    for alias in ("afterFirst", "beforeSecond"):
        assert {k: v for k, v in got_window[alias]["pageInfo"].items() if "Cursor" not in k} == {
            k: v for k, v in want_window[alias]["pageInfo"].items() if "Cursor" not in k
        }
    assert got_window["afterFirst"]["nodes"][0]["location"]["name"] == "Destination"
    assert got_window["beforeSecond"]["nodes"][0]["location"]["name"] == "Source"


QUANTITIES = """
query Q($id: ID!) {
  inventoryItem(id: $id) {
    sku
    variant { inventoryPolicy product { title } }
    inventoryLevels(first: 5) {
      nodes { location { name } quantities(names: ["available", "on_hand", "committed"]) {
        name quantity } }
    }
  }
}
"""


async def test_orders_keep_on_hand_the_sum_of_its_states(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    main = shopify.add_location("Main")
    item = shopify.add_item("SKU-1", inventory_policy="CONTINUE", title="Blue mug")
    shopify.set_quantities("SKU-1", main, available=10, damaged=2)
    shopify.simulate_order("SKU-1", main, 3)
    assert shopify.quantities("SKU-1", main) == {
        "available": 7,
        "on_hand": 12,
        "committed": 3,
        "reserved": 0,
        "damaged": 2,
        "safety_stock": 0,
        "quality_control": 0,
        "incoming": 0,
    }
    shopify.set_quantities(item, main, on_hand=15)
    assert shopify.quantities(item, main)["available"] == 10
    body = await gql(shopify_client, shopify, QUANTITIES, {"id": item})
    got = body["data"]["inventoryItem"]
    assert got["variant"] == {"inventoryPolicy": "CONTINUE", "product": {"title": "Blue mug"}}
    assert got["inventoryLevels"]["nodes"][0]["quantities"] == [
        {"name": "available", "quantity": 10},
        {"name": "on_hand", "quantity": 15},
        {"name": "committed", "quantity": 3},
    ]


async def test_locations_page_and_lookup(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    a = shopify.add_location("B warehouse")
    shopify.add_location("A store")
    shopify.add_location("Closed", active=False)
    body = await gql(
        shopify_client,
        shopify,
        """
        query L($id: ID!) {
          locations(first: 10) { nodes { id name isActive } pageInfo { hasNextPage } }
          location(id: $id) { name }
        }""",
        {"id": a},
    )
    assert [n["name"] for n in body["data"]["locations"]["nodes"]] == ["A store", "B warehouse"]
    assert body["data"]["location"] == {"name": "B warehouse"}
    assert body["extensions"]["cost"]["requestedQueryCost"] > 0
