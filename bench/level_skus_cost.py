"""What noting a first read's SKUs costs on its own: 100,000 SKUs into an empty
``level_skus`` through ``LevelBulk.insert_skus``, the one statement a first read of
100,000 SKUs adds (BENCHMARKS.md, issue 16, 2026-12-07). Prints the process's CPU and
the wall time per backend; PostgreSQL's at ``postgresql://postgres@127.0.0.1:5432/test``
in a schema of its own, dropped after.

``python -m bench.level_skus_cost``
"""

from __future__ import annotations

import asyncio
import tempfile
import time

import psycopg

from ledger import Ledger
from ledger.bulk import bulk_for

PG = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = "level_skus_cost"
SKUS = [f"SKU-{i:06d}" for i in range(100_000)]


async def _measure(url: str, name: str) -> None:
    async with Ledger.from_url(url) as ledger:
        await ledger.upgrade()
        async with ledger._engine.begin() as conn:
            cpu, wall = time.process_time(), time.perf_counter()
            await bulk_for(ledger.dialect).insert_skus(conn, SKUS)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{name}: {len(SKUS):,} SKUs noted in {cpu:.3f} s of CPU, {wall:.3f} s wall")


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-skus-") as folder:
        await _measure(f"sqlite:///{folder}/skus.db", "SQLite")
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
    try:
        await _measure(f"{PG}?options=-csearch_path%3D{SCHEMA}", "PostgreSQL")
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


if __name__ == "__main__":
    asyncio.run(main())
