"""The example file, and the questions the rest of Driftwatch asks a configuration."""

from __future__ import annotations

import inspect
import re
from datetime import time

import pytest
from config_testing import EXAMPLE, base, changed

import monitors.config
from monitors.config import (
    Config,
    CsvSystem,
    RestSystem,
    ShopifySystem,
    Threshold,
    config_from_dict,
    load_config,
)
from monitors.config.systems import StrictModel
from monitors.wiring import rules_from_config


@pytest.fixture
def config() -> Config:
    return config_from_dict(base())


def test_the_example_file_is_valid() -> None:
    config = load_config(EXAMPLE)
    kinds = [type(s) for s in config.systems]
    assert kinds == [ShopifySystem, RestSystem, CsvSystem]
    assert sorted(config.locations) == ["east", "west"]
    assert config.pack_size("erp", "MUG-WHT") == 12
    assert config.sku_tags("tee-blk-m") == {"hero"}
    assert config.bundle_components("gift-set-1") == {"TEE-BLK-M": 1, "MUG-WHT": 2}


def test_the_example_shows_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    models = [
        obj
        for obj in vars(monitors.config).values()
        if inspect.isclass(obj) and issubclass(obj, StrictModel)
    ]
    assert len(models) > 20
    unshown = [
        f"{model.__name__}.{name}"
        for model in models
        for name in model.model_fields
        if not re.search(rf"\b{name}\s*=|\[[\w.]*\b{name}[.\]]", text)
    ]
    assert unshown == []


def test_a_config_round_trips_through_a_dict() -> None:
    config = load_config(EXAMPLE)
    assert config_from_dict(config.model_dump()) == config
    assert config_from_dict(config.model_dump(mode="json")) == config


def test_defaults(config: Config) -> None:
    shopify = config.system("shopify")
    assert isinstance(shopify, ShopifySystem)
    assert (shopify.api_version, shopify.page_size) == ("2026-07", 250)
    assert shopify.bulk_threshold == 5000
    assert shopify.token_env == "SHOPIFY_ACCESS_TOKEN"
    assert shopify.compare_states == ("available", "committed")
    assert shopify.role == "storefront"
    assert config.system("wms").compare_states == ("available", "committed")
    assert config.system("erp").compare_states == ("available",)
    assert config.slack.reports_channel == "C0123ABCD"
    assert config.slack.bot_token_env == "SLACK_BOT_TOKEN"
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.policy.never_auto_tags == ("hero",)
    assert config.thresholds.default == Threshold(absolute=2, percent=1.0)
    assert config.schedules.full_diff_seconds == 900
    assert config.schedules.weekly_summary_at() == (0, time(9, 0))
    assert config.schedules.daily_adjustments_at() == time(9, 0)
    assert str(config.tz) == "Europe/Berlin"


def test_a_config_is_frozen(config: Config) -> None:
    with pytest.raises(ValueError, match="frozen"):
        config.timezone = "UTC"  # type: ignore[misc]


def test_schedule_times_are_normalized_and_can_be_off() -> None:
    data = changed(
        base(),
        {"schedules.weekly_summary": "Friday 7:30", "schedules.daily_adjustments": time(6, 5)},
    )
    schedules = config_from_dict(data).schedules
    assert (schedules.weekly_summary, schedules.daily_adjustments) == ("fri 07:30", "06:05")
    assert schedules.weekly_summary_at() == (4, time(7, 30))
    off = config_from_dict(changed(base(), {"schedules.weekly_summary": "off"})).schedules
    assert off.weekly_summary_at() is None


def test_system_lookup(config: Config) -> None:
    assert config.system("wms").name == "wms"
    assert [s.name for s in config.systems_by_role("warehouse")] == ["wms"]
    assert [s.name for s in config.source_systems()] == ["wms", "erp"]
    with pytest.raises(KeyError, match="no system named 'wmz'"):
        config.system("wmz")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("tee-blk-m", "TEE-BLK-M"),
        ("  tee-blk-m\t", "TEE-BLK-M"),
        ("TEE BLK M", "TEEBLKM"),  # remove_chars = " "
        ("tee blk m old", "TEE-BLK-M"),  # alias key normalized like any SKU
        ("TEE-BLK-M-OLD", "TEE-BLK-M-OLD"),  # not the alias: the dashes stay
        ("teeblkmold", "TEE-BLK-M"),
        ("nul\x00sku", "NUL\ufffdSKU"),  # PostgreSQL stores no NUL in text
        ("half\ud83d", "HALF\ufffd"),  # nor a lone surrogate (no UTF-8 for it)
        ("größe-😀", "GRÖSSE-😀"),  # the rest of Unicode passes
    ],
)
def test_normalize_sku_with_aliases(config: Config, raw: str, normalized: str) -> None:
    assert config.normalize_sku(raw) == normalized


