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
    Shopify spells each SKU (searches must use Shopify's spelling).

    Held compactly: the connector keeps one for the shop's every item between reads, and
    sets cost 216 bytes or more each (three per item made 1.1 KB an item, 110 MB for
    100,000 items; BENCHMARKS.md, issue 16). A SKU's items are a tuple (one item, almost
    always), the locations an item is stocked at a bitmask over :attr:`places` (a shop
    has a few locations; a small int is shared), and spellings are kept only for a SKU
    that some item spells otherwise than Driftwatch does.
    """

    #: normalized SKU -> its items' gids
    items: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: item gid -> the locations it is stocked at, as a bitmask of their ``places`` bits
    stocked: dict[str, int] = field(default_factory=dict)
    #: location gid -> its bit in ``stocked``
    places: dict[str, int] = field(default_factory=dict)
    #: normalized SKU -> every spelling seen, only for a SKU spelled otherwise somewhere
    spellings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: item gid -> its normalized SKU
    skus: dict[str, str] = field(default_factory=dict)

    def add_item(self, sku: str, item_id: str, spelling: str) -> None:
        items = self.items.get(sku, ())
        spelling = spelling or sku
        known = self.spellings.get(sku)
        if known is None and spelling != sku:
            # every item before spelled it as Driftwatch does (if there was one)
            known = (sku,) if items else ()
        if known is not None and spelling not in known:
            self.spellings[sku] = (*known, spelling)
        if item_id not in items:
            self.items[sku] = (*items, item_id)
        self.stocked.setdefault(item_id, 0)
        self.skus[item_id] = sku

    def add_level(self, item_id: str, location_id: str) -> None:
        self.stocked[item_id] = self.stocked.get(item_id, 0) | self._bit(location_id)

    def add_locations(self, item_id: str, location_ids: Iterable[str]) -> None:
        """``add_level`` for each of ``location_ids``, in that order."""
        places, mask = self.places, 0
        for location_id in location_ids:
            bit = places.get(location_id)
            mask |= self._bit(location_id) if bit is None else bit
        self.stocked[item_id] = self.stocked.get(item_id, 0) | mask

    def _bit(self, location_id: str) -> int:
        bit = self.places.get(location_id)
        if bit is None:
            bit = self.places[location_id] = 1 << len(self.places)
        return bit

    def knows(self, sku: str) -> bool:
        return sku in self.items

    def is_stocked(self, item_id: str, location_id: str) -> bool:
        """Whether a read saw ``item_id`` stocked at ``location_id``."""
        bit = self.places.get(location_id)
        return bit is not None and bool(self.stocked.get(item_id, 0) & bit)

    def locations_of(self, item_id: str) -> list[str]:
        """The locations a read saw ``item_id`` stocked at."""
        mask = self.stocked.get(item_id, 0)
        return [gid for gid, bit in self.places.items() if mask & bit]

    def spellings_of(self, sku: str) -> set[str]:
        """Every spelling of ``sku`` seen in Shopify (the SKU itself if none was)."""
        return set(self.spellings.get(sku, ())) or {sku}

    def replace(self, newer: Catalog) -> None:
        """A full read: what it saw is all there is."""
        self.items, self.stocked, self.places = newer.items, newer.stocked, newer.places
        self.spellings, self.skus = newer.spellings, newer.skus

    def update(self, newer: Catalog, skus: Iterable[str]) -> None:
        """A read of ``skus``: for those SKUs, what it saw replaces what was known."""
        for sku in skus:
            for item_id in self.items.pop(sku, ()):
                self.stocked.pop(item_id, None)
                if self.skus.get(item_id) == sku:
                    del self.skus[item_id]
            self.spellings.pop(sku, None)
            for item_id in newer.items.get(sku, ()):
                self.add_item(sku, item_id, sku)  # its spellings are taken below
                self.stocked[item_id] = 0  # where this read saw it, nothing older
                for location_id in newer.locations_of(item_id):
                    self.add_level(item_id, location_id)
            if sku in newer.spellings:
                self.spellings[sku] = newer.spellings[sku]

    def item_for(self, system: str, sku: str, location_id: str, location: str) -> str:
        """The one item of ``sku`` to write at ``location_id``: the item stocked there,
        or the SKU's only item. :class:`AmbiguousSku` when several items qualify;
        ``KeyError`` when the SKU has no item."""
        items = self.items.get(sku)
        if not items:
            raise KeyError(f"SKU {sku} is not in {system}")
        here = [i for i in items if self.is_stocked(i, location_id)]
        if len(here) == 1:
            return here[0]
        if len(here) > 1 or len(items) > 1:
            raise AmbiguousSku(system, sku, location, here or items)
        return items[0]
