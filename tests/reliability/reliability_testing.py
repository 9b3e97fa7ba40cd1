"""Helpers for the reliability suite (docs/RELIABILITY.md): the running bot over the demo
world, signed Slack requests and Shopify webhooks, and hypothesis input collection.

Everything goes through the production path: the :class:`bot.service.Service` serves
``/slack/events`` and ``/webhooks/shopify`` on loopback, and the sandbox's fakes play
Shopify, the WMS and Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from pg_testing import pg_schema
from slack_sdk.signature import SignatureVerifier

from bot.cli.demo import DemoWorld, demo_config, demo_world
from bot.service import Service
from connectors import ManualClock
from connectors.shopify.webhooks import sign
from ledger import Incident, Ledger
from monitors.config import config_from_dict
from sandbox.slack import Call, FakeSlack

SECRET = "reliability-signing-secret"
WRITER = "U0OPS001"
ONCALL = "U0ONCALL1"
GUEST = "U0GUEST01"
TEAM = "T0SANDBOX"


def slack_headers(body: str, *, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    """Headers Slack sends with a request signed with ``secret`` at ``ts`` (now)."""
    stamp = str(int(time.time()) if ts is None else ts)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(
            timestamp=stamp, body=body
        ),
    }


@dataclass
class Bot:
    """The running Service over the demo world, and how a test talks to it."""

    demo: DemoWorld
    ledger: Ledger
    service: Service
    clock: ManualClock
    http: httpx.AsyncClient

    @property
    def slack(self) -> FakeSlack:
        return self.demo.world.slack

    @property
    def channel(self) -> str:
        return self.demo.world.alerts_channel

    @property
    def url(self) -> str:
        assert self.service.url is not None
        return self.service.url

    def shopify(self, sku: str, location: str) -> dict[str, int]:
        gid = self.demo.world.locations[location][0]
        return dict(self.demo.world.shopify.quantities(sku, gid))

    async def post(
        self, body: str, *, secret: str = SECRET, ts: int | None = None
    ) -> httpx.Response:
        return await self.http.post(
            f"{self.url}/slack/events",
            content=body,
            headers=slack_headers(body, secret=secret, ts=ts),
        )

    async def post_raw(self, body: bytes | str, headers: Mapping[str, str]) -> httpx.Response:
        return await self.http.post(f"{self.url}/slack/events", content=body, headers=headers)

    def click_body(self, incident: Incident, action_id: str = "resync", user: str = WRITER) -> str:
        payload = {
            "type": "block_actions",
            "user": {"id": user, "team_id": TEAM},
            "team": {"id": TEAM},
            "api_app_id": "A0DRIFT",
            "container": {"type": "message", "channel_id": self.channel},
            "channel": {"id": self.channel, "name": "ops-inventory"},
            "message": {"ts": incident.slack_ts},
            "trigger_id": self.slack.new_trigger_id(user),
            "response_url": self.slack.new_response_url(self.channel, user, incident.slack_ts),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": f"incident:{incident.id}",
                    "type": "button",
                    "value": str(incident.id),
                }
            ],
        }
        return urlencode({"payload": json.dumps(payload)})

    def command_body(
        self, command: str, text: str, user: str = WRITER, channel: str | None = None
    ) -> str:
        where = channel or self.channel
        return urlencode(
            {
                "command": command,
                "text": text,
                "user_id": user,
                "team_id": TEAM,
                "channel_id": where,
                "api_app_id": "A0DRIFT",
                "trigger_id": self.slack.new_trigger_id(user),
                "response_url": self.slack.new_response_url(where, user),
            }
        )

    async def webhook(
        self, body: bytes, *, secret: str | None = None, headers: Mapping[str, str] = {}
    ) -> httpx.Response:
        """POST a Shopify webhook from the demo shop, signed with its secret unless told
        otherwise."""
        emitter = self.demo.world.shopify.webhooks
        key = emitter.secret if secret is None else secret
        sent = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": "inventory_levels/update",
            "X-Shopify-Shop-Domain": emitter.shop_domain,
            "X-Shopify-Hmac-Sha256": sign(body, key),
            **headers,
        }
        return await self.http.post(f"{self.url}/webhooks/shopify", content=body, headers=sent)

    async def incident(self, sku: str = "TEE-BLK-M") -> Incident:
        [incident] = await self.ledger.list_incidents(sku=sku)
        return incident

    async def settle(self, hang_guard: float = 300) -> None:
        """Wait until the service, its webhook receiver and the fake Slack are quiet.

        ``hang_guard`` only stops a test that would never finish: it is no verdict on
        speed, so it is set far above what a loaded CI machine needs."""
        async with asyncio.timeout(hang_guard):
            await self.service.idle()
            if self.service.webhooks is not None:
                await self.service.webhooks.idle()
            await self.service.idle()

    def thread_texts(self, incident: Incident) -> list[str]:
        assert incident.slack_ts is not None
        return [m.text for m in self.slack.thread(self.channel, incident.slack_ts)[1:]]


async def wait_for_call(slack: FakeSlack, predicate: Callable[[Call], bool]) -> Call:
    async with asyncio.timeout(60):
        return await slack.wait_for_call(predicate)


def with_writers(demo: DemoWorld, writers: Mapping[str, Any]) -> DemoWorld:
    """The demo world with ``slack.writers`` replaced."""
    raw = demo_config(demo.world)
    raw["slack"]["writers"] = dict(writers)
    return DemoWorld(demo.world, config_from_dict(raw), demo.environ)


#: a URL whose ``search_path`` is a fresh PostgreSQL schema (see ``pg_testing``)
postgres_url = pg_schema


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path,
    *,
    writers: Mapping[str, Any] | None = None,
    http_timeout: float = 30.0,
    database_url: str | None = None,
    before_start: Callable[[DemoWorld, Ledger], Awaitable[None]] | None = None,
    **service_options: Any,
) -> AsyncIterator[Bot]:
    """The Service over the demo world, started with its scheduler paused, its first
    diff run and its first alert (and chart) posted. ``before_start`` sees the world and
    the migrated ledger first (what an earlier process left); ``service_options`` go to
    :class:`Service` (limits, timeouts)."""
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(database_url or f"sqlite:///{tmp_path / 'reliability.db'}") as ledger,
        httpx.AsyncClient(timeout=http_timeout) as http,
    ):
        await ledger.upgrade()
        # The fake Slack keeps time (message ts, its per-channel pacing) on the bot's
        # clock, so a Retry-After the bot waits out is waited out in Slack too.
        demo.world.slack.clock = clock
        demo.world.slack.ws.clock = clock
        if writers is not None:
            demo = with_writers(demo, writers)
        environ = {**demo.environ, "DEMO_SLACK_SIGNING_SECRET": SECRET}
        if before_start is not None:
            await before_start(demo, ledger)
        service = Service(demo.config, environ, ledger, clock=clock, **service_options)
        # No timer fires: these tests count every side effect, and a scheduled outbox
        # run landing mid-example would count as the example's (seen under load).
        # Each test runs the jobs it needs (service.run_job) or acts as Slack would.
        await service.start(host="127.0.0.1", port=0, schedule=False)
        bot = Bot(demo, ledger, service, clock, http)
        try:
            await service.run_job("drift-diff")
            await wait_for_call(
                demo.world.slack, lambda c: c.method == "files.completeUploadExternal"
            )
            await bot.settle()
            yield bot
        finally:
            await service.stop()
