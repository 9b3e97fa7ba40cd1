"""Helpers for the tests of issue 13's "what a card says is true": the production Service
over the sandbox world, driven as Slack would drive it (signed requests to
``/slack/events``), with assertions on what the fake Slack holds, what the fakes end
with and the ledger's rows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from bot.cli.demo import DemoWorld, demo_config, demo_world
from bot.service import Service
from connectors import ManualClock
from ledger import Incident, Ledger
from monitors.config import config_from_dict
from sandbox.slack import FakeSlack
from sandbox.slack.model import Message
from sandbox.world import World

SECRET = "truth-signing-secret"
WRITER = "U0OPS001"
ONCALL = "U0ONCALL1"
TEAM = "T0SANDBOX"
#: far above what a loaded machine needs: it only stops a test that would hang
HANG_GUARD = 120


@dataclass
class Bot:
    demo: DemoWorld
    ledger: Ledger
    service: Service
    clock: ManualClock
    http: httpx.AsyncClient

    @property
    def world(self) -> World:
        return self.demo.world

    @property
    def slack(self) -> FakeSlack:
        return self.demo.world.slack

    @property
    def channel(self) -> str:
        return self.demo.world.alerts_channel

    def shopify(self, sku: str, location: str = "east") -> dict[str, int]:
        return dict(self.world.shopify.quantities(sku, self.world.gid(location)))

    async def post(self, body: str) -> httpx.Response:
        ts = str(int(time.time()))
        signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        }
        assert self.service.url is not None
        return await self.http.post(
            f"{self.service.url}/slack/events", content=body, headers=headers
        )

    async def click(
        self, incident: Incident, action_id: str, value: str | None = None, user: str = WRITER
    ) -> httpx.Response:
        """Click a button of ``incident``'s alert, as Slack sends it."""
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
                    "value": value if value is not None else str(incident.id),
                }
            ],
        }
        response = await self.post(urlencode({"payload": json.dumps(payload)}))
        await self.settle()
        return response

    async def command(self, command: str, text: str, user: str = WRITER) -> str:
        """Type a slash command; return everything it answered (text and blocks)."""
        before = len(self.slack.response_url_posts)
        form = {
            "command": command,
            "text": text,
            "user_id": user,
            "team_id": TEAM,
            "channel_id": self.channel,
            "api_app_id": "A0DRIFT",
            "trigger_id": self.slack.new_trigger_id(user),
            "response_url": self.slack.new_response_url(self.channel, user),
        }
        response = await self.post(urlencode(form))
        assert response.status_code == 200
        await self.settle()
        return json.dumps(
            [p.body for p in self.slack.response_url_posts[before:]], ensure_ascii=False
        )

    async def open_adjust(
        self, sku: str = "TEE-BLK-M", location: str = "east", user: str = WRITER
    ) -> Any:
        """Type ``/adjust SKU LOCATION``; return the modal Slack opened."""
        before = set(self.slack.views)
        await self.command("/adjust", f"{sku} {location}", user=user)
        [view_id] = [v for v in self.slack.views if v not in before]
        return self.slack.views[view_id]

    async def submit_adjust(
        self,
        view: Any,
        *,
        sku: str = "TEE-BLK-M",
        location: str = "east",
        delta: str | None = None,
        count: str | None = None,
        reason: str = "cycle_count",
        note: str | None = None,
        user: str = WRITER,
    ) -> httpx.Response:
        """Submit the ``/adjust`` modal with these fields, as Slack sends it."""

        def text(value: str | None) -> dict[str, Any]:
            return {"type": "plain_text_input", "value": value}

        def select(value: str) -> dict[str, Any]:
            return {"type": "static_select", "selected_option": {"value": value}}

        payload = {
            "type": "view_submission",
            "user": {"id": user, "team_id": TEAM},
            "team": {"id": TEAM},
            "api_app_id": "A0DRIFT",
            "view": {
                "id": view.id,
                "type": "modal",
                "callback_id": "adjust",
                "private_metadata": view.view["private_metadata"],
                "state": {
                    "values": {
                        "sku": {"sku": text(sku)},
                        "location": {"location": select(location)},
                        "delta": {"delta": text(delta)},
                        "count": {"count": text(count)},
                        "reason": {"reason": select(reason)},
                        "note": {"note": text(note)},
                    }
                },
            },
        }
        return await self.post(urlencode({"payload": json.dumps(payload)}))

    async def adjust(self, **fields: Any) -> httpx.Response:
        """Open ``/adjust`` and submit its modal with ``fields``; let it finish."""
        view = await self.open_adjust(
            fields.get("sku", "TEE-BLK-M"), fields.get("location", "east")
        )
        response = await self.submit_adjust(view, **fields)
        await self.settle()
        return response

    async def incident(self, sku: str, *, kind: str | None = None) -> Incident:
        found = [
            i
            for i in await self.ledger.list_incidents(sku=sku, limit=1000)
            if kind is None or i.kind == kind
        ]
        assert len(found) == 1, found
        return found[0]

    def message(self, incident: Incident) -> Message:
        """The alert as Slack holds it now (after every edit)."""
        assert incident.slack_ts is not None, "the alert was never posted"
        [found] = [m for m in self.slack.messages(self.channel) if m.ts == incident.slack_ts]
        return found

    def card(self, incident: Incident) -> str:
        """The alert's blocks as Slack holds them now, as JSON text."""
        return json.dumps(self.message(incident).blocks, ensure_ascii=False)

    def buttons(self, incident: Incident) -> list[str]:
        blocks = self.message(incident).blocks or []
        return [
            str(e.get("action_id"))
            for b in blocks
            if b.get("type") == "actions"
            for e in b.get("elements", [])
        ]

    def replies(self, incident: Incident) -> list[str]:
        assert incident.slack_ts is not None
        thread = self.slack.thread(self.channel, incident.slack_ts)[1:]
        return [m.text for m in thread if m.text]  # (the chart's file share has no text)

    def private(self, user: str = WRITER) -> list[str]:
        return [e.text or "" for e in self.slack.ephemerals if e.user == user]

    async def settle(self) -> None:
        """Let every answer and job finish and deliver the outbox; a Slack that paces
        posts (429 with Retry-After) is waited out on the manual clock, never slept."""
        async with asyncio.timeout(HANG_GUARD):
            for _ in range(200):
                await self.service.idle()
                await self.service.outbox.drain()
                await self.service.idle()
                pending = await self.ledger.list_outbox(status="pending", limit=1000)
                if not pending:
                    return
                due = min(e.next_attempt_at for e in pending)
                self.clock.advance(max(1.0, (due - self.clock.now()).total_seconds()))

    async def diff(self, skus: list[str] | None = None) -> None:
        """A diff now (full, or of ``skus``), and what Slack must hear delivered."""
        await self.service.diff_job.run(skus)
        await self.settle()


