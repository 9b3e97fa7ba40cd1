"""Bulk statements for levels, one flavour per backend.

Since migration 0014 a level's states live in one row of ``levels`` (how:
:mod:`ledger.level_columns`); the view ``level_current`` shows a row per key to readers,
and this module writes the table. Its methods still take keys and current rows per
state, as :mod:`ledger.levels` works with them, and address each state's columns.

A poll can bring hundreds of thousands of observations, so :mod:`ledger.levels` reads
and writes them here in large chunks: each chunk of keys or rows travels as ONE JSON
array parameter and is expanded server-side (``json_array_elements`` on PostgreSQL,
``json_each`` on SQLite), so a chunk costs one statement (one per state present, for a
write that names a state's columns), and the encoding is a single C-speed
``json.dumps`` rather than per-row parameter processing. Writes are the exception,
because a first read of 100,000 SKUs writes 1.5 million levels. On SQLite every insert
and upsert goes through ``executemany``, which binds the rows in C (the JSON form took
about 45% more CPU at 30,000 SKUs, BENCHMARKS.md, issue 16); new levels 64 to a
statement's step (:meth:`LevelBulk.new_levels_steps`). On PostgreSQL, history rows
go through ``COPY ... FROM STDIN`` in its text format, built by hand (:func:`copy_rows`),
and new keys' levels (a first read's: :meth:`LevelBulk.insert_levels`) through COPY
into a table of the transaction's own, merged by the server into ``levels``; the
server takes COPY about three times faster than the JSON form. Upserts of known keys
travel as JSON, and so does text COPY would read otherwise.

A new key's state writes no history: a level's first observation is its states' first
change (``since``; :mod:`ledger.timeline`). A change to a stored key first moves the
stored change into ``level_history`` (:meth:`LevelBulk.supersede`).

Rows are tuples in column order: history ``(system, sku, location, state, quantity,
observed_at, source)``, current ``(system, sku, location, state, quantity, observed_at,
changed_at, source)``, a level ``(system, sku, location, observed_at, changed_at,
source, quantity per state)``. Datetimes travel as text: ISO 8601 with offset to
PostgreSQL, and to SQLite in exactly the form :class:`ledger.types.UTCDateTime` stores.
"""

from __future__ import annotations

import itertools
import json
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from psycopg import AsyncConnection as PsycopgConnection
from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.level_columns import FIRST, OWN, STATES, VIEW, keyed, own, require_known_states, value
from ledger.records import LevelObservation
from ledger.storable import require_storable
from ledger.tables import LEVEL_CURRENT
from ledger.timeline import holds_change

Key = tuple[str, str, str, str]  # system, sku, location, state
CurrentRow = tuple[str, str, str, str, int, datetime, datetime | None, str]
HistoryRow = tuple[str, str, str, str, int, datetime, str]
#: the change that set a current row's value: since, since_source, previous (its
#: since_quantity is the row's quantity)
Since = tuple[datetime, str, int | None]
#: rows built only when asked for (the fallback of :func:`_copy`)
RowsFrom = Callable[[], Sequence[Sequence[object]]]

T = TypeVar("T")
_KEY = ("system", "sku", "location", "state")
#: SQLite: levels one statement of :meth:`LevelBulk._merge` takes at once, as one
#: multi-row ``VALUES``. Each step of a statement opens ``levels`` and its eight partial
#: indexes and evaluates the statement's setup once, so 64 rows a step take 0.58x the
#: CPU of a row a step for B1's first read (7.16 -> 4.15 s, BENCHMARKS.md, issue 16).
_ROWS_PER_STEP = 64
#: the most parameters one statement binds on any SQLite (999 before 3.32)
_MOST_PARAMETERS = 999


def _effective(absent: str, observed: str) -> str:
    """A stored state's ``observed_at``, lifted to its system's last complete read (alias
    ``r``, ``level_reads``) unless that read did not report it (``absent``)."""
    return (
        f"(CASE WHEN {absent} OR r.observed_at IS NULL OR r.observed_at <= {observed} "
        f"THEN {observed} ELSE r.observed_at END)"
    )


