"""N ``driftwatch serve`` processes on one PostgreSQL, against the sandbox in a process of
its own (:mod:`sandbox.fleet`), behind its round-robin balancer.

Used by ``tests/replicas`` and B8. Everything is a real OS process: the fakes, and each
replica started as a deployer would (``python -m bot.cli serve --config FILE`` with the
secrets in its environment and ``DATABASE_URL`` naming a fresh schema, dropped at the
end). Replica ``k`` reaches the fakes on its own ports, so the fakes attribute every
call to it (see :mod:`sandbox.fleet`). Nothing here waits for time to pass: every wait
polls a condition (the fakes' state, the ledger, ``/metrics``) up to a hard bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from bench.world import wms_system

T = TypeVar("T")

SHOPIFY_TOKEN_ENV = "FLEET_SHOPIFY_TOKEN"
WEBHOOK_SECRET_ENV = "FLEET_SHOPIFY_WEBHOOK_SECRET"
WMS_TOKEN_ENV = "FLEET_WMS_TOKEN"
SLACK_TOKEN_ENV = "FLEET_SLACK_TOKEN"
SIGNING_SECRET_ENV = "FLEET_SLACK_SIGNING_SECRET"
#: how often poll loops look again (a poll, not a wait for time to pass)
POLL_SECONDS = 0.2
#: how long a replica may take to start (migrations included) on a loaded machine
START_TIMEOUT = 120.0


class ClusterError(RuntimeError):
    pass


def pg_base_url() -> str:
    """The PostgreSQL to use: ``$DRIFTWATCH_TEST_PG_URL`` or the local one (trust auth)."""
    override = os.environ.get("DRIFTWATCH_TEST_PG_URL", "").strip()
    if override:
        return override
    user = os.environ.get("PGUSER") or "postgres"
    return f"postgresql://{user}@127.0.0.1:5432/test"


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pg_reachable(url: str | None = None) -> str | None:
    """None when PostgreSQL answers, else why not (one line)."""
    try:
        with psycopg.connect(libpq_url(url or pg_base_url()), connect_timeout=3):
            return None
    except (OSError, psycopg.Error) as exc:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__


def toml(config: Mapping[str, Any]) -> str:
    """A TOML document for a configuration made of tables, arrays of tables, strings,
    numbers, booleans and arrays of those (the subset a Driftwatch config uses)."""
    lines: list[str] = []
    _toml_table(config, [], lines)
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    nested: list[tuple[str, Any]] = []
    for key, value in table.items():
        tables = isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        if isinstance(value, dict) or tables:
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_toml_value(value)}")
    for key, value in nested:
        sub = [*path, _key(key)]
        if isinstance(value, list):
            for item in value:
                lines += ["", f"[[{'.'.join(sub)}]]"]
                _toml_table(item, sub, lines)
        else:
            lines += ["", f"[{'.'.join(sub)}]"]
            _toml_table(value, sub, lines)


@dataclass
class Replica:
    index: int
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    url: str = ""
    killed_at: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.killed_at is None and self.process.poll() is None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@dataclass
class Settings:
    """What the replicas are configured with (seconds: real time)."""

    replicas: int = 3
    tick_seconds: int = 2
    health_seconds: int = 2
    debounce_seconds: int = 1
    persistence_diffs: int = 1
    auto_resync: bool = True
    #: "HH:MM" UTC for the daily adjustments digest and (on today's weekday) the weekly
    #: summary; None: both off
    reports_at: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)


class Cluster:
    """``with Cluster(workdir, Settings()) as cluster:`` — fakes, N replicas, one schema."""

    def __init__(self, workdir: Path, settings: Settings | None = None) -> None:
        self.workdir = workdir
        self.settings = settings or Settings()
        self.replicas: list[Replica] = []
        self.fleet: dict[str, Any] = {}
        self.schema = f"dw_replicas_{secrets.token_hex(5)}"
        self.db_url = ""
        self._fleet_process: subprocess.Popen[str] | None = None
        self._http = httpx.Client(timeout=30.0)
        self._admin: psycopg.Connection[Any] | None = None
        self._db: psycopg.Connection[Any] | None = None

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        base = pg_base_url()
        self._admin = psycopg.connect(libpq_url(base), autocommit=True, connect_timeout=5)
        self._admin.execute(f'CREATE SCHEMA "{self.schema}"')
        url = make_url(base).update_query_dict({"options": f"-csearch_path={self.schema}"})
        self.db_url = url.render_as_string(hide_password=False)
        self._db = psycopg.connect(libpq_url(self.db_url), autocommit=True)
        self._start_fleet()
        # Migrated once, as a deployment does before it starts its replicas; then all
        # replicas start at once (so their first polls race, as they would).
        self._migrate()
        self.replicas = [self._start_replica(i) for i in range(self.settings.replicas)]
        for replica in self.replicas:
            self._wait_serving(replica)
        self.set_backends()

    def _migrate(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "db", "upgrade"],
            env=self.environment(),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise ClusterError(f"driftwatch db upgrade failed:\n{done.stderr[-3000:]}")

    def stop(self) -> None:
        for replica in self.replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            try:
                replica.process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()
        if self._fleet_process is not None:
            if self._fleet_process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._fleet_process.stdin.close()
            try:
                self._fleet_process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._fleet_process.kill()
                self._fleet_process.wait()
            if self._fleet_process.stdout is not None:
                self._fleet_process.stdout.close()
            self._fleet_process = None
        self._http.close()
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._admin is not None:
            with contextlib.suppress(psycopg.Error):
                self._admin.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            self._admin.close()
            self._admin = None

    def _start_fleet(self) -> None:
        command = [
            sys.executable,
            "-m",
            "sandbox.fleet",
            "--clients",
            str(self.settings.replicas),
            "--erp-dir",
            str(self.workdir / "erp"),
        ]
        with (self.workdir / "fleet.log").open("w") as log:
            self._fleet_process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True
            )
        assert self._fleet_process.stdout is not None
        line = self._fleet_process.stdout.readline()
        if not line:
            raise ClusterError(f"the fakes did not start: {self.log('fleet')[-2000:]}")
        self.fleet = json.loads(line)

    def config(self, index: int) -> dict[str, Any]:
        """Replica ``index``'s configuration (what a deployer would write)."""
        f, s = self.fleet, self.settings
        schedules: dict[str, Any] = {
            "full_diff_seconds": s.tick_seconds,
            "health_seconds": s.health_seconds,
            "debounce_seconds": s.debounce_seconds,
            "weekly_summary": "off",
            "daily_adjustments": "off",
        }
        if s.reports_at is not None:
            day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[datetime.now(UTC).weekday()]
            schedules["weekly_summary"] = f"{day} {s.reports_at}"
            schedules["daily_adjustments"] = s.reports_at
        return {
            "timezone": "UTC",
            "source_of_truth": ["wms", "erp"],
            "systems": [
                {
                    "name": "shopify",
                    "kind": "shopify",
                    "role": "storefront",
                    "shop_url": f["shopify_urls"][index],
                    "shop_domain": f["shop_domain"],
                    "token_env": SHOPIFY_TOKEN_ENV,
                    "webhook_secret_env": WEBHOOK_SECRET_ENV,
                    "writable": True,
                },
                wms_system(f["wms_url"], WMS_TOKEN_ENV),
                {
                    "name": "erp",
                    "kind": "csv",
                    "role": "erp",
                    "directory": f["erp_dir"],
                    "compare_states": ["on_hand"],
                    "settle_seconds": 0,
                    "columns": {
                        "sku": "ITEM_NO",
                        "location": "WAREHOUSE",
                        "observed_at": "EXPORTED_AT",
                        "quantities": {"on_hand": "QTY_ON_HAND"},
                    },
                },
            ],
            "locations": f["locations"],
            "thresholds": {"persistence_diffs": s.persistence_diffs},
            "schedules": schedules,
            "policy": {"auto_resync": s.auto_resync, "shadow_mode": False},
            "slack": {
                "alerts_channel": f["alerts_channel"],
                "reports_channel": f["reports_channel"],
                "api_url": f["slack_api_urls"][index],
                "bot_token_env": SLACK_TOKEN_ENV,
                "signing_secret_env": SIGNING_SECRET_ENV,
                "writers": {"users": ["U0OPS001"]},
            },
            "server": {"host": "127.0.0.1", "port": 0},
        }

    def environment(self) -> dict[str, str]:
        f = self.fleet
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DRIFTWATCH_"))}
        env.update(
            {
                "DATABASE_URL": self.db_url,
                SHOPIFY_TOKEN_ENV: f["shopify_token"],
                WEBHOOK_SECRET_ENV: f["webhook_secret"],
                WMS_TOKEN_ENV: f["wms_token"],
                SLACK_TOKEN_ENV: f["slack_token"],
                SIGNING_SECRET_ENV: f["signing_secret"],
                "PYTHONUNBUFFERED": "1",
                **self.settings.extra_env,
            }
        )
        return env

    def _start_replica(self, index: int) -> Replica:
        config_path = self.workdir / f"replica{index}.toml"
        config_path.write_text(toml(self.config(index)), encoding="utf-8")
        log_path = self.workdir / f"replica{index}.log"
        command = [sys.executable, "-m", "bot.cli", "serve", "--config", str(config_path)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                cwd=self.workdir,
                start_new_session=True,
            )
        return Replica(index, config_path, log_path, process)

    def _wait_serving(self, replica: Replica) -> None:
        pattern = re.compile(r"driftwatch serving on (http://\S+) ")

        def serving() -> str | None:
            if replica.process.poll() is not None:
                raise ClusterError(
                    f"replica {replica.index} exited {replica.process.returncode}:\n"
                    + self.log(replica.index)[-3000:]
                )
            match = pattern.search(self.log(replica.index))
            return match.group(1) if match else None

        replica.url = self.wait_for(serving, START_TIMEOUT, f"replica {replica.index} serving")

    def set_backends(self, replicas: list[Replica] | None = None) -> None:
        """The balancer sends to ``replicas`` (default: every live one)."""
        chosen = self.replicas if replicas is None else replicas
        backends = [f"127.0.0.1:{r.port}" for r in chosen if r.alive]
        self.control("/balancer", {"backends": backends})

    # ------------------------------------------------------------------ looking

    def log(self, which: int | str) -> str:
        path = self.workdir / ("fleet.log" if which == "fleet" else f"replica{which}.log")
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def control(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        url = self.fleet["control_url"] + path
        response = self._http.get(url) if body is None else self._http.post(url, json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def state(self) -> dict[str, Any]:
        """The fakes' state (see :mod:`sandbox.fleet`)."""
        return self.control("/state")

    def metrics(self, replica: Replica) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of the replica's ``/metrics``: (name, labels) -> value."""
        text = self._http.get(replica.url + "/metrics").text
        out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return out

    def job_runs(self, replica: Replica) -> dict[str, float]:
        """``driftwatch_job_runs_total`` of one replica, summed over outcomes, per job."""
        runs: dict[str, float] = {}
        for (name, labels), value in self.metrics(replica).items():
            if name == "driftwatch_job_runs_total":
                job = dict(labels).get("job", "")
                runs[job] = runs.get(job, 0.0) + value
        return runs

    def all_job_runs(self) -> dict[int, dict[str, float]]:
        """Job runs of every live replica (a killed replica's counters died with it)."""
        return {r.index: self.job_runs(r) for r in self.replicas if r.alive}

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a query on the replicas' schema, read around the product."""
        assert self._db is not None
        return list(self._db.execute(query, params).fetchall())

    def lease_holder(self, job: str) -> Replica | None:
        """The live replica holding ``job``'s lease now (``job_leases``, ``replicas``)."""
        rows = self.sql(
            "SELECT r.pid FROM job_leases l JOIN replicas r ON r.id = l.holder "
            "WHERE l.job = %s AND l.expires_at > now()",
            job,
        )
        by_pid = {r.pid: r for r in self.replicas if r.alive}
        return by_pid.get(rows[0][0]) if rows else None

    def wait_for(self, condition: Callable[[], T | None], timeout: float, what: str) -> T:
        """Poll ``condition`` until it returns something truthy; ClusterError after
        ``timeout`` seconds (a hard bound, never a pace)."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise ClusterError(f"gave up after {timeout:.0f} s waiting for {what}")
            time.sleep(POLL_SECONDS)

    # ------------------------------------------------------------------ acting

    def set_shopify(self, sku: str, location: str, available: int) -> None:
        self.control("/shopify/levels", {"sku": sku, "location": location, "available": available})

    def set_wms(self, sku: str, location: str, pickable: int) -> None:
        self.control("/wms/levels", {"sku": sku, "location": location, "pickable": pickable})

    def kill(self, replica: Replica) -> float:
        """kill -9; the monotonic time of the kill. The balancer stops sending to it."""
        os.kill(replica.pid, signal.SIGKILL)
        replica.killed_at = time.monotonic()
        replica.process.wait()
        self.set_backends()
        return replica.killed_at


@dataclass(frozen=True)
class Proc:
    pid: int
    start: str  # /proc/<pid>/stat field 22: tells a reused pid apart

    def running(self) -> bool:
        """Alive and not a zombie (a zombie has exited; it only awaits its reaper)."""
        stat = _stat(self.pid)
        return stat is not None and stat[19] == self.start and stat[0] != "Z"


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from the state field on (index 0 = state, 1 = ppid, 19 = start)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw.rsplit(")", 1)[1].split()


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` and every process below them
    (/proc/<pid>/stat fields 14 and 15, in clock ticks); a process gone counts 0."""
    ticks = 0
    for pid in pids:
        for one in (pid, *(p.pid for p in descendants(pid))):
            stat = _stat(one)
            if stat is not None:
                ticks += int(stat[11]) + int(stat[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[Proc]:
    """Every process below ``pid`` (children, their children...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None:
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    found: list[Proc] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        stat = _stat(child)
        if stat is not None:
            found.append(Proc(child, stat[19]))
        todo += children.get(child, [])
    return found


def alert_messages(state: Mapping[str, Any], channel: str, needle: str) -> list[dict[str, Any]]:
    """Top-level messages in ``channel`` whose text names ``needle``."""
    messages: list[dict[str, Any]] = state["channels"][channel]
    return [m for m in messages if needle in m["text"]]


def slack_429s(state: Mapping[str, Any]) -> int:
    return sum(1 for c in state["slack_calls"] if c["status"] == 429)


def iter_replies(message: Mapping[str, Any]) -> Iterator[str]:
    for reply in message["replies"]:
        yield str(reply["text"])
