"""B1, full reconciliation: every level of N SKUs × L locations read from the fake
Shopify (bulk operation JSONL), the fake WMS (paged REST) and the fake ERP (CSV),
diffed and recorded in the ledger (SQLite); then again after a fraction of the levels
changed.

The fakes run in their own process (:mod:`bench.fakes`), so the peak RSS reported is
the product's (this process: connectors, ledger, engine). The run is
``monitors.reconcile.run_diff``'s steps in its order, timed one by one: ``read_all``,
``diff`` (with the drift job's memo of its last full diff, ``monitors.diffmemo``),
``record_levels``.
"""

from __future__ import annotations

import gc
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import catalog, world
from bench._common import Check, Outcome, cpu_seconds, peak_rss_mb, process_cpu_seconds
from bench.child import Child
from connectors.clock import SystemClock
from ledger import Ledger
from ledger.engine import create_engine
from monitors.collector import FULL_COLLECTION_EVERY, cyclic_gc_paused
from monitors.config import Config, config_from_dict
from monitors.diffmemo import DiffMemo
from monitors.reconcile import level_blocks, read_all
from monitors.wiring import build_systems, rules_from_config

CHANGED_FRACTION = 0.001
#: the PostgreSQL B1 runs on (a fresh schema in it), unless $DRIFTWATCH_BENCH_PG_URL
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Size:
    skus: int
    locations: int = 5
    #: products created in a shuffled order of SKUs (bench.catalog.creation_order):
    #: Shopify's bulk file then lists them out of SKU order
    shuffled: bool = False


FULL = Size(100_000)
QUICK = Size(6_000)


def fakes_process(size: Size, erp_dir: Path) -> Child:
    """``bench.fakes`` in a child process, spoken to over its stdin and stdout."""
    shuffled = ("shuffled",) if size.shuffled else ()
    return Child(
        "bench.fakes", str(size.skus), str(size.locations), str(erp_dir), *shuffled, greets=True
    )


@dataclass(frozen=True)
class Running:
    """The fakes running for one benchmark: its temporary folder, the ERP's drop folder
    in it, the fakes' process and the address they greeted with."""

    folder: Path
    erp_dir: Path
    fakes: Child
    address: dict[str, object]


