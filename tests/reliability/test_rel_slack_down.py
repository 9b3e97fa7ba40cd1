"""Guarantee 3: no incident lost. The fake Slack is down for ten minutes of an
accelerated clock while incidents open, are acknowledged, snoozed and resolve; the
outbox worker ticks every 2 s as the Service runs it. After recovery every incident and
every update is delivered, once each, in order per incident."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.service import OUTBOX_INTERVAL_SECONDS
from bot.slack.outbox import OutboxWorker
from connectors import ManualClock
from ledger import Ledger
from monitors.drift import Drift
from monitors.pipeline import Scope, build_pipeline
from sandbox.slack import FakeSlack

CHANNEL = "C0DRIFT01"
OUTAGE_SECONDS = 600


def _drift(sku: str, actual: int = 14) -> Drift:
    return Drift(
        sku=sku,
        location="east",
        system="shopify",
        kind="oversell_risk",
        truth_system="wms",
        expected=10,
        actual=actual,
        values={"shopify": actual, "wms": 10},
        observed_at={"shopify": datetime(2026, 11, 2, 9, tzinfo=UTC)},
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def slack(clock: ManualClock) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-down", clock=clock, channels={CHANNEL: "ops"}) as s:
        yield s


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'down.db'}") as led:
        await led.upgrade()
        yield led


async def test_ten_minutes_of_slack_down_loses_and_doubles_nothing(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    worker = OutboxWorker(ledger, AsyncWebClient(token="xoxb-down", base_url=slack.api_url), clock)
    pipeline = build_pipeline()
    scope = Scope(systems=frozenset({"shopify", "wms"}))
    expected_replies: dict[int, list[str]] = {}

    async def diff(skus: list[str]) -> None:
        ctx = await pipeline.run(
            ledger, [_drift(s) for s in skus], scope=scope, now=clock.now(), channel=CHANNEL
        )
        for incident in ctx.resolved:
            expected_replies.setdefault(incident.id, []).append(
                "Recovered: every system agrees with the source of truth again."
            )

    async def update(sku: str, reply: str) -> None:
        [incident] = await ledger.list_incidents(sku=sku)
        await ledger.acknowledge(incident.id, "U0OPS001", clock.now())
        await ledger.enqueue(
            "incident.updated",
            CHANNEL,
            {"incident_id": incident.id, "reply": reply},
            clock.now(),
            incident_id=incident.id,
        )
        expected_replies.setdefault(incident.id, []).append(reply)

    # What happens while Slack is down, by second of the outage.
    events = {
        0: lambda: diff(["SKU-1", "SKU-2", "SKU-3", "SKU-4"]),
        60: lambda: update("SKU-1", "Acknowledged by <@U0OPS001>"),
        90: lambda: update("SKU-1", "Resync requested by <@U0OPS001>"),
        120: lambda: diff(["SKU-2", "SKU-3", "SKU-4", "SKU-5", "SKU-6"]),  # SKU-1 recovers
        300: lambda: update("SKU-2", "Snoozed for 1 hour by <@U0OPS001>"),
        598: lambda: diff(["SKU-2", "SKU-3", "SKU-4", "SKU-5", "SKU-6", "SKU-7"]),
    }
    slack.down = True
    elapsed = 0.0
    while elapsed < OUTAGE_SECONDS:
        if int(elapsed) in events:
            await events.pop(int(elapsed))()
        await worker.deliver_due()
        clock.advance(OUTBOX_INTERVAL_SECONDS)
        elapsed += OUTBOX_INTERVAL_SECONDS
    assert events == {}
    assert slack.messages(CHANNEL) == [], "Slack was down: nothing could arrive"
    assert slack.calls("chat.postMessage"), "the worker kept trying"

    slack.down = False
    recovery = 0.0
    while (await ledger.outbox_stats()).pending and recovery < OUTAGE_SECONDS:
        await worker.deliver_due()
        clock.advance(OUTBOX_INTERVAL_SECONDS)
        recovery += OUTBOX_INTERVAL_SECONDS

    stats = await ledger.outbox_stats()
    assert (stats.pending, stats.dead) == (0, 0)
    incidents = {i.id: i for i in await ledger.list_incidents(limit=100)}
    assert len(incidents) == 7
    top = slack.messages(CHANNEL)
    assert len(top) == 7, "each incident posted once"
    assert sorted(m.ts for m in top) == sorted(i.slack_ts for i in incidents.values())
    for incident in incidents.values():
        assert incident.slack_ts is not None
        thread = slack.thread(CHANNEL, incident.slack_ts)
        done = "Resolved: " if incident.status == "resolved" else ""
        assert thread[0].text.startswith(f"{done}Oversell risk: {incident.sku} at east")
        replies = [m.text for m in thread[1:]]
        assert replies == expected_replies.get(incident.id, []), (incident.sku, replies)
    resolved = incidents[next(i for i in incidents if incidents[i].sku == "SKU-1")]
    assert resolved.status == "resolved"
    [alert] = [m for m in top if m.ts == resolved.slack_ts]
    assert alert.edited, "the alert shows it resolved"
    print(f"recovered {recovery:.0f} s (clock) after Slack came back")
