"""A fake Shopify Admin GraphQL API on loopback, for tests and ``driftwatch demo``.

It validates every document against Shopify's published 2026-07 schema, answers the
inventory subset (locations, inventory items and levels, product variants,
``inventorySetQuantities``, ``inventoryAdjustQuantities``) in Shopify's wire shapes,
meters cost with a leaky bucket, and injects faults on demand. It never imports the
product.
"""

from __future__ import annotations

from sandbox.shopify.adjustments import Write
from sandbox.shopify.clock import Clock, ManualClock, WallClock
from sandbox.shopify.schema import ShopifySchema, load_schema
from sandbox.shopify.server import DEFAULT_TOKEN, FakeShopify, RequestRecord

__all__ = [
    "DEFAULT_TOKEN",
    "Clock",
    "FakeShopify",
    "ManualClock",
    "RequestRecord",
    "ShopifySchema",
    "WallClock",
    "Write",
    "load_schema",
]
