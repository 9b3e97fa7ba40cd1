"""What the last full diff found quiet, so the next one judges only what changed.

A full diff of 100,000 SKUs × 5 locations in three systems puts 1.5 million levels in a
grid and judges 500,000 cells: about a second of CPU (BENCHMARKS.md, issue 16), though
from one read to the next few levels change (B1 changes 0.1 %). A :class:`DiffMemo`
holds, for the last full diff, each level's system, SKU, location, quantities and flags
(the objects themselves, position by position: a read comes in the same order every
time, and a connector's memo hands an unchanged level's objects back), its cell's hash,
and the cells the fast path did not pass as quiet or where a system reported more than
one level (whose references say whether they are one item). The next diff under the
same rules puts in its grid only the cells that must be judged again:

* a cell of a level whose system, SKU, location, quantities or flags are not equal to
  the ones held at its position (the cell it is in now, and the cell the level there
  was in);
* every cell judged the general way last time (a drift, a missing level, a duplicate:
  what such a cell says depends on ``now`` and on its levels' times), and every cell
  where a system reported more than one level;

and takes every other cell as quiet again, which it is: its levels hold what was held
(the same objects, compared by identity first, or equal ones; what is held cannot change:
strings, TupleMaps, flags no connector changes once built), the rules are equal, the
read is as long, and every level of the read is fresh (the read's oldest level
against the strictest SLA; otherwise the whole grid is judged). The rest is
:func:`monitors.drift.diff` itself, on those cells.

Judged whole, as before: quantities that are not TupleMaps (a dict could change in
place), a system or source that cannot be hashed (its column holds codes), rules with
bundles or stores with an order of their own (cells that read other cells), and
targeted diffs. Rules are compared with ``==``: their callables (thresholds,
safety stock) by identity, so they must not change what they say while the rules object
lives (they come from the configuration, read once).

The same comparison tells the ledger what it would otherwise hash every level's content
to learn: the memo also holds each level's ``changed_at`` and source, so its
:attr:`DiffMemo.same` says which levels are equal in everything the ledger records of
them (but the time) to the level at their position in the read it held, and
:attr:`DiffMemo.since` names that read's record (:class:`ledger.Place`); the ledger takes
the word only for the read it recorded as named.

Kept: five references, two 2-byte codes and a hash a level (about 70 MB at B1's size,
made after the read is recorded: :meth:`DiffMemo.settle`), and the judged cells' hashes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, eq, itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from connectors.levels import Level
from monitors.drift import DiffRules, Drift, _diff, _Freshness, diff

I32 = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]

_SYSTEM, _SKU, _LOCATION = attrgetter("system"), attrgetter("sku"), attrgetter("location")
_QUANTITIES, _FLAGS = attrgetter("quantities"), attrgetter("flags")
_OBSERVED, _CHANGED, _SOURCE = (
    attrgetter("observed_at"),
    attrgetter("changed_at"),
    attrgetter("source"),
)
#: a level's fields a quiet verdict rests on, and the rest of what the ledger records of
#: it (:class:`ledger.Place`), in the order ``_Last`` holds them
_FIELDS = ("system", "sku", "location", "quantities", "flags", "changed_at", "source")
_HELD = itemgetter(*(Level._fields.index(f) for f in _FIELDS))


class _Coded:
    """A column of few distinct values (systems, sources) held as a code a level into a
    table of them: 2 bytes a level where a list holds an 8-byte reference (21 MB less for
    two columns at B1's size, made when a first read settles, at that run's peak of
    memory). Read as the list it stands for; values compare by equality, as the memo's
    do."""

    __slots__ = ("_index", "_limit", "codes", "table")

    def __init__(self, levels: Sequence[Level], field: Callable[[Level], Any]) -> None:
        # the distinct values, then each level's code: two passes at C speed, no list
        self._index: dict[object, int] = dict.fromkeys(map(field, levels), 0)
        self.table: list[object] = list(self._index)
        self._index.update(zip(self.table, range(len(self.table)), strict=True))
        wide = len(self.table) > _U16
        self._limit = _U32 if wide else _U16
        codes = map(self._index.__getitem__, map(field, levels))
        self.codes = np.fromiter(codes, np.uint32 if wide else np.uint16, len(levels))

    def __len__(self) -> int:
        return len(self.codes)

    def __iter__(self) -> Iterator[object]:
        table, codes = self.table, self.codes
        # a slice of codes at a time: no list of the whole column
        return itertools.chain.from_iterable(
            map(table.__getitem__, codes[start : start + _SLICE].tolist())
            for start in range(0, len(codes), _SLICE)
        )

    def __getitem__(self, i: int) -> object:
        return self.table[self.codes[i]]

    def __setitem__(self, i: int, value: object) -> None:
        code = self._index.get(value)
        if code is None:
            code = self._index[value] = len(self.table)
            self.table.append(value)
            if code > self._limit:  # a 65,536th value: 4 bytes a code from now on
                self.codes, self._limit = self.codes.astype(np.uint32), _U32
        self.codes[i] = code


_U16, _U32 = 2**16 - 1, 2**32 - 1


def _coded(levels: Sequence[Level], field: Callable[[Level], Any]) -> _Coded | list[Any]:
    """Each level's ``field`` as a :class:`_Coded` column where the values can be (they
    are hashable), else as a list."""
    try:
        return _Coded(levels, field)
    except TypeError:  # an unhashable value
        return list(map(field, levels))


@dataclass
class _Last:
    rules: DiffRules
    #: per level, by position: what a quiet verdict rests on (objects that do not change)
    systems: _Coded | list[Any]
    skus: list[str]
    locations: list[str]
    quantities: list[object]
    flags: list[object]
    changed: list[object]
    sources: _Coded | list[Any]
    #: per level: its cell's hash((sku, location)), cut to 32 bits (``_cell_hashes``)
    cells: I32
    #: the cells the fast path did not pass as quiet, and those where a system reported
    #: more than one level: judged again every time
    judged: I32


class DiffMemo:
    """The last full diff of one set of systems (see the module docstring). One per
    job that diffs every level (``monitors.jobs``); :meth:`diff` is
    :func:`monitors.drift.diff`, the same drifts in the same order."""

    def __init__(self) -> None:
        self._last: _Last | None = None
        #: whether the last diff judged every cell (False: only what changed)
        self.whole = True
        #: a whole diff's read, held once it is recorded (:meth:`settle`)
        self._pending: tuple[DiffRules, Sequence[Level], I32] | None = None
        #: the record of the read held (:attr:`ledger.RecordResult.read`; None: unknown)
        self._read: object = None
        #: the last diff's read compared with the one held before it: per level, whether
        #: it is equal to the level at its position there (None: not compared), and that
        #: read's record (what :func:`monitors.reconcile.level_blocks` tells the ledger)
        self.same: Bools | None = None
        self.since: object = None

    def settle(self, read: object = None) -> None:
        """Hold what the last diff judged whole. Called once its read is recorded (the
        record's :attr:`ledger.RecordResult.read`; None: not recorded), so the
        references are not made at the peak of a first read's record; until then (or if
        the record failed) the next diff judges whole."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._hold(*pending)
        self._read = read if self._last is not None else None

    def _hold(self, rules: DiffRules, levels: Sequence[Level], judged: I32) -> None:
        skus, locations = list(map(_SKU, levels)), list(map(_LOCATION, levels))
        self._last = _Last(
            rules,
            _coded(levels, _SYSTEM),
            skus,
            locations,
            list(map(_QUANTITIES, levels)),
            list(map(_FLAGS, levels)),
            list(map(_CHANGED, levels)),
            _coded(levels, _SOURCE),
            _cell_hashes(skus, locations),
            judged,
        )

    def diff(
        self, levels: Sequence[Level], rules: DiffRules, *, now: datetime | None = None
    ) -> list[Drift]:
        """Every drift among ``levels`` (a full read) at ``now``, as
        :func:`monitors.drift.diff` finds them."""
        last, self._last, self._pending = self._last, None, None
        self.since, self._read, self.same = self._read, None, None
        self.whole = True
        if rules.bundles or rules.orders or not levels:
            return diff(levels, rules, now=now)
        times = set(map(_OBSERVED, levels))  # a read's levels share a few times
        if now is None:
            now = max(times)
        judged: list[tuple[str, str]] = []
        if (
            last is not None
            and last.rules == rules
            and len(last.skus) == len(levels)
            and _all_fresh(min(times), rules, now)
        ):
            drifts, kept, self.whole, self.same = _again(levels, rules, now, last, judged)
            if kept:
                last.judged = _judged_hashes(judged)
                self._last = last
            return drifts
        drifts = _diff(levels, rules, now, fast=True, judged=judged)
        if all(issubclass(kind, tuple) for kind in set(map(type, map(_QUANTITIES, levels)))):
            # quantities that cannot change in place (TupleMaps): held once recorded
            self._pending = (rules, levels, _judged_hashes(judged))
        return drifts


