"""The weekly cycle-count list: which SKUs to count this week.

Two parts, in this order:

1. **First**, at most ``cycle_count.max_priority`` SKUs that need counting every week:
   *drift-prone* ones (a count-gap incident opened in the last 30 days, most incidents
   first), then *hero* ones (``cycle_count.priority_tags``), then *high-value*
   (``cycle_count.high_value_tags``) or *high-velocity* ones (the
   ``cycle_count.high_velocity_percent`` of the catalog that moved the most units at
   the source of truth in the last 30 days, most first).
2. **The rotation**: every SKU of the catalog has a fixed slot, ``sha256(SKU) mod
   weeks`` (``cycle_count.weeks``, 13 by default: a quarter), and a week counts the SKUs
   of slot ``(weeks since 5 January 1970) mod weeks``. Any ``weeks`` consecutive weeks
   go through every slot, so over a quarter every SKU is counted at least once, and a
   SKU keeps its slot when others are added or removed.

The catalog is every SKU the ledger knows, bundles left out (a bundle is counted
through its components).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from monitors.config import Config

#: The Monday the rotation counts its weeks from.
EPOCH_MONDAY = date(1970, 1, 5)
DRIFT_PRONE, HERO, HIGH_VALUE, HIGH_VELOCITY = "drift-prone", "hero", "high value", "high velocity"


def rotation_slot(sku: str, weeks: int) -> int:
    """The week of the rotation (0 .. weeks-1) in which ``sku`` is counted."""
    return int(hashlib.sha256(sku.encode()).hexdigest()[:12], 16) % weeks


def rotation_week(week_start: date, weeks: int) -> int:
    """Which slot the week starting ``week_start`` counts."""
    return ((week_start - EPOCH_MONDAY).days // 7) % weeks


@dataclass(frozen=True)
class CountItem:
    """A SKU to count, and why it is on the list (empty for the rotation)."""

    sku: str
    reasons: tuple[str, ...] = ()

    @property
    def priority(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True)
class CycleCountList:
    week_start: date
    #: the rotation slot this week counts, and how many slots there are
    slot: int
    weeks: int
    catalog: int
    items: tuple[CountItem, ...]

    @property
    def first(self) -> tuple[CountItem, ...]:
        return tuple(i for i in self.items if i.priority)

    @property
    def rotation(self) -> tuple[CountItem, ...]:
        return tuple(i for i in self.items if not i.priority)

    def to_json(self) -> dict[str, object]:
        return {
            "week_start": self.week_start.isoformat(),
            "slot": self.slot,
            "weeks": self.weeks,
            "catalog": self.catalog,
            "items": [{"sku": i.sku, "reasons": list(i.reasons)} for i in self.items],
        }


def cycle_count_list(
    config: Config,
    week_start: date,
    catalog: Sequence[str],
    *,
    incidents: Mapping[str, int],
    moved: Mapping[str, int],
) -> CycleCountList:
    """The list for the week starting ``week_start``. ``incidents``: count-gap
    incidents per SKU in the last 30 days; ``moved``: units moved per SKU at the source
    of truth in the last 30 days."""
    settings = config.cycle_count
    bundles = {config.normalize_sku(b.sku) for b in config.bundles}
    skus = sorted({s for s in catalog if s not in bundles})
    reasons: dict[str, list[str]] = {}
    order: list[tuple[int, float, str]] = []

    def note(sku: str, reason: str, group: int, weight: float) -> None:
        if sku not in reasons:
            reasons[sku] = []
            order.append((group, -weight, sku))
        reasons[sku].append(reason)

    for sku in sorted(skus, key=lambda s: (-incidents.get(s, 0), s)):
        n = incidents.get(sku, 0)
        if n:
            note(sku, f"{DRIFT_PRONE} ({n} incident{'s' if n != 1 else ''} in 30 days)", 0, n)
    for sku in skus:
        tags = config.sku_tags(sku)
        if tags & set(settings.priority_tags):
            note(sku, HERO, 1, 0)
        if tags & set(settings.high_value_tags):
            note(sku, HIGH_VALUE, 2, 0)
    fastest = math.ceil(len(skus) * settings.high_velocity_percent / 100)
    busy = sorted((s for s in skus if moved.get(s, 0) > 0), key=lambda s: (-moved[s], s))
    for sku in busy[:fastest]:
        note(sku, f"{HIGH_VELOCITY} ({moved[sku]} units in 30 days)", 2, moved[sku])
    first = [sku for _, _, sku in sorted(order)][: settings.max_priority]
    slot = rotation_week(week_start, settings.weeks)
    listed = set(first)
    rotation = [s for s in skus if rotation_slot(s, settings.weeks) == slot and s not in listed]
    items = [CountItem(s, tuple(reasons[s])) for s in first] + [CountItem(s) for s in rotation]
    return CycleCountList(week_start, slot, settings.weeks, len(skus), tuple(items))


def weeks_covering(week_start: date, weeks: int) -> list[date]:
    """The ``weeks`` consecutive week starts from ``week_start`` (a full rotation)."""
    return [week_start + timedelta(days=7 * i) for i in range(weeks)]
