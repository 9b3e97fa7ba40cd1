"""B1 on PostgreSQL: the same full reconciliation as :mod:`bench.b1_reconcile`, into a
fresh schema of the PostgreSQL at 127.0.0.1:5432 (``$DRIFTWATCH_BENCH_PG_URL``), dropped
afterwards. The database server's CPU is reported beside the product's."""

from __future__ import annotations

from bench._common import Outcome
from bench.b1_reconcile import FULL, QUICK, run


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL, "postgresql")
