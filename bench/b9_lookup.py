"""B9, one SKU looked up in a big catalog's ledger: what ``/drift`` and ``/resync`` read
before they answer, for a SKU the ledger knows and for one it does not (whose answer
offers close matches, "Did you mean").

The ledger holds B1's first-run keys (13 per SKU × location, Shopify's 8 states, the
WMS's 4, the ERP's 1: a row of ``levels`` per SKU × location and system, and a history
row per key, as a ledger upgraded in place from before migration 0013 holds them),
written before the clock starts: on SQLite by B1F's writer and ``executemany``, on
PostgreSQL by ``COPY`` into a schema of its own; ``level_skus`` is filled from history
as migration 0012 fills it. Then, through
the product's own calls, each timed as wall time (PostgreSQL's work is in its server):

- a known SKU: ``Ledger.current_levels(sku)``, what ``/drift SKU`` renders from;
- an unknown SKU: ``Ledger.is_known_sku``, ``Ledger.known_skus`` and
  ``bot.matches.close_matches``, what ``resolve_sku`` does before it answers.

Baselines, in the same run on the same database: the reads as they were before
(``WHERE sku = ...`` on the view ``level_current``, whose table's key leads with
``system``; the SKUs as a ``UNION`` of the items and every current row), and difflib's
close matches; and the
SKUs as 9d051fe read them, one seek of history's index by SKU each (before
``level_skus``).
"""

from __future__ import annotations

import difflib
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg
from sqlalchemy import text

from bench import b1_floor, catalog
from bench._common import Check, Outcome, cpu_seconds
from bench.b1_reconcile import FULL, QUICK, Database, Size
from bot.matches import close_matches
from ledger import Ledger
from ledger.levels import NOTE_HISTORY_SKUS, distinct_by_seeks

#: lookups timed per figure (the baselines, slower, fewer)
TIMES, BASELINE_TIMES = 15, 3
#: a known SKU's levels read, wall time (ms): far under Slack's 3 s, at any catalog size
KNOWN_TARGET_MS = 50.0
#: an unknown SKU's answer read and matched, wall time (ms)
UNKNOWN_TARGET_MS = 1000.0
#: the reads before this benchmark (c7c1b5e, 9d051fe): the baselines
SCAN_LEVELS = text(
    "SELECT system, sku, location, state, quantity FROM level_current WHERE sku = :sku "
    "ORDER BY location, system, state"
)
SCAN_SKUS = text("SELECT sku FROM items UNION SELECT sku FROM level_current")
#: the SKUs as 9d051fe to 0012 read them: a loose index scan of history's index by SKU
HISTORY_SEEKS = distinct_by_seeks("level_history", "sku")


async def _median_ms(call: Callable[[], Awaitable[object]], times: int) -> float:
    """The median wall time of ``times`` calls, after one untimed."""
    await call()
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent)


def _fill_postgres(
    url: str, rows: list[b1_floor.Row], levels: dict[str, list[b1_floor.LevelRow]]
) -> None:
    """B1's levels and history rows into the database at ``url`` (a libpq URL: its
    ``options`` name the run's schema), by COPY."""
    with psycopg.connect(url) as conn:
        for system, states in b1_floor.STATES.items():
            columns = ", ".join(("system, sku, location, observed_at, changed_at, source", *states))
            with conn.cursor().copy(f"COPY levels ({columns}) FROM STDIN") as copy:
                copy.write("".join("\t".join(map(str, r)) + "\n" for r in levels[system]))
        history = "COPY level_history (system, sku, location, state, quantity, observed_at, "
        with conn.cursor().copy(history + "source) FROM STDIN") as copy:
            copy.write("".join("\t".join(map(str, (*r[:6], r[7]))) + "\n" for r in rows))
        conn.execute(str(NOTE_HISTORY_SKUS))  # level_skus, filled as migration 0012 does
        for table in ("levels", "level_history", "level_skus"):
            conn.execute(f"ANALYZE {table}")


def _fill_sqlite(
    path: Path, rows: list[b1_floor.Row], levels: dict[str, list[b1_floor.LevelRow]]
) -> None:
    """:func:`_fill_postgres` on SQLite: the levels as B1F writes them, history by
    ``executemany``."""
    b1_floor.write(path, levels)
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO level_history (system, sku, location, state, quantity, "
                "observed_at, source) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*r[:6], r[7]) for r in rows],
            )
            conn.execute(str(NOTE_HISTORY_SKUS))  # level_skus, filled as migration 0012 does
    finally:
        conn.close()


