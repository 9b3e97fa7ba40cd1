"""The signal chain for people: ``/synchealth chain`` through the real bolt app and the
fake Slack, the hop-over-SLA health alert, and ``driftwatch chain [--json]``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kpi_testing import START, WRITER, kpi_bot, seed_history

from bot.cli.chain import run_chain_command
from bot.cli.main import main
from connectors import ManualClock
from ledger import Ledger
from monitors.mrkdwn import when

PNG = b"\x89PNG\r\n\x1a\n"
SLA = {
    "chain": {
        "hops": [
            {
                "upstream": "wms",
                "downstream": "shopify",
                "trigger": "webhook",
                "transform": "pickable + allocated <!channel> *all*",
                "sla_seconds": 600,
            }
        ]
    }
}


async def test_synchealth_chain_posts_the_chain_with_its_chart(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "chain.db"), config=SLA) as bot:
        delivery = await bot.slack.page.slash_command(bot.channel, WRITER, "/synchealth chain")
        assert delivery.status == 200
        await bot.settle()
        [posted] = [m for m in bot.messages() if m.text.startswith("Signal chain")]
        assert posted.text == (
            f"Signal chain: 1 hops measured; over SLA: wms → shopify (asked by <@{WRITER}>)"
        )
        shown = json.dumps(posted.blocks, ensure_ascii=False)
        # the last 7 days: HIST-1's changes took 30 minutes, the newest is in transit
        assert "• *wms → shopify* (webhook): 6 changes: p50 30 min, p95 30 min" in shown
        assert "1 in transit (SLA 10 min) :warning: *over its SLA*" in shown
        assert "_transform: pickable + allocated &lt;!channel&gt; *all*_" in shown
        assert "<!channel>" not in shown
        [chart] = [f for m in bot.slack.thread(bot.channel, posted.ts) for f in m.files]
        assert chart["name"] == "signal-chain.png"
        stored = bot.slack.files[chart["id"]]
        assert stored.content is not None
        assert stored.content.startswith(PNG)
        (tmp_path / "signal-chain.png").write_bytes(stored.content)
        # /synchealth alone is still the systems' health
        await bot.slack.page.slash_command(bot.channel, WRITER, "/synchealth")
        await bot.settle()
        assert bot.told(WRITER)[-1] == "Sync health"


async def test_a_hop_over_its_sla_alerts_with_the_chain_chart(tmp_path: Path) -> None:
    async with kpi_bot(str(tmp_path / "sla.db"), config=SLA) as bot:
        jobs = {job.id for job in bot.service.scheduler.get_jobs()}
        assert {"chain-health", "verdict-reminder"} <= jobs  # what `serve` runs on its own
        await bot.service.kpi_jobs.check_chain()
        await bot.settle()
        [alert] = [m for m in bot.messages() if "over its 10 min SLA" in m.text]
        assert (
            alert.text == "wms → shopify: changes take 30 min to arrive (p95), over its 10 min SLA"
        )
        shown = json.dumps(alert.blocks, ensure_ascii=False)
        assert "*System*\\nwms → shopify" in shown
        assert "Measure where the time goes" in shown  # the advice for this kind
        # the last good sync: the last change that reached the storefront (day 12, 10:30)
        last = datetime(2026, 11, 14, 10, 30, tzinfo=UTC)  # each reader's zone, via <!date>
        assert f"*Last good sync*\\n{when(last)}" in shown
        files = [f["name"] for m in bot.slack.thread(bot.channel, alert.ts) for f in m.files]
        assert files == ["signal-chain.png"]
        [incident] = await bot.ledger.list_incidents(kind="hop_over_sla")
        assert incident.system == "wms → shopify"
        # checked again an hour later: the same incident, no second alert
        bot.clock.advance(3600)
        await bot.service.kpi_jobs.check_chain()
        await bot.settle()
        assert len([m for m in bot.messages() if "over its 10 min SLA" in m.text]) == 1
        # the sync-health job does not resolve it
        await bot.service.health_job.run()
        [still] = await bot.ledger.list_incidents(kind="hop_over_sla")
        assert still.status == "open"


CONFIG = """
timezone = "UTC"
source_of_truth = ["wms"]

