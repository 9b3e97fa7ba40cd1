"""Guarantee 2: double clicks and races. Signed block_actions reach the real bolt app
over HTTP at the same moment: one resync, and everyone who clicked sees the outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reliability_testing import ONCALL, WRITER, Bot

from bot.service import OUTBOX_INTERVAL_SECONDS


async def _ticks_until(bot: Bot, done: Callable[[], bool], ticks: int = 60) -> None:
    """Run the outbox worker's ticks (every 2 s of the bot's clock) until ``done``."""
    for _ in range(ticks):
        if done():
            return
        bot.clock.advance(OUTBOX_INTERVAL_SECONDS)
        await bot.service.outbox.deliver_due()
    assert done(), [
        (e.id, e.status, e.attempts, e.last_error, e.lease_until, e.next_attempt_at)
        for e in await bot.ledger.list_outbox()
        if e.status != "delivered"
    ]


def _answers(bot: Bot) -> int:
    return sum(
        1
        for c in bot.slack.calls("chat.postMessage")
        if c.ok and c.args.get("thread_ts") and "requested by" in str(c.args.get("text"))
    )


async def test_two_people_and_a_double_click_at_once_make_one_resync(bot: Bot) -> None:
    incident = await bot.incident()
    bodies = [
        bot.click_body(incident, "resync", WRITER),
        bot.click_body(incident, "resync", ONCALL),
        bot.click_body(incident, "resync", WRITER),  # the same person, twice
    ]
    responses = await asyncio.gather(*(bot.post(body) for body in bodies))
    await bot.settle()
    # Answers that met Slack's per-channel pacing (429) wait for Retry-After on the
    # bot's clock: move it on as the outbox worker's ticks do.
    await _ticks_until(bot, lambda: _answers(bot) >= 3)

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert bot.shopify("TEE-BLK-M", "east")["available"] == 28
    assert len(bot.demo.world.shopify.writes) == 1
    assert [r.status for r in await bot.ledger.list_resyncs()] == ["applied"]
    replies = bot.thread_texts(await bot.incident())
    for user in (WRITER, ONCALL):
        # each answer: the outcome, who asked, then what the alert shows now
        outcomes = [r for r in replies if f"requested by <@{user}>" in r]
        assert outcomes, f"{user} sees no outcome in {replies}"
        assert all("40 → 28" in r or "already agrees" in r for r in outcomes), outcomes
    assert sum("40 → 28" in r for r in replies) >= 1
    assert len([r for r in replies if "requested by" in r]) == 3, "one answer per click"


async def test_resync_and_resolve_racing_leave_one_write_and_a_resolved_incident(
    bot: Bot,
) -> None:
    incident = await bot.incident()
    responses = await asyncio.gather(
        bot.post(bot.click_body(incident, "resync", WRITER)),
        bot.post(bot.click_body(incident, "resolve", ONCALL)),
        bot.post(bot.click_body(incident, "resync", ONCALL)),
    )
    await bot.settle()
    await _ticks_until(
        bot,
        lambda: any(
            c.ok and "Resolved by" in str(c.args) for c in bot.slack.calls("chat.postMessage")
        ),
    )

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len(bot.demo.world.shopify.writes) <= 1
    assert len([r for r in await bot.ledger.list_resyncs() if r.status == "applied"]) <= 1
    assert (await bot.incident()).status == "resolved"
    assert "Resolved by <@U0ONCALL1>" in bot.thread_texts(await bot.incident())
