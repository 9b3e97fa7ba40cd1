"""The demo as a person uses it: the channel shows the weekly summary with its decision
buttons, a click and the note modal record the decision, and the app's Home page shows
the KPI dashboard — all through the page's own endpoints (what the browser calls)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from bot.cli.demo import DemoWorld, run_demo


async def test_the_demo_shows_the_weekly_summary_and_the_home_tab(tmp_path: Path) -> None:
    stop = asyncio.Event()
    started: asyncio.Future[tuple[DemoWorld, str]] = asyncio.get_running_loop().create_future()
    lines: list[str] = []
    task = asyncio.create_task(
        run_demo(
            tmp_path / "demo.db",
            scenario="damaged-on-the-shelf",
            stop=stop,
            ready=lambda demo, url: started.set_result((demo, url)),
            out=lines.append,
        )
    )
    try:
        async with asyncio.timeout(90):
            demo, _ = await started
        world = demo.world
        channel = world.alerts_channel
        assert any(line.endswith(f"{world.slack.base_url}/home") for line in lines)
        [summary] = [m for m in world.slack.messages(channel) if "Weekly drift summary" in m.text]
        actions = next(b for b in summary.blocks if b["type"] == "actions")
        assert [e["text"]["text"] for e in actions["elements"]] == [
            "Pass: trend down",
            "Not yet: escalate",
        ]
        async with httpx.AsyncClient(base_url=world.slack.base_url, timeout=30) as page:
            clicked = await page.post(
                "/_ui/action",
                json={
                    "channel": channel,
                    "user": "U0OPS001",
                    "message_ts": summary.ts,
                    "action_id": "verdict_pass",
                    "block_id": actions["block_id"],
                },
            )
            assert clicked.json()["status"] == 200
            async with asyncio.timeout(30):
                await world.slack.wait_for_call(lambda c: c.method == "views.open" and c.ok)
            state = (await page.get(f"/_ui/state?channel={channel}&user=U0OPS001")).json()
            modal = state["view"]
            assert modal["title"]["text"] == "Weekly verification"
            submitted = await page.post(
                "/_ui/view_submission",
                json={
                    "view_id": modal["id"],
                    "user": "U0OPS001",
                    "values": {"note": {"note": "damaged stock fixed by the policy"}},
                },
            )
            assert submitted.json()["status"] == 200
            async with asyncio.timeout(30):
                await world.slack.wait_for_call(
                    lambda c: c.method == "chat.update" and c.ok and c.args.get("ts") == summary.ts
                )
            [decided] = [m for m in world.slack.messages(channel) if m.ts == summary.ts]
            assert "Decision recorded" in json.dumps(decided.blocks)

            # the Home tab: opening it sends app_home_opened; the bot publishes
            home = await page.get("/home?user=U0OPS001")
            assert home.status_code == 200
            answer = (await page.post("/_ui/home/open", json={"user": "U0OPS001"})).json()
            assert answer == {"ok": True, "status": 200, "error": None}
            async with asyncio.timeout(60):
                await world.slack.wait_for_call(lambda c: c.method == "views.publish" and c.ok)
            shown = (await page.get("/_ui/home/state?user=U0OPS001")).json()["view"]
            texts = json.dumps(shown["blocks"], ensure_ascii=False)
            assert "Driftwatch · inventory reliability" in texts
            assert "damaged stock fixed by the policy" in texts  # the latest verdict
            images = [b for b in shown["blocks"] if b["type"] == "image"]
            assert len(images) == 2
            for image in images:
                png = await page.get(image["ui_url"])
                assert png.content.startswith(b"\x89PNG")
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 60) == 0
