"""The drift engine: pure functions from levels to drifts. No I/O, no clock reads: the
time of the diff comes in as ``now``.

A drift is a difference between systems for one SKU at one location, net of known
transformations. Per SKU × location:

* **Stale first.** A level observed more than its system's ``sla_seconds`` before
  ``now`` is reported as ``stale`` and nothing else: its values neither produce other
  drifts nor serve as the truth (it did report the SKU, so it is not ``missing`` either).
* **The truth** is the first system in ``source_of_truth`` order with a fresh level
  that reports one of its ``compare_states`` (the fallback: the WMS for what it carries,
  then the next system for the rest).
* **Expected values.** Each system compares the sum of its ``compare_states`` (Shopify's
  available + committed against the WMS's pickable + allocated). A storefront is
  expected to show the truth minus its safety stock (floor 0). Pack sizes were applied by
  the connectors (all quantities are units); a gap that looks like a pack size applied
  once too often or not at all is named in ``evidence``.
* **Bundles.** A storefront's bundle is expected to show
  ``min over components of floor(component ÷ quantity)``, each component taken as the
  storefront should show it (the component's truth at that location minus the
  component's safety stock; a component no truth system reports there counts 0). When
  the storefront's bundle value is what its own component values imply, the gap comes
  from the components and is reported there, not again at the bundle. Other systems
  compare the bundle SKU with its own truth, if a truth system stocks it.

Classes and their exact rules (``e`` the expected value, ``v`` the system's value):

=====================  ================================================================
``stale``              ``now − observed_at > sla_seconds`` for this level (replaces all
                       other classes for this system at this SKU × location)
``untracked``          a storefront level with flag ``tracked`` False, where the truth (or
                       the bundle's components) stocks the SKU; replaces the count classes
                       (an untracked count is meaningless)
``negative``           ``v < 0`` (any system, the truth included)
``missing``            ``missing_side == "system"``: the truth has the SKU (``e > 0``)
                       and a system covering the location reports no level for it.
                       ``missing_side == "truth"``: a source-of-truth system ranked
                       above the truth in use has no level while the fallback truth has
                       ``e > 0``; or no source-of-truth system has a level and another
                       system shows ``v > 0`` (``system`` is that system, ``expected``
                       None). ``missing_from`` names the system without the SKU
``oversell_risk``      storefront, ``v − e`` positive and beyond the threshold
``undersell``          storefront, ``v − e`` negative and beyond the threshold
``count_mismatch``     any other role, ``v − e`` beyond the threshold
``oversell_policy``    storefront with ``inventory_policy`` CONTINUE (sells when out of
                       stock) and low stock: ``e ≤ low_stock(sku, location)`` (default 0,
                       i.e. the truth is at or below the safety stock)
``duplicate_sku``      the system reported more than one item for the SKU here (Shopify
                       does not enforce unique SKUs; two spellings may normalize to one
                       SKU). Items are told apart by ``refs["inventory_item_id"]``, else
                       the system's own spelling ``refs["sku"]``: the same item seen
                       twice is one item. ``items`` lists every one with its value; none
                       is picked, so the system's value here is unknown: it is neither
                       compared nor used as the truth, and nothing else is reported for
                       it here
=====================  ================================================================

Thresholds: a gap is a drift when it exceeds the SKU's threshold in units AND percent
of ``e`` (see :class:`Threshold`). A drift is ``large`` when its gap also exceeds the
``large`` threshold; the persistence step (``monitors.persistence``) confirms those at
once. ``since`` is when the compared values last changed (the latest ``changed_at``, or
``observed_at`` where a system does not say), so ``age = now − since`` is how long they
have disagreed, at least.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from connectors.levels import Level, keyed_positions, keyed_value
from monitors.collector import cyclic_gc_paused

ROLE_STOREFRONT = "storefront"

STALE = "stale"
UNTRACKED = "untracked"
NEGATIVE = "negative"
MISSING = "missing"
OVERSELL_RISK = "oversell_risk"
UNDERSELL = "undersell"
COUNT_MISMATCH = "count_mismatch"
OVERSELL_POLICY = "oversell_policy"
DUPLICATE_SKU = "duplicate_sku"
#: Every class the engine reports.
KINDS: tuple[str, ...] = (
    STALE,
    UNTRACKED,
    NEGATIVE,
    MISSING,
    OVERSELL_RISK,
    UNDERSELL,
    COUNT_MISMATCH,
    OVERSELL_POLICY,
    DUPLICATE_SKU,
)
#: The classes whose size is a count gap (the others are states: stale, untracked, policy).
_SIZED = frozenset({NEGATIVE, MISSING, OVERSELL_RISK, UNDERSELL, COUNT_MISMATCH})
#: ``Drift.missing_side``: the SKU is in the truth but not in the system, or the reverse.
MISSING_IN_SYSTEM = "system"
MISSING_IN_TRUTH = "truth"


@dataclass(frozen=True)
class SystemRules:
    """How one system is compared. ``sla_seconds``: an observation older than this at
    the time of the diff is stale (None: never)."""

    name: str
    role: str
    compare_states: tuple[str, ...]
    sla_seconds: float | None = None


@dataclass(frozen=True)
class Threshold:
    """A gap is a drift when it exceeds ``absolute`` units AND ``percent`` % of the
    expected count (any gap exceeds the percentage of an expected 0)."""

    absolute: int = 0
    percent: float = 0.0

    def __post_init__(self) -> None:
        if self.absolute < 0:
            raise ValueError(f"a threshold's absolute units cannot be negative: {self.absolute}")

    def exceeded_by(self, gap: int, expected: int) -> bool:
        size = abs(gap)
        if size <= self.absolute:
            return False
        return expected <= 0 or 100.0 * size / expected > self.percent


def no_safety_stock(sku: str, location: str) -> int:
    """Safety stock where none is configured: the engine then never asks per cell."""
    return 0


def _unit_packs(system: str, sku: str) -> int:
    return 1


def _covers_all(system: str, location: str) -> bool:
    return True


def _carries_all(system: str, sku: str) -> bool:
    return True


@dataclass(frozen=True)
class DiffRules:
    """Everything the engine needs to know, already resolved from configuration.

    ``bundles``: bundle SKU → component SKU → quantity per bundle. ``pack_size``:
    (system, SKU) → units per counted item, only read to name pack-size evidence.
    ``low_stock``: (SKU, location) → the storefront expectation at or below which a
    CONTINUE policy is reported. ``covers``: (system, location) → whether the system
    holds stock at that location at all (a system that does not is never ``missing``
    there). ``carries``: (system, SKU) → whether the SKU is in the system's range (a
    store's SKU patterns; one it does not carry is never ``missing`` there). ``listed``:
    the systems whose range is what they have ever listed; the engine cannot know that
    (it sees one read), so their ``missing`` drifts are kept and
    :func:`monitors.reconcile.run_diff` drops those the ledger never saw listed.
    """

    systems: Mapping[str, SystemRules]
    source_of_truth: tuple[str, ...]
    threshold: Callable[[str], Threshold] = field(default=lambda sku: Threshold())
    safety_stock: Callable[[str, str], int] = field(default=no_safety_stock)
    large: Threshold | None = None
    bundles: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    pack_size: Callable[[str, str], int] = field(default=_unit_packs)
    low_stock: Callable[[str, str], int] = field(default=no_safety_stock)
    covers: Callable[[str, str], bool] = field(default=_covers_all)
    carries: Callable[[str, str], bool] = field(default=_carries_all)
    listed: frozenset[str] = frozenset()
    #: system → its own source-of-truth order (a store whose truth is its own
    #: warehouse); the others are judged against ``source_of_truth``
    orders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Drift:
    """One system disagreeing with the source of truth about one SKU at one location."""

    sku: str
    location: str
    system: str
    kind: str
    truth_system: str | None
    expected: int | None
    actual: int | None
    #: every system's compared value at this SKU×location (None: not reported)
    values: Mapping[str, int | None]
    observed_at: Mapping[str, datetime]
    #: when the drifting system says its level last changed
    changed_at: datetime | None = None
    #: since when the values have disagreed (at least), and how long that is at ``now``
    since: datetime | None = None
    age: timedelta = timedelta(0)
    #: the gap also exceeds the ``large`` threshold: confirm at once
    large: bool = False
    #: for ``missing``: the system without the SKU, and which side it is on
    missing_from: str | None = None
    missing_side: str | None = None
    #: hints at the likely cause (pack-size pattern, bundle math)
    evidence: tuple[str, ...] = ()
    #: for a bundle: component SKU → the units the expectation was computed from
    components: Mapping[str, int] | None = None
    #: for ``duplicate_sku``: every item the system reported here, as (its id in that
    #: system, its compared value), sorted by id
    items: tuple[tuple[str, int | None], ...] = ()

    @property
    def gap(self) -> int:
        """actual − expected, in units (a missing value counts as 0)."""
        return (self.actual or 0) - (self.expected or 0)

    @property
    def gap_percent(self) -> float | None:
        if not self.expected:
            return None
        return 100.0 * self.gap / self.expected

    @property
    def direction(self) -> str:
        return "over" if self.gap > 0 else "under" if self.gap < 0 else "equal"

    @property
    def fingerprint(self) -> str:
        """Stable identity of this drift for incident dedupe."""
        return f"drift:{self.kind}:{self.system}:{self.sku}:{self.location}"


def compared_value(level: Level, rules: SystemRules) -> int | None:
    return level.total(rules.compare_states)


def is_stale(level: Level, rules: SystemRules, now: datetime) -> bool:
    """Whether ``level`` is older than its system's SLA at ``now``."""
    if rules.sla_seconds is None:
        return False
    return (now - level.observed_at).total_seconds() > rules.sla_seconds


