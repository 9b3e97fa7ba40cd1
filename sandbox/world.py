"""The demo world: a fake Shopify store, a fake WMS and a fake Slack, seeded with a small
catalog in which the storefront and the warehouse disagree about one SKU.

It knows nothing of Driftwatch: it starts servers on loopback and reports their
addresses, tokens and ids; the product configures itself from those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType

from sandbox.shopify import FakeShopify
from sandbox.slack import FakeSlack
from sandbox.wms import FakeWMS

WMS_TOKEN = "wms-sandbox-token"
SLACK_TOKEN = "xoxb-sandbox-driftwatch"
ALERTS_CHANNEL = "C0DRIFT01"

#: (sku, title, {location: (shopify available, shopify committed, wms pickable, wms allocated)})
CATALOG: tuple[tuple[str, str, dict[str, tuple[int, int, int, int]]], ...] = (
    ("TEE-BLK-M", "Classic Tee — Black / M", {"east": (40, 2, 28, 2), "west": (15, 0, 15, 0)}),
    ("TEE-WHT-M", "Classic Tee — White / M", {"east": (22, 1, 22, 1), "west": (9, 0, 9, 0)}),
    ("MUG-STONE", "Stoneware Mug", {"east": (64, 0, 64, 0), "west": (30, 3, 30, 3)}),
    ("CAP-NAVY", "Field Cap — Navy", {"east": (12, 0, 12, 0), "west": (7, 1, 7, 1)}),
)
LOCATIONS = {"east": ("Brooklyn DC", "WH-EAST"), "west": ("Reno DC", "WH-WEST")}


@dataclass
class World:
    """The running fakes and what a client needs to reach them."""

    shopify: FakeShopify
    wms: FakeWMS
    slack: FakeSlack
    #: Driftwatch-neutral location key -> (Shopify location gid, WMS warehouse code)
    locations: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def shopify_url(self) -> str:
        assert self.shopify.url is not None
        return self.shopify.url

    @property
    def shopify_token(self) -> str:
        return self.shopify.access_token

    @property
    def wms_url(self) -> str:
        return self.wms.base_url

    @property
    def wms_token(self) -> str:
        return WMS_TOKEN

    @property
    def slack_api_url(self) -> str:
        return self.slack.api_url

    @property
    def slack_token(self) -> str:
        return SLACK_TOKEN

    @property
    def alerts_channel(self) -> str:
        return ALERTS_CHANNEL


class SandboxWorld:
    """``async with SandboxWorld() as world:`` starts and seeds everything on 127.0.0.1."""

    def __init__(self) -> None:
        self.shopify = FakeShopify()
        self.wms = FakeWMS(token=WMS_TOKEN)
        self.slack = FakeSlack(bot_token=SLACK_TOKEN, channels={ALERTS_CHANNEL: "ops-inventory"})

    async def start(self) -> World:
        await self.shopify.start()
        await self.wms.start()
        await self.slack.start()
        world = World(self.shopify, self.wms, self.slack)
        for key, (name, warehouse) in LOCATIONS.items():
            world.locations[key] = (self.shopify.add_location(name), warehouse)
        for sku, title, levels in CATALOG:
            self.shopify.add_item(sku, title=title)
            for key, (available, committed, pickable, allocated) in levels.items():
                gid, warehouse = world.locations[key]
                self.shopify.set_quantities(sku, gid, available=available, committed=committed)
                self.wms.set_level(
                    sku,
                    warehouse,
                    pickable=pickable,
                    allocated=allocated,
                    on_hand=pickable + allocated,
                    damaged=0,
                )
        return world

    async def stop(self) -> None:
        await self.slack.stop()
        await self.wms.stop()
        await self.shopify.stop()

    async def __aenter__(self) -> World:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
