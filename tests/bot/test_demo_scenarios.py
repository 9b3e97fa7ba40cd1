"""``driftwatch demo --headless --report``: every scenario, played in one demo run as a
user (or CI) runs it, leads to the incident it scripts, and the report names the root
cause the scenario expects (for the webhook scenarios: the webhook incident's kind)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.scenarios import by_name, names

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo") / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--headless", "--report", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(out.read_text("utf-8"))
    return data


def test_the_report_says_what_happened(report: dict[str, Any]) -> None:
    assert [s["name"] for s in report["scenarios"]] == names()
    still_open = [i for i in report["incidents"] if i["status"] == "open"]
    assert len(report["messages_posted"]) >= len(still_open)
    kinds = {i["kind"] for i in report["incidents"]}
    assert {"oversell_risk", "undersell", "count_mismatch"} <= kinds
    # The README's "auto-resyncs small, safe drifts": the policy fixed exactly the
    # scripted small drift, on its own, and nothing a person should look at.
    auto = {e["sku"] for s in report["scenarios"] for e in s["expectations"] if e["auto_resynced"]}
    assert auto == {"BOTTLE-STEEL"}
    [applied] = report["resyncs_applied"]
    assert (applied["sku"], applied["by"], applied["before"], applied["after"]) == (
        "BOTTLE-STEEL",
        "auto-resync policy",
        30,
        27,
    )
    assert report["final_quantities"]["shopify"]["BOTTLE-STEEL@east"]["available"] == 27
    [card] = [m for m in report["messages_posted"] if "BOTTLE-STEEL" in (m["text"] or "")]
    assert card["thread_replies"] >= 1
    for system in ("shopify", "wms", "erp"):
        assert report["final_quantities"][system]
    hinted = [i for i in report["incidents"] if i["root_cause"]]
    assert all(i["root_cause_hint"].startswith("Likely") for i in hinted)


@pytest.mark.parametrize("name", names())
def test_each_scenario_names_its_expected_root_cause(report: dict[str, Any], name: str) -> None:
    [played] = [s for s in report["scenarios"] if s["name"] == name]
    want = by_name(name).expected[0]
    assert played["expected_root_cause"] == (want.cause or want.kind)
    primary = played["expectations"][0]
    assert primary["incident_found"], f"no {want.kind} incident for {want.sku} ({want.system})"
    assert played["observed_root_cause"] == played["expected_root_cause"], primary["observed_hint"]
    assert played["match"] is True
    assert primary["auto_resynced"] is want.auto_resync
