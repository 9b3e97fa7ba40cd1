"""The production Service over the demo world (fake Shopify, WMS and Slack), with a
ledger seeded with three weeks of history, for the KPI, chain, decision and Home tests.

Time: the service's clock is a ManualClock on Monday 16 November 2026, 09:00 UTC. The
seeded history starts Monday 2 November at midnight, so that week is the baseline and
the week of 9 November is the one the weekly summary reviews. Slack itself keeps the
wall clock (a signed request's timestamp must be near the receiver's time).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bot.cli.demo import DemoWorld, demo_config, demo_world
from bot.service import Service
from connectors import ManualClock
from ledger import Ledger, LevelObservation
from monitors.config import config_from_dict
from sandbox.slack import Call, FakeSlack, Message

START = datetime(2026, 11, 16, 9, tzinfo=UTC)
BASELINE = date(2026, 11, 2)
WEEK = date(2026, 11, 9)
WRITER, ONCALL, VIEWER = "U0OPS001", "U0ONCALL1", "U0VIEWER1"


def day(n: float, hour: float = 0) -> datetime:
    """Midnight of 2 November plus ``n`` days and ``hour`` hours."""
    return datetime(2026, 11, 2, tzinfo=UTC) + timedelta(days=n, hours=hour)


def level(system: str, sku: str, quantity: int, when: datetime) -> list[LevelObservation]:
    return [
        LevelObservation(system, sku, "east", "available", quantity, when, "poll"),
        LevelObservation(system, sku, "east", "committed", 0, when, "poll"),
    ]


async def seed_history(ledger: Ledger) -> None:
    """Two weeks of a SKU moving through wms → shopify, incidents and shrinkage.

    HIST-1: the baseline week's changes reach the storefront in 2 minutes; the reviewed
    week's in 30 minutes, and its last change (day 13) never arrives.
    """
    await ledger.record_levels(level("wms", "HIST-1", 100, day(0)))
    await ledger.record_levels(level("shopify", "HIST-1", 100, day(0)))
    quantity = 100
    for n in range(1, 7):
        quantity -= 5
        await ledger.record_levels(level("wms", "HIST-1", quantity, day(n, 10)))
        await ledger.record_levels(level("shopify", "HIST-1", quantity, day(n, 10 + 2 / 60)))
    for n in range(7, 13):
        quantity -= 5
        await ledger.record_levels(level("wms", "HIST-1", quantity, day(n, 10)))
        await ledger.record_levels(level("shopify", "HIST-1", quantity, day(n, 10.5)))
    await ledger.record_levels(level("wms", "HIST-1", quantity - 5, day(13, 10)))
    for i in range(3):  # the baseline week: three oversells
        await ledger.open_incident(
            f"test:base:{i}", "oversell_risk", "warning", "oversell", day(i + 1), sku="HIST-1",
            location="east",
        )  # fmt: skip
    await ledger.open_incident(
        "test:week:1", "oversell_risk", "warning", "oversell", day(9), sku="HIST-1",
        location="east",
    )  # fmt: skip
    shrink, _ = await ledger.record_adjustment(
        "shrink-1", "HIST-1", "east", "wms", "shrinkage", WRITER, day(10), delta=-2
    )
    await ledger.settle_adjustment(shrink.id, "applied", day(10))  # only applied ones count


@dataclass
class KpiBot:
    demo: DemoWorld
    ledger: Ledger
    service: Service
    clock: ManualClock

    @property
    def slack(self) -> FakeSlack:
        return self.demo.world.slack

    @property
    def channel(self) -> str:
        return self.demo.world.alerts_channel

    async def settle(self) -> None:
        """Let every spawned answer finish and deliver what it queued."""
        await self.service.idle()
        await self.service.outbox.drain()
        await self.service.idle()

    async def wait_for(self, predicate: Callable[[Call], bool]) -> Call:
        async with asyncio.timeout(30):
            return await self.slack.wait_for_call(predicate)

    def messages(self) -> list[Message]:
        return self.slack.messages(self.channel)

    def told(self, user: str) -> list[str]:
        return [e.text for e in self.slack.ephemerals if e.user == user]


@contextlib.asynccontextmanager
async def kpi_bot(
    db: str,
    seed: Callable[[Ledger], Awaitable[None]] | None = seed_history,
    config: Mapping[str, Any] | None = None,
) -> AsyncIterator[KpiBot]:
    clock = ManualClock(START)
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{db}") as ledger,
    ):
        if config:
            data = demo_config(demo.world)
            data.update(config)
            demo.config = config_from_dict(data)
        await ledger.upgrade()
        # Slack paces posts per channel in real time; these tests post bursts (a summary,
        # its charts, replies) on a manual clock and are not about pacing
        demo.world.slack.post_burst = 1000
        if seed is not None:
            await seed(ledger)
        service = Service(demo.config, demo.environ, ledger, clock=clock)
        url = await service.start(host="127.0.0.1", port=0)
        demo.world.slack.interactivity_url = f"{url}/slack/events"
        try:
            async with asyncio.timeout(30):
                await service.diff_done.wait()
            bot = KpiBot(demo, ledger, service, clock)
            await bot.settle()
            yield bot
        finally:
            await service.stop()
