"""Inventory levels: the current value per key and the history of its changes.

A key is (system, sku, location, state). ``level_current`` holds the latest value of
each key; ``level_history`` gets a row only when a value differs from the one before it,
so a poll that finds nothing new writes no history at all. Recording is serialized
across replicas (a transaction-scoped advisory lock on PostgreSQL, the write lock on
SQLite), so replicas recording the same change at once write it once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from sqlalchemy import func, select, union, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.bulk import CurrentRow, HistoryRow, Key, LevelBulk, bulk_for
from ledger.errors import InvalidArgument
from ledger.records import LevelObservation, LevelRow, RecordResult
from ledger.store import Store
from ledger.tables import ITEMS, LEVEL_CURRENT, LEVEL_HISTORY
from ledger.types import require_utc

#: Observations per round of record_levels: one UPDATE, one read and two writes a round.
CHUNK = 20_000
#: SKUs per query in current_levels.
READ_CHUNK = 500
#: the PostgreSQL advisory lock (transaction-scoped) that serializes level recording
#: across replicas; a fixed 64-bit key ("dw-level" in ASCII)
LEVELS_LOCK = 0x64772D6C6576656C


class Levels(Store):
    """Recording and reading levels."""

    async def record_levels(self, observations: Iterable[LevelObservation]) -> RecordResult:
        """Store a batch of observations, in one transaction.

        Per key, observations are applied in ``observed_at`` order. One older than the
        stored value is ignored and counted ``stale``; one that differs from the value
        before it writes a history row (``changed``); every other one only refreshes the
        current row's ``observed_at`` (and ``changed_at`` or ``source`` if it brings
        new ones). ``changed_at`` is the system's own value when given, else the
        ``observed_at`` of the change.

        ``observations`` is consumed as a stream, ``CHUNK`` at a time, so a full poll
        is never held in memory twice: the order above holds within a chunk, and across
        chunks in arrival order (an observation of a key older than one an earlier chunk
        of the same batch stored is stale). A poll, one observation per key, is
        unaffected. Observations that bring nothing new cost no Python object beyond a
        tuple: the database compares them and refreshes their ``observed_at`` itself.
        """
        chunks = _chunks(observations)
        first = next(chunks, None)
        if first is None:
            return RecordResult(observed=0, changed=0, stale=0)
        bulk = bulk_for(self.dialect)
        total = changed = stale = 0
        async with self._write() as conn:
            if self.dialect == "postgresql":
                # Replicas recording at once would each read the value before the
                # other's change and each write the change: one at a time (SQLite's
                # BEGIN IMMEDIATE already serializes writers). Transaction-scoped, so
                # released at commit or rollback whatever the pool does with the
                # connection afterwards.
                await conn.execute(select(func.pg_advisory_xact_lock(LEVELS_LOCK)))
            for chunk in itertools.chain((first,), chunks):
                total += len(chunk)
                written, ignored = await _record_chunk(conn, bulk, chunk)
                changed += written
                stale += ignored
        return RecordResult(observed=total, changed=changed, stale=stale)

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
        rows: list[LevelRow] = []
        async with self._read() as conn:
            if sku is None and skus is None:
                result = await conn.execute(select(LEVEL_CURRENT).order_by(*order))
                rows = [LevelRow.from_row(r) for r in result.mappings()]
            for start in range(0, len(wanted), READ_CHUNK):
                query = (
                    select(LEVEL_CURRENT)
                    .where(LEVEL_CURRENT.c.sku.in_(wanted[start : start + READ_CHUNK]))
                    .order_by(*order)
                )
                rows.extend(LevelRow.from_row(r) for r in (await conn.execute(query)).mappings())
        return rows

    async def level_series(self, sku: str, since: datetime) -> list[LevelRow]:
        """The changes of ``sku`` since ``since``, ordered by ``observed_at``, for charts.

        Each key's last change before ``since`` comes first, so every series starts from
        a known value. Rows carry no ``changed_at`` (a history row *is* a change).
        """
        since = require_utc(since, "since")
        h = LEVEL_HISTORY.c
        columns = (h.id, h.system, h.sku, h.location, h.state, h.quantity, h.observed_at, h.source)
        ranked = (
            select(
                *columns,
                func.row_number()
                .over(
                    partition_by=(h.system, h.location, h.state),
                    order_by=(h.observed_at.desc(), h.id.desc()),
                )
                .label("rank"),
            )
            .where(h.sku == sku, h.observed_at < since)
            .subquery()
        )
        prior = select(*(ranked.c[c.name] for c in columns)).where(ranked.c.rank == 1)
        recent = select(*columns).where(h.sku == sku, h.observed_at >= since)
        both = union_all(prior, recent).subquery()
        query = select(both).order_by(both.c.observed_at, both.c.id)
        async with self._read() as conn:
            result = await conn.execute(query)
            return [LevelRow.from_row({**r, "changed_at": None}) for r in result.mappings()]

    async def known_skus(self) -> list[str]:
        """Every SKU the ledger has seen, as an item or in a level, sorted."""
        query = union(select(ITEMS.c.sku), select(LEVEL_CURRENT.c.sku.label("sku")))
        async with self._read() as conn:
            return sorted((await conn.execute(query)).scalars().all())


def _chunks(observations: Iterable[LevelObservation]) -> Iterator[list[LevelObservation]]:
    it = iter(observations)
    while chunk := list(itertools.islice(it, CHUNK)):
        yield chunk


async def _record_chunk(
    conn: AsyncConnection, bulk: LevelBulk, chunk: list[LevelObservation]
) -> tuple[int, int]:
    """One chunk recorded: (history rows written, stale observations)."""
    single: dict[Key, LevelObservation] = {}
    repeated: dict[Key, list[LevelObservation]] = {}
    for obs in chunk:
        _check(obs)
        key = (obs.system, obs.sku, obs.location, obs.state)
        first = single.setdefault(key, obs)
        if first is not obs:
            repeated.setdefault(key, [first]).append(obs)
    for key in repeated:
        del single[key]
    rows: list[CurrentRow] = [
        (*key, o.quantity, o.observed_at, o.changed_at, o.source) for key, o in single.items()
    ]
    del chunk
    # Keys the database could not settle alone (new, changed, stale), with their rows.
    pending = await bulk.refresh_unchanged(conn, rows)
    del rows
    if repeated:
        pending += [(row[:4], row) for row in await bulk.load_current(conn, sorted(repeated))]
        pending += [(key, None) for key in repeated.keys() - {key for key, _ in pending}]
    history: list[HistoryRow] = []
    upserts: list[CurrentRow] = []
    stale = 0
    for key, stored in sorted(pending):
        batch = repeated[key] if key in repeated else [single[key]]
        row, written, ignored = _apply(key, stored, batch)
        history.extend(written)
        stale += ignored
        if row is not None:
            upserts.append(row)
    await bulk.insert_history(conn, history)
    await bulk.upsert_current(conn, upserts)
    return len(history), stale


def _check(obs: LevelObservation) -> None:
    if obs.observed_at.tzinfo is None or (
        obs.changed_at is not None and obs.changed_at.tzinfo is None
    ):
        raise InvalidArgument(f"naive datetime in observation {obs!r}")
    if not isinstance(obs.quantity, int):
        raise InvalidArgument(f"quantity must be an int in observation {obs!r}")


def _apply(
    key: Key, stored: CurrentRow | None, batch: list[LevelObservation]
) -> tuple[CurrentRow | None, list[HistoryRow], int]:
    """One key's observations applied in time order to its stored row.

    Returns the row to upsert (None if every observation was stale), the history rows
    to write, and how many observations were stale.
    """
    batch.sort(key=lambda o: o.observed_at)
    current = stored
    history: list[HistoryRow] = []
    stale = 0
    moved = False
    for obs in batch:
        if current is not None and obs.observed_at < current[5]:
            stale += 1
            continue
        changed_at: datetime | None
        if current is None or current[4] != obs.quantity:
            history.append((*key, obs.quantity, obs.observed_at, obs.source))
            changed_at = obs.changed_at or obs.observed_at
        else:
            changed_at = obs.changed_at or current[6]
        current = (*key, obs.quantity, obs.observed_at, changed_at, obs.source)
        moved = True
    return (current if moved else None), history, stale
