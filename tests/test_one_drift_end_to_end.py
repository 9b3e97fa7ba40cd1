"""One drift, end to end, through the production code path and the sandbox's fakes:
Shopify (GraphQL) and the WMS (REST) disagree; the diff finds it; the ledger holds the
incident; the alert reaches the fake Slack through slack_sdk's real client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli.demo import DemoWorld, demo_world
from bot.slack.outbox import OutboxWorker
from connectors import ManualClock
from ledger import Ledger
from monitors.jobs import DriftDiffJob
from monitors.reconcile import run_diff
from monitors.wiring import build_systems, rules_from_config


@pytest.fixture
async def demo() -> AsyncIterator[DemoWorld]:
    async with demo_world() as d:
        yield d


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'e2e.db'}") as led:
        await led.upgrade()
        yield led


async def _diff_and_alert(demo: DemoWorld, ledger: Ledger, clock: ManualClock) -> None:
    async with httpx.AsyncClient() as client:
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        job = DriftDiffJob(
            systems,
            rules_from_config(demo.config),
            ledger,
            clock,
            channel=demo.config.slack.alerts_channel,
        )
        result = await job.run()
    assert result.run.failures == {}
    slack = AsyncWebClient(token=demo.world.slack_token, base_url=demo.world.slack_api_url)
    await OutboxWorker(ledger, slack, clock).drain()


async def test_a_drift_travels_from_the_systems_to_a_slack_alert(
    demo: DemoWorld, ledger: Ledger
) -> None:
    clock = ManualClock()
    await _diff_and_alert(demo, ledger, clock)

    [incident] = await ledger.list_incidents()
    assert (incident.kind, incident.sku, incident.location, incident.system) == (
        "oversell_risk",
        "TEE-BLK-M",
        "east",
        "shopify",
    )
    assert incident.details["expected"] == 30  # WMS pickable 28 + allocated 2
    assert incident.details["actual"] == 42  # Shopify available 40 + committed 2
    assert incident.details["truth_system"] == "wms"

    [message] = demo.world.slack.messages(demo.world.alerts_channel)
    assert message.blocks is not None
    header = message.blocks[0]
    assert header["type"] == "header"
    assert header["text"]["text"] == "Oversell risk: TEE-BLK-M at east"
    actions = next(b for b in message.blocks if b["type"] == "actions")
    assert [e.get("action_id") for e in actions["elements"]] == [
        "resync",
        "acknowledge",
        "snooze",
        "root_cause",
        "resolve",
    ]
    assert actions["elements"][0]["confirm"]["confirm"]["text"] == "Resync"
    assert "off by +12 units" in message.text

    stored = await ledger.get_incident(incident.id)
    assert (stored.slack_channel, stored.slack_ts) == (demo.world.alerts_channel, message.ts)


async def test_a_second_diff_does_not_alert_again(demo: DemoWorld, ledger: Ledger) -> None:
    clock = ManualClock()
    await _diff_and_alert(demo, ledger, clock)
    clock.advance(900)
    await _diff_and_alert(demo, ledger, clock)
    assert len(await ledger.list_incidents()) == 1
    assert len(demo.world.slack.messages(demo.world.alerts_channel)) == 1


async def test_the_alert_waits_in_the_outbox_while_slack_is_down(
    demo: DemoWorld, ledger: Ledger
) -> None:
    clock = ManualClock()
    demo.world.slack.down = True
    await _diff_and_alert(demo, ledger, clock)
    assert demo.world.slack.messages(demo.world.alerts_channel) == []

    demo.world.slack.down = False
    clock.advance(3600)
    slack = AsyncWebClient(token=demo.world.slack_token, base_url=demo.world.slack_api_url)
    report = await OutboxWorker(ledger, slack, clock).drain()
    assert len(report.delivered) == 1
    assert len(demo.world.slack.messages(demo.world.alerts_channel)) == 1


async def test_a_broken_system_is_reported_and_does_not_stop_the_diff(
    demo: DemoWorld, ledger: Ledger
) -> None:
    demo.world.wms.down = True
    clock = ManualClock()
    async with httpx.AsyncClient() as client:
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        run = await run_diff(systems, rules_from_config(demo.config), ledger)
    assert set(run.failures) == {"wms"}
    assert {lv.system for lv in run.levels} == {"shopify"}
    assert run.drifts == [], "a system that could not be read is not reported as missing"
