"""Heartbeats, job leases with fencing tokens, and tick claims (ledger/coordination.py),
on SQLite and PostgreSQL; several ledgers on one database play several replicas."""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import pytest
from ledger_testing import at

from ledger import LEASE_TTL_SECONDS, HealthCounters, LeaseLost, Ledger

TTL = LEASE_TTL_SECONDS


async def test_a_lease_is_held_by_one_replica_until_it_runs_out(ledger: Ledger) -> None:
    first = await ledger.acquire_lease("drift-diff", "all", "a", at(0))
    assert first is not None
    assert first.taken
    assert first.previous is None
    assert first.lease.token == 1
    # the same replica renews (same token); another is refused while it holds
    again = await ledger.acquire_lease("drift-diff", "all", "a", at(0.1))
    assert again is not None
    assert not again.taken
    assert again.lease.token == 1
    assert await ledger.acquire_lease("drift-diff", "all", "b", at(0.2)) is None
    # a's lease runs out (it died: no renewal): b takes over, the token moves on
    later = at(0.1 + (TTL + 1) / 60)
    taken = await ledger.acquire_lease("drift-diff", "all", "b", later)
    assert taken is not None
    assert taken.taken
    assert taken.previous == "a"
    assert taken.lease.token == 2
    # a stalled holder's renewal cannot bring its lease back
    assert await ledger.renew_leases("a", later) == []
    [lease] = await ledger.list_leases("drift-diff")
    assert (lease.holder, lease.token) == ("b", 2)


async def test_a_stale_holders_claim_is_refused_by_its_fencing_token(ledger: Ledger) -> None:
    a = await ledger.acquire_lease("health", "all", "a", at(0))
    assert a is not None
    assert await ledger.claim_tick("health", "all", "1", "a", at(0), token=a.lease.token)
    b = await ledger.acquire_lease("health", "all", "b", at(1))
    assert b is not None
    assert b.lease.token == a.lease.token + 1
    with pytest.raises(LeaseLost):
        await ledger.claim_tick("health", "all", "2", "a", at(1), token=a.lease.token)
    assert await ledger.claim_holder("health", "all", "2") is None  # nothing written
    assert await ledger.claim_tick("health", "all", "2", "b", at(1), token=b.lease.token)
    assert await ledger.claim_holder("health", "all", "2") == "b"


async def test_a_tick_is_claimed_once_and_the_same_event_twice_is_refused(
    ledger: Ledger,
) -> None:
    assert await ledger.claim_tick("daily-adjustments", "all", "2026-11-02", "a", at(0))
    assert not await ledger.claim_tick("daily-adjustments", "all", "2026-11-02", "b", at(0))
    assert not await ledger.claim_tick("daily-adjustments", "all", "2026-11-02", "a", at(0))
    assert await ledger.claim_holder("daily-adjustments", "all", "2026-11-02") == "a"
    await ledger.release_claim("daily-adjustments", "all", "2026-11-02", "b")  # not b's
    assert await ledger.claim_holder("daily-adjustments", "all", "2026-11-02") == "a"
    await ledger.release_claim("daily-adjustments", "all", "2026-11-02", "a")
    assert await ledger.claim_holder("daily-adjustments", "all", "2026-11-02") is None


async def test_claims_race_safely_across_replicas(db_url: str, ledger: Ledger) -> None:
    """A storm: three ledgers (replicas) claim the same 30 ticks at once."""
    ledgers = [Ledger.from_url(db_url) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(
                lg.claim_tick("drift-diff", "all", str(tick), f"r{i}", at(0))
                for tick in range(30)
                for i, lg in enumerate(ledgers)
            )
        )
    finally:
        for lg in ledgers:
            await lg.close()
    assert sum(results) == 30


async def test_fifty_stores_spread_over_three_replicas(db_url: str, ledger: Ledger) -> None:
    units = [f"store-{n:02}" for n in range(50)]
    replicas = ["a", "b", "c"]
    for r in replicas:
        await ledger.heartbeat(r, at(0), host="h", pid=1)
    live = await ledger.live_replicas(at(0))
    share = math.ceil(len(units) / len(live))
    ledgers = [Ledger.from_url(db_url) for _ in replicas]
    try:

        async def take(lg: Ledger, replica: str) -> None:
            for unit in units:
                await lg.acquire_lease("drift-diff", unit, replica, at(0), cap=share)

        await asyncio.gather(*(take(lg, r) for lg, r in zip(ledgers, replicas, strict=True)))
    finally:
        for lg in ledgers:
            await lg.close()
    holders = Counter(lease.holder for lease in await ledger.list_leases("drift-diff"))
    assert sum(holders.values()) == 50
    assert None not in holders
    assert set(holders) == set(replicas)
    assert max(holders.values()) <= share == 17


