"""Webhook deliveries: recorded always, deduplicated race-safely, stale judged by time."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from ledger_testing import T0, at, obs, scalar
from sql_testing import sent_statements
from sqlalchemy.ext.asyncio import AsyncEngine

from connectors import STATES
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


async def test_latest_ordered_at_counts_only_processed_deliveries(ledger: Ledger) -> None:
    assert await ledger.latest_ordered_at("shopify", ITEM_AT_EAST) is None
    older, _ = await deliver(ledger, "evt-1", triggered=1)
    newer, _ = await deliver(ledger, "evt-2", triggered=5)
    assert await ledger.latest_ordered_at("shopify", ITEM_AT_EAST) is None  # not processed
    await ledger.finish_delivery(newer.id, outcome="processed", processed_at=at(6))
    await ledger.finish_delivery(older.id, outcome="stale", processed_at=at(7))
    await deliver(ledger, "evt-3", triggered=9, outcome="ignored", dedupe=False)
    assert await ledger.latest_ordered_at("shopify", ITEM_AT_EAST) == at(5)
    assert await ledger.latest_ordered_at("shopify", "another") is None
    assert await ledger.latest_ordered_at("shopify-eu", ITEM_AT_EAST) is None
    # ordered by the payload's own time where the receiver gives one, not the header's
    ordered, _ = await ledger.record_delivery(
        system="shopify",
        topic="inventory_levels/update",
        event_id="evt-4",
        webhook_id="wh-4",
        triggered_at=at(30),
        ordered_at=at(4),
        received_at=at(31),
        outcome="received",
        resource_key=ITEM_AT_EAST,
        dedupe_key="evt-4",
    )
    assert (ordered.triggered_at, ordered.ordered_at) == (at(30), at(4))
    await ledger.finish_delivery(ordered.id, outcome="processed", processed_at=at(31))
    assert await ledger.latest_ordered_at("shopify", ITEM_AT_EAST) == at(5)


def fields(
    event_id: str | None,
    *,
    received: float = 1,
    triggered: float = 0,
    outcome: str = "received",
    system: str = "shopify",
    resource_key: str | None = ITEM_AT_EAST,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One delivery as ``record_deliveries`` takes it."""
    return {
        "system": system,
        "topic": "inventory_levels/update",
        "event_id": event_id,
        "webhook_id": f"wh-{event_id}",
        "triggered_at": at(triggered),
        "received_at": at(received),
        "outcome": outcome,
        "resource_key": resource_key,
        "detail": detail,
        "dedupe_key": event_id,
    }


async def test_a_batch_claims_each_event_once_in_the_order_given(ledger: Ledger) -> None:
    held, _ = await deliver(ledger, "evt-0")  # claimed by an earlier transaction
    batch = [
        fields("evt-1", detail={"n": 0}),
        fields("evt-0", detail={"n": 1}),
        fields("evt-1", detail={"n": 2}),  # a duplicate of the first in this batch
        fields(None, outcome="rejected_signature", resource_key=None),
        fields("evt-2", detail={"n": 4}),
        fields("evt-1", system="shopify-eu", detail={"n": 5}),  # another system's event
    ]
    results = await ledger.record_deliveries(batch)
    assert [is_new for _, is_new in results] == [True, False, False, True, True, True]
    rows = [row for row, _ in results]
    assert [r.outcome for r in rows] == [
        "received",
        "duplicate",
        "duplicate",
        "rejected_signature",
        "received",
        "received",
    ]
    assert [r.dedupe_key for r in rows] == ["evt-1", None, None, None, "evt-2", "evt-1"]
    assert rows[1].detail == {"n": 1, "duplicate_of": held.id}
    assert rows[2].detail == {"n": 2, "duplicate_of": rows[0].id}
    assert [r.event_id for r in rows] == [b["event_id"] for b in batch]
    assert [await ledger.get_delivery(r.id) for r in rows] == rows
    assert await ledger.record_deliveries([]) == []


async def test_a_bad_value_refuses_the_whole_batch(ledger: Ledger) -> None:
    with pytest.raises(InvalidArgument):
        await ledger.record_deliveries([fields("evt-1"), fields("evt-2", outcome="fine")])
    with pytest.raises(InvalidArgument):
        await ledger.record_deliveries([{**fields("evt-3"), "colour": "red"}])
    assert await ledger.list_deliveries() == []