async def run(size: Size, dialect: str) -> Outcome:
    out = Outcome()
    rows = list(b1_floor.rows(size))
    levels = b1_floor.level_rows(size)
    with tempfile.TemporaryDirectory(prefix="bench-b9-") as tmp:
        async with Database(dialect, Path(tmp)) as database:
            async with Ledger.from_url(database.url) as ledger:
                await ledger.upgrade()
            if dialect == "sqlite":
                _fill_sqlite(Path(database.url.removeprefix("sqlite:///")), rows, levels)
            else:
                _fill_postgres(database.url, rows, levels)
            del rows, levels
            await _measure(size, database.url, dialect, out)
    return out


async def _measure(size: Size, url: str, dialect: str, out: Outcome) -> None:
    known = catalog.sku(size.skus // 2)
    typo = known[:-1] + "Z"  # one character off: not in the catalog
    on = "SQLite" if dialect == "sqlite" else "PostgreSQL"
    async with Ledger.from_url(url) as ledger:
        levels = await ledger.current_levels(known)
        assert len(levels) == 13 * size.locations, len(levels)

        async def scanned() -> object:
            async with ledger._engine.connect() as conn:
                return (await conn.execute(SCAN_LEVELS, {"sku": known})).all()

        async def unknown() -> list[str]:
            assert not await ledger.is_known_sku(typo)
            return close_matches(typo, await ledger.known_skus())

        async def unknown_by_history() -> list[str]:
            assert not await ledger.is_known_sku(typo)
            async with ledger._engine.connect() as conn:
                items = (await conn.execute(text("SELECT sku FROM items"))).scalars().all()
                levels = (await conn.execute(HISTORY_SEEKS)).scalars().all()
            return close_matches(typo, sorted({*items, *levels}))

        async def unknown_before() -> list[str]:
            assert not await ledger.is_known_sku(typo)
            async with ledger._engine.connect() as conn:
                skus = sorted((await conn.execute(SCAN_SKUS)).scalars())
            return difflib.get_close_matches(typo, skus, n=3, cutoff=0.5)

        known_ms = await _median_ms(lambda: ledger.current_levels(known), TIMES)
        scanned_ms = await _median_ms(scanned, BASELINE_TIMES)
        cpu = cpu_seconds()
        unknown_ms = await _median_ms(unknown, TIMES)
        unknown_cpu_ms = (cpu_seconds() - cpu) / (TIMES + 1) * 1000
        by_history_ms = await _median_ms(unknown_by_history, BASELINE_TIMES)
        before_ms = await _median_ms(unknown_before, BASELINE_TIMES)
        skus = await ledger.known_skus()
        started = cpu_seconds()
        suggested = close_matches(typo, skus)
        matching_ms = (cpu_seconds() - started) * 1000
        started = cpu_seconds()
        difflib.get_close_matches(typo, skus, n=3, cutoff=0.5)
        difflib_ms = (cpu_seconds() - started) * 1000
    out.facts.update(
        {
            "size": f"{size.skus:,} SKUs × {size.locations} locations",
            "database": dialect,
            "current_rows": 13 * size.skus * size.locations,
            "known_sku": known,
            "unknown_sku": typo,
            "suggested": ", ".join(suggested),
            "known_levels_ms": round(known_ms, 2),
            "known_levels_by_scan_ms": round(scanned_ms, 2),
            "unknown_answer_ms": round(unknown_ms, 1),
            "unknown_answer_process_cpu_ms": round(unknown_cpu_ms, 1),
            "unknown_answer_by_history_seeks_ms": round(by_history_ms, 1),
            "unknown_answer_before_ms": round(before_ms, 1),
            "matching_cpu_ms": round(matching_ms, 1),
            "difflib_cpu_ms": round(difflib_ms, 1),
        }
    )
    out.checks += [
        Check(
            f"B9 /drift of a known SKU, its levels read ({on})",
            known_ms,
            "ms",
            "<=",
            KNOWN_TARGET_MS,
            baseline=scanned_ms,
        ),
        Check(
            f"B9 /drift of an unknown SKU, read and matched ({on})",
            unknown_ms,
            "ms",
            "<=",
            UNKNOWN_TARGET_MS,
            baseline=before_ms,
        ),
    ]


async def bench(quick: bool) -> Outcome:
    size = QUICK if quick else FULL
    out = await run(size, "sqlite")
    other = await run(size, "postgresql")
    out.checks += other.checks
    out.facts.update({f"pg_{k}": v for k, v in other.facts.items()})
    return out