def config_with(demo: DemoWorld, change: Callable[[dict[str, Any]], None]) -> DemoWorld:
    raw = demo_config(demo.world)
    change(raw)
    return DemoWorld(demo.world, config_from_dict(raw), demo.environ)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    *,
    setup: Callable[[World], None] | None = None,
    config: Callable[[dict[str, Any]], None] | None = None,
) -> AsyncIterator[Bot]:
    """The Service over the small demo world (``setup`` changes the fakes before the
    first diff, ``config`` the configuration), its scheduler paused (each test runs
    what it needs), the first diff run and its alerts delivered."""
    clock = ManualClock()
    async with (
        # one clock for the bot and the fakes: a level changed "two hours ago" is
        demo_world(clock=clock) as demo,  # type: ignore[arg-type]
        Ledger.from_url(f"sqlite:///{tmp_path / 'truth.db'}") as ledger,
        httpx.AsyncClient(timeout=30) as http,
    ):
        await ledger.upgrade()
        demo.world.slack.clock = clock
        demo.world.slack.ws.clock = clock
        if setup is not None:
            setup(demo.world)
        if config is not None:
            demo = config_with(demo, config)
        environ = {**demo.environ, "DEMO_SLACK_SIGNING_SECRET": SECRET}
        service = Service(demo.config, environ, ledger, clock=clock)
        await service.start(host="127.0.0.1", port=0, schedule=False)
        bot = Bot(demo, ledger, service, clock, http)
        try:
            await service.run_job("drift-diff")
            await bot.settle()
            yield bot
        finally:
            await service.stop()
