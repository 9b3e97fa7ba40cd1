"""Turning Shopify inventory items and their levels into :class:`Level`s.

One normalization for every way the connector reads: the paged ``inventoryItems`` query
(levels nested under their item) and the bulk operation's JSONL (levels on their own
lines, joined to their item by ``__parentId``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from operator import attrgetter, itemgetter
from typing import Any

import msgspec

from connectors.levels import Level, map_type, tuple_map
from connectors.normalize import Mapping as SkuMapping
from connectors.normalize import to_units
from connectors.times import iso_time


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """What every level of one inventory item shares."""

    item_id: str
    sku: str
    pack: int
    flags: Mapping[str, str | bool]
    #: the SKU as Shopify spells it (searches must use this spelling)
    raw_sku: str = ""


#: a level's references, built from their values (the keys shared: millions of levels)
_refs = map_type(("inventory_item_id", "location_id", "sku"))
#: the type of ``_refs``'s maps when they are tuples of their values in that key order
#: (None when the shared key table was full and they hold their keys themselves)
_refs_type = type(_refs(("", "", "")))
REFS_TUPLE = _refs_type if issubclass(_refs_type, tuple) else None
_ALL = slice(None)
_tuple_getitem = tuple.__getitem__


def ref_values(refs: Mapping[str, str]) -> tuple[str, str, str]:
    """A Shopify level's references as ``(inventory item gid, location gid, SKU as
    Shopify spells it)``: its own values, at C speed, when built by this module."""
    if type(refs) is REFS_TUPLE:
        return _tuple_getitem(refs, _ALL)
    return refs["inventory_item_id"], refs["location_id"], refs["sku"]


def item_facts(node: Mapping[str, Any], *, system: str, mapping: SkuMapping) -> ItemFacts | None:
    """The item's normalized SKU, pack size and flags; None for an item without a SKU."""
    raw_sku = node.get("sku")
    if not raw_sku:
        return None
    variant = node.get("variant") or {}
    return _facts(
        node["id"], raw_sku, node.get("tracked"), variant.get("inventoryPolicy"), system, mapping
    )


def _facts(
    item_id: Any, raw_sku: Any, tracked: Any, policy: Any, system: str, mapping: SkuMapping
) -> ItemFacts:
    sku = mapping.normalize_sku(raw_sku)
    flags = _flags(bool(tracked), policy)
    return ItemFacts(item_id, sku, mapping.pack_size(system, sku), flags, raw_sku=str(raw_sku))


#: an item's flags, one read-only map per distinct value (a handful: ``tracked`` and the
#: ``ProductVariantInventoryPolicy`` enum), shared by every item that has them (a dict
#: and a policy string per item cost 240 bytes, 24 MB for 100,000 items)
_FLAGS: dict[tuple[bool, str | None], Mapping[str, str | bool]] = {}
_FLAGS_LIMIT = 64


def _flags(tracked: bool, policy: Any) -> Mapping[str, str | bool]:
    """The flags of an item: the shared map, or one built (and shared, while the table
    has room, when the policy can be a key: a string or nothing)."""
    shareable = type(policy) is str or policy is None
    flags = _FLAGS.get((tracked, policy)) if shareable else None
    if flags is None:
        flags = (
            tuple_map(("tracked", "inventory_policy"), (tracked, sys.intern(str(policy))))
            if policy
            else tuple_map(("tracked",), (tracked,))
        )
        if shareable and len(_FLAGS) < _FLAGS_LIMIT:
            _FLAGS[(tracked, policy)] = flags
    return flags


class BulkLocation(msgspec.Struct, gc=False):
    id: Any


class BulkQuantity(msgspec.Struct, gc=False):
    name: str
    #: ``Int`` in Shopify's schema: msgspec refuses ``true``, ``2.5`` or ``"5"`` here
    quantity: int | None = None


class BulkVariant(msgspec.Struct, gc=False):
    inventoryPolicy: Any = None


class BulkLine(msgspec.Struct, gc=False, rename={"parent_id": "__parentId"}):
    """One line of the bulk inventory file (``bulk_inventory_items.graphql``) as msgspec
    decodes it: an ``InventoryItem`` (no ``parent_id``) or one of its
    ``InventoryLevel``s. Decoding a line into this costs about half of decoding it into
    dicts (a level's eight quantities are eight dicts otherwise), and the reader takes
    its fields as attributes (a first full read of 100,000 SKUs is 600,000 lines;
    BENCHMARKS.md, issue 16). A line msgspec does not fit into it (a quantity that is not
    an ``Int``, a variant that is not an object) is read as dicts, which names what is
    wrong. Fields are named as Shopify names them."""

    id: Any
    parent_id: Any = None
    location: BulkLocation | None = None
    quantities: list[BulkQuantity] | None = None
    updatedAt: Any = None
    sku: Any = None
    tracked: Any = None
    variant: BulkVariant | None = None


