"""What every inventory system reports: levels of one SKU at one location."""

from __future__ import annotations

import sys
from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Generic, NamedTuple, TypeVar, overload

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


V = TypeVar("V")
D = TypeVar("D")


class TupleMap(Mapping[str, V], Generic[V]):
    """A read-only mapping held as two tuples: its keys, one tuple shared by every map
    with the same keys, and its values.

    A full read holds millions of levels, each with its quantities and references. As
    dicts they cost 184 to 272 bytes each; as a TupleMap, 48 bytes and a tuple of the
    values (BENCHMARKS.md, issue 16). A lookup walks a handful of keys at C speed.
    Build one with :func:`tuple_map`, which shares the key tuples.
    """

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: tuple[str, ...], values: tuple[V, ...]) -> None:
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        self._keys, self._values = keys, values

    def __getitem__(self, key: str) -> V:
        try:
            return self._values[self._keys.index(key)]
        except ValueError:
            raise KeyError(key) from None

    @overload
    def get(self, key: str, /) -> V | None: ...
    @overload
    def get(self, key: str, /, default: V | D) -> V | D: ...
    def get(self, key: str, /, default: object = None) -> object:
        keys = self._keys
        return self._values[keys.index(key)] if key in keys else default

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def items(self) -> ItemsView[str, V]:
        return _Items(self)

    def values(self) -> ValuesView[V]:
        return _Values(self)

    def __repr__(self) -> str:
        return f"TupleMap({dict(zip(self._keys, self._values, strict=True))!r})"


class _Items(ItemsView[str, V]):
    __slots__ = ()
    _mapping: TupleMap[V]

    def __iter__(self) -> Iterator[tuple[str, V]]:
        m = self._mapping
        return zip(m._keys, m._values)  # noqa: B905 (equal lengths: TupleMap's invariant)


class _Values(ValuesView[V]):
    __slots__ = ()
    _mapping: TupleMap[V]

    def __iter__(self) -> Iterator[V]:
        return iter(self._mapping._values)


#: key tuples seen, each kept once (interned names), for every TupleMap to share
_SHARED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}
#: past this many distinct key tuples, new ones are no longer shared (bounds the table
#: whatever the systems report)
_SHARED_LIMIT = 4096


def tuple_map(keys: Iterable[str], values: Iterable[V]) -> TupleMap[V]:
    """A :class:`TupleMap` of ``keys`` and ``values`` (taken pairwise, equal in number).
    A key that is not a string is made one (keys come from outside); a key given twice
    keeps its last value, as in a dict."""
    names, held = tuple(keys), tuple(values)
    shared = _SHARED_KEYS.get(names)  # a hit is all strings: nothing else equals one
    if shared is None:
        shared, held = _shared(names, held)
    return TupleMap(shared, held)


def _shared(
    names: tuple[object, ...], held: tuple[V, ...]
) -> tuple[tuple[str, ...], tuple[V, ...]]:
    keys = tuple(map(str, names))
    if len(keys) != len(held):
        raise ValueError(f"{len(keys)} keys for {len(held)} values")
    if len(set(keys)) != len(keys):
        pairs = dict(zip(keys, held, strict=True))
        keys, held = tuple(pairs), tuple(pairs.values())
    shared = _SHARED_KEYS.get(keys)
    if shared is None:
        shared = tuple(map(sys.intern, keys))
        if len(_SHARED_KEYS) < _SHARED_LIMIT:
            shared = _SHARED_KEYS.setdefault(shared, shared)
    return shared, held


#: the flags and the references of a level that has none, shared (a full read holds
#: millions of levels)
NO_FLAGS: Mapping[str, str | bool] = MappingProxyType({})
NO_REFS: Mapping[str, str] = MappingProxyType({})


class Level(NamedTuple):
    """One system's view of one normalized SKU at one Driftwatch location.

    ``quantities`` holds only the states the system reports, already converted to
    units (pack sizes applied). ``location`` is the Driftwatch location key when the
    system's location is mapped, else the system's own id. ``changed_at`` is when the
    system says the level last changed, where it says so.

    A named tuple, not a frozen dataclass like the records below: a full read builds one
    per SKU and location in every system (1.5 million for 100,000 SKUs × 5 locations in
    three systems), and a frozen dataclass sets each of its nine fields through
    ``object.__setattr__``, about a quarter of a read's CPU (issue 16).
    """

    system: str
    sku: str
    location: str
    quantities: Mapping[str, int]
    observed_at: datetime
    changed_at: datetime | None = None
    source: str = "poll"
    #: The system's own identifiers (e.g. Shopify inventory item and location gids).
    refs: Mapping[str, str] = NO_REFS
    #: Facts that are not quantities: Shopify's ``tracked`` and ``inventoryPolicy``.
    flags: Mapping[str, str | bool] = NO_FLAGS

    def total(self, states: tuple[str, ...] | list[str]) -> int | None:
        """Sum of the given states, or None if the system reports none of them."""
        present = [self.quantities[s] for s in states if s in self.quantities]
        return sum(present) if present else None


_new_tuple = tuple.__new__


def build_level(
    *,
    system: str,
    sku: str,
    location: str,
    quantities: Mapping[str, int],
    observed_at: datetime,
    changed_at: datetime | None = None,
    source: str = "poll",
    refs: Mapping[str, str] = NO_REFS,
    flags: Mapping[str, str | bool] = NO_FLAGS,
) -> Level:
    """``Level(...)`` for the connectors' read loops: the same level, built in 0.2 µs
    instead of 0.5 (a named tuple's ``__new__`` goes through ``type.__call__``; a read
    of 100,000 SKUs × 5 locations in three systems builds 1.5 million)."""
    return _new_tuple(
        Level, (system, sku, location, quantities, observed_at, changed_at, source, refs, flags)
    )


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
