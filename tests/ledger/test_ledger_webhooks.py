"""Webhook deliveries: recorded always, deduplicated race-safely, stale judged by time."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from ledger_testing import T0, at, scalar
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import WEBHOOK_OUTCOMES, InvalidArgument, Ledger, NotFound, WebhookDelivery

ITEM_AT_EAST = "gid://shopify/InventoryItem/1@gid://shopify/Location/7"


async def deliver(
    ledger: Ledger,
    event_id: str | None = "evt-1",
    *,
    received: float = 1,
    triggered: float | None = 0,
    outcome: str = "received",
    resource_key: str | None = ITEM_AT_EAST,
    dedupe: bool = True,
    system: str = "shopify",
    detail: dict[str, Any] | None = None,
) -> tuple[WebhookDelivery, bool]:
    return await ledger.record_delivery(
        system=system,
        topic="inventory_levels/update",
        event_id=event_id,
        webhook_id=f"wh-{event_id}",
        triggered_at=at(triggered) if triggered is not None else None,
        received_at=at(received),
        outcome=outcome,
        resource_key=resource_key,
        detail=detail,
        dedupe_key=event_id if dedupe else None,
    )


async def test_a_delivery_is_recorded_with_its_delay(ledger: Ledger) -> None:
    delivery, is_new = await deliver(ledger, received=2.5, triggered=0, detail={"secret": 0})
    assert is_new
    assert (delivery.system, delivery.topic, delivery.event_id, delivery.webhook_id) == (
        "shopify",
        "inventory_levels/update",
        "evt-1",
        "wh-evt-1",
    )
    assert (delivery.triggered_at, delivery.received_at) == (T0, at(2.5))
    assert delivery.delay_seconds == pytest.approx(150.0)
    assert (delivery.outcome, delivery.dedupe_key, delivery.processed_at) == (
        "received",
        "evt-1",
        None,
    )
    assert delivery.detail == {"secret": 0}
    assert await ledger.get_delivery(delivery.id) == delivery


async def test_a_second_delivery_of_an_event_is_recorded_as_a_duplicate(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    first, first_new = await deliver(ledger)
    again, again_new = await deliver(ledger, received=3)
    assert (first_new, again_new) == (True, False)
    assert again.id != first.id
    assert (again.outcome, again.dedupe_key, again.detail) == (
        "duplicate",
        None,
        {"duplicate_of": first.id},
    )
    assert await scalar(raw, "SELECT count(*) FROM webhook_deliveries") == 2
    # the same event id for another system is another event
    _, other_new = await deliver(ledger, system="shopify-eu")
    assert other_new


async def test_concurrent_deliveries_of_one_event_claim_it_once(ledger: Ledger) -> None:
    results = await asyncio.gather(*(deliver(ledger, received=1 + i / 10) for i in range(8)))
    assert sorted(is_new for _, is_new in results) == [False] * 7 + [True]
    claimed = [d for d, is_new in results if is_new]
    assert [d.outcome for d, _ in results].count("duplicate") == 7
    assert {d.detail["duplicate_of"] for d, is_new in results if not is_new} == {claimed[0].id}


async def test_deliveries_without_a_dedupe_key_never_collide(ledger: Ledger) -> None:
    a, a_new = await deliver(ledger, outcome="rejected_signature", dedupe=False)
    b, b_new = await deliver(ledger, outcome="rejected_signature", dedupe=False)
    assert (a_new, b_new) == (True, True)
    assert a.id != b.id
    # a forged delivery does not take the event id away from the real one
    _, real_new = await deliver(ledger)
    assert real_new


async def test_finishing_a_delivery_merges_detail(ledger: Ledger) -> None:
    delivery, _ = await deliver(ledger, detail={"secret": 1})
    done = await ledger.finish_delivery(
        delivery.id, outcome="processed", processed_at=at(2), detail={"available": 6}
    )
    assert (done.outcome, done.processed_at) == ("processed", at(2))
    assert done.detail == {"secret": 1, "available": 6}
    with pytest.raises(NotFound):
        await ledger.finish_delivery(999_999, outcome="processed", processed_at=at(2))
    with pytest.raises(InvalidArgument):
        await ledger.finish_delivery(delivery.id, outcome="great", processed_at=at(2))


async def test_latest_triggered_at_counts_only_processed_deliveries(ledger: Ledger) -> None:
    assert await ledger.latest_triggered_at("shopify", ITEM_AT_EAST) is None
    older, _ = await deliver(ledger, "evt-1", triggered=1)
    newer, _ = await deliver(ledger, "evt-2", triggered=5)
    assert await ledger.latest_triggered_at("shopify", ITEM_AT_EAST) is None  # not processed
    await ledger.finish_delivery(newer.id, outcome="processed", processed_at=at(6))
    await ledger.finish_delivery(older.id, outcome="stale", processed_at=at(7))
    await deliver(ledger, "evt-3", triggered=9, outcome="rejected_signature", dedupe=False)
    assert await ledger.latest_triggered_at("shopify", ITEM_AT_EAST) == at(5)
    assert await ledger.latest_triggered_at("shopify", "another") is None
    assert await ledger.latest_triggered_at("shopify-eu", ITEM_AT_EAST) is None


async def test_list_and_stats(ledger: Ledger) -> None:
    a, _ = await deliver(ledger, "evt-1", received=1, triggered=0)
    await ledger.finish_delivery(a.id, outcome="processed", processed_at=at(1))
    await deliver(ledger, "evt-1", received=2, triggered=0)  # duplicate
    await deliver(ledger, None, received=3, triggered=None, outcome="malformed")
    await deliver(ledger, "evt-9", received=10, triggered=-50, outcome="rejected_signature")

    listed = await ledger.list_deliveries()
    assert [d.outcome for d in listed] == [
        "processed",
        "duplicate",
        "malformed",
        "rejected_signature",
    ]
    assert [d.outcome for d in await ledger.list_deliveries(since=at(2.5))] == [
        "malformed",
        "rejected_signature",
    ]
    assert [d.id for d in await ledger.list_deliveries(outcome="processed")] == [a.id]
    assert len(await ledger.list_deliveries(limit=2)) == 2

    stats = await ledger.delivery_stats(since=T0)
    assert stats.total == 4
    assert dict(stats.by_outcome) == {
        "processed": 1,
        "duplicate": 1,
        "malformed": 1,
        "rejected_signature": 1,
    }
    assert stats.count("stale") == 0
    assert stats.max_delay_seconds == pytest.approx(60 * 60)
    assert stats.last_received_at == at(10)
    later = await ledger.delivery_stats(since=at(5))
    assert (later.total, later.count("rejected_signature")) == (1, 1)
    empty = await ledger.delivery_stats(since=at(60))
    assert (empty.total, empty.max_delay_seconds, empty.last_received_at) == (0, None, None)


@pytest.mark.parametrize(
    "bad",
    [
        {"outcome": "fine"},
        {"received_at": datetime(2026, 11, 2, 9, 0)},
        {"system": " "},
        {"detail": {"x": object()}},
    ],
)
async def test_bad_values_are_refused(ledger: Ledger, bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "system": "shopify",
        "topic": "orders/create",
        "event_id": "e",
        "webhook_id": "w",
        "triggered_at": T0,
        "received_at": at(1),
        "outcome": "received",
        **bad,
    }
    with pytest.raises(InvalidArgument):
        await ledger.record_delivery(**args)


def test_every_outcome_is_known() -> None:
    assert "processed" in WEBHOOK_OUTCOMES
    assert len(set(WEBHOOK_OUTCOMES)) == len(WEBHOOK_OUTCOMES)