#: (SKU, location) → each system's level there, in ``DiffRules.systems`` order (None where
#: it reported none): a list, not a dict per cell (80 bytes against 184; a full diff of
#: 100,000 SKUs × 5 locations holds 500,000 cells)
Grid = dict[tuple[str, str], list[Level | None]]
#: (SKU, location) → system → item id → level, where a system reported several items
Duplicates = Mapping[tuple[str, str], Mapping[str, Mapping[str, Level]]]


def item_id(level: Level) -> str:
    """What tells one of a system's items from another: Shopify's inventory item gid,
    else the system's own spelling of the SKU."""
    refs = level.refs
    return refs.get("inventory_item_id") or refs.get("sku") or ""


#: How far inside the SLA a level must be observed for the precomputed cutoff to call it
#: fresh; nearer the edge (and past it), :func:`is_stale` decides.
_MARGIN = timedelta(milliseconds=1)


class _Freshness:
    """:func:`is_stale` for one system at one ``now``, without arithmetic per level: a
    level observed at or after ``fresh_from`` is fresh (a cutoff a millisecond inside the
    SLA, so rounding cannot flip it); any other level is judged by :func:`is_stale`."""

    __slots__ = ("fresh_from", "never", "now", "rules")

    def __init__(self, rules: SystemRules, now: datetime) -> None:
        self.rules, self.now = rules, now
        self.never = rules.sla_seconds is None
        self.fresh_from: datetime | None = None
        if rules.sla_seconds is not None:
            # beyond datetime's range, or NaN: no cutoff, every level judged exactly
            with suppress(OverflowError, ValueError):
                self.fresh_from = now - timedelta(seconds=rules.sla_seconds) + _MARGIN

    def stale(self, level: Level) -> bool:
        if self.never:
            return False
        if self.fresh_from is not None and level.observed_at >= self.fresh_from:
            return False
        return is_stale(level, self.rules, self.now)


