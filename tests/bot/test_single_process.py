"""SQLite stays single-process (issue 15, item 7): a second ``driftwatch serve`` on the
same SQLite file is refused with a clear message, before it runs any job; the lock
dies with its process, even under ``kill -9``. PostgreSQL takes no such lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.demo import demo_world
from bot.service import Service
from connectors import ManualClock
from ledger import Ledger
from ledger.single_process import DatabaseInUse, process_lock

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
source_of_truth = ["wms"]

[[systems]]
name = "shopify"
kind = "shopify"
shop_url = "http://127.0.0.1:9"
token_env = "LOCK_TEST_SHOPIFY_TOKEN"

[[systems]]
name = "wms"
kind = "rest"
role = "warehouse"
base_url = "http://127.0.0.1:9"
list = {{ path = "/levels" }}
fields = {{ sku = "sku", location = "wh", quantities = {{ available = "free" }} }}

[locations.east]
shopify = "gid://shopify/Location/1"
wms = "WH-EAST"

[server]
port = 0

[database]
url = "sqlite+aiosqlite:///{db}"

[slack]
alerts_channel = "C0LOCKTEST"
api_url = "http://127.0.0.1:9/api/"
bot_token_env = "LOCK_TEST_SLACK_TOKEN"
"""


def serve(config: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"LOCK_TEST_SHOPIFY_TOKEN": "shpat_lock", "LOCK_TEST_SLACK_TOKEN": "xoxb-lock"}
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_a_second_serve_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "one.db"
    config = tmp_path / "driftwatch.toml"
    config.write_text(CONFIG.format(db=db))
    first = serve(config)
    second: subprocess.Popen[str] | None = None
    third: subprocess.Popen[str] | None = None
    try:
        assert first.stdout is not None
        line = first.stdout.readline()  # the event: it serves
        assert line.startswith("driftwatch serving on http://127.0.0.1:"), line
        second = serve(config)
        out, err = second.communicate(timeout=120)  # a hang guard, not a verdict
        assert second.returncode == 2, (out, err)
        assert "serving on" not in out
        assert f"another driftwatch serve (pid {first.pid}, since " in err
        assert f"is using the SQLite database {db}" in err
        assert "SQLite serves one process at a time" in err
        assert "PostgreSQL (set DATABASE_URL)" in err
        # kill -9: no clean-up runs, yet the kernel drops the lock with the process
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        third = serve(config)
        assert third.stdout is not None
        line = third.stdout.readline()
        assert line.startswith("driftwatch serving on http://127.0.0.1:"), line
    finally:
        for process in (first, second, third):
            if process is not None:
                process.kill()
                process.communicate(timeout=60)


async def test_two_services_on_one_sqlite_file_in_one_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with (
        demo_world() as demo,
        Ledger.from_url(url) as one_ledger,
        Ledger.from_url(url) as other_ledger,
    ):
        await one_ledger.upgrade()
        one = Service(demo.config, demo.environ, one_ledger, clock=ManualClock())
        other = Service(demo.config, demo.environ, other_ledger, clock=ManualClock())
        await one.start(host="127.0.0.1", port=0, schedule=False)
        try:
            with pytest.raises(DatabaseInUse, match=f"pid {os.getpid()}"):
                await other.start(host="127.0.0.1", port=0, schedule=False)
            assert other.url is None, "refused before it served anything"
        finally:
            await other.stop()
            await one.stop()
        # once the first has stopped, the file is free again
        again = Service(demo.config, demo.environ, other_ledger, clock=ManualClock())
        await again.start(host="127.0.0.1", port=0, schedule=False)
        await again.stop()


def test_postgresql_and_memory_take_no_lock(tmp_path: Path) -> None:
    assert process_lock("postgresql+psycopg://u@127.0.0.1:5432/test") is None
    assert process_lock("sqlite+aiosqlite:///:memory:") is None
    lock = process_lock(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    assert lock is not None
    assert lock.path == tmp_path / "x.db.serve.lock"
