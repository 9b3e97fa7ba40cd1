"""Guarantee 5: write actions only for the configured users, user groups and channels;
every request and every refusal is in the audit log. (The audit log's lack of an
update or delete path: tests/ledger/test_ledger_api.py and test_ledger_audit.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from reliability_testing import GUEST, ONCALL, WRITER, Bot, running_bot

VIEWER = "U0VIEWER1"
WRITERS_CHANNEL = "C0WRITERS"


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    writers = {"users": [WRITER], "usergroups": ["S0ONCALL"], "channels": [WRITERS_CHANNEL]}
    async with running_bot(tmp_path, writers=writers) as running:
        yield running


# (user, channel the command comes from, allowed, why)
CASES = [
    (WRITER, None, True, "a listed user"),
    (ONCALL, None, True, "a member of a listed user group"),
    (VIEWER, WRITERS_CHANNEL, True, "anyone in a listed channel"),
    (VIEWER, None, False, "not listed, not in the group, not in a writers' channel"),
    (GUEST, None, False, "not even in the workspace's user list"),
]


async def test_only_writers_may_resync_and_every_request_is_audited(bot: Bot) -> None:
    for user, channel, _, _ in CASES:
        response = await bot.post(bot.command_body("/resync", "TEE-BLK-M east", user, channel))
        assert response.status_code == 200
    await bot.settle()

    audit = await bot.ledger.list_audit(limit=1000)
    commands = [(a.actor, a.detail.get("channel")) for a in audit if a.action == "slack.command"]
    refused = {(a.actor, a.detail.get("channel")) for a in audit if a.action == "slack.refused"}
    for user, channel, allowed, why in CASES:
        where = channel or bot.channel
        told = [e.text for e in bot.slack.ephemerals if (e.user, e.channel) == (user, where)]
        sorry = [t for t in told if t.startswith(f"Sorry <@{user}>, only Driftwatch writers")]
        assert (user, where) in commands, f"{why}: request not audited"
        if allowed:
            assert sorry == [], f"{why} was refused"
            assert (user, where) not in refused
        else:
            assert len(sorry) == 1, f"{why} was not refused: {told}"
            assert (user, where) in refused, f"{why}: refusal not audited"
    assert bot.demo.world.shopify.writes == []


async def test_a_non_writer_cannot_resolve_or_resync_but_a_group_member_can(bot: Bot) -> None:
    incident = await bot.incident()
    for user in (VIEWER, GUEST):
        await bot.post(bot.click_body(incident, "resync", user))
        await bot.post(bot.click_body(incident, "resolve", user))
    await bot.settle()
    assert bot.demo.world.shopify.writes == []
    assert (await bot.incident()).status == "open"
    refusals = [a for a in await bot.ledger.list_audit(limit=1000) if a.action == "slack.refused"]
    assert sorted((a.actor, a.detail["what"]) for a in refusals) == sorted(
        [(u, w) for u in (VIEWER, GUEST) for w in ("resync", "resolve incidents")]
    )

    await bot.post(bot.click_body(incident, "resync", ONCALL))  # via the user group
    await bot.settle()
    assert bot.shopify("TEE-BLK-M", "east")["available"] == 28
    actions = [(a.actor, a.action) for a in await bot.ledger.list_audit(limit=1000)]
    assert (ONCALL, "slack.action") in actions
    assert (ONCALL, "resync.applied") in actions