class _Context:
    """What every cell of one diff shares, worked out once: the rules, the time, the grid,
    each system's freshness and rank."""

    def __init__(
        self, rules: DiffRules, now: datetime, grid: Grid, duplicates: Duplicates | None = None
    ) -> None:
        self.rules, self.now, self.grid = rules, now, grid
        #: the systems in the order of a cell's levels
        self.names = tuple(rules.systems)
        self.duplicates: Duplicates = duplicates or {}
        self.freshness = {name: _Freshness(spec, now) for name, spec in rules.systems.items()}
        self.rank = {name: i for i, name in enumerate(rules.source_of_truth)}
        #: the source-of-truth systems the rules compare, in order
        self.truths = tuple(name for name in rules.source_of_truth if name in rules.systems)
        self.storefronts = frozenset(
            name for name, spec in rules.systems.items() if spec.role == ROLE_STOREFRONT
        )

    def stale(self, system: str, level: Level) -> bool:
        return self.freshness[system].stale(level)

    def by_system(self, cell: Sequence[Level | None]) -> dict[str, Level]:
        """A cell's levels by system."""
        return {name: lv for name, lv in zip(self.names, cell, strict=True) if lv is not None}

    def at(self, sku: str, location: str) -> dict[str, Level]:
        """The levels of ``sku`` at ``location`` by system (none: no cell there)."""
        cell = self.grid.get((sku, location))
        return {} if cell is None else self.by_system(cell)

    def ambiguous(self, system: str, sku: str, location: str) -> bool:
        """Whether ``system`` reported several items for ``sku`` at ``location``."""
        return bool(self.duplicates) and system in self.duplicates.get((sku, location), ())


