"""Bulk statements for levels, one flavour per backend.

A poll can bring hundreds of thousands of observations, so :mod:`ledger.levels` reads
and writes them here in large chunks: each chunk of keys or rows travels as ONE JSON
array parameter and is expanded server-side (``json_array_elements`` on PostgreSQL,
``json_each`` on SQLite), so a chunk costs one statement, and the encoding is a single
C-speed ``json.dumps`` rather than per-row parameter processing. Writes are the
exception, because a first read of 100,000 SKUs writes 6.5 million rows. On SQLite every
insert and upsert goes through ``executemany``, which binds the rows in C (the JSON form
took about 45% more CPU at 30,000 SKUs, BENCHMARKS.md, issue 16). On PostgreSQL, history
rows and the current rows of keys the watermark knows to be new go through ``COPY ...
FROM STDIN`` in its text format, built by hand (:func:`copy_rows`; a first read's new
keys one level at a time, in :meth:`LevelBulk.insert_levels`, sent into a table of the
transaction's own and copied by the server into ``level_current`` with their change),
which the server takes about three times faster than the JSON form; only the upserts of
known keys travel as JSON. Text COPY would read otherwise goes through psycopg's escaping.

A new key writes its current row only: the row carries its own change (``since``,
``since_source``, ``since_quantity``, ``previous``; :mod:`ledger.timeline`). A change to
a stored key first moves the stored row's change into ``level_history``
(:meth:`LevelBulk.supersede`).

Rows are tuples in column order: history ``(system, sku, location, state, quantity,
observed_at, source)``, current ``(system, sku, location, state, quantity, observed_at,
changed_at, source)``; a new key's ``since``, ``since_source`` and ``since_quantity``
are its ``observed_at``, ``source`` and ``quantity``. Datetimes travel as text: ISO 8601
with offset to PostgreSQL, and to SQLite in exactly the form
:class:`ledger.types.UTCDateTime` stores.
"""

from __future__ import annotations

import itertools
import json
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter, itemgetter

from psycopg import AsyncConnection as PsycopgConnection
from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncConnection

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

