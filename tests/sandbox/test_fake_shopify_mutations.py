"""inventorySetQuantities / inventoryAdjustQuantities on the fake, checked against the
recorded captures: userError fields and codes, top-level error shapes, idempotency,
compare-and-set and atomicity."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.shopify import DEFAULT_TOKEN, FakeShopify, ManualClock

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures/shopify/captures"
AUTH = {"X-Shopify-Access-Token": DEFAULT_TOKEN}

SET = """
mutation Set($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup {
      id createdAt reason referenceDocumentUri
      changes { name delta quantityAfterChange item { id sku } location { id name } }
    }
    userErrors { field message code }
  }
}
"""
ADJUST = (
    SET.replace("Set(", "Adjust(")
    .replace("InventorySetQuantitiesInput", "InventoryAdjustQuantitiesInput")
    .replace("inventorySetQuantities", "inventoryAdjustQuantities")
)


def capture(name: str) -> Any:
    return json.loads((CAPTURES / name).read_text(encoding="utf-8"))


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def swap_ids(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with every string in ``ids`` replaced (captured gids -> the fake's)."""
    text = json.dumps(value)
    for old, new in ids.items():
        text = text.replace(old, new)
    return json.loads(text)


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


@pytest.fixture
def shopify_world(shopify: FakeShopify) -> dict[str, str]:
    loc = shopify.add_location("Shop location")
    other = shopify.add_location("Back room")
    a, b = shopify.add_item("SKU-A"), shopify.add_item("SKU-B")
    shopify.set_quantities(a, loc, available=5)
    shopify.set_quantities(b, loc, available=7, committed=1)
    return {"loc": loc, "other": other, "a": a, "b": b}


