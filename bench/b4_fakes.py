"""B4's fakes in a process of their own: ``python -m bench.b4_fakes``.

The fake Shopify, WMS and Slack of B4 run here, so the bot under test keeps its event
loop and its process's CPU to itself: every answer the bot sends through a
``response_url`` and every chart it uploads is received, validated and recorded by the
fake Slack in this process, not on the bot's loop. It seeds the small world B4's
commands ask about, prints one JSON line ``{"config": ..., "environ": ...}`` (the
demo's configuration for this world and the secrets it names), then obeys JSON
commands on stdin, one per line, answering each with one line:

* ``{"cmd": "bodies", "skus": [...]}``: one signed-to-be ``/drift SKU`` form body per
  SKU, each with its own response_url and trigger id; answers ``{"bodies": [...]}``;
* ``{"cmd": "full_answer", "url": ..., "sku": ...}``: ``/drift SKU`` sent to the bot at
  ``url``, then its "Share in channel" button clicked as soon as the private answer
  arrives; answers ``{"seconds": s}``, the time until the chart's upload completed at
  the fake Slack;
* ``{"cmd": "stop"}`` (or end of input).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bot.cli.demo import demo_config
from sandbox.shopify import FakeShopify
from sandbox.slack import Call, FakeSlack
from sandbox.wms import FakeWMS
from sandbox.world import ALERTS_CHANNEL, SLACK_TOKEN, WMS_TOKEN, World

USER = "U0OPS001"
#: the signing secret the bot is configured with and the sender signs with
SECRET = "bench-signing-secret"
#: the SKUs B4's commands ask about (the ledger's first 20)
SKUS = 20


class Sender:
    """Slash commands and button clicks as Slack sends them, with the fake Slack's own
    response_urls and trigger ids."""

    def __init__(self, http: aiohttp.ClientSession, slack: FakeSlack) -> None:
        self.http, self.slack = http, slack
        self.verifier = SignatureVerifier(SECRET)
        self.change = asyncio.Event()
        slack.on_change(self.change.set)

    async def post(self, url: str, body: str) -> int:
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": str(self.verifier.generate_signature(timestamp=ts, body=body)),
        }
        async with self.http.post(
            f"{url}/slack/events", data=body.encode(), headers=headers
        ) as response:
            await response.read()
            return response.status

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

    async def full_answer(self, url: str, sku: str) -> float:
        body, url_id = self.command(sku)
        uploads = len(self.slack.calls("files.completeUploadExternal"))
        start = time.perf_counter()
        status = await self.post(url, body)
        if status != 200:
            raise RuntimeError(f"B4: /drift answered HTTP {status}")
        await asyncio.wait_for(self.answered(url_id), 30)
        status = await self.post(url, self.share(sku))
        if status != 200:
            raise RuntimeError(f"B4: the Share click answered HTTP {status}")
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


async def main() -> None:
    shopify, wms = FakeShopify(), FakeWMS(token=WMS_TOKEN)
    slack = FakeSlack(
        bot_token=SLACK_TOKEN, channels={ALERTS_CHANNEL: "ops"}, post_rate=1000, post_burst=1000
    )
    await shopify.start()
    await wms.start()
    await slack.start()
    try:
        world = World(shopify, wms, slack)
        gid = shopify.add_location("Brooklyn DC")
        world.locations["east"] = (gid, "WH-EAST")
        for i in range(SKUS):
            sku = f"SKU-{i:06d}"
            shopify.set_quantities(shopify.add_item(sku, title=sku), gid, available=26, committed=0)
            wms.set_level(sku, "WH-EAST", pickable=25, allocated=0, on_hand=25, damaged=0)
        environ = {
            "DEMO_SHOPIFY_ACCESS_TOKEN": world.shopify_token,
            "DEMO_WMS_TOKEN": WMS_TOKEN,
            "DEMO_SLACK_BOT_TOKEN": SLACK_TOKEN,
            "DEMO_SLACK_SIGNING_SECRET": SECRET,
        }
        print(json.dumps({"config": demo_config(world), "environ": environ}), flush=True)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            sender = Sender(http, slack)
            while line := await asyncio.to_thread(sys.stdin.readline):
                command = json.loads(line)
                if command["cmd"] == "bodies":
                    bodies = [sender.command(str(sku))[0] for sku in command["skus"]]
                    answer: dict[str, Any] = {"bodies": bodies}
                elif command["cmd"] == "full_answer":
                    seconds = await sender.full_answer(str(command["url"]), str(command["sku"]))
                    answer = {"seconds": seconds}
                else:
                    break
                print(json.dumps(answer), flush=True)
    finally:
        await slack.stop()
        await wms.stop()
        await shopify.stop()


if __name__ == "__main__":
    asyncio.run(main())
