"""B4, Slack responsiveness: signed slash commands over HTTP to the running
``bot.service.Service`` (the real bolt app at ``/slack/events``), its ledger holding N
levels with a week of history.

* **Ack:** C ``/drift SKU`` commands sent at once from another process
  (:mod:`bench.b4_sender`, so the load generator does not share the bot's event loop);
  each one's time to the HTTP answer (Slack's ack) is measured by that sender.
* **Full answer with its chart:** ``/drift SKU`` answers privately through the
  ``response_url`` (no chart); the chart comes with its "Share in channel" button (the
  report posted in the channel and the 7-day chart uploaded in its thread). A sample is
  the time from sending ``/drift SKU`` until the chart's upload completes at the fake
  Slack, the click sent as soon as the private answer arrives.

Baseline: the same commands answered with no ledger history (an empty week), to show
what the history and the 500,000 levels cost.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bench._common import Check, Outcome, Stopwatch, percentile
from bot.cli.demo import demo_config
from bot.service import Service
from ledger import Ledger, LevelObservation
from monitors.config import config_from_dict
from sandbox.shopify import FakeShopify
from sandbox.slack import Call, FakeSlack
from sandbox.wms import FakeWMS
from sandbox.world import ALERTS_CHANNEL, SLACK_TOKEN, WMS_TOKEN, World

USER = "U0OPS001"
LOCATIONS = ("east", "west", "north", "south", "central")


@dataclass(frozen=True)
class Size:
    ledger_skus: int
    concurrent: int
    samples: int


FULL = Size(ledger_skus=50_000, concurrent=200, samples=20)  # × 5 locations × 2 systems
QUICK = Size(ledger_skus=500, concurrent=50, samples=5)


def _observations(skus: int, now: datetime) -> list[list[LevelObservation]]:
    """Batches for record_levels, oldest first: every level a week ago, then a change
    a day for one level in a hundred, and hourly changes for the SKUs asked about."""
    batches: list[list[LevelObservation]] = []
    week_ago = now - timedelta(days=7)

    def obs(system: str, i: int, loc: str, q: int, at: datetime) -> LevelObservation:
        return LevelObservation(system, f"SKU-{i:06d}", loc, "available", q, at, "poll")

    batches.append(
        [
            obs(s, i, loc, 20, week_ago)
            for i in range(skus)
            for loc in LOCATIONS
            for s in ("shopify", "wms")
        ]
    )
    for day in range(1, 7):
        at = week_ago + timedelta(days=day)
        batches.append(
            [
                obs(s, i, loc, 20 + day, at)
                for i in range(0, skus, 100)
                for loc in LOCATIONS
                for s in ("shopify", "wms")
            ]
        )
    for hour in range(1, 7 * 24):
        at = week_ago + timedelta(hours=hour)
        batches.append(
            [
                obs(s, i, "east", 20 + hour % 9 + (s == "shopify"), at)
                for i in range(20)
                for s in ("shopify", "wms")
            ]
        )
    return batches


class Sender:
    def __init__(
        self, http: aiohttp.ClientSession, url: str, secret: str, slack: FakeSlack
    ) -> None:
        self.http, self.url, self.slack = http, url, slack
        self.verifier = SignatureVerifier(secret)
        self.change = asyncio.Event()
        slack.on_change(self.change.set)

    async def post(self, body: str) -> tuple[float, int]:
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": str(self.verifier.generate_signature(timestamp=ts, body=body)),
        }
        start = time.perf_counter()
        async with self.http.post(
            f"{self.url}/slack/events", data=body.encode(), headers=headers
        ) as response:
            await response.read()
            return time.perf_counter() - start, response.status

    def command(self, sku: str) -> tuple[str, str]:
        response_url = self.slack.new_response_url(ALERTS_CHANNEL, USER)
        form = {
            "command": "/drift",
            "text": sku,
            "user_id": USER,
            "team_id": "T0SANDBOX",
            "channel_id": ALERTS_CHANNEL,
            "api_app_id": "A0DRIFT",
            "trigger_id": self.slack.new_trigger_id(USER),
            "response_url": response_url,
        }
        return urlencode(form), response_url.rsplit("/", 1)[-1]

    def share(self, sku: str) -> str:
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": USER, "team_id": "T0SANDBOX"},
            "team": {"id": "T0SANDBOX"},
            "api_app_id": "A0DRIFT",
            "container": {"type": "message", "channel_id": ALERTS_CHANNEL, "is_ephemeral": True},
            "channel": {"id": ALERTS_CHANNEL, "name": "ops-inventory"},
            "trigger_id": self.slack.new_trigger_id(USER),
            "response_url": self.slack.new_response_url(ALERTS_CHANNEL, USER),
            "actions": [
                {"action_id": "share_drift", "block_id": "share", "type": "button", "value": sku}
            ],
        }
        return urlencode({"payload": json.dumps(payload)})

    async def answered(self, url_id: str) -> None:
        while not any(p.url_id == url_id for p in self.slack.ws.response_url_posts):
            self.change.clear()
            await self.change.wait()

    async def full_answer(self, sku: str) -> float:
        body, url_id = self.command(sku)
        uploads = len(self.slack.calls("files.completeUploadExternal"))
        start = time.perf_counter()
        await self.post(body)
        await asyncio.wait_for(self.answered(url_id), 30)
        await self.post(self.share(sku))
        call: Call = await asyncio.wait_for(
            self.slack.wait_for_call(
                lambda c: (
                    c.method == "files.completeUploadExternal"
                    and len(self.slack.calls("files.completeUploadExternal")) > uploads
                )
            ),
            30,
        )
        if not call.ok:
            raise RuntimeError(f"B4: the chart upload failed: {call.error}")
        return time.perf_counter() - start


class LoadProcess:
    """:mod:`bench.b4_sender` in a child process: the concurrent commands are sent from
    there, so the sender's own work does not run on the bot's event loop."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> LoadProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.b4_sender",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return self

    async def send(self, job: dict[str, Any]) -> list[tuple[float, int]]:
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("B4: the load generator exited early")
        return [(float(s), int(status)) for s, status in json.loads(line)["acks"]]

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            self.proc.stdin.write(b"\n")
            await self.proc.stdin.drain()
            self.proc.stdin.close()
        await self.proc.wait()


