"""Turning Shopify inventory items and their levels into :class:`Level`s.

One normalization for every way the connector reads: the paged ``inventoryItems`` query
(levels nested under their item) and the bulk operation's JSONL (levels on their own
lines, joined to their item by ``__parentId``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.levels import Level, build_level, map_type, tuple_map
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


def item_facts(node: Mapping[str, Any], *, system: str, mapping: SkuMapping) -> ItemFacts | None:
    """The item's normalized SKU, pack size and flags; None for an item without a SKU."""
    raw_sku = node.get("sku")
    if not raw_sku:
        return None
    sku = mapping.normalize_sku(raw_sku)
    variant = node.get("variant") or {}
    flags: dict[str, str | bool] = {"tracked": bool(node.get("tracked"))}
    if variant.get("inventoryPolicy"):
        flags["inventory_policy"] = str(variant["inventoryPolicy"])
    return ItemFacts(node["id"], sku, mapping.pack_size(system, sku), flags, raw_sku=str(raw_sku))


def level_of(
    facts: ItemFacts,
    level: Mapping[str, Any],
    *,
    system: str,
    mapping: SkuMapping,
    observed_at: datetime,
) -> Level:
    """One ``InventoryLevel`` (with ``location { id }`` and ``quantities``) as a Level."""
    location_gid = sys.intern(str(level["location"]["id"]))  # a few locations, many levels
    location = mapping.location_key(system, location_gid) or location_gid
    quantities = level.get("quantities") or []
    # two passes, not a dict built per level: a full read holds millions of levels
    names = [q["name"] for q in quantities]
    counts = [q.get("quantity") for q in quantities]
    if None in counts:  # a state the level does not report
        names = [n for n, c in zip(names, counts, strict=True) if c is not None]
        counts = [c for c in counts if c is not None]
    pack = facts.pack
    units = map(int, counts) if pack == 1 else (to_units(int(c), pack) for c in counts)
    return build_level(
        system=system,
        sku=facts.sku,
        location=location,
        # compact, its state names shared: a full read holds millions of levels
        quantities=tuple_map(names, units),
        observed_at=observed_at,
        changed_at=parse_time(level.get("updatedAt")),
        refs=_refs((facts.item_id, location_gid, facts.raw_sku or facts.sku)),
        flags=facts.flags,
    )


#: a time Shopify wrote (``updatedAt``, ``createdAt``), parsed once per distinct string
parse_time = iso_time
