"""What every inventory system reports: levels of one SKU at one location."""

from __future__ import annotations

import sys
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Generic, NamedTuple, TypeVar, overload

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
    """A read-only mapping held as tuples: its keys, one tuple shared by every map with
    the same keys, and its values.

    A full read holds millions of levels, each with its quantities and references. As
    dicts they cost 184 to 272 bytes each; a TupleMap of shared keys is one tuple of its
    values and nothing else (BENCHMARKS.md, issue 16): an instance of a tuple subclass
    made once per key tuple, which holds the keys as a class attribute. A lookup walks
    a handful of keys at C speed.

    ``TupleMap(keys, values)`` and :func:`tuple_map` build one (the latter also makes keys
    strings and drops a repeated key's earlier values). Past a bound on distinct key
    tuples (keys come from outside) a map holds its own keys instead: slower to build,
    read the same.

    A TupleMap is a Mapping and compares as one (never equal to a tuple), but the
    ``json`` module sees a tuple subclass and would write its values as an array:
    serialize ``dict(m)``.
    """

    __slots__ = ()

    def __new__(cls, keys: tuple[str, ...], values: tuple[V, ...]) -> TupleMap[V]:
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        return tuple_map(keys, values)

    def __reduce__(self) -> tuple[object, tuple[tuple[str, ...], tuple[V, ...]]]:
        return tuple_map, (tuple(self), tuple(self.values()))

    def __repr__(self) -> str:
        return f"TupleMap({dict(self.items())!r})"


_tuple_getitem = tuple.__getitem__
_tuple_iter = tuple.__iter__
_tuple_eq = tuple.__eq__


class _Keyed(tuple[Any, ...], TupleMap[V]):  # a tuple read as a Mapping
    """A TupleMap whose keys are its class's ``_keys``: the tuple is its values."""

    __slots__ = ()
    _keys: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> V:  # type: ignore[override]
        try:
            return _tuple_getitem(self, self._keys.index(key))  # type: ignore[no-any-return]
        except ValueError:
            raise KeyError(key) from None

    @overload
    def get(self, key: str, /) -> V | None: ...
    @overload
    def get(self, key: str, /, default: V | D) -> V | D: ...
    def get(self, key: str, /, default: object = None) -> object:
        keys = self._keys
        return _tuple_getitem(self, keys.index(key)) if key in keys else default

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def items(self) -> ItemsView[str, V]:
        return _KeyedItems(self)

    def values(self) -> ValuesView[V]:
        return _KeyedValues(self)

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):  # the same keys: compare the values
            return _tuple_eq(self, other)
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        # a plain tuple of the same values is not this mapping (left to tuple, it would be)
        return False if isinstance(other, tuple) else NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # a Mapping, not a tuple: unhashable
    __lt__ = __le__ = __gt__ = __ge__ = None  # type: ignore[assignment]  # not ordered
    __add__ = __mul__ = __rmul__ = None  # type: ignore[assignment]  # no tuple arithmetic
    __repr__ = TupleMap.__repr__  # tuple's would come first


class _KeyedItems(ItemsView[str, V]):
    __slots__ = ()
    _mapping: _Keyed[V]

    def __iter__(self) -> Iterator[tuple[str, V]]:
        m = self._mapping
        return zip(m._keys, _tuple_iter(m))  # noqa: B905 (equal lengths: one class per key tuple)


class _KeyedValues(ValuesView[V]):
    __slots__ = ()
    _mapping: _Keyed[V]

    def __iter__(self) -> Iterator[V]:
        return _tuple_iter(self._mapping)


