"""The fake Slack's Socket Mode: apps.connections.open with the app-level token, a
one-time WebSocket URL, the hello message, envelopes and the app's acks — spoken to
with a plain aiohttp WebSocket client, the way Slack's protocol is documented."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from connectors.clock import ManualClock
from sandbox.slack import FakeSlack

CHANNEL = "C0DRIFT01"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(clock=ManualClock()) as fake:
        yield fake


async def _open(slack: FakeSlack, token: str) -> str:
    client = AsyncWebClient(token="xoxb-sandbox", base_url=slack.api_url)
    response = await client.apps_connections_open(app_token=token)
    return str(response["url"])


async def _json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    async with asyncio.timeout(5):
        message = await ws.receive()
    assert message.type == aiohttp.WSMsgType.TEXT
    body = json.loads(message.data)
    assert isinstance(body, dict)
    return body


async def test_only_the_app_token_opens_a_connection(slack: FakeSlack) -> None:
    url = await _open(slack, slack.app_token)
    assert url.startswith("ws://127.0.0.1:")
    assert "/link/?ticket=" in url

    with pytest.raises(SlackApiError) as bot_token:
        await _open(slack, slack.bot_token)
    with pytest.raises(SlackApiError) as wrong:
        await _open(slack, "xapp-1-not-ours")
    assert bot_token.value.response["error"] == "not_allowed_token_type"
    assert wrong.value.response["error"] == "invalid_auth"

    app_client = AsyncWebClient(token=slack.app_token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as misuse:
        await app_client.chat_postMessage(channel=CHANNEL, text="hi")
    assert misuse.value.response["error"] == "not_allowed_token_type"
    assert slack.messages(CHANNEL) == []


async def test_hello_then_envelopes_acked_by_envelope_id(slack: FakeSlack) -> None:
    url = await _open(slack, slack.app_token)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = await _json(ws)
        assert hello["type"] == "hello"
        assert hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": "A0DRIFTAPP"}
        assert hello["debug_info"]["approximate_connection_time"] > 0

        async def app() -> None:
            envelope = await _json(ws)
            assert envelope["type"] == "slash_commands"
            assert envelope["accepts_response_payload"] is True
            assert envelope["payload"]["command"] == "/drift"
            await ws.send_str("not json")
            await ws.send_str(
                json.dumps(
                    {"envelope_id": envelope["envelope_id"], "payload": {"text": "working on it"}}
                )
            )

        answering = asyncio.create_task(app())
        async with asyncio.timeout(5):
            ack = await slack.socket.request(
                "slash_commands",
                {"command": "/drift", "text": "SKU-1", "user_id": "U0OPS001"},
                accepts_response_payload=True,
            )
        await answering

    [envelope] = slack.socket.envelopes
    assert ack == {"envelope_id": envelope.envelope_id, "payload": {"text": "working on it"}}
    assert envelope.ack == ack
    assert slack.socket.stray == ["not json"]


async def test_a_ticket_opens_one_connection_only(slack: FakeSlack) -> None:
    url = await _open(slack, slack.app_token)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            assert (await _json(ws))["type"] == "hello"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url)
    assert refused.value.status == 401
    assert slack.socket.connects == 1


async def test_nothing_can_be_sent_without_a_connection(slack: FakeSlack) -> None:
    with pytest.raises(ConnectionError):
        await slack.socket.send("events_api", {"event": {"type": "app_mention"}})
    assert slack.socket.envelopes == []


async def test_disconnect_asks_the_app_to_reconnect(slack: FakeSlack) -> None:
    url = await _open(slack, slack.app_token)
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await _json(ws)
        await slack.socket.disconnect("refresh_requested")
        message = await _json(ws)
    assert message["type"] == "disconnect"
    assert message["reason"] == "refresh_requested"
