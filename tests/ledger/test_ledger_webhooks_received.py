"""The webhook receiver over HTTP recording into the ledger, on SQLite and PostgreSQL:
one hostile value in one delivery fails neither its batch nor the others' processing
(issue 14, finding 8: a NUL in one orders/create SKU left 6 deliveries ``received``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from ledger_testing import T0

from connectors.clock import ManualClock
from connectors.shopify.webhooks import WebhookEvent, WebhookReceiver, make_webhook_handler, sign
from ledger import Ledger

SECRET = "shpss_ledger_receiver"
SHOP = "driftwatch-sandbox.myshopify.com"


class Rig:
    def __init__(
        self, receiver: WebhookReceiver, url: str, http: httpx.AsyncClient, gate: asyncio.Event
    ) -> None:
        self.receiver, self.url, self.http, self.gate = receiver, url, http, gate
        self.events: list[WebhookEvent] = []

    async def order(self, n: int, sku: str) -> int:
        body = json.dumps(
            {
                "id": 1000 + n,
                "name": f"#{1000 + n}",
                "updated_at": T0.isoformat(),
                "line_items": [{"sku": sku, "variant_id": n, "quantity": 1}],
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": sign(body, SECRET),
            "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Event-Id": f"order-{n}",
            "X-Shopify-Triggered-At": T0.isoformat(),
        }
        return (await self.http.post(self.url, content=body, headers=headers)).status_code


@pytest.fixture
async def rig(ledger: Ledger) -> AsyncIterator[Rig]:
    clock = ManualClock(T0 + timedelta(seconds=5))
    gate = asyncio.Event()
    holder: list[Rig] = []

    async def on_event(event: WebhookEvent) -> None:
        await gate.wait()  # the first one holds the worker: the rest settle as one batch
        holder[0].events.append(event)

    receiver = make_webhook_handler(
        system="shopify",
        secrets=[SECRET],
        store=ledger,
        clock=clock,
        on_event=on_event,
        shop_domains=[SHOP],
        ack_budget=120.0,
    )
    app = web.Application()
    app.router.add_post("/webhooks/shopify", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/shopify"
    async with httpx.AsyncClient(timeout=60) as http:
        holder.append(Rig(receiver, url, http, gate))
        try:
            yield holder[0]
        finally:
            await receiver.close()
            await runner.cleanup()


async def test_a_nul_in_one_order_fails_neither_its_batch_nor_the_others(
    rig: Rig, ledger: Ledger
) -> None:
    skus: list[Any] = [f"TEE-{n}" for n in range(7)]
    skus[3] = "TEE-\u0000-NUL"
    statuses = await asyncio.gather(*(rig.order(n, sku) for n, sku in enumerate(skus)))
    assert statuses == [200] * 7
    rig.gate.set()
    await rig.receiver.idle()
    deliveries = await ledger.list_deliveries()
    assert [d.outcome for d in deliveries] == ["processed"] * 7, [d.detail for d in deliveries]
    by_order = {d.detail["order"]: d.detail["line_items"][0]["sku"] for d in deliveries}
    assert by_order["#1003"] == "TEE-\ufffd-NUL"
    assert sorted(e.summary["order"] for e in rig.events) == [f"#{1000 + n}" for n in range(7)]
