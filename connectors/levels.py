"""What every inventory system reports: levels of one SKU at one location."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

#: Inventory states Driftwatch knows. Shopify's identity holds between them:
#: on_hand = available + committed + reserved + damaged + safety_stock + quality_control;
#: incoming stands apart.
STATES: tuple[str, ...] = (
    "on_hand",
    "available",
    "committed",
    "reserved",
    "damaged",
    "safety_stock",
    "quality_control",
    "incoming",
)


#: the flags of a level that has none, shared (a full read holds millions of levels)
NO_FLAGS: Mapping[str, str | bool] = MappingProxyType({})


def _no_flags() -> Mapping[str, str | bool]:
    return NO_FLAGS


@dataclass(frozen=True, slots=True)
class Level:
    """One system's view of one normalized SKU at one Driftwatch location.

    ``quantities`` holds only the states the system reports, already converted to
    units (pack sizes applied). ``location`` is the Driftwatch location key when the
    system's location is mapped, else the system's own id. ``changed_at`` is when the
    system says the level last changed, where it says so.
    """

    system: str
    sku: str
    location: str
    quantities: Mapping[str, int]
    observed_at: datetime
    changed_at: datetime | None = None
    source: str = "poll"
    #: The system's own identifiers (e.g. Shopify inventory item and location gids).
    refs: Mapping[str, str] = field(default_factory=dict)
    #: Facts that are not quantities: Shopify's ``tracked`` and ``inventoryPolicy``.
    flags: Mapping[str, str | bool] = field(default_factory=_no_flags)

    def total(self, states: tuple[str, ...] | list[str]) -> int | None:
        """Sum of the given states, or None if the system reports none of them."""
        present = [self.quantities[s] for s in states if s in self.quantities]
        return sum(present) if present else None


@dataclass(frozen=True, slots=True)
class LevelWrite:
    """Set one state of one level to ``quantity``, if it still equals ``expected``.

    ``expected`` is the quantity last read (compare-and-set); None skips the check,
    which Driftwatch never does for a resync. ``key`` is the idempotency key.
    """

    sku: str
    location: str
    state: str
    quantity: int
    expected: int | None
    key: str
    reason: str = "correction"
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What happened to one :class:`LevelWrite`."""

    write: LevelWrite
    status: str  # "applied" | "stale" | "failed"
    before: int | None = None
    after: int | None = None
    error: str | None = None