_KEY = ("system", "sku", "location", "state")
#: A current row's ``observed_at`` (alias ``c``), lifted to its system's last complete
#: read (alias ``r``, ``level_reads``) unless that read did not report it.
EFFECTIVE_OBSERVED_AT = (
    "(CASE WHEN c.absent OR r.observed_at IS NULL OR r.observed_at <= c.observed_at "
    "THEN c.observed_at ELSE r.observed_at END)"
)
_HISTORY = (*_KEY, "quantity", "observed_at", "source")
#: new levels' current rows on PostgreSQL, on their way into ``level_current``
#: (:func:`_copy_staged`: a table of the session's own in ``pg_temp``, dropped at commit
#: or rollback)
_STAGED = "driftwatch_new_levels"
_KEY_FIELDS = tuple(attrgetter(name) for name in _KEY)
_QUANTITY, _SOURCE = attrgetter("quantity"), attrgetter("source")
_OBSERVED, _CHANGED = attrgetter("observed_at"), attrgetter("changed_at")
_CURRENT = (*_KEY, "quantity", "observed_at", "changed_at", "source")
#: a new key's current row: its change began when it was observed, from its source
_NEW = (*_CURRENT, "since", "since_source", "since_quantity")
#: an upserted current row, with the change that set its value (None: no change)
_UPSERT = (*_CURRENT, "since", "since_source", "since_quantity", "previous")
#: where a new key's change comes from: its own observed_at, source and quantity
_CHANGE_FROM = ("observed_at", "source", "quantity")
#: their places in a current row (``_CURRENT``)
_CHANGE_AT = tuple(_CURRENT.index(column) for column in _CHANGE_FROM)
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

        def select(names: Sequence[str], types: Sequence[str]) -> str:
            fields = ", ".join(
                f"{field(i, t)} AS {name}"
                for i, (name, t) in enumerate(zip(names, types, strict=True))
            )
            return f"SELECT {fields} FROM {rows_from}"

        text4 = ("text",) * 4
        # (WHERE true: SQLite reads ON CONFLICT after a bare FROM as a join's)
        self._skus = (
            f"INSERT INTO level_skus (sku) {select(('sku',), ('text',))} WHERE true "
            "ON CONFLICT (sku) DO NOTHING"
        )
        current_columns = [f"c.{c}" for c in _CURRENT]
        current_columns[5] = f"{EFFECTIVE_OBSERVED_AT} AS observed_at"
        self._load = (
            f"SELECT {', '.join(current_columns)} "
            f"FROM ({select(_KEY, text4)}) AS k "
            "JOIN level_current AS c ON c.system = k.system AND c.sku = k.sku "
            "AND c.location = k.location AND c.state = k.state "
            "LEFT JOIN level_reads AS r ON r.system = c.system"
        )
        # Keys a complete read did not report: their observed_at stops at the read before.
        self._absent = (
            "UPDATE level_current AS c SET absent = true, observed_at = CASE "
            "WHEN r.observed_at IS NOT NULL AND c.observed_at < r.observed_at "
            "THEN r.observed_at ELSE c.observed_at END "
            f"FROM ({select(_KEY, text4)}) AS k, level_reads AS r "
            f"WHERE {_join('c', 'k')} AND r.system = c.system"
        )
        current_types = (*text4, "integer", "timestamptz", "timestamptz", "text")
        upsert_types = (*current_types, "timestamptz", "text", "integer", "integer")
        # the row keeps its change unless this one brings a new one (since is not null)
        on_conflict = (
            "ON CONFLICT (system, sku, location, state) DO UPDATE SET "
            "quantity = excluded.quantity, observed_at = excluded.observed_at, "
            "changed_at = excluded.changed_at, source = excluded.source, absent = false, "
            "since = COALESCE(excluded.since, level_current.since), "
            "since_source = CASE WHEN excluded.since IS NULL THEN level_current.since_source "
            "ELSE excluded.since_source END, "
            "since_quantity = CASE WHEN excluded.since IS NULL "
            "THEN level_current.since_quantity ELSE excluded.since_quantity END, "
            "previous = CASE WHEN excluded.since IS NULL THEN level_current.previous "
            "ELSE excluded.previous END "
            "WHERE level_current.observed_at <= excluded.observed_at"
        )
        if placeholder is None:  # upserts as one JSON array, inserts through COPY
            upsert_rows = select(_UPSERT, upsert_types)
            self._history = self._new = ""
        else:  # one row of parameters, for executemany
            history_rows = f"VALUES ({', '.join([placeholder] * len(_HISTORY))})"
            upsert_rows = f"VALUES ({', '.join([placeholder] * len(_UPSERT))})"
            self._history = f"INSERT INTO level_history ({', '.join(_HISTORY)}) {history_rows}"
            # SQLite: a new key's current row bound once, its observed_at, source and
            # quantity named again as its change's (?NNN, numbered parameters)
            numbered = [f"{placeholder}{i}" for i in range(1, len(_CURRENT) + 1)]
            numbered += [numbered[i] for i in _CHANGE_AT]
            self._new = (
                f"INSERT INTO level_current ({', '.join(_NEW)}) VALUES ({', '.join(numbered)})"
            )
        self._upsert = (
            f"INSERT INTO level_current ({', '.join(_UPSERT)}) {upsert_rows} {on_conflict}"
        )
        # The stored change of keys about to change, into history before the upsert
        # replaces it (where the row holds one: history holds the change of a row
        # written, or last changed, by a version before 0013).
        self._supersede = (
            f"INSERT INTO level_history ({', '.join(_HISTORY)}) "
            "SELECT c.system, c.sku, c.location, c.state, c.quantity, c.since, c.since_source "
            f"FROM ({select(_KEY, text4)}) AS k "
            f"JOIN level_current AS c ON {_join('c', 'k')} WHERE {HOLDS_CHANGE}"
        )
        # An observation that brings nothing new: same quantity and source, and either
        # no changed_at or the stored one; its row needs at most a later observed_at.
        incoming = f"({select(_CURRENT, current_types)})"
        unchanged = (
            "c.quantity = k.quantity AND c.source = k.source "
            f"AND (k.changed_at IS NULL OR c.changed_at {same} k.changed_at)"
        )
        # (r: the system's last complete read, whose time stands for the keys it found)
        reads = "LEFT JOIN level_reads AS r ON r.system = k.system"
        self._refresh = (
            "UPDATE level_current AS c SET absent = false, observed_at = CASE "
            "WHEN c.observed_at < k.observed_at THEN k.observed_at ELSE c.observed_at END "
            f"FROM {incoming} AS k {reads} "
            f"WHERE {_join('c', 'k')} AND {unchanged} "
            f"AND {EFFECTIVE_OBSERVED_AT} <= k.observed_at "
            "AND (c.observed_at < k.observed_at OR c.absent)"
        )
        self._differing = (
            f"SELECT {', '.join(f'k.{c}' for c in _KEY)}, c.system, c.quantity, "
            f"{EFFECTIVE_OBSERVED_AT}, c.changed_at, c.source "
            f"FROM {incoming} AS k LEFT JOIN level_current AS c ON {_join('c', 'k')} {reads} "
            f"WHERE c.system IS NULL OR NOT ({unchanged} "
            f"AND {EFFECTIVE_OBSERVED_AT} <= k.observed_at)"
        )

    @property
    def new_keys_statement(self) -> str:
        """The statement new keys' current rows go through on SQLite, one ``executemany``
        of current rows (``_CURRENT`` order, times as text) a chunk: B1F writes with it."""
        if not self._new:
            raise ValueError("new keys go through COPY on this backend")
        return self._new

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
        one set-based UPDATE, without leaving the database. The rest (new keys,
        changes, stale rows) come back to be applied one by one.
        """
        if not rows:
            return []
        text = self._time_to_text
        data = json.dumps([(*r[:5], text(r[5]), text(r[6]) if r[6] else None, r[7]) for r in rows])
        result = await conn.exec_driver_sql(self._differing, (data,))
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
                    r[5],
                    parse(r[6]),
                    parse(r[7]) if r[7] else None,
                    r[8],
                ),
            )
            for r in result
        ]
        if len(pending) < len(rows):  # else there is nothing to refresh (a first poll)
            await conn.exec_driver_sql(self._refresh, (data,))
        return pending

    async def mark_absent(self, conn: AsyncConnection, keys: Sequence[Key]) -> None:
        """Mark ``keys`` as not reported by their system's complete read (done before
        ``level_reads`` takes that read's time): their ``observed_at`` becomes the
        previous complete read's, where that is later, and stays there."""
        if keys:
            await conn.exec_driver_sql(self._absent, (json.dumps(list(keys)),))

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
            await conn.exec_driver_sql(self._history, data)

    async def supersede(self, conn: AsyncConnection, keys: Sequence[Key]) -> None:
        """Move the stored change of ``keys`` (each has a current row about to take a new
        value) into ``level_history``, copied by the database: call before the history
        rows and the upsert of the same change, so history's ids stay in time order."""
        if keys:
            await conn.exec_driver_sql(self._supersede, (json.dumps(list(keys)),))

    async def insert_new(self, conn: AsyncConnection, new: Sequence[LevelObservation]) -> None:
        """Record observations of keys that have no current row (the caller vouches; a
        key that has one fails the transaction), each its key's only observation: its
        current row, whose ``changed_at`` is the system's or else the observation's time,
        and which is its key's first change (no history row).

        Built column by column at C speed (a system's first read is millions of them),
        each distinct time converted once.
        """
        if not new:
            return
        observed, changed = self._texts(list(map(_OBSERVED, new)), list(map(_CHANGED, new)))
        key = [list(map(get, new)) for get in _KEY_FIELDS]
        quantity, source = list(map(_QUANTITY, new)), list(map(_SOURCE, new))
        # text from outside, refused before anything is written (the system was
        # checked with its chunk)
        for name, column in (*zip(_KEY[1:], key[1:], strict=True), ("source", source)):
            require_storable(name, column, new)
        await self._write_new(
            conn, list(zip(*key, quantity, observed, changed, source, strict=True))
        )

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
        row by row, one row per state. Every key must be new and its text storable (the
        caller vouches for both). No object is made per observation: on SQLite each row is
        built at C speed from the columns; on PostgreSQL each level's k rows are one
        %-format of COPY's text, unless some text needs COPY's escaping."""
        skus, locations, observed, changed, sources = columns
        k, m = len(states), len(skus)
        if not k or not m:
            return
        observed_text, changed_text = self._texts(observed, changed)

        def each(column: Sequence[object]) -> list[object]:  # each value k times
            return list(itertools.chain.from_iterable(map(itertools.repeat, column, repeat_k)))

        repeat_k = itertools.repeat(k)

        def rows() -> list[tuple[object, ...]]:
            """The current rows."""
            key = ([system] * (m * k), each(skus), each(locations), list(states) * m)
            at, source = each(observed_text), each(sources)
            return list(zip(*key, quantities, at, each(changed_text), source, strict=True))

        if not self._copy:
            await self._write_new(conn, rows())
            return
        # COPY's text: one %-format per level for its k rows (a format per row cost
        # about twice the CPU; BENCHMARKS.md, issue 16), when no text needs escaping:
        # the columns are checked, not the rows, which repeat them k times. The rows go
        # as current rows into a table of this transaction's own, and from there into
        # ``level_current`` by the server, which copies each row's observed_at and
        # source and quantity into its change's columns (:func:`_copy_staged`): the text
        # carries each value once.
        if len(quantities) != m * k:
            raise ValueError(f"{len(quantities)} quantities for {m} levels of {k} states")
        plain = all(map(_copy_plain, ([system, *states], skus, locations, sources)))
        data: bytes | None = None
        if plain:
            by_state = [quantities[i::k] for i in range(k)]
            times = [observed_text, changed_text]
            fields = ["%s"] * (4 + len(times))  # sku, location, quantity, times, source
            line = "".join(
                "\t".join([_percent(system), *fields[:2], _percent(state), *fields[2:]]) + "\n"
                for state in states
            )
            per_level = zip(
                *[c for i in range(k) for c in (skus, locations, by_state[i], *times, sources)],
                strict=True,
            )
            data = _encoded("".join(map(line.__mod__, per_level)))
        if data is not None and await _copy_staged(conn, data):
            return
        del data
        await _copy(conn, "level_current", _NEW, None, lambda: _with_since(rows()))

    def _texts(
        self, observed: list[datetime], changed: list[datetime | None]
    ) -> tuple[list[str], list[str]]:
        """New rows' observed and changed times as text (a changed time the system did not
        give is the observed one), each distinct time converted once."""
        distinct = {*observed, *changed} - {None}
        times: dict[datetime | None, str] = {t: self._time_to_text(t) for t in distinct if t}
        observed_text = list(map(times.__getitem__, observed))
        return observed_text, list(map(times.get, changed, observed_text))

    async def _write_new(self, conn: AsyncConnection, current: list[tuple[object, ...]]) -> None:
        """New keys' ``current`` rows (times as text) into ``level_current``, each its
        key's first change: its change's columns are its observed_at, source and
        quantity. On SQLite each row is bound once (the statement names those three
        parameters twice)."""
        if self._copy:
            await copy_rows(conn, "level_current", _NEW, _with_since(current))
        else:
            await conn.exec_driver_sql(self._new, current)

    async def upsert_current(
        self, conn: AsyncConnection, rows: Sequence[CurrentRow], since: Sequence[Since | None]
    ) -> None:
        """Insert or update current rows, never replacing a newer ``observed_at``. Each
        row's ``since`` is the change that set its value; None where its value did not
        change, and the stored row keeps its own (a new key always has one)."""
        if rows:
            text = self._time_to_text
            data = [
                (
                    *r[:5],
                    text(r[5]),
                    text(r[6]) if r[6] else None,
                    r[7],
                    *((text(c[0]), c[1], r[4], c[2]) if c else (None, None, None, None)),
                )
                for r, c in zip(rows, since, strict=True)
            ]
            await conn.exec_driver_sql(self._upsert, data if self._many else (json.dumps(data),))


def _with_since(rows: Sequence[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """New keys' current rows (in ``_CURRENT`` order) with their change (``_NEW``)."""
    change = itemgetter(*_CHANGE_AT)
    return [(*r, *change(r)) for r in rows]


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
    width = len(columns)
    line = ("\t".join(["{}"] * width) + "\n").format
    text = "".join(itertools.starmap(line, rows))
    plain = (
        text.count("\t") == (width - 1) * len(rows)
        and text.count("\n") == len(rows)
        and not any(c in text for c in _COPY_SPECIAL[2:])
        and ("None" not in text or all(None not in row for row in rows))
    )
    data = _encoded(text) if plain else None
    del text
    await _copy(conn, table, columns, data, lambda: rows)


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