#: A current row's ``observed_at`` (alias ``c``), lifted to its system's last complete
#: read (alias ``r``, ``level_reads``) unless that read did not report it.
EFFECTIVE_OBSERVED_AT = _effective("c.absent", "c.observed_at")
_HISTORY = (*_KEY, "quantity", "observed_at", "source")
#: new levels' rows on PostgreSQL, on their way into ``levels`` (:func:`_stage`: a
#: table of the session's own in ``pg_temp``, dropped at commit or rollback)
_STAGED = "driftwatch_new_levels"
_OBSERVED, _CHANGED = attrgetter("observed_at"), attrgetter("changed_at")
_STATE = attrgetter("state")
_CURRENT = (*_KEY, "quantity", "observed_at", "changed_at", "source")
#: a current row (alias ``c``) that holds its key's newest change (ledger.timeline)
HOLDS_CHANGE = str(and_(*holds_change(LEVEL_CURRENT.alias("c"))).compile())


@lru_cache(maxsize=4096)  # a poll's observations share a handful of timestamps
def sqlite_text(value: datetime) -> str:
    """``value`` as SQLite stores a :class:`~ledger.types.UTCDateTime`: UTC, fixed width."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


@lru_cache(maxsize=4096)
def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


class LevelBulk:
    """Reads and writes levels in bulk on one backend (see the module docstring)."""

    def __init__(
        self,
        *,
        rows_from: str,
        field: Callable[[int, str], str],
        time_to_text: Callable[[datetime], str],
        time_from_db: Callable[[str | datetime], datetime],
        same: str,
        placeholder: str | None = None,
        copy: bool = False,
    ) -> None:
        """Inserts go through ``COPY`` (``copy``, psycopg only) or else row by row
        through ``executemany`` with ``placeholder``, the driver's parameter marker;
        upserts go as one JSON array, or through ``executemany`` when there is one."""
        if copy == (placeholder is not None):
            raise ValueError("inserts go through COPY or executemany: give one of the two")
        self._time_to_text = time_to_text
        self._many = placeholder is not None
        self._copy = copy
        self._time_from_db = time_from_db
        self._placeholder = placeholder
        self._same = same

        def select(names: Sequence[str], types: Sequence[str]) -> str:
            fields = ", ".join(
                f"{field(i, t)} AS {name}"
                for i, (name, t) in enumerate(zip(names, types, strict=True))
            )
            return f"SELECT {fields} FROM {rows_from}"

        self._select = select
        text4 = ("text",) * 4
        keys = select(_KEY, text4)
        # (WHERE true: SQLite reads ON CONFLICT after a bare FROM as a join's)
        self._skus = (
            f"INSERT INTO level_skus (sku) {select(('sku',), ('text',))} WHERE true "
            "ON CONFLICT (sku) DO NOTHING"
        )
        current_columns = [f"c.{c}" for c in _CURRENT]
        current_columns[5] = f"{EFFECTIVE_OBSERVED_AT} AS observed_at"
        self._load = (
            f"SELECT {', '.join(current_columns)} FROM {_as_keys(keys)} AS c "
            "LEFT JOIN level_reads AS r ON r.system = c.system WHERE c.quantity IS NOT NULL"
        )
        # The stored change of keys about to change, into history before the upsert
        # replaces it (where the row holds one: history holds the change of a row
        # written, or last changed, by a version before 0013).
        self._supersede = (
            f"INSERT INTO level_history ({', '.join(_HISTORY)}) "
            "SELECT c.system, c.sku, c.location, c.state, c.quantity, c.since, c.since_source "
            f"FROM {_as_keys(keys)} AS c WHERE c.quantity IS NOT NULL AND {HOLDS_CHANGE}"
        )
        current_types = (*text4, "integer", "timestamptz", "timestamptz", "text")
        self._current_types = current_types
        # An observation that brings nothing new: same quantity and source, and either
        # no changed_at or the stored one; its row needs at most a later observed_at.
        incoming = select(_CURRENT, current_types)
        # (r: the system's last complete read, whose time stands for the keys it found)
        self._differing = (
            f"SELECT {', '.join(f'c.{c}' for c in _KEY)}, c.quantity, "
            f"{EFFECTIVE_OBSERVED_AT}, c.changed_at, c.source "
            f"FROM {_as_keys(incoming, _CURRENT[4:], outer=True)} AS c "
            "LEFT JOIN level_reads AS r ON r.system = c.system "
            f"WHERE c.quantity IS NULL OR NOT ({_unchanged(_INCOMING_AS, same)} "
            f"AND {EFFECTIVE_OBSERVED_AT} <= c.k_observed_at)"
        )
        # a statement per state: a key's state picks the columns it writes
        self._absent = {state: self._absent_of(state) for state in STATES}
        self._refresh = {state: self._refresh_of(state) for state in STATES}
        self._upsert = {state: self._upsert_of(state) for state in STATES}

    # -- statements per state (a key's state picks the columns it writes) ---------------

    def _absent_of(self, state: str) -> str:
        """Keys of ``state`` a complete read did not report: their observed_at stops at
        the read before, and stays there (the state takes its own columns)."""
        observed = value(state, "observed_at")
        stops = (
            f"CASE WHEN r.observed_at IS NOT NULL AND {observed} < r.observed_at "
            f"THEN r.observed_at ELSE {observed} END"
        )
        return (
            f"UPDATE levels AS l SET {_own_set(state, absent='true', observed_at=stops)} "
            f"FROM ({self._select(_KEY, ('text',) * 4)}) AS k, level_reads AS r "
            f"WHERE {_level_join('l', 'k')} AND r.system = l.system AND l.{state} IS NOT NULL"
        )

    def _refresh_of(self, state: str) -> str:
        """Keys of ``state`` observed bringing nothing new: a later observed_at at most."""
        c = {name: value(state, name) for name in VIEW}
        observed = c["observed_at"]
        effective = _effective(c["absent"], observed)
        later = f"CASE WHEN {observed} < k.observed_at THEN k.observed_at ELSE {observed} END"
        return (
            f"UPDATE levels AS l SET {_own_set(state, absent='false', observed_at=later)} "
            f"FROM ({self._select(_CURRENT, self._current_types)}) AS k "
            "LEFT JOIN level_reads AS r ON r.system = k.system "
            f"WHERE {_level_join('l', 'k')} AND l.{state} IS NOT NULL "
            f"AND {_unchanged(c, self._same)} AND {effective} <= k.observed_at "
            f"AND ({observed} < k.observed_at OR {c['absent']})"
        )

    def _upsert_of(self, state: str) -> str:
        """Current rows of ``state`` inserted or updated, never replacing a newer
        observed_at; the state keeps its change unless the row brings one (since)."""
        names = [*_KEY[:3], *FIRST, *(own(state, name) for name in VIEW)]
        types = [*("text",) * 3, *(_SQL_TYPES[name] for name in (*FIRST, *VIEW))]
        if self._placeholder is None:
            rows = self._select(names, types)
        else:
            rows = f"VALUES ({', '.join([self._placeholder] * len(names))})"
        since = own(state, "since")

        def kept(name: str) -> str:  # the state's stored value unless the row brings a change
            return (
                f"CASE WHEN excluded.{since} IS NULL THEN {value(state, name, 'levels')} "
                f"ELSE excluded.{own(state, name)} END"
            )

        updates = [
            f"{own(state, name)} = excluded.{own(state, name)}"
            for name in ("quantity", "observed_at", "changed_at", "source")
        ]
        updates += [f"{own(state, 'absent')} = false"]
        updates += [f"{own(state, name)} = {kept(name)}" for name in VIEW[5:]]
        return (
            f"INSERT INTO levels ({', '.join(names)}) {rows} {_WHERE_TRUE[self._many]}"
            f"ON CONFLICT (system, sku, location) DO UPDATE SET {', '.join(updates)} "
            f"WHERE levels.{state} IS NULL "
            f"OR {value(state, 'observed_at', 'levels')} <= excluded.{own(state, 'observed_at')}"
        )

    @lru_cache(maxsize=64)  # noqa: B019
    def _merge(self, states: tuple[str, ...], staged: bool = False, per_step: int = 1) -> str:
        """New keys' levels, a quantity per state of ``states``: a new level's row, or
        the states added to the level's row (each a new key: its own columns are this
        observation); with a placeholder, ``per_step`` rows of parameters at once."""
        names = [*_KEY[:3], *FIRST, *states]
        types = (*("text",) * 3, "timestamptz", "timestamptz", "text", *("integer",) * len(states))
        if staged:
            rows = f"SELECT {', '.join(names)} FROM pg_temp.{_STAGED} WHERE true "
        elif self._placeholder is None:
            rows = f"{self._select(names, types)} WHERE true "
        else:
            one = f"({', '.join([self._placeholder] * len(names))})"
            rows = f"VALUES {', '.join([one] * per_step)} "
        added = {
            "observed_at": "excluded.observed_at",
            "changed_at": "excluded.changed_at",
            "source": "excluded.source",
            "absent": "false",
            "since": "excluded.observed_at",
            "since_source": "excluded.source",
            "previous": "NULL",
        }
        updates: list[str] = []
        for state in states:
            added["since_quantity"] = f"excluded.{state}"
            updates.append(f"{state} = COALESCE(excluded.{state}, levels.{state})")
            updates += [
                f"{own(state, name)} = CASE WHEN excluded.{state} IS NULL "
                f"THEN levels.{own(state, name)} ELSE {added[name]} END"
                for name in OWN
            ]
        return (
            f"INSERT INTO levels ({', '.join(names)}) {rows}"
            f"ON CONFLICT (system, sku, location) DO UPDATE SET {', '.join(updates)}"
        )

    def new_levels_steps(
        self, states: Sequence[str], rows: Sequence[tuple[object, ...]]
    ) -> list[tuple[str, list[tuple[object, ...]]]]:
        """How levels' rows (system, sku, location, observed_at, changed_at, source, then
        a quantity or None per state of ``states``; times as text; each level once) go
        into ``levels`` on SQLite: ``executemany`` of each statement with its parameters,
        :data:`_ROWS_PER_STEP` rows a step and the rest a row a step. B1F writes a first
        read's levels with it, as the ledger does."""
        if not self._many:
            raise ValueError("new levels go through COPY on this backend")
        states = tuple(states)
        width = len(_KEY) - 1 + len(FIRST) + len(states)
        if any(len(row) != width for row in rows):  # cut into steps, a row would shift
            raise ValueError(f"a level's row has {width} values for states {list(states)}")
        per_step = max(1, min(_ROWS_PER_STEP, _MOST_PARAMETERS // width))
        whole = len(rows) - len(rows) % per_step
        steps: list[tuple[str, list[tuple[object, ...]]]] = []
        if whole:
            values = iter(itertools.chain.from_iterable(itertools.islice(rows, whole)))
            # ``per_step`` rows' values a tuple, cut at C speed
            params = list(zip(*[values] * (per_step * width), strict=False))
            steps.append((self._merge(states, per_step=per_step), params))
        if whole < len(rows):
            steps.append((self._merge(states), list(rows[whole:])))
        return steps

    # -- reads and writes ------------------------------------------------------------------

    async def load_current(self, conn: AsyncConnection, keys: Sequence[Key]) -> list[CurrentRow]:
        """The stored current rows of ``keys`` (keys without one are left out)."""
        if not keys:
            return []
        result = await conn.exec_driver_sql(self._load, (json.dumps(keys),))
        parse = self._time_from_db
        return [
            (r[0], r[1], r[2], r[3], r[4], parse(r[5]), parse(r[6]) if r[6] else None, r[7])
            for r in result
        ]

    async def refresh_unchanged(
        self, conn: AsyncConnection, rows: Sequence[CurrentRow]
    ) -> list[tuple[Key, CurrentRow | None]]:
        """Record ``rows`` (at most one per key) where they bring nothing new, and return
        the others with their stored row (None for a new key).

        A row brings nothing new when its key's stored row has the same quantity and
        source, the same ``changed_at`` (or the row has none) and an ``observed_at`` no
        later than the row's; such a stored row only gets the later ``observed_at``, in
        one set-based UPDATE per state, without leaving the database. The rest (new
        keys, changes, stale rows) come back to be applied one by one.
        """
        if not rows:
            return []
        text = self._time_to_text
        encoded = [(*r[:5], text(r[5]), text(r[6]) if r[6] else None, r[7]) for r in rows]
        result = await conn.exec_driver_sql(self._differing, (json.dumps(encoded),))
        parse = self._time_from_db
        pending = [
            (
                (r[0], r[1], r[2], r[3]),
                None
                if r[4] is None
                else (
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    parse(r[5]),
                    parse(r[6]) if r[6] else None,
                    r[7],
                ),
            )
            for r in result
        ]
        if len(pending) < len(rows):  # else there is nothing to refresh (a first poll)
            for state, group in _by_state(encoded, _KEY_STATE):
                await conn.exec_driver_sql(self._refresh[state], (json.dumps(group),))
        return pending

    async def mark_absent(self, conn: AsyncConnection, keys: Sequence[Key]) -> None:
        """Mark ``keys`` as not reported by their system's complete read (done before
        ``level_reads`` takes that read's time): their ``observed_at`` becomes the
        previous complete read's, where that is later, and stays there."""
        for state, group in _by_state(keys, _KEY_STATE):
            await conn.exec_driver_sql(self._absent[state], (json.dumps(group),))

    async def insert_skus(self, conn: AsyncConnection, skus: Sequence[str]) -> None:
        """Note ``skus`` in ``level_skus`` (those already there are left as they are), as
        one JSON array: a first read of 100,000 SKUs is one statement."""
        if skus:
            await conn.exec_driver_sql(self._skus, (json.dumps([[sku] for sku in skus]),))

    async def insert_history(self, conn: AsyncConnection, rows: Sequence[HistoryRow]) -> None:
        """Append history rows."""
        if not rows:
            return
        text = self._time_to_text
        data = [(*r[:5], text(r[5]), r[6]) for r in rows]
        if self._copy:
            await copy_rows(conn, "level_history", _HISTORY, data)
        else:
            marks = ", ".join([self._placeholder or "?"] * len(_HISTORY))
            await conn.exec_driver_sql(
                f"INSERT INTO level_history ({', '.join(_HISTORY)}) VALUES ({marks})", data
            )

    async def supersede(self, conn: AsyncConnection, keys: Sequence[Key]) -> None:
        """Move the stored change of ``keys`` (each has a current row about to take a new
        value) into ``level_history``, copied by the database: call before the history
        rows and the upsert of the same change, so history's ids stay in time order."""
        if keys:
            await conn.exec_driver_sql(self._supersede, (json.dumps(list(keys)),))

    async def insert_new(self, conn: AsyncConnection, new: Sequence[LevelObservation]) -> None:
        """Record observations of keys that have no current row (the caller vouches; a
        key that has one is overwritten), each its key's only observation, as its key's
        first change (no history row), whose ``changed_at`` is the system's or else the
        observation's time. A level's new keys observed at one time from one source go
        into its row together, the level's first observation where it has no row yet.
        """
        if not new:
            return
        # text from outside, refused before anything is written (the system was
        # checked with its chunk)
        for name in ("sku", "location", "source"):
            require_storable(name, list(map(attrgetter(name), new)), new)
        require_known_states(list(map(_STATE, new)), new)
        observed, changed = self._texts(list(map(_OBSERVED, new)), list(map(_CHANGED, new)))
        #: per level and observation (time and source), its states' quantities
        levels: dict[tuple[str, ...], dict[str, int]] = {}
        for obs, at, changed_at in zip(new, observed, changed, strict=True):
            key = (obs.system, obs.sku, obs.location, at, changed_at, obs.source)
            levels.setdefault(key, {})[obs.state] = obs.quantity
        states = tuple(s for s in STATES if any(s in q for q in levels.values()))
        rows = [(*key, *map(q.get, states)) for key, q in levels.items()]
        await self._write_levels(conn, states, rows)

    async def insert_levels(
        self,
        conn: AsyncConnection,
        system: str,
        states: Sequence[str],
        columns: tuple[list[str], list[str], list[datetime], list[datetime | None], list[str]],
        quantities: Sequence[int],
    ) -> None:
        """:meth:`insert_new` for levels as columns: ``columns`` are the levels' SKUs,
        locations, observed and changed times and sources, ``quantities`` their values
        level by level, a value per state of ``states``. Every key must be new and its
        text storable (the caller vouches for both), and each level here once. A level's
        row is built at C speed from the columns, no object made per observation."""
        skus, locations, observed, changed, sources = columns
        k, m = len(states), len(skus)
        if not k or not m:
            return
        if len(quantities) != m * k:
            raise ValueError(f"{len(quantities)} quantities for {m} levels of {k} states")
        observed_text, changed_text = self._texts(observed, changed)
        by_state = [quantities[i::k] for i in range(k)]
        rows = list(
            zip(
                itertools.repeat(system, m),
                skus,
                locations,
                observed_text,
                changed_text,
                sources,
                *by_state,
                strict=True,
            )
        )
        await self._write_levels(conn, tuple(states), rows, once=True)

    async def _write_levels(
        self,
        conn: AsyncConnection,
        states: tuple[str, ...],
        rows: Sequence[tuple[object, ...]],
        *,
        once: bool = False,
    ) -> None:
        """Levels' rows (key, first observation, a quantity or None per state of
        ``states``; times as text) merged into ``levels``: a level with no row gets
        this one, a level with a row gets the states given here. A level twice among
        ``rows`` (two observations of it) is merged in two rounds, in order; ``once``:
        the caller vouches each level is there once (a first read's levels: 1.5 million
        at B1's size, not each looked up)."""
        for batch in [rows] if once else _rounds(rows):
            if self._many:
                for statement, params in self.new_levels_steps(states, batch):
                    await conn.exec_driver_sql(statement, params)
            elif not await self._copy_merge(conn, states, batch):
                await conn.exec_driver_sql(self._merge(states), (json.dumps(batch),))

    async def _copy_merge(
        self, conn: AsyncConnection, states: tuple[str, ...], rows: Sequence[tuple[object, ...]]
    ) -> bool:
        """:meth:`_write_levels` through ``COPY`` into this transaction's staging table,
        then one statement the server runs. False, with nothing written, where the rows
        need COPY's escaping (or hold a None) or the connection cannot stage them
        (:func:`_stage`)."""
        data = _copy_text(rows, 6 + len(states))
        if data is None or not await _stage(conn):
            return False
        raw, _ = await _psycopg(conn)
        names = ", ".join([*_KEY[:3], *FIRST, *states])
        async with raw.cursor() as cursor:
            async with cursor.copy(f"COPY pg_temp.{_STAGED} ({names}) FROM STDIN") as copy:
                await copy.write(data)
            await cursor.execute(self._merge(states, staged=True))
            await cursor.execute(f"TRUNCATE pg_temp.{_STAGED}")
        return True

    def _texts(
        self, observed: list[datetime], changed: list[datetime | None]
    ) -> tuple[list[str], list[str]]:
        """New rows' observed and changed times as text (a changed time the system did not
        give is the observed one), each distinct time converted once."""
        distinct = {*observed, *changed} - {None}
        times: dict[datetime | None, str] = {t: self._time_to_text(t) for t in distinct if t}
        observed_text = list(map(times.__getitem__, observed))
        return observed_text, list(map(times.get, changed, observed_text))

    async def upsert_current(
        self, conn: AsyncConnection, rows: Sequence[CurrentRow], since: Sequence[Since | None]
    ) -> None:
        """Insert or update current rows (at most one per key, each of a state the ledger
        keeps: the caller vouches), never replacing a newer ``observed_at``. Each row's
        ``since`` is the change that set its value; None where its value did not change,
        and the stored row keeps its own (a new key always has one)."""
        if not rows:
            return
        text = self._time_to_text
        for state, group in _by_state(list(zip(rows, since, strict=True)), _PAIR_STATE):
            data = []
            for r, c in group:
                observed, changed = text(r[5]), text(r[6]) if r[6] else None
                change = (text(c[0]), c[1], r[4], c[2]) if c else (None, None, None, None)
                # a new level's first observation, then the state's quantity and own columns
                data.append(
                    (*r[:3], observed, changed, r[7], r[4], observed, changed, r[7], False, *change)
                )
            statement = self._upsert[state]
            await conn.exec_driver_sql(statement, data if self._many else (json.dumps(data),))


#: the SQL type of a level's and a state's columns, by name (for the JSON form's casts)
_SQL_TYPES = {
    "observed_at": "timestamptz",
    "changed_at": "timestamptz",
    "source": "text",
    "quantity": "integer",
    "absent": "boolean",
    "since": "timestamptz",
    "since_source": "text",
    "since_quantity": "integer",
    "previous": "integer",
}
#: SQLite reads ON CONFLICT after ``INSERT ... SELECT ... FROM`` as a join's unless a
#: WHERE comes between (``VALUES``, for executemany, needs none)
_WHERE_TRUE = {True: "", False: "WHERE true "}
#: the columns of an incoming current row, as :func:`_as_keys` names them
_INCOMING_AS = {
    "quantity": "c.quantity",
    "source": "c.source",
    "changed_at": "c.changed_at",
    "k_quantity": "c.k_quantity",
    "k_source": "c.k_source",
    "k_changed_at": "c.k_changed_at",
}


def _rounds(rows: Sequence[tuple[object, ...]]) -> list[list[tuple[object, ...]]]:
    """Levels' rows in rounds, in order: a level's first row in the first, its second
    (a second observation of it) in the second, and so on."""
    rounds: list[list[tuple[object, ...]]] = []
    seen: dict[tuple[object, ...], int] = {}
    for row in rows:
        level = row[:3]
        at = seen[level] = seen.get(level, -1) + 1
        if at == len(rounds):
            rounds.append([])
        rounds[at].append(row)
    return rounds


def _as_keys(keys: str, carried: Sequence[str] = (), *, outer: bool = False) -> str:
    """``keys`` (a select of rows with the key's four columns, and ``carried`` ones named
    ``k_<name>``) with each key's stored row from ``levels``, as ``level_current`` shows
    it: a row per key (its quantity NULL where the key has none; ``outer``: also where
    its level has none)."""
    extra = "".join(f", k.{name} AS k_{name}" for name in carried)
    stored = ", ".join(f"{keyed(name, 'k.state')} AS {name}" for name in VIEW)
    join = "LEFT JOIN" if outer else "JOIN"
    return (
        f"(SELECT k.system, k.sku, k.location, k.state{extra}, {stored} FROM ({keys}) AS k "
        f"{join} levels AS l ON {_level_join('l', 'k')})"
    )


def _unchanged(c: Mapping[str, str], same: str) -> str:
    """An incoming row (k) that brings nothing new against the stored state ``c``."""
    k = {
        "quantity": c.get("k_quantity", "k.quantity"),
        "source": c.get("k_source", "k.source"),
        "changed_at": c.get("k_changed_at", "k.changed_at"),
    }
    return (
        f"{c['quantity']} = {k['quantity']} AND {c['source']} = {k['source']} "
        f"AND ({k['changed_at']} IS NULL OR {c['changed_at']} {same} {k['changed_at']})"
    )


def _own_set(state: str, **given: str) -> str:
    """SET clauses giving ``state`` its own columns (alias ``l``): ``given`` ones as SQL,
    the others as the state reads now (the right-hand sides read the row before)."""
    return ", ".join(f"{own(state, name)} = {given.get(name, value(state, name))}" for name in OWN)


def _by_state(rows: Sequence[T], state: Callable[[T], str]) -> Iterator[tuple[str, list[T]]]:
    """``rows`` grouped by their ``state``, in :data:`STATES` order."""
    groups: dict[str, list[T]] = {}
    for row in rows:
        groups.setdefault(state(row), []).append(row)
    for name in STATES:
        if name in groups:
            yield name, groups[name]


#: the state of a key or a current row
_KEY_STATE: Callable[[Sequence[Any]], str] = itemgetter(3)
#: the state of a (current row, its change) pair
_PAIR_STATE: Callable[[tuple[CurrentRow, Since | None]], str] = lambda pair: pair[0][3]  # noqa: E731


def _level_join(left: str, right: str) -> str:
    return " AND ".join(f"{left}.{c} = {right}.{c}" for c in _KEY[:3])


async def copy_rows(
    conn: AsyncConnection, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> None:
    """Append ``rows`` (str, int or None values, in ``columns`` order) to ``table`` with
    one ``COPY ... FROM STDIN`` on ``conn``'s psycopg connection, in its transaction.

    The rows are formatted as COPY's text format by one join (hand-written: psycopg's
    ``write_row`` costs twice the CPU, a Python call per row). That is only correct when
    no value holds a tab, newline, carriage return, backslash or NUL, and no value is
    None (``\\N``): the text is checked for exactly that (its tab and newline counts,
    and none of the others), and where the check fails the rows go through
    ``write_row``, which escapes them (and refuses what PostgreSQL cannot store, as the
    JSON form does).
    """
    await _copy(conn, table, columns, _copy_text(rows, len(columns)), lambda: rows)


def _copy_text(rows: Sequence[Sequence[object]], width: int) -> bytes | None:
    """``rows`` (``width`` values each) as COPY's text format in UTF-8, formatted by one
    join; None where that would not be correct: a value holds a tab, newline, carriage
    return, backslash or NUL, or is None (``\\N``), which the text is checked for (its
    tab and newline counts, and none of the others), or a lone surrogate."""
    line = ("\t".join(["{}"] * width) + "\n").format
    text = "".join(itertools.starmap(line, rows))
    plain = (
        text.count("\t") == (width - 1) * len(rows)
        and text.count("\n") == len(rows)
        and not any(c in text for c in _COPY_SPECIAL[2:])
        and ("None" not in text or all(None not in row for row in rows))
    )
    return _encoded(text) if plain else None


async def _psycopg(conn: AsyncConnection) -> tuple[PsycopgConnection, bool]:
    """``conn``'s psycopg connection, and whether it speaks UTF-8 (the COPY text this
    module builds is UTF-8)."""
    raw = (await conn.get_raw_connection()).driver_connection
    assert isinstance(raw, PsycopgConnection)
    return raw, raw.info.encoding == "utf-8"


async def _copy(
    conn: AsyncConnection,
    table: str,
    columns: Sequence[str],
    data: bytes | None,
    rows: RowsFrom,
) -> None:
    """``COPY table (columns) FROM STDIN`` on ``conn``'s psycopg connection: ``data``,
    COPY's text format for the rows in UTF-8, or where there is none (or the connection
    speaks another encoding) ``rows()`` through psycopg's ``write_row``, which escapes
    and encodes them."""
    raw, utf8 = await _psycopg(conn)
    if not utf8:  # a database in LATIN1, say: psycopg encodes
        data = None
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    async with raw.cursor() as cursor, cursor.copy(statement) as copy:
        if data is not None:
            await copy.write(data)
        else:
            for row in rows():
                await copy.write_row(row)


_STAGED_TABLE = f"CREATE TEMPORARY TABLE {_STAGED} (LIKE levels INCLUDING DEFAULTS) ON COMMIT DROP"
_MAY_STAGE = "SELECT has_database_privilege(current_database(), 'TEMPORARY')"
#: per psycopg connection: whether its role may make temporary tables
_may_stage: weakref.WeakKeyDictionary[object, bool] = weakref.WeakKeyDictionary()
#: the transaction each psycopg connection's staging table was made in
_staged_in: weakref.WeakKeyDictionary[object, weakref.ref[object]] = weakref.WeakKeyDictionary()


async def _stage(conn: AsyncConnection) -> bool:
    """Whether this transaction's staging table (``levels``' columns, in ``pg_temp``)
    is there for new levels' rows, made now if need be. False where it cannot be: the
    connection speaks another encoding than UTF-8 (the COPY text is UTF-8), is in no
    transaction, or its role may not make temporary tables (a database whose TEMPORARY
    privilege was revoked)."""
    raw, utf8 = await _psycopg(conn)
    if not utf8:
        return False
    transaction = conn.sync_connection.get_transaction() if conn.sync_connection else None
    if transaction is None:  # autocommit: the table would be dropped at once
        return False
    made = _staged_in.get(raw)
    if made is None or made() is not transaction:
        may = _may_stage.get(raw)
        if may is None:
            may = _may_stage[raw] = bool((await conn.exec_driver_sql(_MAY_STAGE)).scalar())
        if not may:
            return False
        # made once a transaction: ON COMMIT DROP takes it away with the transaction (a
        # rollback too), so a later transaction on this connection makes its own. (Not
        # made inside a savepoint: the level writes run in the batch's one transaction.)
        await conn.exec_driver_sql(_STAGED_TABLE)
        _staged_in[raw] = weakref.ref(transaction)
    return True


#: what COPY's text format gives a meaning (besides ``\\N``, which needs a backslash)
_COPY_SPECIAL = ("\t", "\n", "\r", "\\", "\x00")


def _encoded(text: str) -> bytes | None:
    """``text`` as UTF-8, or None where it holds a lone surrogate (``write_row`` names it)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return None


def _pg_field(index: int, sql_type: str) -> str:
    return f"CAST(e ->> {index} AS {sql_type})"


def _sqlite_field(index: int, sql_type: str) -> str:
    return f"json_extract(value, '$[{index}]')"


def _pg_time(value: str | datetime) -> datetime:
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def _sqlite_time(value: str | datetime) -> datetime:
    assert isinstance(value, str)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


_POSTGRES = LevelBulk(
    rows_from="json_array_elements(CAST(%s AS json)) AS e",
    field=_pg_field,
    time_to_text=_iso,
    time_from_db=_pg_time,
    same="IS NOT DISTINCT FROM",
    copy=True,
)
_SQLITE = LevelBulk(
    rows_from="json_each(?)",
    field=_sqlite_field,
    time_to_text=sqlite_text,
    time_from_db=_sqlite_time,
    same="IS",
    placeholder="?",
)


def bulk_for(dialect: str) -> LevelBulk:
    """The bulk statements for ``dialect``."""
    return _POSTGRES if dialect == "postgresql" else _SQLITE
