"""B2, the drift engine alone: ``monitors.drift.diff`` over N SKU × location rows from
three systems (Shopify, the WMS as the truth, the ERP), beside a plain full outer join of
the same rows that flags every key whose values differ.

polars and DuckDB are not installed in this environment, so the baseline is the fastest
of two plain joins written here: a Python dict join, and SQLite's ``FULL OUTER JOIN``
(in memory, loading included). Both get the rows as plain tuples; the engine gets the
connectors' :class:`~connectors.levels.Level` objects (built before the clock starts).
"""

from __future__ import annotations

import gc
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from bench import catalog
from bench._common import Check, Outcome, Stopwatch, median
from connectors.levels import Level
from monitors.drift import DiffRules, SystemRules, diff

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RULES = DiffRules(
    systems={
        "shopify": SystemRules("shopify", "storefront", ("available", "committed"), 900),
        "wms": SystemRules("wms", "warehouse", ("available", "committed"), 900),
        "erp": SystemRules("erp", "other", ("on_hand",), 90000),
    },
    source_of_truth=("wms", "erp"),
)
Row = tuple[str, str, int]


@dataclass(frozen=True)
class Size:
    rows: int
    repeats: int


FULL = Size(rows=1_000_000, repeats=3)
QUICK = Size(rows=50_000, repeats=3)


def build(rows: int) -> tuple[list[Level], dict[str, list[Row]]]:
    """Levels for the engine and (sku, location, value) rows per system for the joins."""
    levels: list[Level] = []
    plain: dict[str, list[Row]] = {"shopify": [], "wms": [], "erp": []}
    locations = 5
    for n in range(rows):
        i, j = divmod(n, locations)
        sku, loc = catalog.sku(i), catalog.location_key(j)
        q = catalog.base_quantity(i, j)
        shop = catalog.shopify_available(i, j)
        levels.append(Level("shopify", sku, loc, {"available": shop, "committed": 1}, NOW))
        levels.append(Level("wms", sku, loc, {"available": q, "committed": 1}, NOW))
        levels.append(Level("erp", sku, loc, {"on_hand": q + 1}, NOW))
        plain["shopify"].append((sku, loc, shop + 1))
        plain["wms"].append((sku, loc, q + 1))
        plain["erp"].append((sku, loc, q + 1))
    return levels, plain


def dict_join(plain: dict[str, list[Row]]) -> int:
    """Full outer join by (sku, location) in dicts; count keys whose values differ."""
    joined: dict[tuple[str, str], list[int | None]] = {}
    for index, name in enumerate(("wms", "shopify", "erp")):
        for sku, loc, value in plain[name]:
            cell = joined.get((sku, loc))
            if cell is None:
                cell = joined[(sku, loc)] = [None, None, None]
            cell[index] = value
    return sum(1 for truth, shop, erp in joined.values() if shop != truth or erp != truth)


def sqlite_join(plain: dict[str, list[Row]]) -> int:
    """The same with SQLite's FULL OUTER JOIN, in memory (loading included)."""
    conn = sqlite3.connect(":memory:")
    try:
        for name in ("wms", "shopify", "erp"):
            conn.execute(
                f"CREATE TABLE {name} (sku TEXT, loc TEXT, value INT, PRIMARY KEY (sku, loc))"
            )
            conn.executemany(f"INSERT INTO {name} VALUES (?, ?, ?)", plain[name])
        (count,) = conn.execute(
            "SELECT count(*) FROM wms w "
            "FULL OUTER JOIN shopify s ON s.sku = w.sku AND s.loc = w.loc "
            "FULL OUTER JOIN erp e "
            "ON e.sku = coalesce(w.sku, s.sku) AND e.loc = coalesce(w.loc, s.loc) "
            "WHERE s.value IS NOT w.value OR e.value IS NOT w.value"
        ).fetchone()
        return int(count)
    finally:
        conn.close()


def _timed(fn: object, *args: object) -> tuple[float, object]:
    gc.collect()
    with Stopwatch() as sw:
        result = fn(*args)  # type: ignore[operator]
    return sw.seconds, result


def run_sync(size: Size) -> Outcome:
    out = Outcome()
    levels, plain = build(size.rows)
    engine, by_dict, by_sqlite = [], [], []
    drifts = joined = joined_sql = 0
    for _ in range(size.repeats):
        seconds, result = _timed(lambda: diff(levels, RULES, now=NOW))
        engine.append(seconds)
        drifts = len(result)  # type: ignore[arg-type]
        del result
        seconds, joined = _timed(dict_join, plain)  # type: ignore[assignment]
        by_dict.append(seconds)
        seconds, joined_sql = _timed(sqlite_join, plain)  # type: ignore[assignment]
        by_sqlite.append(seconds)
    engine_s, dict_s, sqlite_s = median(engine), median(by_dict), median(by_sqlite)
    baseline = min(dict_s, sqlite_s)
    out.facts.update(
        {
            "rows": size.rows,
            "levels": len(levels),
            "repeats": size.repeats,
            "drifts_found": drifts,
            "join_keys_differing": joined,
            "join_keys_differing_sqlite": joined_sql,
            "engine_s": round(engine_s, 3),
            "dict_join_s": round(dict_s, 3),
            "sqlite_join_s": round(sqlite_s, 3),
            "baseline": "dict join" if dict_s <= sqlite_s else "SQLite FULL OUTER JOIN",
        }
    )
    out.checks += [
        Check(f"B2 engine, {size.rows:,} rows × 3 systems", engine_s, "s", "<=", 2.0, baseline),
        Check("B2 engine ÷ plain full outer join", engine_s / baseline, "×", "<=", 3.0),
    ]
    return out


async def bench(quick: bool) -> Outcome:
    return run_sync(QUICK if quick else FULL)
