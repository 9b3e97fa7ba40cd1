"""What the fake Shopify does for reads, as Shopify documents it, over real HTTP: cost by
the published rules, INTERNAL_SERVER_ERROR answers, duplicate SKUs, locations added
while running, nested connections that need paging, legacy fulfillment-service
locations, and the search syntax's quoting and escaping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.shopify import DEFAULT_TOKEN, FakeShopify, ManualClock

AUTH = {"X-Shopify-Access-Token": DEFAULT_TOKEN}
ITEMS = """
query Items($first: Int!, $levels: Int!, $query: String) {
  inventoryItems(first: $first, query: $query) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id sku duplicateSkuCount
      variant { id }
      inventoryLevels(first: $levels) {
        pageInfo { hasNextPage endCursor }
        nodes { location { id } quantities(names: ["available"]) { name quantity } }
      }
    }
  }
}
"""
LEVELS = """
query Levels($id: ID!, $first: Int!, $after: String) {
  inventoryItem(id: $id) {
    inventoryLevels(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { location { id } }
    }
  }
}
"""
LOCATIONS = """
query Locations($legacy: Boolean) {
  locations(first: 50, includeLegacy: $legacy) {
    nodes { id name isFulfillmentService fulfillmentService { serviceName } }
  }
}
"""
SET = """
mutation Set($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}
"""


def set_variables(
    item: str, key: str, quantity: int, *, location: str | None = None
) -> dict[str, Any]:
    return {
        "key": key,
        "input": {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": f"gid://driftwatch/Resync/{key}",
            "quantities": [
                {
                    "inventoryItemId": item,
                    "locationId": location or "gid://shopify/Location/75310000001",
                    "quantity": quantity,
                    "changeFromQuantity": None,
                }
            ],
        },
    }


@pytest.fixture
async def fake() -> AsyncIterator[FakeShopify]:
    async with FakeShopify(clock=ManualClock()) as shop:
        yield shop


@pytest.fixture
async def client(fake: FakeShopify) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as c:
        yield c


async def gql(
    client: httpx.AsyncClient, fake: FakeShopify, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        fake.graphql_url(), headers=AUTH, json={"query": query, "variables": variables}
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_a_query_is_priced_by_the_documented_rules(
    fake: FakeShopify, client: httpx.AsyncClient
) -> None:
    fake.add_location("A")
    fake.add_item("SKU-1")
    # per item: variant (object) 1 + inventoryLevels (2 + levels × location 1)
    for first, levels in ((10, 1), (50, 4), (142, 4)):
        body = await gql(client, fake, ITEMS, {"first": first, "levels": levels})
        assert body["extensions"]["cost"]["requestedQueryCost"] == 2 + first * (1 + 2 + levels)
    refused = await gql(client, fake, ITEMS, {"first": 250, "levels": 4})
    [error] = refused["errors"]
    assert error["extensions"] == {"code": "MAX_COST_EXCEEDED", "cost": 1752, "maxCost": 1000}
    assert refused["extensions"]["cost"]["requestedQueryCost"] == 1752
    mutation = await gql(client, fake, SET, set_variables(fake.add_item("SKU-2"), "k", 1))
    # a mutation 10, the adjustment group (an object) 1, scalars and userErrors 0
    assert mutation["extensions"]["cost"]["requestedQueryCost"] == 11


async def test_internal_server_error_is_a_200_with_the_code_and_nothing_is_done(
    fake: FakeShopify, client: httpx.AsyncClient
) -> None:
    east = fake.add_location("East")
    item = fake.add_item("SKU-1")
    fake.force_internal_error(1)
    variables = set_variables(item, "k-1", 7, location=east)
    body = await gql(client, fake, SET, variables)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"]
    assert error["message"].startswith("Internal error. Looks like something went wrong")
    assert "data" not in body
    assert fake.quantities(item, east)["available"] == 0, "not executed"
    assert fake.requests[-1].error_codes == ["INTERNAL_SERVER_ERROR"]
    assert fake.requests[-1].operation_name == "Set"
    again = await gql(client, fake, SET, variables)  # the next request is served
    assert again["data"]["inventorySetQuantities"]["userErrors"] == []
    assert fake.quantities(item, east)["available"] == 7


async def test_two_items_may_share_a_sku(fake: FakeShopify, client: httpx.AsyncClient) -> None:
    fake.add_location("East")
    first, second = fake.add_item("DUP-1"), fake.add_item("DUP-1")
    fake.add_item("OTHER")
    body = await gql(client, fake, ITEMS, {"first": 10, "levels": 1, "query": "sku:DUP-1"})
    nodes = body["data"]["inventoryItems"]["nodes"]
    assert [(n["id"], n["sku"], n["duplicateSkuCount"]) for n in nodes] == [
        (first, "DUP-1", 1),
        (second, "DUP-1", 1),
    ]


async def test_a_location_added_while_running_is_listed_and_stocked(
    fake: FakeShopify, client: httpx.AsyncClient
) -> None:
    fake.add_location("A")
    item = fake.add_item("SKU-1")
    before = await gql(client, fake, LOCATIONS, {})
    added = fake.add_location("B")
    fake.stock(item, added)
    after = await gql(client, fake, LOCATIONS, {})
    assert len(after["data"]["locations"]["nodes"]) == len(before["data"]["locations"]["nodes"]) + 1
    body = await gql(client, fake, ITEMS, {"first": 1, "levels": 5})
    [node] = body["data"]["inventoryItems"]["nodes"]
    assert added in [lv["location"]["id"] for lv in node["inventoryLevels"]["nodes"]]


async def test_nested_levels_are_cut_at_first_and_page_to_the_end(
    fake: FakeShopify, client: httpx.AsyncClient
) -> None:
    locations = [fake.add_location(f"L{i}") for i in range(5)]
    item = fake.add_item("SKU-1")
    body = await gql(client, fake, ITEMS, {"first": 1, "levels": 2})
    conn = body["data"]["inventoryItems"]["nodes"][0]["inventoryLevels"]
    seen = [lv["location"]["id"] for lv in conn["nodes"]]
    assert len(seen) == 2
    assert conn["pageInfo"]["hasNextPage"] is True
    after = conn["pageInfo"]["endCursor"]
    while after is not None:
        page = await gql(client, fake, LEVELS, {"id": item, "first": 2, "after": after})
        conn = page["data"]["inventoryItem"]["inventoryLevels"]
        seen += [lv["location"]["id"] for lv in conn["nodes"]]
        after = conn["pageInfo"]["endCursor"] if conn["pageInfo"]["hasNextPage"] else None
    assert sorted(seen) == sorted(locations)


async def test_legacy_fulfillment_service_locations_are_listed_only_with_include_legacy(
    fake: FakeShopify, client: httpx.AsyncClient
) -> None:
    own = fake.add_location("Own DC")
    legacy = fake.add_location("Acme 3PL", fulfillment_service="Acme Fulfillment")
    item = fake.add_item("SKU-1")
    assert fake.quantities(item, own)["available"] == 0
    with pytest.raises(KeyError):
        fake.quantities(item, legacy)  # a new item is not stocked at a service's location
    fake.stock(item, legacy)
    fake.set_quantities(item, legacy, available=9)

    default = await gql(client, fake, LOCATIONS, {})
    assert [n["id"] for n in default["data"]["locations"]["nodes"]] == [own]
    everything = await gql(client, fake, LOCATIONS, {"legacy": True})
    by_id = {n["id"]: n for n in everything["data"]["locations"]["nodes"]}
    assert set(by_id) == {own, legacy}
    assert by_id[legacy]["isFulfillmentService"] is True
    assert by_id[legacy]["fulfillmentService"] == {"serviceName": "Acme Fulfillment"}
    assert by_id[own]["fulfillmentService"] is None
    body = await gql(client, fake, ITEMS, {"first": 1, "levels": 5})
    levels = body["data"]["inventoryItems"]["nodes"][0]["inventoryLevels"]["nodes"]
    stock = {lv["location"]["id"]: lv["quantities"][0]["quantity"] for lv in levels}
    assert stock == {own: 0, legacy: 9}, "its stock has levels like any location's"


HOSTILE = ["A B", 'A"B', "A'B", "<A>", "A>B", "A@B", "A:B", "A\\B", "A(B)", "ABC*", "-ABC", "OR"]


@pytest.mark.parametrize("sku", HOSTILE)
async def test_a_quoted_value_is_taken_as_written(
    fake: FakeShopify, client: httpx.AsyncClient, sku: str
) -> None:
    fake.add_location("East")
    for other in HOSTILE:
        fake.add_item(other)
    fake.add_item("ABCD")
    quoted = '"' + sku.replace("\\", "\\\\").replace('"', '\\"') + '"'
    body = await gql(client, fake, ITEMS, {"first": 50, "levels": 1, "query": f"sku:{quoted}"})
    assert [n["sku"] for n in body["data"]["inventoryItems"]["nodes"]] == [sku]


async def test_special_characters_escape_with_a_backslash_and_star_is_a_prefix(
    fake: FakeShopify, client: httpx.AsyncClient
) -> None:
    fake.add_location("East")
    for sku in ("A:B", "A(B)", "ABC", "ABCD", "ABC*"):
        fake.add_item(sku)

    async def skus(query: str) -> list[str]:
        body = await gql(client, fake, ITEMS, {"first": 50, "levels": 1, "query": query})
        return [n["sku"] for n in body["data"]["inventoryItems"]["nodes"]]

    assert await skus("sku:A\\:B") == ["A:B"]
    assert await skus("sku:A\\(B\\)") == ["A(B)"]
    assert await skus("sku:ABC*") == ["ABC", "ABCD", "ABC*"]
    assert await skus('sku:"ABC*"') == ["ABC*"]
    assert await skus("sku:ABC\\*") == ["ABC*"]
