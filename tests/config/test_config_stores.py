"""Several Shopify stores in one configuration: each names its own shop domain (one
webhook address serves them all, told apart by ``X-Shopify-Shop-Domain``), has its own
range of SKUs, and may have its own Slack channels."""

from __future__ import annotations

from typing import Any

from config_testing import base, changed, problem_lines

from monitors.config import config_from_dict

SECOND = {
    "name": "shopify_eu",
    "kind": "shopify",
    "shop_url": "https://demo-eu.myshopify.com",
}


def two_stores(**second: Any) -> dict[str, Any]:
    data = base()
    data["systems"][0]["webhook_secret_env"] = "SHOP_US_SECRET"
    data["systems"].append({**SECOND, "webhook_secret_env": "SHOP_EU_SECRET", **second})
    return data


def test_two_stores_on_myshopify_urls_need_no_shop_domain() -> None:
    config = config_from_dict(two_stores())
    assert [s.webhook_shop_domain for s in config.stores()] == [
        "demo.myshopify.com",
        "demo-eu.myshopify.com",
    ]


def test_a_second_store_on_another_host_must_name_its_shop_domain() -> None:
    data = two_stores(shop_url="http://127.0.0.1:8081")
    [line] = problem_lines(data)
    assert line.startswith("systems[3].shop_domain: required: shopify, shopify_eu all receive")
    assert "X-Shopify-Shop-Domain" in line
    assert "127.0.0.1 is not a *.myshopify.com domain" in line
    fixed = changed(data, {"systems[3].shop_domain": "demo-eu.myshopify.com"})
    assert config_from_dict(fixed).stores()[1].webhook_shop_domain == "demo-eu.myshopify.com"


def test_one_store_on_any_host_works_as_before() -> None:
    data = base()
    data["systems"][0]["shop_url"] = "http://127.0.0.1:8081"
    data["systems"][0]["webhook_secret_env"] = "SHOP_SECRET"
    config = config_from_dict(data)
    assert config.stores()[0].webhook_shop_domain == "127.0.0.1"
    assert config.carries("shopify") == "all"


def test_two_stores_with_one_domain_are_refused() -> None:
    data = two_stores(shop_domain="DEMO.myshopify.com")
    [line] = problem_lines(data)
    assert line.startswith("systems[3].shop_domain: `demo.myshopify.com` is also the shop domain")
    assert "`shopify`" in line


def test_a_store_without_webhooks_needs_no_domain() -> None:
    data = base()
    data["systems"][0]["webhook_secret_env"] = "SHOP_US_SECRET"
    data["systems"].append({**SECOND, "shop_url": "http://127.0.0.1:9"})
    assert config_from_dict(data).stores()[1].name == "shopify_eu"


def test_range_defaults_to_listed_with_several_stores() -> None:
    config = config_from_dict(two_stores())
    assert config.carries("shopify") == config.carries("shopify_eu") == "listed"
    assert config.carries("wms") == "all"
    explicit = config_from_dict(two_stores(carries="all"))
    assert explicit.carries("shopify_eu") == "all"
    assert explicit.carries("shopify") == "listed"


def test_range_patterns_ignore_case_and_exclusions_win() -> None:
    config = config_from_dict(
        two_stores(carries_skus=["eu-*", "TEE-*"], excludes_skus=["TEE-BLK-*"])
    )
    assert config.carries_sku("shopify_eu", "EU-MUG")
    assert config.carries_sku("shopify_eu", "tee-wht-m")
    assert not config.carries_sku("shopify_eu", "TEE-BLK-M")
    assert not config.carries_sku("shopify_eu", "US-MUG")
    assert config.carries_sku("shopify", "US-MUG")  # no patterns: any SKU
    assert config.carries_sku("wms", "anything")


def test_a_bad_pattern_is_named() -> None:
    [line] = problem_lines(two_stores(carries_skus=["EU *"]))
    assert line.startswith("systems[3].carries_skus[0]: must be a SKU or a SKU pattern")


def test_channels_per_store_default_to_the_global_ones() -> None:
    config = config_from_dict(two_stores(alerts_channel="C0EUALERT"))
    assert config.alerts_channel_for("shopify_eu") == "C0EUALERT"
    assert config.reports_channel_for("shopify_eu") == "C0EUALERT"
    assert config.alerts_channel_for("shopify") == "C0123ABCD"
    assert config.alerts_channel_for("wms") == "C0123ABCD"
    assert config.alerts_channel_for(None) == "C0123ABCD"
    both = config_from_dict(two_stores(alerts_channel="C0EUALERT", reports_channel="C0EUREPORT"))
    assert both.reports_channel_for("shopify_eu") == "C0EUREPORT"
    assert both.reports_channel_for("shopify") == "C0123ABCD"


def test_a_store_may_have_its_own_source_of_truth() -> None:
    config = config_from_dict(two_stores(source_of_truth=["erp", "wms"]))
    assert config.truth_order("shopify_eu") == ("erp", "wms")
    assert config.truth_order("shopify") == ("wms", "erp")
    assert config.truth_order("wms") == ("wms", "erp")


def test_a_store_truth_names_known_systems_once_and_not_itself() -> None:
    lines = problem_lines(two_stores(source_of_truth=["erp", "nope", "erp", "shopify_eu"]))
    assert lines == [
        "systems[3].source_of_truth[1]: names unknown system `nope` "
        "(known: shopify, wms, erp, shopify_eu)",
        "systems[3].source_of_truth[2]: `erp` is listed twice",
        "systems[3].source_of_truth[3]: a store cannot be its own source of truth",
    ]