def diff(levels: Iterable[Level], rules: DiffRules, *, now: datetime | None = None) -> list[Drift]:
    """Every drift among ``levels`` at ``now``, worst first (largest absolute gap).

    ``now`` is the time of the diff; None means the latest ``observed_at`` among the
    levels (the time of the read, for systems that stamp their reads).

    A system with an order of its own (``rules.orders``, a store whose truth is its own
    warehouse) is judged in a diff of its own, among itself and its truth systems with
    that order (one diff for all the stores sharing an order); only the drifts *of
    those stores* are kept from it (their truth systems' own drifts come from the main
    diff, which judges every other system).
    """
    own = {
        system: tuple(t for t in order if t in rules.systems and t != system)
        for system, order in rules.orders.items()
        if system in rules.systems
    }
    if not own:
        return _diff(levels, rules, now, fast=True)
    if now is None:
        levels = list(levels)
        if not levels:
            return []
        now = max(level.observed_at for level in levels)
    main = replace(
        rules, systems={n: r for n, r in rules.systems.items() if n not in own}, orders={}
    )
    drifts = _diff(levels, main, now, fast=True)
    groups: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for system, truths in own.items():  # stores sharing an order share one diff
        groups[truths].add(system)
    for truths, stores in groups.items():
        names = stores | set(truths)
        alone = replace(
            rules,
            systems={n: r for n, r in rules.systems.items() if n in names},
            source_of_truth=truths,
            orders={},
        )
        mine = _diff([lv for lv in levels if lv.system in names], alone, now, fast=True)
        drifts += [d for d in mine if d.system in stores]
    drifts.sort(key=lambda d: (-abs(d.gap), d.sku, d.location, d.system, d.kind))
    return drifts


def _diff(
    levels: Iterable[Level],
    rules: DiffRules,
    now: datetime | None,
    *,
    fast: bool,
    judged: list[tuple[str, str]] | None = None,
) -> list[Drift]:
    """:func:`diff`; ``fast`` False judges every cell the general way (the fast path's
    reference, in tests). ``judged`` gets the cells the fast path could not pass as
    quiet (:mod:`monitors.diffmemo` judges them again next time)."""
    if now is None:
        levels = list(levels)
        if not levels:
            return []
        now = max(level.observed_at for level in levels)
    with cyclic_gc_paused():  # the grid is built and freed inside (monitors/collector.py)
        ctx = _Context(rules, now, *_grid(levels, rules, judged))
        drifts = _judge_cells(ctx, fast=fast, judged=judged)
        # freed here, not at return: the collector, back on, would first walk the whole
        # grid (a third of a 1,000,000-row diff's time; BENCHMARKS.md, issue 16)
        del ctx
    drifts.sort(key=lambda d: (-abs(d.gap), d.sku, d.location, d.system, d.kind))
    return drifts


_Plan = list[
    tuple[
        str,
        tuple[str, ...],
        str,
        str | None,
        Callable[[Mapping[str, int]], Any] | None,
        bool,
        datetime | None,
        int,
        dict[type, tuple[int, int]],
    ]
]