async def _measure(size: Size, history: bool, tmp: Path) -> dict[str, Any]:
    shopify, wms = FakeShopify(), FakeWMS(token=WMS_TOKEN)
    slack = FakeSlack(
        bot_token=SLACK_TOKEN, channels={ALERTS_CHANNEL: "ops"}, post_rate=1000, post_burst=1000
    )
    await shopify.start()
    await wms.start()
    await slack.start()
    world = World(shopify, wms, slack)
    gid = shopify.add_location("Brooklyn DC")
    world.locations["east"] = (gid, "WH-EAST")
    for i in range(20):
        sku = f"SKU-{i:06d}"
        shopify.set_quantities(shopify.add_item(sku, title=sku), gid, available=26, committed=0)
        wms.set_level(sku, "WH-EAST", pickable=25, allocated=0, on_hand=25, damaged=0)
    config = config_from_dict(demo_config(world))
    secret = "bench-signing-secret"
    environ = {
        "DEMO_SHOPIFY_ACCESS_TOKEN": world.shopify_token,
        "DEMO_WMS_TOKEN": WMS_TOKEN,
        "DEMO_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "DEMO_SLACK_SIGNING_SECRET": secret,
    }
    result: dict[str, Any] = {}
    try:
        async with (
            LoadProcess() as load,
            Ledger.from_url(f"sqlite:///{tmp / f'b4-{history}.db'}") as ledger,
        ):
            await ledger.upgrade()
            levels = 0
            if history:
                with Stopwatch() as fill:
                    for batch in _observations(size.ledger_skus, datetime.now(UTC)):
                        recorded = await ledger.record_levels(batch)
                        levels = max(levels, recorded.observed)
                result["fill_s"] = round(fill.seconds, 1)
                result["levels"] = levels
            service = Service(config, environ, ledger)
            url = await service.start(host="127.0.0.1", port=0)
            try:
                await asyncio.wait_for(service.diff_done.wait(), 120)
                await service.idle()
                # aiohttp as the sender: httpx's pool spends O(n^2) time assigning 200
                # concurrent requests to connections (profiled), which is the harness's
                # cost, not the bot's, and on the same event loop as the bot
                connector = aiohttp.TCPConnector(limit=size.concurrent + 10)
                timeout = aiohttp.ClientTimeout(total=60)
                async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
                    sender = Sender(http, url, secret, slack)
                    await sender.full_answer("SKU-000000")  # warm-up: fonts, caches
                    bodies = [
                        sender.command(f"SKU-{n % 20:06d}")[0] for n in range(size.concurrent)
                    ]
                    acks = await load.send({"url": url, "secret": secret, "bodies": bodies})
                    bad = [status for _, status in acks if status != 200]
                    if bad:
                        raise RuntimeError(f"B4: acks failed: {bad[:5]}")
                    result["acks"] = [s for s, _ in acks]
                    await service.idle()
                    result["full"] = [
                        await sender.full_answer(f"SKU-{n % 20:06d}") for n in range(size.samples)
                    ]
            finally:
                await service.stop()
    finally:
        await slack.stop()
        await wms.stop()
        await shopify.stop()
    return result


async def run(size: Size) -> Outcome:
    out = Outcome()
    with tempfile.TemporaryDirectory(prefix="bench-b4-") as tmp:
        loaded = await _measure(size, True, Path(tmp))
        empty = await _measure(size, False, Path(tmp))
    ack_p99 = 1000 * percentile(loaded["acks"], 99)
    full_p95 = percentile(loaded["full"], 95)
    out.facts.update(
        {
            "ledger_levels": loaded["levels"],
            "ledger_fill_s": loaded["fill_s"],
            "concurrent_commands": size.concurrent,
            "ack_p50_ms": round(1000 * percentile(loaded["acks"], 50), 1),
            "ack_p99_ms": round(ack_p99, 1),
            "full_answer_samples": size.samples,
            "full_answer_p50_s": round(percentile(loaded["full"], 50), 2),
            "full_answer_p95_s": round(full_p95, 2),
            "baseline_empty_ledger_ack_p99_ms": round(1000 * percentile(empty["acks"], 99), 1),
            "baseline_empty_ledger_full_p95_s": round(percentile(empty["full"], 95), 2),
        }
    )
    out.checks += [
        Check(
            f"B4 ack p99, {size.concurrent} concurrent /drift",
            ack_p99,
            "ms",
            "<=",
            150.0,
            1000 * percentile(empty["acks"], 99),
        ),
        Check(
            "B4 /drift SKU full answer with its chart p95",
            full_p95,
            "s",
            "<=",
            1.5,
            percentile(empty["full"], 95),
        ),
    ]
    return out


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL)
