"""The App Home's Home tab in the fake Slack: the ``app_home_opened`` event Slack sends
when a person opens it, and a page in the browser that shows what the app published
there with ``views.publish`` (:mod:`.home_views`).

The event, as Slack's Events API sends it (https://api.slack.com/events/app_home_opened,
https://api.slack.com/apis/connections/events-api):

* ``POST`` to the app's Request URL, ``Content-Type: application/json``, an
  ``event_callback`` envelope — ``token``, ``team_id``, ``api_app_id``, ``event``,
  ``type``, ``event_id``, ``event_time``, ``authorizations`` — around the event
  ``{"type": "app_home_opened", "user", "channel", "tab": "home", "event_ts",
  "view"}``; ``view`` only "if they opened a Home tab and that tab has had a view
  published at least once before".
* Signed like every request from Slack: ``X-Slack-Request-Timestamp`` and
  ``X-Slack-Signature: v0=HMAC-SHA256(signing_secret, "v0:{timestamp}:{body}")``
  (https://api.slack.com/authentication/verifying-requests-from-slack).
* Slack waits 3 seconds for a 2xx; otherwise it retries, with ``X-Slack-Retry-Num``
  and ``X-Slack-Retry-Reason`` (:meth:`HomeTab.deliver` with ``retry``).
* In Socket Mode the same envelope arrives as an ``events_api`` envelope instead.

Routes (mounted on :attr:`FakeSlack.app` by :class:`FakeSlack` itself):

* ``GET /home[?user=U…]`` — the app's Home tab for that person (plain HTML/CSS/JS).
* ``GET /_ui/home/static/{name}`` — ``home.js``.
* ``GET /_ui/home/state?user=U…`` — what the page renders, as JSON: the published
  view with every ``slack_file`` image given a ``ui_url``.
* ``POST /_ui/home/open`` — ``{user}``: the person opens the Home tab; the fake sends
  the signed ``app_home_opened`` event and answers ``{"ok", "status", "error"}``.
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from sandbox.slack.home_views import HomeState, home_state, home_view
from sandbox.slack.model import APP_ID, BOT_USER_ID, TEAM_ID, StoredView
from sandbox.slack.page import sign

if TYPE_CHECKING:
    from sandbox.slack.server import FakeSlack

__all__ = ["EventDelivery", "HomeTab"]

STATIC = {"home.js": "application/javascript"}


@dataclass
class EventDelivery:
    """One Events API request the fake sent to the app."""

    event_id: str
    url: str
    body: dict[str, Any]
    retry_num: int | None
    status: int | None
    response: str
    error: str | None
    at: datetime


class HomeTab:
    """The Home tab: ``app_home_opened`` events and the page; one per :class:`FakeSlack`."""

    def __init__(self, slack: FakeSlack) -> None:
        self.slack = slack
        #: where events go (default: the interactivity URL, as bolt serves both)
        self.events_url: str | None = None
        self.deliveries: list[EventDelivery] = []
        self.delivery_timeout = 3.0
        router = slack.app.router
        router.add_get("/home", self._page)
        router.add_get("/_ui/home/static/{name}", self._static)
        router.add_get("/_ui/home/state", self._state)
        router.add_post("/_ui/home/open", self._open)

    @property
    def state(self) -> HomeState:
        return home_state(self.slack.ws)

    @property
    def enabled(self) -> bool:
        """Whether the app has its Home tab on (``views.publish`` answers
        ``not_enabled`` otherwise)."""
        return self.state.enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.state.enabled = value

    def view(self, user: str) -> StoredView | None:
        """What ``user``'s Home tab shows (the last published view)."""
        return home_view(self.slack.ws, user)

    # ------------------------------------------------------------------ the event

    def event(self, user: str, tab: str = "home") -> dict[str, Any]:
        """The ``event_callback`` body of ``user`` opening the App Home's ``tab``."""
        if user not in self.slack.ws.users:
            raise KeyError(f"no user {user}")
        now = self.slack.clock.now()
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user,
            "channel": "D" + user[1:],
            "tab": tab,
            "event_ts": self.slack.ws.next_ts(),
        }
        stored = self.view(user)
        if tab == "home" and stored is not None:
            event["view"] = {**stored.to_api(), "app_installed_team_id": TEAM_ID}
        return {
            "token": self.slack.verification_token,
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": self.slack.ws.next_id("Ev"),
            "event_time": int(now.timestamp()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    async def open(self, user: str, tab: str = "home") -> EventDelivery:
        """``user`` opens the App Home: Slack sends ``app_home_opened``."""
        return await self.deliver(self.event(user, tab))

    async def deliver(self, body: dict[str, Any], *, retry: int | None = None) -> EventDelivery:
        """Send an Events API body to the app (``retry``: as Slack's n-th retry of it)."""
        event_id = str(body.get("event_id", ""))
        if self.slack.socket.connected:
            return await self._deliver_socket(event_id, body, retry)
        url = self.events_url or self.slack.interactivity_url
        if url is None:
            raise ConnectionError("the app has no Request URL for events")
        raw = json.dumps(body).encode()
        timestamp = str(int(self.slack.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(self.slack.signing_secret, timestamp, raw),
        }
        if retry is not None:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        status: int | None = None
        text, error = "", None
        timeout = aiohttp.ClientTimeout(total=self.delivery_timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(url, data=raw, headers=headers) as response,
            ):
                status = response.status
                text = await response.text()
        except TimeoutError:
            error = "operation_timeout"
        except aiohttp.ClientError:
            error = "dispatch_failed"
        if error is None and status is not None and not 200 <= status < 300:
            error = f"http_error_{status}"
        return self._record(event_id, url, body, retry, status, text, error)

    async def _deliver_socket(
        self, event_id: str, body: dict[str, Any], retry: int | None
    ) -> EventDelivery:
        status: int | None = None
        error = None
        try:
            async with asyncio.timeout(self.delivery_timeout):
                await self.slack.socket.request("events_api", body)
        except TimeoutError:
            error = "operation_timeout"
        except ConnectionError:
            error = "dispatch_failed"
        else:
            status = 200
        url = f"{self.slack.base_url}/link/"
        return self._record(event_id, url, body, retry, status, "", error)

    def _record(
        self,
        event_id: str,
        url: str,
        body: dict[str, Any],
        retry: int | None,
        status: int | None,
        text: str,
        error: str | None,
    ) -> EventDelivery:
        delivery = EventDelivery(
            event_id, url, body, retry, status, text, error, self.slack.clock.now()
        )
        self.deliveries.append(delivery)
        return delivery

    # ------------------------------------------------------------------ the page

    def state_json(self, user: str) -> dict[str, Any]:
        """What the page renders for ``user``."""
        stored = self.view(user)
        view: dict[str, Any] | None = None
        if stored is not None:
            blocks = copy.deepcopy(stored.view.get("blocks") or [])
            for block in blocks:
                slack_file = block.get("slack_file") if isinstance(block, dict) else None
                if isinstance(slack_file, dict):
                    file = self.slack.ws.files.get(str(slack_file.get("id", "")))
                    if file is not None:
                        block["ui_url"] = f"/_ui/files/{file.id}/{file.filename}"
            view = {"id": stored.id, "hash": stored.hash, "blocks": blocks}
        users = {
            u.id: {"id": u.id, "name": u.name, "real_name": u.real_name, "is_bot": u.is_bot}
            for u in self.slack.ws.users.values()
        }
        last = next((d for d in reversed(self.deliveries) if _user_of(d) == user), None)
        return {
            "version": self.slack.page.version,
            "user": user,
            "users": users,
            "channels": [
                {"id": c.id, "name": c.name} for c in self.slack.channels.values() if not c.is_im
            ],
            "enabled": self.enabled,
            "view": view,
            "last_event": None if last is None else {"status": last.status, "error": last.error},
        }

    async def _page(self, request: web.Request) -> web.StreamResponse:
        text = resources.files("sandbox.slack").joinpath("static/home.html").read_text("utf-8")
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

    async def _state(self, request: web.Request) -> web.StreamResponse:
        user = request.query.get("user", "U0OPS001")
        if user not in self.slack.ws.users:
            return web.json_response({"ok": False, "error": "user_not_found"}, status=404)
        return web.json_response(self.state_json(user))

    async def _open(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, str) or user not in self.slack.ws.users:
            return web.json_response({"ok": False, "error": "user_not_found"}, status=400)
        try:
            delivery = await self.open(user)
        except ConnectionError:
            return web.json_response(
                {"ok": False, "status": None, "error": "no_request_url"}, status=409
            )
        self.slack.changed()
        return web.json_response(
            {"ok": delivery.error is None, "status": delivery.status, "error": delivery.error}
        )


def _user_of(delivery: EventDelivery) -> str | None:
    event = delivery.body.get("event")
    return str(event.get("user")) if isinstance(event, dict) else None
