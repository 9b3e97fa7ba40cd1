"""The ``driftwatch`` command as a user runs it: a real process, its output and exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "driftwatch.example.toml"
SECRETS = {
    "SHOPIFY_ACCESS_TOKEN": "shpat_cli_test_value_1",
    "SHOPIFY_WEBHOOK_SECRET": "whsec_cli_test_value_2",
    "WMS_API_TOKEN": "wms_cli_test_value_3",
    "SLACK_BOT_TOKEN": "xoxb-cli-test-value-4",
    "SLACK_SIGNING_SECRET": "signing_cli_test_value_5",
}


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd or ROOT,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "demo"),
        (("demo",), "fake Shopify"),
        (("check",), "every problem"),
        (("db", "upgrade"), "Alembic"),
        (("diff",), "table"),
        (("serve",), "healthz"),
        (("webhooks",), "webhook_url"),
    ],
)
def test_every_command_explains_itself(args: tuple[str, ...], expected: str) -> None:
    result = run(*args, "--help")
    assert result.returncode == 0
    assert expected in result.stdout


def test_check_passes_on_the_example_config() -> None:
    result = run("check", "--config", str(EXAMPLE), env=SECRETS)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_names_unset_secrets_without_printing_any_value() -> None:
    env = {k: v for k, v in SECRETS.items() if k != "WMS_API_TOKEN"}
    result = run("check", "--config", str(EXAMPLE), env=env)
    assert result.returncode == 1
    assert "environment variable WMS_API_TOKEN is not set" in result.stderr
    for value in SECRETS.values():
        assert value not in result.stdout + result.stderr


def test_check_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    text = EXAMPLE.read_text("utf-8")
    broken = text.replace('base_url = "https://', 'base_url = "ftp://', 1).replace(
        'source_of_truth = ["', 'source_of_truth = ["wmz", "', 1
    )
    assert broken != text
    path = tmp_path / "driftwatch.toml"
    path.write_text("unknown_key = 1\n" + broken, "utf-8")
    result = run("check", "--config", str(path), "--no-env")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("systems[1].base_url:") for line in lines), lines
    assert any(line.startswith("source_of_truth") and "wmz" in line for line in lines), lines
    assert any(line.startswith("unknown_key:") for line in lines), lines
    assert "Traceback" not in result.stderr


def test_a_missing_config_is_one_clear_line(tmp_path: Path) -> None:
    result = run("check", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not found" in result.stderr


def test_db_upgrade_migrates_a_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    result = run("db", "upgrade", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "ledger at revision" in result.stdout
    assert db.exists()


def test_a_bad_database_url_is_one_line() -> None:
    result = run("db", "upgrade", env={"DATABASE_URL": "mysql://nobody@nowhere/db"})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_diff_of_the_demo_world_as_json() -> None:
    result = run("diff", "--demo", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    [drift] = report["drifts"]
    assert (drift["kind"], drift["sku"], drift["location"], drift["gap"]) == (
        "oversell_risk",
        "TEE-BLK-M",
        "east",
        12,
    )


def test_diff_of_the_demo_world_as_a_table_for_one_sku() -> None:
    result = run("diff", "--demo", "--sku", "tee-blk-m")
    assert result.returncode == 0, result.stderr
    assert "TEE-BLK-M" in result.stdout
    assert "oversell_risk" in result.stdout
    assert result.stdout.strip().endswith("1 drift")


def test_diff_without_secrets_says_which_is_missing() -> None:
    result = run("diff", "--config", str(EXAMPLE))
    assert result.returncode == 1
    assert "SHOPIFY_ACCESS_TOKEN is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_headless_demo_plays_a_scenario_and_writes_a_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run(
        "demo",
        "--headless",
        "--scenario",
        "manual-storefront-override",
        "--db",
        str(tmp_path / "demo.db"),
        "--report",
        str(report),
    )
    assert result.returncode == 0, result.stderr
    assert "Oversell risk: TEE-BLK-M at east" in result.stdout
    assert "Oversell risk: CAP-NAVY at east" in result.stdout
    assert "[ Resync ]" in result.stdout
    assert (tmp_path / "demo.db").exists()
    data = json.loads(report.read_text("utf-8"))
    found = {(i["kind"], i["sku"], i["location"]) for i in data["incidents"]}
    assert found == {("oversell_risk", "TEE-BLK-M", "east"), ("oversell_risk", "CAP-NAVY", "east")}
    [played] = data["scenarios"]
    assert played["name"] == "manual-storefront-override"
    assert played["expected_root_cause"] == played["observed_root_cause"]
    assert played["match"] is True
    assert data["final_quantities"]["shopify"]["TEE-BLK-M@east"]["available"] == 40
    assert data["final_quantities"]["wms"]["CAP-NAVY@east"]["pickable"] == 12
    assert data["final_quantities"]["erp"]["CAP-NAVY@east"]["qty"] == 12
    summaries = [m for m in data["messages_posted"] if m["text"].startswith("Weekly drift summary")]
    assert len(summaries) == 1  # the week so far, with its decision buttons
    assert len(data["messages_posted"]) == 2 + len(summaries)


def test_an_unknown_scenario_lists_the_valid_names_in_one_line() -> None:
    result = run("demo", "--headless", "--scenario", "flash-sale")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("driftwatch: no scenario 'flash-sale'; choose one of: ")
    assert "flash-sale-race" in line
    assert "webhook-secret-rotated" in line
    assert result.stdout == ""


def test_a_report_without_headless_is_refused_plainly() -> None:
    result = run("demo", "--report", "x.json")
    assert result.returncode == 1
    assert result.stderr.strip() == "driftwatch: --report needs --headless"


def test_debug_is_accepted_after_the_subcommand_as_the_errors_suggest() -> None:
    result = run("demo", "--report", "x.json", "--debug")
    assert "unrecognized arguments" not in result.stderr
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "CliError: --report needs --headless" in result.stderr
    for args in (("db", "upgrade", "--debug", "--help"), ("check", "--debug", "--help")):
        assert "--debug" in run(*args).stdout


def test_an_unknown_sku_in_a_demo_diff_is_an_error_with_close_matches() -> None:
    result = run("diff", "--demo", "--json", "--sku", "tee-blk")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "driftwatch: no system has a SKU 'tee-blk'; did you mean TEE-BLK-M or TEE-WHT-M?"
    )
    known_and_not = run("diff", "--demo", "--sku", "TEE-BLK-M", "--sku", "NOPE-1")
    assert known_and_not.returncode == 1
    assert "TEE-BLK-M" in known_and_not.stdout
    assert "no system has a SKU 'NOPE-1'" in known_and_not.stderr


def test_a_missing_shopify_schema_says_what_is_missing_and_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "admin.graphql.xz"
    result = run("diff", "--demo", env={"DRIFTWATCH_SHOPIFY_SCHEMA": str(missing)})
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "unexpected error" not in line
    assert str(missing) in line
    assert "DRIFTWATCH_SHOPIFY_SCHEMA" in line


def test_the_readmes_export_line_sets_every_secret_check_asks_for() -> None:
    """The README's Configure section: copy the example, export the line, check."""
    readme = (ROOT / "README.md").read_text("utf-8")
    [line] = [x for x in readme.splitlines() if x.startswith("export ")]
    names = [word.split("=")[0] for word in line.split()[1:]]
    assert set(names) >= {"SHOPIFY_ACCESS_TOKEN", "SLACK_SIGNING_SECRET"}
    result = run("check", "--config", str(EXAMPLE), env={n: f"value-of-{n}" for n in names})
    assert result.returncode == 0, result.stderr


def test_ctrl_c_stops_the_demo_while_the_scenarios_play(tmp_path: Path) -> None:
    """The README says Ctrl-C stops it; it used to be heard only after all eleven
    scenarios had played (about a minute)."""
    base = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "DATABASE_URL"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "demo", "--db", str(tmp_path / "demo.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=base,
        cwd=ROOT,
    )
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:  # the event: the scenarios have started to play
            lines.append(line)
            if line.startswith("▶ "):
                break
        assert lines[0].startswith("Open the channel in your browser:  http://127.0.0.1:")
        demo.send_signal(signal.SIGINT)
        rest, errors = demo.communicate(timeout=120)  # a hang guard, not a verdict
    finally:
        demo.kill()
    assert demo.returncode == 0, errors
    assert rest.rstrip().endswith("Stopped.")
    assert "incidents;" not in rest  # it did not play on to the end