async def test_concurrent_batches_with_crossed_events_claim_each_once(ledger: Ledger) -> None:
    # Two replicas recording the same burst in opposite orders: no deadlock, one claim
    # per event, every other delivery a duplicate of it.
    keys = [f"evt-{n}" for n in range(40)]
    forward = [fields(k, received=1) for k in keys]
    backward = [fields(k, received=2) for k in reversed(keys)]
    results = await asyncio.gather(
        *(ledger.record_deliveries(batch) for batch in (forward, backward, forward))
    )
    rows = [pair for batch in results for pair in batch]
    claimed = {row.event_id: row.id for row, is_new in rows if is_new}
    assert sorted(claimed) == sorted(keys)
    assert sum(not is_new for _, is_new in rows) == 2 * len(keys)
    for row, is_new in rows:
        if not is_new:
            assert row.detail["duplicate_of"] == claimed[row.event_id]


async def test_batches_of_finishes_and_latest_times(ledger: Ledger) -> None:
    other = "gid://shopify/InventoryItem/1@gid://shopify/Location/8"
    recorded = await ledger.record_deliveries(
        [
            fields("evt-1", triggered=1, detail={"secret": 0}),
            fields("evt-2", triggered=5),
            fields("evt-3", triggered=3, resource_key=other),
            fields("evt-4", triggered=9, resource_key=other),
        ]
    )
    a, b, c, d = (row for row, _ in recorded)
    assert await ledger.latest_ordered_many("shopify", [ITEM_AT_EAST, other]) == {}
    await ledger.finish_deliveries(
        [
            {"delivery_id": a.id, "outcome": "processed", "processed_at": at(6)},
            {"delivery_id": b.id, "outcome": "processed", "processed_at": at(6)},
            {"delivery_id": c.id, "outcome": "processed", "processed_at": at(6)},
            {
                "delivery_id": d.id,
                "outcome": "error",
                "processed_at": at(7),
                "detail": {"error": "boom"},
            },
        ]
    )
    assert await ledger.latest_ordered_many("shopify", [ITEM_AT_EAST, other, "none"]) == {
        ITEM_AT_EAST: at(5),
        other: at(3),
    }
    assert await ledger.latest_ordered_many("shopify-eu", [ITEM_AT_EAST]) == {}
    settled = await ledger.get_delivery(a.id)
    assert (settled.outcome, settled.processed_at, settled.detail) == (
        "processed",
        at(6),
        {"secret": 0},
    )
    failed = await ledger.get_delivery(d.id)
    assert (failed.outcome, failed.detail) == ("error", {"error": "boom"})
    with pytest.raises(NotFound):  # and nothing of the batch is settled
        await ledger.finish_deliveries(
            [
                {"delivery_id": a.id, "outcome": "stale", "processed_at": at(8)},
                {"delivery_id": 999_999, "outcome": "processed", "processed_at": at(8)},
            ]
        )
    assert (await ledger.get_delivery(a.id)).outcome == "processed"
    with pytest.raises(InvalidArgument):
        await ledger.finish_deliveries(
            [{"delivery_id": a.id, "outcome": "great", "processed_at": at(8)}]
        )
    await ledger.finish_deliveries([])


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
    assert [d.outcome for d in await ledger.list_deliveries(limit=2, newest=True)] == [
        "malformed",
        "rejected_signature",
    ]

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


async def test_the_delivery_window_counts_what_webhook_health_needs(ledger: Ledger) -> None:
    on_time, _ = await deliver(ledger, "evt-1", received=1, triggered=0)
    await ledger.finish_delivery(on_time.id, outcome="processed", processed_at=at(1))
    late, _ = await deliver(ledger, "evt-2", received=12, triggered=0)  # 12 min late
    await ledger.finish_delivery(
        late.id, outcome="error", processed_at=at(12), detail={"error": "ValueError: first"}
    )
    newest, _ = await deliver(ledger, "evt-3", received=13, triggered=12)
    await ledger.finish_delivery(
        newest.id, outcome="error", processed_at=at(13), detail={"error": "KeyError: newest"}
    )
    await deliver(ledger, "evt-2", received=14, triggered=0)  # a late duplicate: not counted late
    for n, reason in enumerate(("mismatch", "mismatch", "missing")):
        await deliver(
            ledger,
            f"bad-{n}",
            received=5,
            triggered=-600,
            outcome="rejected_signature",
            dedupe=False,
            detail={"signature": reason},
        )
    await deliver(ledger, "evt-other", received=6, system="shopify-eu", outcome="error")

    window = await ledger.delivery_window("shopify", at(0.5), late_after_seconds=300)
    assert window.system == "shopify"
    assert dict(window.by_outcome) == {
        "processed": 1,
        "error": 2,
        "duplicate": 1,
        "rejected_signature": 3,
    }
    assert (window.total, window.count("error", "malformed")) == (7, 2)
    assert (window.timed, window.late) == (3, 1)
    assert window.max_delay_seconds == pytest.approx(12 * 60)
    assert window.signature_mismatches == 2
    assert window.last_error == "KeyError: newest"
    assert window.last_received_at == at(14)

    later = await ledger.delivery_window("shopify", at(13.5))
    assert (later.total, later.timed, later.late, later.last_error) == (1, 0, 0, None)
    assert later.max_delay_seconds is None


