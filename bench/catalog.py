"""The benchmarks' synthetic catalog: deterministic quantities for N SKUs × L locations.

Every system agrees except a known sprinkle of drifts (Shopify shows a few units more
for one level in every :data:`DRIFT_EVERY`), so the diff has real work to report.
"""

from __future__ import annotations

import random

WMS_TOKEN = "wms-bench-token"
DRIFT_EVERY = 1000
SETTLE_SECONDS = 0


def sku(i: int) -> str:
    return f"SKU-{i:06d}"


def creation_order(skus: int, *, shuffled: bool = False) -> list[int]:
    """The SKU of each product in the order the fakes create them: by SKU (B1), or
    ``shuffled`` (the same shuffle every run), as a shop creates products in an order of
    its own, and Shopify's bulk file lists them in it."""
    order = list(range(skus))
    if shuffled:
        random.Random(16).shuffle(order)
    return order


def location_key(j: int) -> str:
    return f"loc{j + 1}"


def warehouse(j: int) -> str:
    return f"WH-{j + 1}"


def base_quantity(i: int, j: int) -> int:
    return (i * 31 + j * 17) % 97 + 3


def drifts(i: int, j: int) -> bool:
    return (i * 5 + j) % DRIFT_EVERY == 0


def shopify_available(i: int, j: int) -> int:
    return base_quantity(i, j) + (4 if drifts(i, j) else 0)
