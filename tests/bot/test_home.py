"""The KPI dashboard in Slack's Home tab, through the real bolt app and the fake Slack:
the fake sends a signed ``app_home_opened``, the service publishes with
``views.publish``, and the fake accepts only what Slack would."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from kpi_testing import BASELINE, ONCALL, VIEWER, WEEK, WRITER, KpiBot, day, kpi_bot

from ledger import Ledger
from sandbox.slack import Call

PNG = b"\x89PNG\r\n\x1a\n"


def published(call: Call) -> bool:
    return call.method == "views.publish" and call.ok


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


async def hostile(ledger: Ledger) -> None:
    from kpi_testing import seed_history

    await seed_history(ledger)
    await ledger.open_incident(
        "test:evil", "count_mismatch", "critical", "<!channel> *boom* <https://evil.example|x>",
        day(14), sku="EVIL<@U0OPS001>", location="east&west",
    )  # fmt: skip
    await ledger.record_verdict(
        WEEK, "pass", WRITER, day(14, 9), note="<!here> trend down & no spikes"
    )


async def open_home(bot: KpiBot, user: str = WRITER) -> dict[str, Any]:
    """The person opens the Home tab; the publish the event started is awaited."""
    before = sum(1 for c in bot.slack.requests if published(c) and c.args.get("user_id") == user)
    delivery = await bot.slack.home.open(user)
    assert (delivery.status, delivery.error) == (200, None)
    await bot.settle()  # the publish runs after the ack, tracked by the service
    after = sum(1 for c in bot.slack.requests if published(c) and c.args.get("user_id") == user)
    assert after == before + 1
    view = bot.slack.home.view(user)
    assert view is not None
    return view.view


async def test_opening_the_home_tab_publishes_the_kpi_dashboard(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "home.db"), seed=hostile) as bot:
        view = await open_home(bot)
        blocks = view["blocks"]
        shown = texts(blocks)
        assert view["type"] == "home"
        assert blocks[0]["text"]["text"] == "Driftwatch · inventory reliability"
        assert "baseline: the week of Nov 2" in shown
        fields = [f["text"] for f in blocks[2]["fields"]]
        labels = [f.split("\n")[0] for f in fields]
        assert labels == [
            "*Mismatch rate*",
            "*Oversell incidents*",
            "*Auto-resync success*",
            "*Manual interventions*",
            "*MTTA*",
            "*MTTR*",
            "*Shrinkage (line 2%)*",
            "*Open incidents*",
        ]
        assert "*Mismatch rate by location* (this week so far)" in shown
        # the latest verdict, and the person's note escaped
        assert "Pass: trend down" in shown
        assert "&lt;!here&gt; trend down &amp; no spikes" in shown
        # outside strings cannot ping the channel, link or mention anyone
        assert "&lt;!channel&gt; *boom* &lt;https://evil.example|x&gt;" in shown
        assert "EVIL&lt;@U0OPS001&gt;" in shown
        assert "<!channel>" not in shown
        assert "<!here>" not in shown
        # the trend charts are the bot's own PNG uploads, shown with slack_file
        images = [b for b in blocks if b["type"] == "image"]
        assert len(images) == 2
        for image in images:
            file = bot.slack.files[image["slack_file"]["id"]]
            assert file.content is not None
            assert file.content.startswith(PNG)
            (tmp_path / file.filename).write_bytes(file.content)
        assert "*The signal chain*" in shown
        assert "wms → shopify" in shown
        assert "*Cycle counts for the week of Nov 16" in shown
        assert len(blocks) <= 100


async def test_a_storm_of_openings_computes_the_dashboard_once(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "storm.db")) as bot:
        users = [WRITER, ONCALL, VIEWER] * 4
        deliveries = await asyncio.gather(*(bot.slack.home.open(u) for u in users))
        assert [d.status for d in deliveries] == [200] * len(users)
        await bot.settle()
        calls = [c for c in bot.slack.requests if published(c)]
        assert len(calls) == len(users)
        uploads = [c for c in bot.slack.calls("files.getUploadURLExternal")]
        charts = [
            c for c in uploads if c.args.get("filename") in ("kpi-trend.png", "hop-drift.png")
        ]
        assert len(charts) == 2  # rendered and uploaded once for everybody
        assert {bot.slack.home.view(u) is not None for u in users} == {True}
        # Slack's retry of an event it thinks failed publishes again, harmlessly
        retry = await bot.slack.home.deliver(bot.slack.home.event(WRITER), retry=1)
        assert retry.status == 200


async def test_a_long_incident_list_stays_within_slacks_limits(tmp_path: Path) -> None:
    async def many(ledger: Ledger) -> None:
        for i in range(300):
            await ledger.open_incident(
                f"test:many:{i}", "undersell", "warning", f"SKU-{i} " + "x" * 400, day(14),
                sku=f"SKU-{i}" + "Y" * 200, location="east",
            )  # fmt: skip

    async with kpi_bot(str(tmp_path / "many.db"), seed=many) as bot:
        view = await open_home(bot)  # the fake accepted it: every limit respected
        shown = texts(view["blocks"])
        assert "…and " in shown
        assert "more: `/incidents` lists them." in shown
        assert len(view["blocks"]) <= 100


async def test_slack_failing_between_the_event_and_the_publish(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "down.db")) as bot:
        # Slack acks the event, then refuses the chart's upload and the publish
        bot.slack.force_error("files.getUploadURLExternal", "fatal_error", 1)
        bot.slack.force_error("views.publish", "fatal_error", 1)
        delivery = await bot.slack.home.open(WRITER)
        assert delivery.status == 200
        await bot.settle()
        assert bot.slack.home.view(WRITER) is None
        # the next opening publishes the whole dashboard: the missing chart was retried
        view = await open_home(bot)
        assert len([b for b in view["blocks"] if b["type"] == "image"]) == 2


async def test_only_the_home_tab_is_published(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "tab.db"), seed=None) as bot:
        delivery = await bot.slack.home.open(WRITER, tab="messages")
        assert delivery.status == 200
        await bot.settle()
        assert not [c for c in bot.slack.requests if c.method == "views.publish"]
        # an empty ledger still makes a valid dashboard
        view = await open_home(bot)
        shown = texts(view["blocks"])
        assert "No decision recorded yet" in shown
        assert BASELINE.isoformat() not in shown


async def test_opened_again_hours_later_the_dashboard_is_fresh(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "later.db")) as bot:
        first = texts((await open_home(bot))["blocks"])
        assert "No decision recorded yet" in first
        await bot.ledger.record_verdict(WEEK, "escalate", ONCALL, bot.clock.now(), note="slow hop")
        # within a minute the same dashboard is shown (computed once for everybody)
        bot.clock.advance(30)
        assert texts((await open_home(bot, ONCALL))["blocks"]) == first
        # two hours later it is computed again, with the decision
        bot.clock.advance(2 * 3600)
        later = texts((await open_home(bot))["blocks"])
        assert "Not yet: escalate" in later
        assert "slow hop" in later