def _fast_plan(ctx: _Context) -> _Plan:
    """Per system, what the fast path reads: name, compared states, the first and the
    second compared state (None: only one), a getter of them all when there are more
    than two (None: one or two), whether a storefront, the freshness cutoff (None: never
    stale), its place in a cell, and where its quantities' types hold the compared states
    (:func:`_spots`, filled as they are met). The truth in use comes first. Empty when
    the fast path cannot be sure (no source of truth, or a system whose cutoff is
    unknown)."""
    if not ctx.truths:
        return []
    order = [ctx.truths[0], *(name for name in ctx.rules.systems if name != ctx.truths[0])]
    plan: _Plan = []
    for name in order:
        freshness = ctx.freshness[name]
        states = ctx.rules.systems[name].compare_states
        if not states or (not freshness.never and freshness.fresh_from is None):
            return []
        second = states[1] if len(states) > 1 else None
        getter = itemgetter(*states) if len(states) > 2 else None
        storefront = name in ctx.storefronts
        index = ctx.names.index(name)
        fresh_from = freshness.fresh_from
        plan.append((name, states, states[0], second, getter, storefront, fresh_from, index, {}))
    return plan


#: no state read by position: each map asked by name (a dict, known without a lookup)
_ASK = (-1, -1)


def _spots(kind: type, states: tuple[str, ...]) -> tuple[int, int]:
    """Where quantities of type ``kind`` hold one or two compared ``states`` among their
    values (-1 for the second of one), read by position at C speed; (-1, -1) where the
    type is not a TupleMap of shared keys, lacks a state, or there are more than two
    states: each map is then asked by name."""
    spots = keyed_positions(kind, states)
    if spots is None or len(spots) != len(states) or len(spots) > 2:
        return _ASK
    return (spots[0], spots[1] if len(spots) == 2 else -1)


def _judge_cells(
    ctx: _Context, *, fast: bool, judged: list[tuple[str, str]] | None = None
) -> list[Drift]:
    """Every cell's drifts. The fast path skips a quiet cell without building anything:
    every system reports a fresh, non-negative value; the truth is the first source of
    truth; each other system's gap to its expectation is within the threshold; no
    storefront is untracked or sells on CONTINUE; the SKU is no bundle. Such a cell has no
    drift (the general path agrees: tests/monitors/test_drift_fast_path.py); any other
    cell is judged by :class:`_Cell`."""
    rules = ctx.rules
    plan = _fast_plan(ctx) if fast else []
    systems = len(plan)
    bundles = rules.bundles
    safety_stock = rules.safety_stock
    held_back = safety_stock is not no_safety_stock
    threshold_of = rules.threshold
    duplicates = ctx.duplicates
    drifts: list[Drift] = []
    truth_name = plan[0][0] if plan else ""
    #: a storefront's flags by identity (a read's are a handful of shared maps): whether
    #: they sell as counted (tracked, never on CONTINUE)
    counted: dict[int, bool] = {}
    for (sku, location), cell in ctx.grid.items():
        if (
            systems
            and None not in cell  # every system reports it (the plan covers them all)
            and sku not in bundles
            and not (duplicates and (sku, location) in duplicates)
        ):
            truth = 0
            safety: int | None = None
            threshold: Threshold | None = None
            for name, states, first, second, getter, storefront, fresh_from, index, at in plan:
                level: Level = cell[index]  # type: ignore[assignment]  # not None: checked
                if fresh_from is not None and level.observed_at < fresh_from:
                    break
                value: int | None
                quantities = level.quantities
                kind = type(quantities)
                spot = _ASK if kind is dict else at.get(kind)
                if spot is None:
                    spot = at[kind] = _spots(kind, states)
                if spot[0] >= 0:  # by position: no Python call per lookup
                    value = keyed_value(quantities, spot[0])
                    if spot[1] >= 0:
                        value += keyed_value(quantities, spot[1])
                else:
                    try:
                        if getter is not None:
                            value = sum(getter(quantities))
                        elif second is None:
                            value = quantities[first]
                        else:
                            value = quantities[first] + quantities[second]
                    except KeyError:  # not every compared state reported: the sum of those that are
                        value = level.total(states)
                if value is None or value < 0:
                    break
                if name == truth_name:
                    truth = value
                    continue
                expected = truth
                if storefront:
                    flags = level.flags
                    if flags:
                        sells = counted.get(id(flags))  # alive while the grid is: ids unique
                        if sells is None:
                            sells = counted[id(flags)] = not (
                                flags.get("tracked") is False
                                or str(flags.get("inventory_policy", "")).upper() == "CONTINUE"
                            )
                        if not sells:
                            break
                    if not held_back:
                        safety = 0
                    elif safety is None:
                        safety = safety_stock(sku, location)
                    if safety:
                        expected = truth - safety
                        if expected < 0:
                            expected = 0
                if value != expected:
                    if threshold is None:
                        threshold = threshold_of(sku)
                    if threshold.exceeded_by(value - expected, expected):
                        break
            else:
                continue  # a quiet cell
        if judged is not None:
            judged.append((sku, location))
        drifts.extend(_Cell(sku, location, ctx.by_system(cell), ctx).drifts())
    return drifts


