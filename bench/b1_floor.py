"""B1F, the floor under B1's first run on SQLite: what SQLite alone costs to write B1's
rows into the ledger's schema, with no Driftwatch code running while the clock does.

B1's first full reconciliation records every key new, 13 keys per SKU × location
(Shopify's 8 states, the WMS's 4, the ERP's 1): 6.5 million at 100,000 SKUs × 5
locations. Since migration 0014 they are 1.5 million rows of ``levels``, one per
(system, SKU, location) with a quantity per state (:mod:`ledger.level_columns`). Here
the same levels, in the same key order and shape (catalog SKUs, location keys, the ISO
text :class:`ledger.types.UTCDateTime` stores), go into a database made by the ledger's
own migrations, with the standard library's ``sqlite3`` and the statements and
parameters ``ledger.bulk`` writes a first read's levels with
(:meth:`ledger.bulk.LevelBulk.new_levels_steps`, 64 levels a statement's step, cut
inside the clock as the ledger cuts them): ``executemany`` per chunk of
20,000 keys (the ledger's chunk), all in one transaction as
:meth:`ledger.Ledger.record_levels` writes a batch, WAL and ``synchronous=NORMAL`` as
:mod:`ledger.engine` sets them. The rows are built before the clock starts.
``per_state_cpu_s`` beside it writes the same keys as the ledger did from migration 0013
to 0014, a ``level_current`` row per key, into a database at revision 0013 with that
version's statement (a copy): the A/B of the row per level. ``chunk_commits_cpu_s``
commits after every chunk instead, as B1F did until 2026-12-07 (the difference is what
one transaction costs SQLite: its write-ahead log grows with it). ``page_16k_cpu_s``
writes the same rows in one transaction into a database made with 16 KiB pages
(SQLite's default, and the ledger's, is 4 KiB). ``row_per_step_cpu_s`` writes the same
rows a level a step, as the ledger did until 2026-12-07 (the A/B of the multi-row steps).

If the floor is above B1's target, no change to Driftwatch's code can meet the target
with this schema: that is the limit to name. Probes beside it ask what a different
schema would change, in databases of their own with the same pragmas, chunks and
single transaction:

- ``bare``: the least any ledger keyed by (system, SKU, location, state) must write,
  one row of key and quantity per key into one ``WITHOUT ROWID`` table (one B-tree, no
  times, no source, no history);
- ``with_history``: the keys written as before migration 0013 (2026-12-07), a history
  row beside each current row: bound once into a temporary table, and copied by SQLite
  into ``level_history`` (two indexes) and ``level_current`` (a database at 0013);
- ``wide``: one row per (system, SKU, location) with a column per state, the same
  quantities in 1.5 million rows instead of 6.5 million, and no history; with the
  level's ``since`` and ``since_source`` bound once, as ``level_current`` binds them
  today (a level's change columns once per level, as a ledger whose history also holds
  whole levels would carry them: docs/PER_LEVEL_LEDGER.md);
- ``wide_history``: the history rows such a ledger would write beside them if a first
  read still wrote one per level, as today's history does per key: 1.5 million rows into
  a table shaped like today's ``level_history`` (a row id and its two indexes, by SKU
  and by system and time), a column per state. ``wide`` + ``wide_history`` is the floor
  of a wide ledger that keeps today's history; ``wide`` alone that of one whose first
  read writes no history (history rows only for changes after it);
- ``lean``: B1F's own levels, steps and parameters (the ledger's cutting, 64 levels a
  step) into a ``levels`` table of 14 columns (the key, the first observation, a
  quantity per state) with no own columns and no partial indexes: what SQLite would
  write if a state's own columns, and their indexes, lived in a table of their own,
  written only when a state leaves its first observation (``lean_over_total`` is the
  share of B1F such a migration could keep).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path

from bench import catalog
from bench._common import Check, Outcome, cpu_seconds
from bench.b1_reconcile import FULL, QUICK, Size
from ledger import Ledger
from ledger.bulk import bulk_for
from ledger.level_columns import STATES as LEVEL_STATES
from ledger.levels import CHUNK

#: states per system as B1 reads them (the fakes' Shopify, WMS and ERP)
STATES = {
    "shopify": (
        "available",
        "committed",
        "on_hand",
        "reserved",
        "damaged",
        "safety_stock",
        "quality_control",
        "incoming",
    ),
    "wms": ("available", "committed", "on_hand", "damaged"),
    "erp": ("on_hand",),
}
OBSERVED_AT = "2026-11-02 09:00:00.000000"
#: B1's first-run target (product CPU, seconds)
TARGET = 20.0


Row = tuple[str, str, str, str, int, str, str, str]
#: a level's row as a first read writes it: key, observed and changed time, source, and
#: a quantity per state of its system
LevelRow = tuple[object, ...]


def rows(size: Size) -> Iterator[Row]:
    """B1's keys, system by system, SKU by SKU, as a first read records them."""
    for system, states in STATES.items():
        source = "csv" if system == "erp" else "poll"
        for i in range(size.skus):
            sku = catalog.sku(i)
            for j in range(size.locations):
                location = catalog.location_key(j)
                q = catalog.base_quantity(i, j)
                for state in states:
                    yield (system, sku, location, state, q, OBSERVED_AT, OBSERVED_AT, source)


