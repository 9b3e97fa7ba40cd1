"""B2, the drift engine alone: ``monitors.drift.diff`` over N SKU × location rows from
three systems (Shopify, the WMS as the truth, the ERP), beside a plain full outer join of
the same rows that computes each system's gap to the truth and counts the keys where one
differs.

The baseline is that join written with polars (``DataFrame`` from the rows, two ``full``
joins on (sku, location), the gaps as columns; loading included); a Python dict join is
reported beside it. Both get the rows as plain tuples; the engine gets the connectors'
:class:`~connectors.levels.Level` objects (built before the clock starts). polars runs
its joins on every core; the engine uses one.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

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


_SCHEMA = [("sku", pl.String), ("loc", pl.String), ("value", pl.Int64)]


def polars_join(plain: dict[str, list[Row]]) -> int:
    """The same with polars: load the rows, full outer join on (sku, location), the gap
    of each system to the truth, count the keys where a value differs (null-aware)."""
    frames = {
        name: pl.DataFrame(plain[name], schema=_SCHEMA, orient="row").rename({"value": name})
        for name in ("wms", "shopify", "erp")
    }
    keys = ["sku", "loc"]
    joined = (
        frames["wms"]
        .join(frames["shopify"], on=keys, how="full", coalesce=True)
        .join(frames["erp"], on=keys, how="full", coalesce=True)
        .with_columns(
            shopify_gap=pl.col("shopify") - pl.col("wms"),
            erp_gap=pl.col("erp") - pl.col("wms"),
        )
    )
    differing = pl.col("shopify").ne_missing(pl.col("wms")) | pl.col("erp").ne_missing(
        pl.col("wms")
    )
    return joined.filter(differing).height


def _timed(fn: object, *args: object) -> tuple[float, object]:
    gc.collect()
    with Stopwatch() as sw:
        result = fn(*args)  # type: ignore[operator]
    return sw.seconds, result


def run_sync(size: Size) -> Outcome:
    out = Outcome()
    levels, plain = build(size.rows)
    engine, by_polars, by_dict = [], [], []
    drifts = joined = joined_dict = 0
    for _ in range(size.repeats):
        seconds, result = _timed(lambda: diff(levels, RULES, now=NOW))
        engine.append(seconds)
        drifts = len(result)  # type: ignore[arg-type]
        del result
        seconds, joined = _timed(polars_join, plain)  # type: ignore[assignment]
        by_polars.append(seconds)
        seconds, joined_dict = _timed(dict_join, plain)  # type: ignore[assignment]
        by_dict.append(seconds)
    engine_s, polars_s, dict_s = median(engine), median(by_polars), median(by_dict)
    out.facts.update(
        {
            "rows": size.rows,
            "levels": len(levels),
            "repeats": size.repeats,
            "drifts_found": drifts,
            "join_keys_differing": joined,
            "join_keys_differing_dict": joined_dict,
            "engine_s": round(engine_s, 3),
            "polars_join_s": round(polars_s, 3),
            "dict_join_s": round(dict_s, 3),
            "engine_per_dict_join": round(engine_s / dict_s, 2),
            "baseline": f"polars {pl.__version__} full outer join (loading included)",
        }
    )
    out.checks += [
        Check(f"B2 engine, {size.rows:,} rows × 3 systems", engine_s, "s", "<=", 2.0, polars_s),
        Check("B2 engine ÷ polars full outer join", engine_s / polars_s, "×", "<=", 3.0),
    ]
    return out


async def bench(quick: bool) -> Outcome:
    return run_sync(QUICK if quick else FULL)
