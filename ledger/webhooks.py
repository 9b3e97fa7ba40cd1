"""Webhook deliveries: every one accepted is recorded, the first of each event claims it.

The receiver (``connectors.shopify.webhooks``) records each delivery it accepts —
including duplicates — and settles it once processed. Dedupe is a claim on (system,
dedupe_key) under a unique index, so two deliveries of one event racing on two replicas
still produce one ``received`` row and one ``duplicate`` row. Deliveries can be recorded
(and settled) in batches, one transaction each, so a burst costs a few transactions
rather than one per delivery. Staleness is judged against the newest ``processed``
delivery for the same resource (e.g. an inventory item at a location) by ``ordered_at``.

Deliveries refused at the door (anyone can send those) are not rows: they are counted
per system, outcome, reason and :data:`REFUSAL_BUCKET` in ``webhook_refusals`` and kept
for :data:`REFUSAL_RETENTION`; the reads below add those counts to the rows'.

One value cannot fail a batch: text and JSON are made storable first
(:mod:`ledger.storable`), and if the database still refuses the batch, each delivery is
written on its own (a savepoint each) and one it refuses is recorded with its text
escaped and its detail replaced by the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, or_, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger import timeline
from ledger.errors import DatabaseUnavailable, InvalidArgument, NotFound
from ledger.level_columns import STATES
from ledger.records import DeliveryStats, RefusalCount, WebhookDelivery
from ledger.storable import refusal_reason, storable_json, storable_text
from ledger.store import Store, dialect_insert
from ledger.tables import LEVEL_HISTORY, LEVELS
from ledger.tables import WEBHOOK_DELIVERIES as WD
from ledger.tables import WEBHOOK_REFUSALS as WR
from ledger.types import (
    REFUSAL_OUTCOMES,
    WEBHOOK_OUTCOMES,
    require_choice,
    require_json,
    require_text,
    require_utc,
)

log = logging.getLogger(__name__)

#: Outcomes of deliveries refused at the door (no payload was accepted). Recorded as
#: counts since revision 0003; rows with the first three may remain from before.
REFUSED = REFUSAL_OUTCOMES
#: Refusals are counted in buckets of this length...
REFUSAL_BUCKET = timedelta(minutes=5)
#: ...and kept this long.
REFUSAL_RETENTION = timedelta(days=14)
#: Keys per ``IN (...)`` list: well under SQLite's limit on bound parameters.
_IN_CHUNK = 500
#: Characters of a reason or of one sample value kept with a refusal count.
_REFUSAL_TEXT = 200
_DELIVERY_FIELDS = frozenset(
    (
        "system",
        "topic",
        "event_id",
        "webhook_id",
        "triggered_at",
        "received_at",
        "outcome",
        "resource_key",
        "detail",
        "dedupe_key",
        "ordered_at",
    )
)
_REFUSAL_FIELDS = frozenset(
    ("system", "outcome", "reason", "count", "first_at", "last_at", "sample")
)
_TEXT_FIELDS = ("topic", "event_id", "webhook_id", "dedupe_key", "resource_key")


@dataclass(frozen=True, slots=True)
class DeliveryWindow:
    """What one system's webhooks did since a moment: the facts webhook health is
    judged on."""

    system: str
    since: datetime
    by_outcome: Mapping[str, int]
    #: accepted first deliveries (not refused, not duplicates) that said when they were
    #: triggered, and how many of them arrived later than ``late_after_seconds``
    timed: int
    late: int
    late_after_seconds: float
    max_delay_seconds: float | None
    #: refused signatures that were present but did not match (the rest had none)
    signature_mismatches: int
    #: the newest processing error's message, if any
    last_error: str | None
    last_received_at: datetime | None

    @property
    def total(self) -> int:
        return sum(self.by_outcome.values())

    def count(self, *outcomes: str) -> int:
        """How many deliveries had any of ``outcomes``."""
        return sum(self.by_outcome.get(o, 0) for o in outcomes)


@dataclass(frozen=True, slots=True)
class LevelChange:
    """A change of a level as the ledger recorded it: from ``previous`` to ``quantity``,
    first observed at ``observed_at`` (by whatever read found it)."""

    system: str
    sku: str
    location: str
    state: str
    previous: int
    quantity: int
    observed_at: datetime
    source: str
    #: when ``previous`` was first observed: the change happened after it
    previous_at: datetime


@dataclass(frozen=True, slots=True)
class Announcement:
    """A delivery that named a resource (e.g. an inventory level), whatever its outcome."""

    resource_key: str
    triggered_at: datetime | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class _Refused:
    """The refusals of a window, from the counts and any rows from before 0003."""

    by_outcome: dict[str, int]
    mismatches: int
    last_at: datetime | None


def refusal_bucket(at: datetime) -> datetime:
    """The start of the :data:`REFUSAL_BUCKET` that ``at`` falls in."""
    seconds = int(REFUSAL_BUCKET.total_seconds())
    return datetime.fromtimestamp(int(require_utc(at).timestamp()) // seconds * seconds, UTC)


class WebhookDeliveries(Store):
    """Recording webhook deliveries and reading them back."""

    async def record_delivery(
        self,
        *,
        system: str,
        topic: str | None,
        event_id: str | None,
        webhook_id: str | None,
        triggered_at: datetime | None,
        received_at: datetime,
        outcome: str,
        resource_key: str | None = None,
        detail: Mapping[str, Any] | None = None,
        dedupe_key: str | None = None,
        ordered_at: datetime | None = None,
    ) -> tuple[WebhookDelivery, bool]:
        """Record one delivery; return it and whether it is new.

        With a ``dedupe_key`` (the event id), the delivery claims that key for ``system``.
        If the key was claimed before, the delivery is recorded anyway, with outcome
        ``duplicate``, no key, and ``detail["duplicate_of"]`` naming the first delivery;
        the result is then ``(the duplicate's row, False)``. Without a key every delivery
        is new. ``delay_seconds`` is computed from ``received_at - triggered_at``;
        ``ordered_at`` defaults to ``triggered_at``.
        """
        [result] = await self.record_deliveries(
            [
                {
                    "system": system,
                    "topic": topic,
                    "event_id": event_id,
                    "webhook_id": webhook_id,
                    "triggered_at": triggered_at,
                    "received_at": received_at,
                    "outcome": outcome,
                    "resource_key": resource_key,
                    "detail": detail,
                    "dedupe_key": dedupe_key,
                    "ordered_at": ordered_at,
                }
            ]
        )
        return result

    async def record_deliveries(
        self,
        deliveries: Sequence[Mapping[str, Any]],
        refusals: Sequence[Mapping[str, Any]] = (),
    ) -> list[tuple[WebhookDelivery, bool]]:
        """Record several deliveries in one transaction (a group commit); each mapping
        holds :meth:`record_delivery`'s keyword arguments. Returns ``(row, is_new)`` per
        delivery, in the order given. ``refusals`` are counted in the same transaction
        (see :meth:`count_refusals`).

        Claims are decided as if the deliveries were recorded one after another in that
        order: the first of a ``(system, dedupe_key)`` in the batch claims it unless a
        delivery outside the batch (an earlier transaction, another replica) holds it;
        every later one is a ``duplicate`` of whichever holds it. Arguments the ledger
        refuses (an unknown field or outcome, a naive time) refuse the call
        (:class:`InvalidArgument`), nothing written; a value the *database* refuses
        fails only its own delivery, which is then recorded with its text escaped and
        its detail replaced by the reason (see the module docstring).
        """
        values = [_delivery_values(d) for d in deliveries]
        counted = [_refusal_values(r) for r in refusals]
        if not values and not counted:
            return []
        try:
            async with self._write() as conn:
                results = await self._record(conn, values)
                await self._count(conn, counted)
            return results
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # a value the database refused: find it, keep the rest
            if len(values) + len(counted) == 0:
                raise
            log.warning(
                "recording %d webhook deliveries failed (%s); recording each on its own",
                len(values),
                _first_line(exc),
            )
        async with self._write() as conn:
            results = [await self._record_isolated(conn, value) for value in values]
            await self._count(conn, counted, isolated=True)
        return results

    async def _record(
        self, conn: AsyncConnection, values: list[dict[str, Any]]
    ) -> list[tuple[WebhookDelivery, bool]]:
        results: list[tuple[WebhookDelivery, bool] | None] = [None] * len(values)
        firsts: dict[tuple[str, str], int] = {}  # (system, key) -> index of its first
        for index, value in enumerate(values):
            if value["dedupe_key"] is not None:
                firsts.setdefault((value["system"], value["dedupe_key"]), index)
        claimed = await self._claim(conn, [values[i] for _, i in sorted(firsts.items())])
        holders = {key: row.id for key, row in claimed.items()}
        holders |= await _holders(conn, [key for key in firsts if key not in claimed])
        plain: list[int] = []
        duplicates: set[int] = set()
        values = list(values)  # the caller's list stays as given (a retry reads it)
        for index, value in enumerate(values):
            key = (value["system"], value["dedupe_key"])
            if value["dedupe_key"] is None:
                plain.append(index)
            elif firsts[key] == index and key in claimed:
                results[index] = (claimed[key], True)
            else:
                values[index] = _as_duplicate(value, holders[key])
                duplicates.add(index)
                plain.append(index)
        if plain:
            stmt = WD.insert().returning(*WD.c, sort_by_parameter_order=True)
            rows = (await conn.execute(stmt, [values[i] for i in plain])).mappings().all()
            for index, row in zip(plain, rows, strict=True):
                results[index] = (WebhookDelivery.from_row(row), index not in duplicates)
        return [r for r in results if r is not None]

    async def _record_isolated(
        self, conn: AsyncConnection, value: dict[str, Any]
    ) -> tuple[WebhookDelivery, bool]:
        """Record one delivery in a savepoint; if the database refuses it, record it
        again with its text escaped and its detail replaced by the reason."""
        try:
            async with conn.begin_nested():
                return await self._record_one(conn, value)
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            log.warning("a webhook delivery could not be stored as sent: %s", _first_line(exc))
            async with conn.begin_nested():
                return await self._record_one(conn, _escaped(value, exc))

    async def _record_one(
        self, conn: AsyncConnection, value: dict[str, Any]
    ) -> tuple[WebhookDelivery, bool]:
        if value["dedupe_key"] is not None:
            claimed = await self._claim(conn, [value])
            key = (value["system"], value["dedupe_key"])
            if key in claimed:
                return claimed[key], True
            holder = (await _holders(conn, [key]))[key]
            value = _as_duplicate(value, holder)
        stmt = WD.insert().returning(*WD.c)
        row = (await conn.execute(stmt, value)).mappings().one()
        return WebhookDelivery.from_row(row), value["outcome"] != "duplicate"

    async def _claim(
        self, conn: AsyncConnection, values: list[dict[str, Any]]
    ) -> dict[tuple[str, str], WebhookDelivery]:
        """Insert the first delivery of each key unless the key is held; the rows that
        claimed, by ``(system, dedupe_key)``. ``values`` come sorted by key, so two
        replicas claiming overlapping keys lock them in one order (no deadlock)."""
        if not values:
            return {}
        stmt = (
            dialect_insert(self.dialect, WD)
            .on_conflict_do_nothing(index_elements=["system", "dedupe_key"])
            .returning(*WD.c)
        )
        rows = (await conn.execute(stmt, values)).mappings().all()
        return {(r["system"], r["dedupe_key"]): WebhookDelivery.from_row(r) for r in rows}

    # -- refusals ---------------------------------------------------------------------
    async def count_refusals(self, refusals: Sequence[Mapping[str, Any]]) -> None:
        """Count deliveries refused at the door, in one transaction. Each mapping holds
        ``system``, ``outcome`` (one of :data:`REFUSED`), ``reason`` (may be empty),
        ``count``, ``first_at``, ``last_at`` and a ``sample`` of the last one's headers.
        Each is added to the bucket its ``last_at`` falls in; buckets older than
        :data:`REFUSAL_RETENTION` before the newest are deleted on the way."""
        counted = [_refusal_values(r) for r in refusals]
        if counted:
            async with self._write() as conn:
                await self._count(conn, counted)

    async def _count(
        self, conn: AsyncConnection, counted: list[dict[str, Any]], *, isolated: bool = False
    ) -> None:
        if not counted:
            return
        insert = dialect_insert(self.dialect, WR)
        new = insert.excluded
        stmt = insert.on_conflict_do_update(
            index_elements=["system", "outcome", "reason", "bucket_start"],
            set_={
                "count": WR.c.count + new.count,
                "first_at": case((new.first_at < WR.c.first_at, new.first_at), else_=WR.c.first_at),
                "last_at": case((new.last_at > WR.c.last_at, new.last_at), else_=WR.c.last_at),
                "sample": case((new.last_at >= WR.c.last_at, new.sample), else_=WR.c.sample),
            },
        )
        for value in counted:
            if not isolated:
                await conn.execute(stmt, value)
                continue
            try:  # a count the database refuses is dropped, never the deliveries
                async with conn.begin_nested():
                    await conn.execute(stmt, value)
            except DatabaseUnavailable:
                raise
            except Exception as exc:
                log.warning("a webhook refusal count could not be stored: %s", _first_line(exc))
        newest = max(v["bucket_start"] for v in counted)
        if newest != getattr(self, "_refusals_pruned_for", None):
            await conn.execute(delete(WR).where(WR.c.bucket_start < newest - REFUSAL_RETENTION))
            self._refusals_pruned_for = newest

    async def prune_refusals(self, before: datetime) -> int:
        """Delete the refusal counts of buckets that start before ``before``; how many."""
        before = require_utc(before, "before")
        async with self._write() as conn:
            result = await conn.execute(delete(WR).where(WR.c.bucket_start < before))
        return int(result.rowcount or 0)

    async def list_refusals(
        self, since: datetime | None = None, system: str | None = None
    ) -> list[RefusalCount]:
        """Refusal counts whose last refusal came at or after ``since``, oldest bucket
        first."""
        query = select(WR).order_by(WR.c.bucket_start, WR.c.system, WR.c.outcome, WR.c.reason)
        if since is not None:
            query = query.where(WR.c.last_at >= require_utc(since, "since"))
        if system is not None:
            query = query.where(WR.c.system == system)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [RefusalCount.from_row(row) for row in rows]

    async def _refused(
        self, conn: AsyncConnection, since: datetime, system: str | None
    ) -> _Refused:
        """Refusals whose bucket saw one at or after ``since`` (a bucket counts whole:
        up to :data:`REFUSAL_BUCKET` before ``since`` may be included)."""
        where = [WR.c.last_at >= since]
        if system is not None:
            where.append(WR.c.system == system)
        mismatch = and_(WR.c.outcome == "rejected_signature", WR.c.reason == "mismatch")
        query = (
            select(
                WR.c.outcome,
                func.sum(WR.c.count),
                func.sum(case((mismatch, WR.c.count), else_=0)),
                func.max(WR.c.last_at),
            )
            .where(*where)
            .group_by(WR.c.outcome)
        )
        by_outcome: dict[str, int] = {}
        mismatches = 0
        last: datetime | None = None
        for outcome, total, mismatched, newest in await conn.execute(query):
            by_outcome[outcome] = int(total or 0)
            mismatches += int(mismatched or 0)
            if newest is not None and (last is None or newest > last):
                last = newest
        return _Refused(by_outcome, mismatches, last)

    # -- settling ---------------------------------------------------------------------
    async def finish_delivery(
        self,
        delivery_id: int,
        *,
        outcome: str,
        processed_at: datetime,
        detail: Mapping[str, Any] | None = None,
    ) -> WebhookDelivery:
        """Settle a delivery: its final ``outcome``, when, and ``detail`` merged in."""
        await self.finish_deliveries(
            [
                {
                    "delivery_id": delivery_id,
                    "outcome": outcome,
                    "processed_at": processed_at,
                    "detail": detail,
                }
            ]
        )
        return await self.get_delivery(delivery_id)

    async def finish_deliveries(self, finished: Sequence[Mapping[str, Any]]) -> None:
        """Settle several deliveries in one transaction; each mapping holds
        :meth:`finish_delivery`'s arguments (``delivery_id``, ``outcome``,
        ``processed_at``, optional ``detail``). :class:`NotFound` (and nothing settled)
        if one of them does not exist. A detail the database refuses fails only its own
        delivery, which is settled with the reason in place of that detail."""
        settled: dict[int, dict[str, Any]] = {}
        for item in finished:
            outcome = require_choice(item["outcome"], WEBHOOK_OUTCOMES, "outcome")
            extra = storable_json(dict(item.get("detail") or {}))
            settled[int(item["delivery_id"])] = {
                "outcome": outcome,
                "processed_at": require_utc(item["processed_at"], "processed_at"),
                "extra": require_json(extra, "detail"),
            }
        if not settled:
            return
        try:
            async with self._write() as conn:
                await self._settle(conn, settled, isolated=False)
            return
        except (DatabaseUnavailable, NotFound):
            raise
        except Exception as exc:
            log.warning(
                "settling %d webhook deliveries failed (%s); settling each on its own",
                len(settled),
                _first_line(exc),
            )
        async with self._write() as conn:
            await self._settle(conn, settled, isolated=True)

    async def _settle(
        self, conn: AsyncConnection, settled: dict[int, dict[str, Any]], *, isolated: bool
    ) -> None:
        current: dict[int, Any] = {}
        ids = list(settled)
        for chunk in range(0, len(ids), _IN_CHUNK):
            query = select(WD.c.id, WD.c.detail).where(WD.c.id.in_(ids[chunk : chunk + _IN_CHUNK]))
            current.update({i: d for i, d in await conn.execute(query)})
        missing = [i for i in ids if i not in current]
        if missing:
            raise NotFound(f"no webhook delivery {missing[0]}")
        stmt = (
            update(WD)
            .where(WD.c.id == bindparam("b_id"))
            .values(
                outcome=bindparam("b_outcome"),
                processed_at=bindparam("b_processed_at"),
                detail=bindparam("b_detail", type_=WD.c.detail.type),
            )
        )
        params = [
            {
                "b_id": i,
                "b_outcome": s["outcome"],
                "b_processed_at": s["processed_at"],
                "b_detail": {**current[i], **s["extra"]},
            }
            for i, s in settled.items()
        ]
        if not isolated:
            await conn.execute(stmt, params)
            return
        for param in params:
            try:
                async with conn.begin_nested():
                    await conn.execute(stmt, param)
            except DatabaseUnavailable:
                raise
            except Exception as exc:
                log.warning("a webhook outcome could not be stored as given: %s", _first_line(exc))
                reason = {"unstorable": _first_line(exc)}
                async with conn.begin_nested():
                    await conn.execute(
                        stmt, {**param, "b_detail": {**current[param["b_id"]], **reason}}
                    )

    # -- order ------------------------------------------------------------------------
    async def latest_ordered_at(self, system: str, resource_key: str) -> datetime | None:
        """The newest ``ordered_at`` of a ``processed`` delivery for ``resource_key``."""
        latest = await self.latest_ordered_many(system, [resource_key])
        return latest.get(resource_key)

    async def latest_ordered_many(
        self, system: str, resource_keys: Iterable[str]
    ) -> dict[str, datetime]:
        """:meth:`latest_ordered_at` for several resources in one read; resources with
        no ``processed`` delivery are left out."""
        keys = sorted(set(resource_keys))
        latest: dict[str, datetime] = {}
        async with self._read() as conn:
            for chunk in range(0, len(keys), _IN_CHUNK):
                query = (
                    select(WD.c.resource_key, func.max(WD.c.ordered_at))
                    .where(
                        WD.c.system == system,
                        WD.c.resource_key.in_(keys[chunk : chunk + _IN_CHUNK]),
                        WD.c.outcome == "processed",
                    )
                    .group_by(WD.c.resource_key)
                )
                for key, moment in await conn.execute(query):
                    if moment is not None:
                        latest[key] = moment
        return latest

    async def received_deliveries(
        self, system: str, *, after_id: int = 0, limit: int = 500
    ) -> list[WebhookDelivery]:
        """Deliveries of ``system`` accepted but not settled (``received``), by id, the
        first ``limit`` after ``after_id``: what a process that died left unprocessed."""
        return await self.deliveries_after(system, "received", after_id=after_id, limit=limit)

    async def deliveries_after(
        self,
        system: str,
        outcome: str,
        *,
        after_id: int = 0,
        topic: str | None = None,
        limit: int = 500,
    ) -> list[WebhookDelivery]:
        """Deliveries of ``system`` with ``outcome`` (and ``topic``), by id, the first
        ``limit`` after ``after_id`` (ids grow as deliveries are recorded, by any
        replica: a reader that remembers the last id it saw misses none)."""
        if limit <= 0:
            raise InvalidArgument("limit must be positive")
        require_choice(outcome, WEBHOOK_OUTCOMES, "outcome")
        query = (
            select(WD)
            .where(WD.c.system == system, WD.c.outcome == outcome, WD.c.id > after_id)
            .order_by(WD.c.id)
            .limit(limit)
        )
        if topic is not None:
            query = query.where(WD.c.topic == topic)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [WebhookDelivery.from_row(row) for row in rows]

    async def latest_delivery_id(self, system: str, *, before: datetime | None = None) -> int:
        """The id of ``system``'s newest delivery (received before ``before``, if
        given); 0 if there is none."""
        query = select(func.max(WD.c.id)).where(WD.c.system == system)
        if before is not None:
            query = query.where(WD.c.received_at < require_utc(before, "before"))
        async with self._read() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def get_delivery(self, delivery_id: int) -> WebhookDelivery:
        """The delivery with this id; :class:`NotFound` if there is none."""
        async with self._read() as conn:
            row = (await conn.execute(select(WD).where(WD.c.id == delivery_id))).mappings().first()
        if row is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        return WebhookDelivery.from_row(row)

    async def list_deliveries(
        self,
        since: datetime | None = None,
        outcome: str | None = None,
        limit: int = 100,
        system: str | None = None,
        *,
        newest: bool = False,
    ) -> list[WebhookDelivery]:
        """Deliveries received at or after ``since``, oldest first, filtered by outcome;
        with ``newest``, the ``limit`` most recent ones (still oldest first)."""
        if limit <= 0:
            raise InvalidArgument("limit must be positive")
        if newest:
            query = select(WD).order_by(WD.c.received_at.desc(), WD.c.id.desc())
        else:
            query = select(WD).order_by(WD.c.received_at, WD.c.id)
        query = query.limit(limit)
        if since is not None:
            query = query.where(WD.c.received_at >= require_utc(since, "since"))
        if outcome is not None:
            require_choice(outcome, WEBHOOK_OUTCOMES, "outcome")
            query = query.where(WD.c.outcome == outcome)
        if system is not None:
            query = query.where(WD.c.system == system)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        found = [WebhookDelivery.from_row(row) for row in rows]
        return found[::-1] if newest else found

    async def delivery_stats(self, since: datetime, system: str | None = None) -> DeliveryStats:
        """Deliveries received at or after ``since``: counts by outcome (refusals from
        their counts), the largest delay and the last arrival."""
        since = require_utc(since, "since")
        where = [WD.c.received_at >= since]
        if system is not None:
            where.append(WD.c.system == system)
        counts = select(WD.c.outcome, func.count()).where(*where).group_by(WD.c.outcome)
        summary = select(func.max(WD.c.delay_seconds), func.max(WD.c.received_at)).where(*where)
        async with self._read() as conn:
            by_outcome: dict[str, int] = {
                outcome: count for outcome, count in await conn.execute(counts)
            }
            max_delay, last = (await conn.execute(summary)).one()
            refused = await self._refused(conn, since, system)
        for outcome, count in refused.by_outcome.items():
            by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        last = _latest(last, refused.last_at)
        return DeliveryStats(
            total=sum(by_outcome.values()),
            by_outcome=by_outcome,
            max_delay_seconds=float(max_delay) if max_delay is not None else None,
            last_received_at=last,
        )

    async def delivery_window(
        self, system: str, since: datetime, *, late_after_seconds: float = 300.0
    ) -> DeliveryWindow:
        """``system``'s deliveries received at or after ``since``: counts by outcome
        (refusals from their counts: a bucket that saw one at or after ``since`` counts
        whole), how many accepted ones arrived late, signature mismatches and the newest
        error."""
        system = require_text(system, "system")
        since = require_utc(since, "since")
        where = (WD.c.system == system, WD.c.received_at >= since)
        accepted = (*where, WD.c.outcome.not_in((*REFUSED, "duplicate")))
        timed = WD.c.delay_seconds.is_not(None)
        late = WD.c.delay_seconds > late_after_seconds
        mismatch = WD.c.detail["signature"].as_string() == "mismatch"
        counts = select(WD.c.outcome, func.count()).where(*where).group_by(WD.c.outcome)
        delays = select(
            func.count().filter(timed),
            func.count().filter(late),
            func.max(WD.c.delay_seconds),
        ).where(*accepted)
        summary = select(
            func.count().filter(and_(WD.c.outcome == "rejected_signature", mismatch)),
            func.max(WD.c.received_at),
        ).where(*where)
        newest_error = (
            select(WD.c.detail)
            .where(*where, WD.c.outcome == "error")
            .order_by(WD.c.received_at.desc(), WD.c.id.desc())
            .limit(1)
        )
        async with self._read() as conn:
            by_outcome: dict[str, int] = {
                outcome: count for outcome, count in await conn.execute(counts)
            }
            n_timed, n_late, max_delay = (await conn.execute(delays)).one()
            mismatches, last = (await conn.execute(summary)).one()
            error_detail = (await conn.execute(newest_error)).scalar_one_or_none()
            refused = await self._refused(conn, since, system)
        for outcome, count in refused.by_outcome.items():
            by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        mismatches = int(mismatches) + refused.mismatches
        last = _latest(last, refused.last_at)
        error = error_detail.get("error") if isinstance(error_detail, dict) else None
        return DeliveryWindow(
            system=system,
            since=since,
            by_outcome=by_outcome,
            timed=int(n_timed),
            late=int(n_late),
            late_after_seconds=late_after_seconds,
            max_delay_seconds=float(max_delay) if max_delay is not None else None,
            signature_mismatches=int(mismatches),
            last_error=str(error) if error is not None else None,
            last_received_at=last,
        )

    async def announcements(
        self, system: str, topic: str, since: datetime, until: datetime
    ) -> list[Announcement]:
        """Deliveries of ``topic`` for ``system`` that named a resource, received in
        ``[since, until]`` (any outcome, duplicates included), oldest first."""
        since = require_utc(since, "since")
        until = require_utc(until, "until")
        query = (
            select(WD.c.resource_key, WD.c.triggered_at, WD.c.received_at)
            .where(
                WD.c.system == system,
                WD.c.topic == topic,
                WD.c.resource_key.is_not(None),
                WD.c.received_at >= since,
                WD.c.received_at <= until,
            )
            .order_by(WD.c.received_at, WD.c.id)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [Announcement(key, triggered, received) for key, triggered, received in rows]

    async def level_changes(
        self,
        system: str,
        since: datetime,
        until: datetime,
        *,
        state: str | None = None,
        limit: int = 10_000,
    ) -> list[LevelChange]:
        """Changes of ``system``'s levels first observed in ``[since, until]``, oldest
        first: changes (:mod:`ledger.timeline`) that follow an earlier value of the same
        key (a level's first observation is not a change). History's through its index by
        system and time, current's through each state's ``ix_levels_<state>_changes``,
        which holds only levels whose state replaced a value."""
        if limit <= 0:
            raise InvalidArgument("limit must be positive")
        since = require_utc(since, "since")
        until = require_utc(until, "until")
        h = LEVEL_HISTORY.alias("h")
        p = LEVEL_HISTORY.alias("p")
        levels = LEVELS.alias("l")

        def before_this(column: Any, row: timeline.Columns, table: Any) -> Any:
            """``column`` of the change before ``row``'s in its key's timeline (only
            history holds changes a later one replaced)."""
            return (
                select(column)
                .where(
                    p.c.sku == row.sku,
                    p.c.system == row.system,
                    p.c.location == row.location,
                    p.c.state == row.state,
                    or_(
                        p.c.observed_at < row.observed_at,
                        and_(p.c.observed_at == row.observed_at, p.c.id < row.id),
                    ),
                )
                .order_by(p.c.observed_at.desc(), p.c.id.desc())
                .limit(1)
                .correlate(table)
                .scalar_subquery()
            )

        def part(row: timeline.Columns, table: Any, *where: Any) -> Any:
            query = select(
                *(col.label(name) for name, col in zip(timeline.NAMES, row, strict=True)),
                before_this(p.c.quantity, row, table).label("previous"),
                before_this(p.c.observed_at, row, table).label("previous_at"),
            ).where(
                row.system == system,
                row.observed_at >= since,
                row.observed_at <= until,
                *where,
            )
            return query.where(row.state == state) if state is not None else query

        replaced = part(timeline.Columns(*(h.c[name] for name in timeline.NAMES)), h)
        # current's: a part per state (its own columns), each through its index
        latest = [
            part(columns, levels, *held)
            for columns, held in (
                timeline.replaced(levels, s) for s in STATES if state in (None, s)
            )
        ]
        rows_q = union_all(replaced, *latest).subquery()
        query = (
            select(rows_q)
            .where(rows_q.c.previous.is_not(None))
            .order_by(*timeline.in_order(rows_q))
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            LevelChange(
                system=system,
                sku=r["sku"],
                location=r["location"],
                state=r["state"],
                previous=int(r["previous"]),
                quantity=int(r["quantity"]),
                observed_at=require_utc(r["observed_at"], "observed_at"),
                previous_at=require_utc(r["previous_at"], "previous_at"),
                source=r["source"],
            )
            for r in rows
        ]


def _delivery_values(delivery: Mapping[str, Any]) -> dict[str, Any]:
    """The row of one delivery given as :meth:`WebhookDeliveries.record_delivery`'s
    keyword arguments, checked, its text and detail made storable."""
    unknown = set(delivery) - _DELIVERY_FIELDS
    if unknown:
        raise InvalidArgument(f"unknown delivery fields: {sorted(unknown)}")
    system = require_text(storable_text(delivery.get("system", "")), "system")
    outcome = require_choice(delivery.get("outcome", ""), WEBHOOK_OUTCOMES, "outcome")
    received_at = require_utc(delivery.get("received_at", ""), "received_at")
    triggered_at = delivery.get("triggered_at")
    triggered = require_utc(triggered_at, "triggered_at") if triggered_at else None
    ordered_at = delivery.get("ordered_at")
    ordered = require_utc(ordered_at, "ordered_at") if ordered_at else triggered
    text = {name: _optional_text(delivery.get(name), name) for name in _TEXT_FIELDS}
    return {
        "system": system,
        **text,
        "triggered_at": triggered,
        "received_at": received_at,
        "delay_seconds": (received_at - triggered).total_seconds() if triggered else None,
        "processed_at": None,
        "outcome": outcome,
        "detail": require_json(storable_json(dict(delivery.get("detail") or {})), "detail"),
        "ordered_at": ordered,
    }


def _optional_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be text (got {type(value).__name__})")
    return storable_text(value)


def _as_duplicate(value: dict[str, Any], holder: int) -> dict[str, Any]:
    return {
        **value,
        "dedupe_key": None,
        "outcome": "duplicate",
        "detail": {**value["detail"], "duplicate_of": holder},
    }


def _escaped(value: dict[str, Any], error: BaseException) -> dict[str, Any]:
    """``value`` as every backend stores it: text as ASCII with escapes, the detail
    replaced by why the original was refused."""
    text = {
        name: value[name].encode("ascii", "backslashreplace").decode("ascii")
        for name in ("system", *_TEXT_FIELDS)
        if value[name] is not None
    }
    return {**value, **text, "detail": {"unstorable": _first_line(error)}}


def _refusal_values(refusal: Mapping[str, Any]) -> dict[str, Any]:
    """The counted form of refusals given to :meth:`WebhookDeliveries.count_refusals`."""
    unknown = set(refusal) - _REFUSAL_FIELDS
    if unknown:
        raise InvalidArgument(f"unknown refusal fields: {sorted(unknown)}")
    count = refusal.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidArgument(f"count must be a positive integer (got {count!r})")
    last_at = require_utc(refusal.get("last_at", ""), "last_at")
    first_at = require_utc(refusal.get("first_at") or last_at, "first_at")
    sample = {
        storable_text(str(k))[:_REFUSAL_TEXT]: storable_text(str(v))[:_REFUSAL_TEXT]
        for k, v in dict(refusal.get("sample") or {}).items()
        if v is not None
    }
    return {
        "system": require_text(storable_text(refusal.get("system", "")), "system"),
        "outcome": require_choice(refusal.get("outcome", ""), REFUSED, "outcome"),
        "reason": storable_text(str(refusal.get("reason") or ""))[:_REFUSAL_TEXT],
        "bucket_start": refusal_bucket(last_at),
        "count": count,
        "first_at": min(first_at, last_at),
        "last_at": last_at,
        "sample": sample,
    }


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _first_line(error: BaseException) -> str:
    return refusal_reason(error, _REFUSAL_TEXT)


async def _holders(
    conn: AsyncConnection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Who holds each of ``keys``: the id of the delivery that claimed it."""
    held: dict[tuple[str, str], int] = {}
    by_system: dict[str, list[str]] = {}
    for system, key in keys:
        by_system.setdefault(system, []).append(key)
    for system, names in by_system.items():
        for chunk in range(0, len(names), _IN_CHUNK):
            query = select(WD.c.id, WD.c.dedupe_key).where(
                WD.c.system == system, WD.c.dedupe_key.in_(names[chunk : chunk + _IN_CHUNK])
            )
            held.update({(system, key): row_id for row_id, key in await conn.execute(query)})
    return held