_Dups = dict[tuple[str, str], dict[str, dict[str, Level]]]


def _grid(
    levels: Iterable[Level], rules: DiffRules, repeated: list[tuple[str, str]] | None = None
) -> tuple[Grid, _Dups]:
    """(SKU, location) → each system's level (:data:`Grid`), plus an empty cell for every
    bundle wherever one of its components is; and, where a system reported several items
    (:func:`item_id`) for one SKU at one location, all of them (the cell then holds the
    last given, and the same item given twice is one item, the last). ``repeated`` gets
    each cell where a system reported more than one level (whose references say whether
    they are one item)."""
    position = {name: i for i, name in enumerate(rules.systems)}.get
    empty: list[Level | None] = [None] * len(rules.systems)
    grid: Grid = {}
    duplicates: _Dups = {}
    cell_of = grid.get
    for level in levels:
        i = position(level.system)
        if i is not None:
            key = (level.sku, level.location)
            cell = cell_of(key)
            if cell is None:
                cell = grid[key] = empty[:]
            else:
                prior = cell[i]
                if prior is not None:  # the system reported this SKU here before
                    if repeated is not None:
                        repeated.append(key)
                    name = level.system
                    if item_id(prior) != item_id(level):
                        items = duplicates.setdefault(key, {}).setdefault(name, {})
                        items.setdefault(item_id(prior), prior)
                        items[item_id(level)] = level
                    elif key in duplicates and name in duplicates[key]:
                        duplicates[key][name][item_id(level)] = level
            cell[i] = level
    if rules.bundles:
        bundles_of: dict[str, list[str]] = defaultdict(list)
        for bundle, components in rules.bundles.items():
            for component in components:
                bundles_of[component].append(bundle)
        for sku, location in list(grid):
            for bundle in bundles_of.get(sku, ()):
                grid.setdefault((bundle, location), empty[:])  # judged wherever a component is
    return grid, duplicates


@dataclass(frozen=True)
class _Basis:
    """What a storefront's bundle should show, and where that comes from."""

    available: int
    components: dict[str, int]
    truth_system: str | None
    levels: tuple[Level, ...]


def _since(levels: Iterable[Level | None]) -> datetime | None:
    times = [lv.changed_at or lv.observed_at for lv in levels if lv is not None]
    return max(times) if times else None