async def test_a_replica_is_alive_while_it_heartbeats(ledger: Ledger) -> None:
    await ledger.heartbeat("a", at(0), host="h", pid=1)
    await ledger.heartbeat("b", at(0), host="h", pid=2)
    assert await ledger.live_replicas(at(0.1)) == ["a", "b"]
    await ledger.heartbeat("b", at(0.2), host="h", pid=2)
    # a stopped heartbeating: dead once the TTL passed since its last heartbeat
    after = at((TTL + 1) / 60)
    assert await ledger.live_replicas(after) == ["b"]
    assert not await ledger.replica_alive("a", after)
    # b stops cleanly: dead at once, and its leases are free
    await ledger.acquire_lease("health", "all", "b", at(0.2))
    await ledger.stop_replica("b", at(0.25))
    assert await ledger.live_replicas(at(0.25)) == []
    [lease] = await ledger.list_leases("health")
    assert lease.holder is None
    got = await ledger.acquire_lease("health", "all", "c", at(0.26))
    assert got is not None
    assert got.previous is None


async def test_a_replica_takes_no_more_than_its_share(ledger: Ledger) -> None:
    for unit in ("s1", "s2"):
        assert await ledger.acquire_lease("drift-diff", unit, "a", at(0), cap=2)
    assert await ledger.acquire_lease("drift-diff", "s3", "a", at(0), cap=2) is None
    # renewing what it holds is never refused by the share
    assert await ledger.acquire_lease("drift-diff", "s1", "a", at(0.1), cap=1)
    lease = (await ledger.list_leases("drift-diff"))[0]
    assert await ledger.release_lease("drift-diff", lease.unit, "a", lease.token)
    assert not await ledger.release_lease("drift-diff", lease.unit, "a", lease.token)


async def test_hostile_names_are_stored_as_they_are(ledger: Ledger) -> None:
    unit = "store'; DROP TABLE job_leases; --\u00e9"
    got = await ledger.acquire_lease("drift-diff", unit, "r'\"", at(0))
    assert got is not None
    assert await ledger.claim_tick("drift-diff", unit, "t", "r'\"", at(0), token=1)
    assert [lease.unit for lease in await ledger.list_leases()] == [unit]


async def test_old_tick_claims_are_pruned_but_policy_decisions_stay(ledger: Ledger) -> None:
    await ledger.claim_tick("health", "all", "1", "a", at(0))
    await ledger.claim_tick("policy", "incident:1", "0", "a", at(0))
    assert await ledger.prune_claims(at(10)) == 1
    assert await ledger.claim_holder("health", "all", "1") is None
    assert await ledger.claim_holder("policy", "incident:1", "0") == "a"


async def test_replicas_reserving_slots_at_once_get_one_second_apart(
    db_url: str, ledger: Ledger
) -> None:
    ledgers = [Ledger.from_url(db_url) for _ in range(3)]
    try:
        slots = await asyncio.gather(
            *(lg.reserve_slot("C0ALERTS", at(0), 1.0, 10.0) for lg in ledgers for _ in range(3))
        )
    finally:
        for lg in ledgers:
            await lg.close()
    assert sorted((s - at(0)).total_seconds() for s in slots) == [float(n) for n in range(9)]
    # past the longest wait, a slot is told but not taken
    far = await ledger.reserve_slot("C0ALERTS", at(0), 1.0, 5.0)
    assert (far - at(0)).total_seconds() == 9.0
    assert await ledger.reserve_slot("C0ALERTS", at(0), 1.0, 10.0) == far
    # another channel has its own pace
    assert await ledger.reserve_slot("C0OTHER", at(0), 1.0, 10.0) == at(0)


async def test_a_retry_after_holds_the_channel_for_every_replica(ledger: Ledger) -> None:
    await ledger.hold_channel("C0ALERTS", at(1))
    assert await ledger.reserve_slot("C0ALERTS", at(0), 1.0, 120.0) == at(1)
    await ledger.hold_channel("C0ALERTS", at(0.5))  # an earlier hold moves nothing back
    assert await ledger.reserve_slot("C0ALERTS", at(0), 1.0, 120.0) == at(1 + 1 / 60)


async def test_a_jobs_state_is_written_only_under_the_current_token(ledger: Ledger) -> None:
    a = await ledger.acquire_lease("health", "all", "a", at(0))
    assert a is not None
    await ledger.save_job_state("health", "all", "a", a.lease.token, {"n": 1}, at(0))
    b = await ledger.acquire_lease("health", "all", "b", at(1))
    assert b is not None
    assert await ledger.load_job_state("health", "all") == {"n": 1}  # b continues from it
    with pytest.raises(LeaseLost):  # a woke up late: it cannot overwrite b's state
        await ledger.save_job_state("health", "all", "a", a.lease.token, {"n": 99}, at(1))
    await ledger.save_job_state("health", "all", "b", b.lease.token, {"n": 2}, at(1))
    assert await ledger.load_job_state("health", "all") == {"n": 2}
    assert await ledger.load_job_state("drift-diff", "all") is None


async def test_every_replicas_connector_counters_are_kept(ledger: Ledger) -> None:
    def counters(throttles: int) -> HealthCounters:
        return HealthCounters("shopify", 40, throttles, throttles, 0, 0, at(0), None, None)

    await ledger.publish_health("a", [counters(3)], at(0))
    await ledger.publish_health("b", [counters(20)], at(0))
    await ledger.publish_health("a", [counters(5)], at(1))  # a's counters grew
    kept = {replica: c.throttles for replica, c in await ledger.replica_health()}
    assert kept == {"a": 5, "b": 20}
