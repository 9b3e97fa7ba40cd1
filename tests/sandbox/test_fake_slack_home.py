"""The fake Slack's Home tab: ``views.publish`` with Slack's limits, ``app_home_opened``
signed like Slack, and the page that shows what was published."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from sandbox.slack import FakeSlack

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*Mismatch* 2.1%"}}
USER = "U0OPS001"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    # the wall clock: a signed request's timestamp must be close to the receiver's time
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-sandbox", base_url=slack.api_url)


def home(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "home", "blocks": list(blocks)}


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as caught:
        await call
    return str(caught.value.response["error"])


async def test_publish_stores_one_home_view_per_user(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    first = await client.views_publish(user_id=USER, view=home(SECTION))
    assert first["view"]["type"] == "home"
    stored = slack.home.view(USER)
    assert stored is not None
    assert stored.view["blocks"] == [SECTION]
    second = await client.views_publish(user_id=USER, view=home(SECTION, {"type": "divider"}))
    assert second["view"]["id"] == first["view"]["id"]  # the same Home tab, updated
    assert len(stored.history) == 2
    assert slack.home.view("U0ONCALL1") is None
    # a hash from before the update is a race lost
    stale = first["view"]["hash"]
    assert await error_of(client.views_publish(user_id=USER, view=home(), hash=stale)) == (
        "hash_conflict"
    )
    await client.views_publish(user_id=USER, view=home(), hash=second["view"]["hash"])


async def test_publish_refuses_what_slack_refuses(slack: FakeSlack, client: AsyncWebClient) -> None:
    def section(text: str) -> dict[str, Any]:
        return {"type": "section", "text": {"type": "mrkdwn", "text": text}}

    def fields(n: int, size: int = 10) -> dict[str, Any]:
        return {"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * size}] * n}

    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}
    button = {"type": "button", "text": {"type": "plain_text", "text": "b" * 76}}
    nowhere = {"type": "image", "alt_text": "chart", "slack_file": {"id": "F0NOPE"}}
    no_alt = {"type": "image", "image_url": "https://x/y.png"}
    bad = {
        "not a user": ({"user_id": "U0NOBODY", "view": home()}, "invalid_arguments"),
        "the bot": ({"user_id": "U0DRIFTBOT", "view": home()}, "invalid_arguments"),
        "a modal": (
            {"user_id": USER, "view": {"type": "modal", "blocks": []}},
            "invalid_arguments",
        ),
        "101 blocks": ({"user_id": USER, "view": home(*[SECTION] * 101)}, "invalid_blocks"),
        "long section": ({"user_id": USER, "view": home(section("x" * 3001))}, "invalid_blocks"),
        "11 fields": ({"user_id": USER, "view": home(fields(11))}, "invalid_blocks"),
        "long field": ({"user_id": USER, "view": home(fields(1, 2001))}, "invalid_blocks"),
        "long header": ({"user_id": USER, "view": home(header)}, "invalid_blocks"),
        "11 context elements": ({"user_id": USER, "view": home(context)}, "invalid_blocks"),
        "long button": (
            {"user_id": USER, "view": home({"type": "actions", "elements": [button]})},
            "invalid_blocks",
        ),
        "too large": (
            {"user_id": USER, "view": home(*[section("x" * 2999)] * 90)},
            "view_too_large",
        ),
        "image from nowhere": ({"user_id": USER, "view": home(nowhere)}, "invalid_arguments"),
        "image without alt text": ({"user_id": USER, "view": home(no_alt)}, "invalid_blocks"),
    }
    # A block breaking Block Kit's rules is invalid_blocks, as for a message (the fake's
    # shared block rules, sandbox/slack/rules.py); a bad user or view is invalid_arguments.
    for name, (args, error) in bad.items():
        assert (name, await error_of(client.views_publish(**args))) == (name, error)
    assert slack.home.view(USER) is None
    slack.home.enabled = False
    assert await error_of(client.views_publish(user_id=USER, view=home())) == "not_enabled"


async def test_images_must_be_image_files_the_bot_uploaded(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    png = await client.files_upload_v2(file=PNG, filename="trend.png", title="trend")
    text = await client.files_upload_v2(file=b"sku,qty\n", filename="export.csv", title="csv")
    chart = {"type": "image", "alt_text": "trend", "slack_file": {"id": png["file"]["id"]}}
    await client.views_publish(user_id=USER, view=home(chart))
    csv = {"type": "image", "alt_text": "x", "slack_file": {"id": text["file"]["id"]}}
    assert await error_of(client.views_publish(user_id=USER, view=home(csv))) == (
        "invalid_arguments"
    )
    both = {**chart, "image_url": "https://example.com/x.png"}
    assert await error_of(client.views_publish(user_id=USER, view=home(both))) == (
        "invalid_arguments"
    )


@pytest.fixture
async def app(slack: FakeSlack) -> AsyncIterator[list[tuple[dict[str, str], dict[str, Any]]]]:
    """An app at the fake's Request URL that checks Slack's signature like bolt does."""
    received: list[tuple[dict[str, str], dict[str, Any]]] = []
    verifier = SignatureVerifier(slack.signing_secret)

    async def events(request: web.Request) -> web.Response:
        body = await request.text()
        headers = dict(request.headers)
        if not verifier.is_valid_request(body, headers):
            return web.Response(status=401)
        received.append((headers, json.loads(body)))
        return web.Response(status=200)

    server = web.Application()
    server.router.add_post("/slack/events", events)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    slack.interactivity_url = f"http://127.0.0.1:{port}/slack/events"
    try:
        yield received
    finally:
        await runner.cleanup()


async def test_opening_the_home_tab_sends_a_signed_app_home_opened(
    slack: FakeSlack,
    client: AsyncWebClient,
    app: list[tuple[dict[str, str], dict[str, Any]]],
) -> None:
    delivery = await slack.home.open(USER)
    assert (delivery.status, delivery.error) == (200, None)
    headers, body = app[0]
    assert headers["Content-Type"] == "application/json"
    assert body["type"] == "event_callback"
    assert body["event_id"].startswith("Ev")
    event = body["event"]
    assert (event["type"], event["user"], event["tab"]) == ("app_home_opened", USER, "home")
    assert "view" not in event  # nothing was ever published to this Home tab
    await client.views_publish(user_id=USER, view=home(SECTION))
    await slack.home.deliver(slack.home.event(USER), retry=1)
    retried_headers, retried = app[1]
    assert retried_headers["X-Slack-Retry-Num"] == "1"
    assert retried["event"]["view"]["blocks"] == [SECTION]
    # a wrong signing secret is what a forger would have: the app refuses it
    slack.signing_secret = "not-the-secret"
    refused = await slack.home.open(USER)
    assert (refused.status, refused.error) == (401, "http_error_401")
    assert len(app) == 2


async def test_the_home_page_shows_the_published_view(
    slack: FakeSlack,
    client: AsyncWebClient,
    app: list[tuple[dict[str, str], dict[str, Any]]],
) -> None:
    png = await client.files_upload_v2(file=PNG, filename="trend.png", title="trend")
    chart = {"type": "image", "alt_text": "trend", "slack_file": {"id": png["file"]["id"]}}
    await client.views_publish(user_id=USER, view=home(SECTION, chart))
    async with httpx.AsyncClient(base_url=slack.base_url) as http:
        page = await http.get("/home", params={"user": USER})
        assert page.status_code == 200
        assert "/_ui/home/static/home.js" in page.text
        assert (await http.get("/_ui/home/static/home.js")).status_code == 200
        assert (await http.get("/_ui/home/static/nope.js")).status_code == 404
        state = (await http.get("/_ui/home/state", params={"user": USER})).json()
        assert state["view"]["blocks"][0] == SECTION
        url = state["view"]["blocks"][1]["ui_url"]
        assert (await http.get(url)).content == PNG
        other = (await http.get("/_ui/home/state", params={"user": "U0ONCALL1"})).json()
        assert other["view"] is None
        opened = (await http.post("/_ui/home/open", json={"user": "U0ONCALL1"})).json()
        assert opened == {"ok": True, "status": 200, "error": None}
        assert app[-1][1]["event"]["user"] == "U0ONCALL1"
        refused = await http.post("/_ui/home/open", json={"user": "U0NOBODY"})
        assert refused.status_code == 400
        # the channel page links to the Home tab
        channel = await http.get("/channel/C0DRIFT01")
        assert 'href="/home"' in channel.text
