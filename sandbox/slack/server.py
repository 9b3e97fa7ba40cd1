"""The fake Slack's HTTP face: the Web API, file uploads and downloads, response_urls.

Routes (all on one loopback port):

* ``GET|POST /api/{method}`` — the Web API. Arguments are merged from the query
  string, a form (urlencoded or multipart) and a JSON body; the token comes from
  ``Authorization: Bearer`` or a ``token`` argument. Answers are Slack-shaped:
  ``200 {"ok": true, ...}``, ``200 {"ok": false, "error": ...}`` for API errors,
  ``429 {"ok": false, "error": "ratelimited"}`` with ``Retry-After`` for pacing.
* ``POST /upload/v1/{file_id}`` — the ``upload_url`` of ``files.getUploadURLExternal``;
  takes the raw bytes (or a multipart ``file`` field), answers ``text/plain`` ``OK``.
* ``GET /files/{file_id}/{name}`` — a shared file's ``url_private`` (bot token needed).
* ``POST /response/{id}`` — a ``response_url`` from :meth:`FakeSlack.new_response_url`.
* ``GET /link/?ticket=…`` — Socket Mode's WebSocket, from ``apps.connections.open``
  called with the app-level token :attr:`FakeSlack.app_token` (see :mod:`.socket_mode`).

Faults: ``down`` answers every route with an HTML 503; ``slow`` adds real seconds of
latency; ``latency`` is awaited with each API call and upload after it took effect and
before it is answered — a slow Slack on the test's own clock (:meth:`FakeSlack.calls_take`
moves a manual clock on per call) or answers held on an event while the caller is killed;
``force_5xx(n)`` fails the next n API calls with an HTML 5xx;
``force_error(method, error, n)`` makes the next n calls of one method answer
``{"ok": false, "error": error}``. A browser page can be added later by registering
more routes on :attr:`FakeSlack.app` before :meth:`FakeSlack.start`.

The channel page (``GET /``, ``/channel/{id}``, ``/_ui/*``; see :mod:`.page`) renders
the state in a browser and sends a person's clicks, commands and modal submissions to
:attr:`FakeSlack.interactivity_url` (commands: :attr:`FakeSlack.command_url`), signed
with :attr:`FakeSlack.signing_secret` like Slack does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any

from aiohttp import web

from sandbox.slack.home import HomeTab
from sandbox.slack.methods import METHODS, RateLimited, Request
from sandbox.slack.model import (
    BOT_USER_ID,
    Call,
    Channel,
    Clock,
    Edit,
    Ephemeral,
    Message,
    ResponseUrl,
    ResponseUrlPost,
    StoredFile,
    StoredView,
    User,
    WallClock,
    Workspace,
)
from sandbox.slack.page import ChannelPage
from sandbox.slack.rules import ApiError, TokenBucket, blocks_arg, check_message
from sandbox.slack.socket_mode import SocketModeLink

__all__ = ["DEFAULT_CHANNELS", "DEFAULT_GROUPS", "DEFAULT_USERS", "FakeSlack"]

DEFAULT_CHANNELS: Mapping[str, str] = {"C0DRIFT01": "ops-inventory"}
DEFAULT_USERS: Sequence[User] = (
    User("U0OPS001", "olivia", "Olivia Ops (ops lead)"),
    User("U0ONCALL1", "omar", "Omar Oncall"),
    User("U0VIEWER1", "vera", "Vera Viewer"),
)
DEFAULT_GROUPS: Mapping[str, Sequence[str]] = {"S0ONCALL": ("U0ONCALL1", "U0OPS001")}
RESPONSE_URL_TTL = timedelta(minutes=30)
RESPONSE_URL_USES = 5

# API methods whose success changes what the page shows.
_CHANGING = ("chat.", "reactions.", "files.completeUploadExternal", "views.")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _html(status: int) -> web.Response:
    text = f"<html><body><h1>{status}</h1>Slack is having trouble.</body></html>"
    return web.Response(status=status, text=text, content_type="text/html")


class FakeSlack:
    """A Slack workspace on loopback that the real ``AsyncWebClient`` can talk to."""

    def __init__(
        self,
        bot_token: str = "xoxb-sandbox",
        clock: Clock | None = None,
        channels: Mapping[str, str] | None = None,
        users: Sequence[User] | None = None,
        usergroups: Mapping[str, Sequence[str]] | None = None,
        *,
        post_burst: float = 1,
        post_rate: float = 1.0,
        interactivity_url: str | None = None,
        command_url: str | None = None,
        signing_secret: str = "sandbox-signing-secret",
        verification_token: str = "sandbox-verification-token",
        app_token: str = "xapp-1-sandbox",
    ) -> None:
        self.bot_token = bot_token
        #: the app-level token (``connections:write``) that opens Socket Mode
        self.app_token = app_token
        self.clock: Clock = clock or WallClock()
        self.ws = Workspace(
            self.clock,
            dict(channels if channels is not None else DEFAULT_CHANNELS),
            list(users if users is not None else DEFAULT_USERS),
            {k: list(v) for k, v in (usergroups or DEFAULT_GROUPS).items()},
        )
        self.post_burst = post_burst
        self.post_rate = post_rate
        self.down = False
        self.slow = 0.0
        #: awaited with each API call (and upload) once it took effect, before it is
        #: answered; None answers at once (see the module doc)
        self.latency: Callable[[Call], Awaitable[None]] | None = None
        self.requests: list[Call] = []
        self._buckets: dict[str, TokenBucket] = {}
        self._5xx: list[int] = []
        self._errors: dict[str, list[str]] = {}
        self._waiters: list[tuple[Callable[[Call], bool], asyncio.Future[Call]]] = []
        self.interactivity_url = interactivity_url
        self._command_url = command_url
        self.signing_secret = signing_secret
        self.verification_token = verification_token
        self._change_listeners: list[Callable[[], None]] = []
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self.app = web.Application(middlewares=[self._faults])
        self.app.router.add_route("*", "/api/{method}", self._api)
        self.app.router.add_post("/upload/v1/{file_id}", self._upload)
        self.app.router.add_get("/files/{file_id}/{name}", self._download)
        self.app.router.add_post("/response/{url_id}", self._response_url)
        self.page = ChannelPage(self)
        self.home = HomeTab(self)
        self.socket = SocketModeLink(self)

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeSlack is not started")
        return self._base_url

    @property
    def command_url(self) -> str | None:
        """Where slash commands go (the interactivity URL unless set apart)."""
        return self._command_url or self.interactivity_url

    @command_url.setter
    def command_url(self, url: str | None) -> None:
        self._command_url = url

    @property
    def page_url(self) -> str:
        """The channel page for a browser."""
        return f"{self.base_url}/"

    @property
    def api_url(self) -> str:
        """What to give ``AsyncWebClient(base_url=...)``."""
        return f"{self.base_url}/api/"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._base_url = f"http://{bound_host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------ state for tests

    @property
    def channels(self) -> dict[str, Channel]:
        return self.ws.channels

    @property
    def ephemerals(self) -> list[Ephemeral]:
        return self.ws.ephemerals

    @property
    def views(self) -> dict[str, StoredView]:
        return self.ws.views

    @property
    def files(self) -> dict[str, StoredFile]:
        return self.ws.files

    @property
    def response_url_posts(self) -> list[ResponseUrlPost]:
        return self.ws.response_url_posts

    def add_channel(self, channel_id: str, name: str) -> None:
        """Create a public channel the bot is a member of (a workspace admin's doing)."""
        if channel_id not in self.ws.channels:
            self.ws.channels[channel_id] = Channel(channel_id, name, self.ws.clock.now())

    def messages(self, channel: str) -> list[Message]:
        """Top-level messages in ``channel``, oldest first (replies: :meth:`thread`)."""
        return self.ws.messages(channel)

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The parent message ``ts`` and its replies, oldest first."""
        return self.ws.thread(channel, ts)

    def calls(self, method: str) -> list[Call]:
        return [c for c in self.requests if c.method == method]

    async def wait_for_call(self, predicate: Callable[[Call], bool]) -> Call:
        """The first recorded call (past or future) matching ``predicate``.

        Wrap it in ``asyncio.timeout`` in tests.
        """
        for call in self.requests:
            if predicate(call):
                return call
        future: asyncio.Future[Call] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        try:
            return await future
        finally:
            self._waiters = [w for w in self._waiters if w[1] is not future]

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds, checking after every change to the state
        (messages, edits, uploads). Wrap it in ``asyncio.timeout`` in tests."""
        changed = asyncio.Event()
        self.on_change(changed.set)
        try:
            while not condition():
                await changed.wait()
                changed.clear()
        finally:
            self._change_listeners.remove(changed.set)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change to the state (the page's live updates)."""
        self._change_listeners.append(listener)

    def changed(self) -> None:
        for listener in self._change_listeners:
            listener()

    def _record(self, call: Call) -> None:
        self.requests.append(call)
        for predicate, future in self._waiters:
            if not future.done() and predicate(call):
                future.set_result(call)

    # ------------------------------------------------------------ control API

    def calls_take(self, seconds: float) -> None:
        """Every API call and upload takes ``seconds`` of the fake's clock: the clock
        (which must have ``advance``, as a ManualClock does) moves on before each answer.
        ``0`` answers at once again."""
        advance = getattr(self.clock, "advance", None)
        if not callable(advance):
            raise TypeError("calls_take needs a clock with advance(seconds)")

        async def slow(call: Call) -> None:
            advance(seconds)
            await asyncio.sleep(0)  # let whoever waits on the clock look at it

        self.latency = slow if seconds > 0 else None

    def force_5xx(self, n: int = 1, status: int = 500) -> None:
        self._5xx.extend([status] * n)

    def force_error(self, method: str, error: str, n: int = 1) -> None:
        self._errors.setdefault(method, []).extend([error] * n)

    def user_says(
        self, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> Message:
        """A human posts in the channel (not through the API, so no pacing)."""
        message = Message(channel, self.ws.next_ts(), user, text, [], thread_ts)
        self.ws.channels[channel].messages.append(message)
        self.changed()
        return message

    def new_trigger_id(self, user: str = "U0OPS001") -> str:
        """A trigger_id as an interaction would carry it (valid for 3 s, once)."""
        trigger = f"{self.ws.next_id('')}.{self.ws.next_ts().replace('.', '')}"
        self.ws.trigger_ids[trigger] = (user, self.clock.now())
        return trigger

    def new_response_url(
        self, channel: str, user: str = "U0OPS001", message_ts: str | None = None
    ) -> str:
        """A response_url for a command or action (``message_ts``: the original)."""
        url = ResponseUrl(self.ws.next_id("R"), channel, user, message_ts, self.clock.now())
        self.ws.response_urls[url.id] = url
        return f"{self.base_url}/response/{url.id}"

    # ------------------------------------------------------------------ routes

    @web.middleware
    async def _faults(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if self.slow > 0:
            await asyncio.sleep(self.slow)
        if self.down:
            if request.path.startswith("/api/"):
                method = request.path.removeprefix("/api/")
                self._record(Call(method, {}, None, 503, False, None, self.clock.now()))
            return _html(503)
        return await handler(request)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    return web.json_response({"ok": False, "error": "invalid_json"})
                args.update(body)
            else:
                form = await request.post()
                args.update({k: v for k, v in form.items() if isinstance(v, str)})
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
        token = str(args.pop("token", "")) or token
        status, body = self._dispatch(method, args, token)
        ok = body is not None and body.get("ok") is True
        error = None if body is None else body.get("error")
        call = Call(method, args, token, status, ok, error, self.clock.now())
        self._record(call)
        if ok and method.startswith(_CHANGING):
            self.changed()
        if self.latency is not None:
            await self.latency(call)
        if body is None:
            return _html(status)
        headers = {"Retry-After": str(body.pop("retry_after"))} if status == 429 else {}
        return web.json_response(body, status=status, headers=headers)

    def _dispatch(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any] | None]:
        """``(status, body)``; a ``None`` body is an HTML error page."""
        if self._5xx:
            return self._5xx.pop(0), None
        impl = METHODS.get(method)
        try:
            if impl is None and method != "apps.connections.open":
                raise ApiError("unknown_method")
            if not token:
                raise ApiError("not_authed")
            if impl is None:  # apps.connections.open: the app-level token only
                if token == self.app_token:
                    return 200, {"ok": True, "url": self.socket.open_url()}
                if token == self.bot_token:
                    raise ApiError("not_allowed_token_type")
                raise ApiError("invalid_auth")
            if token == self.app_token:
                raise ApiError("not_allowed_token_type")
            if token != self.bot_token:
                raise ApiError("invalid_auth")
            forced = self._errors.get(method)
            if forced:
                raise ApiError(forced.pop(0))
            req = Request(
                self.ws, args, self.base_url, self._buckets, self.post_burst, self.post_rate
            )
            return 200, {"ok": True, **impl(req)}
        except ApiError as exc:
            return 200, exc.body()
        except RateLimited as exc:
            return 429, {"ok": False, "error": "ratelimited", "retry_after": int(exc.retry_after)}

    async def _upload(self, request: web.Request) -> web.Response:
        file = self.ws.files.get(request.match_info["file_id"])
        if file is None:
            return web.Response(status=404, text="file_not_found")
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = form.get("file") or form.get("filename")
            content = part.file.read() if isinstance(part, web.FileField) else b""
        else:
            content = await request.read()
        file.content = content
        self.changed()
        if self.latency is not None:
            await self.latency(Call("upload", {}, None, 200, True, None, self.clock.now()))
        return web.Response(text=f"OK - {len(content)}", content_type="text/plain")

    async def _download(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            return web.Response(status=403, text="forbidden")
        file = self.ws.files.get(request.match_info["file_id"])
        if file is None or file.content is None or file.filename != request.match_info["name"]:
            return web.Response(status=404, text="not found")
        return web.Response(body=file.content, content_type=file.mimetype)

    async def _response_url(self, request: web.Request) -> web.Response:
        url = self.ws.response_urls.get(request.match_info["url_id"])
        try:
            body = await request.json()
        except ValueError:
            body = None
        status, error = 200, None
        if not isinstance(body, dict):
            status, error = 400, "invalid_payload"
        elif url is None:
            status, error = 404, "invalid_url"
        elif url.uses >= RESPONSE_URL_USES or self.clock.now() - url.issued_at > RESPONSE_URL_TTL:
            status, error = 404, "expired_url"
        else:
            url.uses += 1
            try:
                self._apply_response(url, body)
            except ApiError as exc:
                status, error = 400, exc.code
        self.ws.response_url_posts.append(
            ResponseUrlPost(
                request.match_info["url_id"], body or {}, status, error, self.clock.now()
            )
        )
        if error is not None:
            return web.json_response({"ok": False, "error": error}, status=status)
        self.changed()
        return web.json_response({"ok": True})

    def _apply_response(self, url: ResponseUrl, body: dict[str, Any]) -> None:
        original = self.ws.find(url.channel, url.message_ts) if url.message_ts else None
        if body.get("delete_original"):
            if original is None:
                raise ApiError("message_not_found")
            original.deleted = True
            return
        blocks = blocks_arg(body.get("blocks"))
        text = check_message(body.get("text"), blocks, body.get("attachments"))
        if body.get("replace_original"):
            if original is None:
                raise ApiError("message_not_found")
            original.edits.append(Edit(original.text, original.blocks, self.clock.now()))
            original.text, original.blocks = text, blocks
        elif body.get("response_type") == "in_channel":
            thread_ts = body.get("thread_ts")
            message = Message(url.channel, self.ws.next_ts(), BOT_USER_ID, text, blocks, thread_ts)
            self.ws.channels[url.channel].messages.append(message)
        else:
            ts = self.ws.next_ts()
            self.ws.ephemerals.append(
                Ephemeral(url.channel, url.user, ts, text, blocks, None, self.clock.now())
            )