class _Loose(TupleMap[V]):
    """A TupleMap that holds its own keys: for key tuples past the shared table's bound."""

    __slots__ = ("_keys", "_values")
    _keys: tuple[str, ...]
    _values: tuple[V, ...]

    def __getitem__(self, key: str) -> V:
        try:
            return self._values[self._keys.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def values(self) -> ValuesView[V]:
        return _LooseValues(self)

    def items(self) -> ItemsView[str, V]:
        return _LooseItems(self)


class _LooseItems(ItemsView[str, V]):
    __slots__ = ()
    _mapping: _Loose[V]

    def __iter__(self) -> Iterator[tuple[str, V]]:
        m = self._mapping
        return zip(m._keys, m._values)  # noqa: B905 (equal lengths: checked when built)


class _LooseValues(ValuesView[V]):
    __slots__ = ()
    _mapping: _Loose[V]

    def __iter__(self) -> Iterator[V]:
        return iter(self._mapping._values)


_new_tuple = tuple.__new__
_new_object = object.__new__

#: key tuples seen, each with its TupleMap class (which holds them, interned, as ``_keys``)
_SHARED_KEYS: dict[tuple[str, ...], type[_Keyed[Any]]] = {}
#: past this many distinct key tuples, new ones get no class of their own (bounds the
#: table and the classes made, whatever the systems report)
_SHARED_LIMIT = 4096


def tuple_map(keys: Iterable[str], values: Iterable[V]) -> TupleMap[V]:
    """A :class:`TupleMap` of ``keys`` and ``values`` (taken pairwise, equal in number).
    A key that is not a string is made one (keys come from outside); a key given twice
    keeps its last value, as in a dict."""
    names, held = tuple(keys), tuple(values)
    shared = _SHARED_KEYS.get(names)  # a hit is all strings: nothing else equals one
    if shared is not None and len(held) == len(names):
        return _new_tuple(shared, held)
    return _built(names, held)


def map_type(keys: tuple[str, ...]) -> Callable[[tuple[V, ...]], TupleMap[V]]:
    """A constructor of TupleMaps with these ``keys`` (distinct strings) from their
    values, for a read loop that builds millions with the same keys: ``map_type(KEYS)(
    values)`` is ``tuple_map(KEYS, values)``, without looking the keys up each time."""
    if len(set(keys)) != len(keys) or not all(type(k) is str for k in keys):
        raise ValueError(f"keys must be distinct strings: {keys!r}")
    sample = tuple_map(keys, keys)
    if not isinstance(sample, _Keyed):
        return lambda values: tuple_map(keys, values)
    cls = type(sample)

    def build(values: tuple[V, ...]) -> TupleMap[V]:
        if len(values) != len(keys):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        return _new_tuple(cls, values)

    return build


def _built(names: tuple[object, ...], held: tuple[V, ...]) -> TupleMap[V]:
    keys = tuple(map(str, names))
    if len(keys) != len(held):
        raise ValueError(f"{len(keys)} keys for {len(held)} values")
    if len(set(keys)) != len(keys):
        pairs = dict(zip(keys, held, strict=True))
        keys, held = tuple(pairs), tuple(pairs.values())
    shared = _SHARED_KEYS.get(keys)
    if shared is None:
        if len(_SHARED_KEYS) >= _SHARED_LIMIT:
            loose: _Loose[V] = _new_object(_Loose)
            loose._keys, loose._values = keys, held
            return loose
        interned = tuple(map(sys.intern, keys))
        cls = type("TupleMap", (_Keyed,), {"__slots__": (), "_keys": interned})
        shared = _SHARED_KEYS.setdefault(interned, cls)
    return _new_tuple(shared, held)


def grouped_by_keys(
    maps: Sequence[Mapping[str, V]],
) -> list[tuple[tuple[str, ...], Sequence[int], Callable[[Mapping[str, V]], Iterator[V]]]]:
    """``maps`` grouped by their keys (in order of first appearance): for each key tuple,
    the positions of the maps that have exactly those keys, and a function giving a
    map's values in that order. For a full read's quantities as columns: when every map
    is a TupleMap of the same keys (a system's read, usually) the grouping is one C-speed
    pass and the values are the tuple's own, with no Python call per map."""
    kinds = set(map(type, maps))
    if len(kinds) == 1:
        kind = kinds.pop()
        if issubclass(kind, _Keyed):
            return [(kind._keys, range(len(maps)), _tuple_iter)]  # type: ignore[list-item]
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, mapping in enumerate(maps):
        keys = mapping._keys if isinstance(mapping, _Keyed) else tuple(mapping)
        groups.setdefault(keys, []).append(i)
    return [(keys, positions, _values_of) for keys, positions in groups.items()]


def _values_of(mapping: Mapping[str, V]) -> Iterator[V]:
    return iter(mapping.values())


def keyed_positions(kind: type, keys: Sequence[str]) -> tuple[int, ...] | None:
    """Where each of ``keys`` that maps of type ``kind`` hold sits in their values, when
    ``kind`` is a TupleMap whose values are its tuple (one class per key tuple): read
    them with ``tuple.__getitem__``, at C speed, map after map. None for any other type
    (a dict, a TupleMap holding its own keys): ask each map."""
    if not (isinstance(kind, type) and issubclass(kind, _Keyed)):
        return None
    held = kind._keys
    return tuple(held.index(key) for key in keys if key in held)


#: a value of a TupleMap whose values are its tuple, by position (see keyed_positions)
keyed_value: Callable[[Any, int], Any] = _tuple_getitem


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


def observed_again(at: datetime, level: Level) -> Level:
    """``level`` as observed ``at``: what a read finds when the bytes a level came from
    are the same as last time (:mod:`connectors.memo`). ``level._replace`` without its
    keyword parsing: a full read does this for most of its levels."""
    system, sku, location, quantities, _, changed, source, refs, flags = level
    return _new_tuple(Level, (system, sku, location, quantities, at, changed, source, refs, flags))


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
