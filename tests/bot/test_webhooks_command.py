"""``driftwatch webhooks`` against the fake Shopify: it reports the missing subscription,
--create subscribes it, and a second check is healthy."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli.webhooks import run_webhooks_command
from sandbox.shopify import FakeShopify

CALLBACK = "https://driftwatch.example.com/webhooks/shopify"


def _config(tmp_path: Path, shop_url: str, webhook_url: str | None) -> Path:
    hook = f'webhook_url = "{webhook_url}"\n' if webhook_url else ""
    path = tmp_path / "driftwatch.toml"
    path.write_text(
        f"""source_of_truth = ["shopify"]

[[systems]]
name = "shopify"
kind = "shopify"
shop_url = "{shop_url}"
token_env = "TEST_SHOPIFY_TOKEN"
{hook}
[locations.east]
shopify = "gid://shopify/Location/1"

[slack]
alerts_channel = "C0DRIFT01"
""",
        "utf-8",
    )
    return path


async def test_missing_subscriptions_are_reported_then_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeShopify() as fake:
        assert fake.url is not None
        config = _config(tmp_path, fake.url, CALLBACK)
        env = {"TEST_SHOPIFY_TOKEN": fake.access_token}

        assert await run_webhooks_command(config, create=False, environ=env) == 1
        first = capsys.readouterr().out
        assert "shopify: inventory_levels/update: missing" in first
        assert "driftwatch webhooks --create" in first

        assert await run_webhooks_command(config, create=True, environ=env) == 0
        assert "shopify: inventory_levels/update: subscribed" in capsys.readouterr().out

        # read back from the shop: the subscription is there, at our address
        assert await run_webhooks_command(config, create=False, environ=env) == 0
        assert "shopify: inventory_levels/update: ok" in capsys.readouterr().out


async def test_without_a_webhook_url_it_says_which_key_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "https://shop.example.com", None)
    assert await run_webhooks_command(config, create=False, environ={}) == 1
    assert capsys.readouterr().err.startswith("systems[0].webhook_url: not set")