async def test_announcements_name_the_resources_webhooks_reported(ledger: Ledger) -> None:
    await deliver(ledger, "evt-1", received=1, triggered=0)
    await deliver(ledger, "evt-1", received=2, triggered=0)  # the duplicate announces too
    await deliver(ledger, "evt-2", received=3, resource_key=None, outcome="rejected_signature")
    await deliver(ledger, "evt-3", received=20, triggered=19)
    await deliver(ledger, "evt-4", received=4, system="shopify-eu")
    await ledger.record_delivery(
        system="shopify",
        topic="orders/create",
        event_id="o-1",
        webhook_id="w-o-1",
        triggered_at=at(1),
        received_at=at(1),
        outcome="received",
        resource_key="gid://shopify/Order/1",
    )
    found = await ledger.announcements("shopify", "inventory_levels/update", at(0), at(10))
    assert [(a.resource_key, a.triggered_at, a.received_at) for a in found] == [
        (ITEM_AT_EAST, T0, at(1)),
        (ITEM_AT_EAST, T0, at(2)),
    ]


async def test_level_changes_are_history_rows_that_follow_a_value(ledger: Ledger) -> None:
    await ledger.record_levels([obs(10, 0), obs(4, 0, sku="MUG"), obs(7, 0, state="committed")])
    await ledger.record_levels([obs(10, 5), obs(8, 6, state="committed")])  # only committed
    await ledger.record_levels([obs(9, 10), obs(5, 10, sku="MUG"), obs(3, 11, sku="NEW")])
    await ledger.record_levels([obs(9, 12, system="wms"), obs(1, 20, system="wms")])
    await ledger.record_levels([obs(2, 30)])

    changes = await ledger.level_changes("shopify", at(1), at(20), state="available")
    # oldest first; within one batch, in the order the ledger wrote them (by key)
    assert [(c.sku, c.state, c.previous, c.quantity, c.observed_at) for c in changes] == [
        ("MUG", "available", 4, 5, at(10)),
        ("TEE-BLK-M", "available", 10, 9, at(10)),
    ]
    every_state = await ledger.level_changes("shopify", at(1), at(20))
    assert [(c.sku, c.state) for c in every_state] == [
        ("TEE-BLK-M", "committed"),
        ("MUG", "available"),
        ("TEE-BLK-M", "available"),
    ]
    assert every_state[0].source == "poll"
    assert [c.previous_at for c in changes] == [T0, T0]
    [wms] = await ledger.level_changes("wms", T0, at(60))
    assert (wms.previous, wms.previous_at, wms.quantity) == (9, at(12), 1)
    assert len(await ledger.level_changes("shopify", T0, at(60), limit=1)) == 1
    with pytest.raises(InvalidArgument):
        await ledger.level_changes("shopify", T0, at(60), limit=0)


# -- one value cannot fail a batch (issue 14, finding 8) ---------------------------------
HOSTILE: list[dict[str, Any]] = [
    {"sku": "NUL\u0000SKU"},  # PostgreSQL refuses \u0000 in jsonb and text
    {"sku": "lone \ud800 surrogate"},  # no backend can encode it as UTF-8
    {"quantity": float("nan"), "price": float("inf")},  # jsonb has no NaN or Infinity
    {"quantity": 10**30},  # beyond 64 bits: still a JSON number
]


