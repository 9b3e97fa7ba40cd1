"""The interactive demo as a user drives it: the channel page's own endpoints (what the
browser calls) click Resync and type /drift; the bot answers through the real path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bot.cli.demo import DemoWorld, run_demo


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

            def edited_and_answered() -> bool:
                # two outbox entries (the edit, the thread reply), delivered in either order
                [card] = [m for m in world.slack.messages(world.alerts_channel) if m.ts == alert.ts]
                replies = [m.text or "" for m in world.slack.thread(world.alerts_channel, alert.ts)]
                return card.edited and any("40 → 28" in text for text in replies[1:])

            async with asyncio.timeout(60):  # a hang guard; the verdict is the state below
                await world.slack.wait_until(edited_and_answered)
            gid = world.locations["east"][0]
            assert world.shopify.quantities("TEE-BLK-M", gid)["available"] == 28

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
