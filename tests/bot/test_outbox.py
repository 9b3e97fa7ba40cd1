"""The outbox against the fake Slack: paced by Slack's rate limit, patient with errors a
person must fix, and never losing or reordering an incident's messages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbox import ATTENTION_RETRY_SECONDS, OutboxWorker
from connectors import ManualClock
from ledger import Ledger
from monitors.drift import Drift
from monitors.pipeline import Context, Scope, build_pipeline
from sandbox.slack import FakeSlack

CHANNEL = "C0DRIFT01"


def _drift(sku: str) -> Drift:
    return Drift(
        sku=sku,
        location="east",
        system="shopify",
        kind="oversell_risk",
        truth_system="wms",
        expected=10,
        actual=14,
        values={"shopify": 14, "wms": 10},
        observed_at={"shopify": datetime(2026, 11, 2, 9, tzinfo=UTC)},
    )


async def raise_incidents(
    found: list[Drift], ledger: Ledger, *, channel: str, at: datetime
) -> Context:
    return await build_pipeline().run(
        ledger, found, scope=Scope(systems=frozenset({"shopify", "wms"})), now=at, channel=channel
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def slack(clock: ManualClock) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-outbox", clock=clock, channels={CHANNEL: "ops"}) as s:
        yield s


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'outbox.db'}") as led:
        await led.upgrade()
        yield led


def _worker(ledger: Ledger, slack: FakeSlack, clock: ManualClock) -> OutboxWorker:
    return OutboxWorker(ledger, AsyncWebClient(token="xoxb-outbox", base_url=slack.api_url), clock)


async def test_a_burst_is_paced_by_retry_after_and_all_arrive(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    await raise_incidents(
        [_drift(f"SKU-{i}") for i in range(6)], ledger, channel=CHANNEL, at=clock.now()
    )
    worker = _worker(ledger, slack, clock)

    first = await worker.deliver_due()
    assert len(first.delivered) == 3  # the fake's burst allowance
    assert {reason for _, reason in first.retried} == {"ratelimited"}

    for _ in range(10):
        clock.advance(1.0)
        await worker.deliver_due()
    texts = [m.text for m in slack.messages(CHANNEL)]
    assert len(texts) == 6
    assert len(set(texts)) == 6, "each incident posted exactly once"


async def test_an_error_a_person_must_fix_keeps_the_alert_until_fixed(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    await raise_incidents([_drift("SKU-1")], ledger, channel=CHANNEL, at=clock.now())
    slack.force_error("chat.postMessage", "not_in_channel", 1)
    worker = _worker(ledger, slack, clock)

    report = await worker.deliver_due()
    assert [reason for _, reason in report.retried] == ["not_in_channel"]
    assert worker.last_error == "not_in_channel"
    clock.advance(ATTENTION_RETRY_SECONDS - 1)
    assert (await worker.deliver_due()).delivered == []

    clock.advance(1)
    assert len((await worker.deliver_due()).delivered) == 1
    assert len(slack.messages(CHANNEL)) == 1


async def test_a_message_slack_cannot_accept_is_given_up_and_audited(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    await raise_incidents([_drift("SKU-1")], ledger, channel=CHANNEL, at=clock.now())
    slack.force_error("chat.postMessage", "invalid_blocks", 1)
    report = await _worker(ledger, slack, clock).deliver_due()
    assert [reason for _, reason in report.dead] == ["invalid_blocks"]
    [entry] = await ledger.list_outbox()
    assert entry.status == "dead"


async def test_an_update_never_overtakes_the_alert_it_updates(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    ctx = await raise_incidents([_drift("SKU-1")], ledger, channel=CHANNEL, at=clock.now())
    [incident] = ctx.opened
    await ledger.acknowledge(incident.id, "U0OPS001", clock.now())
    await ledger.enqueue(
        "incident.updated",
        CHANNEL,
        {"incident_id": incident.id, "reply": "Acknowledged by <@U0OPS001>"},
        at=clock.now(),
        incident_id=incident.id,
    )
    slack.down = True
    worker = _worker(ledger, slack, clock)
    await worker.deliver_due()
    assert slack.calls("chat.update") == []

    slack.down = False
    clock.advance(60)
    await worker.drain()
    [message] = slack.messages(CHANNEL)
    assert message.edited
    assert "acknowledged by <@U0OPS001>" in str(message.blocks)
    assert [m.text for m in slack.thread(CHANNEL, message.ts)][-1] == "Acknowledged by <@U0OPS001>"
