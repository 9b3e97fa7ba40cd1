"""The fake shop's world: locations, products, variants, inventory items and levels.

Quantities follow Shopify's inventory states. ``on_hand`` is never stored: it is the sum
of ``available``, ``committed``, ``reserved``, ``damaged``, ``safety_stock`` and
``quality_control``; ``incoming`` stands apart. Setting ``on_hand`` therefore moves
``available`` by the same delta, and setting ``available`` moves ``on_hand``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.shopify.clock import Clock

ON_HAND_PARTS = ("available", "committed", "reserved", "damaged", "safety_stock", "quality_control")
STORED_NAMES = (*ON_HAND_PARTS, "incoming")
QUANTITY_NAMES = (
    "available",
    "on_hand",
    "committed",
    "reserved",
    "damaged",
    "safety_stock",
    "quality_control",
    "incoming",
)
GID_PREFIX = "gid://shopify/"


def gid(kind: str, num: int) -> str:
    return f"{GID_PREFIX}{kind}/{num}"


def parse_gid(value: object, kind: str) -> int | None:
    """The numeric id of ``gid://shopify/<kind>/<n>`` (query string ignored), else None."""
    if not isinstance(value, str) or not value.startswith(f"{GID_PREFIX}{kind}/"):
        return None
    tail = value[len(GID_PREFIX) + len(kind) + 1 :].split("?", 1)[0]
    return int(tail) if tail.isdigit() else None


@dataclass(eq=False)
class Location:
    num: int
    name: str
    level_num: int
    active: bool
    created_at: datetime
    updated_at: datetime
    #: set for a legacy fulfillment-service location: the service's name. Shopify lists
    #: these only when asked (``locations(includeLegacy: true)``, "Whether to include the
    #: legacy locations of fulfillment services", 2026-07 schema;
    #: https://shopify.dev/docs/api/admin-graphql/latest/queries/locations#arguments-includeLegacy),
    #: but inventory stocked there has levels like any other.
    fulfillment_service: str | None = None

    @property
    def gid(self) -> str:
        return gid("Location", self.num)


@dataclass(eq=False)
class Product:
    num: int
    title: str
    created_at: datetime
    variants: list[Variant] = field(default_factory=list)

    @property
    def gid(self) -> str:
        return gid("Product", self.num)


@dataclass(eq=False)
class Variant:
    num: int
    sku: str | None
    inventory_policy: str
    product: Product
    created_at: datetime
    updated_at: datetime
    item: Item | None = None

    @property
    def gid(self) -> str:
        return gid("ProductVariant", self.num)


@dataclass(eq=False)
class Level:
    row: int
    item: Item
    location: Location
    active: bool
    created_at: datetime
    updated_at: datetime
    stored: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STORED_NAMES, 0))
    changed_at: dict[str, datetime | None] = field(
        default_factory=lambda: dict.fromkeys(STORED_NAMES, None)
    )

    @property
    def gid(self) -> str:
        return (
            f"{GID_PREFIX}InventoryLevel/{self.location.level_num}"
            f"?inventory_item_id={self.item.num}"
        )

    def get(self, name: str) -> int:
        if name == "on_hand":
            return sum(self.stored[n] for n in ON_HAND_PARTS)
        return self.stored[name]

    def snapshot(self) -> dict[str, int]:
        return {name: self.get(name) for name in QUANTITY_NAMES}


@dataclass(eq=False)
class Item:
    num: int
    sku: str | None
    tracked: bool
    variant: Variant
    created_at: datetime
    updated_at: datetime
    levels: dict[int, Level] = field(default_factory=dict)  # by location num

    @property
    def gid(self) -> str:
        return gid("InventoryItem", self.num)


class UnknownName(ValueError):
    """A quantity name outside Shopify's inventory states."""


