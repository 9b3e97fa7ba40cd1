"""The outbox: dedupe, per-incident order, leases, retries, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest
from ledger_testing import T0, at, scalar
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import (
    FollowUp,
    Incident,
    InvalidArgument,
    LeaseLost,
    Ledger,
    NotFound,
    OutboxEntry,
    OutboxStats,
)

CHANNEL = "C_OPS"


async def put(
    ledger: Ledger,
    when: datetime = T0,
    *,
    kind: str = "thread.reply",
    payload: Mapping[str, Any] | None = None,
    incident_id: int | None = None,
) -> OutboxEntry:
    entry = await ledger.enqueue(kind, CHANNEL, payload or {}, when, incident_id=incident_id)
    assert entry is not None
    return entry


async def incident(ledger: Ledger, fingerprint: str) -> Incident:
    opened, _ = await ledger.open_incident(fingerprint, "drift", "warning", fingerprint, T0)
    return opened


async def test_enqueue_and_dedupe(ledger: Ledger, raw: AsyncEngine) -> None:
    entry = await ledger.enqueue("report.weekly", CHANNEL, {"week": 45}, T0, dedupe_key="w45")
    assert entry is not None
    assert (entry.status, entry.attempts, entry.next_attempt_at, entry.payload) == (
        "pending",
        0,
        T0,
        {"week": 45},
    )
    assert (
        await ledger.enqueue("report.weekly", CHANNEL, {"week": 45}, at(1), dedupe_key="w45")
        is None
    )
    assert await ledger.enqueue("report.weekly", CHANNEL, {}, at(1)) is not None  # no key
    assert await scalar(raw, "SELECT count(*) FROM outbox WHERE dedupe_key = 'w45'") == 1
    assert await scalar(raw, "SELECT count(*) FROM outbox") == 2


async def test_only_due_entries_are_claimed(ledger: Ledger) -> None:
    now = await put(ledger, T0)
    later = await put(ledger, at(10))
    assert [e.id for e in await ledger.claim_outbox(at(1))] == [now.id]
    assert await ledger.claim_outbox(at(1.5)) == []  # `later` is not due, `now` is leased
    claimed = await ledger.claim_outbox(at(10))  # `now`'s one-minute lease has run out
    assert [(e.id, e.attempts) for e in claimed] == [(now.id, 2), (later.id, 1)]


async def test_one_incident_delivers_in_order(ledger: Ledger) -> None:
    a = await incident(ledger, "a")
    b = await incident(ledger, "b")
    a1 = await put(ledger, kind="incident.opened", incident_id=a.id)
    a2 = await put(ledger, kind="incident.updated", incident_id=a.id)
    b1 = await put(ledger, kind="incident.opened", incident_id=b.id)
    free = await put(ledger, kind="report.weekly")
    claimed = await ledger.claim_outbox(at(1), lease_seconds=60)
    assert [e.id for e in claimed] == [a1.id, b1.id, free.id]
    # a2 waits while a1 is leased, and after the lease runs out a1 (not a2) comes back.
    assert await ledger.claim_outbox(at(1.5)) == []
    assert [e.id for e in await ledger.claim_outbox(at(3))] == [a1.id, b1.id, free.id]
    await ledger.mark_delivered(a1.id, at(3.1), {"ts": "1.1"})
    assert [e.id for e in await ledger.claim_outbox(at(3.2))] == [a2.id]


async def test_a_lease_holds_until_it_runs_out(ledger: Ledger) -> None:
    entry = await put(ledger)
    [claimed] = await ledger.claim_outbox(T0, lease_seconds=30)
    assert (claimed.attempts, claimed.lease_until) == (1, at(0.5))
    assert await ledger.claim_outbox(at(0.49)) == []
    [again] = await ledger.claim_outbox(at(0.5), lease_seconds=30)  # the worker died
    assert (again.id, again.attempts, again.lease_until) == (entry.id, 2, at(1))


async def test_a_dead_replicas_claim_is_taken_over_before_its_lease_runs_out(
    ledger: Ledger, db_url: str
) -> None:
    """A kill -9 stops the claimer's heartbeat: after the TTL its claim is free, though
    its lease (sized for the slowest Slack call) would hold for another minute."""
    entry = await put(ledger)
    await ledger.heartbeat(ledger.replica_id, T0, host="a", pid=1)
    [claimed] = await ledger.claim_outbox(T0, lease_seconds=90)
    assert claimed.claimed_by == ledger.replica_id
    async with Ledger.from_url(db_url) as other:
        await other.heartbeat(other.replica_id, at(0.2), host="b", pid=2)
        assert await other.claim_outbox(at(0.2)) == []  # 12 s: the claimer may be alive
        await ledger.heartbeat(ledger.replica_id, at(0.2), host="a", pid=1)
        assert await other.claim_outbox(at(0.4)) == []  # it heartbeat: a slow call, not dead
        [taken] = await other.claim_outbox(at(0.5))  # 18 s without a heartbeat: dead
    assert (taken.id, taken.claimed_by, taken.in_doubt) == (entry.id, other.replica_id, True)
    assert taken.attempts == 2
    assert taken.lease_until == at(1.5)  # its own lease, from the takeover


async def test_a_stopped_replicas_claim_is_free_at_once(ledger: Ledger, db_url: str) -> None:
    entry = await put(ledger)
    await ledger.heartbeat(ledger.replica_id, T0, host="a", pid=1)
    await ledger.claim_outbox(T0, lease_seconds=90)
    await ledger.stop_replica(ledger.replica_id, at(0.01))
    async with Ledger.from_url(db_url) as other:
        [taken] = await other.claim_outbox(at(0.02))
    assert (taken.id, taken.in_doubt) == (entry.id, True)


async def test_a_claimer_that_never_heartbeat_keeps_its_lease(ledger: Ledger, db_url: str) -> None:
    """One process on SQLite heartbeats nowhere: only its lease counts."""
    await put(ledger)
    await ledger.claim_outbox(T0, lease_seconds=90)
    async with Ledger.from_url(db_url) as other:
        assert await other.claim_outbox(at(1.4)) == []
        assert len(await other.claim_outbox(at(1.5))) == 1


async def test_retry_waits_for_its_time(ledger: Ledger) -> None:
    entry = await put(ledger)
    await ledger.claim_outbox(T0)
    retried = await ledger.mark_retry(entry.id, "ratelimited", at(5))
    assert (retried.status, retried.next_attempt_at, retried.lease_until) == (
        "pending",
        at(5),
        None,
    )
    assert retried.last_error == "ratelimited"
    assert await ledger.claim_outbox(at(4.9)) == []
    [claimed] = await ledger.claim_outbox(at(5))
    assert claimed.attempts == 2


async def test_delivered_keeps_the_response(ledger: Ledger) -> None:
    entry = await put(ledger, kind="incident.opened")
    await ledger.claim_outbox(T0)
    done = await ledger.mark_delivered(entry.id, at(1), {"channel": CHANNEL, "ts": "17.5"})
    assert (done.status, done.delivered_at, done.response, done.lease_until) == (
        "delivered",
        at(1),
        {"channel": CHANNEL, "ts": "17.5"},
        None,
    )
    assert await ledger.claim_outbox(at(60)) == []
    assert await ledger.get_outbox_entry(entry.id) == done


async def test_dead_entries_are_audited_and_unblock_the_incident(ledger: Ledger) -> None:
    a = await incident(ledger, "a")
    first = await put(ledger, kind="incident.opened", incident_id=a.id)
    second = await put(ledger, kind="incident.updated", incident_id=a.id)
    await ledger.claim_outbox(T0)
    dead = await ledger.mark_dead(first.id, "channel_not_found", at(1))
    assert (dead.status, dead.last_error) == ("dead", "channel_not_found")
    [entry] = await ledger.list_audit(subject=f"outbox:{first.id}")
    assert (entry.action, entry.at, entry.detail["error"]) == (
        "outbox.dead",
        at(1),
        "channel_not_found",
    )
    assert [e.id for e in await ledger.claim_outbox(at(2))] == [second.id]
    assert [e.id for e in await ledger.list_outbox(incident_id=a.id, status="dead")] == [first.id]


async def test_stats(ledger: Ledger) -> None:
    assert await ledger.outbox_stats() == OutboxStats(0, 0, 0, None)
    one = await put(ledger, at(1))
    two = await put(ledger, at(2))
    await put(ledger, at(3))
    await ledger.mark_delivered(one.id, at(4))
    await ledger.mark_dead(two.id, "gone", at(4))
    assert await ledger.outbox_stats() == OutboxStats(
        pending=1, delivered=1, dead=1, oldest_pending_at=at(3)
    )


async def test_two_workers_never_claim_the_same_entry(ledger: Ledger, db_url: str) -> None:
    for i in range(40):
        await put(ledger, payload={"n": i})
    async with Ledger.from_url(db_url) as other:
        batches = await asyncio.gather(
            *(
                (ledger if i % 2 else other).claim_outbox(at(1), limit=7, lease_seconds=60)
                for i in range(8)
            )
        )
    ids = [e.id for batch in batches for e in batch]
    assert len(ids) == len(set(ids)) == 40


async def test_outbox_errors(ledger: Ledger) -> None:
    with pytest.raises(NotFound):
        await ledger.mark_delivered(404, T0)
    with pytest.raises(NotFound):
        await ledger.get_outbox_entry(404)
    with pytest.raises(NotFound, match="incident"):
        await ledger.enqueue("incident.opened", CHANNEL, {}, T0, incident_id=404)
    with pytest.raises(InvalidArgument):
        await ledger.enqueue("thread.reply", CHANNEL, {"at": T0}, T0)
    with pytest.raises(InvalidArgument):
        await ledger.claim_outbox(T0, lease_seconds=0)


async def test_a_claim_bumps_the_fence_and_only_the_holder_can_record(ledger: Ledger) -> None:
    entry = await put(ledger)
    [first] = await ledger.claim_outbox(T0, limit=1, lease_seconds=30)
    assert (first.fence, first.in_doubt) == (1, False)
    # the first worker stalls past its lease; a second one takes the entry over
    [second] = await ledger.claim_outbox(at(0.5), limit=1, lease_seconds=30)
    assert (second.id, second.fence, second.in_doubt) == (entry.id, 2, True)
    for late in (
        ledger.mark_delivered(entry.id, at(0.6), {"ts": "1.1"}, fence=first.fence),
        ledger.mark_retry(entry.id, "ratelimited", at(1), fence=first.fence),
        ledger.mark_dead(entry.id, "invalid_blocks", at(0.6), fence=first.fence),
        ledger.renew_lease(entry.id, first.fence, at(2)),
        ledger.defer(entry.id, at(2), fence=first.fence),
    ):
        with pytest.raises(LeaseLost):
            await late
    current = await ledger.get_outbox_entry(entry.id)
    assert (current.status, current.fence, current.lease_until) == ("pending", 2, at(1))
    assert await ledger.list_audit(subject=f"outbox:{entry.id}") == []
    done = await ledger.mark_delivered(entry.id, at(0.7), {"ts": "1.2"}, fence=second.fence)
    assert (done.status, done.response, done.in_doubt) == ("delivered", {"ts": "1.2"}, False)
    with pytest.raises(LeaseLost):  # settled: even the holder cannot record twice
        await ledger.mark_delivered(entry.id, at(0.8), {"ts": "1.3"}, fence=second.fence)


async def test_a_renewed_lease_keeps_others_out(ledger: Ledger) -> None:
    entry = await put(ledger)
    [held] = await ledger.claim_outbox(T0, limit=1, lease_seconds=60)
    renewed = await ledger.renew_lease(entry.id, held.fence, at(2))
    assert renewed.lease_until == at(2)
    assert await ledger.claim_outbox(at(1.5)) == []  # past the first lease, inside the new
    [taken] = await ledger.claim_outbox(at(2))
    assert taken.fence == held.fence + 1


async def test_a_settled_entry_is_not_in_doubt_when_claimed_again(ledger: Ledger) -> None:
    entry = await put(ledger)
    [claimed] = await ledger.claim_outbox(T0)
    await ledger.mark_retry(entry.id, "HTTP 503", at(1), fence=claimed.fence)
    [again] = await ledger.claim_outbox(at(1))
    assert again.in_doubt is False  # a definite failure: nothing reached Slack
    await ledger.mark_retry(entry.id, "TimeoutError", at(2), fence=again.fence, in_doubt=True)
    [third] = await ledger.claim_outbox(at(2))
    assert (third.in_doubt, third.attempts) == (True, 3)


async def test_a_deferred_entry_does_not_count_the_attempt(ledger: Ledger) -> None:
    entry = await put(ledger)
    [claimed] = await ledger.claim_outbox(T0)
    deferred = await ledger.defer(entry.id, at(0.5), fence=claimed.fence)
    assert (deferred.attempts, deferred.next_attempt_at, deferred.lease_until) == (
        0,
        at(0.5),
        None,
    )
    assert await ledger.claim_outbox(at(0.4)) == []
    [again] = await ledger.claim_outbox(at(0.5))
    assert (again.attempts, again.in_doubt) == (1, False)


async def test_a_delivery_records_the_message_and_queues_its_follow_ups_at_once(
    ledger: Ledger,
) -> None:
    a = await incident(ledger, "a")
    opened = await put(ledger, kind="incident.opened", incident_id=a.id)
    [claimed] = await ledger.claim_outbox(T0)
    chart = FollowUp("alert.chart", CHANNEL, {"incident_id": a.id}, f"outbox:{opened.id}:chart")
    await ledger.mark_delivered(
        opened.id,
        at(1),
        {"channel": "C_ID", "ts": "17.5"},
        fence=claimed.fence,
        incident_message=(a.id, "C_ID", "17.5"),
        then=[chart, chart],  # the dedupe key makes a repeat a no-op
    )
    assert (
        (await ledger.get_incident(a.id)).slack_channel,
        (await ledger.get_incident(a.id)).slack_ts,
    ) == (
        "C_ID",
        "17.5",
    )
    [follow] = await ledger.list_outbox(kind="alert.chart")
    assert (follow.status, follow.payload, follow.next_attempt_at, follow.incident_id) == (
        "pending",
        {"incident_id": a.id},
        at(1),
        None,
    )
    assert await ledger.delivered_channel_id(CHANNEL) == "C_ID"
    assert await ledger.delivered_channel_id("#elsewhere") is None


async def test_a_lost_lease_records_neither_message_nor_follow_up(ledger: Ledger) -> None:
    a = await incident(ledger, "a")
    opened = await put(ledger, kind="incident.opened", incident_id=a.id)
    [stale] = await ledger.claim_outbox(T0, lease_seconds=1)
    await ledger.claim_outbox(at(1))
    with pytest.raises(LeaseLost):
        await ledger.mark_delivered(
            opened.id,
            at(1),
            {"ts": "9.9"},
            fence=stale.fence,
            incident_message=(a.id, CHANNEL, "9.9"),
            then=[FollowUp("alert.chart", CHANNEL, {}, "chart")],
        )
    assert (await ledger.get_incident(a.id)).slack_ts is None
    assert await ledger.list_outbox(kind="alert.chart") == []
