"""How long migration 0014 (a row per level) takes on a ledger of B1's size:
``python -m bench.migration_0014 [SKUS]`` (default 100,000 SKUs × 5 locations).

Fills a new SQLite ledger at revision 0013 with B1's first-read keys as that version
wrote them (:func:`bench.b1_floor.per_state`: a ``level_current`` row per key, 6.5
million at 100,000 SKUs), then runs ``Ledger.upgrade()`` to head, as ``driftwatch db
upgrade`` does, and prints its wall time, this process's CPU (SQLite runs in it) and the
peak RSS. Not a benchmark with a target: the figure docs/OPERATIONS.md quotes for the
upgrade, measured.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from bench._common import cpu_seconds, peak_rss_mb
from bench.b1_floor import _ledger, per_state, rows
from bench.b1_reconcile import Size
from ledger import Ledger


async def run(skus: int) -> None:
    size = Size(skus)
    with tempfile.TemporaryDirectory(prefix="bench-0014-") as tmp:
        path = Path(tmp) / "ledger.db"
        await _ledger(path, revision="0013")
        keys = list(rows(size))
        filled = per_state(path, keys)
        del keys
        print(f"filled at 0013: {skus:,} SKUs × {size.locations} locations, CPU {filled:.2f} s")
        wall, cpu = time.perf_counter(), cpu_seconds()
        async with Ledger.from_url(f"sqlite:///{path}") as ledger:
            await ledger.upgrade()
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        conn = sqlite3.connect(path)
        try:
            (levels,) = conn.execute("SELECT count(*) FROM levels").fetchone()
            (keys_after,) = conn.execute("SELECT count(*) FROM level_current").fetchone()
        finally:
            conn.close()
        print(
            f"upgrade 0013 -> head: wall {wall:.2f} s, CPU {cpu:.2f} s; {levels:,} levels, "
            f"{keys_after:,} keys; peak RSS {peak_rss_mb():.0f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("skus", type=int, nargs="?", default=100_000)
    asyncio.run(run(parser.parse_args().skus))


if __name__ == "__main__":
    main()
