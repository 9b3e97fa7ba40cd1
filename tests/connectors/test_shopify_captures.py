"""Responses recorded from a real Shopify store, used as parsing oracles.

The captures (tests/fixtures/shopify/captures) were recorded against a real
development store. Here they are served to the connector through an httpx transport
— the connector's one I/O seam — so its parsing is checked against what Shopify really
sends: the shape of levels and quantities, the cost extension, and userErrors with
their field paths and codes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors import LevelWrite, ManualClock
from connectors.errors import GraphQLError
from connectors.shopify import ShopifyConnector
from monitors.config import Config, config_from_dict

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures/shopify/captures"


def capture(name: str) -> dict[str, Any]:
    data = json.loads((CAPTURES / name).read_text("utf-8"))
    assert isinstance(data, dict)
    return data


WINDOWING = capture("inventory-item-levels-connection-windowing-2026-04.json")
NAME_VALIDATION = capture("inventorySetQuantities-name-validation.json")
CONTRACTS = capture("inventory-quantity-contracts-2026-04.json")
RECORDED_TOP_LEVEL_ERROR = CONTRACTS["missingSetIdempotency"]["response"]
SOURCE = WINDOWING["setup"]["sourceLocationId"]
DESTINATION = WINDOWING["setup"]["destinationLocationId"]
ITEM = WINDOWING["setup"]["inventoryItemId"]


def config() -> Config:
    return config_from_dict(
        {
            "source_of_truth": ["shopify"],
            "systems": [
                {"name": "shopify", "kind": "shopify", "shop_url": "https://shop.example.com"}
            ],
            "locations": {"source": {"shopify": SOURCE}, "destination": {"shopify": DESTINATION}},
            "slack": {"alerts_channel": "C0DRIFT01"},
        }
    )


class Replay:
    """Answers each GraphQL operation, by name, with a recorded body."""

    def __init__(self, bodies: dict[str, list[dict[str, Any]]]) -> None:
        self.bodies = bodies
        self.sent: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.sent.append(body)
        name = body["query"].split("(")[0].split()[-1]
        return httpx.Response(200, json=self.bodies[name].pop(0))


def connector(replay: Replay) -> ShopifyConnector:
    client = httpx.AsyncClient(transport=httpx.MockTransport(replay))
    return ShopifyConnector(
        client,
        name="shopify",
        shop_url="https://shop.example.com",
        token="shpat_test",
        mapping=config(),
        clock=ManualClock(),
        writable=True,
        use_bulk=False,  # the captures record paged reads
    )


def recorded_levels() -> list[dict[str, Any]]:
    edges = WINDOWING["operations"]["activeRead"]["response"]["data"]["inventoryItem"]
    return [edge["node"] for edge in edges["activeLevels"]["edges"]]


def locations_body() -> dict[str, Any]:
    return {
        "data": {
            "locations": {
                "pageInfo": {"hasNextPage": False, "endCursor": None},
                "nodes": [
                    {"id": SOURCE, "name": "Source", "isActive": True},
                    {"id": DESTINATION, "name": "Destination", "isActive": True},
                ],
            }
        },
        "extensions": CONTRACTS["schema"]["extensions"],
    }


def items_body() -> dict[str, Any]:
    """Our InventoryItems document's response, built from the recorded level nodes."""
    return {
        "data": {
            "inventoryItems": {
                "pageInfo": {"hasNextPage": False, "endCursor": None},
                "nodes": [
                    {
                        "id": ITEM,
                        "sku": WINDOWING["setup"]["sku"],
                        "tracked": True,
                        "updatedAt": WINDOWING["capturedAt"],
                        "variant": {
                            "id": "gid://shopify/ProductVariant/1",
                            "inventoryPolicy": "DENY",
                        },
                        "inventoryLevels": {"nodes": recorded_levels()},
                    }
                ],
            }
        },
        "extensions": WINDOWING["operations"]["activeRead"]["response"]["extensions"],
    }


async def test_recorded_levels_parse_into_quantities_by_state() -> None:
    replay = Replay({"Locations": [locations_body()], "InventoryItems": [items_body()]})
    levels = await connector(replay).read_levels()

    expected = {
        ("source" if n["location"]["id"] == SOURCE else "destination"): {
            q["name"]: q["quantity"] for q in n["quantities"]
        }
        for n in recorded_levels()
    }
    assert {lv.location: dict(lv.quantities) for lv in levels} == expected
    assert {lv.sku for lv in levels} == {WINDOWING["setup"]["sku"].upper()}


async def test_the_recorded_cost_extension_feeds_the_throttle_state() -> None:
    replay = Replay({"Locations": [locations_body()], "InventoryItems": [items_body()]})
    shop = connector(replay)
    await shop.read_levels()
    status = WINDOWING["operations"]["activeRead"]["response"]["extensions"]["cost"][
        "throttleStatus"
    ]
    throttle = shop.health().throttle
    assert throttle.maximum == status["maximumAvailable"]
    assert throttle.available == status["currentlyAvailable"]
    assert throttle.restore_rate == status["restoreRate"]


@pytest.mark.parametrize("case", ["availableTooHigh", "duplicatePair"])
async def test_recorded_user_errors_fail_the_writes_they_name(case: str) -> None:
    recorded = NAME_VALIDATION["cases"][case]["response"]
    replay = Replay(
        {
            "Locations": [locations_body()],
            "InventoryItems": [items_body()],
            "SetQuantities": [recorded],
        }
    )
    shop = connector(replay)
    await shop.read_levels()
    sku = WINDOWING["setup"]["sku"].upper()
    writes = [
        LevelWrite(sku, "source", "available", 5, expected=4, key=f"{case}-0"),
        LevelWrite(sku, "destination", "available", 5, expected=10, key=f"{case}-1"),
    ]
    outcomes = await shop.write_levels(writes)

    errors = recorded["data"]["inventorySetQuantities"]["userErrors"]
    codes = {int(e["field"][2]): e["code"] for e in errors}
    assert {o.status for o in outcomes} == {"failed"}
    for index, code in codes.items():
        assert code in (outcomes[index].error or "")


async def test_a_recorded_top_level_error_is_a_typed_graphql_error() -> None:
    top_level = RECORDED_TOP_LEVEL_ERROR
    replay = Replay(
        {
            "Locations": [locations_body()],
            "InventoryItems": [items_body()],
            "SetQuantities": [top_level],
        }
    )
    shop = connector(replay)
    await shop.read_levels()
    sku = WINDOWING["setup"]["sku"].upper()
    with pytest.raises(GraphQLError) as raised:
        await shop.write_levels([LevelWrite(sku, "source", "available", 5, expected=4, key="k")])
    assert raised.value.code == "BAD_REQUEST"
    assert "@idempotent directive is required" in str(raised.value)
