"""The drift engine: pure functions from levels to drifts. No I/O, no clock reads.

A drift is a difference between systems for one SKU at one location, net of known
transformations. The source of truth is the first system in ``source_of_truth`` order
that reports the SKU at that location; every other system is compared with it:

* each system compares the sum of its ``compare_states`` (e.g. Shopify's
  available + committed against the WMS's pickable on-hand);
* a storefront is expected to show the truth minus the safety stock held back for it;
* pack sizes were already applied by the connectors (all quantities are units).

Classes, from the seeds' vocabulary:

========================  =============================================================
``negative``              a system reports fewer than zero units
``missing``               the SKU exists in the source of truth but not in the system,
                          or the other way round (a SKU mismatch)
``oversell_risk``         a storefront shows more than can be picked
``undersell``             a storefront shows less than there is
``count_mismatch``        a non-storefront system (an ERP) disagrees with the truth
========================  =============================================================
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from connectors.levels import Level

ROLE_STOREFRONT = "storefront"


@dataclass(frozen=True)
class SystemRules:
    """How one system is compared."""

    name: str
    role: str
    compare_states: tuple[str, ...]


@dataclass(frozen=True)
class Threshold:
    """A gap is a drift when it exceeds ``absolute`` units AND ``percent`` % of the
    expected count (any gap exceeds the percentage of an expected 0)."""

    absolute: int = 0
    percent: float = 0.0

    def exceeded_by(self, gap: int, expected: int) -> bool:
        size = abs(gap)
        if size <= self.absolute:
            return False
        return expected <= 0 or 100.0 * size / expected > self.percent


@dataclass(frozen=True)
class DiffRules:
    """Everything the engine needs to know, already resolved from configuration."""

    systems: Mapping[str, SystemRules]
    source_of_truth: tuple[str, ...]
    threshold: Callable[[str], Threshold] = field(default=lambda sku: Threshold())
    safety_stock: Callable[[str, str], int] = field(default=lambda sku, location: 0)


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
    changed_at: datetime | None = None

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


def diff(levels: Iterable[Level], rules: DiffRules) -> list[Drift]:
    """Every drift among ``levels``, worst first (largest absolute gap)."""
    grid: dict[tuple[str, str], dict[str, Level]] = defaultdict(dict)
    for level in levels:
        if level.system in rules.systems:
            grid[(level.sku, level.location)][level.system] = level
    drifts: list[Drift] = []
    for (sku, location), by_system in grid.items():
        drifts.extend(_drifts_at(sku, location, by_system, rules))
    drifts.sort(key=lambda d: (-abs(d.gap), d.sku, d.location, d.system))
    return drifts


def _drifts_at(
    sku: str, location: str, by_system: Mapping[str, Level], rules: DiffRules
) -> list[Drift]:
    values = {
        name: compared_value(by_system[name], rules.systems[name]) if name in by_system else None
        for name in rules.systems
    }
    observed = {name: lv.observed_at for name, lv in by_system.items()}
    truth = next((s for s in rules.source_of_truth if values.get(s) is not None), None)
    truth_value = values[truth] if truth else None
    out: list[Drift] = []

    def make(system: str, kind: str, expected: int | None) -> Drift:
        level = by_system.get(system)
        return Drift(
            sku=sku,
            location=location,
            system=system,
            kind=kind,
            truth_system=truth,
            expected=expected,
            actual=values.get(system),
            values=values,
            observed_at=observed,
            changed_at=level.changed_at if level else None,
        )

    for system, value in values.items():
        if value is not None and value < 0:
            out.append(make(system, "negative", truth_value))
    if truth is None or truth_value is None:
        return out
    threshold = rules.threshold(sku)
    for system, spec in rules.systems.items():
        if system == truth:
            continue
        value = values[system]
        storefront = spec.role == ROLE_STOREFRONT
        expected = truth_value
        if storefront:
            expected = max(0, truth_value - rules.safety_stock(sku, location))
        if value is None:
            if expected > 0:
                out.append(make(system, "missing", expected))
            continue
        if value < 0:
            continue  # already reported as negative
        gap = value - expected
        if not threshold.exceeded_by(gap, expected):
            continue
        if storefront:
            kind = "oversell_risk" if gap > 0 else "undersell"
        else:
            kind = "count_mismatch"
        out.append(make(system, kind, expected))
    return out
