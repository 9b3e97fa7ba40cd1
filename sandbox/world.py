"""The demo world: a fake Shopify store, a fake WMS and a fake Slack, seeded with a small
catalog in which the storefront and the warehouse disagree about one SKU; with
``scenarios=True`` also a fake ERP dropping CSV exports, and the SKUs the scripted drift
scenarios (``sandbox.scenarios``) play on, all in step at the start.

It knows nothing of Driftwatch: it starts servers on loopback and reports their
addresses, tokens and ids; the product configures itself from those.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol

from sandbox.erp import FakeERP
from sandbox.shopify import FakeShopify
from sandbox.slack import FakeSlack
from sandbox.wms import FakeWMS

WMS_TOKEN = "wms-sandbox-token"
SLACK_TOKEN = "xoxb-sandbox-driftwatch"
ALERTS_CHANNEL = "C0DRIFT01"

Levels = dict[str, tuple[int, int, int, int]]
#: (sku, title, {location: (shopify available, shopify committed, wms pickable, wms allocated)})
CATALOG: tuple[tuple[str, str, Levels], ...] = (
    ("TEE-BLK-M", "Classic Tee — Black / M", {"east": (40, 2, 28, 2), "west": (15, 0, 15, 0)}),
    ("TEE-WHT-M", "Classic Tee — White / M", {"east": (22, 1, 22, 1), "west": (9, 0, 9, 0)}),
    ("MUG-STONE", "Stoneware Mug", {"east": (64, 0, 64, 0), "west": (30, 3, 30, 3)}),
    ("CAP-NAVY", "Field Cap — Navy", {"east": (12, 0, 12, 0), "west": (7, 1, 7, 1)}),
)
#: The SKUs the scenarios play on (stocked at east only), all in step at the start.
SCENARIO_CATALOG: tuple[tuple[str, str, Levels], ...] = (
    ("HOODIE-DROP", "Limited Drop Hoodie", {"east": (100, 0, 100, 0)}),
    ("JACKET-RAIN", "Rain Jacket", {"east": (24, 0, 24, 0)}),
    ("BEANIE-GRY", "Beanie — Grey", {"east": (45, 0, 45, 0)}),
    ("CANDLE-CEDAR", "Cedar Candle", {"east": (60, 0, 60, 0)}),
    ("TOTE-CNVS", "Canvas Tote", {"east": (20, 0, 20, 0)}),
    ("SOCKS-WOOL", "Wool Socks", {"east": (36, 0, 36, 0)}),
    ("SCARF-RED", "Scarf — Red", {"east": (18, 0, 18, 0)}),
    ("GLOVES-LTH", "Leather Gloves", {"east": (14, 0, 14, 0)}),
    ("BOTTLE-STEEL", "Steel Water Bottle", {"east": (30, 0, 30, 0)}),
)
#: Bundle SKU -> component SKU -> units per bundle. Shopify sells the bundle as an item
#: of its own; the WMS and the ERP stock only the components.
BUNDLES: dict[str, dict[str, int]] = {"MUG-GIFT-2": {"MUG-STONE": 2}}
BUNDLE_TITLES = {"MUG-GIFT-2": "Mug Gift Set — two Stoneware Mugs"}
#: System -> SKU -> units per count: the ERP counts candles in cases of 12.
PACK_SIZES: dict[str, dict[str, int]] = {"erp": {"CANDLE-CEDAR": 12}}
#: Driftwatch-neutral location key -> (Shopify location name, WMS/ERP warehouse code)
LOCATIONS = {"east": ("Brooklyn DC", "WH-EAST"), "west": ("Reno DC", "WH-WEST")}


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass
class World:
    """The running fakes and what a client needs to reach them."""

    shopify: FakeShopify
    wms: FakeWMS
    slack: FakeSlack
    #: Driftwatch-neutral location key -> (Shopify location gid, WMS warehouse code)
    locations: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: the ERP's export directory, when the world has one (``scenarios=True``)
    erp: FakeERP | None = None
    #: every SKU -> the location keys it is stocked at (bundles included)
    stocked: dict[str, list[str]] = field(default_factory=dict)
    #: what a deployer knows and configures: bundles, and pack sizes per system
    bundles: dict[str, dict[str, int]] = field(default_factory=dict)
    pack_sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    #: SKU -> units per count the ERP's exporter writes now (a scenario may change it
    #: behind the configuration's back)
    erp_units: dict[str, int] = field(default_factory=dict)

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

    def gid(self, location: str) -> str:
        """The Shopify location gid of a location key."""
        return self.locations[location][0]

    def warehouse(self, location: str) -> str:
        """The WMS (and ERP) warehouse code of a location key."""
        return self.locations[location][1]

    def export_erp(self) -> Path:
        """The ERP's batch import of the warehouse and its export: every WMS level's good
        stock (pickable + allocated), counted in the ERP's unit, written as a CSV drop."""
        if self.erp is None:
            raise RuntimeError("this world has no ERP (SandboxWorld(scenarios=True) has)")
        for level in self.wms.levels():
            pack = self.erp_units.get(level.sku, 1)
            units = level.pickable + level.allocated
            uom = "EA" if pack == 1 else f"CS{pack}"
            self.erp.set_level(level.sku, level.warehouse, units // pack, uom)
        return self.erp.export_now()


class SandboxWorld:
    """``async with SandboxWorld() as world:`` starts and seeds everything on 127.0.0.1.

    :param clock: shared by the fake Shopify, WMS and ERP (anything with ``now()``;
        default: each fake's wall clock); the demo passes its accelerated clock. The fake
        Slack always keeps the wall clock.
    :param scenarios: also the ERP (CSV drops in a temporary directory, first export
        written at start), the scenario SKUs and the bundle.
    """

    def __init__(self, clock: Clock | None = None, *, scenarios: bool = False) -> None:
        self.scenarios = scenarios
        self.shopify = FakeShopify(clock=clock)
        self.wms = FakeWMS(token=WMS_TOKEN, clock=clock)
        # Slack lives in real time: people read the channel, and a signed request's
        # timestamp must be close to the receiver's wall clock. The bot paces its posts
        # at one per second on *its* clock, which in the demo and the tests built on
        # this world is accelerated or manual: measured on the wall clock its posts can
        # come closer, so this world grants the short bursts Slack documents ("Short
        # bursts >1 allowed", https://docs.slack.dev/apis/web-api/rate-limits) where the
        # fake's default grants none. Tests of the pace share one clock with the fake.
        self.slack = FakeSlack(
            bot_token=SLACK_TOKEN, channels={ALERTS_CHANNEL: "ops-inventory"}, post_burst=3
        )
        self._erp_dir: Path | None = None
        self.erp: FakeERP | None = None
        if scenarios:
            self._erp_dir = Path(tempfile.mkdtemp(prefix="driftwatch-erp-"))
            self.erp = FakeERP(self._erp_dir, clock=clock)

    async def start(self) -> World:
        await self.shopify.start()
        await self.wms.start()
        await self.slack.start()
        world = World(self.shopify, self.wms, self.slack, erp=self.erp)
        for key, (name, warehouse) in LOCATIONS.items():
            world.locations[key] = (self.shopify.add_location(name), warehouse)
        catalog = CATALOG + (SCENARIO_CATALOG if self.scenarios else ())
        for sku, title, levels in catalog:
            self._seed(world, sku, title, levels)
        if self.scenarios:
            world.bundles = {b: dict(parts) for b, parts in BUNDLES.items()}
            world.pack_sizes = {s: dict(p) for s, p in PACK_SIZES.items()}
            world.erp_units = dict(PACK_SIZES.get("erp", {}))
            for bundle, parts in BUNDLES.items():
                self._seed_bundle(world, bundle, parts)
            world.export_erp()
        return world

    def _seed(self, world: World, sku: str, title: str, levels: Levels) -> None:
        gids = [world.gid(key) for key in levels]
        self.shopify.add_item(sku, title=title, locations=gids)
        world.stocked[sku] = list(levels)
        for key, (available, committed, pickable, allocated) in levels.items():
            self.shopify.set_quantities(
                sku, world.gid(key), available=available, committed=committed
            )
            self.wms.set_level(
                sku,
                world.warehouse(key),
                pickable=pickable,
                allocated=allocated,
                on_hand=pickable + allocated,
                damaged=0,
            )

    def _seed_bundle(self, world: World, bundle: str, parts: dict[str, int]) -> None:
        """The bundle at every location all its components are stocked at, showing what
        the components allow (Shopify's available + committed of each, ÷ per bundle)."""
        keys = [k for k in LOCATIONS if all(k in world.stocked.get(p, ()) for p in parts)]
        self.shopify.add_item(
            bundle, title=BUNDLE_TITLES.get(bundle), locations=[world.gid(k) for k in keys]
        )
        world.stocked[bundle] = keys
        for key in keys:
            allows = min(
                sum(self.shopify.quantities(part, world.gid(key))[s] for s in SUM) // per
                for part, per in parts.items()
            )
            self.shopify.set_quantities(bundle, world.gid(key), available=allows)

    async def stop(self) -> None:
        await self.slack.stop()
        await self.wms.stop()
        await self.shopify.stop()
        if self._erp_dir is not None:
            shutil.rmtree(self._erp_dir, ignore_errors=True)

    async def __aenter__(self) -> World:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


#: Shopify's states that together match the WMS's pickable + allocated.
SUM = ("available", "committed")
