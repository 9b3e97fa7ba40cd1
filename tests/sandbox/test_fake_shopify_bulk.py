"""The fake Shopify's bulk query operations, over real HTTP, on the injected clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.shopify import DEFAULT_TOKEN, FakeShopify, ManualClock

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures/shopify/captures"
AUTH = {"X-Shopify-Access-Token": DEFAULT_TOKEN}

RUN = """
mutation Run($query: String!, $group: Boolean!) {
  bulkOperationRunQuery(query: $query, groupObjects: $group) {
    bulkOperation { id status errorCode objectCount rootObjectCount fileSize url }
    userErrors { field message code }
  }
}
"""
POLL = """
query Poll($id: ID!) {
  bulkOperation(id: $id) {
    id status errorCode createdAt completedAt objectCount rootObjectCount fileSize url
    partialDataUrl query
  }
}
"""
LEVELS = """
{
  inventoryItems {
    edges {
      node {
        id
        sku
        inventoryLevels {
          edges { node { id location { id } quantities(names: ["available"]) { name quantity } } }
        }
      }
    }
  }
}
"""


def capture(name: str) -> Any:
    return json.loads((CAPTURES / name).read_text(encoding="utf-8"))


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def shopify(clock: ManualClock) -> AsyncIterator[FakeShopify]:
    async with FakeShopify(clock=clock) as fake:
        yield fake


@pytest.fixture
async def client(shopify: FakeShopify) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30.0) as c:
        yield c


async def gql(
    client: httpx.AsyncClient, fake: FakeShopify, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    r = await client.post(
        fake.graphql_url(), headers=AUTH, json={"query": query, "variables": variables}
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def run(
    client: httpx.AsyncClient, fake: FakeShopify, query: str, *, group: bool = False
) -> dict[str, Any]:
    data = await gql(client, fake, RUN, {"query": query, "group": group})
    payload: dict[str, Any] = data["bulkOperationRunQuery"]
    return payload


async def poll(client: httpx.AsyncClient, fake: FakeShopify, op_id: str) -> dict[str, Any]:
    op: dict[str, Any] = (await gql(client, fake, POLL, {"id": op_id}))["bulkOperation"]
    return op


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def stock(fake: FakeShopify, items: int) -> list[str]:
    east, west = fake.add_location("East"), fake.add_location("West")
    gids = []
    for i in range(items):
        gid = fake.add_item(f"SKU-{i:03d}")
        fake.set_quantities(gid, east, available=i)
        fake.set_quantities(gid, west, available=100 + i)
        gids.append(gid)
    return gids


async def test_the_captured_run_and_polls_have_the_captured_shapes(
    shopify: FakeShopify, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    recorded = capture("bulk-operation-run-query-group-objects.json")["runs"]
    recorded = recorded["runQueryGroupObjectsDefault"]
    for i in range(3):
        shopify.add_item(f"SKU-{i}", title=f"Board {i}")
    r = await client.post(
        shopify.graphql_url(),
        headers=AUTH,
        json={"query": recorded["run"]["query"], "variables": recorded["run"]["variables"]},
    )
    started = r.json()["data"]
    assert shape(started) == shape(recorded["run"]["response"]["data"])
    op = started["bulkOperationRunQuery"]["bulkOperation"]
    assert op["status"] == "CREATED"
    assert op["query"] == recorded["run"]["variables"]["query"]

    first, last = recorded["statusPolls"][0], recorded["statusPolls"][-1]
    r = await client.post(
        shopify.graphql_url(),
        headers=AUTH,
        json={"query": first["query"], "variables": {"id": op["id"]}},
    )
    assert shape(r.json()["data"]) == shape(first["response"]["data"])
    clock.advance(shopify.bulk.complete_after)
    r = await client.post(
        shopify.graphql_url(),
        headers=AUTH,
        json={"query": last["query"], "variables": {"id": op["id"]}},
    )
    done = r.json()["data"]["bulkOperation"]
    assert shape(done) == shape(last["response"]["data"]["bulkOperation"])
    assert (done["status"], done["objectCount"], done["rootObjectCount"]) == ("COMPLETED", "3", "3")

    download = await client.get(done["url"])  # no token: a signed storage URL
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/jsonl"
    assert int(done["fileSize"]) == len(download.content)
    records = lines(download.text)
    assert [shape(rec) for rec in records] == [shape(recorded["result"]["records"][0])] * 3
    assert [rec["title"] for rec in records] == ["Board 0", "Board 1", "Board 2"]


async def test_lifecycle_follows_the_clock(
    shopify: FakeShopify, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    stock(shopify, 2)
    shopify.bulk.run_after, shopify.bulk.complete_after = 10.0, 60.0
    payload = await run(client, shopify, LEVELS)
    assert payload["userErrors"] == []
    op_id = payload["bulkOperation"]["id"]
    assert (await poll(client, shopify, op_id))["status"] == "CREATED"
    clock.advance(10)
    running = await poll(client, shopify, op_id)
    assert (running["status"], running["url"], running["objectCount"]) == ("RUNNING", None, "0")
    clock.advance(49)
    assert (await poll(client, shopify, op_id))["status"] == "RUNNING"
    clock.advance(1)
    done = await poll(client, shopify, op_id)
    assert done["status"] == "COMPLETED"
    assert done["completedAt"] == "2026-07-01T12:01:00Z"
    assert (done["objectCount"], done["rootObjectCount"]) == ("6", "2")
    assert done["url"].startswith(f"{shopify.url}/bulk/")
    current = await gql(client, shopify, "{ currentBulkOperation { id status } }", {})
    assert current["currentBulkOperation"] == {"id": op_id, "status": "COMPLETED"}
    node = await gql(
        client,
        shopify,
        "query N($id: ID!) { node(id: $id) { id ... on BulkOperation { status } } }",
        {"id": op_id},
    )
    assert node["node"] == {"id": op_id, "status": "COMPLETED"}
    listed = await gql(
        client,
        shopify,
        '{ bulkOperations(first: 5, query: "status:completed") { nodes { id } } }',
        {},
    )
    assert listed["bulkOperations"]["nodes"] == [{"id": op_id}]


async def test_nested_connections_are_flattened_with_parent_ids(
    shopify: FakeShopify, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    items = stock(shopify, 3)
    grouped = (await run(client, shopify, LEVELS, group=True))["bulkOperation"]["id"]
    clock.advance(shopify.bulk.complete_after)
    url = (await poll(client, shopify, grouped))["url"]
    records = lines((await client.get(url)).text)
    assert [list(rec) for rec in records[:3]] == [
        ["id", "sku"],  # the connection field leaves the parent's line
        ["id", "location", "quantities", "__parentId"],
        ["id", "location", "quantities", "__parentId"],
    ]
    assert [rec.get("__parentId") for rec in records] == [
        parent for gid in items for parent in (None, gid, gid)
    ]
    assert records[1]["quantities"] == [{"name": "available", "quantity": 0}]
    assert records[2]["quantities"] == [{"name": "available", "quantity": 100}]

    ungrouped = (await run(client, shopify, LEVELS))["bulkOperation"]["id"]
    clock.advance(shopify.bulk.complete_after)
    url = (await poll(client, shopify, ungrouped))["url"]
    loose = lines((await client.get(url)).text)
    assert sorted(map(json.dumps, loose)) == sorted(map(json.dumps, records))
    assert "__parentId" in loose[0], "ungrouped output makes no promise of parents first"


async def test_a_result_spanning_many_pages_is_complete(
    shopify: FakeShopify, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    stock(shopify, 25)
    shopify.bulk.page_size = 4
    op_id = (await run(client, shopify, LEVELS, group=True))["bulkOperation"]["id"]
    clock.advance(shopify.bulk.complete_after)
    done = await poll(client, shopify, op_id)
    records = lines((await client.get(done["url"])).text)
    assert len(records) == int(done["objectCount"]) == 75
    assert [r["sku"] for r in records if "sku" in r] == [f"SKU-{i:03d}" for i in range(25)]


async def test_invalid_queries_answer_the_captured_user_errors(
    shopify: FakeShopify, client: httpx.AsyncClient
) -> None:
    recorded = capture("bulk-operation-run-query-user-error-codes.json")["validations"]
    for case in ("noConnectionWithCode", "emptyQuery"):
        r = await client.post(
            shopify.graphql_url(),
            headers=AUTH,
            json={"query": recorded[case]["query"], "variables": recorded[case]["variables"]},
        )
        assert r.json()["data"] == recorded[case]["response"]["data"]

    bad_field = await run(client, shopify, "{ inventoryItems { edges { node { nope } } } }")
    assert bad_field["userErrors"] == [
        {
            "field": ["query"],
            "message": "Invalid bulk query: Field 'nope' doesn't exist on type 'InventoryItem'",
            "code": "INVALID",
        }
    ]
    too_deep = (
        "{ products { edges { node { id variants { edges { node { id "
        "inventoryItem { id inventoryLevels { edges { node { id } } } } } } } } } } }"
    )
    no_id = "{ inventoryItems { edges { node { sku inventoryLevels { nodes { id } } } } } }"
    for query in (too_deep, no_id):
        payload = await run(client, shopify, query)
        assert payload["bulkOperation"] is None
        assert [e["code"] for e in payload["userErrors"]] == ["INVALID"]
    assert shopify.bulk.operations == []


async def test_too_many_running_operations_is_a_user_error(
    shopify: FakeShopify, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    started = [(await run(client, shopify, LEVELS))["bulkOperation"]["id"] for _ in range(5)]
    refused = await run(client, shopify, LEVELS)
    assert refused == {
        "bulkOperation": None,
        "userErrors": [
            {
                "field": None,
                "message": "A bulk query operation for this app and shop is already in "
                f"progress: {started[-1]}.",
                "code": "OPERATION_IN_PROGRESS",
            }
        ],
    }
    clock.advance(shopify.bulk.complete_after)
    assert (await run(client, shopify, LEVELS))["userErrors"] == []

    shopify.bulk.max_concurrent = 1
    busy = await run(client, shopify, LEVELS)
    assert [e["code"] for e in busy["userErrors"]] == ["OPERATION_IN_PROGRESS"]


async def test_failed_knob_ends_the_operation_with_an_error_code(
    shopify: FakeShopify, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    stock(shopify, 2)
    shopify.bulk.fail_next("TIMEOUT")
    op_id = (await run(client, shopify, LEVELS))["bulkOperation"]["id"]
    clock.advance(shopify.bulk.complete_after)
    failed = await poll(client, shopify, op_id)
    assert (failed["status"], failed["errorCode"], failed["url"]) == ("FAILED", "TIMEOUT", None)
    with pytest.raises(ValueError, match="BulkOperationErrorCode"):
        shopify.bulk.fail_next("OOPS")


async def test_cancel_expiry_and_an_empty_result(
    shopify: FakeShopify, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    empty = (await run(client, shopify, LEVELS))["bulkOperation"]["id"]
    clock.advance(shopify.bulk.complete_after)
    done = await poll(client, shopify, empty)
    assert (done["status"], done["objectCount"], done["url"]) == ("COMPLETED", "0", None)

    stock(shopify, 1)
    op_id = (await run(client, shopify, LEVELS))["bulkOperation"]["id"]
    cancel = "mutation C($id: ID!) { bulkOperationCancel(id: $id) { bulkOperation { status } } }"
    canceled = await gql(client, shopify, cancel, {"id": op_id})
    assert canceled["bulkOperationCancel"]["bulkOperation"]["status"] == "CANCELING"
    clock.advance(shopify.bulk.cancel_after)
    assert (await poll(client, shopify, op_id))["status"] == "CANCELED"

    op_id = (await run(client, shopify, LEVELS))["bulkOperation"]["id"]
    clock.advance(shopify.bulk.complete_after)
    url = (await poll(client, shopify, op_id))["url"]
    assert (await client.get(url.replace(".jsonl", "0.jsonl"))).status_code == 403
    clock.advance(7 * 24 * 3600)
    expired = await poll(client, shopify, op_id)
    assert (expired["status"], expired["url"]) == ("EXPIRED", None)
    assert (await client.get(url)).status_code == 400


async def test_downloads_stream_in_chunks_and_can_be_held_after_the_first(
    shopify: FakeShopify, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    stock(shopify, 40)
    shopify.bulk.chunk_size = 256
    shopify.bulk.download_gate = gate = asyncio.Event()
    op_id = (await run(client, shopify, LEVELS))["bulkOperation"]["id"]
    clock.advance(shopify.bulk.complete_after)
    done = await poll(client, shopify, op_id)
    received = b""
    async with client.stream("GET", done["url"]) as response:
        chunks = response.aiter_raw()
        received += await anext(chunks)
        assert len(received) <= 256
        assert shopify.bulk.downloads[-1].finished is False
        gate.set()
        async for chunk in chunks:
            received += chunk
    assert len(received) == int(done["fileSize"]) > 256 * 10
    assert shopify.bulk.downloads[-1].finished
    assert shopify.bulk.downloads[-1].sent_token is False
