"""One drift diff: read every system, record what changed, compute the drifts.

Systems are read concurrently; one that fails is reported in ``failures`` and the diff
goes on with the others (its SKUs are then compared without it, so they are not
reported as missing from it — a broken connector is a health problem, not a drift).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar, overload

from connectors.base import InventorySystem
from connectors.errors import ConnectorError
from connectors.levels import Level, grouped_by_keys
from ledger import Ledger, LevelBlock, LevelObservation, Place, RecordResult
from ledger.memory import release_free_heap
from monitors.collector import cyclic_gc_paused
from monitors.diffmemo import DiffMemo
from monitors.drift import (
    DUPLICATE_SKU,
    MISSING,
    DiffRules,
    Drift,
    Threshold,
    compared_value,
    diff,
)

#: drift classes whose size is a count gap against an expected count
_COUNTED = frozenset({"negative", "missing", "oversell_risk", "undersell", "count_mismatch"})


@dataclass
class DiffRun:
    """What one diff saw and found."""

    levels: list[Level]
    drifts: list[Drift]
    failures: dict[str, str] = field(default_factory=dict)
    recorded: RecordResult | None = None


async def read_all(
    systems: Sequence[InventorySystem], skus: Sequence[str] | None = None
) -> tuple[list[Level], dict[str, str]]:
    """Every system's levels, each system's in SKU order; failures by system name
    instead of an exception.

    Systems list levels in their own order: Shopify's bulk file in the order products
    were created, an ERP's export as its report runs. Taken in SKU order (a stable
    sort: a SKU's levels keep the system's order), a first read goes into the ledger in
    the order of its key, where SQLite appends to its tree instead of splitting pages
    all over it (100,000 SKUs with Shopify's in product order: SQLite's first record
    13.2 s out of order, 10.6 s sorted); and a read compares with the last one position
    by position (:class:`monitors.diffmemo.DiffMemo`) whatever order the system paged
    in. The sort costs about 0.1 s for Shopify's 500,000 levels out of order, 0.025 s for
    a read already in SKU order (BENCHMARKS.md, issue 16)."""
    results = await asyncio.gather(*(s.read_levels(skus) for s in systems), return_exceptions=True)
    levels: list[Level] = []
    failures: dict[str, str] = {}
    for system, result in zip(systems, results, strict=True):
        if isinstance(result, ConnectorError):
            failures[system.name] = str(result)
        elif isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            failures[system.name] = f"{type(result).__name__}: {result}"
        else:
            result.sort(key=_SKU)
            levels.extend(result)
    if skus is None:
        # A full read leaves the heap with the free space of everything it decoded and
        # let go (80 MB at 100,000 SKUs × 5 locations, after the WMS's read alone): handed
        # back to the OS (3 ms), the diff and record that follow peak from the levels
        # alone (BENCHMARKS.md, issue 16).
        release_free_heap()
    return levels, failures


def observations(levels: Iterable[Level]) -> Iterable[LevelObservation]:
    """One ledger observation per level and state."""
    # tuple.__new__ skips the named tuple's Python-level __new__: a full read makes
    # millions of observations (fields in LevelObservation's order)
    new, cls = tuple.__new__, LevelObservation
    for level in levels:
        system, sku, location = level.system, level.sku, level.location
        observed_at, source, changed = level.observed_at, level.source, level.changed_at
        for state, quantity in level.quantities.items():
            yield new(cls, (system, sku, location, state, quantity, observed_at, source, changed))


T = TypeVar("T")
_SYSTEM, _QUANTITIES = attrgetter("system"), attrgetter("quantities")
_SKU, _LOCATION, _SOURCE = attrgetter("sku"), attrgetter("location"), attrgetter("source")
_OBSERVED, _CHANGED = attrgetter("observed_at"), attrgetter("changed_at")


def level_blocks(levels: Iterable[Level], memo: DiffMemo | None = None) -> list[LevelBlock]:
    """``levels`` as the ledger's columns: one block per system and set of states
    reported (usually one per system). What :meth:`ledger.Ledger.record_levels` takes
    instead of :func:`observations` for a full read: it makes observations only of the
    levels its watermark cannot vouch for.

    The columns are views of the levels, not copies (a full read is millions of levels
    already in memory): each is read at C speed, as often as the ledger reads it.

    A block that is a whole run of a system's levels says where it sits in ``levels``
    (:class:`ledger.Place`), and, given the ``memo`` that has just diffed ``levels``,
    which of its levels the memo found equal to the one at their position in the read it
    held before, and that read's record: the ledger then hashes only the others' content
    (BENCHMARKS.md, issue 16)."""
    same = memo.same if memo is not None else None
    since = memo.since if memo is not None and same is not None else None
    blocks: list[LevelBlock] = []
    start = 0
    for system, run in itertools.groupby(levels, _SYSTEM):  # a read comes in runs
        held = list(run)
        at, start = start, start + len(held)
        for states, rows, values_of in grouped_by_keys(list(map(_QUANTITIES, held))):
            whole = len(rows) == len(held)
            chosen = held if whole else [held[i] for i in rows]
            place = None
            if whole:
                positions = range(at, at + len(held))
                alike = (
                    same[at : at + len(held)] if same is not None and since is not None else None
                )
                place = Place(positions, since if alike is not None else None, alike)
            blocks.append(
                LevelBlock(
                    system=system,
                    states=states,
                    skus=_Column(chosen, _SKU),
                    locations=_Column(chosen, _LOCATION),
                    quantities=_Values(chosen, len(states), values_of),
                    observed_at=_Column(chosen, _OBSERVED),
                    changed_at=_Column(chosen, _CHANGED),
                    sources=_Column(chosen, _SOURCE),
                    place=place,
                )
            )
    return blocks


class _Column(Sequence[T]):
    """One field of each of a list of levels, read through: a column that costs no memory."""

    __slots__ = ("_get", "_levels")

    def __init__(self, levels: list[Level], get: Callable[[Level], T]) -> None:
        self._levels, self._get = levels, get

    def __len__(self) -> int:
        return len(self._levels)

    def __iter__(self) -> Iterator[T]:
        return map(self._get, self._levels)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return list(map(self._get, self._levels[index]))
        return self._get(self._levels[index])


class _Values(Sequence[int]):
    """The quantities of a list of levels that report the same ``k`` states, level by
    level, read through (see :class:`ledger.LevelBlock`)."""

    __slots__ = ("_k", "_levels", "_values_of")

    def __init__(
        self, levels: list[Level], k: int, values_of: Callable[[Mapping[str, int]], Iterator[int]]
    ) -> None:
        self._levels, self._k, self._values_of = levels, k, values_of

    def __len__(self) -> int:
        return len(self._levels) * self._k

    def __iter__(self) -> Iterator[int]:
        return itertools.chain.from_iterable(map(self._values_of, map(_QUANTITIES, self._levels)))

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        k = self._k
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1 or start >= stop:
                return list(self)[index]
            first = start // k  # the levels the slice covers, read alone
            held = self._levels[first : -(-stop // k)]
            values = list(
                itertools.chain.from_iterable(map(self._values_of, map(_QUANTITIES, held)))
            )
            return values[start - first * k : stop - first * k]
        level, state = divmod(index if index >= 0 else len(self) + index, k)
        if not 0 <= level < len(self._levels):
            raise IndexError(index)
        return list(self._values_of(self._levels[level].quantities))[state]


def with_bundles(skus: Iterable[str], rules: DiffRules) -> list[str]:
    """``skus`` plus what judging them needs: a bundle's components, and the bundles a
    component belongs to (with their other components). A targeted diff of a bundle
    alone would judge it against no components; of a component alone, its bundles
    would look missing."""
    wanted = dict.fromkeys(skus)
    for bundle, components in rules.bundles.items():
        if bundle in wanted or any(c in wanted for c in components):
            wanted.setdefault(bundle)
            for component in components:
                wanted.setdefault(component)
    return list(wanted)


async def run_diff(
    systems: Sequence[InventorySystem],
    rules: DiffRules,
    ledger: Ledger | None,
    *,
    skus: Sequence[str] | None = None,
    now: datetime | None = None,
    memo: DiffMemo | None = None,
) -> DiffRun:
    """Read, record (when given a ledger) and diff at ``now`` (default: the latest
    observation read, i.e. the time of the read), with the cyclic garbage collector
    paused (``monitors.collector``; a full diff's pause freezes what it leaves alive).
    ``memo``: the last full diff of these systems, so a full diff judges only what
    changed (a targeted diff neither uses nor changes it)."""
    with cyclic_gc_paused(freeze=skus is None):  # a full diff's levels are kept: freeze
        return await _run_diff(systems, rules, ledger, skus, now, memo)


async def _run_diff(
    systems: Sequence[InventorySystem],
    rules: DiffRules,
    ledger: Ledger | None,
    skus: Sequence[str] | None,
    now: datetime | None,
    memo: DiffMemo | None = None,
) -> DiffRun:
    if skus is not None:
        skus = with_bundles(skus, rules)
    levels, failures = await read_all(systems, skus)
    healthy = {s.name for s in systems} - set(failures)
    compared = replace(
        rules,
        systems={n: r for n, r in rules.systems.items() if n in healthy},
        source_of_truth=tuple(s for s in rules.source_of_truth if s in healthy),
    )
    if memo is not None and skus is None:
        drifts = memo.diff(levels, compared, now=now)
    else:
        drifts = diff(levels, compared, now=now)
    ambiguous = {(d.system, d.sku, d.location) for d in drifts if d.kind == DUPLICATE_SKU}
    recorded = None
    if ledger is not None:
        # A SKU×location a system reported for several items has no one value: recorded,
        # it would alternate between the items' values on every read (history rows, and
        # changes no webhook announced). Its duplicate_sku drift lists each item instead.
        kept = (
            [lv for lv in levels if (lv.system, lv.sku, lv.location) not in ambiguous]
            if ambiguous
            else levels
        )
        # A full read of a healthy system holds its every level: the ledger then writes
        # only what changed (its read watermark), and marks what the read no longer has.
        complete = (
            () if skus is not None else sorted(healthy - {system for system, _, _ in ambiguous})
        )
        # the memo's comparison of this read with the last one is about ``levels``: a
        # read with levels left out is recorded without it, and the memo then knows of
        # no record of the read it holds
        blocks = level_blocks(kept, memo if kept is levels else None)
        recorded = await ledger.record_levels(blocks=blocks, complete=complete)
    if memo is not None and skus is None:
        # once recorded: not at the record's peak of memory
        memo.settle(recorded.read if recorded is not None and not ambiguous else None)
    if rules.listed:
        drifts = await _within_range(drifts, rules.listed, ledger)
    return DiffRun(levels=levels, drifts=drifts, failures=failures, recorded=recorded)


async def _within_range(
    drifts: list[Drift], listed: frozenset[str], ledger: Ledger | None
) -> list[Drift]:
    """``drifts`` without the ``missing`` ones of a system that carries only what it has
    listed, at a SKU × location it never listed (it does not carry that SKU there). A
    listing it did carry and that disappeared is still missing: the ledger keeps the
    last level read of it. Without a ledger nothing is known to be listed."""
    doubtful = {
        (d.missing_from, d.sku, d.location)
        for d in drifts
        if d.kind == MISSING and d.missing_from in listed
    }
    if not doubtful:
        return drifts
    keys = {(system, sku, location) for system, sku, location in doubtful if system}
    known = await ledger.ever_listed(keys) if ledger is not None else frozenset()
    return [
        d
        for d in drifts
        if not (
            d.kind == MISSING
            and d.missing_from in listed
            and (d.missing_from, d.sku, d.location) not in known
        )
    ]


def _exact(sku: str) -> Threshold:
    return Threshold()


def cell_snapshot(
    levels: Iterable[Level], rules: DiffRules, sku: str, location: str
) -> dict[str, Any] | None:
    """What every system said about ``sku`` at ``location`` in one read (``levels``), and
    what each was expected to say: the final counts an alert shows when its drift ends,
    whether or not anything still drifts there (None: no system reported the SKU there).

    ``values``: system → its compared value (None: not reported); ``expected`` and
    ``gaps``: system → the source of truth's expectation and the difference, judged by
    the drift engine with no threshold (a gap within the threshold shows as such);
    ``truth_system``; ``observed_at``: the latest observation among them."""
    wanted = set(with_bundles([sku], rules))
    here = [lv for lv in levels if lv.location == location and lv.sku in wanted]
    cell = [lv for lv in here if lv.sku == sku and lv.system in rules.systems]
    if not cell:
        return None
    by_system = {lv.system: lv for lv in cell}
    values: dict[str, int | None] = {
        name: compared_value(by_system[name], spec) if name in by_system else None
        for name, spec in rules.systems.items()
    }
    truth = next((s for s in rules.source_of_truth if values.get(s) is not None), None)
    expected: dict[str, int | None] = {}
    gaps: dict[str, int] = {}
    for d in diff(here, replace(rules, threshold=_exact, large=None)):
        if d.sku != sku or d.kind not in _COUNTED or d.expected is None:
            continue
        if d.system not in gaps:
            expected[d.system], gaps[d.system] = d.expected, d.gap
            truth = d.truth_system or truth
    for name, value in values.items():
        if name not in expected and name != truth and value is not None:
            expected[name], gaps[name] = value, 0
    return {
        "values": values,
        "truth_system": truth,
        "expected": expected,
        "gaps": gaps,
        "observed_at": max(lv.observed_at for lv in cell).isoformat(),
    }
