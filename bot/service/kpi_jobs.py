"""What the service runs for the signal chain and the weekly decision: the hop-over-SLA
check (``chain.check_seconds``), the one reminder of an open decision, and the outbox
hooks that put the chain's charts in threads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts.chain import HopAlertChart, HopTrendChart
from bot.slack.outbox import OutboxWorker
from bot.slack.verdicts import VerdictReminder
from connectors.clock import Clock
from ledger import Ledger
from monitors.chain import ChainHealthJob
from monitors.config import Config
from monitors.drift import DiffRules

#: how often an unanswered decision is looked for (the reminder itself goes out once)
REMINDER_CHECK_SECONDS = 900

Tracked = Callable[[str, Callable[[], Awaitable[object]]], Awaitable[None]]


class KpiJobs:
    """The chain check and the decision reminder, and the chain charts' outbox hooks."""

    def __init__(
        self,
        config: Config,
        rules: DiffRules,
        ledger: Ledger,
        clock: Clock,
        client: AsyncWebClient,
        outbox: OutboxWorker,
    ) -> None:
        self._config = config
        self._outbox = outbox
        self.chain = ChainHealthJob(
            config, rules, ledger, clock, channel=config.slack.alerts_channel
        )
        self.reminder = VerdictReminder(config, ledger, clock)
        outbox.on_message_posted.append(HopTrendChart(config, rules, ledger, client))
        outbox.on_alert_posted.append(HopAlertChart(config, rules, ledger, client, clock))

    async def check_chain(self) -> None:
        await self.chain.run()
        await self._outbox.deliver_due()

    async def remind(self) -> None:
        if await self.reminder.run() is not None:
            await self._outbox.deliver_due()

    def schedule(self, scheduler: AsyncIOScheduler, tracked: Tracked) -> None:
        """Add both jobs to the service's scheduler, each run tracked by the service."""

        def job(name: str, work: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                await tracked(name, work)

            return run

        for name, work, seconds in (
            ("chain-health", self.check_chain, self._config.chain.check_seconds),
            ("verdict-reminder", self.remind, REMINDER_CHECK_SECONDS),
        ):
            scheduler.add_job(
                job(name, work),
                "interval",
                seconds=seconds,
                id=name,
                max_instances=1,
                coalesce=True,
            )
