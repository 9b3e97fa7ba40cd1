"""Evidence queries: recent deliveries by topic and resource, counts, topics flowing,
the last applied resync per level, and the truth's changes around a moment."""

from __future__ import annotations

from typing import Any

from ledger_testing import T0, at, obs

from ledger import Ledger
from ledger.evidence import DeliveryFact, HistoryPoint

EAST = "gid://shopify/InventoryItem/1@gid://shopify/Location/7"
WEST = "gid://shopify/InventoryItem/1@gid://shopify/Location/8"


async def deliver(
    ledger: Ledger,
    event: str,
    *,
    topic: str = "inventory_levels/update",
    received: float,
    resource: str | None = EAST,
    outcome: str = "received",
    system: str = "shopify",
    detail: dict[str, Any] | None = None,
) -> None:
    row, _ = await ledger.record_delivery(
        system=system,
        topic=topic,
        event_id=event,
        webhook_id=f"wh-{event}",
        triggered_at=at(received - 0.1),
        received_at=at(received),
        outcome=outcome,
        resource_key=resource,
        dedupe_key=event if outcome == "received" else None,
    )
    if detail is not None or outcome == "received":
        await ledger.finish_delivery(
            row.id, outcome="processed", processed_at=at(received), detail=detail
        )


async def test_recent_deliveries_by_topic_and_resource(ledger: Ledger) -> None:
    await deliver(ledger, "old", received=1)
    await deliver(ledger, "e1", received=10)
    await deliver(ledger, "w1", received=11, resource=WEST)
    await deliver(ledger, "bad", received=12, outcome="rejected_signature")
    await deliver(ledger, "other", received=13, system="shopify-eu")
    await deliver(
        ledger,
        "o1",
        topic="orders/create",
        received=14,
        resource="gid://shopify/Order/1",
        detail={"line_items": [{"sku": "TEE", "quantity": 2}]},
    )

    inventory = await ledger.recent_deliveries(
        "shopify", at(5), topics={"inventory_levels/update"}, resource_keys=[EAST]
    )
    assert inventory == [
        DeliveryFact("inventory_levels/update", EAST, "processed", at(9.9), at(10), {})
    ]
    everything = await ledger.recent_deliveries("shopify", at(5))
    assert [d.resource_key for d in everything] == [EAST, WEST, "gid://shopify/Order/1"]

    [order] = await ledger.recent_deliveries(
        "shopify", at(5), topics={"orders/create"}, with_detail=True
    )
    assert order.detail == {"line_items": [{"sku": "TEE", "quantity": 2}]}
    assert await ledger.recent_deliveries("shopify", at(5), resource_keys=[]) == []


async def test_delivery_counts_and_topics_flowing(ledger: Ledger) -> None:
    await deliver(ledger, "e1", received=10)
    await deliver(ledger, "e2", received=11, outcome="stale")
    await deliver(ledger, "bad", received=12, outcome="rejected_signature")
    await deliver(ledger, "o1", topic="orders/create", received=13, resource=None)

    assert await ledger.delivery_counts("shopify", at(5), topic="inventory_levels/update") == {
        "processed": 1,
        "stale": 1,
        "rejected_signature": 1,
    }
    assert await ledger.delivery_counts("shopify", at(12.5)) == {"processed": 1}
    assert await ledger.topics_seen("shopify", at(0)) == {
        "inventory_levels/update",
        "orders/create",
    }
    assert await ledger.topics_seen("shopify", at(20)) == set()


async def test_topics_seen_asked_about_some_topics_probes_only_those(ledger: Ledger) -> None:
    await deliver(ledger, "e1", received=10)
    await deliver(ledger, "bad", topic="refunds/create", received=12, outcome="rejected_signature")
    await deliver(ledger, "o1", topic="orders/create", received=13, resource=None)
    asked = {"inventory_levels/update", "orders/create", "refunds/create", "products/update"}

    # a refused delivery is not a flowing topic; a topic not asked about is left out
    assert await ledger.topics_seen("shopify", at(0), topics=asked) == {
        "inventory_levels/update",
        "orders/create",
    }
    assert await ledger.topics_seen("shopify", at(12), topics=asked) == {"orders/create"}
    assert await ledger.topics_seen("shopify", at(0), topics={"orders/create"}) == {"orders/create"}
    assert await ledger.topics_seen("shopify", at(0), topics=set()) == set()
    assert await ledger.topics_seen("erp", at(0), topics=asked) == set()


async def test_the_last_applied_resync_per_level(ledger: Ledger) -> None:
    async def resync(key: str, sku: str, status: str, minutes: float) -> None:
        row, _ = await ledger.create_resync(
            key, "shopify", sku, "east", "available", 5, "U1", at(minutes - 1)
        )
        await ledger.update_resync(row.id, status, at(minutes), after=5)

    await resync("a", "TEE", "applied", 10)
    await resync("b", "TEE", "applied", 20)
    await resync("c", "TEE", "failed", 30)
    await resync("d", "MUG", "applied", 15)

    assert await ledger.last_applied_resyncs() == {
        ("shopify", "TEE", "east"): at(20),
        ("shopify", "MUG", "east"): at(15),
    }
    assert await ledger.last_applied_resyncs(["MUG"]) == {("shopify", "MUG", "east"): at(15)}
    assert await ledger.last_applied_resyncs([]) == {}


async def test_level_changes_start_from_the_value_before(ledger: Ledger) -> None:
    await ledger.record_levels(
        [
            obs(10, 0, system="wms", sku="TEE"),
            obs(8, 5, system="wms", sku="TEE"),
            obs(8, 6, system="wms", sku="TEE"),  # no change: no history row
            obs(6, 30, system="wms", sku="TEE"),
            obs(2, 0, system="wms", sku="TEE", state="committed"),
            obs(9, 0, system="wms", sku="MUG"),
            obs(50, 0, system="shopify", sku="TEE"),
        ]
    )

    changes = await ledger.level_changes_since("wms", ["TEE"], ["available", "committed"], at(10))
    assert changes == [
        HistoryPoint("TEE", "east", "committed", 2, T0),
        HistoryPoint("TEE", "east", "available", 8, at(5)),
        HistoryPoint("TEE", "east", "available", 6, at(30)),
    ]
    assert await ledger.level_changes_since("wms", [], ["available"], at(10)) == []
