"""B1's steps at a size of your choosing, for comparing two commits quickly:
``python -m bench.steps SKUS [sqlite|postgresql] [--reads N]``.

Runs the fakes in their own process (as B1 does), then reads every level ``N`` times and
prints the product CPU of each read, then records a first full read, changes 0.1% of
the levels in the fakes, and reads and records again, printing each step's product CPU
and the peak RSS. SKUS must be above 5,000 (the Shopify connector's default
``bulk_threshold``): below it Shopify is read page by page, paced by its rate limit in
real time, which is not what B1 measures. Not a benchmark with targets (those are B1
and B1PG): a tool for the A/B comparisons BENCHMARKS.md quotes, at sizes small enough to
repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import httpx

from bench._common import cpu_seconds, peak_rss_mb
from bench.b1_reconcile import CHANGED_FRACTION, Database, Size, fakes_process, three_systems
from bench.child import Child
from connectors.clock import SystemClock
from ledger import Ledger
from monitors.collector import cyclic_gc_paused
from monitors.reconcile import level_blocks, read_all
from monitors.wiring import build_systems

#: the Shopify connector's default: a shop with more variants is read in bulk
BULK_THRESHOLD = 5_000


async def run(skus: int, dialect: str, reads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-steps-") as tmp:
        erp_dir = Path(tmp) / "erp"
        erp_dir.mkdir()
        fakes = fakes_process(Size(skus), erp_dir)
        address = await fakes.start()
        try:
            async with Database(dialect, Path(tmp)) as database:
                await _steps(address, database, erp_dir, fakes, reads)
        finally:
            await fakes.stop()


async def _steps(
    address: dict[str, object], database: Database, erp_dir: Path, fakes: Child, reads: int
) -> None:
    config, environ = three_systems(address, erp_dir)
    async with (
        httpx.AsyncClient(timeout=120.0) as client,
        Ledger.from_url(database.url) as ledger,
    ):
        await ledger.upgrade()
        systems = build_systems(config, client=client, clock=SystemClock(), environ=environ)
        names = [s.name for s in systems]
        times = []
        for _ in range(reads):
            with cyclic_gc_paused():
                before = cpu_seconds()
                levels, _ = await read_all(systems)
                times.append(cpu_seconds() - before)
            del levels
        if times:
            shown = ", ".join(f"{t:.2f}" for t in times)
            print(f"reads: median {statistics.median(times):.2f} s CPU ({shown})", flush=True)
        for label in ("first", "second"):
            with cyclic_gc_paused():
                before = cpu_seconds()
                levels, failures = await read_all(systems)
                if failures:
                    raise RuntimeError(f"systems failed: {failures}")
                middle = cpu_seconds()
                result = await ledger.record_levels(blocks=level_blocks(levels), complete=names)
                after = cpu_seconds()
            del levels
            print(
                f"{label}: read {middle - before:.2f} s, record {after - middle:.2f} s CPU; "
                f"{result}; peak RSS {peak_rss_mb():.0f} MiB",
                flush=True,
            )
            if label == "first":
                await fakes.ask({"cmd": "change", "fraction": CHANGED_FRACTION})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.steps", description=__doc__)
    parser.add_argument("skus", type=int)
    parser.add_argument("dialect", nargs="?", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--reads", type=int, default=0, help="plain reads first (default 0)")
    args = parser.parse_args()
    if args.skus <= BULK_THRESHOLD:
        parser.error(
            f"SKUS must be above {BULK_THRESHOLD:,}: below that Shopify is read page by page, "
            "paced by its rate limit in real time (B1 reads it in bulk)"
        )
    asyncio.run(run(args.skus, args.dialect, args.reads))


if __name__ == "__main__":
    main()
