"""A small valid configuration to break in tests, and helpers to break it."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

from monitors.config import ConfigError, config_from_dict

EXAMPLE = Path(__file__).resolve().parents[2] / "driftwatch.example.toml"

BASE_TOML = """
timezone = "Europe/Berlin"
source_of_truth = ["wms", "erp"]

[[systems]]
name = "shopify"
kind = "shopify"
shop_url = "https://demo.myshopify.com"
writable = true

[[systems]]
name = "wms"
kind = "rest"
role = "warehouse"
base_url = "https://wms.example.com/api"
auth = { type = "bearer", token_env = "WMS_TOKEN" }
list = { path = "/levels", pagination = "cursor", next_cursor_path = "meta.next" }
fields = { sku = "sku", location = "wh", quantities = { available = "free", committed = "alloc" } }

[[systems]]
name = "erp"
kind = "csv"
role = "erp"
directory = "drops/erp"
columns = { sku = "Item", location = "Whs", quantities = { available = "Free" } }

[locations.east]
shopify = "gid://shopify/Location/1"
wms = "WH-EAST"
erp = "01"

[locations.west]
shopify = "gid://shopify/Location/2"
wms = "WH-WEST"
erp = "02"

[skus]
remove_chars = " "
aliases = { "tee blk m old" = "tee-blk-m" }
tags = { hero = ["TEE-BLK-M"], clearance = ["MUG-1"] }

[pack_sizes.erp]
skus = { "MUG-1" = 12 }

[[bundles]]
sku = "GIFT-1"
components = { "TEE-BLK-M" = 1, "MUG-1" = 2 }

[thresholds.tags.hero]
absolute = 0
percent = 0.0

[slack]
alerts_channel = "C0123ABCD"
"""


def base() -> dict[str, Any]:
    """A fresh copy of the valid base configuration, as TOML reads it."""
    return copy.deepcopy(tomllib.loads(BASE_TOML))


DELETE = object()
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def changed(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each ``path: value`` set (``DELETE`` removes the key); paths are
    written the way problems render them, e.g. ``systems[1].base_url``."""
    data = copy.deepcopy(data)
    for path, value in changes.items():
        parts: list[str | int] = [m[1] if m[1] else int(m[2]) for m in _PART.finditer(path)]
        node: Any = data
        for part in parts[:-1]:
            if isinstance(part, str) and part not in node:
                node[part] = {}
            node = node[part]
        if value is DELETE:
            del node[parts[-1]]
        elif isinstance(node, list) and parts[-1] == len(node):
            node.append(value)
        else:
            node[parts[-1]] = value
    return data


def problem_lines(data: dict[str, Any]) -> list[str]:
    """What the user reads: one ``path: message`` line per problem."""
    try:
        config_from_dict(data)
    except ConfigError as error:
        return [str(problem) for problem in error.problems]
    raise AssertionError("the configuration was accepted")