def line_facts(line: BulkLine, *, system: str, mapping: SkuMapping) -> ItemFacts | None:
    """:func:`item_facts` of an item's line decoded as a :class:`BulkLine`."""
    raw_sku = line.sku
    if not raw_sku:
        return None
    variant = line.variant
    policy = None if variant is None else variant.inventoryPolicy
    return _facts(line.id, raw_sku, line.tracked, policy, system, mapping)


class LevelReader:
    """Turns one read's ``InventoryLevel`` nodes (with ``location { id }`` and
    ``quantities``) into Levels: ``reader(facts, node, observed_at)``. Each location met
    is worked out once, and a node's quantities are taken out at C speed (a full read
    turns 500,000 levels of eight quantities each; BENCHMARKS.md, issue 16).

    Shopify's schema types ``InventoryQuantity.quantity`` as ``Int!``: a quantity of
    any other type (``true``, ``2.5``, ``"5"``) raises ``ValueError`` naming it (the
    connector reports a misshapen answer), never a guess at the count it meant. A
    quantity that is null or absent is a state the level does not report."""

    __slots__ = ("_mapping", "_places", "_system")

    def __init__(self, system: str, mapping: SkuMapping) -> None:
        self._system, self._mapping = system, mapping
        #: location gid -> (the gid interned, the Driftwatch location key)
        self._places: dict[str, tuple[str, str]] = {}

    def __call__(self, facts: ItemFacts, level: Mapping[str, Any], observed_at: datetime) -> Level:
        gid = level["location"]["id"]
        place = self._places.get(gid) if type(gid) is str else None
        if place is None:
            place = self._place(str(gid))
        location_gid, location = place
        quantities = level.get("quantities") or ()
        names = tuple(map(_NAME, quantities))
        try:
            counts: tuple[Any, ...] = tuple(map(_QUANTITY, quantities))
        except KeyError:  # a state without a quantity: not reported
            counts = tuple(q.get("quantity") for q in quantities)
        if {*map(type, counts)} - _INT:  # a state not reported, or not a count
            names, counts = _reported(names, counts)
        pack = facts.pack
        return _new_level(
            (
                self._system,
                facts.sku,
                location,
                # compact, its state names shared: a full read holds millions of levels
                tuple_map(names, counts if pack == 1 else [to_units(c, pack) for c in counts]),
                observed_at,
                parse_time(level.get("updatedAt")),
                "poll",
                _refs((facts.item_id, location_gid, facts.raw_sku or facts.sku)),
                facts.flags,
            )
        )

    def line(self, facts: ItemFacts, line: BulkLine, observed_at: datetime) -> Level | None:
        """The level of a level's line decoded as a :class:`BulkLine`, as ``__call__``
        builds it from dicts; None for a line with no location or quantities, or a
        quantity missing (read it as dicts: ``__call__`` says what is wrong or not
        reported)."""
        where, quantities = line.location, line.quantities
        if where is None or quantities is None:
            return None
        gid = where.id
        place = self._places.get(gid) if type(gid) is str else None
        if place is None:
            place = self._place(str(gid))
        location_gid, location = place
        counts = tuple(map(_COUNT, quantities))
        if None in counts:
            return None
        pack = facts.pack
        return _new_level(
            (
                self._system,
                facts.sku,
                location,
                tuple_map(
                    tuple(map(_STATE, quantities)),
                    counts if pack == 1 else [to_units(c, pack) for c in counts],
                ),
                observed_at,
                parse_time(line.updatedAt),
                "poll",
                _refs((facts.item_id, location_gid, facts.raw_sku or facts.sku)),
                facts.flags,
            )
        )

    def _place(self, gid: str) -> tuple[str, str]:
        gid = sys.intern(gid)  # a few locations, many levels
        place = (gid, self._mapping.location_key(self._system, gid) or gid)
        self._places[gid] = place
        return place


def _reported(
    names: tuple[str, ...], counts: tuple[Any, ...]
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The states whose quantity is given; ``ValueError`` for one that is not an Int."""
    kept = [(n, c) for n, c in zip(names, counts, strict=True) if c is not None]
    for name, count in kept:
        if type(count) is not int:
            shown = repr(count)[:40]
            raise ValueError(f"the quantity of {str(name)[:40]!r} is {shown}, not an Int")
    return tuple(n for n, _ in kept), tuple(c for _, c in kept)


_NAME, _QUANTITY = itemgetter("name"), itemgetter("quantity")
_STATE, _COUNT = attrgetter("name"), attrgetter("quantity")
_INT = frozenset({int})
_new_level: Callable[[tuple[Any, ...]], Level] = partial(tuple.__new__, Level)


#: a time Shopify wrote (``updatedAt``, ``createdAt``), parsed once per distinct string
parse_time = iso_time
