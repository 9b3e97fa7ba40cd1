"""The fake Slack's Home page in a real browser (Debian's chromium, driven by
Playwright): following the app in the channel page's sidebar opens it, which sends a
signed ``app_home_opened``; the view the app publishes in answer shows, its chart
loaded, outside text shown as text.

Skipped when ``/usr/bin/chromium`` or the ``playwright`` package is missing, except under
``CI=true`` where that is a failure. The screenshot goes to ``artifacts/`` (gitignored).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import FakeSlack

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SECRET = "home-signing-secret"
USER = "U0OPS001"


def _png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes((46, 182, 125)) * 120 for _ in range(40))
    header = struct.pack(">IIBBBBB", 120, 40, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(signing_secret=SECRET) as fake:
        yield fake


@pytest.fixture
async def app(slack: FakeSlack) -> AsyncIterator[list[dict[str, Any]]]:
    """An app that publishes a Home view whenever its Home tab is opened."""
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    uploaded = await client.files_upload_v2(file=_png(), filename="trend.png", title="trend")
    file_id = uploaded["file"]["id"]
    events: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def publish(user: str) -> None:
        await client.views_publish(
            user_id=user,
            view={
                "type": "home",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "KPI dashboard"}},
                    {
                        "type": "section",
                        "fields": [
                            {"type": "mrkdwn", "text": "*Mismatch rate*\n2.1% ▼ -3 pts (better)"},
                            {"type": "mrkdwn", "text": "*Oversells*\n1"},
                        ],
                    },
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "text": "Note: &lt;script&gt;alert(1)&lt;/script&gt; by <@U0OPS001>",
                        },
                    },
                    {
                        "type": "image",
                        "slack_file": {"id": file_id},
                        "alt_text": "the trend",
                        "title": {"type": "plain_text", "text": "Weekly KPIs"},
                    },
                ],
            },
        )

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        if not SignatureVerifier(SECRET).is_valid_request(body, dict(request.headers)):
            return web.Response(status=401)
        event = json.loads(body)["event"]
        events.append(event)
        task = asyncio.create_task(publish(event["user"]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.Response(status=200)

    server = web.Application()
    server.router.add_post("/slack/events", handle)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    slack.interactivity_url = f"http://{host}:{port}/slack/events"
    try:
        yield events
    finally:
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    return CHROMIUM


@pytest.fixture
async def page(chromium: Path) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            tab = await context.new_page()
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.errors = errors
            yield tab
            await context.close()
        finally:
            await browser.close()


async def test_the_home_page_in_a_browser(
    slack: FakeSlack, app: list[dict[str, Any]], page: Any
) -> None:
    await page.goto(f"{slack.base_url}/channel/C0DRIFT01?user={USER}")
    await page.click("a[href='/home']")  # the app, under Apps in the sidebar
    await page.wait_for_url("**/home")
    await page.wait_for_selector(".b-header:has-text('KPI dashboard')", timeout=15_000)
    assert [e["type"] for e in app] == ["app_home_opened"]
    assert app[0]["user"] == USER
    body = await page.inner_text("#home")
    assert "Mismatch rate" in body
    assert "<script>alert(1)</script>" in body  # shown as text
    assert await page.evaluate("document.querySelectorAll('#home script').length") == 0
    assert "@olivia" in body  # the mention, by name
    loaded = await page.evaluate(
        "Array.from(document.querySelectorAll('#home img')).map(i => i.naturalWidth)"
    )
    assert loaded == [120]
    await page.screenshot(path=str(ARTIFACTS / "home-tab.png"), full_page=True)
    assert page.errors == []
