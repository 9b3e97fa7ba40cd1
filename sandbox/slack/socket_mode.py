"""Socket Mode on the fake Slack's own port: what an app without a public URL talks to.

The protocol, as Slack speaks it:

1. The app calls ``apps.connections.open`` with its app-level token (``xapp-…``; a bot
   token gets ``not_allowed_token_type``) and gets a one-time WebSocket URL,
   ``ws://{host}:{port}/link/?ticket=…`` here (``wss://wss-primary.slack.com/link/?…``
   at Slack). A ticket opens one connection; a used or unknown one is refused (401).
2. On connect the server sends ``{"type": "hello", "num_connections": n,
   "connection_info": {"app_id": …}, "debug_info": {…}}``.
3. Each event or interaction arrives as an envelope ``{"envelope_id": …, "type":
   "slash_commands" | "interactive" | "events_api", "accepts_response_payload": bool,
   "payload": …}`` — the payload being exactly what the HTTP request URL would have
   received (the command's form as an object, the interaction's ``payload`` JSON).
4. The app acknowledges with ``{"envelope_id": …}`` and, where
   ``accepts_response_payload`` is true, an optional ``"payload"`` (e.g. the text to
   show for a command, or a ``response_action`` for a view submission).
5. The server may ask the app to reconnect: ``{"type": "disconnect", "reason":
   "refresh_requested" | "warning" | "link_disabled", "debug_info": {…}}``.

Tests drive it through :meth:`SocketModeLink.request` (send an envelope, wait for its
ack) or through the channel page, which uses the socket whenever an app is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from sandbox.slack.model import APP_ID

if TYPE_CHECKING:
    from sandbox.slack.server import FakeSlack

__all__ = ["Envelope", "SocketModeLink"]

LINK_PATH = "/link/"
APPROXIMATE_CONNECTION_SECONDS = 18060


@dataclass
class Envelope:
    """One envelope sent to the app, and the app's acknowledgement once it came."""

    envelope_id: str
    type: str
    payload: dict[str, Any]
    accepts_response_payload: bool
    sent_at: datetime
    ack: dict[str, Any] | None = None
    acked: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future(), repr=False
    )

    def to_wire(self) -> dict[str, Any]:
        return {
            "envelope_id": self.envelope_id,
            "type": self.type,
            "accepts_response_payload": self.accepts_response_payload,
            "payload": self.payload,
        }


class SocketModeLink:
    """The WebSocket side of the fake: tickets, open connections, envelopes and acks."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self._tickets: set[str] = set()
        self.connections: list[web.WebSocketResponse] = []
        #: every envelope sent, in order (with its ack once received)
        self.envelopes: list[Envelope] = []
        #: every text frame the app sent that was not a known envelope's ack
        self.stray: list[str] = []
        self.connects = 0
        self._connected = asyncio.Event()
        slack.app.router.add_get(LINK_PATH, self._link)
        slack.app.on_shutdown.append(self._shutdown)

    @property
    def connected(self) -> bool:
        return any(not ws.closed for ws in self.connections)

    def open_url(self) -> str:
        """A one-time WebSocket URL (what ``apps.connections.open`` answers)."""
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return f"{self.slack.base_url.replace('http://', 'ws://', 1)}{LINK_PATH}?ticket={ticket}"

    async def wait_connected(self, connects: int = 1) -> None:
        """Until an app holds an open connection and ``connects`` were ever made (wrap
        in ``asyncio.timeout``)."""
        while not self.connected or self.connects < connects:
            self._connected.clear()
            await self._connected.wait()

    async def send(
        self, type_: str, payload: dict[str, Any], *, accepts_response_payload: bool = False
    ) -> Envelope:
        """Send an envelope over the newest open connection; see :meth:`request`."""
        open_ = [ws for ws in self.connections if not ws.closed]
        if not open_:
            raise ConnectionError("no Socket Mode connection is open")
        envelope = Envelope(
            str(uuid.uuid4()), type_, payload, accepts_response_payload, self.slack.clock.now()
        )
        self.envelopes.append(envelope)
        await open_[-1].send_str(json.dumps(envelope.to_wire()))
        return envelope

    async def request(
        self, type_: str, payload: dict[str, Any], *, accepts_response_payload: bool = False
    ) -> dict[str, Any]:
        """Send an envelope and return the app's ack. Slack waits 3 seconds and then shows
        the person an error: wrap it in ``asyncio.timeout(3)``."""
        envelope = await self.send(
            type_, payload, accepts_response_payload=accepts_response_payload
        )
        return await asyncio.shield(envelope.acked)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask every connected app to reconnect, as Slack does every few hours."""
        message = json.dumps(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-sandbox"}}
        )
        for ws in [w for w in self.connections if not w.closed]:
            await ws.send_str(message)

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return web.Response(status=401, text="invalid_ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections.append(ws)
        self.connects += 1
        hello = {
            "type": "hello",
            "num_connections": sum(1 for w in self.connections if not w.closed),
            "debug_info": {
                "host": "applink-sandbox",
                "build_number": 1,
                "approximate_connection_time": APPROXIMATE_CONNECTION_SECONDS,
            },
            "connection_info": {"app_id": APP_ID},
        }
        await ws.send_str(json.dumps(hello))
        self._connected.set()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._received(str(message.data))
        finally:
            self.connections.remove(ws)
        return ws

    def _received(self, text: str) -> None:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        envelope_id = body.get("envelope_id") if isinstance(body, dict) else None
        envelope = next((e for e in self.envelopes if e.envelope_id == envelope_id), None)
        if envelope is None or envelope.ack is not None or not isinstance(body, dict):
            self.stray.append(text)
            return
        envelope.ack = body
        if not envelope.acked.done():
            envelope.acked.set_result(body)
        self.slack.changed()

    async def _shutdown(self, app: web.Application) -> None:
        for ws in list(self.connections):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutting down")