def _again(
    levels: Sequence[Level],
    rules: DiffRules,
    now: datetime,
    last: _Last,
    judged: list[tuple[str, str]],
) -> tuple[list[Drift], bool, bool, Bools]:
    """The drifts of the cells to judge again (see the module docstring); whether
    ``last`` can be kept (it is made this read's: its columns and cells changed where the
    read's levels did), which it cannot if a changed level's quantities could change in
    place, or a changed level holds a value a coded column cannot hold (unhashable: the
    read is then judged whole); whether every cell was judged after all (most changed);
    and which levels are equal to the one held at their position. The read is as long
    as last time's."""
    n = len(levels)
    held: tuple[tuple[Any, Callable[[Level], Any]], ...] = (
        (last.systems, _SYSTEM),
        (last.skus, _SKU),
        (last.locations, _LOCATION),
        (last.quantities, _QUANTITIES),
        (last.flags, _FLAGS),
        (last.changed, _CHANGED),
        (last.sources, _SOURCE),
    )
    # One pass: each level's seven fields, as a tuple, against the seven held at its
    # position. Tuples compare element by element, each by identity first, so a level
    # a connector's memo handed back costs no comparison of values; one rebuilt equal
    # (strings and TupleMaps cannot change) is as quiet. A pass a field costs twice as
    # much: each reaches every level in memory again (issue 16).
    columns = zip(*(column for column, _ in held), strict=True)
    same = np.fromiter(map(eq, map(_HELD, levels), columns), np.bool_, n)
    moved = np.flatnonzero(~same)
    rows = moved.tolist()
    before = last.cells[moved]
    try:
        for column, field in held:  # this read's, held from now on
            for i in rows:
                column[i] = field(levels[i])
    except TypeError:  # an unhashable value where a coded column holds codes: not kept
        return _diff(levels, rules, now, fast=True, judged=judged), False, True, same
    kept = all(isinstance(last.quantities[i], tuple) for i in rows)
    last.cells[moved] = _cell_hashes(
        [last.skus[i] for i in rows], [last.locations[i] for i in rows]
    )
    if len(moved) > n // 2:  # mostly changed: the whole grid
        return _diff(levels, rules, now, fast=True, judged=judged), kept, True, same
    if not len(moved) and not len(last.judged):
        return [], kept, False, same  # every cell quiet again
    # the cells changed levels are in now, the cells they were in, and the judged ones
    cells = last.cells
    wanted = np.unique(np.concatenate([cells[moved], before, last.judged]))
    at = np.searchsorted(wanted, cells)
    np.minimum(at, len(wanted) - 1, out=at)
    chosen = np.flatnonzero(wanted[at] == cells)
    picked = [levels[i] for i in chosen.tolist()]
    return _diff(picked, rules, now, fast=True, judged=judged), kept, False, same


