"""A correct root-cause hint for each scripted cause, end to end over the sandbox.

Each test scripts one situation through the fakes' public control APIs — orders and
refunds placed in the fake Shopify (which sends the real signed webhooks to a real
receiver that records them in the ledger), WMS levels, ERP CSV drops, held and
reordered webhooks, a 429 — then runs the real diff job with the evidence source the
service is assembled with, and reads the incident's "Likely cause" (what the alert
shows). The fakes and the product share one ManualClock: no test waits for time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from connectors import ManualClock
from connectors.shopify.webhooks import TOPICS, WebhookReceiver
from ledger import Ledger
from monitors.assemble import evidence_source
from monitors.config import Config, config_from_dict
from monitors.jobs import DiffResult, DriftDiffJob
from monitors.wiring import build_systems, rules_from_config
from sandbox.erp import FakeERP
from sandbox.shopify import FakeShopify
from sandbox.wms import FakeWMS

WMS_TOKEN = "wms-hints-token"
CHANNEL = "C0HINTS01"
WAREHOUSE = "WH-EAST"


@dataclass
class Lab:
    """The fakes, a webhook receiver recording into the ledger, and the diff job."""

    clock: ManualClock
    shopify: FakeShopify
    wms: FakeWMS
    erp: FakeERP
    ledger: Ledger
    receiver: WebhookReceiver
    job: DriftDiffJob
    east: str

    def wms_level(self, sku: str, *, pickable: int, allocated: int = 0, damaged: int = 0) -> None:
        self.wms.set_level(
            sku,
            WAREHOUSE,
            pickable=pickable,
            allocated=allocated,
            damaged=damaged,
            on_hand=pickable + allocated + damaged,
        )

    async def diff(self) -> DiffResult:
        """Let every webhook sent so far arrive and settle, then run a full diff."""
        await self.shopify.webhooks.idle()
        await self.receiver.idle()
        return await self.job.run()

    async def hint(self, sku: str) -> str | None:
        [incident] = [i for i in await self.ledger.list_incidents() if i.sku == sku]
        return incident.root_cause_hint


def lab_config(
    shopify_url: str,
    wms_url: str,
    east: str,
    erp_dir: Path,
    *,
    wms_committed: bool,
    erp: bool,
    extra: dict[str, Any],
) -> Config:
    quantities = {"on_hand": "on_hand", "available": "pickable", "damaged": "damaged"}
    if wms_committed:
        quantities["committed"] = "allocated"
    erp_system = {
        "name": "erp",
        "kind": "csv",
        "role": "erp",
        "directory": str(erp_dir),
        "pattern": "inventory_*.csv",
        "columns": {
            "sku": "ITEM_NO",
            "location": "WAREHOUSE",
            "quantities": {"on_hand": "QTY_ON_HAND"},
            "observed_at": "EXPORTED_AT",
        },
        "compare_states": ["on_hand"],
    }
    return config_from_dict(
        {
            "source_of_truth": ["wms"],
            "systems": [
                {
                    "name": "shopify",
                    "kind": "shopify",
                    "role": "storefront",
                    "shop_url": shopify_url,
                    "token_env": "HINTS_SHOPIFY_TOKEN",
                    "webhook_secret_env": "HINTS_SHOPIFY_WEBHOOK_SECRET",
                },
                {
                    "name": "wms",
                    "kind": "rest",
                    "role": "warehouse",
                    "base_url": wms_url,
                    "auth": {"type": "bearer", "token_env": "HINTS_WMS_TOKEN"},
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
                        "quantities": quantities,
                    },
                },
                *([erp_system] if erp else []),
            ],
            "locations": {
                "east": {"shopify": east, "wms": WAREHOUSE, **({"erp": WAREHOUSE} if erp else {})}
            },
            # Every unit counts: a drift of one unit opens an incident at once.
            "thresholds": {"default": {"absolute": 0, "percent": 0.0}},
            "slack": {
                "alerts_channel": CHANNEL,
                "bot_token_env": "HINTS_SLACK_TOKEN",
                "signing_secret_env": "HINTS_SLACK_SIGNING_SECRET",
            },
            **extra,
        }
    )


@asynccontextmanager
async def open_lab(
    tmp_path: Path,
    stock: dict[str, int],
    *,
    wms_committed: bool = True,
    erp: bool = False,
    **extra: Any,
) -> AsyncIterator[Lab]:
    """A shop and a warehouse agreeing on ``stock`` (SKU → units at east), an ERP that
    agrees too when ``erp`` (its first export is read by the first diff), and one diff
    already run, so the ledger has the levels' history."""
    clock = ManualClock()
    erp_dir = tmp_path / "erp"
    erp_dir.mkdir()
    fake_erp = FakeERP(erp_dir, clock=clock)
    async with (
        FakeShopify(clock=clock) as shopify,
        FakeWMS(token=WMS_TOKEN, clock=clock) as wms,
        Ledger.from_url(f"sqlite:///{tmp_path / 'hints.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        east = shopify.add_location("Brooklyn DC")
        for sku, units in stock.items():
            shopify.add_item(sku)
            shopify.set_quantities(sku, east, available=units)
            wms.set_level(sku, WAREHOUSE, pickable=units, allocated=0, damaged=0, on_hand=units)
            fake_erp.set_level(sku, WAREHOUSE, units)
        fake_erp.export_now()
        clock.advance(120)  # the export settles
        config = lab_config(
            shopify.url or "",
            wms.base_url,
            east,
            erp_dir,
            wms_committed=wms_committed,
            erp=erp,
            extra=extra,
        )
        environ = {
            "HINTS_SHOPIFY_TOKEN": shopify.access_token,
            "HINTS_SHOPIFY_WEBHOOK_SECRET": shopify.webhooks.secret,
            "HINTS_WMS_TOKEN": WMS_TOKEN,
        }
        receiver = WebhookReceiver(  # a generous ack budget: wall-clock, a hang guard only
            system="shopify",
            secrets=[shopify.webhooks.secret],
            store=ledger,
            clock=clock,
            ack_budget=120.0,
        )
        app = web.Application()
        app.router.add_post("/webhooks/shopify", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        for topic in TOPICS:
            shopify.webhooks.subscribe(topic, f"http://127.0.0.1:{port}/webhooks/shopify")
        job = DriftDiffJob(
            build_systems(config, client=client, clock=clock, environ=environ),
            rules_from_config(config),
            ledger,
            clock,
            channel=CHANNEL,
            kinds={s.name: s.kind for s in config.systems},
            evidence=evidence_source(config, ledger, clock),
        )
        lab = Lab(clock, shopify, wms, fake_erp, ledger, receiver, job, east)
        try:
            first = await lab.diff()
            assert first.run.drifts == [], "the lab starts in agreement"
            assert first.run.failures == {}
            yield lab
        finally:
            await receiver.close()
            await runner.cleanup()


async def test_race_with_in_flight_orders(tmp_path: Path) -> None:
    async with open_lab(tmp_path, {"TEE": 20}) as lab:
        lab.clock.advance(60)
        lab.shopify.place_order(lab.east, {"TEE": 3})  # Shopify commits 3
        lab.wms_level("TEE", pickable=17)  # the WMS already picked and shipped them
        lab.clock.advance(60)
        await lab.diff()
        assert await lab.hint("TEE") == (
            "Likely a race with in-flight orders: Shopify has 3 units committed to orders "
            "the WMS has not allocated yet"
        )


async def test_returns_not_flowing_back(tmp_path: Path) -> None:
    async with open_lab(tmp_path, {"TEE": 20}) as lab:
        lab.clock.advance(60)
        order = lab.shopify.place_order(lab.east, {"TEE": 2})
        lab.shopify.fulfill_order(order)
        lab.wms_level("TEE", pickable=18)  # the WMS shipped the same order
        lab.clock.advance(3 * 3600)
        # The customer returns both; the returns app restocks Shopify, not the WMS.
        lab.shopify.refund_order(order, {"TEE": 2}, restock_type="return")
        lab.clock.advance(120)
        await lab.diff()
        assert await lab.hint("TEE") == (
            "Likely returns not flowing: Shopify is 2 over the WMS, within the 2 units "
            "refunded and restocked recently"
        )


async def test_damages_not_flowing_back(tmp_path: Path) -> None:
    async with open_lab(tmp_path, {"TEE": 20}) as lab:
        lab.clock.advance(600)
        lab.wms_level("TEE", pickable=17, damaged=3)  # 3 found damaged in the warehouse
        lab.clock.advance(60)
        await lab.diff()
        assert await lab.hint("TEE") == (
            "Likely damages not flowing: the WMS records 3 damaged and Shopify 0, and the "
            "3-unit gap fits damaged stock not written off or restocked in step"
        )


async def test_bundle_math(tmp_path: Path) -> None:
    bundles = [{"sku": "GIFT", "components": {"TEE": 2}}]
    async with open_lab(tmp_path, {"TEE": 20, "GIFT": 10}, bundles=bundles) as lab:
        lab.clock.advance(60)
        lab.shopify.place_order(lab.east, {"GIFT": 3})  # Shopify deducts the bundle only
        lab.wms_level("TEE", pickable=14)  # the WMS picks 3 × 2 tees
        lab.clock.advance(60)
        await lab.diff()
        assert await lab.hint("TEE") == (
            "Likely bundle math: Shopify is 6 over on TEE, which fits recent sales of "
            "bundle GIFT deducted at the wrong level"
        )


async def test_manual_storefront_override(tmp_path: Path) -> None:
    async with open_lab(tmp_path, {"TEE": 20}) as lab:
        lab.clock.advance(1800)
        lab.shopify.set_quantities("TEE", lab.east, available=35)  # typed into the admin
        lab.clock.advance(300)
        await lab.diff()
        assert await lab.hint("TEE") == (
            "Likely a manual change in Shopify: its level changed 5 min ago, after the last "
            "sync from the WMS, with no order or refund to explain it"
        )


async def test_batch_window(tmp_path: Path) -> None:
    async with open_lab(tmp_path, {"TEE": 20}, erp=True) as lab:
        lab.clock.advance(60)
        lab.erp.export_now()  # the ERP's batch export, the WMS's count known at the time
        lab.clock.advance(120)
        assert (await lab.diff()).run.drifts == []
        lab.clock.advance(3600)
        lab.wms_level("TEE", pickable=16)  # 4 shipped since the export
        lab.shopify.set_quantities("TEE", lab.east, available=16)
        lab.clock.advance(60)
        await lab.diff()
        assert await lab.hint("TEE") == (
            "Likely a batch window: the ERP's data is 63 min older than the WMS's and the "
            "WMS moved -4 since, exactly the gap"
        )


async def test_pack_size_transformation(tmp_path: Path) -> None:
    packs = {"erp": {"skus": {"MUG": 12}}}
    async with open_lab(tmp_path, {"TEE": 20}, erp=True, pack_sizes=packs) as lab:
        lab.shopify.add_item("MUG")
        lab.shopify.set_quantities("MUG", lab.east, available=30)
        lab.wms_level("MUG", pickable=30)
        lab.erp.set_level("MUG", WAREHOUSE, 30, "EA")  # the export now counts units
        lab.erp.export_now()
        lab.clock.advance(120)
        await lab.diff()
        assert await lab.hint("MUG") == (
            "Likely a pack-size transformation: the ERP shows 360 = 30 × 12, as if a pack "
            "size of 12 were applied to a count already in units"
        )


async def test_partial_state_update(tmp_path: Path) -> None:
    # The WMS integration maps on-hand and pickable but not allocated (committed).
    async with open_lab(tmp_path, {"TEE": 20}, wms_committed=False) as lab:
        lab.clock.advance(60)
        lab.shopify.place_order(lab.east, {"TEE": 3})
        lab.wms_level("TEE", pickable=17, allocated=3)  # allocated, not yet shipped
        lab.clock.advance(20 * 60)  # long past any race
        await lab.diff()
        assert await lab.hint("TEE") == (
            "Likely a partial state update: Shopify and the WMS agree on on-hand (20) but "
            "not on the compared states (20 vs 17)"
        )


async def test_out_of_sequence_retry(tmp_path: Path) -> None:
    async with open_lab(tmp_path, {"TEE": 20}) as lab:
        lab.shopify.webhooks.holding = True
        lab.clock.advance(60)
        lab.shopify.set_quantities("TEE", lab.east, available=18)
        lab.shopify.webhooks.flush()
        lab.clock.advance(60)
        lab.shopify.set_quantities("TEE", lab.east, available=15)
        lab.shopify.webhooks.flush()
        assert lab.shopify.webhooks.release(reverse=True) == 2  # newest first
        lab.clock.advance(60)
        await lab.diff()
        deliveries = await lab.ledger.list_deliveries(system="shopify")
        assert [d.outcome for d in deliveries] == ["processed", "stale"]
        assert await lab.hint("TEE") == (
            "Likely an out-of-sequence retry: 1 Shopify update for TEE at east arrived after "
            "a newer one, so an old level may have overwritten it"
        )


async def test_webhook_gap(tmp_path: Path) -> None:
    async with open_lab(tmp_path, {"TEE": 20, "CAP": 8}) as lab:
        lab.clock.advance(60)
        lab.shopify.set_quantities("CAP", lab.east, available=7)  # webhooks flow...
        lab.wms_level("CAP", pickable=7)
        await lab.shopify.webhooks.idle()
        lab.shopify.webhooks.holding = True  # ...but this one never arrives
        lab.shopify.set_quantities("TEE", lab.east, available=26)
        lab.clock.advance(600)
        await lab.diff()
        assert await lab.hint("TEE") == (
            "Likely a webhook gap: the last poll of Shopify found a change to TEE at east "
            "that no webhook announced"
        )


async def test_rate_limit_drops(tmp_path: Path) -> None:
    async with open_lab(tmp_path, {"TEE": 20}) as lab:
        lab.clock.advance(600)
        lab.wms_level("TEE", pickable=15)  # the push to Shopify never landed
        lab.clock.advance(60)
        lab.shopify.force_http_429(1, retry_after=2.0)
        await lab.diff()
        assert await lab.hint("TEE") == (
            "Likely updates dropped under rate limiting: Shopify was throttled around when "
            "the drift began 1 min ago"
        )