async def test_values_a_database_refuses_do_not_fail_the_batch(ledger: Ledger) -> None:
    batch = [fields(f"evt-{n}", detail={"n": n}) for n in range(3)]
    batch += [fields(f"bad-{n}", detail=detail) for n, detail in enumerate(HOSTILE)]
    batch.append({**fields("evt-9"), "event_id": "id \u0000 \udcff", "topic": "t\u0000"})
    results = await ledger.record_deliveries(batch)
    assert [is_new for _, is_new in results] == [True] * len(batch)
    rows = {row.dedupe_key: row for row, _ in results}
    assert rows["bad-0"].detail == {"sku": "NUL\ufffdSKU"}
    assert rows["bad-1"].detail == {"sku": "lone \ufffd surrogate"}
    assert rows["bad-2"].detail == {"quantity": "nan", "price": "inf"}
    assert rows["bad-3"].detail == {"quantity": 10**30}
    assert (rows["evt-9"].event_id, rows["evt-9"].topic) == ("id \ufffd \ufffd", "t\ufffd")
    assert [await ledger.get_delivery(row.id) for row, _ in results] == [r for r, _ in results]

    await ledger.finish_deliveries(
        [
            {
                "delivery_id": row.id,
                "outcome": "processed",
                "processed_at": at(2),
                "detail": HOSTILE[n % len(HOSTILE)],
            }
            for n, (row, _) in enumerate(results)
        ]
    )
    settled = [await ledger.get_delivery(row.id) for row, _ in results]
    assert {d.outcome for d in settled} == {"processed"}
    assert settled[0].detail == {"n": 0, "sku": "NUL\ufffdSKU"}


async def _refuse_poison(raw: AsyncEngine) -> None:
    """A database trigger refusing any delivery whose detail holds ``poison``: a value
    the database refuses that the ledger cannot know about in advance."""
    async with raw.begin() as conn:
        if raw.dialect.name == "sqlite":
            await conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON webhook_deliveries "
                "WHEN json_extract(NEW.detail, '$.poison') IS NOT NULL "
                "BEGIN SELECT RAISE(ABORT, 'poisoned detail'); END"
            )
            await conn.exec_driver_sql(
                "CREATE TRIGGER poison_update BEFORE UPDATE ON webhook_deliveries "
                "WHEN json_extract(NEW.detail, '$.poison') IS NOT NULL "
                "BEGIN SELECT RAISE(ABORT, 'poisoned detail'); END"
            )
            return
        await conn.exec_driver_sql(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.detail ? 'poison' THEN RAISE EXCEPTION 'poisoned detail'; END IF; "
            "RETURN NEW; END $$"
        )
        await conn.exec_driver_sql(
            "CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON webhook_deliveries "
            "FOR EACH ROW EXECUTE FUNCTION poison()"
        )


