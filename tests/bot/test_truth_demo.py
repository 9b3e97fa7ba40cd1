"""Issue 13, "Done when": in the demo, after Resync, the card, ``/drift`` and
``/synchealth`` agree within seconds. The demo as a user drives it: the channel page's
own endpoints (what the browser calls) click Resync and type the commands."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from bot.cli.demo import DemoWorld, run_demo

SKU = "CAP-NAVY"


async def test_after_resync_the_card_drift_and_synchealth_agree_in_the_demo(
    tmp_path: Path,
) -> None:
    stop = asyncio.Event()
    started: asyncio.Future[tuple[DemoWorld, str]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_demo(
            tmp_path / "demo.db",
            scenario="manual-storefront-override",
            stop=stop,
            ready=lambda demo, url: started.set_result((demo, url)),
            out=lambda line: None,
        )
    )
    try:
        async with asyncio.timeout(120):
            demo, _ = await started
        world = demo.world
        channel = world.alerts_channel
        alert = next(m for m in world.slack.messages(channel) if SKU in (m.text or ""))
        actions = next(b for b in alert.blocks or [] if b["type"] == "actions")
        resync = next(e for e in actions["elements"] if e["action_id"] == "resync")
        assert "+18" in json.dumps(alert.blocks)

        async with httpx.AsyncClient(base_url=world.slack.base_url) as page:

            async def typed(text: str) -> str:
                before = len(world.slack.response_url_posts)
                answered = asyncio.Event()
                world.slack.on_change(
                    lambda: answered.set() if len(world.slack.response_url_posts) > before else None
                )
                response = await page.post(
                    "/_ui/command", json={"channel": channel, "user": "U0OPS001", "text": text}
                )
                assert response.json()["status"] == 200
                async with asyncio.timeout(60):
                    await answered.wait()
                return json.dumps(world.slack.response_url_posts[-1].body, ensure_ascii=False)

            clicked = await page.post(
                "/_ui/action",
                json={
                    "channel": channel,
                    "user": "U0OPS001",
                    "message_ts": alert.ts,
                    "action_id": "resync",
                    "block_id": actions["block_id"],
                    "value": resync["value"],
                },
            )
            assert clicked.json()["status"] == 200

            def closed(call: Any) -> bool:
                return (
                    call.method == "chat.postMessage"
                    and call.ok
                    and call.args.get("thread_ts") == alert.ts
                    and "Recovered" in str(call.args.get("text"))
                )

            async with asyncio.timeout(60):
                await world.slack.wait_for_call(closed)

            assert world.shopify.quantities(SKU, world.gid("east"))["available"] == 12
            [card] = [m for m in world.slack.messages(channel) if m.ts == alert.ts]
            shown = json.dumps(card.blocks, ensure_ascii=False)
            assert "Resolved" in shown
            assert "*Final counts*" in shown
            assert "*shopify*: 12" in shown
            assert "+18" not in shown
            assert not [b for b in card.blocks or [] if b["type"] == "actions"]

            drift = await typed(f"/drift {SKU}")
            assert f"{SKU}: every system agrees" in drift
            assert "shopify: *12*" in drift
            assert "No open incident." in drift
            health = await typed("/synchealth")
            assert SKU not in health
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 60) == 0
