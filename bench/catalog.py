"""The benchmarks' synthetic catalog: deterministic quantities for N SKUs × L locations.

Every system agrees except a known sprinkle of drifts (Shopify shows a few units more
for one level in every :data:`DRIFT_EVERY`), so the diff has real work to report.
"""

from __future__ import annotations

WMS_TOKEN = "wms-bench-token"
DRIFT_EVERY = 1000
SETTLE_SECONDS = 0


#: multiplies a SKU's index modulo a million for a scrambled catalog: odd and not a
#: multiple of 5, so coprime with 10**6 and the SKUs stay distinct
_SCRAMBLE = 482_711


def sku(i: int, *, scrambled: bool = False) -> str:
    """The ``i``-th SKU: in order of ``i`` (the default), or ``scrambled``, as a shop's
    SKUs come in the order its products were created rather than SKU order (a million
    SKUs at most)."""
    return f"SKU-{(i * _SCRAMBLE) % 1_000_000 if scrambled else i:06d}"


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
