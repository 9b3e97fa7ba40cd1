"""Socket Mode, for real: the Service connects to the fake Slack's WebSocket with the
app-level token, slash commands and button clicks arrive as envelopes, the bolt app acks
each one over the socket and answers the person like over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cli.demo import DemoWorld, demo_world
from bot.service import Service
from bot.slack.socket_mode import SocketModeError
from connectors import ManualClock
from ledger import Ledger
from sandbox.slack import FakeSlack

WRITER = "U0OPS001"


@dataclass
class SocketBot:
    demo: DemoWorld
    ledger: Ledger
    service: Service

    @property
    def slack(self) -> FakeSlack:
        slack: FakeSlack = self.demo.world.slack
        return slack

    @property
    def channel(self) -> str:
        return self.demo.world.alerts_channel

    def command(self, command: str, text: str, user: str = WRITER) -> dict[str, Any]:
        """A slash command's payload as Socket Mode carries it (the form, as an object)."""
        return {
            "token": self.slack.verification_token,
            "team_id": "T0SANDBOX",
            "team_domain": "driftwatch-sandbox",
            "channel_id": self.channel,
            "channel_name": "ops-inventory",
            "user_id": user,
            "user_name": "olivia",
            "command": command,
            "text": text,
            "api_app_id": "A0DRIFTAPP",
            "is_enterprise_install": "false",
            "response_url": self.slack.new_response_url(self.channel, user),
            "trigger_id": self.slack.new_trigger_id(user),
        }


def _socket_environ(demo: DemoWorld) -> dict[str, str]:
    """The app token, and no signing secret: Socket Mode only."""
    environ = {k: v for k, v in demo.environ.items() if k != "DEMO_SLACK_SIGNING_SECRET"}
    return {**environ, "SLACK_APP_TOKEN": demo.world.slack.app_token}


@pytest.fixture
async def socket_bot(tmp_path: Path) -> AsyncIterator[SocketBot]:
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'socket.db'}") as ledger,
    ):
        await ledger.upgrade()
        service = Service(demo.config, _socket_environ(demo), ledger, clock=ManualClock())
        await service.start(host="127.0.0.1", port=0)
        try:
            async with asyncio.timeout(30):
                await demo.world.slack.wait_for_call(
                    lambda c: c.method == "files.completeUploadExternal"
                )
            await service.idle()
            yield SocketBot(demo, ledger, service)
        finally:
            await service.stop()


async def test_a_slash_command_envelope_is_acked_and_answered(socket_bot: SocketBot) -> None:
    slack = socket_bot.slack
    [call] = slack.calls("apps.connections.open")
    assert (call.ok, call.token) == (True, slack.app_token)
    assert slack.socket.connected

    async with asyncio.timeout(10):
        ack = await slack.socket.request(
            "slash_commands",
            socket_bot.command("/drift", "tee-blk-m"),
            accepts_response_payload=True,
        )
    await socket_bot.service.idle()

    [envelope] = slack.socket.envelopes
    assert ack == {"envelope_id": envelope.envelope_id}
    assert slack.socket.stray == []
    [answer] = [e for e in slack.ephemerals if e.user == WRITER]
    assert answer.text == "TEE-BLK-M: shopify is off by +12 at east"
    assert "wms: *30* _(source of truth)_" in json.dumps(answer.blocks, ensure_ascii=False)


async def test_the_channel_page_reaches_the_app_over_the_socket(socket_bot: SocketBot) -> None:
    slack = socket_bot.slack
    delivery = await slack.page.slash_command(socket_bot.channel, WRITER, "/driftwatch help")
    await socket_bot.service.idle()

    assert (delivery.status, delivery.error) == (200, None)
    assert delivery.url.endswith("/link/")
    assert slack.socket.envelopes[-1].type == "slash_commands"
    ack = slack.socket.envelopes[-1].ack
    assert ack is not None
    assert ack["payload"]["text"] == "Driftwatch help"
    [shown] = [e for e in slack.ephemerals if e.user == WRITER]
    assert shown.text == "Driftwatch help"
    assert "/drift SKU" in json.dumps(shown.blocks)


async def test_socket_mode_only_serves_no_http_request_url(socket_bot: SocketBot) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{socket_bot.service.url}/slack/events", content=b"x")
        health = await http.get(f"{socket_bot.service.url}/healthz")
    assert response.status_code == 404  # no signing secret: nothing to verify requests with
    assert health.status_code == 200


async def test_a_disconnect_request_makes_the_app_reconnect(socket_bot: SocketBot) -> None:
    slack = socket_bot.slack
    await slack.socket.disconnect("refresh_requested")
    async with asyncio.timeout(15):
        await slack.socket.wait_connected(connects=2)
    assert [c.ok for c in slack.calls("apps.connections.open")] == [True, True]

    async with asyncio.timeout(10):
        ack = await slack.socket.request(
            "slash_commands",
            socket_bot.command("/incidents", "open"),
            accepts_response_payload=True,
        )
    assert ack["envelope_id"] == slack.socket.envelopes[-1].envelope_id


async def test_a_bot_token_in_place_of_the_app_token_stops_the_start(tmp_path: Path) -> None:
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'wrong.db'}") as ledger,
    ):
        environ = {**_socket_environ(demo), "SLACK_APP_TOKEN": demo.world.slack_token}
        service = Service(demo.config, environ, ledger, clock=ManualClock())
        with pytest.raises(SocketModeError, match="not_allowed_token_type") as raised:
            await service.start(host="127.0.0.1", port=0)
        await service.stop()
    assert demo.world.slack_token not in str(raised.value)
    assert not demo.world.slack.socket.connections


async def test_a_modal_opens_and_its_field_errors_come_back_over_the_socket(
    socket_bot: SocketBot,
) -> None:
    slack = socket_bot.slack
    await slack.page.slash_command(socket_bot.channel, WRITER, "/adjust TEE-BLK-M east")
    await socket_bot.service.idle()
    [view] = [v for v in slack.views.values() if v.view["callback_id"] == "adjust"]

    delivery = await slack.page.view_submission(
        view.id,
        WRITER,
        {
            "sku": {"sku": "TEE-BLK-M"},
            "location": {"location": "east"},
            "delta": {"delta": "three"},
            "reason": {"reason": "cycle_count"},
        },
    )
    await socket_bot.service.idle()

    assert slack.socket.envelopes[-1].type == "interactive"
    assert slack.socket.envelopes[-1].accepts_response_payload is True
    answer = delivery.response_json()
    assert answer is not None
    assert answer["response_action"] == "errors"
    assert "whole number" in json.dumps(answer["errors"])
    assert await socket_bot.ledger.list_adjustments() == []
