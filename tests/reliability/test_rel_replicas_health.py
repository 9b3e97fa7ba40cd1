"""Sync health with three replicas on one PostgreSQL (issue 15, items 1 and 5): 20
forced 429s that all land on one replica make one health alert, judged by the health
job's lease holder from every replica's counters, and the incident neither flaps nor
ends early when the holder is killed (the next holder continues from the window it
kept)."""

from __future__ import annotations

import pytest
from replicas_testing import INTERVAL_SECONDS, Replicas, replicas

from bot.service import Service
from ledger import HEARTBEAT_SECONDS, Incident
from monitors.reconcile import read_all

pytestmark = pytest.mark.postgres

FINGERPRINT = "health:rate_limited:shopify"


async def advance(group: Replicas, seconds: float, alive: list[Service]) -> None:
    left = seconds
    while left > 0:
        step = min(HEARTBEAT_SECONDS, left)
        group.clock.advance(step)
        left -= step
        for service in alive:
            await service._heartbeat()


async def rate_limited(group: Replicas) -> list[Incident]:
    incidents = await group.services[0].ledger.list_incidents(limit=100)
    return [i for i in incidents if i.fingerprint == FINGERPRINT]


def holder_of(job: str, services: list[Service]) -> Service:
    [holder] = [s for s in services if s.coordinator.holds(job)]
    return holder


async def test_429s_on_one_replica_make_one_alert_that_survives_its_holders_death() -> None:
    async with replicas(3) as group:
        alive = list(group.services)
        await advance(group, HEARTBEAT_SECONDS, alive)
        await group.tick("health")  # the baseline sample
        holder = holder_of("health", alive)
        [unlucky, *_] = [s for s in alive if s is not holder]
        shopify = group.demo.world.shopify
        shopify.force_http_429(20, retry_after=0.01)
        [connector] = [s for s in unlucky.systems if s.name == "shopify"]
        for _ in range(40):
            if connector.health().throttles >= 20:
                break
            await read_all(unlucky.systems)
        assert connector.health().throttles == 20
        await advance(group, HEARTBEAT_SECONDS, alive)
        for _ in range(3):  # a minute and a half of health ticks on every replica
            await group.tick("health", *alive)
            await advance(group, INTERVAL_SECONDS, alive)
        [incident] = await rate_limited(group)
        assert (incident.status, incident.reopened_count) == ("open", 0)
        assert incident.details["throttles_in_window"] == 20

        # the holder is killed: the next one takes its lease and its window
        holder = holder_of("health", alive)
        alive.remove(holder)
        await advance(group, 20, alive)
        successor = holder_of("health", alive)
        await group.tick("health", *alive)
        [incident] = await rate_limited(group)
        assert (incident.status, incident.reopened_count) == ("open", 0)
        assert int(successor.job_runs.labels("health", "ok")._value.get()) >= 1

        await group.tick("outbox", *alive)
        assert group.alerts("rate limited") == 1
        [posted] = await rate_limited(group)
        assert posted.slack_ts is not None
        replies = group.slack.thread(group.channel, posted.slack_ts)[1:]
        assert [m.text for m in replies if "again" in m.text or "ecovered" in m.text] == []