def test_normalize_sku_can_keep_case() -> None:
    config = config_from_dict(changed(base(), {"skus.uppercase": False, "skus.strip": False}))
    assert config.normalize_sku(" Tee-1 ") == "Tee-1"


def test_threshold_for_uses_tags_and_the_strictest(config: Config) -> None:
    assert config.threshold_for("MUG-9") == Threshold(absolute=2, percent=1.0)
    assert config.threshold_for("tee blk m old") == Threshold(absolute=0, percent=0.0)
    data = changed(
        base(),
        {
            "skus.tags.clearance": ["MUG-1", "TEE-2"],
            "skus.tags.fragile": ["TEE-2"],
            "thresholds.tags.clearance": {"absolute": 10},
            "thresholds.tags.fragile": {"absolute": 4, "percent": 5.0},
        },
    )
    tagged = config_from_dict(data)
    assert tagged.threshold_for("MUG-1") == Threshold(absolute=10, percent=1.0)
    assert tagged.threshold_for("tee-2") == Threshold(absolute=4, percent=1.0)


def test_pack_size_defaults(config: Config) -> None:
    assert config.pack_size("erp", "mug-1") == 12
    assert config.pack_size("erp", "TEE-BLK-M") == 1
    assert config.pack_size("wms", "MUG-1") == 1
    cartons = config_from_dict(changed(base(), {"pack_sizes.erp.default": 6}))
    assert cartons.pack_size("erp", "TEE-BLK-M") == 6
    assert cartons.pack_size("erp", "MUG-1") == 12


def test_safety_stock_most_specific_wins() -> None:
    data = changed(
        base(),
        {
            "safety_stock": {
                "default": 1,
                "skus": {"tee-blk-m": 3},
                "locations": {"west": {"default": 2, "skus": {"TEE-BLK-M": 5}}},
            }
        },
    )
    config = config_from_dict(data)
    assert config.safety_stock_for("TEE-BLK-M", "west") == 5
    assert config.safety_stock_for("TEE-BLK-M", "east") == 3
    assert config.safety_stock_for("MUG-1", "west") == 2
    assert config.safety_stock_for("MUG-1", "east") == 1
    # the diff asks with the SKU its levels carry, already normalized: the same answers
    # (a setting under any spelling applies), without normalizing a million times again
    assert config.safety_stock_for(" tee-blk-m", "west") == 5
    assert config.safety_stock_of("TEE-BLK-M", "west") == 5
    assert config.safety_stock_of("TEE-BLK-M", "east") == 3
    rules = rules_from_config(config)
    assert rules.safety_stock("TEE-BLK-M", "west") == 5


def test_location_mapping_both_ways(config: Config) -> None:
    assert config.location_key("wms", "WH-EAST") == "east"
    assert config.location_key("wms", "WH-NORTH") is None
    assert config.location_key("erp", "WH-EAST") is None
    assert config.location_id("shopify", "west") == "gid://shopify/Location/2"
    assert config.location_id("shopify", "north") is None


def test_bundle_components_are_normalized(config: Config) -> None:
    assert config.bundle_components("gift-1") == {"TEE-BLK-M": 1, "MUG-1": 2}
    assert config.bundle_components("MUG-1") is None


def test_all_is_complete_and_importable() -> None:
    exported = monitors.config.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    for name in exported:
        assert hasattr(monitors.config, name), name
    public_modules = ["errors", "load", "environment", "model", "sections"]
    for module_name in public_modules:
        module = getattr(monitors.config, module_name)
        defined = [
            name
            for name, obj in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj))
            and obj.__module__ == module.__name__
        ]
        assert set(defined) <= set(exported), (module_name, set(defined) - set(exported))