@asynccontextmanager
async def fakes_running(size: Size, prefix: str) -> AsyncIterator[Running]:
    """:func:`fakes_process` started for ``size`` in a new temporary folder, stopped (and
    the folder removed) when the block ends."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        erp_dir = Path(tmp) / "erp"
        erp_dir.mkdir()
        fakes = fakes_process(size, erp_dir)
        address = await fakes.start()
        try:
            yield Running(Path(tmp), erp_dir, fakes, address)
        finally:
            await fakes.stop()


def three_systems(address: dict[str, object], erp_dir: Path) -> tuple[Config, dict[str, str]]:
    """The configuration of B1's three systems at the fakes' ``address`` (as
    :mod:`bench.fakes` greets), and the environment holding their tokens."""
    gids = [str(g) for g in address["locations"]]  # type: ignore[attr-defined]
    config = config_from_dict(
        world.three_systems(str(address["shopify_url"]), str(address["wms_url"]), erp_dir, gids)
    )
    environ = {
        world.SHOPIFY_TOKEN_ENV: str(address["shopify_token"]),
        world.WMS_TOKEN_ENV: catalog.WMS_TOKEN,
    }
    return config, environ


def _allocate() -> None:
    """More new containers than the collector's first threshold (700): a collection due
    since the pause ended runs now."""
    [[] for _ in range(1_000)]


class Meter:
    """Wall time and CPU seconds of one step: the product's (this process, every thread),
    the fakes' (their process) and, on PostgreSQL, the database server's (the backends
    of this run's connections)."""

    def __init__(self, fakes_pid: int, database: Database) -> None:
        self.fakes_pid, self.database = fakes_pid, database
        self.figures: dict[str, float] = {}

    async def _sample(self) -> tuple[float, float, float, float]:
        fakes = process_cpu_seconds(self.fakes_pid) or 0.0
        server = await self.database.server_cpu()
        return time.perf_counter(), cpu_seconds(), fakes, server

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        before = await self._sample()
        yield
        after = await self._sample()
        wall, product, fakes, server = (b - a for a, b in zip(before, after, strict=True))
        self.figures[f"{name}_wall_s"] = wall
        self.figures[f"{name}_cpu_s"] = product
        self.figures[f"{name}_fakes_cpu_s"] = fakes
        if self.database.dialect == "postgresql":
            self.figures[f"{name}_db_cpu_s"] = server


class Database:
    """The ledger's database for one run: a SQLite file, or a fresh PostgreSQL schema
    (dropped afterwards) whose connections carry an application name, so the CPU of
    their server processes can be read."""

    def __init__(self, dialect: str, tmp: Path) -> None:
        self.dialect, self.tmp = dialect, tmp
        self.url = f"sqlite:///{tmp / 'b1.db'}"
        self.app = f"driftwatch-b1-{secrets.token_hex(4)}"
        self._schema: str | None = None
        self._admin: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def __aenter__(self) -> Database:
        if self.dialect == "postgresql":
            base = os.environ.get("DRIFTWATCH_BENCH_PG_URL", PG_URL)
            self._admin = await psycopg.AsyncConnection.connect(base, autocommit=True)
            self._schema = f"bench_b1_{secrets.token_hex(6)}"
            await self._admin.execute(f'CREATE SCHEMA "{self._schema}"')
            self.url = (
                make_url(base)
                .update_query_dict(
                    {"options": f"-csearch_path={self._schema}", "application_name": self.app}
                )
                .render_as_string(hide_password=False)
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._admin is not None:
            try:
                await self._admin.execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')
            finally:
                await self._admin.close()

    async def server_cpu(self) -> float:
        """CPU seconds the server processes of this run's connections have used."""
        if self._admin is None:
            return 0.0
        cursor = await self._admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.app,)
        )
        pids = [int(str(pid)) for (pid,) in await cursor.fetchall()]
        return sum(process_cpu_seconds(pid) or 0.0 for pid in pids)

    async def scalar(self, sql: str, **params: object) -> int:
        engine = create_engine(self.url)
        try:
            async with engine.connect() as conn:
                value = (await conn.execute(text(sql), params)).scalar_one()
        finally:
            await engine.dispose()
        return int(value)


async def run(size: Size, dialect: str = "sqlite") -> Outcome:
    out = Outcome()
    async with (
        fakes_running(size, "bench-b1-") as running,
        Database(dialect, running.folder) as database,
    ):
        await _measure(size, running.address, database, running.erp_dir, running.fakes, out)
    return out


