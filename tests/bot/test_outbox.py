"""The outbox against the fake Slack over HTTP, through the real OutboxWorker: each alert
posted once even when Slack is slow and another worker is claiming, a worker that lost
its lease records nothing, a message Slack refuses is reduced or given up (never retried
for ever, never holding up its incident), the chart is its own step, and a storm is
paced at one message per second per channel."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from outbox_testing import (
    CHANNEL,
    TOKEN,
    acknowledge,
    alerts_for,
    drift,
    files_in_thread,
    raise_incidents,
    worker,
)

from bot.slack.outbox import ATTENTION_RETRY_SECONDS, HEALTH_FINGERPRINT, MAX_ATTEMPTS
from connectors import ManualClock
from ledger import Ledger
from sandbox.slack import Call, FakeSlack


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def slack(clock: ManualClock) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=TOKEN, clock=clock, channels={CHANNEL: "ops"}) as s:
        yield s


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'outbox.db'}"


@pytest.fixture
async def ledger(db_url: str) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(db_url) as led:
        await led.upgrade()
        yield led


@pytest.fixture
async def replica(db_url: str, ledger: Ledger) -> AsyncIterator[Ledger]:
    """A second process's view of the same database (another engine on the same file)."""
    async with Ledger.from_url(db_url) as other:
        yield other


# ------------------------------------------------------------------ E: never twice


