"""A small configuration and a scripted level history for the signal-chain tests, with
the answers worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ledger import Ledger, LevelObservation
from monitors.config import Config, config_from_dict

#: Monday 2 November 2026, 00:00 UTC: the measured week is [T0, T0 + 7 days).
T0 = datetime(2026, 11, 2, tzinfo=UTC)
NOW = T0 + timedelta(days=7)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def at(hours: float = 0, minutes: float = 0, days: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours, minutes=minutes)


def chain_config(**extra: Any) -> Config:
    data: dict[str, Any] = {
        "timezone": "UTC",
        "source_of_truth": ["wms", "erp"],
        "systems": [
            {"name": "shopify", "kind": "shopify", "shop_url": "http://127.0.0.1:1"},
            {
                "name": "wms",
                "kind": "rest",
                "role": "warehouse",
                "base_url": "http://127.0.0.1:2",
                "list": {"path": "/levels"},
                "fields": {
                    "sku": "sku",
                    "location": "wh",
                    "quantities": {"available": "free", "committed": "alloc"},
                },
            },
            {
                "name": "erp",
                "kind": "csv",
                "role": "erp",
                "directory": "drops",
                "columns": {"sku": "Item", "location": "Whs", "quantities": {"available": "Q"}},
            },
        ],
        "locations": {"east": {"shopify": "gid://shopify/Location/1", "wms": "E", "erp": "01"}},
        "safety_stock": {"skus": {"TEE": 2}},
        "bundles": [{"sku": "GIFT", "components": {"TEE": 1}}],
        "slack": {"alerts_channel": "C0DRIFT01"},
        "chain": {
            "hops": [
                {
                    "upstream": "wms",
                    "downstream": "shopify",
                    "trigger": "webhook",
                    "transform": "available + committed, minus safety stock",
                    "sla_seconds": 600,
                },
                {"upstream": "wms", "downstream": "erp", "trigger": "batch", "sla_seconds": 93_600},
            ]
        },
    }
    data.update(extra)
    return config_from_dict(data)


def _obs(system: str, sku: str, quantity: int, when: datetime, state: str) -> LevelObservation:
    return LevelObservation(system, sku, "east", state, quantity, when, "poll")


def level(system: str, sku: str, quantity: int, when: datetime) -> list[LevelObservation]:
    """A compared value: ``available`` = quantity (and ``committed`` 0 where compared)."""
    out = [_obs(system, sku, quantity, when, "available")]
    if system != "erp":
        out.append(_obs(system, sku, 0, when, "committed"))
    return out


#: The script. TEE has 2 units of safety stock at the storefront; CAP and MUG none.
#:
#: wms → shopify (SLA 10 min, lost after 1 day):
#:   TEE  a change before the week (−2 h) is not measured;
#:        +1 h 40 → shopify 38 at +1 h 05 ........ 5 min
#:        +2 h 30 → shopify 28 at +2 h 20 ........ 20 min
#:        +3 h 25 → shopify 23 at +3 h 01 ........ 1 min
#:        +4 h 20 → shopify stays 23 (wants 18) .. never arrives
#:   CAP  shopify edited to 12 at +4 h 30; wms → 12 at +5 h: already there .. 0 min
#:   MUG  wms 30 → 25 an hour before now ........ pending (in transit)
#:   GIFT a bundle: left out.  SOCK: first seen in the week: no change.
#:   → arrived 4 (0, 1, 5, 20 min), never 1, pending 1: p50 1 min (2nd of 4),
#:     p95 20 min (4th of 4), max 20 min, never-arrived share 1/5 → over its SLA.
#:
#: wms → erp (SLA 26 h, lost after 52 h): the nightly batch brings TEE 20 and CAP 12
#:   at +25 h: TEE's changes at +1..+4 h arrive then (24, 23, 22, 21 h), CAP's at +5 h
#:   (20 h); MUG pending. → arrived 5: p50 22 h (3rd of 5), p95 24 h (5th), max 24 h,
#:   nothing lost: under its SLA.
SCRIPT: list[list[LevelObservation]] = [
    # before the week
    level("wms", "TEE", 60, at(-3)),
    level("shopify", "TEE", 58, at(-3)),
    level("erp", "TEE", 60, at(-3)),
    level("wms", "TEE", 50, at(-2)),
    level("shopify", "TEE", 48, at(-1)),
    level("erp", "TEE", 50, at(-1)),
    level("wms", "CAP", 10, at(-3)),
    level("shopify", "CAP", 10, at(-3)),
    level("erp", "CAP", 10, at(-3)),
    level("wms", "MUG", 30, at(-3)),
    level("shopify", "MUG", 30, at(-3)),
    level("erp", "MUG", 30, at(-3)),
    level("wms", "GIFT", 5, at(-3)),
    level("shopify", "GIFT", 9, at(-3)),
    # the week
    level("wms", "TEE", 40, at(1)),
    level("shopify", "TEE", 38, at(1, 5)),
    level("wms", "TEE", 30, at(2)),
    level("shopify", "TEE", 28, at(2, 20)),
    level("wms", "TEE", 25, at(3)),
    level("shopify", "TEE", 23, at(3, 1)),
    level("wms", "TEE", 20, at(4)),
    level("shopify", "CAP", 12, at(4, 30)),
    level("wms", "CAP", 12, at(5)),
    level("wms", "GIFT", 1, at(5)),
    level("wms", "SOCK", 7, at(6)),
    level("erp", "TEE", 20, at(25)),
    level("erp", "CAP", 12, at(25)),
    level("wms", "MUG", 25, NOW - HOUR),
]


async def record_script(ledger: Ledger) -> None:
    for batch in SCRIPT:
        await ledger.record_levels(batch)