async def _measure(
    size: Size,
    address: dict[str, object],
    database: Database,
    erp_dir: Path,
    fakes: Child,
    out: Outcome,
) -> None:
    config, environ = three_systems(address, erp_dir)
    rules = rules_from_config(config)
    levels_total = size.skus * size.locations
    assert fakes.proc is not None
    runs: list[Meter] = []
    facts: list[dict[str, int]] = []
    async with (
        httpx.AsyncClient(timeout=120.0) as client,
        Ledger.from_url(database.url) as ledger,
    ):
        await ledger.upgrade()
        systems = build_systems(config, client=client, clock=SystemClock(), environ=environ)
        # the drift job's memo of its last full diff (monitors.jobs), kept between runs
        memo = DiffMemo()
        for _ in range(2):
            meter = Meter(fakes.proc.pid, database)
            # as monitors.reconcile.run_diff runs a full diff's steps: read, diff, record,
            # with the cyclic GC paused (the diff's grid is freed before the record
            # begins), and then the pause's end, which freezes what is left alive (the
            # read's levels, what the memo keeps; every 8th time after a full collection,
            # timed below: monitors/collector.py), and the collector back on
            async with meter.step("total"):
                paused = cyclic_gc_paused(freeze=True)
                paused.__enter__()
                try:
                    async with meter.step("read"):
                        levels, failures = await read_all(systems)
                    if failures:
                        raise RuntimeError(f"B1: systems failed: {failures}")
                    async with meter.step("diff"):
                        drifts = memo.diff(levels, rules)
                    async with meter.step("record"):
                        recorded = await ledger.record_levels(
                            blocks=level_blocks(levels, memo),
                            complete=[s.name for s in systems],
                        )
                    memo.settle(recorded.read)  # as run_diff does, once the read is recorded
                finally:
                    async with meter.step("collector"):
                        paused.__exit__(None, None, None)
                        _allocate()
            runs.append(meter)
            facts.append(
                {"levels": len(levels), "drifts": len(drifts), "history_rows": recorded.changed}
            )
            if len(runs) == 1:
                rss_first = peak_rss_mb()
                del levels, drifts
                top = await database.scalar("SELECT coalesce(max(id), 0) FROM level_history")
                changed = await fakes.ask({"cmd": "change", "fraction": CHANGED_FRACTION})
        # the full collection that every FULL_COLLECTION_EVERY-th full diff's pause runs
        # before it freezes (monitors/collector.py; neither run above is one of those),
        # with what a full diff leaves alive: each diff's share of it is added to both
        # runs' totals below. It also finds the cycles the two freezes left waiting.
        walk_started = cpu_seconds()
        gc.unfreeze()
        cycles_waited = gc.collect()
        full_walk = cpu_seconds() - walk_started
        share = full_walk / FULL_COLLECTION_EVERY
        rows_after = await database.scalar("SELECT count(*) FROM level_history")
        written = await database.scalar(
            "SELECT count(*) FROM (SELECT DISTINCT system, sku, location FROM level_history "
            "WHERE id > :top) AS w",
            top=top,
        )
    first, second = (m.figures for m in runs)
    n_changed = int(str(changed["changed"]))
    scale = f"{size.skus:,} SKUs × {size.locations} locations"
    out.facts.update(
        {
            "size": scale,
            "database": database.dialect,
            "levels_per_system": levels_total,
            "levels_read": facts[0]["levels"],
            "drifts_found": facts[0]["drifts"],
            "first_history_rows": facts[0]["history_rows"],
        }
    )
    for label, figures in (("first", first), ("second", second)):
        out.facts.update({f"{label}_{k}": round(v, 2) for k, v in figures.items()})
    out.facts.update(
        {
            "levels_changed_in_fakes": n_changed,
            "second_history_rows": facts[1]["history_rows"],
            "second_levels_written": written,
            "history_rows_total": rows_after,
            "full_collection_cpu_s": round(full_walk, 2),
            "full_collection_every": FULL_COLLECTION_EVERY,
            "full_collection_share_s": round(share, 3),
            "objects_in_waiting_cycles": cycles_waited,
        }
    )
    on = "SQLite" if database.dialect == "sqlite" else "PostgreSQL"
    out.checks += [
        Check(
            f"B1 full reconciliation, product CPU ({on})",
            first["total_cpu_s"] + share,
            "s",
            "<=",
            20,
        ),
        Check(f"B1 peak memory (RSS, product process, {on})", rss_first, "MiB", "<=", 1024.0),
        Check(
            f"B1 second run ({CHANGED_FRACTION:.1%} changed), product CPU ({on})",
            second["total_cpu_s"] + share,
            "s",
            "<=",
            5.0,
        ),
        Check(
            f"B1 second run: levels written to history ÷ levels changed ({on})",
            written / max(1, n_changed),
            "×",
            "==",
            1.0,
        ),
    ]


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL, "sqlite")