async def test_seven_alerts_with_slack_answering_each_call_in_5_s_are_each_posted_once(
    ledger: Ledger, replica: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    ctx = await raise_incidents([drift(f"SKU-{i}") for i in range(7)], ledger, at=clock.now())
    assert len(ctx.opened) == 7
    first = worker(ledger, slack, clock)
    second = worker(replica, slack, clock)  # another tick, or another replica
    called = asyncio.Event()

    async def five_seconds(call: Call) -> None:
        clock.advance(5)
        called.set()  # the other worker looks for due entries after every call

    slack.latency = five_seconds
    stop = False

    async def competing() -> None:
        while not stop:
            await called.wait()
            called.clear()
            await second.deliver_due()

    competitor = asyncio.create_task(competing())
    async with asyncio.timeout(120):
        await first.drain()
        stop = True
        called.set()
        await competitor
        await first.drain()

    assert len(slack.calls("files.completeUploadExternal")) == 7
    for incident in ctx.opened:
        [alert] = alerts_for(slack, incident.id)  # one alert each, never two
        assert len(files_in_thread(slack, alert)) == 1, "its chart, once"
        assert (await ledger.get_incident(incident.id)).slack_ts == alert.ts
    stats = await ledger.outbox_stats()
    assert (stats.pending, stats.dead, stats.delivered) == (0, 0, 14)  # 7 alerts, 7 charts


async def test_a_worker_whose_lease_was_taken_over_cannot_record(
    ledger: Ledger, replica: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    ctx = await raise_incidents([drift("SKU-1")], ledger, at=clock.now())
    [incident] = ctx.opened
    release = asyncio.Event()

    async def hang_the_first_post(call: Call) -> None:
        if call.method == "chat.postMessage" and len(slack.calls("chat.postMessage")) == 1:
            await release.wait()

    slack.latency = hang_the_first_post
    stalled = worker(ledger, slack, clock)
    first = asyncio.create_task(stalled.deliver_due())
    async with asyncio.timeout(30):
        await slack.wait_for_call(lambda c: c.method == "chat.postMessage")
    clock.advance(181)  # the post hangs past the lease; Slack has stored it
    taking_over = await worker(replica, slack, clock).deliver_due()
    release.set()
    async with asyncio.timeout(30):
        late = await first

    [entry] = await ledger.list_outbox(kind="incident.opened")
    assert taking_over.delivered[0] == entry.id  # it found the post and adopted it
    assert (late.lost, late.delivered) == ([entry.id], [])
    [alert] = alerts_for(slack, incident.id)
    assert len(slack.calls("chat.postMessage")) == 1
    assert entry.response == {"channel": CHANNEL, "ts": alert.ts}
    assert (await ledger.get_incident(incident.id)).slack_ts == alert.ts
    assert len(await ledger.list_outbox(kind="alert.chart")) == 1, "one chart step, not two"


async def test_the_chart_is_its_own_step_after_the_post_is_recorded(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    ctx = await raise_incidents([drift("SKU-1")], ledger, at=clock.now())
    [incident] = ctx.opened
    slack.force_error("files.getUploadURLExternal", "internal_error", 2)
    outbox = worker(ledger, slack, clock)
    await outbox.drain()

    [alert] = alerts_for(slack, incident.id)
    assert (await ledger.get_incident(incident.id)).slack_ts == alert.ts
    [opened] = await ledger.list_outbox(kind="incident.opened")
    [chart] = await ledger.list_outbox(kind="alert.chart")
    assert (opened.status, chart.status) == ("delivered", "pending")
    assert (chart.incident_id, chart.last_error) == (None, "internal_error")
    assert files_in_thread(slack, alert) == []

    # the failing chart holds up none of the incident's messages
    reply = await acknowledge(ledger, incident, clock.now())
    await outbox.deliver_due()
    assert [m.text for m in slack.thread(CHANNEL, alert.ts)][-1] == reply

    for _ in range(3):
        clock.advance(10)
        await outbox.drain()
    assert len(files_in_thread(slack, alert)) == 1
    assert (await ledger.get_outbox_entry(chart.id)).status == "delivered"


async def test_the_same_alerts_hours_apart_are_posted_once_each_without_lookups(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    outbox = worker(ledger, slack, clock, charts=False)
    ctx = await raise_incidents([drift("SKU-1")], ledger, at=clock.now())
    [incident] = ctx.opened
    await outbox.drain()
    replies = []
    for _ in range(2):
        clock.advance(3 * 3600)
        replies.append(await acknowledge(ledger, incident, clock.now()))
        await outbox.drain()
    [alert] = alerts_for(slack, incident.id)
    assert [m.text for m in slack.thread(CHANNEL, alert.ts)[1:]] == replies
    assert slack.calls("conversations.history") == []  # nothing was in doubt
    assert slack.calls("conversations.replies") == []


# ------------------------------------------------------------------ D: never stalls


async def test_a_203_character_sku_still_gets_its_alert_and_its_later_messages(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    sku = "<@U0CFO0042>-" + "X" * 190
    assert len(sku) == 203
    ctx = await raise_incidents([drift(sku), drift("SKU-OK")], ledger, at=clock.now())
    long, short = sorted(ctx.opened, key=lambda i: -len(i.sku or ""))
    reply = await acknowledge(ledger, long, clock.now())
    outbox = worker(ledger, slack, clock)
    async with asyncio.timeout(60):
        await outbox.drain()

    [alert] = alerts_for(slack, long.id)
    assert "<@U0CFO0042>" not in alert.text, "a SKU is not a mention"
    assert "&lt;@U0CFO0042&gt;" in alert.text
    [actions] = [b for b in alert.blocks if b["type"] == "actions"]
    resync = actions["elements"][0]
    assert resync["action_id"] == "resync"
    assert len(resync["confirm"]["text"]["text"]) <= 300
    assert alert.edited, "the acknowledgement reached the card"
    assert [m.text for m in slack.thread(CHANNEL, alert.ts)][1] == reply
    assert len(alerts_for(slack, short.id)) == 1
    stats = await ledger.outbox_stats()
    assert (stats.pending, stats.dead) == (0, 0)
    assert await ledger.list_incidents(kind="slack_refused") == []


async def test_a_long_escalated_alert_is_posted_and_pages_no_one_itself(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    sku = "HOODIE-" + "Ü" * 196  # 203 characters
    details = {
        "system": "shopify",
        "truth_system": "wms",
        "expected": 100,
        "gap": 106,
        "values": {"shopify": 206, "wms": 100},
        "policy": {"outcome": "escalated", "oncall": "S0ONCALL", "reasons": ["hero SKU"]},
    }
    incident, _ = await ledger.open_incident(
        f"drift:oversell_risk:shopify:{sku}:east",
        "oversell_risk",
        "critical",
        f"Oversell risk: {sku} at east",
        clock.now(),
        sku=sku,
        location="east",
        system="shopify",
        details=details,
    )
    await ledger.enqueue(
        "incident.opened", CHANNEL, {"incident_id": incident.id}, clock.now(), incident.id
    )
    await worker(ledger, slack, clock, charts=False).drain()

    [alert] = alerts_for(slack, incident.id)
    # The group is paged once per escalation, by the policy's thread reply
    # (tests/bot/test_policy_alerts.py); the alert, full or reduced, only says so.
    assert alert.text.endswith("escalated to on-call")
    assert "subteam" not in alert.text + str(alert.blocks)
    assert "+106" in str(alert.blocks)


async def test_a_message_refused_in_every_form_is_given_up_and_on_call_hears_of_it(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    ctx = await raise_incidents([drift("SKU-1")], ledger, at=clock.now())
    [incident] = ctx.opened
    reply = await acknowledge(ledger, incident, clock.now())
    slack.force_error("chat.postMessage", "invalid_blocks", 3)  # full, reduced, bare
    outbox = worker(ledger, slack, clock, charts=False)
    report = await outbox.drain()

    [opened, update] = await ledger.list_outbox(incident_id=incident.id)
    assert (opened.status, opened.attempts) == ("dead", 1), "given up at once"
    assert report.dead[0][0] == opened.id
    [audit] = await ledger.list_audit(subject=f"outbox:{opened.id}")
    assert audit.action == "outbox.dead"
    [health] = await ledger.list_incidents(kind="slack_refused")
    assert health.fingerprint == HEALTH_FINGERPRINT
    assert f"outbox entry {opened.id}" in str(health.details)
    [health_alert] = alerts_for(slack, health.id)
    assert "Slack refused" in health_alert.text
    shown = str(health_alert.blocks)
    assert "Last refusal" in shown
    assert "invalid_blocks" in shown
    assert "/invite @Driftwatch" in shown  # what to check
    assert "Last good sync" not in shown
    assert "Age vs SLA" not in shown
    # the incident's later message is not held up: it brings the alert with it
    assert update.status == "delivered"
    [alert] = alerts_for(slack, incident.id)
    assert [m.text for m in slack.thread(CHANNEL, alert.ts)][-1] == reply
    assert (await ledger.outbox_stats()).pending == 0


async def test_an_error_nobody_can_fix_is_retried_a_bounded_number_of_times(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    ctx = await raise_incidents([drift("SKU-1")], ledger, at=clock.now())
    [incident] = ctx.opened
    slack.force_error("chat.postMessage", "fatal_error", 100)
    outbox = worker(ledger, slack, clock, charts=False)
    for _ in range(40):
        await outbox.deliver_due()
        if not (await ledger.outbox_stats()).pending:
            break
        clock.advance(300)
    [opened] = await ledger.list_outbox(incident_id=incident.id)
    assert (opened.status, opened.attempts) == ("dead", MAX_ATTEMPTS)
    [health] = await ledger.list_incidents(kind="slack_refused")
    [health_entry] = await ledger.list_outbox(incident_id=health.id)
    assert health_entry.status == "dead", "its own alert was refused too: no loop"
    assert len(await ledger.list_incidents(kind="slack_refused", status=None)) == 1


async def test_an_error_a_person_must_fix_keeps_the_alert_until_fixed(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    await raise_incidents([drift("SKU-1")], ledger, at=clock.now())
    slack.force_error("chat.postMessage", "not_in_channel", 1)
    outbox = worker(ledger, slack, clock, charts=False)

    report = await outbox.deliver_due()
    assert [reason for _, reason in report.retried] == ["not_in_channel"]
    assert outbox.last_error == "not_in_channel"
    clock.advance(ATTENTION_RETRY_SECONDS - 1)
    assert (await outbox.deliver_due()).delivered == []

    clock.advance(1)
    assert len((await outbox.deliver_due()).delivered) == 1
    assert len(slack.messages(CHANNEL)) == 1


async def test_an_update_never_overtakes_the_alert_it_updates(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    ctx = await raise_incidents([drift("SKU-1")], ledger, at=clock.now())
    [incident] = ctx.opened
    reply = await acknowledge(ledger, incident, clock.now())
    slack.down = True
    outbox = worker(ledger, slack, clock, charts=False)
    await outbox.deliver_due()
    assert slack.calls("chat.update") == []

    slack.down = False
    clock.advance(60)
    await outbox.drain()
    [message] = slack.messages(CHANNEL)
    assert message.edited
    assert "acknowledged by <@U0OPS001>" in str(message.blocks)
    assert [m.text for m in slack.thread(CHANNEL, message.ts)][-1] == reply


# ------------------------------------------------------------------ H: paced


async def test_a_storm_never_sends_more_than_one_message_per_second_per_channel(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock
) -> None:
    found = [
        drift(f"SKU-{loc}-{i}", location=loc)
        for loc in ("east", "west", "north")
        for i in range(10)
    ]
    ctx = await raise_incidents(found, ledger, at=clock.now())
    assert len(ctx.opened) == 30
    for incident in ctx.opened[::3]:
        await acknowledge(ledger, incident, clock.now())
    outbox = worker(ledger, slack, clock, charts=False)
    async with asyncio.timeout(60):
        await outbox.drain()

    posts = slack.calls("chat.postMessage")
    assert [c.status for c in posts] == [200] * 40, "the fake answers 429 past 1/s"
    gaps = [(b.at - a.at) for a, b in itertools.pairwise(posts)]
    assert min(gaps) >= timedelta(seconds=1)
    assert all(len(alerts_for(slack, i.id)) == 1 for i in ctx.opened)
    assert (await ledger.outbox_stats()).pending == 0
