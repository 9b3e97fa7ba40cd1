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

from pg_testing import pg_schema

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
    #: every replica's service (the first is ``service``), when several share a database
    replicas: tuple[Service, ...] = ()

    async def settle(self) -> None:
        """Wait until both shops' webhooks were answered and every one processed."""
        async with asyncio.timeout(30):
            await self.demo.world.shopify.webhooks.idle()
            await self.eu.webhooks.idle()
            for service in self.replicas or (self.service,):
                if service.webhooks is not None:
                    await service.webhooks.idle()
                await service.idle()
            if len(self.replicas) > 1:  # each replica's heartbeat timer: the holder of a
                for service in self.replicas:  # store's diff picks up what any received
                    await service.pick_up_touched()
                for service in self.replicas:
                    await service.idle()
            await self.service.outbox.deliver_due()

    async def targeted(self) -> None:
        """Wait for the targeted diff a webhook caused (on whichever replica holds the
        store's diff), and its messages."""
        await self.settle()
        waits = [asyncio.ensure_future(s.targeted_done.wait()) for s in self.replicas]
        try:
            async with asyncio.timeout(30):
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        await self.settle()

    def texts(self, channel: str) -> list[str]:
        return [m.text for m in self.demo.world.slack.messages(channel)]


#: a URL whose ``search_path`` is a fresh PostgreSQL schema (see ``pg_testing``)
postgres_schema = pg_schema


@contextlib.asynccontextmanager
async def two_stores(
    tmp_path: Path, *, database: str | None = None, replicas: int = 1, **eu: Any
) -> AsyncIterator[TwoStores]:
    """The running world and Service (schedules paused: tests run the jobs), after the
    first full diff; ``eu`` overrides keys of the second store's configuration.
    ``database``: a URL (default: a SQLite file); ``replicas``: services sharing it."""
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
            url = database or f"sqlite:///{tmp_path / 'stores.db'}"
            async with contextlib.AsyncExitStack() as stack:
                ledgers = [
                    await stack.enter_async_context(Ledger.from_url(url)) for _ in range(replicas)
                ]
                await ledgers[0].upgrade()
                services: list[Service] = []
                try:
                    for ledger in ledgers:
                        service = Service(config, environ, ledger, clock=clock)
                        services.append(service)
                        await service.start(host="127.0.0.1", port=0, schedule=False)
                    first = services[0]
                    assert first.url is not None
                    stores = TwoStores(
                        demo,
                        shop,
                        gids,
                        config,
                        environ,
                        ledgers[0],
                        first,
                        clock,
                        first.url,
                        tuple(services),
                    )
                    await first.run_job("drift-diff")
                    await stores.settle()
                    yield stores
                finally:
                    for service in reversed(services):
                        await service.stop()
        finally:
            await shop.stop()
