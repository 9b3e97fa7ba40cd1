"""Several replicas of the real Service on one PostgreSQL schema, in one process, over
one demo world (one fake Shopify, WMS and Slack), on one injected clock.

A replica "dies" the way ``kill -9`` looks from the database: it stops heartbeating
(its timers are paused anyway) and the clock moves past the lease TTL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from reliability_testing import SECRET, postgres_url

from bot.cli.demo import DemoWorld, demo_config, demo_world
from bot.service import Service
from connectors import ManualClock
from ledger import Ledger
from monitors.config import config_from_dict
from sandbox.slack import FakeSlack


@dataclass
class Replicas:
    demo: DemoWorld
    services: list[Service]
    clock: ManualClock
    url: str

    @property
    def slack(self) -> FakeSlack:
        return self.demo.world.slack

    @property
    def channel(self) -> str:
        return self.demo.world.alerts_channel

    async def beat(self, *services: Service) -> None:
        """Heartbeat (renew, rebalance, take over) on ``services`` (default: all)."""
        for service in services or self.services:
            await service.coordinator.beat()

    async def tick(self, job: str, *services: Service) -> None:
        """Every replica's timer of ``job`` fires (as the scheduler would)."""
        for service in services or self.services:
            await service.run_job(job, scheduled=True)
        for service in services or self.services:
            await service.idle()

    def runs(self, job: str) -> int:
        """Completed runs of ``job`` summed over the replicas."""
        return sum(int(s.job_runs.labels(job, "ok")._value.get()) for s in self.services)

    def alerts(self, containing: str = "") -> int:
        """Top-level messages posted in the alerts channel (with ``containing``)."""
        return sum(
            1
            for m in self.slack.messages(self.channel)
            if (m.thread_ts is None or m.thread_ts == m.ts) and containing in m.text
        )


#: the timers' interval in these tests (the demo's hour would take many heartbeats)
INTERVAL_SECONDS = 30


def second_store(raw: dict[str, Any]) -> None:
    """A second Shopify store, ``shop2``, in the configuration (it reads the same fake
    shop under another name, without webhooks)."""
    [shopify] = [s for s in raw["systems"] if s["name"] == "shopify"]
    shop2 = {k: v for k, v in shopify.items() if k != "webhook_secret_env"}
    shop2["name"] = "shop2"
    raw["systems"].append(shop2)
    for location in raw["locations"].values():
        location["shop2"] = location["shopify"]


@contextlib.asynccontextmanager
async def replicas(count: int = 3, *, stores: int = 1) -> AsyncIterator[Replicas]:
    """``count`` started Services (timers paused) on one fresh PostgreSQL schema, their
    diff and health timers every :data:`INTERVAL_SECONDS`; ``stores``: 1 or 2 Shopify
    stores."""
    clock = ManualClock()
    async with (
        postgres_url() as url,
        demo_world() as demo,
        httpx.AsyncClient() as http,
        contextlib.AsyncExitStack() as stack,
    ):
        demo.world.slack.clock = clock
        demo.world.slack.ws.clock = clock
        environ = {**demo.environ, "DEMO_SLACK_SIGNING_SECRET": SECRET}
        raw = demo_config(demo.world)
        raw["schedules"].update(full_diff_seconds=INTERVAL_SECONDS, health_seconds=INTERVAL_SECONDS)
        if stores == 2:
            second_store(raw)
        demo = DemoWorld(demo.world, config_from_dict(raw), demo.environ)
        services: list[Service] = []
        for n in range(count):
            ledger = await stack.enter_async_context(Ledger.from_url(url))
            if n == 0:
                await ledger.upgrade()
            service = Service(demo.config, environ, ledger, clock=clock, http=http)
            await service.start(host="127.0.0.1", port=0, schedule=False)
            stack.push_async_callback(service.stop)
            services.append(service)
        yield Replicas(demo, services, clock, url)