[[systems]]
name = "shopify"
kind = "shopify"
shop_url = "http://127.0.0.1:9"

[[systems]]
name = "wms"
kind = "rest"
role = "warehouse"
base_url = "http://127.0.0.1:9"
list = {{ path = "/levels" }}
fields = {{ sku = "sku", location = "wh", quantities = {{ available = "a", committed = "c" }} }}

[locations.east]
shopify = "gid://shopify/Location/1"
wms = "E"

[slack]
alerts_channel = "C0DRIFT01"

[[chain.hops]]
upstream = "wms"
downstream = "shopify"
trigger = "poll"
transform = "a | b <script>"
sla_seconds = 3600

[database]
url = "sqlite+aiosqlite:///{db}"
"""


@pytest.fixture
async def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    db = tmp_path / "cli.db"
    async with Ledger.from_url(f"sqlite:///{db}") as ledger:
        await ledger.upgrade()
        await seed_history(ledger)
    path = tmp_path / "driftwatch.toml"
    path.write_text(CONFIG.format(db=db), "utf-8")
    return path


async def test_driftwatch_chain_prints_the_measured_chain(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_chain_command(config_file, as_json=True, clock=ManualClock(START)) == 0
    data = json.loads(capsys.readouterr().out)
    [hop] = data["hops"]
    assert hop["hop"] == "wms>shopify"
    assert hop["declared"] == {
        "trigger": "poll",
        "transform": "a | b <script>",
        "sla_seconds": 3600,
    }
    assert hop["measured"]["arrived"] == 6
    assert hop["measured"]["pending"] == 1
    assert hop["measured"]["p95_seconds"] == 1800.0
    assert hop["over_sla"] is False
    assert (
        await run_chain_command(config_file, as_json=False, days=14, clock=ManualClock(START)) == 0
    )
    table = capsys.readouterr().out
    lines = table.splitlines()
    assert lines[0].split() == [
        "HOP", "TRIGGER", "SLA", "CHANGES", "P50", "P95", "MAX", "NEVER", "PENDING",
    ]  # fmt: skip
    # 14 days: the baseline week's 6 quick changes and this week's 6 slower ones
    assert lines[2].split()[:9] == ["wms", "→", "shopify", "poll", "60", "min", "12", "2", "min"]
    assert "wms → shopify: a | b <script>" in table


async def test_driftwatch_chain_without_a_ledger_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    path = tmp_path / "driftwatch.toml"
    path.write_text(CONFIG.format(db=tmp_path / "empty.db"), "utf-8")
    assert await run_in_thread(["chain", "--config", str(path)]) == 1
    assert "has no history yet" in capsys.readouterr().err
    assert await run_in_thread(["chain", "--config", str(path), "--days", "0"]) == 1


async def run_in_thread(argv: list[str]) -> int:
    import asyncio

    return await asyncio.to_thread(main, argv)


def test_the_chain_chart_draws_a_hop_with_nothing_measured_yet() -> None:
    """A hop with no change that arrived and no declared SLA (a fresh install, a quiet
    week): the chart says so instead of failing (it raised TypeError in max())."""
    from bot.charts.chain import render_chain_png
    from monitors.chain import HopSpec, HopStats

    start = datetime(2026, 11, 9, tzinfo=UTC)
    quiet = HopStats(
        hop=HopSpec("wms", "shopify"),
        start=start,
        end=start + timedelta(days=7),
        arrived=0,
        lost=0,
        pending=0,
        p50=None,
        p95=None,
        max=None,
    )
    png = render_chain_png("Signal chain", [quiet])
    assert png.startswith(b"\x89PNG")
