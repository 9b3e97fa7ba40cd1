"""B1, full reconciliation: every level of N SKUs × L locations read from the fake
Shopify (bulk operation JSONL), the fake WMS (paged REST) and the fake ERP (CSV),
recorded in the ledger (SQLite) and diffed; then again after a fraction of the levels
changed.

The fakes run in their own process (:mod:`bench.fakes`), so the peak RSS reported is
the product's (this process: connectors, ledger, engine). The run is
``monitors.reconcile``'s steps, timed one by one: ``read_all``, ``record_levels``,
``diff``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import catalog, world
from bench._common import Check, Outcome, Stopwatch, peak_rss_mb
from connectors.clock import SystemClock
from ledger import Ledger
from monitors.config import config_from_dict
from monitors.drift import diff
from monitors.reconcile import observations, read_all
from monitors.wiring import build_systems, rules_from_config

CHANGED_FRACTION = 0.001


@dataclass(frozen=True)
class Size:
    skus: int
    locations: int = 5


FULL = Size(100_000)
QUICK = Size(6_000)


class FakesProcess:
    """``bench.fakes`` in a child process, spoken to over its stdin and stdout."""

    def __init__(self, size: Size, erp_dir: Path) -> None:
        self.size, self.erp_dir = size, erp_dir
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> dict[str, object]:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.fakes",
            str(self.size.skus),
            str(self.size.locations),
            str(self.erp_dir),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return await self._answer()

    async def ask(self, command: dict[str, object]) -> dict[str, object]:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._answer()

    async def _answer(self) -> dict[str, object]:
        assert self.proc is not None
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("bench.fakes exited early")
        answer: dict[str, object] = json.loads(line)
        return answer

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.write(b'{"cmd": "stop"}\n')
            await self.proc.stdin.drain()
            self.proc.stdin.close()
        await self.proc.wait()


def _history(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        count, top = conn.execute(
            "SELECT count(*), coalesce(max(id), 0) FROM level_history"
        ).fetchone()
    return int(count), int(top)


def _levels_written_since(db: Path, after_id: int) -> int:
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute(
            "SELECT count(*) FROM (SELECT DISTINCT system, sku, location FROM level_history "
            "WHERE id > ?)",
            (after_id,),
        ).fetchone()
    return int(n)


async def run(size: Size) -> Outcome:
    out = Outcome()
    with tempfile.TemporaryDirectory(prefix="bench-b1-") as tmp:
        erp_dir = Path(tmp) / "erp"
        erp_dir.mkdir()
        fakes = FakesProcess(size, erp_dir)
        address = await fakes.start()
        try:
            await _measure(size, address, Path(tmp), erp_dir, fakes, out)
        finally:
            await fakes.stop()
    return out


async def _measure(
    size: Size,
    address: dict[str, object],
    tmp: Path,
    erp_dir: Path,
    fakes: FakesProcess,
    out: Outcome,
) -> None:
    gids = [str(g) for g in address["locations"]]  # type: ignore[attr-defined]
    config = config_from_dict(
        world.three_systems(str(address["shopify_url"]), str(address["wms_url"]), erp_dir, gids)
    )
    environ = {
        world.SHOPIFY_TOKEN_ENV: str(address["shopify_token"]),
        world.WMS_TOKEN_ENV: catalog.WMS_TOKEN,
    }
    rules = rules_from_config(config)
    db = tmp / "b1.db"
    levels_total = size.skus * size.locations
    async with (
        httpx.AsyncClient(timeout=120.0) as client,
        Ledger.from_url(f"sqlite:///{db}") as ledger,
    ):
        await ledger.upgrade()
        systems = build_systems(config, client=client, clock=SystemClock(), environ=environ)
        timings: list[dict[str, float]] = []
        for _ in range(2):
            t: dict[str, float] = {}
            with Stopwatch() as total:
                with Stopwatch() as sw:
                    levels, failures = await read_all(systems)
                t["read"] = sw.seconds
                if failures:
                    raise RuntimeError(f"B1: systems failed: {failures}")
                with Stopwatch() as sw:
                    recorded = await ledger.record_levels(observations(levels))
                t["record"] = sw.seconds
                with Stopwatch() as sw:
                    drifts = diff(levels, rules)
                t["diff"] = sw.seconds
            t["total"] = total.seconds
            t["levels"] = len(levels)
            t["drifts"] = len(drifts)
            t["history_rows"] = recorded.changed
            timings.append(t)
            if len(timings) == 1:
                rss_first = peak_rss_mb()
                del levels, drifts
                _, top = await asyncio.to_thread(_history, db)
                changed = await fakes.ask({"cmd": "change", "fraction": CHANGED_FRACTION})
        first, second = timings
        rows_after, _ = await asyncio.to_thread(_history, db)
        written = await asyncio.to_thread(_levels_written_since, db, top)
    scale = f"{size.skus:,} SKUs × {size.locations} locations"
    out.facts.update(
        {
            "size": scale,
            "levels_per_system": levels_total,
            "first_read_s": round(first["read"], 2),
            "first_record_s": round(first["record"], 2),
            "first_diff_s": round(first["diff"], 2),
            "levels_read": int(first["levels"]),
            "drifts_found": int(first["drifts"]),
            "first_history_rows": int(first["history_rows"]),
            "second_read_s": round(second["read"], 2),
            "second_record_s": round(second["record"], 2),
            "second_diff_s": round(second["diff"], 2),
            "levels_changed_in_fakes": int(str(changed["changed"])),
            "second_history_rows": int(second["history_rows"]),
            "second_levels_written": written,
            "history_rows_total": rows_after,
        }
    )
    out.checks += [
        Check("B1 full reconciliation wall", first["total"], "s", "<=", 20.0),
        Check("B1 peak memory (RSS, product process)", rss_first, "MiB", "<=", 1536.0),
        Check(
            f"B1 second run ({CHANGED_FRACTION:.1%} changed) wall", second["total"], "s", "<=", 5.0
        ),
        Check(
            "B1 second run: levels written to history ÷ levels changed",
            written / max(1, int(str(changed["changed"]))),
            "×",
            "==",
            1.0,
        ),
    ]


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL)
