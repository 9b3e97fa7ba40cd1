"""Inventory levels: the current value per key and the history of its changes.

A key is (system, sku, location, state). ``level_current`` holds the latest value of
each key and the change that set it; ``level_history`` holds the changes a later one
replaced, so a first read writes no history, a poll that finds nothing new writes none
either, and a key's timeline is its history then its current row (:mod:`ledger.timeline`).
Recording is serialized
across replicas (a transaction-scoped advisory lock on PostgreSQL, the write lock on
SQLite), so replicas recording the same change at once write it once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, TypeVar

import numpy as np
from sqlalchemy import case, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from ledger import timeline
from ledger.bulk import CurrentRow, HistoryRow, Key, LevelBulk, Since, bulk_for
from ledger.errors import InvalidArgument
from ledger.level_columns import require_known_states
from ledger.memory import release_free_heap
from ledger.recall import LastRead, content_hashes
from ledger.records import LevelBlock, LevelObservation, LevelRow, RecordResult
from ledger.storable import require_storable
from ledger.store import Store, dialect_insert
from ledger.tables import ITEMS, LEVEL_CURRENT, LEVEL_READS, LEVEL_SKUS
from ledger.types import require_utc
from ledger.watermark import (
    I32,
    I64,
    NO_TIME,
    Bools,
    Changes,
    Marks,
    Probe,
    combine,
    key_hash,
    micros,
    repeated_hashes,
    unchanged_levels,
)

T = TypeVar("T")
log = logging.getLogger(__name__)
#: the quantities a level can hold: PostgreSQL's ``integer`` (the column's type)
QUANTITY_MIN, QUANTITY_MAX = -(2**31), 2**31 - 1
#: Observations per round of record_levels: one UPDATE, one read and two writes a round.
CHUNK = 20_000
#: Rows a system's batch writes past which the freed heap goes back to the OS once the
#: watermark has taken them (:mod:`ledger.memory`)
TRIM_AFTER = 100_000
_SYSTEM = attrgetter("system")
_OBSERVED = attrgetter("observed_at")
_CHANGED = attrgetter("changed_at")
_QUANTITY = attrgetter("quantity")
#: SKUs per query in current_levels.
READ_CHUNK = 500


def distinct_by_seeks(
    table: str, column: str, *, into: tuple[str, str] | None = None
) -> TextClause:
    """The distinct values of ``column`` in ``table``, one seek of an index that leads
    with it each (a loose index scan): a big catalog's handful of systems or 100,000
    SKUs, not its millions of rows. ``into`` (a table and its key column) makes it an
    insert of those values there, leaving the ones already there. Both backends run it
    as written."""
    insert, conflict = (
        (f"INSERT INTO {into[0]} ({into[1]}) ", f" ON CONFLICT ({into[1]}) DO NOTHING")
        if into
        else ("", "")
    )
    # (the insert leads: Python's sqlite3 counts the rows of a statement that starts so)
    return text(
        f"{insert}WITH RECURSIVE d(v) AS (SELECT min({column}) FROM {table} "
        f"UNION ALL SELECT (SELECT min(t.{column}) FROM {table} AS t WHERE t.{column} > d.v) "
        "FROM d WHERE d.v IS NOT NULL) "
        f"SELECT v FROM d WHERE v IS NOT NULL{conflict}"
    )


#: The systems ``levels`` holds levels of (its key leads with ``system``).
LEVEL_SYSTEMS = distinct_by_seeks("levels", "system")
#: Every SKU ``level_history`` holds noted in ``level_skus`` (history's key-time index
#: leads with ``sku``; a version older than 0012, the ones that do not note SKUs, writes
#: a history row for a level's first observation).
NOTE_HISTORY_SKUS = distinct_by_seeks("level_history", "sku", into=("level_skus", "sku"))
#: the PostgreSQL advisory lock (transaction-scoped) that serializes level recording
#: across replicas; a fixed 64-bit key ("dw-level" in ASCII)
LEVELS_LOCK = 0x64772D6C6576656C
#: Changes one record writes on SQLite from which the ledger advises PostgreSQL (about
#: 1,500 SKUs × 5 locations read for the first time from a Shopify store, a WMS and an
#: ERP): SQLite's writes then run in the process, beside the diff
SQLITE_ADVICE_ROWS = 100_000


class Levels(Store):
    """Recording and reading levels."""

    #: per system, its current levels in memory (:mod:`ledger.watermark`)
    _marks: dict[str, Marks]
    #: per system, its last complete read's blocks by states (:mod:`ledger.recall`)
    _reads: dict[str, dict[tuple[str, ...], LastRead]]
    _record_lock: asyncio.Lock | None = None
    #: whether this ledger has advised PostgreSQL (:data:`SQLITE_ADVICE_ROWS`)
    _advised = False

    async def record_levels(
        self,
        observations: Iterable[LevelObservation] = (),
        *,
        complete: Collection[str] = (),
        blocks: Sequence[LevelBlock] = (),
    ) -> RecordResult:
        """Store a batch of observations, in one transaction.

        Per key, observations are applied in ``observed_at`` order. One older than the
        stored value is ignored and counted ``stale``; one that differs from the value
        before it writes a history row (``changed``); every other one only refreshes the
        current row's ``observed_at`` (and ``changed_at`` or ``source`` if it brings
        new ones). ``changed_at`` is the system's own value when given, else the
        ``observed_at`` of the change.

        ``complete`` names the systems whose every level the batch holds (a full
        read). For them the batch is checked against the read watermark
        (:mod:`ledger.watermark`) first: a key found unchanged is not written at all,
        the system's read time (``level_reads``) stands for its ``observed_at``, and a
        key the read did not report is marked ``absent`` (its ``observed_at`` stays
        where it was). So a full read writes only what changed, is new, or vanished.

        ``observations`` is consumed as a stream, ``CHUNK`` at a time, so a full poll
        is never held in memory twice: the order above holds within a chunk, and across
        chunks in arrival order (an observation of a key older than one an earlier chunk
        of the same batch stored is stale). A poll, one observation per key, is
        unaffected.

        ``blocks`` hold levels as columns (:class:`LevelBlock`), recorded before
        ``observations``, with no Python work per state for the bulk of a full read. A
        level of a complete system that is the only level of its SKU and location among
        its system's blocks is, if the watermark finds it unchanged in every state, taken
        as read without an observation being made of it, and, if its system has no
        levels yet (a first read), written straight from the columns. Every other level
        is recorded as its observations would be.
        """
        # a block of levels without states holds no observation
        blocks = [block for block in blocks if block.states and len(block)]
        chunks = _chunks(observations)
        first = next(chunks, None)
        if first is None and not complete and not blocks:
            return RecordResult(observed=0, changed=0, stale=0)
        if self._record_lock is None:
            self._record_lock = asyncio.Lock()
            self._marks, self._reads = {}, {}
        async with self._record_lock:
            batch = _Batch(self._marks, self._reads, bulk_for(self.dialect), frozenset(complete))
            try:
                async with self._write() as conn:
                    if self.dialect == "postgresql":
                        # Replicas recording at once are serialized as a whole: the
                        # watermark rows below are locked per system, and one lock first
                        # means two transactions never wait on each other's systems in
                        # opposite orders. Transaction-scoped: released at commit or
                        # rollback, whatever the pool does with the connection afterwards.
                        await conn.execute(select(func.pg_advisory_xact_lock(LEVELS_LOCK)))
                    pending: Iterable[list[LevelObservation]] = itertools.chain(
                        (first or [],), chunks
                    )
                    if blocks:
                        rest = await batch.vouch(conn, blocks)
                        pending = _chunks(
                            itertools.chain(rest, itertools.chain.from_iterable(pending))
                        )
                    for chunk in pending:
                        await batch.record(conn, chunk)
                    await batch.finish(conn)
            except BaseException:
                for system in batch.touched:
                    self._marks.pop(system, None)
                    self._reads.pop(system, None)
                raise
            batch.committed()
        if self.dialect == "sqlite" and batch.changed >= SQLITE_ADVICE_ROWS and not self._advised:
            self._advised = True
            log.warning(
                "%s level changes recorded in one batch on SQLite: at this size SQLite's "
                "writes run in this process, beside the diff (a first full diff of 100,000 "
                "SKUs × 5 locations takes 1.1 to 1.4 times the CPU it takes on PostgreSQL: "
                "SQLite's own writes, 2 to 8 s more). Past a few thousand SKUs, set "
                "DATABASE_URL to a PostgreSQL database and run `driftwatch db upgrade` "
                "(README, 'Big catalogs'). Said once a process.",
                f"{batch.changed:,}",
            )
        return RecordResult(
            observed=batch.total, changed=batch.changed, stale=batch.stale, read=batch.read
        )

    async def current_levels(
        self, sku: str | None = None, skus: Sequence[str] | None = None
    ) -> list[LevelRow]:
        """Current levels of ``sku`` and/or ``skus``; of every SKU when neither is given.

        Ordered by sku, location, system, state.
        """
        order = (
            LEVEL_CURRENT.c.sku,
            LEVEL_CURRENT.c.location,
            LEVEL_CURRENT.c.system,
            LEVEL_CURRENT.c.state,
        )
        wanted = sorted({*(skus or ()), *((sku,) if sku is not None else ())})
        c, r = LEVEL_CURRENT.c, LEVEL_READS.c
        # a key its system's last complete read found unchanged was observed then
        observed_at = case(
            (or_(c.absent, r.observed_at.is_(None), r.observed_at <= c.observed_at), c.observed_at),
            else_=r.observed_at,
        ).label("observed_at")
        columns = (c.system, c.sku, c.location, c.state, c.quantity, observed_at, c.changed_at)
        current = select(*columns, c.source).select_from(
            LEVEL_CURRENT.outerjoin(LEVEL_READS, r.system == c.system)
        )
        rows: list[LevelRow] = []
        async with self._read() as conn:
            if sku is None and skus is None:
                result = await conn.execute(current.order_by(*order))
                return [LevelRow.from_row(r) for r in result.mappings()]
            # By SKU through the key, with every system named: the key leads with
            # ``system``, and ``sku`` alone would scan the table (millions of rows at
            # 100,000 SKUs, for each /drift and /resync).
            systems = sorted((await conn.execute(LEVEL_SYSTEMS)).scalars())
            if not systems:
                return rows
            for start in range(0, len(wanted), READ_CHUNK):
                query = current.where(
                    c.system.in_(systems), c.sku.in_(wanted[start : start + READ_CHUNK])
                ).order_by(*order)
                rows.extend(LevelRow.from_row(r) for r in (await conn.execute(query)).mappings())
        return rows

    async def note_unlisted_skus(self) -> int:
        """Note in ``level_skus`` each SKU that has levels but is not there, and return
        how many were missing. A replica older than migration 0012, still running during
        a rolling upgrade (or, on SQLite, an old process still running when the file was
        migrated), records levels without noting their SKUs; every service runs this at
        start, so the last one restarted notes what the old ones wrote. One
        seek of history's index by SKU each (about 1-2 s at 100,000 SKUs), serialized
        with recording like a record."""
        async with self._write() as conn:
            if self.dialect == "postgresql":
                await conn.execute(select(func.pg_advisory_xact_lock(LEVELS_LOCK)))
            return (await conn.execute(NOTE_HISTORY_SKUS)).rowcount

    async def level_series(self, sku: str, since: datetime) -> list[LevelRow]:
        """The changes of ``sku`` since ``since``, ordered by ``observed_at``, for charts.

        Each key's last change before ``since`` comes first, so every series starts from
        a known value. Rows carry no ``changed_at`` (a history row *is* a change).
        """
        since = require_utc(since, "since")
        async with self._read() as conn:
            # current rows by SKU through the key, every system named (current_levels)
            systems = sorted((await conn.execute(LEVEL_SYSTEMS)).scalars())
            both = timeline.from_last_before(
                lambda t: (t.sku == sku,),
                since,
                key=("system", "location", "state"),
                current=(LEVEL_CURRENT.c.system.in_(systems),),
            ).subquery()
            query = select(both).order_by(*timeline.in_order(both))
            result = await conn.execute(query)
            return [LevelRow.from_row({**r, "changed_at": None}) for r in result.mappings()]

    async def known_skus(self) -> list[str]:
        """Every SKU the ledger has seen, as an item or in a level, sorted.

        A level's SKU is read from ``level_skus``, one row each (the record path notes
        a SKU there with its first level): a big catalog's SKUs, not its millions of
        levels (/drift's "Did you mean" reads them all). They come as one JSON array
        (hand-written aggregate): 100,000 rows through the driver and SQLAlchemy cost
        about 0.4 s of the event loop's CPU, the array about 0.04 s (BENCHMARKS.md, B9)."""
        aggregate = func.json_agg if self.dialect == "postgresql" else func.json_group_array
        async with self._read() as conn:
            items = (await conn.execute(select(ITEMS.c.sku))).scalars().all()
            levels = (await conn.execute(select(aggregate(LEVEL_SKUS.c.sku)))).scalar_one()
        if isinstance(levels, str):  # SQLite's text; psycopg parses PostgreSQL's json
            levels = json.loads(levels)
        return sorted({*items, *(levels or ())})


def _chunks(observations: Iterable[LevelObservation]) -> Iterator[list[LevelObservation]]:
    it = iter(observations)
    while chunk := list(itertools.islice(it, CHUNK)):
        yield chunk


class _Batch:
    """One call of :meth:`Levels.record_levels`: its chunks, its watermark work, and
    what it did (applied to the watermark once committed)."""

    def __init__(
        self,
        marks: dict[str, Marks],
        reads: dict[str, dict[tuple[str, ...], LastRead]],
        bulk: LevelBulk,
        complete: frozenset[str],
    ) -> None:
        self.marks, self.reads, self.bulk, self.complete = marks, reads, bulk, complete
        #: per complete system, what its blocks leave for the next read (ledger.recall)
        self.notes: dict[str, list[_Note]] = {}
        self.total = self.changed = self.stale = 0
        #: system -> (version found when locked, previous complete read)
        self.locked: dict[str, tuple[int, datetime | None]] = {}
        self.changes: dict[str, Changes] = {}
        #: per complete system: the earliest observation of the read (its read time)
        self.read_at: dict[str, datetime] = {}
        #: this batch's complete reads, as a later batch's blocks name them (Place.since)
        self.read = object()
        #: the SKUs of the keys this batch writes as new (``level_skus`` at finish)
        self.skus: set[str] = set()

    @property
    def touched(self) -> set[str]:
        return set(self.locked)

    async def _lock(self, conn: AsyncConnection, systems: Iterable[str]) -> None:
        """Lock the ``level_reads`` rows of ``systems`` (created if missing), in name
        order, and drop any watermark another process's write has made stale."""
        wanted = sorted(set(systems) - self.locked.keys())
        if not wanted:
            return
        reads = LEVEL_READS.c
        insert = dialect_insert(conn.dialect.name, LEVEL_READS)
        await conn.execute(
            insert.values([{"system": s, "version": 0} for s in wanted]).on_conflict_do_nothing()
        )
        query = select(reads.system, reads.version, reads.observed_at).where(
            reads.system.in_(wanted)
        )
        if conn.dialect.name == "postgresql":
            query = query.order_by(reads.system).with_for_update()
        for system, version, confirmed in await conn.execute(query):
            self.locked[system] = (int(version), confirmed)
            marks = self.marks.get(system)
            if marks is not None and marks.version != version:
                del self.marks[system]
                self.reads.pop(system, None)
        for system in wanted:
            if system in self.complete and system not in self.marks:
                self.marks[system] = await self._load(conn, system)
            if system in self.marks:
                self.changes[system] = Changes()
                if system in self.complete:
                    self.changes[system].seen = np.zeros(len(self.marks[system]), np.bool_)

    async def _load(self, conn: AsyncConnection, system: str) -> Marks:
        c = LEVEL_CURRENT.c
        query = select(
            c.sku, c.location, c.state, c.quantity, c.observed_at, c.changed_at, c.source, c.absent
        ).where(c.system == system)
        rows = [tuple(r) for r in await conn.execute(query)]
        version, confirmed = self.locked[system]
        return Marks.build(rows, confirmed, version)

    async def vouch(
        self, conn: AsyncConnection, blocks: Sequence[LevelBlock]
    ) -> Iterator[LevelObservation]:
        """Take the blocks' levels the watermark vouches for as read (see
        :meth:`Levels.record_levels`): counted, seen by their system's complete read,
        nothing written. Returns the observations of the other levels, to be recorded."""
        systems = list(dict.fromkeys(b.system for b in blocks))
        require_storable("system", systems, systems)  # refused before anything is locked
        await self._lock(conn, itertools.chain(self.complete, systems))
        rest: list[tuple[LevelBlock, Iterable[int] | None]] = []
        for system in systems:
            group = [b for b in blocks if b.system == system]
            marks = self.marks.get(system)
            if system not in self.complete or marks is None:
                rest += [(block, None) for block in group]
                continue
            parts = self._recalled(system, marks, group)
            columns = [_columns(part.block) if len(part.block) else None for part in parts]
            if any(part.kept is not None for part in parts) and not self._take(
                system, marks, parts, columns
            ):  # a level left to vouch for has a key of a level taken: all the usual way
                parts = [_Part(b, None, p.note, None) for b, p in zip(group, parts, strict=True)]
                columns = [_columns(block) for block in group]
            hashes = [c[0] for c in columns if c is not None]
            repeated = repeated_hashes(np.concatenate(hashes)) if hashes else np.empty(0, np.int64)
            for block, part, plain in zip(group, parts, columns, strict=True):
                # a block that is not plain data is left to record's checks, which name it
                rows: list[int] | None = None
                if part.note is not None and part.rows is None and plain is not None:
                    part.note.share(plain.levels)
                if not len(part.block):
                    rows = []
                elif plain is not None and len(marks):
                    rows = self._vouch(system, marks, part, plain, repeated)
                elif plain is not None and _storable(part.block):
                    # the system's first read: no key is known, so each is new
                    rows = await self._first(conn, system, marks, part, plain, repeated)
                if part.rows is not None:  # positions in the part: made the block's
                    rows = (part.rows if rows is None else part.rows[rows]).tolist()
                rest.append((block, rows))
        return itertools.chain.from_iterable(block.observations(rows) for block, rows in rest)

    def _recalled(self, system: str, marks: Marks, group: list[LevelBlock]) -> list[_Part]:
        """The blocks of a complete read of ``system``, each with the note it leaves for
        the next read and, where its last read's block (:mod:`ledger.recall`) finds most
        of its levels unchanged, the levels it takes (``kept``) and the part left to
        vouch for the usual way."""
        last = self.reads.get(system, {})
        states = [block.states for block in group]
        notes = self.notes.setdefault(system, [])
        parts: list[_Part] = []
        for block in group:
            span = _span(block) if states.count(block.states) == 1 else None
            if span is None:  # not plain, or the states' levels twice
                parts.append(_Part(block, None, None, None))
                continue
            prior = last.get(block.states)
            if prior is None or not len(marks) or not prior.valid_for(marks):
                # nothing to compare with: the content is hashed once the batch commits
                notes.append(_Note(block, None, span[1], None, marks.layout, self.read))
                parts.append(_Part(block, None, notes[-1], None))
                continue
            content = _content(block, prior)
            if content is None:  # not plain: record's checks name it
                parts.append(_Part(block, None, None, None))
                continue
            note = _Note(block, content, span[1], prior, marks.layout, self.read)
            notes.append(note)
            unchanged = prior.unchanged(content, span[0])
            left = np.flatnonzero(~unchanged)
            if len(left) > len(block) // 2:  # mostly changed: the usual way is as quick
                parts.append(_Part(block, None, note, None))
                continue
            self.read_at[system] = min(self.read_at.get(system, span[2]), span[2])
            parts.append(_Part(_sub_block(block, left), left, note, np.flatnonzero(unchanged)))
        return parts

    def _take(
        self, system: str, marks: Marks, parts: list[_Part], columns: list[_Plain | None]
    ) -> bool:
        """Take the levels the parts' last reads found unchanged as read: counted, their
        keys seen. False (nothing taken) where a level left to vouch for has one of their
        keys: the read has it twice, which the usual way sorts out."""
        claimed = np.zeros(len(marks), np.bool_)
        for part in parts:
            if part.kept is not None:
                claimed[part.last().at[part.kept].ravel()] = True
        for part, plain in zip(parts, columns, strict=True):
            if plain is None or not len(plain.levels):
                continue
            states = np.fromiter(map(hash, part.block.states), np.int64, len(part.block.states))
            at, found = marks.find(combine(plain.levels[:, None], states[None, :]).ravel())
            if (found & claimed[at]).any():
                return False
        seen = self.changes[system].seen
        assert seen is not None
        np.logical_or(seen, claimed, out=seen)
        for part in parts:
            if part.kept is not None and part.note is not None:
                part.note.take(part.kept, part.last())
                self.total += len(part.kept) * len(part.block.states)
        return True

    def _begin(
        self, system: str, block: LevelBlock, plain: _Plain, repeated: I64
    ) -> tuple[I64, Bools]:
        """Note the block's earliest time as its system's read time; return its states'
        hashes and which of its levels are the only one of their SKU and location."""
        self.read_at[system] = min(self.read_at.get(system, plain.earliest), plain.earliest)
        states = np.fromiter(map(hash, block.states), np.int64, len(block.states))
        if not len(repeated):
            return states, np.ones(len(block), np.bool_)
        return states, ~np.isin(plain.levels, repeated)

    async def _first(
        self,
        conn: AsyncConnection,
        system: str,
        marks: Marks,
        part: _Part,
        plain: _Plain,
        repeated: I64,
    ) -> list[int]:
        """Write the levels of ``part`` as new keys (its system has none yet), straight
        from its columns, except the levels ``repeated`` in the read, whose rows are
        returned: they are recorded as observations, in order."""
        block = part.block
        levels, n, k = plain.levels, len(block), len(block.states)
        states, alone = self._begin(system, block, plain, repeated)
        changes = self.changes[system]
        changes.reserve(int(alone.sum()) * k)
        step = max(1, CHUNK // k)
        for start in range(0, n, step):
            end = min(start + step, n)
            keep = alone[start:end]
            picked = np.flatnonzero(keep)
            if not len(picked):
                continue
            values = _round(block, plain, start, end)
            if values is None:  # this level or a later one is not plain: recorded as observed
                alone[start:] = False
                break
            chosen = None if len(picked) == end - start else keep.tolist()
            if chosen is None:  # every level of the round: its quantities as they came
                quantity = values.quantity
                texts: Sequence[int] = values.given
            else:
                quantity = values.quantity[(picked[:, None] * k + np.arange(k)).ravel()]
                texts = quantity.tolist()
            columns = (
                _part(block.skus, start, end, chosen),
                _part(block.locations, start, end, chosen),
                _part(block.observed_at, start, end, chosen),
                _part(block.changed_at, start, end, chosen),
                _part(block.sources, start, end, chosen),
            )
            await self.bulk.insert_levels(conn, system, block.states, columns, texts)
            self.skus.update(columns[0])
            first_row = changes.rows_written
            changes.write_levels(
                marks,
                combine(levels[picked + start][:, None], states[None, :]).ravel(),
                quantity,
                values.observed[picked],
                values.changed[picked],
                columns[4],
            )
            self.total += len(quantity)
            self.changed += len(quantity)
            if part.note is not None:
                part.note.written(
                    part.block_rows(picked + start),
                    levels[picked + start],
                    first_row + np.arange(len(picked), dtype=np.int64) * k,
                )
        rows: list[int] = np.flatnonzero(~alone).tolist()
        return rows

    def _vouch(
        self,
        system: str,
        marks: Marks,
        part: _Part,
        plain: _Plain,
        repeated: I64,
    ) -> list[int]:
        """The levels of ``part`` not vouched for (see :meth:`vouch`)."""
        block = part.block
        levels, n, k = plain.levels, len(block), len(block.states)
        states, alone = self._begin(system, block, plain, repeated)
        seen = self.changes[system].seen
        assert seen is not None
        left: list[I64] = []
        step = max(1, CHUNK // k)
        for start in range(0, n, step):
            end = min(start + step, n)
            values = _round(block, plain, start, end)
            if values is None:  # this level or a later one is not plain: recorded as observed
                left.append(np.arange(start, n))
                break
            whole, at = unchanged_levels(
                marks,
                levels[start:end],
                states,
                values.quantity,
                values.observed,
                values.changed,
                block.sources[start:end],
                alone[start:end],
            )
            seen[at] = True
            self.total += len(at)
            left.append(np.flatnonzero(~whole) + start)
            if part.note is not None and len(at):
                taken = np.flatnonzero(whole) + start
                part.note.vouched(part.block_rows(taken), at.reshape(-1, k))
        rows: list[int] = np.concatenate(left).tolist() if left else []
        return rows

    async def record(self, conn: AsyncConnection, chunk: list[LevelObservation]) -> None:
        """One chunk: checked, filtered through the watermark, recorded."""
        _check(chunk)
        by_system: dict[str, list[LevelObservation]] = {}
        for system, run in itertools.groupby(chunk, _SYSTEM):  # a read comes in runs
            by_system.setdefault(system, []).extend(run)
        for observations in by_system.values():
            _check_text(observations[:1], ("system",))
        await self._lock(conn, itertools.chain(self.complete, by_system))
        self.total += len(chunk)
        del chunk
        passed: list[LevelObservation] = []
        #: observations of keys the watermark knows to be new, each alone in the chunk
        fresh: list[LevelObservation] = []
        probes: list[tuple[str, list[LevelObservation], Probe]] = []
        #: keys whose stored row the watermark knows (None: new): no database read
        known: dict[Key, CurrentRow | None] = {}
        for system, observations in by_system.items():
            marks = self.marks.get(system)
            if marks is None:
                passed += observations
                continue
            probe = Probe(marks, observations, self.changes[system].keys_written)
            if system in self.complete:
                seen = self.changes[system].seen
                assert seen is not None
                seen[probe.at[probe.found]] = True
                earliest = min(map(_OBSERVED, observations))
                self.read_at[system] = min(self.read_at.get(system, earliest), earliest)
                keep = ~probe.unchanged()
                observations = list(itertools.compress(observations, keep.tolist()))
                probe.select(keep)
                # A key surely new, observed once in the chunk: its rows need no lookup.
                first = probe.first_sight()
                if first.any():
                    new = list(itertools.compress(observations, first.tolist()))
                    self.changes[system].write_new(
                        marks, probe.hashes[first], probe.observed[first], new
                    )
                    fresh += new
                    del new
                    later = ~first
                    observations = list(itertools.compress(observations, later.tolist()))
                    probe.select(later)
                known.update(probe.stored(system))
            passed += observations
            probes.append((system, observations, probe))
        del by_system
        # What is written: a key the watermark found unchanged was checked when written,
        # and insert_new checks the columns it builds for the new keys.
        _check_text(passed, ("sku", "location", "state", "source"))
        require_known_states(list(map(attrgetter("state"), passed)), passed)
        await self.bulk.insert_new(conn, fresh)
        self.skus.update(map(attrgetter("sku"), fresh))
        self.changed += len(fresh)
        del fresh
        written, stale, upserts, pending = await _record_chunk(
            conn, self.bulk, passed, known, self.skus
        )
        self.changed += written
        self.stale += stale
        by_system_rows: dict[str, list[CurrentRow]] = {}
        for row in upserts:
            by_system_rows.setdefault(row[0], []).append(row)
        for system, observations, probe in probes:
            changes = self.changes[system]
            rows = by_system_rows.get(system, [])
            changes.write(self.marks[system], list(map(itemgetter(slice(1, 8)), rows)))
            if not probe.found.any():
                continue
            refreshed = probe.found & np.fromiter(
                ((system, o.sku, o.location, o.state) not in pending for o in observations),
                np.bool_,
                len(observations),
            )
            changes.refreshed_at.append(probe.at[refreshed])
            changes.refreshed_observed.append(probe.observed[refreshed])

    async def finish(self, conn: AsyncConnection) -> None:
        """Note the SKUs of new keys, mark the keys complete reads did not report, and
        take each system's read time and new version."""
        await self._lock(conn, self.complete)
        await self.bulk.insert_skus(conn, sorted(self.skus))
        reads = LEVEL_READS.c
        for system in sorted(self.locked):
            changes = self.changes.get(system)
            if system in self.complete and changes is not None and changes.seen is not None:
                await self._mark_vanished(conn, system, changes.seen)
            values: dict[str, Any] = {"version": reads.version + 1}
            read_at = self.read_at.get(system)
            if read_at is not None:
                _, confirmed = self.locked[system]
                if confirmed is None or confirmed < read_at:
                    values["observed_at"] = read_at
                if changes is not None:
                    changes.confirmed = micros(read_at)
            await conn.execute(update(LEVEL_READS).where(reads.system == system).values(values))

    async def _mark_vanished(self, conn: AsyncConnection, system: str, seen: Any) -> None:
        marks = self.marks[system]
        vanished = ~seen & ~marks.absent
        if not vanished.any():
            return
        # The watermark keeps hashes only: the keys come from the ledger (rarely needed).
        c = LEVEL_CURRENT.c
        query = select(c.sku, c.location, c.state).where(c.system == system, c.absent.is_(False))
        gone = set(marks.keys[vanished].tolist())
        keys: list[Key] = [
            (system, sku, location, state)
            for sku, location, state in await conn.execute(query)
            if key_hash(sku, location, state) in gone
        ]
        await self.bulk.mark_absent(conn, keys)

    def committed(self) -> None:
        """The transaction committed: the watermark takes what the batch did; then
        complete reads leave their notes (once every system's changes are applied and
        freed: a first read's notes are made after its peak of memory, not on it)."""
        suspects: dict[str, I64] = {}
        for system, (version, _) in self.locked.items():
            marks = self.marks.get(system)
            if marks is None:
                continue
            changes = self.changes.pop(system, None)
            if changes is None:  # loaded by another batch since? keep it only if in step
                del self.marks[system]
                self.reads.pop(system, None)
                continue
            rows = changes.rows_written
            if system in self.complete:
                suspects[system] = changes.suspects(marks)
            self.marks[system] = changes.apply(marks, version + 1)
            if system not in self.complete:  # no notes to make: nothing wants the rows
                self.marks[system].rows_at = None
            del changes
            if rows >= TRIM_AFTER:
                release_free_heap()
        for system, written in suspects.items():
            marks = self.marks[system]
            notes = self.notes.get(system, [])
            made = ((note.states, note.last_read(marks, written)) for note in notes)
            self.reads[system] = {states: last for states, last in made if last}
            # what the notes say holds until a value changes (Marks.apply notes which)
            marks.dirty = np.zeros(len(marks), np.bool_) if notes else None
            marks.moved = marks.rows_at = None


async def _record_chunk(
    conn: AsyncConnection,
    bulk: LevelBulk,
    chunk: list[LevelObservation],
    known: dict[Key, CurrentRow | None],
    new_skus: set[str],
) -> tuple[int, int, list[CurrentRow], set[Key]]:
    """One chunk recorded: changes recorded, stale observations, the current rows
    written and the keys applied one by one (new, changed, stale, or ``known``: their
    stored row, None for a new key, came from the watermark instead of the database).
    The SKUs of keys written as new go into ``new_skus``."""
    single: dict[Key, LevelObservation] = {}
    repeated: dict[Key, list[LevelObservation]] = {}
    for obs in chunk:
        key = (obs.system, obs.sku, obs.location, obs.state)
        first = single.setdefault(key, obs)
        if first is not obs:
            repeated.setdefault(key, [first]).append(obs)
    for key in repeated:
        del single[key]
    pending: list[tuple[Key, CurrentRow | None]] = []
    if known:
        pending += [(key, known[key]) for key in single.keys() & known.keys()]
        pending += [(key, known[key]) for key in repeated.keys() & known.keys()]
    rows: list[CurrentRow] = [
        (*key, o.quantity, o.observed_at, o.changed_at, o.source)
        for key, o in single.items()
        if key not in known
    ]
    del chunk
    # Keys the database could not settle alone (new, changed, stale), with their rows.
    pending += await bulk.refresh_unchanged(conn, rows)
    del rows
    unknown = sorted(repeated.keys() - known.keys())
    if unknown:
        loaded = [(row[:4], row) for row in await bulk.load_current(conn, unknown)]
        pending += loaded
        pending += [(key, None) for key in set(unknown) - {key for key, _ in loaded}]
    history: list[HistoryRow] = []
    upserts: list[CurrentRow] = []
    changes: list[Since | None] = []
    #: stored keys whose value changed: their stored change goes to history first
    superseded: list[Key] = []
    stale = 0
    for key, stored in sorted(pending):
        batch = repeated[key] if key in repeated else [single[key]]
        row, since, written, ignored = _apply(key, stored, batch)
        history.extend(written)
        stale += ignored
        if row is not None:
            upserts.append(row)
            changes.append(since)
            if stored is None:
                new_skus.add(key[1])
            elif since is not None:
                superseded.append(key)
    await bulk.supersede(conn, superseded)
    await bulk.insert_history(conn, history)
    await bulk.upsert_current(conn, upserts, changes)
    changed = len(history) + sum(since is not None for since in changes)
    return changed, stale, upserts, {key for key, _ in pending} | repeated.keys()


class _Note:
    """What one block of a complete read leaves for the next read of its system
    (:class:`ledger.recall.LastRead`), filled in as its levels are vouched for or
    written, and made a LastRead once the batch has committed."""

    def __init__(
        self,
        block: LevelBlock,
        content: I64 | None,
        latest: int,
        prior: LastRead | None,
        layout: int,
        read: object,
    ) -> None:
        self.states = block.states
        #: the batch's reads, and where the block's levels sat in its caller's read
        self.read = read
        self.positions = block.place.positions if block.place is not None else None
        #: the watermark's layout the positions noted are in (until the batch commits)
        self.layout = layout
        self.latest, self.prior = latest, prior
        #: the content hashes, or the block to take them from once the batch has
        #: committed (a first read: not at its peak of memory)
        self.content = content
        self.block = block if content is None else None
        #: the hash((sku, location)) of the levels written as new keys (to find their
        #: keys once written): the whole block's, shared, or filled in
        self.levels: I64 | None = None
        self.ok = np.zeros(len(block), np.bool_)
        #: made when first needed: a first read's are found once its keys are written
        self.at: I32 | None = None
        #: levels written as new keys: their positions are found once applied
        self.fresh: Bools | None = None
        #: per level written as new keys: its first key's row among the rows the batch
        #: wrote for its system (the rest follow, state by state)
        self.first_row: I64 | None = None

    def share(self, levels: I64) -> None:
        """The whole block's level hashes, computed already."""
        if self.levels is None:
            self.levels = levels

    def _levels(self) -> I64:
        if self.levels is None:
            self.levels = np.zeros(len(self.ok), np.int64)
        return self.levels

    def _positions(self) -> I32:
        if self.at is None:
            self.at = np.full((len(self.ok), len(self.states)), -1, np.int32)
        return self.at

    def take(self, rows: I64, prior: LastRead) -> None:
        """Levels found unchanged since ``prior``: where they were."""
        self._positions()[rows] = prior.at[rows]
        self.ok[rows] = True

    def vouched(self, rows: I64, at: I64) -> None:
        """Levels the watermark vouched for, with their keys' positions (level by level)."""
        self._positions()[rows] = at
        self.ok[rows] = True

    def written(self, rows: I64, levels: I64, first_row: I64) -> None:
        """Levels written as new keys, each the only one of its key in the read, their
        keys the rows from ``first_row`` on (``Changes.rows_written`` then), level by
        level."""
        if self.fresh is None:
            self.fresh = np.zeros(len(self.ok), np.bool_)
            self.first_row = np.zeros(len(self.ok), np.int64)
        assert self.first_row is not None
        self._levels()[rows] = levels
        self.first_row[rows] = first_row
        self.fresh[rows] = True

    def last_read(self, marks: Marks, suspects: I64) -> LastRead | None:
        """What the next read finds, once the batch's changes are in ``marks`` (None:
        nothing, its content cannot be hashed). ``suspects``: keys observations of the
        batch wrote or refreshed, after the block's levels were noted: a level with one of
        them is not noted as read."""
        block, self.block = self.block, None
        content = self.content
        if content is None and block is not None:
            content = content_hashes(block)
        if content is None or not (self.ok.any() or self.fresh is not None):
            return None
        at = self._positions()
        ok = self.ok
        if marks.layout == self.layout + 1 and marks.moved is not None:
            # the batch inserted keys: every position noted after them moved
            flat = at.ravel()
            flat += np.searchsorted(marks.moved, flat, side="right").astype(np.int32)
        elif marks.layout != self.layout:  # moved, who knows where: keep only the fresh
            ok[:] = False
        if self.fresh is not None and marks.rows_at is not None:
            # the system's first read: where each row went is known (Changes.apply)
            assert self.first_row is not None
            rows = np.flatnonzero(self.fresh)
            step = max(1, CHUNK // len(self.states))
            offsets = np.arange(len(self.states), dtype=np.int64)
            for start in range(0, len(rows), step):
                chosen = rows[start : start + step]
                at[chosen] = marks.rows_at[self.first_row[chosen][:, None] + offsets]
                ok[chosen] = True
            self.fresh = self.first_row = None
        elif self.fresh is not None:
            # a round of levels at a time: a first read's keys are millions
            states = np.fromiter(map(hash, self.states), np.int64, len(self.states))
            rows = np.flatnonzero(self.fresh)
            step = max(1, CHUNK // len(self.states))
            levels = self._levels()
            for start in range(0, len(rows), step):
                chosen = rows[start : start + step]
                keys = combine(levels[chosen][:, None], states[None, :]).ravel()
                found_at, found = marks.find(keys)
                at[chosen] = found_at.reshape(len(chosen), -1)
                ok[chosen] = found.reshape(len(chosen), -1).all(axis=1)
            self.fresh = self.first_row = None
        self.levels = None
        if len(suspects):
            found_at, found = marks.find(suspects)
            hit = np.zeros(len(marks), np.bool_)
            hit[found_at[found]] = True
            rows = np.flatnonzero(ok)
            ok[rows] = ~hit[at[rows]].any(axis=1)
        self.prior = None
        return LastRead(
            marks=marks,
            layout=marks.layout,
            content=content,
            at=at,
            ok=ok,
            latest=self.latest,
            read=self.read,
            positions=self.positions,
        )


class _Part(NamedTuple):
    """A block of a complete read as :meth:`_Batch.vouch` takes it: ``block``, the levels
    to vouch for the usual way (all of them, or those of ``rows``, positions in the
    whole block); the block's ``note``; and ``kept``, the positions of the levels its
    last read found unchanged (None: none taken)."""

    block: LevelBlock
    rows: I64 | None
    note: _Note | None
    kept: I64 | None

    def last(self) -> LastRead:
        """The last read that found ``kept`` unchanged."""
        prior = self.note.prior if self.note is not None else None
        if prior is None:
            raise RuntimeError("no last read for this part")
        return prior

    def block_rows(self, rows: I64) -> I64:
        """Positions in ``block`` made positions in the whole block."""
        return rows if self.rows is None else self.rows[rows]


def _content(block: LevelBlock, prior: LastRead) -> I64 | None:
    """The block's content hashes (:func:`ledger.recall.content_hashes`): those of the
    levels its place says are the same as at their position in ``prior``'s read taken
    from ``prior``, where the place is about that read; every level's hashed otherwise
    (None: not plain data)."""
    place = block.place
    if (
        place is None
        or place.same is None
        or place.since is None
        or place.since is not prior.read
        or place.positions != prior.positions
        or len(prior.content) != len(block)
    ):
        return content_hashes(block)
    rows = np.flatnonzero(~np.asarray(place.same, np.bool_))
    if len(rows) > len(block) // 2:  # mostly changed: hashed as quickly whole
        return content_hashes(block)
    content = prior.content.copy()
    if len(rows):
        changed = content_hashes(_sub_block(block, rows))
        if changed is None:
            return None
        content[rows] = changed
    return content


def _span(block: LevelBlock) -> tuple[int, int, datetime] | None:
    """A block's earliest and latest ``observed_at`` in microseconds, and its earliest;
    None where a time is not an aware datetime (record's checks name it)."""
    try:
        times = set(block.observed_at)
    except TypeError:  # unhashable: not a datetime
        return None
    if not times or not all(map(_aware, times)):
        return None
    earliest = min(times)
    return micros(earliest), micros(max(times)), earliest


def _sub_block(block: LevelBlock, rows: I64) -> LevelBlock:
    """The levels of ``block`` at ``rows``, as a block of their own."""
    picked = rows.tolist()
    k = len(block.states)
    quantities = block.quantities
    return LevelBlock(
        system=block.system,
        states=block.states,
        skus=[block.skus[i] for i in picked],
        locations=[block.locations[i] for i in picked],
        quantities=list(
            itertools.chain.from_iterable(quantities[i * k : i * k + k] for i in picked)
        ),
        observed_at=[block.observed_at[i] for i in picked],
        changed_at=[block.changed_at[i] for i in picked],
        sources=[block.sources[i] for i in picked],
    )


class _Plain(NamedTuple):
    """What the watermark reads of a whole block (see :func:`_columns`); the rest it
    reads a round of levels at a time (:func:`_round`), so no column is copied whole."""

    levels: I64  # hash((sku, location)) of each level
    times: dict[datetime | None, int]  # each distinct time in microseconds, None: NO_TIME
    earliest: datetime  # the earliest observed_at


class _Round(NamedTuple):
    given: Sequence[int]  # the quantities as the block holds them, row by row
    quantity: I64  # the same in numpy
    observed: I64  # microseconds
    changed: I64  # microseconds, NO_TIME for none


def _columns(block: LevelBlock) -> _Plain | None:
    """A block's level hashes and times, or None where its text or times are not plain
    (text that is not ``str``, a time that is not an aware datetime): its observations
    then meet record's checks, which name the culprit. Each column is read at C speed;
    the distinct times are few."""
    text = (block.skus, block.locations, block.sources, block.states)
    if any(set(map(type, column)) - {str} for column in text):
        return None
    try:
        times = set(block.observed_at)
        moments = {t for t in set(block.changed_at) if t is not None}
    except TypeError:  # unhashable: not a datetime
        return None
    if not all(map(_aware, times)) or not all(map(_aware, moments)):
        return None
    table: dict[datetime | None, int] = {t: micros(t) for t in times | moments}
    table[None] = int(NO_TIME)
    levels = np.fromiter(
        map(hash, zip(block.skus, block.locations, strict=True)), np.int64, len(block)
    )
    return _Plain(levels=levels, times=table, earliest=min(times))


def _round(block: LevelBlock, plain: _Plain, start: int, end: int) -> _Round | None:
    """The quantities and times of levels ``start`` to ``end`` of ``block``, or None
    where a quantity is not an int a level holds (record's checks name it)."""
    k = len(block.states)
    values = block.quantities[start * k : end * k]
    if not all(t is int for t in set(map(type, values))):
        return None
    try:
        quantity = np.array(values, np.int64)
    except OverflowError:  # beyond 64 bits: beyond what a level holds too
        return None
    if len(quantity) and not QUANTITY_MIN <= quantity.min() <= quantity.max() <= QUANTITY_MAX:
        return None
    get = plain.times.__getitem__
    return _Round(
        given=values,
        quantity=quantity,
        observed=np.fromiter(map(get, block.observed_at[start:end]), np.int64, end - start),
        changed=np.fromiter(map(get, block.changed_at[start:end]), np.int64, end - start),
    )


def _part(column: Sequence[T], start: int, end: int, chosen: list[bool] | None) -> list[T]:
    """``column[start:end]`` as a list, only the ``chosen`` ones where given."""
    part = column[start:end]
    if chosen is not None:
        return list(itertools.compress(part, chosen))
    return part if isinstance(part, list) else list(part)


def _storable(block: LevelBlock) -> bool:
    """Whether every text of ``block`` is storable on every backend (else its
    observations meet record's checks, which name the culprit)."""
    text = (("sku", block.skus), ("location", block.locations), ("source", block.sources))
    try:
        for name, column in (*text, ("state", block.states)):
            values = list(column)
            require_storable(name, values, values)
        require_known_states(list(block.states), list(block.states))
    except InvalidArgument:
        return False
    return True


def _check(chunk: Sequence[LevelObservation]) -> None:
    """Refuse the chunk if one of its observations has a naive or no datetime or a
    quantity that is not an int or is beyond a 32-bit integer (PostgreSQL's ``integer``,
    which would refuse it mid-transaction; SQLite would store it), naming the first. The
    distinct times and quantity types of a chunk are few, so they are checked once each
    (a full read is millions)."""
    try:
        times = set(map(_OBSERVED, chunk))
        times.update(set(map(_CHANGED, chunk)) - {None})
        fine = all(map(_aware, times))
    except TypeError:  # unhashable: not a datetime, named below
        fine = False
    quantities = list(map(_QUANTITY, chunk))
    if (
        fine
        and all(issubclass(t, int) for t in set(map(type, quantities)))
        and (not quantities or QUANTITY_MIN <= min(quantities) <= max(quantities) <= QUANTITY_MAX)
    ):
        return
    del quantities
    for obs in chunk:
        observed, changed_at = obs.observed_at, obs.changed_at
        if not _aware(observed) or (changed_at is not None and not _aware(changed_at)):
            raise InvalidArgument(
                f"naive datetime or no datetime in observation {obs!r}: observed_at (and "
                "changed_at, when given) must be timezone-aware datetimes"
            )
        if not isinstance(obs.quantity, int):
            raise InvalidArgument(f"quantity must be an int in observation {obs!r}")
        if not QUANTITY_MIN <= obs.quantity <= QUANTITY_MAX:
            raise InvalidArgument(
                f"quantity {obs.quantity} is beyond what the ledger stores ({QUANTITY_MIN} to "
                f"{QUANTITY_MAX}) in observation {obs!r}"
            )
    raise AssertionError("a chunk failed its check but no observation did")  # pragma: no cover


def _check_text(observations: Sequence[LevelObservation], names: Sequence[str]) -> None:
    """Refuse observations whose ``names`` fields are not text every backend stores
    (:func:`ledger.storable.require_storable`)."""
    for name in names:
        require_storable(name, list(map(attrgetter(name), observations)), observations)


def _aware(value: object) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


def _apply(
    key: Key, stored: CurrentRow | None, batch: list[LevelObservation]
) -> tuple[CurrentRow | None, Since | None, list[HistoryRow], int]:
    """One key's observations applied in time order to its stored row.

    Returns the row to upsert (None if every observation was stale), the change that
    set its value (None if the value did not change), the history rows to write (the
    changes a later one of the same batch replaced) and how many observations were
    stale. The stored row's own change is the caller's to move (``LevelBulk.supersede``).
    """
    batch.sort(key=lambda o: o.observed_at)
    current = stored
    since: Since | None = None
    history: list[HistoryRow] = []
    stale = 0
    moved = False
    for obs in batch:
        if current is not None and obs.observed_at < current[5]:
            stale += 1
            continue
        changed_at: datetime | None
        if current is None or current[4] != obs.quantity:
            if since is not None and current is not None:  # the batch's change before
                history.append((*key, current[4], since[0], since[1]))  # this one, replaced
            since = (obs.observed_at, obs.source, None if current is None else current[4])
            changed_at = obs.changed_at or obs.observed_at
        else:
            changed_at = obs.changed_at or current[6]
        current = (*key, obs.quantity, obs.observed_at, changed_at, obs.source)
        moved = True
    return (current if moved else None), since, history, stale