async def test_a_delivery_the_database_refuses_is_kept_without_its_detail(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    await _refuse_poison(raw)
    batch = [
        fields("evt-1", detail={"n": 1}),
        fields("evt-2", detail={"poison": True}),
        fields("evt-1", detail={"n": 3}),  # a duplicate of the first, in the same batch
        fields("evt-4", detail={"n": 4}),
    ]
    results = await ledger.record_deliveries(batch)
    rows = [row for row, _ in results]
    assert [is_new for _, is_new in results] == [True, True, False, True]
    assert [r.outcome for r in rows] == ["received", "received", "duplicate", "received"]
    assert rows[1].detail == {"unstorable": "poisoned detail"}
    assert rows[1].dedupe_key == "evt-2"  # still claims its event
    assert rows[2].detail == {"n": 3, "duplicate_of": rows[0].id}
    # settling: the one the database refuses is settled without what it refused
    await ledger.finish_deliveries(
        [
            {"delivery_id": rows[0].id, "outcome": "processed", "processed_at": at(2)},
            {
                "delivery_id": rows[3].id,
                "outcome": "error",
                "processed_at": at(2),
                "detail": {"poison": "again"},
            },
        ]
    )
    first, last = await ledger.get_delivery(rows[0].id), await ledger.get_delivery(rows[3].id)
    assert first.outcome == "processed"
    assert (last.outcome, last.detail) == ("error", {"n": 4, "unstorable": "poisoned detail"})


# -- refusals are counted ----------------------------------------------------------------
def refused(outcome: str, reason: str, minutes: float, count: int = 1) -> dict[str, Any]:
    return {
        "system": "shopify",
        "outcome": outcome,
        "reason": reason,
        "count": count,
        "first_at": at(minutes),
        "last_at": at(minutes),
        "sample": {"event_id": f"e-{minutes}", "shop": None},
    }


async def test_refusals_are_counted_per_bucket_whatever_their_number(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    for n in range(50):
        await ledger.count_refusals([refused("rejected_signature", "missing", n / 100)])
    await ledger.record_deliveries(
        [fields("evt-1")],
        [refused("rejected_signature", "mismatch", 1, 3), refused("wrong_shop", "other", 6)],
    )
    assert await scalar(raw, "SELECT count(*) FROM webhook_refusals") == 3
    counts = await ledger.list_refusals()
    assert [(r.outcome, r.reason, r.count, r.bucket_start) for r in counts] == [
        ("rejected_signature", "mismatch", 3, T0),
        ("rejected_signature", "missing", 50, T0),
        ("wrong_shop", "other", 1, at(5)),
    ]
    missing = counts[1]
    assert (missing.first_at, missing.last_at, missing.sample) == (
        T0,
        at(0.49),
        {"event_id": "e-0.49"},
    )
    window = await ledger.delivery_window("shopify", T0)
    assert dict(window.by_outcome) == {"received": 1, "rejected_signature": 53, "wrong_shop": 1}
    assert window.signature_mismatches == 3
    assert window.last_received_at == at(6)
    stats = await ledger.delivery_stats(since=at(5.5))
    assert dict(stats.by_outcome) == {"wrong_shop": 1}
    assert [r.outcome for r in await ledger.list_refusals(since=at(2))] == ["wrong_shop"]
    with pytest.raises(InvalidArgument):
        await ledger.count_refusals([refused("fine", "", 1)])
    with pytest.raises(InvalidArgument):
        await ledger.count_refusals([{**refused("malformed", "", 1), "count": 0}])


async def test_refusal_counts_are_kept_for_the_retention_period(ledger: Ledger) -> None:
    from ledger.webhooks import REFUSAL_RETENTION

    days = REFUSAL_RETENTION.days
    await ledger.count_refusals([refused("too_large", "", 0)])
    await ledger.count_refusals([refused("too_large", "", (days - 1) * 24 * 60)])
    assert len(await ledger.list_refusals()) == 2  # both within the period
    await ledger.count_refusals([refused("too_large", "", (days + 1) * 24 * 60)])
    kept = await ledger.list_refusals()
    assert [r.bucket_start for r in kept] == [at((days - 1) * 24 * 60), at((days + 1) * 24 * 60)]
    assert await ledger.prune_refusals(at((days + 1) * 24 * 60)) == 1


async def test_received_deliveries_are_paged_by_id(ledger: Ledger) -> None:
    results = await ledger.record_deliveries([fields(f"evt-{n}") for n in range(5)])
    ids = [row.id for row, _ in results]
    await ledger.finish_delivery(ids[1], outcome="processed", processed_at=at(2))
    await ledger.record_deliveries([fields("other", system="shopify-eu")])
    first = await ledger.received_deliveries("shopify", limit=2)
    assert [d.id for d in first] == [ids[0], ids[2]]
    rest = await ledger.received_deliveries("shopify", after_id=first[-1].id, limit=2)
    assert [d.id for d in rest] == [ids[3], ids[4]]
    assert await ledger.received_deliveries("shopify", after_id=ids[4]) == []


async def test_level_changes_of_a_system_are_found_through_its_time_index(
    tmp_path: Path,
) -> None:
    """The webhook-health monitor asks for one system's changes of the last hour: SQLite
    plans history's through ``ix_level_history_system_time``, not a scan of the system's
    history through the key index (which leads with sku), and current's through each
    state's ``ix_levels_<state>_changes``, which holds only levels whose state replaced
    a value (a first read adds nothing to it), not a scan of the system's levels."""
    db = tmp_path / "plan.db"
    async with Ledger.from_url(f"sqlite:///{db}") as ledger:
        await ledger.upgrade()
        await ledger.record_levels([obs(5, 0), obs(1, 0, sku="OTHER")])
        await ledger.record_levels([obs(4, 10)])
        with sent_statements(ledger) as statements:
            [change] = await ledger.level_changes("shopify", at(5), at(15))
    assert (change.previous, change.quantity) == (5, 4)
    [(statement, params)] = [s for s in statements if "level_history" in s[0]]
    with sqlite3.connect(db) as conn:
        plan = " | ".join(r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {statement}", params))
        indexed = conn.execute(
            "SELECT count(*) FROM levels INDEXED BY ix_levels_available_changes "
            "WHERE available_previous IS NOT NULL AND system = 'shopify'"
        ).fetchone()
    assert "ix_level_history_system_time" in plan, plan
    for state in STATES:
        assert f"USING INDEX ix_levels_{state}_changes" in plan, plan
    assert "SCAN l" not in plan, plan
    assert indexed == (1,)
