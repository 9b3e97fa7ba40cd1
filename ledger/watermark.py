"""The read watermark: each system's current levels kept in memory, compactly, so a
complete read of a system records only the keys that changed or are new.

One :class:`Marks` per system holds, for every key of ``level_current``, the quantity,
source, ``changed_at`` and ``observed_at`` in numpy arrays sorted by a 64-bit hash of
the key (about 34 bytes a key, against several hundred for Python objects). It is
loaded once from ``level_current`` (so it survives a restart by being rebuilt from the
ledger) and kept in step with every batch this process records; ``level_reads.version``
tells it when another process wrote the system's levels, and it is then loaded again.

Two keys of one system with the same hash are both marked unusable: their observations
always go to the database. A new key whose hash equals a known key's, with the same
quantity, source and time, would be taken for it (a chance of about one in 10**12 per
new key at a million keys); every other observation the watermark cannot vouch for
goes to the database, which decides as before.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from ledger.records import LevelObservation

_I32 = np.iinfo(np.int32)

#: stands for "no time" (a NULL ``changed_at``, a system never read completely)
NO_TIME = np.iinfo(np.int64).min
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]


def micros(value: datetime) -> int:
    """``value`` (aware) as whole microseconds since the epoch."""
    return (value - _EPOCH) // _MICRO


#: odd (the 64-bit golden ratio), so ``level × _MIX + state`` is one-to-one in the level's
#: hash for each state, modulo 2**64
_MIX = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def key_hash(sku: str, location: str, state: str) -> int:
    """A key's 64-bit hash (within one system; valid in this process only): its SKU and
    location's hash and its state's, combined as :func:`combine` does, so a level's
    states are hashed from one hash of the level (a full read's levels, as columns)."""
    mixed = (hash((sku, location)) * _MIX + hash(state)) & _MASK
    return mixed - (1 << 64) if mixed >> 63 else mixed


def combine(levels: I64, states: I64) -> I64:
    """:func:`key_hash` of each pair of a level hash (``hash((sku, location))``) and a
    state hash (``hash(state)``), broadcast as numpy does: wrapping at 64 bits."""
    mixed = levels.view(np.uint64) * np.uint64(_MIX) + states.view(np.uint64)
    return mixed.view(np.int64)


def time_column(values: Iterable[datetime | None], n: int) -> I64:
    """Microseconds of ``values`` (NO_TIME for None). A read's observations share a few
    times, so each distinct one is converted once and the rest is C-speed lookups."""
    values = list(values)
    table: dict[datetime | None, int] = {
        v: int(NO_TIME) if v is None else micros(v) for v in set(values)
    }
    return np.fromiter(map(table.__getitem__, values), np.int64, n)


def _ints(values: Iterable[int], n: int) -> I64:
    return np.fromiter(values, np.int64, n)


def _hashes(rows: Sequence[Any], n: int, *, at: int = 0) -> I64:
    """:func:`key_hash` of the ``(sku, location, state)`` found at ``at`` in each of
    ``rows`` (tuples)."""
    pair, state = itemgetter(at, at + 1), itemgetter(at + 2)
    levels = np.fromiter(map(hash, map(pair, rows)), np.int64, n)
    return combine(levels, np.fromiter(map(hash, map(state, rows)), np.int64, n))


_QUANTITY, _SOURCE, _CHANGED = (
    attrgetter("quantity"),
    attrgetter("source"),
    attrgetter("changed_at"),
)


@dataclass
class Marks:
    """One system's keys and current values (see the module docstring)."""

    keys: I64
    #: PostgreSQL's ``integer``, the range both backends store (``ledger.levels``)
    quantity: I32
    observed: I64
    changed: I64
    #: an index into ``sources``: one byte while a system has at most 256 sources (a
    #: handful in practice; 20 MB less at 100,000 SKUs), four beyond (:func:`source_ids`)
    source: npt.NDArray[np.uint8 | np.int32]
    absent: Bools
    usable: Bools
    #: ``level_reads.observed_at`` in microseconds (NO_TIME: never read completely)
    confirmed: int
    version: int
    sources: list[str] = field(default_factory=list)
    #: bumped whenever keys are inserted (every position after them moves)
    layout: int = 0
    #: where the last insert put keys (``np.insert``'s indices, sorted): a position ``j``
    #: before it is ``j + searchsorted(moved, j, "right")`` after it (None: unknown)
    moved: I64 | None = None
    #: the positions whose values changed since :mod:`ledger.recall` last noted a
    #: complete read (None: nothing noted, nothing tracked)
    dirty: Bools | None = None
    #: after the system's first read was applied (:meth:`Changes.apply`), where each row
    #: it wrote went, in the order written (None: not known); until its notes are made
    rows_at: I32 | None = None

    def touch(self, at: npt.NDArray[np.integer[Any]] | Bools) -> None:
        """Note that the values at ``at`` (positions or a mask) changed."""
        if self.dirty is not None:
            self.dirty[at] = True

    @classmethod
    def build(
        cls, rows: Sequence[tuple[Any, ...]], confirmed: datetime | None, version: int
    ) -> Marks:
        """From ``(sku, location, state, quantity, observed_at, changed_at, source,
        absent)`` rows of ``level_current``."""
        n = len(rows)
        sources: dict[str, int] = {}
        keys = _hashes(rows, n)
        order = np.argsort(keys, kind="stable")
        quantity = _ints(map(itemgetter(3), rows), n)[order]
        # a quantity the ledger stores is an int32; one beyond (written before the ledger
        # refused them) is never vouched for
        fits = (quantity >= _I32.min) & (quantity <= _I32.max)
        marks = cls(
            keys=keys[order],
            quantity=quantity.astype(np.int32),
            observed=time_column(map(itemgetter(4), rows), n)[order],
            changed=time_column(map(itemgetter(5), rows), n)[order],
            source=source_ids(
                np.fromiter((sources.setdefault(r[6], len(sources)) for r in rows), np.int32, n)[
                    order
                ],
                len(sources),
            ),
            absent=np.fromiter((bool(r[7]) for r in rows), np.bool_, n)[order],
            usable=fits,
            confirmed=int(NO_TIME) if confirmed is None else micros(confirmed),
            version=version,
            sources=list(sources),
        )
        marks._mark_collisions()
        return marks

    def __len__(self) -> int:
        return len(self.keys)

    def _mark_collisions(self) -> None:
        same = self.keys[1:] == self.keys[:-1]
        if same.any():
            self.usable[1:][same] = False
            self.usable[:-1][same] = False

    def source_id(self, source: str) -> int:
        try:
            return self.sources.index(source)
        except ValueError:
            self.sources.append(source)
            return len(self.sources) - 1

    def find(self, hashes: I64, *, ordered: bool = False) -> tuple[I64, Bools]:
        """Positions of ``hashes`` and whether each is a known, usable key; ``ordered``
        says ``hashes`` is sorted already."""
        if not len(self.keys):
            return np.zeros(len(hashes), np.int64), np.zeros(len(hashes), np.bool_)
        # Sorted first: numpy's binary search narrows each search by the one before, so
        # a chunk walks the keys once instead of missing the cache on every lookup (5x
        # faster with millions of keys, BENCHMARKS.md, issue 16).
        if ordered:
            at = np.searchsorted(self.keys, hashes)
        else:
            order = np.argsort(hashes)
            at = np.empty(len(hashes), np.int64)
            at[order] = np.searchsorted(self.keys, hashes[order])
            del order
        np.minimum(at, len(self.keys) - 1, out=at)
        found = (self.keys[at] == hashes) & self.usable[at]
        return at, found


class Written:
    """The keys one batch has written so far, as a bitmap of their hashes: the marks are
    applied only once the batch commits, so a key written by an earlier chunk of the
    batch must be judged by the database, not the marks. A key not written may share a
    bit with one that was (about 3% of them once two million keys are written): it is
    then judged by the database too, which is always right.

    The bitmap (8 MiB) is made only when a chunk is looked up after something was
    written: a full read given as columns, each level once, never needs it."""

    _SHIFT = np.uint64(64 - 26)  # the top 26 bits of a hash pick its bit

    def __init__(self, keys: _Column) -> None:
        self._keys = keys  # the hashes of the rows written, in order
        self._added = 0
        self._bits: npt.NDArray[np.uint8] | None = None

    def _slots(self, hashes: I64) -> tuple[I64, npt.NDArray[np.uint8]]:
        slot = hashes.view(np.uint64) >> self._SHIFT
        return (slot >> np.uint64(3)).astype(np.int64), np.left_shift(
            np.uint8(1), (slot & np.uint64(7)).astype(np.uint8)
        )

    def among(self, hashes: I64) -> Bools:
        """Which of ``hashes`` may have been written (a bit set)."""
        size = self._keys.size
        if size > self._added:
            if self._bits is None:
                self._bits = np.zeros(1 << 23, np.uint8)
            byte, bit = self._slots(self._keys.data[self._added : size])
            np.bitwise_or.at(self._bits, byte, bit)
            self._added = size
        if self._bits is None:
            return np.zeros(len(hashes), np.bool_)
        byte, bit = self._slots(hashes)
        hit: Bools = (self._bits[byte] & bit) != 0
        return hit


class Probe:
    """One chunk of one system's observations, looked up in its :class:`Marks`."""

    def __init__(
        self,
        marks: Marks,
        observations: Sequence[LevelObservation],
        written: Written | None = None,
    ) -> None:
        n = len(observations)
        self.hashes = _hashes(observations, n, at=1)  # (system, sku, location, state, ...)
        self.at, self.found = marks.find(self.hashes)
        #: the key's hash is known (usable or not): the complement is surely a new key
        self.present = (
            marks.keys[self.at] == self.hashes if len(marks.keys) else np.zeros(n, np.bool_)
        )
        #: keys an earlier chunk of the batch may have written: the marks do not know them
        #: yet, so they are neither vouched for nor taken as new
        self.doubt = np.zeros(n, np.bool_) if written is None else written.among(self.hashes)
        self.observed = time_column(map(attrgetter("observed_at"), observations), n)
        self._marks = marks
        self._observations = observations

    def select(self, keep: Bools) -> None:
        """Keep only the observations ``keep`` says (after :meth:`unchanged`)."""
        self.hashes, self.at = self.hashes[keep], self.at[keep]
        self.found, self.observed = self.found[keep], self.observed[keep]
        self.present, self.doubt = self.present[keep], self.doubt[keep]
        self._observations = list(itertools.compress(self._observations, keep.tolist()))

    def first_sight(self) -> Bools:
        """The observations of keys surely new (their hash is unknown, and not written
        earlier in the batch) that are the only observation of their key in the chunk."""
        new = ~(self.present | self.doubt)
        if new.any():
            repeated = repeated_hashes(self.hashes)
            if len(repeated):
                new &= ~np.isin(self.hashes, repeated)
        return new

    def stored(self, system: str) -> dict[tuple[str, str, str, str], Any]:
        """The stored current row, as the ledger's bulk statements return it, of each
        observation's key the watermark knows for sure (None: a new key) — the database
        need not be asked about those. Valid only while the marks are in step."""
        m = self._marks
        known: dict[tuple[str, str, str, str], Any] = {}
        for i in np.flatnonzero(~(self.present | self.doubt)).tolist():
            o = self._observations[i]
            known[(system, o.sku, o.location, o.state)] = None
        for i in np.flatnonzero(self.found & ~self.doubt).tolist():
            o = self._observations[i]
            at = int(self.at[i])
            observed = int(m.observed[at])
            if not m.absent[at]:
                observed = max(observed, m.confirmed)
            changed = int(m.changed[at])
            known[(system, o.sku, o.location, o.state)] = (
                system,
                o.sku,
                o.location,
                o.state,
                int(m.quantity[at]),
                _EPOCH + timedelta(microseconds=observed),
                None if changed == NO_TIME else _EPOCH + timedelta(microseconds=changed),
                m.sources[int(m.source[at])],
            )
        return known

    def unchanged(self) -> Bools:
        """The observations that bring nothing new: a known key, reported by the last
        complete read, same quantity and source, the same ``changed_at`` (or none), no
        older than the stored value, and the only observation of its key in the chunk."""
        m, obs, at = self._marks, self._observations, self.at
        n = len(obs)
        if not self.found.any():
            return np.zeros(n, np.bool_)
        quantity = _ints(map(attrgetter("quantity"), obs), n)
        changed = time_column(map(attrgetter("changed_at"), obs), n)
        ids = {name: i for i, name in enumerate(m.sources)}
        source = np.fromiter(
            map(ids.get, map(attrgetter("source"), obs), itertools.repeat(-1)), np.int32, n
        )
        repeated = repeated_hashes(self.hashes)
        stored_at = np.maximum(m.observed[at], m.confirmed)
        same: Bools = (
            self.found
            & ~self.doubt
            & ~m.absent[at]
            & (m.quantity[at] == quantity)
            & (m.source[at] == source)
            & ((changed == NO_TIME) | (m.changed[at] == changed))
            & (self.observed >= stored_at)
        )
        if len(repeated):
            same &= ~np.isin(self.hashes, repeated)
        return same


def unchanged_levels(
    marks: Marks,
    levels: I64,
    states: I64,
    quantity: I64,
    observed: I64,
    changed: I64,
    source: Sequence[str],
    alone: Bools,
) -> tuple[Bools, I64]:
    """Which of ``n`` levels bring nothing new in any of their ``k`` states, each state
    judged as :meth:`Probe.unchanged` judges an observation; and the positions in
    ``marks`` of those levels' keys. ``levels`` are the levels' hashes
    (``hash((sku, location))``), ``states`` the states' (``hash(state)``); ``quantity``
    is row by row (n × k); ``observed``, ``changed`` (microseconds, NO_TIME for none)
    and ``source`` are one per level; ``alone`` says which levels are the only one of
    their key in the read (no other is judged unchanged)."""
    n, k = len(levels), len(states)
    at, found = marks.find(combine(levels[:, None], states[None, :]).ravel())
    ids = {name: i for i, name in enumerate(marks.sources)}
    source_id = np.fromiter(map(ids.get, source, itertools.repeat(-1)), np.int32, n)
    changed = np.repeat(changed, k)
    same: Bools = (
        found
        & ~marks.absent[at]
        & (marks.quantity[at] == quantity)
        & (marks.source[at] == np.repeat(source_id, k))
        & ((changed == NO_TIME) | (marks.changed[at] == changed))
        & (np.repeat(observed, k) >= np.maximum(marks.observed[at], marks.confirmed))
    )
    whole: Bools = same.reshape(n, k).all(axis=1) & alone
    return whole, at.reshape(n, k)[whole].ravel()


def repeated_hashes(hashes: I64) -> I64:
    """The hashes found more than once in ``hashes`` (sorted, each repeated as often as it
    repeats, less one)."""
    ordered = np.sort(hashes)
    repeated: I64 = ordered[1:][ordered[1:] == ordered[:-1]]
    return repeated


def source_ids(ids: npt.NDArray[np.integer[Any]], count: int) -> npt.NDArray[np.uint8 | np.int32]:
    """``ids``, indices into a list of ``count`` sources, as :attr:`Marks.source` holds
    them: bytes while every index fits one, else int32."""
    dtype = np.uint8 if count <= 256 else np.int32
    return ids.astype(dtype, copy=False)


class _Column:
    """A numpy array filled in place, its capacity doubled as it grows: a batch's
    millions of rows are one large allocation, which the OS takes back when it is freed,
    not thousands of small ones left in the heap (the peak memory of a first read)."""

    __slots__ = ("data", "size", "widens")

    def __init__(self, dtype: type[np.generic], *, widens: bool = False) -> None:
        self.data: npt.NDArray[Any] = np.empty(0, dtype)
        self.size = 0
        self.widens = widens

    def extend(self, values: npt.NDArray[Any]) -> None:
        """Add ``values``; a column that ``widens`` takes a wider type of theirs first (the
        sources' column: bytes until a batch names a system's 257th source); the others
        cast them to their own (quantities to int32: the range the ledger stores)."""
        if self.widens and not np.can_cast(values.dtype, self.data.dtype):
            self.data = self.data.astype(np.result_type(self.data.dtype, values.dtype))
        end = self.size + len(values)
        if end > len(self.data):
            self._grow(max(end, 2 * len(self.data), 1024))
        self.data[self.size : end] = values
        self.size = end

    def reserve(self, more: int) -> None:
        """Make room for ``more`` values at once: a first read knows how many keys it
        writes, so its columns are allocated once, not copied each time they double."""
        if self.size + more > len(self.data):
            self._grow(self.size + more)

    def _grow(self, capacity: int) -> None:
        grown = np.empty(capacity, self.data.dtype)
        grown[: self.size] = self.data[: self.size]
        self.data = grown

    def take(self) -> npt.NDArray[Any]:
        """What was added, leaving the column empty."""
        data = self.data[: self.size]
        self.data, self.size = np.empty(0, self.data.dtype), 0
        return data


#: the columns of :class:`Marks` that current rows written set
_VALUES = ("quantity", "observed", "changed", "source")


@dataclass
class Changes:
    """What one batch did to one system's keys, applied to its :class:`Marks` only
    once the batch's transaction committed."""

    #: current rows written, in the order written: hashes, then :data:`_VALUES`
    written: dict[str, _Column] = field(
        default_factory=lambda: {
            "keys": _Column(np.int64),
            "quantity": _Column(np.int32),  # written rows' quantities: in range
            "observed": _Column(np.int64),
            "changed": _Column(np.int64),
            "source": _Column(np.uint8, widens=True),  # indices: see ``source_ids``
        }
    )
    #: positions of known keys the database refreshed (same value, later observed_at)
    refreshed_at: list[I64] = field(default_factory=list)
    refreshed_observed: list[I64] = field(default_factory=list)
    #: positions of known keys the complete read reported (None: not a complete read)
    seen: Bools | None = None
    #: the complete read's time (microseconds), when it was one
    confirmed: int | None = None
    #: the keys written so far (see :class:`Written`)
    keys_written: Written = field(init=False)
    #: hashes of the keys observations wrote (not a block's new levels)
    observed: list[I64] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys_written = Written(self.written["keys"])

    @property
    def rows_written(self) -> int:
        """Current rows noted by :meth:`write` and not applied yet."""
        return self.written["keys"].size

    def write(self, marks: Marks, rows: Sequence[tuple[Any, ...]]) -> None:
        """Note current rows ``(sku, location, state, quantity, observed_at,
        changed_at, source)`` written by the batch."""
        if not rows:
            return
        n = len(rows)
        ids = {name: marks.source_id(name) for name in set(map(itemgetter(6), rows))}
        w = self.written
        hashes = _hashes(rows, n)
        self.observed.append(hashes)
        w["keys"].extend(hashes)
        w["quantity"].extend(_ints(map(itemgetter(3), rows), n))
        w["observed"].extend(time_column(map(itemgetter(4), rows), n))
        w["changed"].extend(time_column(map(itemgetter(5), rows), n))
        source = np.fromiter(map(ids.__getitem__, map(itemgetter(6), rows)), np.int32, n)
        w["source"].extend(source_ids(source, len(marks.sources)))

    def write_new(
        self, marks: Marks, hashes: I64, observed: I64, new: Sequence[LevelObservation]
    ) -> None:
        """Note the current rows written for ``new``, observations of new keys whose
        hashes and observed times (microseconds) a :class:`Probe` has already computed:
        each row is the observation's, its ``changed_at`` the system's or else the
        observation's time."""
        if not new:
            return
        n = len(new)
        ids = {name: marks.source_id(name) for name in set(map(_SOURCE, new))}
        changed = time_column(map(_CHANGED, new), n)
        w = self.written
        self.observed.append(hashes)
        w["keys"].extend(hashes)
        w["quantity"].extend(_ints(map(_QUANTITY, new), n))
        w["observed"].extend(observed)
        w["changed"].extend(np.where(changed == NO_TIME, observed, changed))
        source = np.fromiter(map(ids.__getitem__, map(_SOURCE, new)), np.int32, n)
        w["source"].extend(source_ids(source, len(marks.sources)))

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` more current rows (:meth:`_Column.reserve`)."""
        for column in self.written.values():
            column.reserve(rows)

    def write_levels(
        self,
        marks: Marks,
        hashes: I64,
        quantity: I64,
        observed: I64,
        changed: I64,
        sources: Sequence[str],
    ) -> None:
        """Note the current rows written for new levels as columns: ``hashes`` and
        ``quantity`` one per key (level by level, state by state), the rest one per level
        (``changed``: NO_TIME where the system gave none, the observed time is taken)."""
        if not len(hashes):
            return
        k = len(hashes) // len(observed)
        ids = {name: marks.source_id(name) for name in set(sources)}
        source = source_ids(
            np.fromiter(map(ids.__getitem__, sources), np.int32, len(sources)), len(marks.sources)
        )
        w = self.written
        w["keys"].extend(hashes)
        w["quantity"].extend(quantity)
        w["observed"].extend(np.repeat(observed, k))
        w["changed"].extend(np.repeat(np.where(changed == NO_TIME, observed, changed), k))
        w["source"].extend(np.repeat(source, k))

    def suspects(self, marks: Marks) -> I64:
        """The hashes of the keys observations wrote or refreshed (``marks`` not changed
        yet): what a block's level noted as read may no longer hold (``ledger.recall``)."""
        refreshed = [marks.keys[at] for at in self.refreshed_at]
        return np.concatenate([*self.observed, *refreshed, np.empty(0, np.int64)])

    def apply(self, marks: Marks, version: int) -> Marks:
        """``marks`` with these changes (changed in place); ``version`` is the one the
        batch wrote."""
        if self.seen is not None and self.confirmed is not None:
            vanished = ~self.seen & ~marks.absent
            if vanished.any():
                marks.observed[vanished] = np.maximum(marks.observed[vanished], marks.confirmed)
                marks.absent[vanished] = True  # only complete reads: their notes start anew
            marks.confirmed = max(marks.confirmed, self.confirmed)
        for at, observed in zip(self.refreshed_at, self.refreshed_observed, strict=True):
            marks.observed[at] = np.maximum(marks.observed[at], observed)
            marks.absent[at] = False
            marks.touch(at)
        marks.version = version
        written = self.written["keys"].take()
        if not len(written):
            return marks
        # The last row written of each key wins: sorted, a key's rows are a run, and the
        # run's latest row is taken. ``hashes`` comes out sorted, unique. Not a stable
        # sort (2.6x the CPU on a first read's millions of random hashes): a run, rare,
        # takes its largest row number instead.
        order: npt.NDArray[np.integer[Any]] = np.argsort(written)
        if len(order) < 2**31:
            # half the size while each column is put in key order next to it (numpy
            # indexes by int32 without a copy of the index): 16 MB off a first read's peak
            order = order.astype(np.int32)
        # sorted in place: the values written[order] holds, without a second copy of
        # millions of keys at the peak of a first read (``take`` hands over its buffer)
        written.sort()
        hashes = written
        del written
        last = np.ones(len(hashes), np.bool_)
        np.not_equal(hashes[1:], hashes[:-1], out=last[:-1])
        each_once = bool(last.all())
        if each_once:  # no key written twice (a full read): the sort is the pick
            pick = order
        else:  # each run's latest row: the largest row number among its rows
            starts = np.flatnonzero(np.concatenate(([True], last[:-1])))
            pick, hashes = np.maximum.reduceat(order, starts), hashes[last]
            del starts
        del order, last
        if not len(marks.keys):
            # the system's first read: every key is new, and the rows taken are already
            # in key order, so they are the columns (no merge, no copies)
            marks.keys = hashes
            for name in _VALUES:
                setattr(marks, name, self.written[name].take()[pick])
            marks.source = source_ids(marks.source, len(marks.sources))
            marks.absent = np.zeros(len(hashes), np.bool_)
            marks.usable = np.ones(len(hashes), np.bool_)  # unique: no collisions
            marks.layout, marks.dirty, marks.moved = marks.layout + 1, None, None
            if each_once and len(pick) < 2**31:
                # every row its own key: row i went to the place the sort gave it (the
                # read's notes take their keys' places from here, not by a search)
                marks.rows_at = np.empty(len(pick), np.int32)
                marks.rows_at[pick] = np.arange(len(pick), dtype=np.int32)
            return marks
        at, found = marks.find(hashes, ordered=True)
        hit = at[found]
        # a key whose hash is there (even an unusable, colliding one) is not new
        new = marks.keys[at] != hashes
        del at
        added = int(new.sum())
        # new keys go in at their sorted places: one merge, no sort of the whole
        place = np.searchsorted(marks.keys, hashes[new]) if added else None
        if place is not None:
            marks.keys = np.insert(marks.keys, place, hashes[new])
            marks.layout, marks.dirty, marks.moved = marks.layout + 1, None, place
        del hashes
        # a source this batch named first may not fit the column's bytes any more
        marks.source = source_ids(marks.source, len(marks.sources))
        # one column at a time, each freed before the next: a read can be millions
        for name in _VALUES:
            values = self.written[name].take()[pick]
            column = getattr(marks, name)
            column[hit] = values[found]
            if place is not None:
                setattr(marks, name, np.insert(column, place, values[new]))
            del values, column
        marks.absent[hit] = False
        marks.touch(hit)
        if place is not None:
            marks.absent = np.insert(marks.absent, place, False)
            marks.usable = np.insert(marks.usable, place, True)
            marks._mark_collisions()
        return marks
