"""Validation and application of quantity writes (set and adjust), as Shopify does them.

Every check answers a userError whose ``field`` path and ``code`` follow the captures;
any error means nothing in the call is applied. A stale ``changeFromQuantity`` fails the
whole call with ``CHANGE_FROM_QUANTITY_STALE``. Applied changes are reported as
``InventoryAdjustmentGroup`` changes (``available`` then ``on_hand``) and logged as
:class:`Write` records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sandbox.shopify.clock import iso
from sandbox.shopify.resolvers import RESOLVERS, TYPE_OF, Context, Info, attr
from sandbox.shopify.state import Item, Level, Location, Store, gid, parse_gid

REASONS = (
    "correction",
    "cycle_count_available",
    "damaged",
    "movement_canceled",
    "movement_created",
    "movement_received",
    "movement_updated",
    "other",
    "promotion",
    "quality_control",
    "received",
    "reservation_created",
    "reservation_deleted",
    "reservation_updated",
    "restock",
    "safety_stock",
    "shrinkage",
)
ADJUSTABLE = ("available", "damaged", "incoming", "quality_control", "reserved", "safety_stock")


@dataclass(frozen=True)
class Write:
    """One applied quantity change, as tests assert exactly-once on it."""

    mutation: str
    idempotency_key: str | None
    item_id: str
    sku: str | None
    location_id: str
    name: str
    before: int
    after: int
    change_from_quantity: int | None
    reason: str
    reference_document_uri: str | None
    at: datetime
    group_id: str


@dataclass
class Group:
    num: int
    created_at: datetime
    reason: str
    reference_document_uri: str | None
    changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def gid(self) -> str:
        return gid("InventoryAdjustmentGroup", self.num)


def _err(path: list[str | int], message: str, code: str) -> dict[str, Any]:
    return {"field": [str(p) for p in path], "message": message, "code": code}


def _valid_uri(uri: str) -> bool:
    parts = urlsplit(uri)
    if not parts.scheme or not (parts.netloc or parts.path):
        return False
    if parts.scheme == "gid":
        return bool(parts.netloc) and len([p for p in parts.path.split("/") if p]) >= 2
    return True


class Adjuster:
    """Applies validated quantity writes to the store and keeps the write log."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writes: list[Write] = []
        self.groups: dict[int, Group] = {}

    def _common(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        errors = []
        if data["reason"] not in REASONS:
            errors.append(
                _err(
                    ["input", "reason"],
                    f"The specified reason is invalid. Valid values are: {', '.join(REASONS)}.",
                    "INVALID_REASON",
                )
            )
        uri = data.get("referenceDocumentUri")
        if uri is not None and not _valid_uri(uri):
            errors.append(
                _err(
                    ["input", "referenceDocumentUri"],
                    "The specified reference document is invalid.",
                    "INVALID_REFERENCE_DOCUMENT",
                )
            )
        return errors

    def _where(
        self, entry: dict[str, Any], at: list[str | int], errors: list[dict[str, Any]]
    ) -> Level | None:
        item_num = parse_gid(entry["inventoryItemId"], "InventoryItem")
        loc_num = parse_gid(entry["locationId"], "Location")
        item: Item | None = self.store.items.get(item_num) if item_num is not None else None
        loc: Location | None = self.store.locations.get(loc_num) if loc_num is not None else None
        if item is None:
            errors.append(
                _err(
                    [*at, "inventoryItemId"],
                    "The specified inventory item could not be found.",
                    "INVALID_INVENTORY_ITEM",
                )
            )
        if loc is None:
            errors.append(
                _err(
                    [*at, "locationId"],
                    "The specified location could not be found.",
                    "INVALID_LOCATION",
                )
            )
        if item is None or loc is None:
            return None
        level = item.levels.get(loc.num)
        if level is None or not level.active:
            errors.append(
                _err(
                    [*at, "locationId"],
                    "The specified inventory item is not stocked at the location.",
                    "ITEM_NOT_STOCKED_AT_LOCATION",
                )
            )
            return None
        return level

    @staticmethod
    def _stale(at: list[str | int]) -> dict[str, Any]:
        return _err(
            [*at, "changeFromQuantity"],
            "The changeFromQuantity value does not match persisted value.",
            "CHANGE_FROM_QUANTITY_STALE",
        )

    # -- inventorySetQuantities ---------------------------------------------------------
    def set_quantities(
        self, data: dict[str, Any], key: str | None, now: datetime
    ) -> dict[str, Any]:
        name = data["name"]
        errors = []
        if name not in ("available", "on_hand"):
            errors.append(
                _err(
                    ["input", "name"],
                    "The quantity name must be either 'available' or 'on_hand'.",
                    "INVALID_NAME",
                )
            )
        errors += self._common(data)
        if errors:
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}
        pairs = [(e["inventoryItemId"], e["locationId"]) for e in data["quantities"]]
        levels: list[Level | None] = []
        for i, entry in enumerate(data["quantities"]):
            at: list[str | int] = ["input", "quantities", i]
            levels.append(self._where(entry, at, errors))
            if pairs.count(pairs[i]) > 1:
                errors.append(
                    _err(
                        [*at, "locationId"],
                        "The combination of inventoryItemId and locationId must be unique.",
                        "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                    )
                )
            qty = entry["quantity"]
            if qty > 1_000_000_000:
                errors.append(
                    _err(
                        [*at, "quantity"],
                        "The quantity can't be higher than 1,000,000,000.",
                        "INVALID_QUANTITY_TOO_HIGH",
                    )
                )
            elif qty < 0 and name == "on_hand":
                errors.append(
                    _err(
                        [*at, "quantity"],
                        "The quantity can't be negative.",
                        "INVALID_QUANTITY_NEGATIVE",
                    )
                )
            elif qty < -1_000_000_000:
                errors.append(
                    _err(
                        [*at, "quantity"],
                        "The quantity can't be lower than -1,000,000,000.",
                        "INVALID_QUANTITY_TOO_LOW",
                    )
                )
        if not errors:
            errors = [
                self._stale(["input", "quantities", i])
                for i, (e, lv) in enumerate(zip(data["quantities"], levels, strict=True))
                if lv
                and e["changeFromQuantity"] is not None
                and e["changeFromQuantity"] != lv.get(name)
            ]
        if errors:
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}
        plan = [
            (lv, e["quantity"] - lv.get(name), e)
            for e, lv in zip(data["quantities"], levels, strict=True)
            if lv
        ]
        return self._apply("inventorySetQuantities", name, plan, data, key, now)

    # -- inventoryAdjustQuantities ------------------------------------------------------
    def adjust_quantities(
        self, data: dict[str, Any], key: str | None, now: datetime
    ) -> dict[str, Any]:
        name = data["name"]
        errors = []
        if name not in ADJUSTABLE:
            errors.append(
                _err(
                    ["input", "name"],
                    "The specified quantity name is invalid. Valid "
                    f"values are: {', '.join(ADJUSTABLE)}.",
                    "INVALID_QUANTITY_NAME",
                )
            )
        errors += self._common(data)
        if errors:
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}
        levels: list[Level | None] = []
        for i, entry in enumerate(data["changes"]):
            at: list[str | int] = ["input", "changes", i]
            levels.append(level := self._where(entry, at, errors))
            ledger = entry.get("ledgerDocumentUri")
            if name == "available" and ledger is not None:
                errors.append(
                    _err(
                        [*at, "ledgerDocumentUri"],
                        "A ledger document URI is not allowed when adjusting available.",
                        "INVALID_AVAILABLE_DOCUMENT",
                    )
                )
            elif name != "available" and ledger is None:
                errors.append(
                    _err(
                        [*at, "ledgerDocumentUri"],
                        "A ledger document URI is required except when adjusting available.",
                        "INVALID_QUANTITY_DOCUMENT",
                    )
                )
            after = (level.get(name) if level else 0) + entry["delta"]
            if after > 2_000_000_000:
                errors.append(
                    _err(
                        [*at, "delta"],
                        "The quantity can't be higher than 2,000,000,000.",
                        "INVALID_QUANTITY_TOO_HIGH",
                    )
                )
            elif after < -2_000_000_000:
                errors.append(
                    _err(
                        [*at, "delta"],
                        "The quantity can't be lower than -2,000,000,000.",
                        "INVALID_QUANTITY_TOO_LOW",
                    )
                )
        if not errors:
            errors = [
                self._stale(["input", "changes", i])
                for i, (e, lv) in enumerate(zip(data["changes"], levels, strict=True))
                if lv
                and e["changeFromQuantity"] is not None
                and e["changeFromQuantity"] != lv.get(name)
            ]
        if errors:
            return {"inventoryAdjustmentGroup": None, "userErrors": errors}
        plan = [(lv, e["delta"], e) for e, lv in zip(data["changes"], levels, strict=True) if lv]
        return self._apply("inventoryAdjustQuantities", name, plan, data, key, now)

    # -- applying -----------------------------------------------------------------------
    def _apply(
        self,
        mutation: str,
        name: str,
        plan: list[tuple[Level, int, dict[str, Any]]],
        data: dict[str, Any],
        key: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        group = Group(
            self.store.next_id("InventoryAdjustmentGroup"),
            now,
            data["reason"],
            data.get("referenceDocumentUri"),
        )
        for level, delta, entry in plan:
            if delta == 0:
                continue
            before = level.get(name)
            for changed, moved in self.store.change(level, name, delta):
                group.changes.append(
                    {
                        "name": changed,
                        "delta": moved,
                        "quantityAfterChange": None,
                        "ledgerDocumentUri": entry.get("ledgerDocumentUri"),
                        "item": level.item,
                        "location": level.location,
                    }
                )
            self.writes.append(
                Write(
                    mutation,
                    key,
                    level.item.gid,
                    level.item.sku,
                    level.location.gid,
                    name,
                    before,
                    level.get(name),
                    entry["changeFromQuantity"],
                    data["reason"],
                    data.get("referenceDocumentUri"),
                    now,
                    group.gid,
                )
            )
        if not group.changes:
            return {"inventoryAdjustmentGroup": None, "userErrors": []}
        self.groups[group.num] = group
        return {"inventoryAdjustmentGroup": group, "userErrors": []}


attr(
    "InventoryAdjustmentGroup",
    id=lambda g: g.gid,
    reason=lambda g: g.reason,
    createdAt=lambda g: iso(g.created_at),
    referenceDocumentUri=lambda g: g.reference_document_uri,
    app=lambda g: None,
    staffMember=lambda g: None,
)


def _changes(g: Group, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    items, locs, names = (
        args.get("inventoryItemIds"),
        args.get("locationIds"),
        args.get("quantityNames"),
    )
    return [
        c
        for c in g.changes
        if (items is None or c["item"].gid in items)
        and (locs is None or c["location"].gid in locs)
        and (names is None or c["name"] in names)
    ]


TYPE_OF[Group] = "InventoryAdjustmentGroup"
RESOLVERS[("InventoryAdjustmentGroup", "changes")] = _changes
