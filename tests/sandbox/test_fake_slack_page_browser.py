"""The fake Slack's channel page in a real browser (Debian's chromium, driven by
Playwright): a message posted through the real slack_sdk client shows up with its blocks,
a button behind a confirm dialog reaches the app as a signed ``block_actions``, and the
app's ``chat.update`` appears without a reload.

Skipped when ``/usr/bin/chromium`` or the ``playwright`` package is missing, except under
``CI=true`` where that is a failure. Screenshots go to ``artifacts/`` (gitignored).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import FakeSlack

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHANNEL = "C0DRIFT01"
SECRET = "browser-signing-secret"


def _png(width: int = 240, height: int = 90) -> bytes:
    """A small bar chart as a PNG (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            bar = (x // 30) % 2 == 0 and y > height - 20 - (x * 7) % 60
            row += bytes((46, 182, 125) if bar else (248, 248, 248))
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


class Receiver:
    """The app's request URL: checks Slack's signature, records each payload."""

    def __init__(self) -> None:
        self.url = ""
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.answers: list[web.Response] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        valid = SignatureVerifier(SECRET).is_valid_request(body, dict(request.headers))
        form = dict(parse_qsl(body))
        payload = json.loads(form["payload"]) if "payload" in form else None
        await self.received.put({"valid": valid, "payload": payload, "form": form})
        if not valid:
            return web.Response(status=401)
        return self.answers.pop(0) if self.answers else web.Response(status=200)

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(15):
            return await self.received.get()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/slack/events", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/slack/events"
    yield rec
    await runner.cleanup()


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    return CHROMIUM


@pytest.fixture
async def browser_page(chromium: Path) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.errors = errors
            yield page
            await context.close()
        finally:
            await browser.close()


ALERT = [
    {
        "type": "header",
        "text": {"type": "plain_text", "text": ":rotating_light: Drift on TEE-BLK-M"},
    },
    {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": "*Oversell risk* at _Paris warehouse_: Shopify says `830`, the WMS says "
            "`847`. <@U0ONCALL1> is on call. <https://example.com/runbook|Runbook>",
        },
        "accessory": {
            "type": "static_select",
            "action_id": "snooze",
            "placeholder": {"type": "plain_text", "text": "Snooze"},
            "options": [
                {"text": {"type": "plain_text", "text": "1 hour"}, "value": "1h"},
                {"text": {"type": "plain_text", "text": "1 day"}, "value": "1d"},
            ],
        },
    },
    {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": "*Source of truth*\nWMS"},
            {"type": "mrkdwn", "text": "*Drift*\n-17 units"},
            {"type": "mrkdwn", "text": "*Location*\nParis (gid://shopify/Location/1)"},
            {"type": "mrkdwn", "text": "*Since*\n<!date^1793610000^{date_short} at {time}|09:00>"},
        ],
    },
    {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "incident inc-1 · checked every 5 min"}],
    },
    {"type": "divider"},
    {
        "type": "actions",
        "block_id": "incident",
        "elements": [
            {
                "type": "button",
                "action_id": "resync",
                "style": "primary",
                "text": {"type": "plain_text", "text": "Resync Shopify"},
                "value": "inc-1",
                "confirm": {
                    "title": {"type": "plain_text", "text": "Resync TEE-BLK-M?"},
                    "text": {"type": "mrkdwn", "text": "Shopify will be set to *847*."},
                    "confirm": {"type": "plain_text", "text": "Resync"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                },
            },
            {
                "type": "button",
                "action_id": "ack",
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "value": "inc-1",
            },
            {
                "type": "button",
                "action_id": "resolve",
                "style": "danger",
                "text": {"type": "plain_text", "text": "Resolve"},
                "value": "inc-1",
            },
        ],
    },
]
RESYNCED = [
    {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": ":white_check_mark: *Resynced* TEE-BLK-M to 847 by <@U0OPS001>",
        },
    }
]