async def gql(
    client: httpx.AsyncClient, fake: FakeShopify, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    r = await client.post(
        fake.graphql_url(), headers=AUTH, json={"query": query, "variables": variables}
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def set_input(
    *quantities: tuple[str, str, int, int | None],
    name: str = "available",
    reason: str = "correction",
) -> dict[str, Any]:
    return {
        "name": name,
        "reason": reason,
        "referenceDocumentUri": "gid://driftwatch/Resync/1",
        "quantities": [
            {"inventoryItemId": i, "locationId": loc, "quantity": q, "changeFromQuantity": cfq}
            for i, loc, q, cfq in quantities
        ],
    }


async def test_set_available_applies_and_moves_on_hand(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient, shopify_world: dict[str, str]
) -> None:
    w = shopify_world
    body = await gql(
        shopify_client, shopify, SET, {"input": set_input((w["b"], w["loc"], 10, 7)), "key": "k-1"}
    )
    payload = body["data"]["inventorySetQuantities"]
    assert payload["userErrors"] == []
    group = payload["inventoryAdjustmentGroup"]
    assert group["createdAt"] == "2026-07-01T12:00:00Z"
    assert [(c["name"], c["delta"], c["quantityAfterChange"]) for c in group["changes"]] == [
        ("available", 3, None),
        ("on_hand", 3, None),
    ]
    assert group["changes"][0]["item"] == {"id": w["b"], "sku": "SKU-B"}
    assert shopify.quantities("SKU-B", w["loc"])["on_hand"] == 11
    [write] = shopify.writes
    assert (
        write.idempotency_key,
        write.name,
        write.before,
        write.after,
        write.change_from_quantity,
        write.item_id,
        write.group_id,
    ) == ("k-1", "available", 7, 10, 7, w["b"], group["id"])
    assert body["extensions"]["cost"]["requestedQueryCost"] == 13


async def test_set_on_hand_moves_available(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient, shopify_world: dict[str, str]
) -> None:
    w = shopify_world
    body = await gql(
        shopify_client,
        shopify,
        SET,
        {"input": set_input((w["b"], w["loc"], 20, 8), name="on_hand"), "key": "k-oh"},
    )
    changes = body["data"]["inventorySetQuantities"]["inventoryAdjustmentGroup"]["changes"]
    assert [(c["name"], c["delta"]) for c in changes] == [("available", 12), ("on_hand", 12)]
    assert shopify.quantities("SKU-B", w["loc"])["available"] == 19


async def test_stale_change_from_quantity_rejects_the_whole_call(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient, shopify_world: dict[str, str]
) -> None:
    w = shopify_world
    body = await gql(
        shopify_client,
        shopify,
        SET,
        {"input": set_input((w["a"], w["loc"], 9, 5), (w["b"], w["loc"], 9, 3)), "key": "k-stale"},
    )
    payload = body["data"]["inventorySetQuantities"]
    assert payload["inventoryAdjustmentGroup"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["input", "quantities", "1", "changeFromQuantity"], "CHANGE_FROM_QUANTITY_STALE")
    ]
    assert shopify.writes == []
    assert shopify.quantities("SKU-A", w["loc"])["available"] == 5


async def test_null_change_from_quantity_skips_the_check(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient, shopify_world: dict[str, str]
) -> None:
    w = shopify_world
    body = await gql(
        shopify_client,
        shopify,
        SET,
        {"input": set_input((w["a"], w["loc"], 1, None)), "key": "k-null"},
    )
    assert body["data"]["inventorySetQuantities"]["userErrors"] == []
    assert shopify.quantities("SKU-A", w["loc"])["available"] == 1


async def test_idempotent_replay_is_applied_once(
    shopify: FakeShopify,
    shopify_client: httpx.AsyncClient,
    shopify_clock: ManualClock,
    shopify_world: dict[str, str],
) -> None:
    w = shopify_world
    variables = {"input": set_input((w["a"], w["loc"], 8, None)), "key": "k-replay"}
    first = await gql(shopify_client, shopify, SET, variables)
    shopify.set_quantities("SKU-A", w["loc"], available=2)  # the world moves on
    shopify_clock.advance(3600)
    second = await gql(shopify_client, shopify, SET, variables)
    assert second["data"] == first["data"]
    assert len(shopify.writes) == 1
    assert shopify.quantities("SKU-A", w["loc"])["available"] == 2
    shopify_clock.advance(24 * 3600)  # the key has expired: the same call applies again
    await gql(shopify_client, shopify, SET, variables)
    assert len(shopify.writes) == 2
    assert shopify.quantities("SKU-A", w["loc"])["available"] == 8


async def test_a_replay_returns_the_original_result_even_a_stale_one(
    shopify: FakeShopify,
    shopify_client: httpx.AsyncClient,
    shopify_clock: ManualClock,
    shopify_world: dict[str, str],
) -> None:
    """Shopify replays the result of the original operation for a repeated key: a
    compare-and-set that was stale stays stale, even once the level matches, and a write
    that was applied is not applied again after the level moved back. A new operation
    needs a new key."""
    w = shopify_world
    stale = {"input": set_input((w["a"], w["loc"], 9, 4)), "key": "k-stale"}  # A holds 5
    first = await gql(shopify_client, shopify, SET, stale)
    codes = [e["code"] for e in first["data"]["inventorySetQuantities"]["userErrors"]]
    assert codes == ["CHANGE_FROM_QUANTITY_STALE"]
    shopify.set_quantities("SKU-A", w["loc"], available=4)  # now it would match
    shopify_clock.advance(3600)
    assert (await gql(shopify_client, shopify, SET, stale))["data"] == first["data"]
    assert shopify.writes == []
    assert shopify.quantities("SKU-A", w["loc"])["available"] == 4

    applied = {"input": set_input((w["a"], w["loc"], 9, 4)), "key": "k-applied"}
    done = await gql(shopify_client, shopify, SET, applied)
    assert done["data"]["inventorySetQuantities"]["userErrors"] == []
    shopify.set_quantities("SKU-A", w["loc"], available=4)  # pushed back: the same drift
    shopify_clock.advance(3 * 3600)
    replayed = await gql(shopify_client, shopify, SET, applied)
    assert replayed["data"] == done["data"]  # the original result...
    assert shopify.quantities("SKU-A", w["loc"])["available"] == 4  # ...and no write
    assert len(shopify.writes) == 1
    again = {**applied, "key": "k-applied-again"}  # a new operation, a new key
    await gql(shopify_client, shopify, SET, again)
    assert shopify.quantities("SKU-A", w["loc"])["available"] == 9
    assert len(shopify.writes) == 2


async def test_same_key_with_other_input_is_a_mismatch(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient, shopify_world: dict[str, str]
) -> None:
    w = shopify_world
    await gql(
        shopify_client,
        shopify,
        SET,
        {"input": set_input((w["a"], w["loc"], 8, 5)), "key": "k-same"},
    )
    body = await gql(
        shopify_client,
        shopify,
        SET,
        {"input": set_input((w["a"], w["loc"], 9, 8)), "key": "k-same"},
    )
    payload = body["data"]["inventorySetQuantities"]
    assert payload["inventoryAdjustmentGroup"] is None
    assert [e["code"] for e in payload["userErrors"]] == ["IDEMPOTENCY_KEY_PARAMETER_MISMATCH"]
    assert len(shopify.writes) == 1


async def test_top_level_errors_match_the_contract_capture(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient, shopify_world: dict[str, str]
) -> None:
    recorded = capture("inventory-quantity-contracts-2026-04.json")
    w = shopify_world
    ids = {
        recorded["setup"]["product"]["inventoryItemId"]: w["a"],
        recorded["setup"]["location"]["id"]: w["loc"],
    }
    no_directive = SET.replace(", $key: String!", "").replace(" @idempotent(key: $key)", "")
    cases = [
        ("missingSetIdempotency", no_directive),
        ("missingSetChangeFromQuantity", SET),
        ("legacySetShape", SET),
    ]
    for case, query in cases:
        variables = swap_ids(recorded[case]["variables"], ids)
        variables["key"] = variables.pop("idempotencyKey")
        if query is no_directive:
            del variables["key"]
        body = await gql(shopify_client, shopify, query, variables)
        want = swap_ids(recorded[case]["response"], ids)
        got_err, want_err = body["errors"][0], want["errors"][0]
        assert got_err["message"] == want_err["message"], case
        assert got_err["extensions"] == want_err["extensions"], case
        assert got_err.get("path") == want_err.get("path"), case
        assert len(got_err["locations"]) == len(want_err["locations"]), case
        assert body.get("data") == want.get("data"), case
    assert shopify.writes == []


async def test_name_validation_capture_replayed(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient
) -> None:
    recorded = capture("inventorySetQuantities-name-validation.json")
    loc = shopify.add_location("Shop location")
    for name, case in recorded["cases"].items():
        item = shopify.add_item(f"NAME-{name}")
        ids = {case["setup"]["inventoryItemId"]: item, case["setup"]["locationId"]: loc}
        variables = swap_ids(case["variables"], ids)
        body = await gql(shopify_client, shopify, case["query"], variables)
        want = swap_ids(case["response"], ids)
        assert shape(body["data"]) == shape(want["data"]), name
        got_p, want_p = (
            body["data"]["inventorySetQuantities"],
            want["data"]["inventorySetQuantities"],
        )
        assert got_p["userErrors"] == want_p["userErrors"], name
        assert got_p["inventoryAdjustmentGroup"] == want_p["inventoryAdjustmentGroup"], name
        got_cost, want_cost = body["extensions"]["cost"], want["extensions"]["cost"]
        assert (got_cost["requestedQueryCost"], got_cost["actualQueryCost"]) == (
            want_cost["requestedQueryCost"],
            want_cost["actualQueryCost"],
        ), name
    assert [(w.sku, w.name, w.after) for w in shopify.writes] == [("NAME-onHand", "on_hand", 4)]


async def test_unknown_ids_and_reason_match_the_captures(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient, shopify_world: dict[str, str]
) -> None:
    contracts = capture("inventory-quantity-contracts-2026-04.json")
    w = shopify_world
    ids = {
        contracts["unknownIdValidation"]["knownInventoryItemId"]: w["a"],
        contracts["unknownIdValidation"]["knownLocationId"]: w["loc"],
    }
    for case, query, field in (
        ("setUnknownInventoryItem", SET, "inventorySetQuantities"),
        ("setUnknownLocation", SET, "inventorySetQuantities"),
        ("adjustUnknownInventoryItem", ADJUST, "inventoryAdjustQuantities"),
        ("adjustUnknownLocation", ADJUST, "inventoryAdjustQuantities"),
    ):
        recorded = swap_ids(contracts["unknownIdValidation"][case], ids)
        variables = {"input": recorded["variables"]["input"], "key": case}
        body = await gql(shopify_client, shopify, query, variables)
        assert body["data"][field] == recorded["response"]["data"][field], case
    existence = capture("inventory-existence-validation.json")["adjustUnknownInventoryItem"]
    body = await gql(shopify_client, shopify, existence["query"], existence["variables"])
    assert body["data"] == existence["response"]["data"]
    reason = contracts["unknownIdValidation"]["setOnHandInvalidReason"]["response"]
    want_error = reason["data"]["inventorySetOnHandQuantities"]["userErrors"][0]
    body = await gql(
        shopify_client,
        shopify,
        SET,
        {"input": set_input((w["a"], w["loc"], 1, None), reason="not_a_reason"), "key": "r"},
    )
    assert body["data"]["inventorySetQuantities"]["userErrors"] == [want_error]
    assert shopify.writes == []


async def test_unstocked_negative_and_oversized_calls(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient, shopify_world: dict[str, str]
) -> None:
    w = shopify_world
    lonely = shopify.add_item("SKU-LONELY", locations=[w["loc"]])
    body = await gql(
        shopify_client,
        shopify,
        SET,
        {"input": set_input((lonely, w["other"], 1, None)), "key": "u1"},
    )
    assert [
        (e["field"], e["code"]) for e in body["data"]["inventorySetQuantities"]["userErrors"]
    ] == [(["input", "quantities", "0", "locationId"], "ITEM_NOT_STOCKED_AT_LOCATION")]
    body = await gql(
        shopify_client,
        shopify,
        SET,
        {"input": set_input((w["a"], w["loc"], -1, None), name="on_hand"), "key": "u2"},
    )
    assert [e["code"] for e in body["data"]["inventorySetQuantities"]["userErrors"]] == [
        "INVALID_QUANTITY_NEGATIVE"
    ]
    too_many = set_input(*[(w["a"], w["loc"], 1, None)] * 251)
    body = await gql(shopify_client, shopify, SET, {"input": too_many, "key": "big"})
    assert body["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"
    assert body["errors"][0]["path"] == ["inventorySetQuantities", "input", "quantities"]
    assert body["data"] == {"inventorySetQuantities": None}
    assert shopify.writes == []


async def test_adjust_applies_deltas_and_follows_the_captures(
    shopify: FakeShopify, shopify_client: httpx.AsyncClient, shopify_world: dict[str, str]
) -> None:
    w = shopify_world
    allow = capture("inventory-adjust-name-allowlist.json")["cases"]["adjustOnHand"]
    bad = {
        "name": "on_hand",
        "reason": "correction",
        "changes": [
            {
                "inventoryItemId": w["a"],
                "locationId": w["loc"],
                "delta": 1,
                "changeFromQuantity": 0,
                "ledgerDocumentUri": "ledger://x/1",
            }
        ],
    }
    body = await gql(shopify_client, shopify, ADJUST, {"input": bad, "key": "adj-bad"})
    [error] = body["data"]["inventoryAdjustQuantities"]["userErrors"]
    [want] = allow["response"]["data"]["inventoryAdjustQuantities"]["userErrors"]
    assert (error["field"], error["message"], error["code"]) == (
        want["field"],
        want["message"],
        "INVALID_QUANTITY_NAME",
    )
    good = {
        "name": "available",
        "reason": "correction",
        "changes": [
            {
                "inventoryItemId": w["a"],
                "locationId": w["loc"],
                "delta": 0,
                "changeFromQuantity": 5,
            },
            {
                "inventoryItemId": w["b"],
                "locationId": w["loc"],
                "delta": -2,
                "changeFromQuantity": 7,
            },
        ],
    }
    body = await gql(shopify_client, shopify, ADJUST, {"input": good, "key": "adj"})
    group = body["data"]["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"]
    assert [(c["item"]["sku"], c["name"], c["delta"]) for c in group["changes"]] == [
        ("SKU-B", "available", -2),
        ("SKU-B", "on_hand", -2),
    ]
    zero = copy.deepcopy(good)
    zero["changes"] = zero["changes"][:1]
    body = await gql(shopify_client, shopify, ADJUST, {"input": zero, "key": "adj-zero"})
    assert body["data"]["inventoryAdjustQuantities"] == {
        "inventoryAdjustmentGroup": None,
        "userErrors": [],
    }
    damaged = {
        "name": "damaged",
        "reason": "damaged",
        "changes": [
            {
                "inventoryItemId": w["a"],
                "locationId": w["loc"],
                "delta": 2,
                "changeFromQuantity": 0,
                "ledgerDocumentUri": "ledger://driftwatch/damage/1",
            }
        ],
    }
    await gql(shopify_client, shopify, ADJUST, {"input": damaged, "key": "adj-dmg"})
    assert shopify.quantities("SKU-A", w["loc"]) == {
        "available": 5,
        "on_hand": 7,
        "committed": 0,
        "reserved": 0,
        "damaged": 2,
        "safety_stock": 0,
        "quality_control": 0,
        "incoming": 0,
    }
    assert [(x.mutation, x.name, x.before, x.after) for x in shopify.writes] == [
        ("inventoryAdjustQuantities", "available", 7, 5),
        ("inventoryAdjustQuantities", "damaged", 0, 2),
    ]
