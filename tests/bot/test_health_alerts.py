"""A sync-health incident reaches Slack with its facts and no Resync button."""

from __future__ import annotations

from pathlib import Path

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli.demo import demo_world
from bot.slack.outbox import OutboxWorker
from connectors import ManualClock
from ledger import Ledger
from monitors.jobs import HealthJob
from monitors.reconcile import read_all
from monitors.wiring import build_systems


async def test_a_failing_wms_is_posted_with_its_last_error(tmp_path: Path) -> None:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'h.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        job = HealthJob(systems, ledger, clock, channel=demo.world.alerts_channel, sla_seconds={})
        demo.world.wms.down = True
        for _ in range(3):
            await read_all(systems)
        await job.run()
        slack = AsyncWebClient(token=demo.world.slack_token, base_url=demo.world.slack_api_url)
        await OutboxWorker(ledger, slack, clock).drain()

        [message] = demo.world.slack.messages(demo.world.alerts_channel)
    assert message.text == "wms: 3 reads in a row failed"
    assert message.blocks is not None
    text = str(message.blocks)
    assert "HTTP 503" in text
    actions = next(b for b in message.blocks if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == [
        "acknowledge",
        "snooze",
        "root_cause",
        "resolve",
    ]