async def test_click_confirm_and_see_the_update_without_reload(
    receiver: Receiver, browser_page: Any
) -> None:
    from playwright.async_api import expect

    page = browser_page
    async with FakeSlack(
        interactivity_url=receiver.url,
        signing_secret=SECRET,
        post_burst=3,  # the page's wall clock: a test's posts come within one second
    ) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        slack.user_says(CHANNEL, "U0OPS001", "anyone looking at TEE-BLK-M?")
        posted = await client.chat_postMessage(channel=CHANNEL, text="Drift", blocks=ALERT)
        await client.chat_postMessage(
            channel=CHANNEL, thread_ts=posted["ts"], text="Shopify 830 since the 09:00 sync"
        )
        await client.files_upload_v2(
            channel=CHANNEL,
            thread_ts=posted["ts"],
            content=_png(),
            filename="levels.png",
            title="Levels, last 24 h",
        )
        await client.chat_postEphemeral(
            channel=CHANNEL, user="U0OPS001", text="Only ops leads can resync. You can."
        )

        await page.goto(f"{slack.base_url}/channel/{CHANNEL}?user=U0OPS001")
        await expect(page.get_by_text("Drift on TEE-BLK-M")).to_be_visible()
        await expect(page.get_by_text("Only visible to you")).to_be_visible()
        await expect(page.locator("#live")).to_have_text("live")
        await page.evaluate("window.__sameDocument = true")

        await page.get_by_role("button", name="Resync Shopify").click()
        dialog = page.get_by_role("alertdialog")
        await expect(dialog).to_contain_text("Resync TEE-BLK-M?")
        await page.screenshot(path=str(ARTIFACTS / "fake_slack_confirm.png"))
        await dialog.get_by_role("button", name="Resync").click()

        got = await receiver.next()
        assert got["valid"] is True
        payload = got["payload"]
        assert payload["type"] == "block_actions"
        assert payload["user"]["id"] == "U0OPS001"
        assert payload["container"]["message_ts"] == posted["ts"]
        assert [(a["action_id"], a["value"]) for a in payload["actions"]] == [("resync", "inc-1")]

        await client.chat_update(
            channel=CHANNEL, ts=posted["ts"], text="Resynced", blocks=ALERT[:5] + RESYNCED
        )
        await expect(page.get_by_text("Resynced TEE-BLK-M to 847")).to_be_visible()
        await expect(page.get_by_text("(edited)")).to_be_visible()
        await expect(page.get_by_role("button", name="Resync Shopify")).to_have_count(0)
        assert await page.evaluate("window.__sameDocument") is True

        await page.get_by_text("2 replies").click()
        await expect(page.locator("#thread img")).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / "fake_slack_page.png"))
        assert page.errors == []


MODAL = {
    "type": "modal",
    "callback_id": "root_cause",
    "title": {"type": "plain_text", "text": "Log root cause"},
    "submit": {"type": "plain_text", "text": "Save"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "blocks": [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "Incident *inc-1* on `TEE-BLK-M`"},
        },
        {
            "type": "input",
            "block_id": "cause",
            "label": {"type": "plain_text", "text": "Root cause"},
            "element": {
                "type": "static_select",
                "action_id": "pick",
                "placeholder": {"type": "plain_text", "text": "Choose a cause"},
                "options": [
                    {"text": {"type": "plain_text", "text": "Missed scan"}, "value": "scan"},
                    {"text": {"type": "plain_text", "text": "Sync lag"}, "value": "lag"},
                ],
            },
        },
        {
            "type": "input",
            "block_id": "how",
            "label": {"type": "plain_text", "text": "Found by"},
            "element": {
                "type": "radio_buttons",
                "action_id": "radio",
                "options": [
                    {"text": {"type": "plain_text", "text": "Cycle count"}, "value": "count"},
                    {"text": {"type": "plain_text", "text": "Customer"}, "value": "customer"},
                ],
            },
        },
        {
            "type": "input",
            "block_id": "note",
            "label": {"type": "plain_text", "text": "Note"},
            "hint": {"type": "plain_text", "text": "What happened, for the weekly summary"},
            "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
        },
    ],
}


async def test_a_command_opens_a_modal_whose_errors_show_on_the_fields(
    receiver: Receiver, browser_page: Any
) -> None:
    from playwright.async_api import expect

    page = browser_page
    async with FakeSlack(
        interactivity_url=receiver.url,
        signing_secret=SECRET,
        post_burst=3,  # the page's wall clock: a test's posts come within one second
    ) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        await page.goto(f"{slack.base_url}/channel/{CHANNEL}?user=U0OPS001")
        await expect(page.locator("#live")).to_have_text("live")
        composer = page.get_by_placeholder("Message #ops-inventory")
        await composer.fill("/drift TEE-BLK-M")
        await composer.press("Enter")
        command = await receiver.next()
        assert command["valid"] is True
        assert (command["form"]["command"], command["form"]["text"]) == ("/drift", "TEE-BLK-M")

        await client.views_open(trigger_id=command["form"]["trigger_id"], view=MODAL)
        modal = page.get_by_role("dialog")
        await expect(modal).to_contain_text("Log root cause")
        await modal.get_by_role("button", name="Save").click()
        await expect(modal.get_by_text("Please complete this required field.")).to_have_count(3)

        await modal.locator("select").select_option("lag")
        await modal.get_by_label("Cycle count").check()
        await modal.locator("textarea").fill("x")
        receiver.answers.append(
            web.json_response({"response_action": "errors", "errors": {"note": "Too short"}})
        )
        await modal.get_by_role("button", name="Save").click()
        got = await receiver.next()
        assert got["valid"] is True
        assert got["payload"]["view"]["state"]["values"]["how"] == {
            "radio": {
                "type": "radio_buttons",
                "selected_option": MODAL["blocks"][2]["element"]["options"][0],  # type: ignore[index]
            }
        }
        await expect(modal.get_by_text("Too short")).to_be_visible()
        await page.screenshot(path=str(ARTIFACTS / "fake_slack_modal.png"))

        await modal.locator("textarea").fill("Scanner missed a carton on receipt")
        await modal.get_by_role("button", name="Save").click()
        got = await receiver.next()
        note = got["payload"]["view"]["state"]["values"]["note"]["text"]["value"]
        assert note == "Scanner missed a carton on receipt"
        await expect(modal).to_have_count(0)
        assert page.errors == []