class Store:
    """Everything the fake shop knows, with the operations tests and mutations use."""

    def __init__(self, clock: Clock, shop_domain: str = "driftwatch-sandbox.myshopify.com") -> None:
        self.clock = clock
        #: the shop's *.myshopify.com domain (``shop { myshopifyDomain }``, webhooks)
        self.shop_domain = shop_domain
        self.locations: dict[int, Location] = {}
        self.products: dict[int, Product] = {}
        self.variants: dict[int, Variant] = {}
        self.items: dict[int, Item] = {}
        #: Called with a level each time one of its quantities changes (webhooks listen).
        self.listeners: list[Callable[[Level], None]] = []
        self._next = {
            "Location": 75_310_000_001,
            "Product": 9_100_000_000_001,
            "ProductVariant": 48_200_000_000_001,
            "InventoryItem": 50_300_000_000_001,
            "InventoryLevel": 120_400_000_001,
            "row": 60_000_000_000_001,
            "InventoryAdjustmentGroup": 54_000_000_000_001,
        }

    def next_id(self, kind: str) -> int:
        num = self._next[kind]
        self._next[kind] = num + 1
        return num

    # -- building the world -------------------------------------------------------------
    def add_location(
        self, name: str, *, active: bool = True, fulfillment_service: str | None = None
    ) -> Location:
        """A location; with ``fulfillment_service``, a legacy location of that service.
        It can be added while the shop is being read, as a merchant adds one in the
        admin."""
        now = self.clock.now()
        loc = Location(
            self.next_id("Location"),
            name,
            self.next_id("InventoryLevel"),
            active,
            now,
            now,
            fulfillment_service,
        )
        self.locations[loc.num] = loc
        return loc

    def add_item(
        self,
        sku: str | None,
        *,
        tracked: bool = True,
        inventory_policy: str = "DENY",
        title: str | None = None,
        locations: list[Location] | None = None,
    ) -> Item:
        """A product with one variant and its inventory item, stocked at ``locations``
        (default: every active location a merchant manages, i.e. not a legacy
        fulfillment-service location).

        Nothing stops two items from sharing a SKU, as on Shopify: SKUs are not unique
        there (``InventoryItem.duplicateSkuCount``, "The number of inventory items that
        share the same SKU with this item", 2026-07 schema;
        https://shopify.dev/docs/api/admin-graphql/latest/objects/InventoryItem).
        """
        now = self.clock.now()
        product = Product(self.next_id("Product"), title or f"Product {sku}", now)
        variant = Variant(
            self.next_id("ProductVariant"), sku, inventory_policy.upper(), product, now, now
        )
        product.variants.append(variant)
        item = Item(self.next_id("InventoryItem"), sku, tracked, variant, now, now)
        variant.item = item
        self.products[product.num] = product
        self.variants[variant.num] = variant
        self.items[item.num] = item
        stocked = (
            locations
            if locations is not None
            else [
                loc
                for loc in self.locations.values()
                if loc.active and loc.fulfillment_service is None
            ]
        )
        for loc in stocked:
            self.stock(item, loc)
        return item

    def stock(self, item: Item, location: Location) -> Level:
        """Activate ``item`` at ``location`` (idempotent)."""
        level = item.levels.get(location.num)
        now = self.clock.now()
        if level is None:
            level = Level(self.next_id("row"), item, location, True, now, now)
            level.changed_at["available"] = now
            item.levels[location.num] = level
        level.active = True
        return level

    def delete_product(self, item: Item) -> None:
        """Delete the product of ``item`` with its variants and their inventory items, as
        a merchant deletes a listing in the admin: none of them is read again."""
        product = item.variant.product
        for variant in product.variants:
            self.variants.pop(variant.num, None)
            if variant.item is not None:
                self.items.pop(variant.item.num, None)
        self.products.pop(product.num, None)

    # -- lookups ------------------------------------------------------------------------
    def item(self, ref: str) -> Item:
        """An item by inventory item gid or by SKU (the first with that SKU)."""
        num = parse_gid(ref, "InventoryItem")
        if num is not None and num in self.items:
            return self.items[num]
        for item in self.items.values():
            if item.sku == ref:
                return item
        raise KeyError(f"no inventory item {ref!r}")

    def location(self, ref: str) -> Location:
        num = parse_gid(ref, "Location")
        if num is not None and num in self.locations:
            return self.locations[num]
        for loc in self.locations.values():
            if loc.name == ref:
                return loc
        raise KeyError(f"no location {ref!r}")

    def level(self, item_ref: str, location_ref: str) -> Level:
        item, loc = self.item(item_ref), self.location(location_ref)
        level = item.levels.get(loc.num)
        if level is None:
            raise KeyError(f"{item_ref!r} is not stocked at {location_ref!r}")
        return level

    def level_by_gid(self, value: str) -> Level | None:
        if not value.startswith(f"{GID_PREFIX}InventoryLevel/"):
            return None
        head, _, query = value.partition("?inventory_item_id=")
        level_num = parse_gid(head, "InventoryLevel")
        item = self.items.get(int(query)) if query.isdigit() else None
        if item is None or level_num is None:
            return None
        for level in item.levels.values():
            if level.location.level_num == level_num:
                return level
        return None

    def node(self, value: str) -> Any:
        """Any supported object by gid, or None."""
        kind = value[len(GID_PREFIX) :].split("/", 1)[0] if value.startswith(GID_PREFIX) else ""
        if kind == "InventoryLevel":
            return self.level_by_gid(value)
        tables: dict[str, dict[int, Any]] = {
            "Location": self.locations,
            "Product": self.products,
            "ProductVariant": self.variants,
            "InventoryItem": self.items,
        }
        num = parse_gid(value, kind)
        return tables[kind].get(num) if kind in tables and num is not None else None

    # -- quantities ---------------------------------------------------------------------
    def change(self, level: Level, name: str, delta: int) -> list[tuple[str, int]]:
        """Move ``name`` by ``delta``; return the (name, delta) pairs Shopify reports."""
        if delta == 0:
            return []
        now = self.clock.now()
        if name == "on_hand":
            name = "available"
        if name not in STORED_NAMES:
            raise UnknownName(name)
        level.stored[name] += delta
        level.changed_at[name] = now
        level.updated_at = now
        level.item.updated_at = now
        for listener in self.listeners:
            listener(level)
        if name == "incoming":
            return [(name, delta)]
        return [(name, delta), ("on_hand", delta)]

    def set_quantities(self, level: Level, states: dict[str, int]) -> None:
        """Set absolute values; ``on_hand`` (if given) is applied last, through available."""
        for name in states:
            if name not in QUANTITY_NAMES:
                raise UnknownName(name)
        for name, value in states.items():
            if name != "on_hand":
                self.change(level, name, value - level.get(name))
        if "on_hand" in states:
            self.change(level, "on_hand", states["on_hand"] - level.get("on_hand"))

    def simulate_order(self, level: Level, qty: int) -> None:
        """A customer order: ``qty`` moves from available to committed (on_hand unchanged)."""
        self.change(level, "available", -qty)
        self.change(level, "committed", qty)

    def simulate_fulfillment(self, level: Level, qty: int) -> None:
        """Shipping committed units: committed and on_hand drop by ``qty``."""
        self.change(level, "committed", -qty)
