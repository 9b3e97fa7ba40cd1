"""The fakes of B1 in a process of their own:
``python -m bench.fakes SKUS LOCATIONS DIR [shuffled]``.

It seeds the fake Shopify (bulk operations), the fake WMS (paged REST) and the fake ERP
(a CSV export in DIR) with :mod:`bench.catalog`, prints one JSON line with their
addresses, then obeys JSON commands on stdin, one per line, answering each with a line:

* ``{"cmd": "change", "fraction": 0.001}``: change that fraction of the levels (half in
  the WMS, half in Shopify); answers ``{"changed": n}``;
* ``{"cmd": "stop"}``.

``shuffled``: the products are created in a shuffled order of SKUs
(:func:`bench.catalog.creation_order`): Shopify's bulk file then lists them out of SKU
order, as a shop's does; the WMS pages and the ERP exports in SKU order either way.

Two knobs differ from the fakes' defaults, and both only remove the fake's own cost:
the bulk operation completes as soon as it is polled (``complete_after = 0``), and the
WMS keeps its levels sorted between requests instead of sorting all of them for every
page (``FakeWMS.levels`` sorts the whole table per request: at 500,000 levels that is
about a second per page, a cost of the fake and not of the product).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from pathlib import Path

from bench import catalog
from sandbox.erp import FakeERP
from sandbox.shopify import FakeShopify
from sandbox.wms import FakeWMS, WmsLevel


class SortedWMS(FakeWMS):
    """The fake WMS with its sorted order cached until a level changes."""

    _sorted: list[WmsLevel] | None = None

    def set_level(self, sku: str, warehouse: str, **fields: int | None) -> WmsLevel:
        known = (sku, warehouse) in self._levels
        level = super().set_level(sku, warehouse, **fields)
        if not known:
            self._sorted = None
        elif self._sorted is not None:
            self._replace(level)
        return level

    def _replace(self, level: WmsLevel) -> None:
        assert self._sorted is not None
        lo, hi = 0, len(self._sorted)
        key = (level.sku, level.warehouse)
        while lo < hi:
            mid = (lo + hi) // 2
            if (self._sorted[mid].sku, self._sorted[mid].warehouse) < key:
                lo = mid + 1
            else:
                hi = mid
        self._sorted[lo] = level

    def levels(self) -> list[WmsLevel]:
        if self._sorted is None:
            self._sorted = super().levels()
        return self._sorted


class Fakes:
    def __init__(self, skus: int, locations: int, erp_dir: Path, shuffled: bool = False) -> None:
        self.skus, self.locations = skus, locations
        self.order = catalog.creation_order(skus, shuffled=shuffled)
        self.shopify = FakeShopify(bucket_size=2000, restore_rate=100)
        self.shopify.bulk.run_after = 0.0
        self.shopify.bulk.complete_after = 0.0
        self.wms = SortedWMS(token=catalog.WMS_TOKEN)
        self.erp = FakeERP(erp_dir)
        self.gids: list[str] = []
        self.items: list[str] = []

    def sku(self, i: int) -> str:
        return catalog.sku(self.order[i])

    def seed(self) -> None:
        for j in range(self.locations):
            self.gids.append(self.shopify.add_location(f"DC {j + 1}"))
        for i in range(self.skus):
            sku = self.sku(i)
            item = self.shopify.add_item(sku, title=f"Item {i}")
            self.items.append(item)
            for j in range(self.locations):
                q = catalog.base_quantity(i, j)
                self.shopify.set_quantities(
                    item, self.gids[j], available=catalog.shopify_available(i, j), committed=1
                )
                self.wms.set_level(
                    sku, catalog.warehouse(j), pickable=q, allocated=1, on_hand=q + 1, damaged=0
                )
                self.erp.set_level(sku, catalog.warehouse(j), q + 1)
        self.erp.export_now()

    def change(self, fraction: float) -> int:
        total = self.skus * self.locations
        count = max(1, round(total * fraction))
        step = max(1, total // count)
        changed = 0
        for n, index in enumerate(range(0, total, step)):
            if changed >= count:
                break
            i, j = divmod(index, self.locations)
            if n % 2 == 0:
                level = self.wms.level(self.sku(i), catalog.warehouse(j))
                self.wms.set_level(
                    level.sku,
                    level.warehouse,
                    pickable=level.pickable + 2,
                    allocated=level.allocated,
                    on_hand=level.on_hand + 2,
                    damaged=level.damaged,
                )
            else:
                now = self.shopify.quantities(self.items[i], self.gids[j])
                self.shopify.set_quantities(
                    self.items[i], self.gids[j], available=now["available"] + 2
                )
            changed += 1
        return changed

    def address(self) -> dict[str, object]:
        return {
            "shopify_url": self.shopify.url,
            "shopify_token": self.shopify.access_token,
            "wms_url": self.wms.base_url,
            "locations": self.gids,
        }


async def main(skus: int, locations: int, erp_dir: Path, shuffled: bool) -> None:
    fakes = Fakes(skus, locations, erp_dir, shuffled)
    # Millions of long-lived objects: without this, each full collection walks them all
    # again and seeding 100,000 SKUs takes minutes instead of seconds.
    gc.disable()
    fakes.seed()
    gc.freeze()
    gc.enable()
    await fakes.shopify.start()
    await fakes.wms.start()
    print(json.dumps(fakes.address()), flush=True)
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            command = json.loads(line)
            if command["cmd"] == "change":
                print(json.dumps({"changed": fakes.change(float(command["fraction"]))}), flush=True)
            else:
                break
    finally:
        await fakes.wms.stop()
        await fakes.shopify.stop()


if __name__ == "__main__":
    shuffled = sys.argv[4:] == ["shuffled"]
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), shuffled))