class _Cell:
    """One SKU at one location."""

    def __init__(
        self,
        sku: str,
        location: str,
        by_system: Mapping[str, Level],
        ctx: _Context,
    ) -> None:
        rules = ctx.rules
        self.sku, self.location, self.rules, self.now = sku, location, rules, ctx.now
        self.ctx = ctx
        self.by_system = by_system
        #: system → item id → level, for the systems that reported several items here
        self.ambiguous: Mapping[str, Mapping[str, Level]] = ctx.duplicates.get((sku, location), {})
        self.fresh = {
            n: lv for n, lv in by_system.items() if n not in self.ambiguous and not ctx.stale(n, lv)
        }
        self.values = {
            name: compared_value(by_system[name], spec)
            if name in by_system and name not in self.ambiguous
            else None
            for name, spec in rules.systems.items()
        }
        self.observed = {name: lv.observed_at for name, lv in by_system.items()}
        self.truth, self.truth_value = self._own_truth()
        self.truth_level = by_system.get(self.truth) if self.truth else None
        self.rank = ctx.rank
        components = rules.bundles.get(sku)
        self.basis = self._bundle_basis(components) if components else None
        self.threshold = rules.threshold(sku)

    # --- the truth -------------------------------------------------------------

    def _own_truth(self) -> tuple[str | None, int | None]:
        """:meth:`_truth_of` this cell, from the values already computed."""
        for name in self.ctx.truths:
            value = self.values[name]
            if name in self.fresh and value is not None:
                return name, value
        return None, None

    def _truth_of(self, sku: str, location: str) -> tuple[str | None, int | None]:
        by_system = self.ctx.at(sku, location)
        for name in self.ctx.truths:
            level = by_system.get(name)
            if (
                level is None
                or self.ctx.stale(name, level)
                or self.ctx.ambiguous(name, sku, location)
            ):
                continue
            value = compared_value(level, self.rules.systems[name])
            if value is not None:
                return name, value
        return None, None

    def _bundle_basis(self, components: Mapping[str, int]) -> _Basis | None:
        """None when the bundle cannot be judged here: a component's only truth level is
        stale (or lacks the compared states), or no source-of-truth system covers this
        location. A component no truth system reports here counts 0."""
        if not any(self.rules.covers(s, self.location) for s in self.rules.source_of_truth):
            return None
        units: dict[str, int] = {}
        levels: list[Level] = []
        limiting: tuple[int, str | None] | None = None
        for component, quantity in components.items():
            truth, value = self._truth_of(component, self.location)
            at = self.ctx.at(component, self.location)
            if truth is None:
                if any(name in at for name in self.rules.source_of_truth):
                    return None  # reported, but stale or not comparable: unknowable
                net = 0
            else:
                levels.append(at[truth])
                net = max(0, (value or 0) - self.rules.safety_stock(component, self.location))
            units[component] = net
            if limiting is None or net // quantity < limiting[0]:
                limiting = (net // quantity, truth)
        if limiting is None:
            return None
        return _Basis(limiting[0], units, limiting[1], tuple(levels))

    def _expected(self, system: str) -> int | None:
        if self.rules.systems[system].role == ROLE_STOREFRONT:
            if self.basis is not None:
                return self.basis.available
            if self.truth_value is None:
                return None
            return max(0, self.truth_value - self.rules.safety_stock(self.sku, self.location))
        return self.truth_value

    # --- drifts ----------------------------------------------------------------

    def _make(
        self,
        system: str,
        kind: str,
        expected: int | None,
        *,
        since: datetime | None = None,
        missing_from: str | None = None,
        missing_side: str | None = None,
        evidence: tuple[str, ...] = (),
        items: tuple[tuple[str, int | None], ...] = (),
    ) -> Drift:
        level = self.by_system.get(system)
        bundle = self.basis is not None and self.rules.systems[system].role == ROLE_STOREFRONT
        if since is None:
            truth_levels = self.basis.levels if bundle and self.basis else (self.truth_level,)
            since = _since((level, *truth_levels))
        actual = self.values.get(system)
        gap = (actual or 0) - (expected or 0)
        large = kind in _SIZED and (
            self.rules.large is not None and self.rules.large.exceeded_by(gap, expected or 0)
        )
        return Drift(
            sku=self.sku,
            location=self.location,
            system=system,
            kind=kind,
            truth_system=self.basis.truth_system if bundle and self.basis else self.truth,
            expected=expected,
            actual=actual,
            values=self.values,
            observed_at=self.observed,
            changed_at=level.changed_at if level else None,
            since=since,
            age=max(timedelta(0), self.now - since) if since else timedelta(0),
            large=large,
            missing_from=missing_from,
            missing_side=missing_side,
            evidence=evidence,
            components=dict(self.basis.components) if bundle and self.basis else None,
            items=items,
        )

    def drifts(self) -> list[Drift]:
        out: list[Drift] = []
        for system, spec in self.rules.systems.items():
            level = self.by_system.get(system)
            if system in self.ambiguous:
                out.append(self._duplicate(system, spec))
            elif level is None:
                out.extend(self._missing(system))
            elif system not in self.fresh:
                stale_since = level.observed_at
                out.append(self._make(system, STALE, self._expected(system), since=stale_since))
            else:
                out.extend(self._judge(system, spec, level))
        return out

    def _duplicate(self, system: str, spec: SystemRules) -> Drift:
        """``system`` has several items with this SKU here: each, with its value."""
        items = tuple(
            sorted(
                (ident, compared_value(level, spec))
                for ident, level in self.ambiguous[system].items()
            )
        )
        return self._make(system, DUPLICATE_SKU, None, items=items)

    def _missing(self, system: str) -> list[Drift]:
        """``system`` has no level for this SKU here."""
        if not self.rules.covers(system, self.location) or not self.rules.carries(system, self.sku):
            return []
        expected = self._expected(system)
        if expected is None or expected <= 0:
            return []
        above_truth = (
            self.truth is not None
            and system in self.rank
            and self.rank[system] < self.rank[self.truth]
        )
        side = MISSING_IN_TRUTH if above_truth else MISSING_IN_SYSTEM
        return [self._make(system, MISSING, expected, missing_from=system, missing_side=side)]

    def _judge(self, system: str, spec: SystemRules, level: Level) -> list[Drift]:
        value = self.values[system]
        if value is None:
            return []
        storefront = spec.role == ROLE_STOREFRONT
        expected = self._expected(system) if system != self.truth else None
        stocked = expected is not None
        if storefront and system != self.truth and stocked and level.flags.get("tracked") is False:
            return [self._make(system, UNTRACKED, expected)]
        out: list[Drift] = []
        if value < 0:
            out.append(self._make(system, NEGATIVE, expected))
        if system == self.truth:
            return out
        if expected is None:
            return out + self._not_in_truth(system, value)
        if value >= 0:
            out.extend(self._count(system, storefront, value, expected))
        policy = str(level.flags.get("inventory_policy", "")).upper()
        low = expected <= self.rules.low_stock(self.sku, self.location)
        if storefront and policy == "CONTINUE" and low:
            out.append(self._make(system, OVERSELL_POLICY, expected))
        return out

    def _not_in_truth(self, system: str, value: int) -> list[Drift]:
        """No truth system has this SKU here, yet ``system`` shows stock of it."""
        if value <= 0 or self.sku in self.rules.bundles or system in self.rank:
            return []
        if any(name in self.by_system for name in self.rules.source_of_truth):
            return []  # a truth system reported it, stale or without the compared states
        missing_from = next(
            (
                s
                for s in self.rules.source_of_truth
                if self.rules.covers(s, self.location) and self.rules.carries(s, self.sku)
            ),
            None,
        )
        if missing_from is None:
            return []
        return [
            self._make(
                system, MISSING, None, missing_from=missing_from, missing_side=MISSING_IN_TRUTH
            )
        ]

    def _count(self, system: str, storefront: bool, value: int, expected: int) -> list[Drift]:
        gap = value - expected
        if not self.threshold.exceeded_by(gap, expected):
            return []
        evidence = self._pack_evidence(system, value, expected)
        if storefront and self.basis is not None:
            implied = self._implied_bundle(system)
            if implied is not None and implied == value:
                return []  # the storefront's components drift: reported at the components
            evidence += (
                f"bundle: {system} shows {value}, its own components imply "
                f"{'?' if implied is None else implied}, the truth's components imply "
                f"{expected}",
            )
        if storefront:
            kind = OVERSELL_RISK if gap > 0 else UNDERSELL
        else:
            kind = COUNT_MISMATCH
        return [self._make(system, kind, expected, evidence=evidence)]

    def _implied_bundle(self, system: str) -> int | None:
        """The bundle availability ``system``'s own component values imply."""
        components = self.rules.bundles[self.sku]
        spec = self.rules.systems[system]
        counts: list[int] = []
        for component, quantity in components.items():
            level = self.ctx.at(component, self.location).get(system)
            if (
                level is None
                or self.ctx.stale(system, level)
                or self.ctx.ambiguous(system, component, self.location)
            ):
                return None
            value = compared_value(level, spec)
            if value is None:
                return None
            counts.append(max(0, value) // quantity)
        return min(counts)

    def _pack_evidence(self, system: str, value: int, expected: int) -> tuple[str, ...]:
        """A gap that is a configured pack size applied once too often or not at all."""
        packs = sorted({self.rules.pack_size(s, self.sku) for s in self.rules.systems} - {1})
        targets = [t for t in dict.fromkeys((expected, self.truth_value)) if t]
        found: list[str] = []
        for pack in packs:
            for target in targets:
                if value and value * pack == target:
                    found.append(
                        f"pack size {pack}: {system} shows {value} and {value} × {pack} = "
                        f"{target}; it may count packs of {pack} as units"
                    )
                elif value == target * pack:
                    found.append(
                        f"pack size {pack}: {system} shows {value} = {target} × {pack}; a pack "
                        f"size of {pack} may be applied to a count already in units"
                    )
        return tuple(dict.fromkeys(found))
