"""The weekly summary with its review and the two decision buttons, through the real
bolt app and the fake Slack's channel page: clicks and modal submissions are signed
``block_actions`` and ``view_submission`` requests, as Slack sends them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kpi_testing import ONCALL, START, VIEWER, WEEK, WRITER, KpiBot, kpi_bot

from bot.slack.weekly_review import post_weekly_review
from ledger import Ledger
from monitors.config import config_from_dict
from monitors.wiring import rules_from_config
from sandbox.slack import Message, StoredView


def text_of(message: Message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


async def post_summary(bot: KpiBot) -> Message:
    await bot.service.weekly_summary()
    await bot.settle()
    [summary] = [m for m in bot.messages() if "Weekly drift summary" in m.text]
    return summary


def note_modals(bot: KpiBot, user: str) -> list[StoredView]:
    return [
        v
        for v in bot.slack.views.values()
        if v.user == user and v.view.get("callback_id") == "verdict_note"
    ]


async def click(bot: KpiBot, message: Message, action_id: str, user: str) -> None:
    delivery = await bot.slack.page.block_action(bot.channel, user, message.ts, action_id)
    assert (delivery.status, delivery.error) == (200, None)


async def submit(bot: KpiBot, view: StoredView, user: str, note: str) -> None:
    delivery = await bot.slack.page.view_submission(view.id, user, {"note": {"note": note}})
    assert (delivery.status, delivery.error) == (200, None)


def buttons(message: Message) -> list[dict[str, Any]]:
    return [
        e
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e.get("action_id", "").startswith("verdict_")
    ]


async def test_the_weekly_summary_reviews_the_week_and_asks_for_a_decision(
    tmp_path: Path,
) -> None:
    async with kpi_bot(str(tmp_path / "summary.db")) as bot:
        summary = await post_summary(bot)
        shown = text_of(summary)
        assert "Weekly drift summary: Nov 9 – Nov 15, 2026" in shown
        assert "*Against the baseline* (week of Nov 2 – Nov 8, 2026)" in shown
        # the baseline week had 3 oversells, this one 1
        assert "• Oversell incidents: 1 — baseline 3, ▼ -2 (better)" in shown
        # 2 units of shrinkage of the 35 units moved at the source of truth that week
        assert "*Shrinkage*\\n5.7% — 2 of 35 units moved (line 2%) :warning: over the line" in shown
        assert "*Which handoff is degrading*" in shown
        # HIST-1's changes took 30 minutes this week; its last one has not arrived yet
        assert "6 changes: p50 30 min, p95 30 min, max 30 min, 1 in transit" in shown
        assert "drift rate" in shown
        assert "*Last week's decision* (Nov 2 – Nov 8, 2026)\\n_No decision was recorded._" in shown
        assert "*Cycle counts for the week of Nov 16 – Nov 22, 2026*" in shown
        assert [(b["text"]["text"], b["action_id"], b["value"]) for b in buttons(summary)] == [
            ("Pass: trend down", "verdict_pass", "2026-11-09"),
            ("Not yet: escalate", "verdict_escalate", "2026-11-09"),
        ]
        # the thread: the incidents chart and the 30-day drift rate per hop
        files = [f["name"] for m in bot.slack.thread(bot.channel, summary.ts) for f in m.files]
        assert files == ["weekly-summary-2026-11-09.png", "hop-drift-2026-11-09.png"]
        # the week's KPIs were captured: the baseline and the reviewed week
        assert [w.week_start for w in await bot.ledger.list_kpi_weeks()] == [
            "2026-11-09",
            "2026-11-02",
        ]


async def test_a_decision_is_recorded_with_its_note_and_shown(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "decide.db")) as bot:
        summary = await post_summary(bot)
        await click(bot, summary, "verdict_pass", WRITER)
        await bot.settle()
        [modal] = note_modals(bot, WRITER)
        assert modal.view["title"]["text"] == "Weekly verification"
        assert "*Pass: trend down* for the week of Nov 9 – Nov 15, 2026." in json.dumps(
            modal.view["blocks"], ensure_ascii=False
        )
        submitted_at = bot.clock.now()  # the outbox's pacing may have moved it past START
        await submit(bot, modal, WRITER, "<!channel> mismatch down & oversells down")
        await bot.settle()
        verdict = await bot.ledger.get_verdict(WEEK)
        assert verdict is not None
        assert (verdict.decision, verdict.decided_by) == ("pass", WRITER)
        assert verdict.decided_at == submitted_at
        assert verdict.note == "<!channel> mismatch down & oversells down"
        assert verdict.figures["baseline_week"] == "2026-11-02"
        assert verdict.figures["this_week"]["oversell_incidents"] == 1
        [audit] = await bot.ledger.list_audit(subject="verdict:2026-11-09")
        assert (audit.actor, audit.action, audit.detail["decision"]) == (
            WRITER,
            "verdict.recorded",
            "pass",
        )
        # the summary shows the decision in place of the buttons
        [updated] = [m for m in bot.messages() if m.ts == summary.ts]
        assert updated.edited
        assert buttons(updated) == []
        shown = text_of(updated)
        assert "*Decision recorded*" in shown
        assert "&lt;!channel&gt; mismatch down &amp; oversells down" in shown
        assert "<!channel>" not in shown
        # its thread says who decided; the person is told
        replies = [m.text for m in bot.slack.thread(bot.channel, summary.ts)[1:]]
        assert any(r.startswith("Weekly verification for Nov 9 – Nov 15, 2026:") for r in replies)
        assert (
            bot.told(WRITER)[-1]
            == "Recorded *Pass: trend down* for the week of Nov 9 – Nov 15, 2026."
        )


async def test_a_double_click_and_two_people_record_one_decision(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "race.db")) as bot:
        summary = await post_summary(bot)
        await asyncio.gather(
            click(bot, summary, "verdict_pass", WRITER),
            click(bot, summary, "verdict_pass", WRITER),  # the double click
            click(bot, summary, "verdict_escalate", ONCALL),
        )
        await bot.settle()
        mine, theirs = note_modals(bot, WRITER), note_modals(bot, ONCALL)
        assert (len(mine), len(theirs)) == (2, 1)
        await asyncio.gather(
            submit(bot, mine[0], WRITER, "first"),
            submit(bot, mine[1], WRITER, "second"),
            submit(bot, theirs[0], ONCALL, "not yet"),
        )
        await bot.settle()
        [verdict] = await bot.ledger.list_verdicts()
        assert len(await bot.ledger.list_audit(subject="verdict:2026-11-09")) == 1
        losers = bot.told(WRITER) + bot.told(ONCALL)
        already = [t for t in losers if "is already decided" in t]
        assert len(already) == 2
        assert all("A week's decision is recorded once." in t for t in already)
        replies = [m.text for m in bot.slack.thread(bot.channel, summary.ts)[1:]]
        assert sum(r.startswith("Weekly verification for") for r in replies) == 1
        [updated] = [m for m in bot.messages() if m.ts == summary.ts]
        assert len(updated.edits) == 1
        assert verdict.note in ("first", "second", "not yet")


async def test_only_writers_decide(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "viewer.db")) as bot:
        summary = await post_summary(bot)
        await click(bot, summary, "verdict_pass", VIEWER)
        await bot.settle()
        assert note_modals(bot, VIEWER) == []
        assert (
            "only Driftwatch writers can record the weekly verification decision"
            in (bot.told(VIEWER)[-1])
        )
        [refused] = [e for e in await bot.ledger.list_audit() if e.action == "slack.refused"]
        assert refused.actor == VIEWER
        assert await bot.ledger.list_verdicts() == []


async def test_next_weeks_summary_shows_the_decision(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "next.db")) as bot:
        summary = await post_summary(bot)
        await click(bot, summary, "verdict_escalate", ONCALL)
        await bot.settle()
        [modal] = note_modals(bot, ONCALL)
        await submit(bot, modal, ONCALL, "storefront hop slowed from 2 to 30 min")
        await bot.settle()
        bot.clock.advance(7 * 86_400)
        await bot.service.weekly_summary()
        await bot.settle()
        latest = [m for m in bot.messages() if "Weekly drift summary, Nov 16" in m.text]
        [following] = latest
        shown = text_of(following)
        assert "*Last week's decision* (Nov 9 – Nov 15, 2026)\\n:sos: *Not yet: escalate*" in shown
        assert f"by <@{ONCALL}>" in shown
        assert "storefront hop slowed from 2 to 30 min" in shown
        assert len(buttons(following)) == 2  # this week's own decision is open


async def test_an_unanswered_decision_gets_one_reminder(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "remind.db")) as bot:
        summary = await post_summary(bot)
        reminder = bot.service.kpi_jobs.reminder
        bot.clock.advance(23 * 3600)
        assert await reminder.run() is None  # not yet a day
        bot.clock.advance(3600)
        assert await reminder.run() is not None
        assert await reminder.run() is None  # once
        bot.clock.advance(6 * 3600)
        assert await reminder.run() is None
        await bot.settle()
        reminders = [m for m in bot.messages() if m.text.startswith("Reminder:")]
        assert len(reminders) == 1
        assert "<!subteam^" not in text_of(reminders[0])  # the demo names no on-call group
        assert len(buttons(reminders[0])) == 2
        # deciding from the reminder's buttons updates the summary too
        await click(bot, reminders[0], "verdict_pass", WRITER)
        await bot.settle()
        [modal] = note_modals(bot, WRITER)
        await submit(bot, modal, WRITER, "")
        await bot.settle()
        [updated] = [m for m in bot.messages() if m.ts == summary.ts]
        assert buttons(updated) == []
        verdict = await bot.ledger.get_verdict(WEEK)
        assert verdict is not None
        assert verdict.note == ""
        # the reminder keeps its buttons: a click there now opens no modal and says
        # whose decision stands
        await click(bot, reminders[0], "verdict_escalate", ONCALL)
        await bot.settle()
        assert note_modals(bot, ONCALL) == []
        assert "is already decided" in bot.told(ONCALL)[-1]
        assert f"<@{WRITER}>" in bot.told(ONCALL)[-1]


async def test_a_decided_week_is_not_reminded(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "decided.db")) as bot:
        await post_summary(bot)
        await bot.ledger.record_verdict(WEEK, "pass", WRITER, START + timedelta(hours=1))
        bot.clock.advance(48 * 3600)
        assert await bot.service.kpi_jobs.reminder.run() is None


async def test_slack_refusing_the_update_loses_no_decision(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "refused.db")) as bot:
        summary = await post_summary(bot)
        await click(bot, summary, "verdict_pass", WRITER)
        await bot.settle()
        [modal] = note_modals(bot, WRITER)
        bot.slack.force_error("chat.update", "internal_error", 1)
        await submit(bot, modal, WRITER, "recorded while Slack stumbled")
        await bot.settle()
        verdict = await bot.ledger.get_verdict(WEEK)
        assert verdict is not None
        # the summary kept its buttons, but the thread and the person were told
        [same] = [m for m in bot.messages() if m.ts == summary.ts]
        assert len(buttons(same)) == 2
        replies = [m.text for m in bot.slack.thread(bot.channel, summary.ts)[1:]]
        assert any("recorded while Slack stumbled" in r for r in replies)
        # and the next week's summary shows it
        bot.clock.advance(7 * 86_400)
        await bot.service.weekly_summary()
        await bot.settle()
        [following] = [m for m in bot.messages() if "Weekly drift summary, Nov 16" in m.text]
        assert "recorded while Slack stumbled" in text_of(following)


async def test_a_failing_review_still_posts_the_four_kpis(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A ledger without the KPI tables (dropped after migrating, as a half-done manual
    restore would leave it): the review cannot be built, the summary goes out without it
    rather than not at all."""
    config = config_from_dict(
        {
            "source_of_truth": ["wms"],
            "systems": [
                {"name": "wms", "kind": "csv", "directory": "d",
                 "columns": {"sku": "s", "location": "l", "quantities": {"available": "q"}}},
                {"name": "shopify", "kind": "shopify", "shop_url": "http://127.0.0.1:9"},
            ],
            "locations": {"east": {"wms": "E", "shopify": "gid://shopify/Location/1"}},
            "slack": {"alerts_channel": "C0DRIFT01"},
        }
    )  # fmt: skip
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'old.db'}") as ledger:
        await ledger.upgrade()
        await asyncio.to_thread(_drop_table, tmp_path / "old.db", "kpi_weeks")
        entry = await post_weekly_review(ledger, config, rules_from_config(config), START)
    assert entry is not None
    shown = json.dumps(entry.payload["blocks"], ensure_ascii=False)
    assert "Weekly drift summary: Nov 9 – Nov 15, 2026" in shown
    assert "verdict_pass" not in shown
    assert "the weekly review of 2026-11-09 failed" in caplog.text


def _drop_table(path: Path, table: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"DROP TABLE {table}")
        db.commit()
