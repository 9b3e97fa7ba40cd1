"""The weekly summary and the adjustment report as Block Kit, the chart, and the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.charts.summary import ReasonTally, reason_tallies, render_daily_chart, render_weekly_chart
from bot.cli.demo import demo_world
from bot.service import Service
from bot.slack.render.alerts import blocks_json
from bot.slack.render.summary import (
    adjustment_blocks,
    post_daily_adjustments,
    post_weekly_summary,
    trend,
    weekly_blocks,
    weekly_text,
)
from connectors import ManualClock
from ledger import AdjustmentCount, Ledger, LocationMismatch, ResponseTimes, SkuDrift
from monitors.reports import (
    AdjustmentReport,
    AdjustmentRules,
    Flag,
    Kpi,
    WeekFigures,
    WeeklySummary,
    daily_adjustments,
)

NY = ZoneInfo("America/New_York")


def week(start: datetime, **changes: Any) -> WeekFigures:
    values: dict[str, Any] = {
        "start": start,
        "end": start + timedelta(days=7),
        "mismatch": (LocationMismatch("east", 4, 1), LocationMismatch("west", 2, 1)),
        "oversell_incidents": 2,
        "auto_resyncs_applied": 3,
        "auto_resyncs_failed": 1,
        "adjustments": 2,
        "manual_resyncs": 1,
        "manual_resolutions": 1,
        "incidents_opened": 5,
        "incidents_resolved": 4,
        "response": ResponseTimes(2, timedelta(minutes=12), 4, timedelta(minutes=95)),
        "by_root_cause": {None: 3, "Bundle math": 2},
        "by_kind": {"oversell_risk": 2, "undersell": 3},
        "top_skus": (SkuDrift("TEE", 3, 2), SkuDrift("MUG", 1, 1)),
        "daily": (
            {"oversell_risk": 1},
            {"undersell": 2},
            {},
            {"oversell_risk": 1, "undersell": 1},
            {},
            {},
            {},
        ),
    }
    values.update(changes)
    return WeekFigures(**values)


THIS = datetime(2026, 11, 2, tzinfo=NY)
SUMMARY = WeeklySummary(
    this_week=week(THIS),
    last_week=week(
        THIS - timedelta(days=7),
        mismatch=(LocationMismatch("east", 4, 2), LocationMismatch("west", 2, 1)),
        oversell_incidents=2,
        auto_resyncs_applied=1,
        adjustments=0,
        response=ResponseTimes(1, timedelta(minutes=30), 1, timedelta(minutes=80)),
        by_root_cause={"Bundle math": 1},
        daily=(
            {"count_mismatch": 2},
            {},
            {"oversell_risk": 3},
            {},
            {"undersell": 1},
            {},
            {"count_mismatch": 1},
        ),
    ),
    tz=NY,
)


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e["text"] for e in block.get("elements", [])]
    return out


def test_trend_arrows_say_which_way_and_whether_it_is_better() -> None:
    assert trend(Kpi("x", 0.25, 0.5, "%", True)) == "▼ -25.0 pts (better)"
    assert trend(Kpi("x", 3, 1, "", True)) == "▲ +2 (worse)"
    assert trend(Kpi("x", 0.9, 0.8, "%", False)) == "▲ +10.0 pts (better)"
    assert trend(Kpi("x", 12, 30, "min", True)) == "▼ -18 min (better)"
    assert trend(Kpi("x", 2, 2, "", True)) == "= unchanged"
    assert trend(Kpi("x", 0.5, None, "%", True)) == "no comparison"


def test_the_weekly_blocks() -> None:
    blocks = blocks_json(weekly_blocks(SUMMARY))
    assert blocks[0]["type"] == "header"
    shown = texts(blocks)
    assert shown[0] == "Weekly drift summary: Nov 2 – Nov 8, 2026"
    assert shown[1:5] == [
        "*Mismatch rate*\n33.3% ▼ -16.7 pts (better)\n_last week: 50.0%_",
        "*Oversell incidents*\n2 = unchanged\n_last week: 2_",
        "*Auto-resync success*\n75.0% ▲ +25.0 pts (better)\n_last week: 50.0%_",
        "*Manual interventions*\n4 ▲ +2 (worse)\n_last week: 2_",
    ]
    assert shown[5] == (
        "*Mismatch rate by location*\n"
        "• east: 1 of 4 SKUs drifted (25.0%; last week 50.0%)\n"
        "• west: 1 of 2 SKUs drifted (50.0%; last week 50.0%)"
    )
    assert shown[6:8] == [
        "*MTTA*\n12 min ▼ -18 min (better)\n_last week: 30 min_",
        "*MTTR*\n95 min ▲ +15 min (worse)\n_last week: 80 min_",
    ]
    assert (
        "*Incidents by root cause*\n• not set: 3 (last week 0)\n• Bundle math: 2 (last week 1)"
        in shown
    )
    assert (
        "*SKUs that drifted most*\n• `TEE`: 3 incidents at 2 locations\n"
        "• `MUG`: 1 incident at 1 location" in shown
    )
    assert weekly_text(SUMMARY).startswith(
        "Weekly drift summary, Nov 2 – Nov 8, 2026: Mismatch rate 33.3% (▼ -16.7 pts (better));"
    )


def test_the_adjustment_blocks() -> None:
    report = AdjustmentReport(
        start=datetime(2026, 11, 3, tzinfo=NY),
        end=datetime(2026, 11, 4, tzinfo=NY),
        counts=(),
        adjustments=(),
    )
    assert texts(blocks_json(adjustment_blocks(report, NY))) == [
        "Adjustments on Tue Nov 3: 0",
        "No manual adjustment was applied.",
    ]
    busy = AdjustmentReport(
        start=report.start,
        end=report.end,
        counts=(AdjustmentCount("U1", "damage", 2), AdjustmentCount("U2", "cycle_count", 1)),
        adjustments=(),
        flags=(Flag("large", "MUG", "MUG at east: -60", (4,)),),
    )
    assert texts(blocks_json(adjustment_blocks(busy, NY))) == [
        "Adjustments on Tue Nov 3: 3",
        "*By operator*\n• <@U1>: 2\n• <@U2>: 1",
        "*By reason code*\n• `damage`: 2\n• `cycle_count`: 1",
        "*Unusual patterns*\n:warning: MUG at east: -60",
    ]


async def test_the_chart_renders_off_the_loop() -> None:
    png = await render_weekly_chart(SUMMARY)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    empty = WeeklySummary(
        week(THIS, daily=({},) * 7), week(THIS - timedelta(days=7), daily=({},) * 7), NY
    )
    assert (await render_weekly_chart(empty)).startswith(b"\x89PNG")


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'summary.db'}") as ledger:
        await ledger.upgrade()
        yield ledger


async def test_posting_queues_one_message_per_period(ledger: Ledger) -> None:
    now = datetime(2026, 11, 9, 14, tzinfo=UTC)  # Monday 09:00 in New York
    await ledger.open_incident(
        "fp", "oversell_risk", "warning", "t", datetime(2026, 11, 3, 15, tzinfo=UTC), sku="TEE"
    )
    adjustment, _ = await ledger.record_adjustment(
        "k", "TEE", "east", "shopify", "damage", "U1", datetime(2026, 11, 8, 15, tzinfo=UTC),
        delta=-1,
    )  # fmt: skip
    await ledger.settle_adjustment(adjustment.id, "applied", adjustment.created_at)
    entry = await post_weekly_summary(ledger, "C1", now, NY)
    assert entry is not None
    assert (entry.kind, entry.channel, entry.dedupe_key) == (
        "message",
        "C1",
        "weekly-summary:C1:2026-11-02",
    )
    assert "Oversell incidents 1 (▲ +1 (worse))" in entry.payload["text"]
    assert entry.payload["blocks"][0]["text"]["text"] == "Weekly drift summary: Nov 2 – Nov 8, 2026"
    assert await post_weekly_summary(ledger, "C1", now + timedelta(hours=1), NY) is None
    daily = await post_daily_adjustments(ledger, "C1", now, NY)
    assert daily is not None
    assert daily.payload["text"] == "Adjustments on Sun Nov 8: 1"
    assert daily.payload["chart"] == {
        "kind": "daily_adjustments",
        "day_start": "2026-11-08T00:00:00-05:00",
    }
    assert await post_daily_adjustments(ledger, "C1", now, NY) is None
    # a day without adjustments: the message says so, and no chart follows it
    quiet = await post_daily_adjustments(ledger, "C1", now + timedelta(days=1), NY)
    assert quiet is not None
    assert quiet.payload["text"] == "Adjustments on Mon Nov 9: 0"
    assert "chart" not in quiet.payload


async def record_adjustments(ledger: Ledger, day: datetime) -> None:
    """A busy day (repeats, a large change outside the WMS, a count without a change) and
    a quieter same weekday the week before."""
    at = day + timedelta(hours=15)
    for i, (sku, system, reason, delta, new) in enumerate(
        [
            ("MUG", "wms", "damaged", -1, None),
            ("MUG", "wms", "damaged", -2, None),
            ("MUG", "wms", "damaged", -1, None),
            ("TEE", "shopify", "shrinkage", -60, 10),
            ("CAP", "wms", "cycle_count", None, 12),
            ("CAP", "wms", "received", 24, None),
        ]
    ):
        adjustment, _ = await ledger.record_adjustment(
            f"now-{i}", sku, "east", system, reason, "U0OPS001", at + timedelta(minutes=i),
            delta=delta, new_quantity=new,
        )  # fmt: skip
        await ledger.settle_adjustment(adjustment.id, "applied", adjustment.created_at)
    before = at - timedelta(days=7)
    for i, (reason, delta) in enumerate([("received", 48), ("correction", 2), ("damaged", -1)]):
        adjustment, _ = await ledger.record_adjustment(
            f"before-{i}", "CAP", "east", "wms", reason, "U0OPS001", before, delta=delta
        )
        await ledger.settle_adjustment(adjustment.id, "applied", before)


async def test_the_daily_chart_compares_reasons_with_the_same_day_last_week(
    ledger: Ledger,
) -> None:
    day = datetime(2026, 11, 3, tzinfo=NY)
    await record_adjustments(ledger, day)
    rules = AdjustmentRules(source_of_truth="wms")
    report = await daily_adjustments(ledger, day, rules)
    last = await daily_adjustments(ledger, day - timedelta(days=7), rules)
    assert reason_tallies(report, last) == [
        ReasonTally("damaged", 3, 1, -4, -1, ("MUG",)),
        ReasonTally("received", 1, 1, 24, 48, ()),
        ReasonTally("cycle_count", 1, 0, 0, 0, ()),  # a new count without a change: 0 net
        ReasonTally("shrinkage", 1, 0, -60, 0, ("TEE",)),
        ReasonTally("correction", 0, 1, 0, 2, ()),
    ]
    assert [t.label for t in reason_tallies(report, last)][:2] == ["Damaged", "Received"]
    png = await render_daily_chart(report, last, NY)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    quiet = await daily_adjustments(ledger, day.replace(day=4), rules)  # nothing that day
    assert (await render_daily_chart(quiet, last, NY)).startswith(b"\x89PNG")


async def test_the_scheduled_daily_adjustment_report_gets_its_chart_in_the_thread(
    tmp_path: Path,
) -> None:
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'daily.db'}") as ledger,
    ):
        await ledger.upgrade()
        slack = demo.world.slack
        clock = ManualClock()  # Monday Nov 2 09:00 UTC: the report is of Sunday Nov 1
        await record_adjustments(ledger, datetime(2026, 11, 1, tzinfo=UTC))
        service = Service(demo.config, demo.environ, ledger, clock=clock)
        await service.start(host="127.0.0.1", port=0)
        try:
            await asyncio.wait_for(service.diff_done.wait(), 30)
            await service.idle()
            job = service.scheduler.get_job("daily-adjustments")
            assert job is not None
            job.modify(next_run_time=datetime.now(UTC))  # the scheduler runs it, now
            complete = await asyncio.wait_for(
                slack.wait_for_call(
                    lambda c: (
                        c.method == "files.completeUploadExternal"
                        and "Adjustments by reason code" in str(c.args.get("files"))
                    )
                ),
                30,
            )
            await service.idle()
        finally:
            await service.stop()
    channel = demo.world.alerts_channel
    [report] = [m for m in slack.messages(channel) if m.text.startswith("Adjustments on")]
    assert report.text == "Adjustments on Sun Nov 1: 6, 3 unusual"
    assert complete.ok
    assert (complete.args["channel_id"], complete.args["thread_ts"]) == (channel, report.ts)
    [png] = [f for f in slack.files.values() if f.filename.startswith("daily-adjustments-")]
    assert png.filename == "daily-adjustments-2026-11-01.png"
    assert png.content is not None
    assert png.content.startswith(b"\x89PNG")
    assert png.shared_to == [(channel, report.ts)]
    methods = [c.method for c in slack.requests if c.ok]
    posted = max(
        i
        for i, c in enumerate(slack.requests)
        if c.method == "chat.postMessage" and str(c.args.get("text", "")).startswith("Adjust")
    )
    asked = methods.index("files.getUploadURLExternal", posted)
    assert methods.index("files.completeUploadExternal", asked) > asked
    [reply] = slack.thread(channel, report.ts)[1:]
    assert [f["name"] for f in reply.files] == [png.filename]


async def test_the_scheduled_weekly_summary_gets_its_chart_in_the_thread(tmp_path: Path) -> None:
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'weekly.db'}") as ledger,
    ):
        await ledger.upgrade()
        slack = demo.world.slack
        service = Service(demo.config, demo.environ, ledger, clock=ManualClock())
        await service.start(host="127.0.0.1", port=0)
        try:
            await asyncio.wait_for(service.diff_done.wait(), 30)
            await service.idle()
            job = service.scheduler.get_job("weekly-summary")
            assert job is not None
            job.modify(next_run_time=datetime.now(UTC))  # the scheduler runs it, now
            complete = await asyncio.wait_for(
                slack.wait_for_call(
                    lambda c: (
                        c.method == "files.completeUploadExternal"
                        and "week of" in str(c.args.get("files"))
                    )
                ),
                30,
            )
            await service.idle()
        finally:
            await service.stop()
    channel = demo.world.alerts_channel
    [summary] = [m for m in slack.messages(channel) if m.text.startswith("Weekly drift summary")]
    assert complete.ok
    assert (complete.args["channel_id"], complete.args["thread_ts"]) == (channel, summary.ts)
    [png] = [f for f in slack.files.values() if f.filename.startswith("weekly-summary-")]
    assert png.content is not None
    assert png.content.startswith(b"\x89PNG")
    assert png.shared_to == [(channel, summary.ts)]
    methods = [c.method for c in slack.requests if c.ok]
    posted = max(
        i
        for i, c in enumerate(slack.requests)
        if c.method == "chat.postMessage" and str(c.args.get("text", "")).startswith("Weekly")
    )
    asked = methods.index("files.getUploadURLExternal", posted)
    assert methods.index("files.completeUploadExternal", asked) > asked
    replies = slack.thread(channel, summary.ts)[1:]
    # the incidents chart, then the 30-day drift rate per hop (bot.chain_chart)
    charts = [f["name"] for reply in replies for f in reply.files]
    assert charts == [png.filename, png.filename.replace("weekly-summary-", "hop-drift-")]
