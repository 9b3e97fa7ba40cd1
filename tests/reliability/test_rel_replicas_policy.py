"""The auto-resync policy with two replicas on one PostgreSQL (issue 15, item 3): one
decision per incident opening, and another replica's in-flight resync is "in progress",
not "did not finish". Each replica is its own ledger, connectors and diff job over the
same fake Shopify and WMS; "alive" is its heartbeat row."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from reliability_testing import postgres_url

from bot.cli.demo import DemoWorld, demo_config, demo_world
from connectors import ManualClock
from ledger import LEASE_TTL_SECONDS, SYSTEM_ACTOR, Incident, Ledger
from monitors.assemble import after_diff_hooks
from monitors.config import Config, config_from_dict
from monitors.jobs import DriftDiffJob
from monitors.resync import ResyncService
from monitors.wiring import build_systems, rules_from_config

pytestmark = pytest.mark.postgres


@dataclass
class Pair:
    demo: DemoWorld
    config: Config
    ledgers: list[Ledger]
    jobs: list[DriftDiffJob]
    clock: ManualClock

    async def beat(self, *ledgers: Ledger) -> None:
        for ledger in ledgers:
            await ledger.heartbeat(ledger.replica_id, self.clock.now(), host="test", pid=1)

    async def mug(self) -> Incident:
        [incident] = await self.ledgers[0].list_incidents(sku="MUG-STONE")
        return incident

    async def policy_audit(self, incident_id: int) -> list[str]:
        entries = await self.ledgers[0].list_audit(subject=f"incident:{incident_id}")
        return [e.action for e in reversed(entries) if e.action.startswith("policy.")]

    def writes(self) -> int:
        return len(self.demo.world.shopify.writes)


@contextlib.asynccontextmanager
async def pair() -> AsyncIterator[Pair]:
    clock = ManualClock()
    async with (
        postgres_url() as url,
        demo_world() as demo,
        httpx.AsyncClient() as client,
        Ledger.from_url(url) as first,
        Ledger.from_url(url) as second,
    ):
        await first.upgrade()
        raw: dict[str, Any] = demo_config(demo.world)
        raw["policy"] = {"auto_resync": True, "auto_resync_max_units": 5}
        config = config_from_dict(raw)
        jobs = []
        for ledger in (first, second):
            systems = build_systems(config, client=client, clock=clock, environ=demo.environ)
            rules = rules_from_config(config)
            resync = ResyncService(systems, rules, ledger, clock)
            jobs.append(
                DriftDiffJob(
                    systems,
                    rules,
                    ledger,
                    clock,
                    channel=config.slack.alerts_channel,
                    after=after_diff_hooks(config, ledger, resync, clock),
                )
            )
        result = Pair(demo, config, [first, second], jobs, clock)
        await result.beat(first, second)
        gid = demo.world.locations["west"][0]
        demo.world.shopify.set_quantities("MUG-STONE", gid, available=33)  # WMS says 30
        yield result


async def test_two_replicas_diffing_at_once_decide_an_opening_once() -> None:
    async with pair() as p:
        await asyncio.gather(p.jobs[0].run(), p.jobs[1].run())
        mug = await p.mug()
        assert p.writes() == 1
        assert await p.policy_audit(mug.id) == ["policy.applied"]
        assert mug.details["policy"]["outcome"] == "applied"
        # and again, both, later: nothing more
        p.clock.advance(60)
        await asyncio.gather(p.jobs[0].run(), p.jobs[1].run())
        assert p.writes() == 1
        assert await p.policy_audit(mug.id) == ["policy.applied"]
        queued = await p.ledgers[0].list_outbox(incident_id=mug.id, kind="incident.updated")
        replies = [e for e in queued if "Auto-resynced" in str(e.payload.get("reply"))]
        assert len(replies) == 1


async def test_another_live_replicas_resync_is_in_progress_not_unfinished() -> None:
    async with pair() as p:
        first, second = p.ledgers
        # the first replica's policy opened nothing yet: the incident comes from a diff
        # with the policy's claim and resync in flight on the first replica
        p.demo.world.shopify.writes.clear()
        await p.jobs[1].run(after_hooks=False)
        mug = await p.mug()
        await first.claim_tick("policy", f"incident:{mug.id}", "0", first.replica_id, p.clock.now())
        await first.create_resync(
            "dw-in-flight", "shopify", "MUG-STONE", "west", "available", 30, SYSTEM_ACTOR,
            p.clock.now(), incident_id=mug.id, before=33,
        )  # fmt: skip
        await p.jobs[1].run()
        mug = await p.mug()
        assert "policy" not in mug.details  # nothing shown: it is the other replica's
        assert await p.policy_audit(mug.id) == []
        assert p.writes() == 0
        # the first replica dies (no more heartbeats): now it did not finish
        p.clock.advance(LEASE_TTL_SECONDS + 1)
        await p.beat(second)
        await p.jobs[1].run()
        mug = await p.mug()
        assert mug.details["policy"]["outcome"] == "escalated"
        assert "did not finish" in mug.details["policy"]["reasons"][0]
        assert p.writes() == 0


async def test_a_claim_left_by_a_replica_that_died_before_writing_is_taken_over() -> None:
    async with pair() as p:
        first, second = p.ledgers
        await p.jobs[1].run(after_hooks=False)
        mug = await p.mug()
        await first.claim_tick("policy", f"incident:{mug.id}", "0", first.replica_id, p.clock.now())
        p.clock.advance(LEASE_TTL_SECONDS + 1)
        await p.beat(second)
        await p.jobs[1].run()
        mug = await p.mug()
        assert p.writes() == 1
        assert mug.details["policy"]["outcome"] == "applied"
        assert await second.claim_holder("policy", f"incident:{mug.id}", "0") == (second.replica_id)


async def test_a_start_does_not_settle_a_live_replicas_resync() -> None:
    """A replica starting while another's resync is in flight leaves it to that one."""
    from monitors.settle import ResyncSettler

    async with pair() as p:
        first, second = p.ledgers
        made, _ = await first.create_resync(
            "dw-flying", "shopify", "MUG-STONE", "west", "available", 30, "U0OPS001",
            p.clock.now(), before=33,
        )  # fmt: skip
        systems = build_systems(
            p.config, client=httpx.AsyncClient(), clock=p.clock, environ=p.demo.environ
        )
        resync = ResyncService(systems, rules_from_config(p.config), second, p.clock)
        settler = ResyncSettler(resync, second, p.clock, p.config.slack.alerts_channel)
        assert await settler.pending_ids() == set()
        p.clock.advance(LEASE_TTL_SECONDS + 1)  # the first replica died
        assert await settler.pending_ids() == {made.id}
