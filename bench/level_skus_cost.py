"""What noting a first read's SKUs costs on its own: 100,000 SKUs into an empty
``level_skus`` through ``LevelBulk.insert_skus``, the one statement a first read of
100,000 SKUs adds (BENCHMARKS.md, issue 16, 2026-12-07). Prints the process's CPU and
the wall time per backend, each in B1's ``Database`` (a SQLite file, or a PostgreSQL
schema of its own at ``DRIFTWATCH_BENCH_PG_URL``, dropped after).

``python -m bench.level_skus_cost``
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.b1_reconcile import Database
from ledger import Ledger
from ledger.bulk import bulk_for

SKUS = [f"SKU-{i:06d}" for i in range(100_000)]


async def _measure(dialect: str, name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-skus-") as folder:
        async with (
            Database(dialect, Path(folder)) as database,
            Ledger.from_url(database.url) as ledger,
        ):
            await ledger.upgrade()
            async with ledger._engine.begin() as conn:
                cpu, wall = time.process_time(), time.perf_counter()
                await bulk_for(ledger.dialect).insert_skus(conn, SKUS)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{name}: {len(SKUS):,} SKUs noted in {cpu:.3f} s of CPU, {wall:.3f} s wall")


async def main() -> None:
    await _measure("sqlite", "SQLite")
    await _measure("postgresql", "PostgreSQL")


if __name__ == "__main__":
    asyncio.run(main())