_STAGED_TABLE = (
    f"CREATE TEMPORARY TABLE {_STAGED} (LIKE level_current INCLUDING DEFAULTS) ON COMMIT DROP"
)
_FROM_STAGED = (
    f"INSERT INTO level_current ({', '.join(_NEW)}) "
    f"SELECT {', '.join(_CURRENT)}, {', '.join(_CHANGE_FROM)} FROM pg_temp.{_STAGED}; "
    f"TRUNCATE pg_temp.{_STAGED}"
)
_MAY_STAGE = "SELECT has_database_privilege(current_database(), 'TEMPORARY')"
#: per psycopg connection: whether its role may make temporary tables
_may_stage: weakref.WeakKeyDictionary[object, bool] = weakref.WeakKeyDictionary()
#: the transaction each psycopg connection's staging table was made in
_staged_in: weakref.WeakKeyDictionary[object, weakref.ref[object]] = weakref.WeakKeyDictionary()


async def _copy_staged(conn: AsyncConnection, data: bytes) -> bool:
    """New levels' current rows (``data``, COPY's text in ``_CURRENT`` order, UTF-8)
    written to ``level_current``, each with its observed_at and source as its since and
    since_source: one COPY into this transaction's staging table, then one statement the
    server runs (so the text carries each value once). False, with nothing
    written, where that cannot be done: the connection speaks another encoding than
    UTF-8, is in no transaction, or its role may not make temporary tables (a database
    whose TEMPORARY privilege was revoked)."""
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
    async with raw.cursor() as cursor:
        async with cursor.copy(
            f"COPY pg_temp.{_STAGED} ({', '.join(_CURRENT)}) FROM STDIN"
        ) as copy:
            await copy.write(data)
        await cursor.execute(_FROM_STAGED)
    return True


#: what COPY's text format gives a meaning (besides ``\\N``, which needs a backslash)
_COPY_SPECIAL = ("\t", "\n", "\r", "\\", "\x00")


def _copy_plain(values: Sequence[str]) -> bool:
    """Whether every value is text COPY's text format takes as it is."""
    try:
        joined = "".join(values)
    except TypeError:  # not all of them are text
        return False
    return not any(c in joined for c in _COPY_SPECIAL)


def _encoded(text: str) -> bytes | None:
    """``text`` as UTF-8, or None where it holds a lone surrogate (``write_row`` names it)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return None


def _percent(text: str) -> str:
    """``text`` as itself in a %-format."""
    return text.replace("%", "%%")


def _join(left: str, right: str) -> str:
    return " AND ".join(f"{left}.{c} = {right}.{c}" for c in _KEY)


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
