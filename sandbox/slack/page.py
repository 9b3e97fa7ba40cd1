"""A channel page in the browser: the fake Slack's state rendered like Slack, and the
interactions a person makes there sent to the app exactly as Slack sends them.

Routes (mounted on :attr:`FakeSlack.app` by :class:`FakeSlack` itself):

* ``GET /`` — redirects to the first channel's page.
* ``GET /channel/{channel_id}[?user=U…]`` — the page (plain HTML/CSS/JS, no build step).
* ``GET /_ui/static/{name}`` — ``channel.js`` and ``channel.css``.
* ``GET /_ui/state?channel=C…&user=U…`` — what the page renders, as JSON.
* ``GET /_ui/events`` — server-sent events: ``event: change`` with ``{"version": n}``
  on every state change (post, update, delete, ephemeral, reaction, file, view).
* ``GET /_ui/files/{file_id}/{name}`` — a file's bytes for ``<img>`` (no token needed).
* ``POST /_ui/action`` — ``{channel, user, message_ts, action_id, block_id?, value?,
  is_ephemeral?}``: the fake sends a signed ``block_actions`` payload to
  :attr:`FakeSlack.interactivity_url`.
* ``POST /_ui/command`` — ``{channel, user, text: "/drift TEE-BLK-M"}``: a signed slash
  command to :attr:`FakeSlack.command_url`; a JSON or text body in the app's answer
  becomes an ephemeral message (or a channel message for ``response_type: in_channel``).
* ``POST /_ui/message`` — ``{channel, user, text, thread_ts?}``: a person posts.
* ``POST /_ui/view_submission`` — ``{view_id, user, values: {block_id: {action_id: raw}}}``
  (raw: a string, a list of strings for checkboxes, or null): a signed
  ``view_submission``; ``response_action`` ``errors``/``update``/``push``/``clear`` in
  the answer are applied, an empty answer closes the view.
* ``POST /_ui/view_closed`` — ``{view_id, user}``: closes the view (and sends
  ``view_closed`` when the view asked for ``notify_on_close``).

While an app is connected in Socket Mode (:mod:`.socket_mode`), every interaction and
command goes to it as an envelope instead of an HTTP request, and its ack is the answer.

Each ``POST /_ui/*`` answers ``{"ok": bool, "status": int | null, "error": str | null,
...}`` where ``status`` is the app's HTTP status. Everything sent to the app is recorded
in :attr:`ChannelPage.deliveries`. Requests are signed with Slack's v0 scheme
(``X-Slack-Signature: v0=HMAC-SHA256(signing_secret, "v0:{ts}:{body}")``) using the
fake's clock for ``X-Slack-Request-Timestamp``.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from sandbox.slack.model import APP_ID, BOT_USER_ID, TEAM_ID, Ephemeral, Message, StoredView

if TYPE_CHECKING:
    from sandbox.slack.server import FakeSlack

__all__ = ["ChannelPage", "Delivery", "sign"]

TEAM_DOMAIN = "driftwatch-sandbox"
STATIC = {
    "channel.js": "application/javascript",
    "channel.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
REQUIRED_MESSAGE = "Please complete this required field."


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's ``X-Slack-Signature`` for ``body`` sent at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    """One request the fake sent to the app (what Slack would have sent)."""

    kind: str  # block_actions | slash_command | view_submission | view_closed
    url: str
    body: dict[str, Any]  # the payload (interactions) or the form (commands)
    status: int | None
    response: str
    error: str | None
    at: datetime

    def response_json(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.response) if self.response.strip() else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class UiError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _generated_id(prefix: str, index: int, item: dict[str, Any]) -> str:
    digest = hashlib.sha1(
        f"{prefix}{index}:{json.dumps(item, sort_keys=True)}".encode(), usedforsecurity=False
    )
    return digest.hexdigest()[:5]


def with_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks as Slack stores them: every block has a ``block_id`` and every interactive
    element an ``action_id`` (generated, stable, when the app gave none)."""
    out = copy.deepcopy(blocks)
    for index, block in enumerate(out):
        if not isinstance(block, dict):
            continue
        if not block.get("block_id"):
            block["block_id"] = _generated_id("b", index, block)
        elements: list[Any] = []
        if isinstance(block.get("elements"), list) and block.get("type") == "actions":
            elements = block["elements"]
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                elements.append(block[key])
        for pos, element in enumerate(elements):
            if (
                isinstance(element, dict)
                and element.get("type") not in ("image", "plain_text", "mrkdwn")
                and not element.get("action_id")
            ):
                element["action_id"] = _generated_id("a", pos, element)
    return out


