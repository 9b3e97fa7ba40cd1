"""kill -9 between chat.postMessage and recording the delivery: a real worker process is
killed with SIGKILL while Slack has stored its post but not yet answered. After the
restart the alert is not posted again: the earlier post is found through its message
metadata and completed (recorded, its chart uploaded into its thread, its buttons live
for the next update)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
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

from connectors import ManualClock
from ledger import Ledger
from sandbox.slack import Call, FakeSlack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def slack(clock: ManualClock) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=TOKEN, clock=clock, channels={CHANNEL: "ops"}) as s:
        yield s


async def test_a_worker_killed_after_posting_does_not_post_again_after_the_restart(
    tmp_path: Path, slack: FakeSlack, clock: ManualClock
) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    async with Ledger.from_url(url) as ledger:
        await ledger.upgrade()
        ctx = await raise_incidents([drift("SKU-1")], ledger, at=clock.now())
    [incident] = ctx.opened

    posted = asyncio.Event()
    answer = asyncio.Event()

    async def hold_the_answer(call: Call) -> None:
        if call.method == "chat.postMessage":
            posted.set()
            await answer.wait()  # stored by Slack, not yet answered

    slack.latency = hold_the_answer
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "outbox_worker_process.py"),
        url,
        slack.api_url,
        TOKEN,
        clock.now().isoformat(),
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # the code under test, this tree's
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(90):
            await posted.wait()
    finally:
        child.send_signal(signal.SIGKILL)
        output, _ = await child.communicate()
    assert child.returncode == -signal.SIGKILL, output.decode()
    assert b"delivered" not in output.replace(b"delivering", b""), "killed before the record"
    answer.set()
    slack.latency = None
    [first_copy] = alerts_for(slack, incident.id)

    clock.advance(181)  # past the dead worker's lease
    async with Ledger.from_url(url) as ledger:
        assert (await ledger.get_incident(incident.id)).slack_ts is None, "nothing recorded"
        outbox = worker(ledger, slack, clock)
        async with asyncio.timeout(60):
            await outbox.drain()

        assert alerts_for(slack, incident.id) == [first_copy], "not posted a second time"
        assert len(slack.calls("chat.postMessage")) == 1
        assert slack.calls("conversations.history"), "it looked before posting"
        assert (await ledger.get_incident(incident.id)).slack_ts == first_copy.ts
        assert len(files_in_thread(slack, first_copy)) == 1, "the first copy got its chart"

        # its buttons are live: the next update edits this very message
        reply = await acknowledge(ledger, incident, clock.now())
        async with asyncio.timeout(60):
            await outbox.drain()
        assert first_copy.edited
        assert "acknowledged by <@U0OPS001>" in str(first_copy.blocks)
        assert any(b["type"] == "actions" for b in first_copy.blocks)
        assert [m.text for m in slack.thread(CHANNEL, first_copy.ts)][-1] == reply
        stats = await ledger.outbox_stats()
        assert (stats.pending, stats.dead) == (0, 0)
