"""The configuration a deployer would write for the benchmarks' fakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import catalog

SHOPIFY_TOKEN_ENV = "BENCH_SHOPIFY_TOKEN"
WMS_TOKEN_ENV = "BENCH_WMS_TOKEN"
SLACK_TOKEN_ENV = "BENCH_SLACK_TOKEN"
SIGNING_SECRET_ENV = "BENCH_SLACK_SIGNING_SECRET"
WEBHOOK_SECRET_ENV = "BENCH_SHOPIFY_WEBHOOK_SECRET"


def shopify_system(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "shopify",
        "kind": "shopify",
        "role": "storefront",
        "shop_url": url,
        "token_env": SHOPIFY_TOKEN_ENV,
        "writable": True,
        **extra,
    }


def wms_system(url: str, token_env: str = WMS_TOKEN_ENV) -> dict[str, Any]:
    """The fake WMS as a ``[[systems]]`` entry (paged REST, its field names mapped)."""
    return {
        "name": "wms",
        "kind": "rest",
        "role": "warehouse",
        "base_url": url,
        "auth": {"type": "bearer", "token_env": token_env},
        "list": {
            "path": "/api/v1/inventory",
            "pagination": "page",
            "page_param": "page",
            "size_param": "per_page",
            "items_path": "items",
            "page_size": 500,
        },
        "fields": {
            "sku": "sku",
            "location": "warehouse",
            "updated_at": "updated_at",
            "quantities": {
                "on_hand": "on_hand",
                "available": "pickable",
                "committed": "allocated",
                "damaged": "damaged",
            },
        },
    }


def erp_system(directory: Path) -> dict[str, Any]:
    return {
        "name": "erp",
        "kind": "csv",
        "role": "other",
        "compare_states": ["on_hand"],
        "directory": str(directory),
        "columns": {
            "sku": "ITEM_NO",
            "location": "WAREHOUSE",
            "quantities": {"on_hand": "QTY_ON_HAND"},
        },
        "settle_seconds": catalog.SETTLE_SECONDS,
    }


def three_systems(
    shopify_url: str, wms_url: str, erp_dir: Path, location_gids: list[str]
) -> dict[str, Any]:
    """Shopify (storefront), the WMS (the truth) and the ERP (CSV) at every location."""
    return {
        "timezone": "UTC",
        "source_of_truth": ["wms", "erp"],
        "systems": [shopify_system(shopify_url), wms_system(wms_url), erp_system(erp_dir)],
        "locations": {
            catalog.location_key(j): {
                "shopify": gid,
                "wms": catalog.warehouse(j),
                "erp": catalog.warehouse(j),
            }
            for j, gid in enumerate(location_gids)
        },
        "slack": {
            "alerts_channel": "C0BENCH01",
            "bot_token_env": SLACK_TOKEN_ENV,
            "signing_secret_env": SIGNING_SECRET_ENV,
        },
    }
