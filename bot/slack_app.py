"""The bolt ``AsyncApp``: Driftwatch's Slack commands, buttons and modals, served at
``POST /slack/events`` by the Service's aiohttp server.

Requests are verified with the signing secret (v0 HMAC, 5-minute window) before bolt
parses them, and again by bolt's own middleware. ``process_before_response`` is on:
each listener acks at once and hands the slow work to the Service's tracked tasks, so
the HTTP answer leaves within Slack's 3 seconds and shutdown still waits for a resync
in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier

from bot.home import register_home
from bot.listeners import register
from bot.listeners.adjust import register_adjust
from bot.listeners.verdicts import register_verdicts
from bot.middleware.audit import audit_interactions
from bot.middleware.authorize import Writers
from bot.slack_deps import BotDeps
from connectors.normalize import is_whole_number

log = logging.getLogger("driftwatch.slack")

EVENTS_PATH = "/slack/events"


def build_slack_app(deps: BotDeps, signing_secret: str) -> AsyncApp:
    """The app, talking to Slack through ``deps.client`` (the fake Slack in tests)."""
    app = AsyncApp(
        name="driftwatch",
        client=deps.client,
        signing_secret=signing_secret,
        request_verification_enabled=True,
        process_before_response=True,
        logger=logging.getLogger("driftwatch.slack.bolt"),
    )
    app.use(audit_interactions(deps))
    writers = Writers(deps.config.slack.writers, deps.client, deps.clock)
    register(app, deps, writers)
    register_adjust(app, deps, writers)
    register_verdicts(app, deps, writers)
    register_home(app, deps)
    return app


#: What a malformed body makes bolt raise while it parses the request
MALFORMED = (ValueError, TypeError, AttributeError, KeyError)


def events_handler(
    app: AsyncApp, signing_secret: str
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for ``POST /slack/events``.

    The signature is checked here on the raw body before bolt parses it (bolt checks it
    again): bolt builds its request, parsing JSON and form data, before its own check,
    so an unsigned malformed body would escape as a 500. Unsigned or stale: 401. Signed
    but not a payload bolt can read: 400. Neither reaches a listener."""
    verifier = SignatureVerifier(signing_secret)

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.text()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not is_whole_number(timestamp) or not verifier.is_valid(body, timestamp, signature):
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            bolt_request = await to_bolt_request(request)
            bolt_response = await app.async_dispatch(bolt_request)
        except MALFORMED as exc:
            log.warning("malformed Slack request refused: %s", type(exc).__name__)
            return web.json_response({"error": "malformed request"}, status=400)
        return await to_aiohttp_response(bolt_response)

    return handle