def level_rows(size: Size) -> dict[str, list[LevelRow]]:
    """B1's levels, per system, as a first read writes them into ``levels``."""
    levels: dict[str, list[LevelRow]] = {}
    for system, states in STATES.items():
        source = "csv" if system == "erp" else "poll"
        levels[system] = [
            (
                system,
                catalog.sku(i),
                catalog.location_key(j),
                OBSERVED_AT,
                OBSERVED_AT,
                source,
                *[catalog.base_quantity(i, j)] * len(states),
            )
            for i in range(size.skus)
            for j in range(size.locations)
        ]
    return levels


def _chunks(all_rows: list[Row]) -> Iterator[list[Row]]:
    for start in range(0, len(all_rows), CHUNK):
        yield all_rows[start : start + CHUNK]


def _connect(path: Path) -> sqlite3.Connection:
    """A connection with the pragmas :mod:`ledger.engine` sets, transactions by hand."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


CURRENT = "system, sku, location, state, quantity, observed_at, changed_at, source"
HISTORY = "system, sku, location, state, quantity, observed_at, source"
MARKS = ", ".join("?" * 8)
#: Frozen copy of the statement new keys went into ``level_current`` with from 0013 to
#: 0014 (``ledger.bulk``): the row bound once, its observed_at, source and quantity
#: named again as its change's.
PER_STATE = (
    f"INSERT INTO level_current ({CURRENT}, since, since_source, since_quantity) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?6, ?8, ?5)"
)


def write(
    path: Path,
    levels: dict[str, list[LevelRow]],
    *,
    commit_chunks: bool = False,
    row_per_step: bool = False,
    upsert: bool = True,
) -> float:
    """CPU seconds of writing the levels as ``ledger.bulk`` writes a first read's on
    SQLite: one transaction, as a batch is recorded (or one per chunk, ``commit_chunks``);
    ``row_per_step``: a level a statement's step, as before 2026-12-07; ``upsert=False``:
    the statements without their upsert clause (which sets a state's own columns)."""
    conn = _connect(path)
    bulk = bulk_for("sqlite")
    try:
        before = cpu_seconds()
        conn.execute("BEGIN")
        for system, rows_ in levels.items():
            states = STATES[system]
            step = max(1, CHUNK // len(states))  # the ledger's chunk of keys, in levels
            for start in range(0, len(rows_), step):
                chunk = rows_[start : start + step]
                if row_per_step:
                    steps = [(bulk.new_levels_steps(states, chunk[:1])[0][0], chunk)]
                else:
                    steps = bulk.new_levels_steps(states, chunk)
                for statement, params in steps:
                    conn.executemany(
                        statement if upsert else statement.split(" ON CONFLICT ")[0], params
                    )
                if commit_chunks:
                    conn.execute("COMMIT")
                    conn.execute("BEGIN")
        conn.execute("COMMIT")
        return cpu_seconds() - before
    finally:
        conn.close()


def lean(path: Path, levels: dict[str, list[LevelRow]]) -> float:
    """The ``lean`` probe (module docstring): :func:`write`'s levels, steps and
    parameters, less the upsert clause, into a 14-column ``levels`` (a database of its
    own) with no partial index."""
    quantities = ", ".join(f"{state} INTEGER" for state in LEVEL_STATES)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            "CREATE TABLE levels (system TEXT NOT NULL, sku TEXT NOT NULL, "
            "location TEXT NOT NULL, observed_at TEXT NOT NULL, changed_at TEXT, "
            f"source TEXT NOT NULL, {quantities}, "
            "PRIMARY KEY (system, sku, location)) WITHOUT ROWID"
        )
    spent = write(path, levels, upsert=False)
    with closing(sqlite3.connect(path)) as conn:
        [(written,)] = conn.execute("SELECT count(*) FROM levels")
    if written != sum(map(len, levels.values())):
        raise RuntimeError(f"the lean probe wrote {written} levels")
    return spent


def per_state(path: Path, all_rows: list[Row]) -> float:
    """CPU seconds of writing the keys as the ledger did from 0013 to 0014: a
    ``level_current`` row per key, one transaction (a database at revision 0013)."""
    conn = _connect(path)
    try:
        before = cpu_seconds()
        conn.execute("BEGIN")
        for chunk in _chunks(all_rows):
            conn.executemany(PER_STATE, chunk)
        conn.execute("COMMIT")
        return cpu_seconds() - before
    finally:
        conn.close()


def with_history(path: Path, all_rows: list[Row]) -> dict[str, float]:
    """The ``with_history`` probe (module docstring): CPU seconds of the current rows'
    binding and copy into ``level_current``, and of their copy into ``level_history``."""
    conn = _connect(path)
    conn.execute(f"CREATE TEMP TABLE staged ({CURRENT})")
    current = history = 0.0
    try:
        conn.execute("BEGIN")
        for chunk in _chunks(all_rows):
            start = cpu_seconds()
            conn.executemany(f"INSERT INTO temp.staged ({CURRENT}) VALUES ({MARKS})", chunk)
            bound = cpu_seconds()
            conn.execute(
                f"INSERT INTO level_history ({HISTORY}) SELECT {HISTORY} FROM temp.staged "
                "ORDER BY rowid"
            )
            copied = cpu_seconds()
            conn.execute(
                f"INSERT INTO level_current ({CURRENT}) SELECT {CURRENT} FROM temp.staged "
                "ORDER BY rowid"
            )
            conn.execute("DELETE FROM temp.staged")
            current += (bound - start) + (cpu_seconds() - copied)
            history += copied - bound
        start = cpu_seconds()
        conn.execute("COMMIT")  # the commit writes both tables' pages: counted with current
        current += cpu_seconds() - start
    finally:
        conn.close()
    return {"current_cpu_s": current, "history_cpu_s": history}


def _probe(path: Path, create: str, insert: str, data: Sequence[tuple[object, ...]]) -> float:
    """CPU seconds of writing ``data`` into the table the script ``create`` makes."""
    conn = _connect(path)
    try:
        conn.executescript(create)
        before = cpu_seconds()
        conn.execute("BEGIN")
        for start in range(0, len(data), CHUNK):
            conn.executemany(insert, data[start : start + CHUNK])
        conn.execute("COMMIT")
        return cpu_seconds() - before
    finally:
        conn.close()


def bare(path: Path, all_rows: Sequence[Row]) -> float:
    """The ``bare`` probe (module docstring)."""
    return _probe(
        path,
        "CREATE TABLE level_bare (system TEXT NOT NULL, sku TEXT NOT NULL, "
        "location TEXT NOT NULL, state TEXT NOT NULL, quantity INTEGER NOT NULL, "
        "PRIMARY KEY (system, sku, location, state)) WITHOUT ROWID",
        "INSERT INTO level_bare VALUES (?, ?, ?, ?, ?)",
        [r[:5] for r in all_rows],
    )


#: every state any system reports, a column each in the ``wide`` probe
WIDE_STATES = sorted({state for states in STATES.values() for state in states})


def wide_rows(all_rows: Sequence[Row]) -> list[tuple[object, ...]]:
    """``all_rows`` as one row per (system, SKU, location), a quantity per state."""
    levels: dict[tuple[str, str, str], dict[str, int]] = {}
    for system, sku, location, state, quantity, *_ in all_rows:
        levels.setdefault((system, sku, location), {})[state] = quantity
    return [
        (*key, *(states.get(s) for s in WIDE_STATES), OBSERVED_AT, OBSERVED_AT, "poll")
        for key, states in levels.items()
    ]


def wide(path: Path, rows_: Sequence[tuple[object, ...]]) -> float:
    """The ``wide`` probe (module docstring)."""
    columns = ", ".join(f"{state} INTEGER" for state in WIDE_STATES)
    n = 3 + len(WIDE_STATES) + 3
    # since and since_source: the observed time and source named again, as
    # LevelBulk.new_keys_statement names them (each value bound once)
    marks = ", ".join([f"?{i}" for i in range(1, n + 1)] + [f"?{n - 2}", f"?{n}"])
    return _probe(
        path,
        f"CREATE TABLE level_wide (system TEXT NOT NULL, sku TEXT NOT NULL, "
        f"location TEXT NOT NULL, {columns}, observed_at TEXT NOT NULL, changed_at TEXT, "
        "source TEXT NOT NULL, absent BOOLEAN NOT NULL DEFAULT 0, since TEXT, "
        "since_source TEXT, PRIMARY KEY (system, sku, location)) WITHOUT ROWID",
        f"INSERT INTO level_wide (system, sku, location, {', '.join(WIDE_STATES)}, "
        f"observed_at, changed_at, source, since, since_source) VALUES ({marks})",
        rows_,
    )


def wide_history(path: Path, rows_: Sequence[tuple[object, ...]]) -> float:
    """The ``wide_history`` probe (module docstring): ``rows_`` as :func:`wide_rows`
    makes them, less ``changed_at``."""
    columns = ", ".join(f"{state} INTEGER" for state in WIDE_STATES)
    names = ", ".join(WIDE_STATES)
    marks = ", ".join("?" * (3 + len(WIDE_STATES) + 2))
    history = [(*r[:-3], r[-3], r[-1]) for r in rows_]
    return _probe(
        path,
        "CREATE TABLE level_wide_history (id INTEGER PRIMARY KEY, system TEXT NOT NULL, "
        f"sku TEXT NOT NULL, location TEXT NOT NULL, {columns}, observed_at TEXT NOT NULL, "
        "source TEXT NOT NULL); "
        "CREATE INDEX ix_wide_history_key_time ON level_wide_history "
        "(sku, system, location, observed_at); "
        "CREATE INDEX ix_wide_history_system_time ON level_wide_history (system, observed_at);",
        f"INSERT INTO level_wide_history (system, sku, location, {names}, observed_at, "
        f"source) VALUES ({marks})",
        history,
    )


#: the ``page_16k`` probe's page size (SQLite's default is 4,096 bytes)
BIG_PAGE = 16_384


async def _ledger(path: Path, *, page_size: int | None = None, revision: str = "head") -> None:
    """A new database at ``path`` made by the ledger's migrations (up to ``revision``);
    with ``page_size`` set on the empty file first (it holds from the first table on)."""
    if page_size is not None:
        conn = sqlite3.connect(path)
        try:
            conn.execute(f"PRAGMA page_size = {page_size}")
            conn.execute("VACUUM")
        finally:
            conn.close()
    async with Ledger.from_url(f"sqlite:///{path}") as ledger:
        await ledger.upgrade(revision)
    if page_size is not None:
        conn = sqlite3.connect(path)
        try:
            (found,) = conn.execute("PRAGMA page_size").fetchone()
        finally:
            conn.close()
        if found != page_size:
            raise RuntimeError(f"{path}: page size {found}, not {page_size}")


async def run(size: Size) -> Outcome:
    out = Outcome()
    all_rows = list(rows(size))
    levels = level_rows(size)
    missing = {state for states in STATES.values() for state in states} - set(LEVEL_STATES)
    if missing:
        raise RuntimeError(f"B1F's states {sorted(missing)} have no column in levels")
    with tempfile.TemporaryDirectory(prefix="bench-b1f-") as tmp:
        paths = [Path(tmp) / "floor.db", Path(tmp) / "history.db"]
        await _ledger(paths[0])
        wall = time.perf_counter()
        total = write(paths[0], levels)
        wall = time.perf_counter() - wall
        paths[0].unlink()
        await _ledger(paths[0], revision="0013")
        per_state_cpu = per_state(paths[0], all_rows)
        paths[0].unlink()
        await _ledger(paths[0])
        chunk_commits = write(paths[0], levels, commit_chunks=True)
        paths[0].unlink()
        await _ledger(paths[0])
        row_per_step = write(paths[0], levels, row_per_step=True)
        paths[0].unlink()
        await _ledger(paths[0], page_size=BIG_PAGE)
        big_pages = write(paths[0], levels)
        paths[0].unlink()
        await _ledger(paths[1], revision="0013")
        figures = with_history(paths[1], all_rows)
        paths[1].unlink()
        bare_cpu = bare(Path(tmp) / "bare.db", all_rows)
        wide_levels = wide_rows(all_rows)
        wide_cpu = wide(Path(tmp) / "wide.db", wide_levels)
        wide_history_cpu = wide_history(Path(tmp) / "wide.db", wide_levels)
        lean_cpu = lean(Path(tmp) / "lean.db", levels)
    before = figures["current_cpu_s"] + figures["history_cpu_s"]
    out.facts.update(
        {
            "size": f"{size.skus:,} SKUs × {size.locations} locations",
            "rows": sum(map(len, levels.values())),
            "keys": len(all_rows),
            "total_cpu_s": round(total, 2),
            "wall_s": round(wall, 2),
            "us_per_key": round(total / len(all_rows) * 1e6, 2),
            "per_state_cpu_s": round(per_state_cpu, 2),
            "total_over_per_state": round(total / per_state_cpu, 3),
            "chunk_commits_cpu_s": round(chunk_commits, 2),
            "row_per_step_cpu_s": round(row_per_step, 2),
            "total_over_row_per_step": round(total / row_per_step, 3),
            "page_16k_cpu_s": round(big_pages, 2),
            "with_history_cpu_s": round(before, 2),
            "with_history_current_cpu_s": round(figures["current_cpu_s"], 2),
            "with_history_history_cpu_s": round(figures["history_cpu_s"], 2),
            "bare_cpu_s": round(bare_cpu, 2),
            "wide_rows": len(wide_levels),
            "wide_cpu_s": round(wide_cpu, 2),
            "wide_history_cpu_s": round(wide_history_cpu, 2),
            "wide_with_history_cpu_s": round(wide_cpu + wide_history_cpu, 2),
            "lean_cpu_s": round(lean_cpu, 2),
            "lean_over_total": round(lean_cpu / total, 3),
        }
    )
    out.checks.append(
        Check(
            "B1F SQLite alone writing B1's first-run rows, CPU",
            total,
            "s",
            "<=",
            TARGET,
        )
    )
    return out


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL)
