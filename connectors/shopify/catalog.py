"""What the Shopify connector has learned of the shop's items from its reads.

Shopify does not enforce unique SKUs: two inventory items may carry the same SKU
(``InventoryItem.duplicateSkuCount``, "The number of inventory items that share the same
SKU with this item"; https://shopify.dev/docs/api/admin-graphql/latest/objects/InventoryItem).
Two spellings may also normalize to one Driftwatch SKU. So a SKU maps to a *set* of
items, each stocked at its own locations, and a write picks the one item stocked at the
location written, or is refused: Driftwatch never guesses between two items.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


class AmbiguousSku(ValueError):
    """A write names a SKU that more than one Shopify inventory item carries there."""

    def __init__(self, system: str, sku: str, location: str, items: Iterable[str]) -> None:
        self.items = sorted(items)
        super().__init__(
            f"{system} has {len(self.items)} inventory items with SKU {sku} "
            f"({', '.join(self.items)}) at {location}: Shopify does not enforce unique SKUs, "
            "and Driftwatch will not guess which one to write. Give each item its own SKU "
            "in Shopify."
        )


@dataclass
class Catalog:
    """Normalized SKU → inventory items, item → the locations it is stocked at, and how
    Shopify spells each SKU (searches must use Shopify's spelling)."""

    items: dict[str, set[str]] = field(default_factory=dict)
    stocked: dict[str, set[str]] = field(default_factory=dict)
    spellings: dict[str, set[str]] = field(default_factory=dict)
    skus: dict[str, str] = field(default_factory=dict)

    def add_item(self, sku: str, item_id: str, spelling: str) -> None:
        self.items.setdefault(sku, set()).add(item_id)
        self.stocked.setdefault(item_id, set())
        self.spellings.setdefault(sku, set()).add(spelling or sku)
        self.skus[item_id] = sku

    def add_level(self, item_id: str, location_id: str) -> None:
        self.stocked.setdefault(item_id, set()).add(location_id)

    def knows(self, sku: str) -> bool:
        return sku in self.items

    def spellings_of(self, sku: str) -> set[str]:
        """Every spelling of ``sku`` seen in Shopify (the SKU itself if none was)."""
        return self.spellings.get(sku) or {sku}

    def replace(self, newer: Catalog) -> None:
        """A full read: what it saw is all there is."""
        self.items, self.stocked = newer.items, newer.stocked
        self.spellings, self.skus = newer.spellings, newer.skus

    def update(self, newer: Catalog, skus: Iterable[str]) -> None:
        """A read of ``skus``: for those SKUs, what it saw replaces what was known."""
        for sku in skus:
            for item_id in self.items.pop(sku, set()):
                self.stocked.pop(item_id, None)
                if self.skus.get(item_id) == sku:
                    del self.skus[item_id]
            self.spellings.pop(sku, None)
            for item_id in newer.items.get(sku, set()):
                self.items.setdefault(sku, set()).add(item_id)
                self.stocked[item_id] = set(newer.stocked.get(item_id, set()))
                self.skus[item_id] = sku
            if sku in newer.spellings:
                self.spellings[sku] = set(newer.spellings[sku])

    def item_for(self, system: str, sku: str, location_id: str, location: str) -> str:
        """The one item of ``sku`` to write at ``location_id``: the item stocked there,
        or the SKU's only item. :class:`AmbiguousSku` when several items qualify;
        ``KeyError`` when the SKU has no item."""
        items = self.items.get(sku)
        if not items:
            raise KeyError(f"SKU {sku} is not in {system}")
        here = [i for i in items if location_id in self.stocked.get(i, ())]
        if len(here) == 1:
            return here[0]
        if len(here) > 1 or len(items) > 1:
            raise AmbiguousSku(system, sku, location, here or items)
        return next(iter(items))
