"""``driftwatch packet``: the inventory reliability packet, written as Markdown and HTML
with its charts from the configuration and the ledger — and from the demo world."""

from __future__ import annotations

import asyncio
import importlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from kpi_testing import BASELINE, START, WEEK, WRITER, seed_history

from bot.cli.packet import demo_packet, run_packet_command
from connectors import ManualClock
from ledger import Ledger

PNG = b"\x89PNG\r\n\x1a\n"

CONFIG = """
timezone = "UTC"
source_of_truth = ["wms"]

[[systems]]
name = "shopify"
kind = "shopify"
shop_url = "http://127.0.0.1:9"
writable = true

[[systems]]
name = "wms"
kind = "rest"
role = "warehouse"
base_url = "http://127.0.0.1:9"
list = {{ path = "/levels" }}
fields = {{ sku = "sku", location = "wh", quantities = {{ available = "free", committed = "al" }} }}

[locations.east]
shopify = "gid://shopify/Location/1"
wms = "WH-EAST"

[skus]
aliases = {{ "OLD|<b>" = "HIST-1" }}
tags = {{ hero = ["HIST-1"] }}

[safety_stock]
skus = {{ "OTHER-1" = 1 }}

[thresholds]
default = {{ absolute = 3, percent = 2.0 }}

[policy]
auto_resync = true
auto_resync_max_units = 4

[slack]
alerts_channel = "C0DRIFT01"
oncall_usergroup = "S0ONCALL"
writers = {{ users = ["U0OPS001"] }}

[[chain.hops]]
upstream = "wms"
downstream = "shopify"
trigger = "webhook"
transform = "minus safety stock <script>alert(1)</script>"
sla_seconds = {sla}

[database]
url = "sqlite+aiosqlite:///{db}"
"""


@pytest.fixture
async def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    db = tmp_path / "packet.db"
    async with Ledger.from_url(f"sqlite:///{db}") as ledger:
        await ledger.upgrade()
        await seed_history(ledger)
        await ledger.record_verdict(
            BASELINE, "escalate", WRITER, START - timedelta(days=7), note="| <script>x</script> |"
        )
        await ledger.record_verdict(WEEK, "pass", WRITER, START, note="trend down")
    path = tmp_path / "driftwatch.toml"
    path.write_text(CONFIG.format(db=db, sla=600), "utf-8")
    return path


async def test_the_packet_is_written_from_the_configuration_and_the_ledger(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "packet"
    assert await run_packet_command(config_file, out, demo=False, clock=ManualClock(START)) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["markdown"] == str(out / "packet.md")
    markdown = (out / "packet.md").read_text("utf-8")
    html = (out / "packet.html").read_text("utf-8")
    for chart in ("signal-chain.png", "hop-drift.png", "kpi-trend.png"):
        assert (out / "charts" / chart).read_bytes().startswith(PNG)
        assert f"charts/{chart}" in markdown
        assert f'src="charts/{chart}"' in html
    for heading in (
        "## Sync contract",
        "### Source-of-truth hierarchy",
        "### State mapping",
        "### SKU normalization",
        "### Transforms",
        "### Idempotency keys",
        "### Hops and their SLAs",
        "## Escalation rulebook",
        "### Auto-resync policy",
        "### Escalation",
        "## Weekly KPI dashboard",
        "### Cycle counts this week",
    ):
        assert heading in markdown, heading
    # generated from the configuration: what the file says shows up
    assert "- first: wms (warehouse, rest)" in markdown
    assert "available ← free, committed ← al" in markdown
    assert "more than 3 units and more than 2 % of the source-of-truth count" in markdown
    assert "only count drifts (oversell risk, undersell, count mismatch) of at most 4 units" in (
        markdown
    )
    assert "the on-call user group S0ONCALL" in markdown
    assert "per SKU {'OTHER-1': 1}" in markdown
    # the hop: declared beside measured (the seeded history's last 7 days)
    assert "| wms → shopify | webhook |" in markdown
    assert "| 10 min | 6 | 30 min | 30 min | 30 min | 0% | 1 | OVER SLA |" in markdown
    # the weeks with their decisions: who, when, the note
    assert "Nov 2 – Nov 8, 2026 (baseline)" in markdown
    assert "Not yet: escalate | U0OPS001, Mon Nov 9, 09:00" in markdown
    assert "| Pass: trend down | U0OPS001, Mon Nov 16, 09:00 | trend down |" in markdown
    assert "Nov 16 – Nov 22, 2026 (so far)" in markdown
    # outside text stays text: escaped for each format
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\\| \\<script\\>x\\</script\\> \\|" in markdown
    assert "OLD\\|\\<b\\>" in markdown
    # the packet names functions of the code: they exist
    assert importlib.import_module("monitors.resync").resync_key
    assert importlib.import_module("monitors.adjustments").adjustment_key


async def test_the_packet_follows_the_configuration(config_file: Path, tmp_path: Path) -> None:
    text = await asyncio.to_thread(config_file.read_text, "utf-8")
    text = text.replace("sla_seconds = 600", "sla_seconds = 7200")
    await asyncio.to_thread(config_file.write_text, text, "utf-8")
    out = tmp_path / "again"
    assert await run_packet_command(config_file, out, demo=False, clock=ManualClock(START)) == 0
    markdown = (out / "packet.md").read_text("utf-8")
    assert "| 2 h | 6 | 30 min | 30 min | 30 min | 0% | 1 | ok |" in markdown


async def test_the_demo_packet(tmp_path: Path) -> None:
    out = tmp_path / "demo-packet"
    files = await demo_packet(out, scenarios=["damaged-on-the-shelf"])
    markdown = files.markdown.read_text("utf-8")
    assert "| shopify | shopify | storefront |" in markdown
    assert "| erp | csv | erp |" in markdown
    assert "wms → shopify" in markdown
    assert "wms → erp" in markdown
    assert "(so far)" in markdown
    assert len(files.charts) == 3
    assert all(c.read_bytes().startswith(PNG) for c in files.charts)
