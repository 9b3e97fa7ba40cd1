"""Two Shopify stores in one deployment, on loopback: the demo world's store (every
SKU) and a second fake shop with its own domain, secret, token, Slack channel and a
smaller range (two SKUs), both behind one webhook address of the real Service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.cli.demo import DemoWorld, demo_config, demo_world
from bot.service import Service
from connectors import ManualClock
from ledger import Ledger
from monitors.config import Config, config_from_dict
from sandbox.shopify import FakeShopify
from sandbox.world import LOCATIONS

EU_DOMAIN = "driftwatch-eu.myshopify.com"
EU_SECRET = "shpss_second_store_secret"
EU_TOKEN = "shpat_second_store_token"
EU_CHANNEL = "C0EUSTORE"
#: the second store's range: what it lists (the first store lists every demo SKU)
EU_SKUS = ("TEE-BLK-M", "MUG-STONE")


@dataclass
class TwoStores:
    demo: DemoWorld
    eu: FakeShopify
    #: location key -> the second store's location gid
    eu_locations: dict[str, str]
    config: Config
    environ: dict[str, str]
    ledger: Ledger
    service: Service
    clock: ManualClock
    url: str

    async def settle(self) -> None:
        """Wait until both shops' webhooks were answered and every one processed."""
        async with asyncio.timeout(30):
            await self.demo.world.shopify.webhooks.idle()
            await self.eu.webhooks.idle()
            if self.service.webhooks is not None:
                await self.service.webhooks.idle()
            await self.service.idle()
            await self.service.outbox.deliver_due()

    def texts(self, channel: str) -> list[str]:
        return [m.text for m in self.demo.world.slack.messages(channel)]


@contextlib.asynccontextmanager
async def two_stores(tmp_path: Path, **eu: Any) -> AsyncIterator[TwoStores]:
    """The running world and Service (schedules paused: tests run the jobs), after the
    first full diff; ``eu`` overrides keys of the second store's configuration."""
    async with demo_world() as demo:
        world = demo.world
        shop = FakeShopify(access_token=EU_TOKEN, shop_domain=EU_DOMAIN, webhook_secret=EU_SECRET)
        await shop.start()
        try:
            gids = {key: shop.add_location(name) for key, (name, _) in LOCATIONS.items()}
            for sku in EU_SKUS:
                shop.add_item(sku, locations=list(gids.values()))
            for level in world.wms.levels():
                if level.sku in EU_SKUS:
                    key = next(k for k in gids if world.warehouse(k) == level.warehouse)
                    shop.set_quantities(
                        level.sku, gids[key], available=level.pickable, committed=level.allocated
                    )
            world.slack.add_channel(EU_CHANNEL, "ops-eu-store")
            data = demo_config(world)
            assert shop.url is not None
            data["systems"].append(
                {
                    "name": "shopify_eu",
                    "kind": "shopify",
                    "shop_url": shop.url,
                    "shop_domain": EU_DOMAIN,
                    "token_env": "EU_SHOPIFY_TOKEN",
                    "webhook_secret_env": "EU_SHOPIFY_WEBHOOK_SECRET",
                    "alerts_channel": EU_CHANNEL,
                    **eu,
                }
            )
            for key, gid in gids.items():
                data["locations"][key]["shopify_eu"] = gid
            config = config_from_dict(data)
            environ = {
                **demo.environ,
                "EU_SHOPIFY_TOKEN": EU_TOKEN,
                "EU_SHOPIFY_WEBHOOK_SECRET": EU_SECRET,
            }
            clock = ManualClock()
            async with Ledger.from_url(f"sqlite:///{tmp_path / 'stores.db'}") as ledger:
                await ledger.upgrade()
                service = Service(config, environ, ledger, clock=clock)
                url = await service.start(host="127.0.0.1", port=0, schedule=False)
                try:
                    stores = TwoStores(
                        demo, shop, gids, config, environ, ledger, service, clock, url
                    )
                    await service.run_job("drift-diff")
                    await stores.settle()
                    yield stores
                finally:
                    await service.stop()
        finally:
            await shop.stop()
