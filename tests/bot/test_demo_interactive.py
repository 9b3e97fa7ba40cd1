"""The interactive demo as a user drives it: the channel page's own endpoints (what the
browser calls) click Resync and type /drift; the bot answers through the real path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bot.demo import DemoWorld, run_demo


async def test_resync_and_drift_from_the_channel_page(tmp_path: Path) -> None:
    stop = asyncio.Event()
    started: asyncio.Future[tuple[DemoWorld, str]] = asyncio.get_running_loop().create_future()
    lines: list[str] = []
    task = asyncio.create_task(
        run_demo(
            tmp_path / "demo.db",
            scenario="manual-storefront-override",
            stop=stop,
            ready=lambda demo, url: started.set_result((demo, url)),
            out=lines.append,
        )
    )
    try:
        async with asyncio.timeout(60):
            demo, _ = await started
        world = demo.world
        assert world.slack.page_url in lines[0], "the page's address comes first"
        alert = next(
            m for m in world.slack.messages(world.alerts_channel) if "TEE-BLK-M" in (m.text or "")
        )
        actions = next(b for b in alert.blocks or [] if b["type"] == "actions")
        resync = next(e for e in actions["elements"] if e["action_id"] == "resync")

        async with httpx.AsyncClient(base_url=world.slack.base_url) as page:
            clicked = await page.post(
                "/_ui/action",
                json={
                    "channel": world.alerts_channel,
                    "user": "U0OPS001",
                    "message_ts": alert.ts,
                    "action_id": "resync",
                    "block_id": actions["block_id"],
                    "value": resync["value"],
                },
            )
            assert clicked.json()["status"] == 200
            async with asyncio.timeout(30):
                await world.slack.wait_for_call(
                    lambda c: (
                        c.method == "chat.postMessage"
                        and c.ok  # (not a post Slack paced: that one is sent again)
                        and "→ 28" in str(c.args.get("text"))
                    )
                )
            gid = world.locations["east"][0]
            assert world.shopify.quantities("TEE-BLK-M", gid)["available"] == 28
            [updated] = [m for m in world.slack.messages(world.alerts_channel) if m.ts == alert.ts]
            assert updated.edited
            replies = [m.text for m in world.slack.thread(world.alerts_channel, alert.ts)]
            assert any("40 → 28" in (text or "") for text in replies)

            answered = asyncio.Event()
            world.slack.on_change(
                lambda: answered.set() if world.slack.response_url_posts else None
            )
            typed = await page.post(
                "/_ui/command",
                json={
                    "channel": world.alerts_channel,
                    "user": "U0OPS001",
                    "text": "/drift TEE-BLK-M",
                },
            )
            assert typed.json()["status"] == 200
            async with asyncio.timeout(30):
                await answered.wait()
            answer = str(world.slack.response_url_posts[-1])
            assert "TEE-BLK-M" in answer
            assert "source of truth" in answer
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 60) == 0
