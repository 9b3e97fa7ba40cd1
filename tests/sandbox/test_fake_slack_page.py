"""The fake Slack's channel page without a browser: the page and its assets are served,
and what a person does there reaches the app signed and shaped exactly like Slack's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from connectors.clock import ManualClock
from sandbox.slack import BOT_USER_ID, TEAM_ID, FakeSlack
from sandbox.slack.model import APP_ID
from sandbox.slack.page import sign

CHANNEL = "C0DRIFT01"
SECRET = "test-signing-secret"
CONFIRM = {
    "title": {"type": "plain_text", "text": "Resync TEE-BLK-M?"},
    "text": {"type": "mrkdwn", "text": "Shopify will be set to *847*."},
    "confirm": {"type": "plain_text", "text": "Resync"},
    "deny": {"type": "plain_text", "text": "Cancel"},
    "style": "danger",
}
RESYNC = {
    "type": "button",
    "action_id": "resync",
    "text": {"type": "plain_text", "text": "Resync"},
    "value": "inc-1",
    "style": "primary",
    "confirm": CONFIRM,
}
SNOOZE_OPTIONS = [
    {"text": {"type": "plain_text", "text": "1 hour"}, "value": "1h"},
    {"text": {"type": "plain_text", "text": "1 day"}, "value": "1d"},
]
SNOOZE = {
    "type": "static_select",
    "action_id": "snooze",
    "placeholder": {"type": "plain_text", "text": "Snooze"},
    "options": SNOOZE_OPTIONS,
}
ALERT_BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "Drift on TEE-BLK-M"}},
    {
        "type": "section",
        "block_id": "facts",
        "text": {"type": "mrkdwn", "text": "*Shopify* 830 vs _WMS_ 847 <@U0OPS001>"},
        "fields": [
            {"type": "mrkdwn", "text": "*Location*\nParis"},
            {"type": "mrkdwn", "text": "*Since*\n<!date^1793610000^{time}|09:00>"},
        ],
    },
    {"type": "divider"},
    {"type": "actions", "block_id": "incident-actions", "elements": [RESYNC, SNOOZE]},
]
MODAL = {
    "type": "modal",
    "callback_id": "root_cause",
    "private_metadata": "inc-1",
    "title": {"type": "plain_text", "text": "Log root cause"},
    "submit": {"type": "plain_text", "text": "Save"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "blocks": [
        {
            "type": "input",
            "block_id": "cause",
            "label": {"type": "plain_text", "text": "Cause"},
            "element": {"type": "static_select", "action_id": "pick", "options": SNOOZE_OPTIONS},
        },
        {
            "type": "input",
            "block_id": "note",
            "label": {"type": "plain_text", "text": "Note"},
            "element": {"type": "plain_text_input", "action_id": "text", "multiline": True},
        },
        {
            "type": "input",
            "block_id": "how",
            "label": {"type": "plain_text", "text": "How"},
            "element": {"type": "radio_buttons", "action_id": "radio", "options": SNOOZE_OPTIONS},
        },
        {
            "type": "input",
            "block_id": "also",
            "optional": True,
            "label": {"type": "plain_text", "text": "Also"},
            "element": {"type": "checkboxes", "action_id": "boxes", "options": SNOOZE_OPTIONS},
        },
    ],
}


@dataclass
class Receiver:
    """The app's request URL: verifies Slack's signature and records what arrived."""

    clock: ManualClock
    url: str = ""
    received: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    answers: list[web.Response] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        verifier = SignatureVerifier(SECRET, clock=_SdkClock(self.clock))
        valid = verifier.is_valid_request(body, dict(request.headers))
        form = dict(parse_qsl(body, keep_blank_values=True))
        await self.received.put(
            {"valid": valid, "headers": dict(request.headers), "form": form, "body": body}
        )
        if not valid:
            return web.Response(status=401)
        return self.answers.pop(0) if self.answers else web.Response(status=200)

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(10):
            return await self.received.get()


class _SdkClock:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now().timestamp()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def receiver(clock: ManualClock) -> AsyncIterator[Receiver]:
    rec = Receiver(clock)
    app = web.Application()
    app.router.add_post("/slack/events", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/slack/events"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def slack(clock: ManualClock, receiver: Receiver) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(
        clock=clock, interactivity_url=receiver.url, signing_secret=SECRET
    ) as fake:
        yield fake


@pytest.fixture
async def http(slack: FakeSlack) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=slack.base_url) as session:
        yield session


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def _post(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(path, json=body) as response:
        data: dict[str, Any] = await response.json()
        return data


async def test_the_page_and_its_assets_are_served(http: aiohttp.ClientSession) -> None:
    async with http.get("/", allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == f"/channel/{CHANNEL}"
    async with http.get(f"/channel/{CHANNEL}") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        html = await response.text()
    assert "/_ui/static/channel.js" in html
    assert "/_ui/static/channel.css" in html
    async with http.get("/_ui/static/channel.js") as response:
        assert (response.status, response.content_type) == (200, "application/javascript")
        assert "EventSource" in await response.text()
    async with http.get("/_ui/static/channel.css") as response:
        assert (response.status, response.content_type) == (200, "text/css")
    # The page declares its icon, and /favicon.ico (asked for anyway) is no 404.
    assert '<link rel="icon" href="/_ui/static/favicon.svg"' in html
    async with http.get("/favicon.ico") as response:
        assert (response.status, response.content_type) == (200, "image/svg+xml")
        assert "<svg" in await response.text()
    for missing in ("/channel/C0NOPE", "/_ui/static/secret.py", "/_ui/static/..%2Fpage.py"):
        async with http.get(missing) as response:
            assert response.status == 404, missing


async def test_state_shows_messages_threads_files_and_only_my_ephemerals(
    slack: FakeSlack, client: AsyncWebClient, http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="drift", blocks=ALERT_BLOCKS)
    clock.advance(1)  # one post per second per channel
    await client.chat_postMessage(channel=CHANNEL, text="details", thread_ts=posted["ts"])
    await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="drift", blocks=ALERT_BLOCKS)
    await client.chat_postEphemeral(channel=CHANNEL, user="U0ONCALL1", text="psst oncall")
    await client.files_upload_v2(
        channel=CHANNEL, thread_ts=posted["ts"], content=b"\x89PNG\r\n\x1a\nxx", filename="c.png"
    )
    async with http.get("/_ui/state", params={"channel": CHANNEL, "user": "U0OPS001"}) as r:
        state = await r.json()
    assert {"U0OPS001", "U0ONCALL1", "U0VIEWER1", BOT_USER_ID} <= set(state["users"])
    [message] = state["messages"]
    assert message["edited"] is True
    assert message["blocks"][0]["block_id"]  # Slack gives every block an id
    assert [r["text"] for r in message["replies"]] == ["details", ""]
    [image] = message["replies"][1]["files"]
    assert image["mimetype"] == "image/png"
    async with http.get(image["ui_url"]) as r:
        assert (r.status, await r.read()) == (200, b"\x89PNG\r\n\x1a\nxx")
    assert state["ephemerals"] == []
    async with http.get("/_ui/state", params={"channel": CHANNEL, "user": "U0ONCALL1"}) as r:
        oncall = await r.json()
    assert [e["text"] for e in oncall["ephemerals"]] == ["psst oncall"]


async def test_a_button_click_sends_a_signed_block_actions_payload(
    slack: FakeSlack,
    client: AsyncWebClient,
    http: aiohttp.ClientSession,
    receiver: Receiver,
) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="drift", blocks=ALERT_BLOCKS)
    ts = posted["ts"]
    answer = await _post(
        http,
        "/_ui/action",
        {
            "channel": CHANNEL,
            "user": "U0OPS001",
            "message_ts": ts,
            "block_id": "incident-actions",
            "action_id": "resync",
            "value": "inc-1",
        },
    )
    assert answer == {"ok": True, "status": 200, "error": None}
    got = await receiver.next()
    assert got["valid"] is True
    headers = got["headers"]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    stamp = headers["X-Slack-Request-Timestamp"]
    assert stamp == str(int(slack.clock.now().timestamp()))
    assert headers["X-Slack-Signature"] == sign(SECRET, stamp, got["body"].encode())
    assert list(got["form"]) == ["payload"]
    payload = json.loads(got["form"]["payload"])
    trigger_id = payload.pop("trigger_id")
    response_url = payload.pop("response_url")
    action_ts = payload["actions"][0].pop("action_ts")
    message = payload.pop("message")
    assert payload == {
        "type": "block_actions",
        "user": {"id": "U0OPS001", "username": "olivia", "name": "olivia", "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": slack.verification_token,
        "container": {
            "type": "message",
            "message_ts": ts,
            "channel_id": CHANNEL,
            "is_ephemeral": False,
        },
        "team": {"id": TEAM_ID, "domain": "driftwatch-sandbox"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": CHANNEL, "name": "ops-inventory"},
        "state": {"values": {}},
        "actions": [
            {
                "action_id": "resync",
                "block_id": "incident-actions",
                "type": "button",
                "text": {"type": "plain_text", "text": "Resync"},
                "value": "inc-1",
                "style": "primary",
            }
        ],
    }
    assert float(action_ts) > float(ts)
    assert (message["ts"], message["user"], message["text"]) == (ts, BOT_USER_ID, "drift")
    assert message["blocks"][3]["elements"][0] == RESYNC
    assert trigger_id in slack.ws.trigger_ids
    assert response_url.startswith(f"{slack.base_url}/response/")
    # The response_url and the trigger_id work as Slack's do.
    async with http.post(response_url, json={"replace_original": True, "text": "resynced"}) as r:
        assert r.status == 200
    assert slack.messages(CHANNEL)[0].text == "resynced"
    opened = await client.views_open(trigger_id=trigger_id, view=MODAL)
    assert slack.views[opened["view"]["id"]].user == "U0OPS001"
    assert [d.kind for d in slack.page.deliveries] == ["block_actions"]


async def test_a_select_choice_and_an_ephemeral_button(
    slack: FakeSlack,
    client: AsyncWebClient,
    http: aiohttp.ClientSession,
    receiver: Receiver,
) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="drift", blocks=ALERT_BLOCKS)
    await _post(
        http,
        "/_ui/action",
        {
            "channel": CHANNEL,
            "user": "U0ONCALL1",
            "message_ts": posted["ts"],
            "action_id": "snooze",
            "value": "1d",
        },
    )
    payload = json.loads((await receiver.next())["form"]["payload"])
    [action] = payload["actions"]
    del action["action_ts"]
    assert action == {
        "action_id": "snooze",
        "block_id": "incident-actions",
        "type": "static_select",
        "selected_option": SNOOZE_OPTIONS[1],
        "placeholder": {"type": "plain_text", "text": "Snooze"},
    }
    assert payload["state"] == {
        "values": {
            "incident-actions": {
                "snooze": {"type": "static_select", "selected_option": SNOOZE_OPTIONS[1]}
            }
        }
    }
    assert payload["user"]["id"] == "U0ONCALL1"

    eph = await client.chat_postEphemeral(
        channel=CHANNEL,
        user="U0VIEWER1",
        text="choose",
        blocks=[{"type": "actions", "elements": [{**RESYNC, "confirm": None}]}],
    )
    answer = await _post(
        http,
        "/_ui/action",
        {
            "channel": CHANNEL,
            "user": "U0VIEWER1",
            "message_ts": eph["message_ts"],
            "action_id": "resync",
            "is_ephemeral": True,
        },
    )
    assert answer["ok"] is True
    payload = json.loads((await receiver.next())["form"]["payload"])
    assert payload["container"] == {
        "type": "message",
        "message_ts": eph["message_ts"],
        "channel_id": CHANNEL,
        "is_ephemeral": True,
    }
    assert "message" not in payload
    assert payload["actions"][0]["block_id"]  # generated, as Slack does
    missing = await _post(
        http,
        "/_ui/action",
        {"channel": CHANNEL, "user": "U0OPS001", "message_ts": posted["ts"], "action_id": "no"},
    )
    assert missing == {"ok": False, "status": None, "error": "action_not_found"}


async def test_a_slash_command_is_signed_and_shaped_like_slack(
    slack: FakeSlack, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.answers.append(web.json_response({"text": "TEE-BLK-M: Shopify 830, WMS 847"}))
    answer = await _post(
        http, "/_ui/command", {"channel": CHANNEL, "user": "U0OPS001", "text": "/drift TEE-BLK-M"}
    )
    assert answer == {"ok": True, "status": 200, "error": None}
    got = await receiver.next()
    assert got["valid"] is True
    form = got["form"]
    assert form["response_url"].startswith(f"{slack.base_url}/response/")
    assert form.pop("trigger_id") in slack.ws.trigger_ids
    del form["response_url"]
    assert form == {
        "token": slack.verification_token,
        "team_id": TEAM_ID,
        "team_domain": "driftwatch-sandbox",
        "channel_id": CHANNEL,
        "channel_name": "ops-inventory",
        "user_id": "U0OPS001",
        "user_name": "olivia",
        "command": "/drift",
        "text": "TEE-BLK-M",
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
    }
    # The app's immediate answer shows to the one who typed the command.
    [ephemeral] = slack.ephemerals
    assert (ephemeral.user, ephemeral.text) == ("U0OPS001", "TEE-BLK-M: Shopify 830, WMS 847")


async def test_commands_and_actions_report_an_app_that_is_not_there(
    slack: FakeSlack, http: aiohttp.ClientSession, receiver: Receiver
) -> None:
    receiver.answers.append(web.Response(status=500))
    answer = await _post(
        http, "/_ui/command", {"channel": CHANNEL, "user": "U0OPS001", "text": "/drift"}
    )
    assert answer == {"ok": False, "status": 500, "error": "http_error_500"}
    slack.interactivity_url = None
    answer = await _post(
        http, "/_ui/command", {"channel": CHANNEL, "user": "U0OPS001", "text": "/drift"}
    )
    assert answer["error"] == "no_interactivity_url"
    slack.interactivity_url = "http://127.0.0.1:9/slack/events"
    answer = await _post(
        http, "/_ui/command", {"channel": CHANNEL, "user": "U0OPS001", "text": "/drift"}
    )
    assert answer["error"] == "dispatch_failed"


async def _open_modal(slack: FakeSlack, client: AsyncWebClient, user: str) -> str:
    opened = await client.views_open(trigger_id=slack.new_trigger_id(user), view=MODAL)
    view_id: str = opened["view"]["id"]
    return view_id


async def test_view_submission_shape_errors_then_close(
    slack: FakeSlack,
    client: AsyncWebClient,
    http: aiohttp.ClientSession,
    receiver: Receiver,
) -> None:
    view_id = await _open_modal(slack, client, "U0OPS001")
    async with http.get("/_ui/state", params={"channel": CHANNEL, "user": "U0OPS001"}) as r:
        assert (await r.json())["view"]["id"] == view_id
    async with http.get("/_ui/state", params={"channel": CHANNEL, "user": "U0ONCALL1"}) as r:
        assert (await r.json())["view"] is None

    # A required field left empty never reaches the app.
    answer = await _post(
        http, "/_ui/view_submission", {"view_id": view_id, "user": "U0OPS001", "values": {}}
    )
    assert answer["error"] == "required_fields"
    assert set(answer["errors"]) == {"cause", "note", "how"}
    assert receiver.received.empty()

    receiver.answers.append(
        web.json_response({"response_action": "errors", "errors": {"note": "Too short"}})
    )
    values = {
        "cause": {"pick": "1h"},
        "note": {"text": "x"},
        "how": {"radio": "1d"},
        "also": {"boxes": ["1h", "1d"]},
    }
    body = {"view_id": view_id, "user": "U0OPS001", "values": values}
    answer = await _post(http, "/_ui/view_submission", body)
    assert answer == {"ok": True, "status": 200, "error": None, "errors": {"note": "Too short"}}
    got = await receiver.next()
    assert got["valid"] is True
    payload = json.loads(got["form"]["payload"])
    assert payload["type"] == "view_submission"
    assert payload["user"] == {
        "id": "U0OPS001",
        "username": "olivia",
        "name": "olivia",
        "team_id": TEAM_ID,
    }
    assert payload["team"] == {"id": TEAM_ID, "domain": "driftwatch-sandbox"}
    assert payload["response_urls"] == []
    assert payload["trigger_id"]
    view = payload["view"]
    assert (view["id"], view["callback_id"], view["private_metadata"]) == (
        view_id,
        "root_cause",
        "inc-1",
    )
    assert view["state"] == {
        "values": {
            "cause": {"pick": {"type": "static_select", "selected_option": SNOOZE_OPTIONS[0]}},
            "note": {"text": {"type": "plain_text_input", "value": "x"}},
            "how": {"radio": {"type": "radio_buttons", "selected_option": SNOOZE_OPTIONS[1]}},
            "also": {"boxes": {"type": "checkboxes", "selected_options": SNOOZE_OPTIONS}},
        }
    }
    async with http.get("/_ui/state", params={"channel": CHANNEL, "user": "U0OPS001"}) as r:
        state = await r.json()
    assert state["view"]["id"] == view_id
    assert state["view_errors"] == {"note": "Too short"}

    values["note"] = {"text": "a longer note"}
    answer = await _post(http, "/_ui/view_submission", body)
    assert answer == {"ok": True, "status": 200, "error": None, "errors": {}}
    payload = json.loads((await receiver.next())["form"]["payload"])
    assert payload["view"]["state"]["values"]["note"]["text"]["value"] == "a longer note"
    async with http.get("/_ui/state", params={"channel": CHANNEL, "user": "U0OPS001"}) as r:
        assert (await r.json())["view"] is None


async def test_closing_a_view_notifies_the_app_when_asked(
    slack: FakeSlack,
    client: AsyncWebClient,
    http: aiohttp.ClientSession,
    receiver: Receiver,
) -> None:
    opened = await client.views_open(
        trigger_id=slack.new_trigger_id("U0OPS001"), view={**MODAL, "notify_on_close": True}
    )
    answer = await _post(
        http, "/_ui/view_closed", {"view_id": opened["view"]["id"], "user": "U0OPS001"}
    )
    assert answer["ok"] is True
    payload = json.loads((await receiver.next())["form"]["payload"])
    assert (payload["type"], payload["view"]["id"], payload["is_cleared"]) == (
        "view_closed",
        opened["view"]["id"],
        False,
    )
    assert slack.page.top_view("U0OPS001") is None


async def test_a_person_posts_from_the_composer(
    slack: FakeSlack, http: aiohttp.ClientSession
) -> None:
    answer = await _post(
        http, "/_ui/message", {"channel": CHANNEL, "user": "U0VIEWER1", "text": "hello"}
    )
    assert answer["ok"] is True
    [message] = slack.messages(CHANNEL)
    assert (message.user, message.text, message.ts) == ("U0VIEWER1", "hello", answer["ts"])


async def _next_event(stream: aiohttp.StreamReader) -> dict[str, str]:
    event: dict[str, str] = {}
    while True:
        line = (await stream.readline()).decode().rstrip("\n")
        if not line:
            if event:
                return event
            continue
        key, _, value = line.partition(": ")
        event[key] = value


async def test_the_event_stream_fires_when_a_message_is_posted(
    slack: FakeSlack, client: AsyncWebClient, http: aiohttp.ClientSession
) -> None:
    async with asyncio.timeout(10), http.get("/_ui/events") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        first = await _next_event(response.content)
        assert first["event"] == "change"
        start = json.loads(first["data"])["version"]
        await client.chat_postMessage(channel=CHANNEL, text="drift")
        posted = await _next_event(response.content)
        assert posted["event"] == "change"
        assert json.loads(posted["data"])["version"] > start
        assert int(posted["id"]) == json.loads(posted["data"])["version"]
        await client.chat_postEphemeral(channel=CHANNEL, user="U0OPS001", text="psst")
        assert (await _next_event(response.content))["event"] == "change"
        await client.auth_test()  # reads change nothing ...
        slack.user_says(CHANNEL, "U0OPS001", "hi")  # ... so the next event is this post
        event = await _next_event(response.content)
        assert json.loads(event["data"])["version"] == slack.page.version


async def test_stopping_the_fake_ends_open_event_streams(clock: ManualClock) -> None:
    slack = FakeSlack(clock=clock)
    await slack.start()
    async with aiohttp.ClientSession() as http, http.get(f"{slack.base_url}/_ui/events") as r:
        await _next_event(r.content)
        async with asyncio.timeout(10):
            await slack.stop()
            assert await r.content.read() == b""