def _elements(block: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if block.get("type") == "actions" and isinstance(block.get("elements"), list):
        found.extend(e for e in block["elements"] if isinstance(e, dict))
    for key in ("accessory", "element"):
        if isinstance(block.get(key), dict):
            found.append(block[key])
    return found


def _options(element: dict[str, Any]) -> list[dict[str, Any]]:
    options = [o for o in element.get("options") or [] if isinstance(o, dict)]
    for group in element.get("option_groups") or []:
        if isinstance(group, dict):
            options.extend(o for o in group.get("options") or [] if isinstance(o, dict))
    return options


def _option(element: dict[str, Any], value: object) -> dict[str, Any]:
    for option in _options(element):
        if option.get("value") == value:
            return option
    raise UiError(400, f"no option with value {value!r}")


class ChannelPage:
    """The page's routes and the interactions it sends; one per :class:`FakeSlack`."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        self.version = 0
        self.deliveries: list[Delivery] = []
        self.closed_views: set[str] = set()
        self.view_errors: dict[str, dict[str, str]] = {}
        self.delivery_timeout = 3.0  # Slack gives the app 3 seconds to answer
        self._event = asyncio.Event()
        self._closing = False
        slack.on_change(self.changed)
        router = slack.app.router
        router.add_get("/", self._index)
        router.add_get("/channel/{channel_id}", self._channel)
        router.add_get("/_ui/static/{name}", self._static)
        # Browsers ask for /favicon.ico when a page declares no icon; the page declares
        # one, and this answers anything that asks anyway, instead of a 404 per load.
        router.add_get("/favicon.ico", self._favicon)
        router.add_get("/_ui/state", self._state)
        router.add_get("/_ui/events", self._events)
        router.add_get("/_ui/files/{file_id}/{name}", self._file)
        router.add_post("/_ui/action", self._action)
        router.add_post("/_ui/command", self._command)
        router.add_post("/_ui/message", self._message)
        router.add_post("/_ui/view_submission", self._view_submission)
        router.add_post("/_ui/view_closed", self._view_closed)
        slack.app.on_shutdown.append(self._shutdown)

    # ------------------------------------------------------------------ changes

    def changed(self) -> None:
        """Tell every open page that the state changed."""
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_changed(self, seen: int) -> int:
        """The version once it differs from ``seen`` (or once the server shuts down)."""
        while self.version == seen and not self._closing:
            await self._event.wait()
        return self.version

    async def _shutdown(self, app: web.Application) -> None:
        self._closing = True
        self._event.set()

    # ------------------------------------------------------------------ pages

    async def _index(self, request: web.Request) -> web.StreamResponse:
        channels = [c for c in self.slack.channels.values() if not c.is_im]
        if not channels:
            return web.Response(status=404, text="no channels")
        raise web.HTTPFound(f"/channel/{channels[0].id}")

    async def _channel(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["channel_id"] not in self.slack.channels:
            return web.Response(status=404, text="channel_not_found")
        text = resources.files("sandbox.slack").joinpath("static/channel.html").read_text("utf-8")
        return web.Response(text=text, content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            return web.Response(status=404, text="not found")
        text = resources.files("sandbox.slack").joinpath(f"static/{name}").read_text("utf-8")
        return web.Response(
            text=text,
            content_type=STATIC[name],
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def _favicon(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("/_ui/static/favicon.svg")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        file = self.slack.files.get(request.match_info["file_id"])
        if file is None or file.content is None or file.filename != request.match_info["name"]:
            return web.Response(status=404, text="not found")
        return web.Response(body=file.content, content_type=file.mimetype)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        seen = self.version
        try:
            await response.write(self._sse(seen))
            while not self._closing:
                seen = await self.wait_changed(seen)
                if not self._closing:
                    await response.write(self._sse(seen))
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    @staticmethod
    def _sse(version: int) -> bytes:
        data = json.dumps({"version": version})
        return f"id: {version}\nevent: change\ndata: {data}\n\n".encode()

    # ------------------------------------------------------------------ state

    def _user_json(self, user_id: str) -> dict[str, Any]:
        user = self.slack.ws.users.get(user_id)
        if user is None:
            return {"id": user_id, "name": user_id, "real_name": user_id, "is_bot": False}
        return {
            "id": user.id,
            "name": user.name,
            "real_name": user.real_name,
            "is_bot": user.is_bot,
        }

    def _files_json(self, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for file in files:
            item = dict(file)
            item["ui_url"] = f"/_ui/files/{file.get('id')}/{file.get('name')}"
            out.append(item)
        return out

    def _message_json(self, message: Message) -> dict[str, Any]:
        return {
            "ts": message.ts,
            "user": message.user,
            "is_bot": message.is_bot,
            "text": message.text,
            "blocks": with_ids(message.blocks),
            "thread_ts": message.thread_ts,
            "files": self._files_json(message.files),
            "edited": message.edited,
            "reactions": [
                {"name": name, "count": len(users)} for name, users in message.reactions.items()
            ],
        }

    def _ephemeral_json(self, ephemeral: Ephemeral) -> dict[str, Any]:
        return {
            "ts": ephemeral.message_ts,
            "user": BOT_USER_ID,
            "is_bot": True,
            "text": ephemeral.text,
            "blocks": with_ids(ephemeral.blocks),
            "thread_ts": ephemeral.thread_ts,
            "files": [],
            "edited": False,
            "reactions": [],
            "ephemeral": True,
        }

    def top_view(self, user: str) -> StoredView | None:
        """The modal ``user`` sees now (the last opened that is still open)."""
        open_views = [
            v
            for v in self.slack.views.values()
            if v.user == user and v.id not in self.closed_views and v.view.get("type") == "modal"
        ]
        return open_views[-1] if open_views else None

    def view_json(self, stored: StoredView) -> dict[str, Any]:
        view = stored.to_api()
        view["blocks"] = with_ids(view["blocks"])
        view["app_installed_team_id"] = TEAM_ID
        return view

    def state(self, channel_id: str, user: str) -> dict[str, Any]:
        """What the page renders for ``user`` in ``channel_id``."""
        channel = self.slack.channels.get(channel_id)
        if channel is None:
            raise UiError(404, "channel_not_found")
        messages = []
        for message in self.slack.messages(channel_id):
            item = self._message_json(message)
            replies = [
                self._message_json(m)
                for m in self.slack.thread(channel_id, message.ts)
                if m.ts != message.ts
            ]
            replies += [
                self._ephemeral_json(e)
                for e in self.slack.ephemerals
                if e.channel == channel_id and e.user == user and e.thread_ts == message.ts
            ]
            replies.sort(key=lambda r: float(r["ts"]))
            item["replies"] = replies
            messages.append(item)
        ephemerals = [
            self._ephemeral_json(e)
            for e in self.slack.ephemerals
            if e.channel == channel_id and e.user == user and e.thread_ts is None
        ]
        view = self.top_view(user)
        return {
            "version": self.version,
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN, "name": "Driftwatch Sandbox"},
            "channel": {"id": channel.id, "name": channel.name},
            "channels": [
                {"id": c.id, "name": c.name} for c in self.slack.channels.values() if not c.is_im
            ],
            "users": {uid: self._user_json(uid) for uid in self.slack.ws.users},
            "user": user,
            "interactivity": self.slack.interactivity_url is not None
            or self.slack.socket.connected,
            "messages": messages,
            "ephemerals": ephemerals,
            "view": self.view_json(view) if view else None,
            "view_errors": self.view_errors.get(view.id, {}) if view else {},
        }

    async def _state(self, request: web.Request) -> web.StreamResponse:
        user = request.query.get("user", "U0OPS001")
        try:
            return web.json_response(self.state(request.query.get("channel", ""), user))
        except UiError as exc:
            return web.json_response({"ok": False, "error": exc.error}, status=exc.status)

    # ------------------------------------------------------------------ sending

    def _user_ref(self, user_id: str) -> dict[str, Any]:
        user = self.slack.ws.users.get(user_id)
        if user is None:
            raise UiError(400, "user_not_found")
        return {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM_ID}

    def _team(self) -> dict[str, Any]:
        return {"id": TEAM_ID, "domain": TEAM_DOMAIN}

    async def _send(
        self, kind: str, url: str | None, form: dict[str, str], record: dict[str, Any]
    ) -> Delivery:
        if self.slack.socket.connected:
            return await self._send_socket(kind, record)
        if url is None:
            raise UiError(409, "no_interactivity_url")
        body = urlencode(form).encode()
        timestamp = str(int(self.slack.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(self.slack.signing_secret, timestamp, body),
        }
        status: int | None = None
        text, error = "", None
        timeout = aiohttp.ClientTimeout(total=self.delivery_timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, data=body, headers=headers) as response,
            ):
                status = response.status
                text = await response.text()
        except TimeoutError:
            error = "operation_timeout"
        except aiohttp.ClientError:
            error = "dispatch_failed"
        if error is None and status != 200:
            error = f"http_error_{status}"
        delivery = Delivery(kind, url, record, status, text, error, self.slack.clock.now())
        self.deliveries.append(delivery)
        return delivery

    async def _send_socket(self, kind: str, payload: dict[str, Any]) -> Delivery:
        """With an app connected in Socket Mode, Slack sends everything there instead:
        an envelope, answered by the app's ack (its ``payload`` is the answer)."""
        type_ = "slash_commands" if kind == "slash_command" else "interactive"
        accepts = kind in ("slash_command", "view_submission")
        status: int | None = None
        text, error = "", None
        try:
            async with asyncio.timeout(self.delivery_timeout):
                ack = await self.slack.socket.request(
                    type_, payload, accepts_response_payload=accepts
                )
        except TimeoutError:
            error = "operation_timeout"
        except ConnectionError:
            error = "dispatch_failed"
        else:
            status = 200
            answer = ack.get("payload")
            text = json.dumps(answer) if answer else ""
        url = f"{self.slack.base_url}/link/"
        delivery = Delivery(kind, url, payload, status, text, error, self.slack.clock.now())
        self.deliveries.append(delivery)
        return delivery

    async def _send_payload(self, kind: str, payload: dict[str, Any]) -> Delivery:
        form = {"payload": json.dumps(payload)}
        return await self._send(kind, self.slack.interactivity_url, form, payload)

    async def block_action(
        self,
        channel: str,
        user: str,
        message_ts: str,
        action_id: str,
        *,
        block_id: str | None = None,
        value: str | None = None,
        is_ephemeral: bool = False,
    ) -> Delivery:
        """``user`` clicks a button (or picks option ``value`` of a select) in a message."""
        if channel not in self.slack.channels:
            raise UiError(404, "channel_not_found")
        message: Message | None = None
        ephemeral: Ephemeral | None = None
        if is_ephemeral:
            ephemeral = next(
                (
                    e
                    for e in self.slack.ephemerals
                    if e.channel == channel and e.message_ts == message_ts and e.user == user
                ),
                None,
            )
            if ephemeral is None:
                raise UiError(404, "message_not_found")
            blocks = with_ids(ephemeral.blocks)
        else:
            message = self.slack.ws.find(channel, message_ts)
            if message is None:
                raise UiError(404, "message_not_found")
            blocks = with_ids(message.blocks)
        found = [
            (block, element)
            for block in blocks
            for element in _elements(block)
            if element.get("action_id") == action_id
            and (block_id is None or block.get("block_id") == block_id)
        ]
        if not found:
            raise UiError(404, "action_not_found")
        block, element = found[0]
        now = self.slack.ws.next_ts()
        action: dict[str, Any] = {
            "action_id": action_id,
            "block_id": block["block_id"],
            "type": element["type"],
            "action_ts": now,
        }
        state_values: dict[str, Any] = {}
        if element["type"] == "button":
            action["text"] = element.get("text")
            if "value" in element:
                action["value"] = element["value"]
            if "style" in element:
                action["style"] = element["style"]
        elif element["type"] in ("static_select", "overflow", "radio_buttons"):
            option = _option(element, value)
            action["selected_option"] = option
            if "placeholder" in element:
                action["placeholder"] = element["placeholder"]
            if element["type"] != "overflow":
                state_values = {
                    block["block_id"]: {
                        action_id: {"type": element["type"], "selected_option": option}
                    }
                }
        else:
            action["value"] = value
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user_ref(user),
            "api_app_id": APP_ID,
            "token": self.slack.verification_token,
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": is_ephemeral,
            },
            "trigger_id": self.slack.new_trigger_id(user),
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": self.slack.channels[channel].name},
        }
        if message is not None:
            api = message.to_api()
            api["blocks"] = blocks
            payload["message"] = api
        payload["state"] = {"values": state_values}
        payload["response_url"] = self.slack.new_response_url(channel, user, message_ts)
        payload["actions"] = [action]
        return await self._send_payload("block_actions", payload)

    async def slash_command(self, channel: str, user: str, line: str) -> Delivery:
        """``user`` types ``line`` (``/drift TEE-BLK-M``) in the composer of ``channel``."""
        if channel not in self.slack.channels:
            raise UiError(404, "channel_not_found")
        command, _, text = line.strip().partition(" ")
        if not command.startswith("/") or len(command) < 2:
            raise UiError(400, "not_a_command")
        ref = self._user_ref(user)
        form = {
            "token": self.slack.verification_token,
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel,
            "channel_name": self.slack.channels[channel].name,
            "user_id": user,
            "user_name": ref["name"],
            "command": command,
            "text": text.strip(),
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.slack.new_response_url(channel, user),
            "trigger_id": self.slack.new_trigger_id(user),
        }
        delivery = await self._send("slash_command", self.slack.command_url, form, form)
        if delivery.status == 200 and delivery.response.strip():
            self._command_answer(channel, user, delivery)
        return delivery

    def _command_answer(self, channel: str, user: str, delivery: Delivery) -> None:
        """Slack shows what the app answered to a command (its ``ack`` body)."""
        body = delivery.response_json()
        if body is None:
            body = {"text": delivery.response}
        text = str(body.get("text") or "")
        blocks = body.get("blocks") if isinstance(body.get("blocks"), list) else []
        if not text and not blocks:
            return
        ts = self.slack.ws.next_ts()
        if body.get("response_type") == "in_channel":
            message = Message(channel, ts, BOT_USER_ID, text, blocks or [])
            self.slack.channels[channel].messages.append(message)
        else:
            self.slack.ephemerals.append(
                Ephemeral(channel, user, ts, text, blocks or [], None, self.slack.clock.now())
            )
        self.changed()

    def _view_values(
        self, view: dict[str, Any], raw: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """``view.state.values`` shaped like Slack's, and the required fields left empty."""
        values: dict[str, Any] = {}
        missing: dict[str, str] = {}
        for block in view["blocks"]:
            if block.get("type") != "input" or not isinstance(block.get("element"), dict):
                continue
            element = block["element"]
            block_id, action_id, kind = block["block_id"], element["action_id"], element["type"]
            given = (raw.get(block_id) or {}).get(action_id) if isinstance(raw, dict) else None
            state: dict[str, Any] = {"type": kind}
            empty = given in (None, "", [])
            if kind in ("static_select", "radio_buttons", "external_select"):
                state["selected_option"] = None if empty else _option(element, given)
            elif kind in ("checkboxes", "multi_static_select"):
                chosen = given if isinstance(given, list) else []
                state["selected_options"] = [_option(element, v) for v in chosen]
            elif kind == "datepicker":
                state["selected_date"] = None if empty else given
            elif kind == "users_select":
                state["selected_user"] = None if empty else given
            else:
                state["value"] = None if empty else given
            values.setdefault(block_id, {})[action_id] = state
            if empty and not block.get("optional", False):
                missing[block_id] = REQUIRED_MESSAGE
        return values, missing

    async def view_submission(self, view_id: str, user: str, raw: dict[str, Any]) -> Delivery:
        """``user`` submits the modal ``view_id`` with ``raw`` inputs.

        Raises :class:`UiError` (``required_fields``) without sending anything when a
        required input is empty, as Slack's client does.
        """
        stored = self.slack.views.get(view_id)
        if stored is None or view_id in self.closed_views:
            raise UiError(404, "view_not_found")
        view = self.view_json(stored)
        values, missing = self._view_values(view, raw)
        if missing:
            self.view_errors[view_id] = missing
            self.changed()
            raise UiError(422, "required_fields")
        view["state"] = {"values": values}
        payload: dict[str, Any] = {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user_ref(user),
            "api_app_id": APP_ID,
            "token": self.slack.verification_token,
            "trigger_id": self.slack.new_trigger_id(user),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        delivery = await self._send_payload("view_submission", payload)
        if delivery.status == 200:
            self._apply_view_answer(stored, delivery.response_json() or {})
        return delivery

    def _apply_view_answer(self, stored: StoredView, answer: dict[str, Any]) -> None:
        action = answer.get("response_action")
        self.view_errors.pop(stored.id, None)
        if action == "errors":
            errors = answer.get("errors")
            if isinstance(errors, dict):
                self.view_errors[stored.id] = {str(k): str(v) for k, v in errors.items()}
        elif action == "update" and isinstance(answer.get("view"), dict):
            stored.view = answer["view"]
            stored.history.append(stored.view)
            stored.hash = f"{len(stored.history)}.{_generated_id('h', 0, stored.view)}"
        elif action == "push" and isinstance(answer.get("view"), dict):
            new_id = self.slack.ws.next_id("V")
            pushed = StoredView(
                new_id,
                stored.user,
                answer["view"],
                f"1.{_generated_id('h', 0, answer['view'])}",
                stored.root_view_id,
                stored.id,
                self.slack.clock.now(),
            )
            pushed.history.append(pushed.view)
            self.slack.views[new_id] = pushed
        elif action == "clear":
            for view in self.slack.views.values():
                if view.root_view_id == stored.root_view_id:
                    self.closed_views.add(view.id)
        else:
            self.closed_views.add(stored.id)
        self.changed()

    async def view_closed(self, view_id: str, user: str) -> Delivery | None:
        """``user`` closes the modal (×, or its close button)."""
        stored = self.slack.views.get(view_id)
        if stored is None or view_id in self.closed_views:
            raise UiError(404, "view_not_found")
        self.closed_views.add(view_id)
        self.view_errors.pop(view_id, None)
        self.changed()
        reachable = self.slack.interactivity_url is not None or self.slack.socket.connected
        if not stored.view.get("notify_on_close") or not reachable:
            return None
        payload: dict[str, Any] = {
            "type": "view_closed",
            "team": self._team(),
            "user": self._user_ref(user),
            "api_app_id": APP_ID,
            "token": self.slack.verification_token,
            "view": self.view_json(stored),
            "is_cleared": False,
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return await self._send_payload("view_closed", payload)

    # ------------------------------------------------------------------ UI endpoints

    @staticmethod
    def _answer(delivery: Delivery | None, **extra: Any) -> web.Response:
        if delivery is None:
            return web.json_response({"ok": True, "status": None, "error": None, **extra})
        return web.json_response(
            {
                "ok": delivery.error is None,
                "status": delivery.status,
                "error": delivery.error,
                **extra,
            }
        )

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError as exc:
            raise UiError(400, "invalid_json") from exc
        if not isinstance(body, dict):
            raise UiError(400, "invalid_json")
        return body

    @staticmethod
    def _str(body: dict[str, Any], name: str, default: str | None = None) -> str:
        value = body.get(name, default)
        if not isinstance(value, str) or not value:
            raise UiError(400, f"missing {name}")
        return value

    async def _action(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            value = body.get("value")
            delivery = await self.block_action(
                self._str(body, "channel"),
                self._str(body, "user"),
                self._str(body, "message_ts"),
                self._str(body, "action_id"),
                block_id=body.get("block_id") or None,
                value=value if isinstance(value, str) else None,
                is_ephemeral=bool(body.get("is_ephemeral", False)),
            )
        except UiError as exc:
            return web.json_response(
                {"ok": False, "status": None, "error": exc.error}, status=exc.status
            )
        return self._answer(delivery)

    async def _command(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            delivery = await self.slash_command(
                self._str(body, "channel"), self._str(body, "user"), self._str(body, "text")
            )
        except UiError as exc:
            return web.json_response(
                {"ok": False, "status": None, "error": exc.error}, status=exc.status
            )
        return self._answer(delivery)

    async def _message(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            channel, user = self._str(body, "channel"), self._str(body, "user")
            text = self._str(body, "text")
            if channel not in self.slack.channels:
                raise UiError(404, "channel_not_found")
            if user not in self.slack.ws.users:
                raise UiError(400, "user_not_found")
            thread_ts = body.get("thread_ts") or None
            message = self.slack.user_says(
                channel, user, text, thread_ts if isinstance(thread_ts, str) else None
            )
        except UiError as exc:
            return web.json_response({"ok": False, "error": exc.error}, status=exc.status)
        return web.json_response({"ok": True, "ts": message.ts})

    async def _view_submission(self, request: web.Request) -> web.StreamResponse:
        view_id = ""
        try:
            body = await self._body(request)
            view_id = self._str(body, "view_id")
            raw = body.get("values")
            delivery = await self.view_submission(
                view_id, self._str(body, "user"), raw if isinstance(raw, dict) else {}
            )
        except UiError as exc:
            errors = self.view_errors.get(view_id, {}) if exc.status == 422 else {}
            return web.json_response(
                {"ok": False, "status": None, "error": exc.error, "errors": errors},
                status=exc.status,
            )
        return self._answer(delivery, errors=self.view_errors.get(view_id, {}))

    async def _view_closed(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            delivery = await self.view_closed(self._str(body, "view_id"), self._str(body, "user"))
        except UiError as exc:
            return web.json_response(
                {"ok": False, "status": None, "error": exc.error}, status=exc.status
            )
        return self._answer(delivery)