#: levels hashed at a time (``_cell_hashes``)
_SLICE = 65_536


def _cell_hashes(skus: Sequence[str], locations: Sequence[str]) -> I32:
    """Each cell's hash, cut to 32 bits (6 MB less at 1.5 million levels): two cells with
    one hash are only judged together, a cell is never left out."""
    n = len(skus)
    out = np.empty(n, np.int32)
    for start in range(0, n, _SLICE):  # in slices: no 64-bit copy of the whole
        end = min(start + _SLICE, n)
        cells = zip(skus[start:end], locations[start:end], strict=True)
        out[start:end] = np.fromiter(map(hash, cells), np.int64, end - start)
    return out


def _judged_hashes(judged: list[tuple[str, str]]) -> I32:
    return np.unique(np.fromiter(map(hash, judged), np.int64, len(judged)).astype(np.int32))


def _all_fresh(oldest: datetime, rules: DiffRules, now: datetime) -> bool:
    """Whether every level (the oldest observed at ``oldest``) is fresh for every
    system's SLA at ``now``, so for its own: the strictest cutoff."""
    cutoffs = []
    for spec in rules.systems.values():
        freshness = _Freshness(spec, now)
        if freshness.never:
            continue
        if freshness.fresh_from is None:
            return False
        cutoffs.append(freshness.fresh_from)
    return not cutoffs or oldest >= max(cutoffs)
