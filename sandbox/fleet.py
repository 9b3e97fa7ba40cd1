"""The sandbox as a process of its own, for tests that run the product as several
processes: ``python -m sandbox.fleet --clients N --erp-dir DIR``.

It starts the fake Shopify, WMS, ERP (CSV drops in DIR) and Slack, seeds a small
catalog in step everywhere, and a round-robin TCP balancer (:mod:`sandbox.balancer`)
with no backends yet. The fake Shopify and the fake Slack also listen on one extra
port per client (replica) ``0..N-1``, so every call they get is known to come from
that client: faults can be aimed at one replica, and every Slack call is attributed.
It prints one JSON line with the addresses, then serves a control API (JSON over HTTP,
on ``control_url``):

* ``GET /state`` — Slack channels (top-level messages with their thread replies and
  files), every Slack API call (method, client, status, time), Shopify requests and
  429s per client, the balancer's connections, and which clients' calls are held;
* ``POST /shopify/levels`` ``{"sku", "location", "available"}`` and ``POST /wms/levels``
  ``{"sku", "location", "pickable"}`` — change a level (location: the key, e.g. east);
* ``POST /shopify/429`` ``{"client", "n", "retry_after"}`` — the next n Shopify calls of
  that client answer HTTP 429;
* ``POST /slack/latency`` ``{"seconds"}`` — every Slack API call takes effect, then is
  answered that many real seconds later;
* ``POST /slack/hold`` ``{"method"}`` — calls of that method take effect and are not
  answered until ``POST /slack/release`` (``GET /state`` says who is held);
* ``POST /balancer`` ``{"backends": ["127.0.0.1:8080", ...]}``.

It stops when its standard input is closed.

It knows nothing of Driftwatch, like the rest of the sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox.balancer import Balancer
from sandbox.erp import FakeERP
from sandbox.shopify import FakeShopify
from sandbox.shopify.faults import Fault
from sandbox.slack import Call, FakeSlack
from sandbox.wms import FakeWMS

WMS_TOKEN = "wms-fleet-token"
SLACK_TOKEN = "xoxb-fleet"
ALERTS_CHANNEL = "C0FLEET01"
REPORTS_CHANNEL = "C0FLEET02"
#: location key -> (Shopify location name, WMS/ERP warehouse code)
LOCATIONS = {"east": ("Brooklyn DC", "WH-EAST"), "west": ("Reno DC", "WH-WEST")}
#: the catalog: SKUs FLEET-000.., every one at every location, in step everywhere
SKUS = 12
QUANTITY = 40

_client: contextvars.ContextVar[int | None] = contextvars.ContextVar("fleet_client", default=None)


def _port_of(request: web.Request) -> int | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return int(sockname[1]) if sockname else None


async def _extra_sites(runner: web.AppRunner, host: str, count: int) -> list[int]:
    """Listen on ``count`` more ports with the same app; their port numbers."""
    ports: list[int] = []
    for _ in range(count):
        before = set(runner.addresses)
        await web.TCPSite(runner, host, 0).start()
        (added,) = set(runner.addresses) - before
        ports.append(int(added[1]))
    return ports


class FleetShopify(FakeShopify):
    """The fake Shopify with one port per client and faults aimed at one client."""

    def __init__(self) -> None:
        super().__init__()
        self.client_ports: dict[int, int] = {}
        self.client_429: dict[int, list[float]] = {}
        self.requests_by_client: Counter[int] = Counter()
        self.http_429_by_client: Counter[int] = Counter()

    async def open_clients(self, count: int, host: str = "127.0.0.1") -> list[str]:
        assert self._runner is not None
        ports = await _extra_sites(self._runner, host, count)
        self.client_ports = {port: n for n, port in enumerate(ports)}
        return [f"http://{host}:{port}" for port in ports]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        client = self.client_ports.get(_port_of(request) or -1)
        if client is not None:
            self.requests_by_client[client] += 1
            queue = self.client_429.get(client)
            if queue:
                retry_after = queue.pop(0)
                self.http_429_by_client[client] += 1
                await request.read()
                fault = Fault("http_429", 429, retry_after)
                return await self._fault_response(request.match_info["version"], fault)
        return await super()._handle(request)


class FleetSlack(FakeSlack):
    """The fake Slack with one port per client, every call attributed to its client,
    and answers that can be slowed or held."""

    def __init__(self) -> None:
        super().__init__(
            bot_token=SLACK_TOKEN,
            channels={ALERTS_CHANNEL: "ops-inventory", REPORTS_CHANNEL: "inventory-reports"},
            # Slack: about one post per second per channel, "short bursts >1 allowed"
            post_burst=2,
        )
        self.client_ports: dict[int, int] = {}
        self.attributed: list[tuple[int | None, Call]] = []
        self.delay = 0.0
        self.hold_method: str | None = None
        self.held: list[int | None] = []
        self._release = asyncio.Event()
        self.latency = self._answer_later

    async def open_clients(self, count: int, host: str = "127.0.0.1") -> list[str]:
        assert self._runner is not None
        ports = await _extra_sites(self._runner, host, count)
        self.client_ports = {port: n for n, port in enumerate(ports)}
        return [f"http://{host}:{port}/api/" for port in ports]

    async def _api(self, request: web.Request) -> web.StreamResponse:
        token = _client.set(self.client_ports.get(_port_of(request) or -1))
        try:
            return await super()._api(request)
        finally:
            _client.reset(token)

    def _record(self, call: Call) -> None:
        self.attributed.append((_client.get(), call))
        super()._record(call)

    async def _answer_later(self, call: Call) -> None:
        if self.hold_method is not None and call.method == self.hold_method:
            self.held.append(_client.get())
            await self._release.wait()
        elif self.delay > 0:
            await asyncio.sleep(self.delay)

    def hold(self, method: str) -> None:
        self.hold_method = method
        self._release = asyncio.Event()

    def release(self) -> None:
        self.hold_method = None
        self._release.set()
        self.held.clear()


def _item_num(gid: str) -> int:
    match = re.search(r"(\d+)$", gid)
    if match is None:
        raise ValueError(gid)
    return int(match.group(1))


class Fleet:
    def __init__(self, clients: int, erp_dir: Path) -> None:
        self.clients = clients
        self.shopify = FleetShopify()
        self.wms = FakeWMS(token=WMS_TOKEN)
        self.erp = FakeERP(erp_dir)
        self.slack = FleetSlack()
        self.balancer = Balancer()
        self.gids: dict[str, str] = {}
        self.items: dict[str, str] = {}
        self._runner: web.AppRunner | None = None

    def seed(self) -> None:
        for key, (name, _warehouse) in LOCATIONS.items():
            self.gids[key] = self.shopify.add_location(name)
        for i in range(SKUS):
            sku = f"FLEET-{i:03d}"
            self.items[sku] = self.shopify.add_item(sku, title=f"Fleet item {i}")
            for key, (_name, warehouse) in LOCATIONS.items():
                self.shopify.set_quantities(sku, self.gids[key], available=QUANTITY, committed=0)
                self.wms.set_level(
                    sku, warehouse, pickable=QUANTITY, allocated=0, on_hand=QUANTITY, damaged=0
                )
                self.erp.set_level(sku, warehouse, QUANTITY)
        self.erp.export_now()

    async def start(self) -> dict[str, Any]:
        self.seed()
        await self.shopify.start()
        await self.wms.start()
        await self.slack.start()
        shopify_urls = await self.shopify.open_clients(self.clients)
        slack_urls = await self.slack.open_clients(self.clients)
        balancer_port = await self.balancer.start()
        app = web.Application()
        app.router.add_get("/state", self._state)
        app.router.add_post("/shopify/levels", self._shopify_level)
        app.router.add_post("/wms/levels", self._wms_level)
        app.router.add_post("/shopify/429", self._shopify_429)
        app.router.add_post("/slack/latency", self._slack_latency)
        app.router.add_post("/slack/hold", self._slack_hold)
        app.router.add_post("/slack/release", self._slack_release)
        app.router.add_post("/balancer", self._balancer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        control_port = self._runner.addresses[0][1]
        return {
            "control_url": f"http://127.0.0.1:{control_port}",
            "balancer_url": f"http://127.0.0.1:{balancer_port}",
            "shopify_urls": shopify_urls,
            "shopify_token": self.shopify.access_token,
            "shop_domain": self.shopify.webhooks.shop_domain,
            "webhook_secret": self.shopify.webhooks.secret,
            "slack_api_urls": slack_urls,
            "slack_token": SLACK_TOKEN,
            "signing_secret": self.slack.signing_secret,
            "alerts_channel": ALERTS_CHANNEL,
            "reports_channel": REPORTS_CHANNEL,
            "wms_url": self.wms.base_url,
            "wms_token": WMS_TOKEN,
            "erp_dir": str(self.erp.directory),
            "locations": {
                key: {"shopify": self.gids[key], "wms": wh, "erp": wh}
                for key, (_name, wh) in LOCATIONS.items()
            },
            "location_ids": {key: _item_num(gid) for key, gid in self.gids.items()},
            "items": {sku: _item_num(gid) for sku, gid in self.items.items()},
        }

    async def stop(self) -> None:
        self.slack.release()
        await self.balancer.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.slack.stop()
        await self.wms.stop()
        await self.shopify.stop()

    # ------------------------------------------------------------------ control API

    async def _state(self, request: web.Request) -> web.Response:
        channels: dict[str, list[dict[str, Any]]] = {}
        for channel in (ALERTS_CHANNEL, REPORTS_CHANNEL):
            channels[channel] = [
                {
                    "ts": m.ts,
                    "user": m.user,
                    "text": m.text[:500],
                    "files": len(m.files),
                    "metadata": m.metadata,
                    "replies": [
                        {"ts": r.ts, "text": r.text[:500], "files": len(r.files)}
                        for r in self.slack.thread(channel, m.ts)[1:]
                    ],
                }
                for m in self.slack.messages(channel)
            ]
        calls = [
            {
                "method": call.method,
                "client": client,
                "status": call.status,
                "ok": call.ok,
                "error": call.error,
                "at": call.at.timestamp(),
            }
            for client, call in self.slack.attributed
        ]
        return web.json_response(
            {
                "channels": channels,
                "slack_calls": calls,
                "slack_held": list(self.slack.held),
                "shopify_requests": {str(k): v for k, v in self.shopify.requests_by_client.items()},
                "shopify_429": {str(k): v for k, v in self.shopify.http_429_by_client.items()},
                "shopify_writes": len(self.shopify.writes),
                "balancer": dict(self.balancer.connections),
                "balancer_refused": self.balancer.refused,
            }
        )

    async def _shopify_level(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.shopify.set_quantities(
            body["sku"], self.gids[body["location"]], available=int(body["available"])
        )
        return web.json_response({"ok": True})

    async def _wms_level(self, request: web.Request) -> web.Response:
        body = await request.json()
        warehouse = LOCATIONS[body["location"]][1]
        self.wms.set_level(body["sku"], warehouse, pickable=int(body["pickable"]))
        return web.json_response({"ok": True})

    async def _shopify_429(self, request: web.Request) -> web.Response:
        body = await request.json()
        queue = self.shopify.client_429.setdefault(int(body["client"]), [])
        queue.extend([float(body.get("retry_after", 0.2))] * int(body["n"]))
        return web.json_response({"ok": True})

    async def _slack_latency(self, request: web.Request) -> web.Response:
        self.slack.delay = float((await request.json())["seconds"])
        return web.json_response({"ok": True})

    async def _slack_hold(self, request: web.Request) -> web.Response:
        self.slack.hold(str((await request.json())["method"]))
        return web.json_response({"ok": True})

    async def _slack_release(self, request: web.Request) -> web.Response:
        self.slack.release()
        return web.json_response({"ok": True})

    async def _balancer(self, request: web.Request) -> web.Response:
        backends = []
        for address in (await request.json())["backends"]:
            host, port = str(address).rsplit(":", 1)
            backends.append((host, int(port)))
        self.balancer.set_backends(backends)
        return web.json_response({"ok": True})


async def main(clients: int, erp_dir: Path) -> None:
    fleet = Fleet(clients, erp_dir)
    print(json.dumps(await fleet.start()), flush=True)
    try:
        await asyncio.to_thread(sys.stdin.read)  # until whoever started us closes it
    finally:
        await fleet.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m sandbox.fleet")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--erp-dir", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.erp_dir))
