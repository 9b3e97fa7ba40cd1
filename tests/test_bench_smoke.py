"""The benchmarks still run: B6 (incident storm → pipeline → outbox → fake Slack) at a
toy size, in-process, and its outcome summarized and rendered as BENCHMARKS.md is."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from bench import b6_storm
from bench._common import machine
from bench.report import render, summarize


async def test_a_toy_storm_is_measured_and_reported() -> None:
    outcome = await b6_storm.run(b6_storm.Size(skus=300))

    result = outcome.to_json()
    assert [c["name"] for c in result["checks"]] == [
        "B6 Slack messages for the storm",
        "B6 Slack 429 answers",
    ]
    messages, limited = result["checks"]
    assert messages["value"] <= 5, "a storm is grouped into a few messages"
    assert messages["baseline"] == 300
    assert limited["value"] == 0
    assert result["facts"]["outbox_pending"] == 0
    assert result["peak_rss_mb"] > 0

    summary = summarize("B6", [result, result], seconds=1.0)
    assert [c.value for c in summary.checks] == [messages["value"], 0]
    text = render([summary], machine(), "python -m bench --only B6", datetime.now(UTC), quick=True)
    assert "| B6 | B6 Slack 429 answers | 0 | == 0 | met | — | — | 2 |" in text
    assert f"{messages['value']} | <= 5 | met | 300 |" in text


def _tool(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m module args``, as a user runs a bench tool; 600 s is a hang guard."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_the_steps_tool_refuses_a_size_shopify_would_read_page_by_page() -> None:
    done = _tool("bench.steps", "300")
    assert done.returncode == 2
    assert "SKUS must be above 5,000" in done.stderr


def test_the_steps_tool_reports_each_step_at_the_smallest_bulk_size() -> None:
    """With ``--floor``, each system's read against decoding its bytes alone first."""
    done = _tool("bench.steps", "5001", "--reads", "1", "--floor")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "floor shopify",
        "floor wms",
        "floor erp",
        "reads",
        "first",
        "second",
    ]
    # decoded alone: Shopify's items and their levels, the WMS's levels, the ERP's rows
    # and its header
    assert "(30,006 objects or rows)" in lines[0]
    assert "(25,005 objects or rows)" in lines[1]
    assert "(25,006 objects or rows)" in lines[2]
    levels = 5001 * 5 * 13  # SKUs × locations × states (Shopify's 8, the WMS's 4, the ERP's 1)
    first, second = lines[4], lines[5]
    assert f"observed={levels}, changed={levels}, stale=0" in first
    assert f"observed={levels}, changed=" in second
    assert f"changed={levels}" not in second


def test_the_download_tool_reads_the_same_file_both_ways_in_turn() -> None:
    done = _tool("bench.download", "5001", "--runs", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "connector",
        "httpx",
        "connector",
        "httpx",
        "medians",
    ]
    # every read is the whole file: 5,001 items × 5 locations, the same levels each way
    assert all("(25,005 levels," in line for line in lines[:4])
    assert "ratio" in lines[4]


def test_the_collector_tool_reports_each_diff_both_ways() -> None:
    for extra in ([], ["--freeze"]):
        done = _tool("bench.collector", "--skus", "200", "--diffs", "2", *extra)
        assert done.returncode == 0, done.stderr[-2000:]
        lines = done.stdout.splitlines()
        assert [line.split(":")[0] for line in lines] == ["diff 0", "diff 1"]
        assert all(" s CPU at its end and after, " in line for line in lines)
        assert all(line.endswith(" full walks") for line in lines)
