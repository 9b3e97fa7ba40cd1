"""The bolt ``AsyncApp``: Driftwatch's Slack commands, buttons and modals, served at
``POST /slack/events`` by the Service's aiohttp server.

Requests are verified with the signing secret (v0 HMAC, 5-minute window) before bolt
parses them, and again by bolt's own middleware. ``process_before_response`` is on:
each listener acks at once and hands the slow work to the Service's tracked tasks, so
the HTTP answer leaves within Slack's 3 seconds and shutdown still waits for a resync
in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.slack.deps import BotDeps
from bot.slack.home import register_home
from bot.slack.listeners import register
from bot.slack.listeners.adjust import register_adjust
from bot.slack.listeners.verdicts import register_verdicts
from bot.slack.middleware.audit import audit_interactions
from bot.slack.middleware.authorize import Writers
from connectors.safejson import UnsafeJSON, loads_bounded

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
MALFORMED = (ValueError, TypeError, AttributeError, KeyError, RecursionError)
#: Slack's requests are small; anything larger is refused (413) before it is read.
MAX_BODY_BYTES = 1 << 20
#: A request timestamp has at most this many digits (Unix seconds until year 33658):
#: ``int()`` of a 5,000-digit one raises instead of answering.
MAX_TIMESTAMP_DIGITS = 12


class _TooLarge(Exception):
    pass


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes (:class:`_TooLarge` above it)."""
    if request.content_length is not None and request.content_length > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _signed(verifier: SignatureVerifier, body: str, timestamp: str, signature: str) -> bool:
    """Whether Slack signed ``body``; any header Slack would never send is False
    (``SignatureVerifier`` raises on a huge or non-numeric timestamp and on a
    non-ASCII signature)."""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        return False
    if not signature.isascii():
        return False
    return bool(verifier.is_valid(body, timestamp, signature))


def _payload_problem(body: str, content_type: str) -> str | None:
    """Why bolt could not read this signed body (it parses JSON without a depth limit,
    so a body nested 100,000 levels would end in ``RecursionError``); None if it can."""
    text: str | None = None
    if content_type == "application/json" or body.lstrip().startswith("{"):
        text = body
    else:
        # A slash command's form has no payload field: not parsed a second time here
        # (bolt parses it), unless a key is encoded and might decode to "payload".
        keys = [field.partition("=")[0] for field in body.split("&")]
        if "payload" not in keys and not any("%" in k or "+" in k for k in keys):
            return None
        payload = parse_qs(body).get("payload")
        text = payload[0] if payload else None
    if text is None:
        return None
    try:
        loads_bounded(text)
    except UnsafeJSON as exc:
        return str(exc)
    return None


def events_handler(
    app: AsyncApp,
    signing_secret: str,
    *,
    read_timeout: float = 10.0,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for ``POST /slack/events``.

    The body is read raw, within ``read_timeout`` (408) and ``max_body_bytes`` (413),
    and must be UTF-8 (400), whatever charset the request claims. The signature is
    checked on it before bolt parses it (bolt checks it again): bolt builds its
    request, parsing JSON and form data, before its own check, so an unsigned malformed
    body would escape as a 500. Unsigned, stale, or with headers Slack never sends:
    401. Signed but not a payload bolt can read (not JSON, nested too deep): 400.
    Neither reaches a listener."""
    verifier = SignatureVerifier(signing_secret)

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            async with asyncio.timeout(read_timeout):
                raw = await _read_body(request, max_body_bytes)
        except _TooLarge:
            return web.json_response({"error": "request too large"}, status=413)
        except TimeoutError:
            return web.json_response({"error": "request body not received in time"}, status=408)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return web.json_response({"error": "body is not UTF-8"}, status=400)
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not _signed(verifier, body, timestamp, signature):
            return web.json_response({"error": "invalid request"}, status=401)
        problem = _payload_problem(body, request.content_type)
        if problem is not None:
            log.warning("malformed Slack request refused: %s", problem)
            return web.json_response({"error": "malformed request"}, status=400)
        try:
            bolt_request = AsyncBoltRequest(
                body=body,
                query=request.query_string,
                headers={k: request.headers.getall(k) for k in set(request.headers)},
            )
            bolt_response = await app.async_dispatch(bolt_request)
        except MALFORMED as exc:
            log.warning("malformed Slack request refused: %s", type(exc).__name__)
            return web.json_response({"error": "malformed request"}, status=400)
        return await to_aiohttp_response(bolt_response)

    return handle
