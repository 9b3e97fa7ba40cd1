"""Socket Mode: the bolt app reached over a WebSocket Slack hands out, for teams without
a public URL. On when ``SLACK_APP_TOKEN`` (config ``slack.app_token_env``) is set.

slack_bolt's aiohttp-based ``AsyncSocketModeHandler`` does the protocol (hello,
envelopes, acks, pings, reconnects on ``disconnect``); this module starts and stops it
with the Service. Envelopes dispatch through the same ``AsyncApp`` as ``/slack/events``
(bolt skips signature checks for them: the socket is authenticated by the app token).

The first ``apps.connections.open`` is made here, before connecting, so that a wrong
token stops the start with a clear error instead of the SDK's endless retry loop.
"""

from __future__ import annotations

import asyncio
import logging

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

#: how long start() waits for the first WebSocket session before going on without it
FIRST_CONNECT_SECONDS = 10.0

log = logging.getLogger("driftwatch.socket_mode")

#: errors of ``apps.connections.open`` that no retry fixes
REFUSALS = frozenset({"invalid_auth", "not_authed", "not_allowed_token_type", "account_inactive"})


class SocketModeError(RuntimeError):
    """Slack refused the app-level token (the message names the error, never the token)."""


class SocketMode:
    """Connects the bolt app to Slack over Socket Mode and disconnects it."""

    def __init__(self, app: AsyncApp, app_token: str, *, ping_interval: float = 10.0) -> None:
        self._app = app
        self._token = app_token
        self._ping_interval = ping_interval
        self._handler: AsyncSocketModeHandler | None = None
        self._connecting: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._handler is not None and self._handler.client.current_session is not None

    async def start(self) -> None:
        """Open the first connection; :class:`SocketModeError` if the token is refused.

        A network failure is not fatal: the SDK keeps trying in the background."""
        handler = AsyncSocketModeHandler(
            self._app,
            self._token,
            logger=logging.getLogger("driftwatch.socket_mode.sdk"),
            ping_interval=self._ping_interval,
        )
        self._handler = handler
        try:
            handler.client.wss_uri = await handler.client.issue_new_wss_url()
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            if error in REFUSALS:
                await handler.close_async()  # type: ignore[no-untyped-call]
                self._handler = None
                raise SocketModeError(
                    f"Slack refused the app-level token for Socket Mode ({error}); "
                    "check SLACK_APP_TOKEN (an xapp- token with connections:write)"
                ) from None
            log.warning("apps.connections.open failed (%s); retrying in the background", error)
        except Exception as exc:  # network: the SDK's connect loop retries
            log.warning("Slack unreachable for Socket Mode (%s); retrying", type(exc).__name__)
        self._connecting = asyncio.create_task(
            handler.connect_async(),  # type: ignore[no-untyped-call]
            name="driftwatch:socket-mode",
        )
        if handler.client.wss_uri is not None:
            # the first session, but never for long: a proxy that blocks wss would keep
            # the SDK's connect loop going forever and hold up the web server and jobs
            done, _ = await asyncio.wait({self._connecting}, timeout=FIRST_CONNECT_SECONDS)
            if not done:
                log.warning("Socket Mode is still connecting; continuing in the background")
        log.info("Socket Mode: %s", "connected" if self.connected else "connecting")

    async def stop(self) -> None:
        """Close the connection (envelopes being handled finish as the Service's tasks)."""
        handler, self._handler = self._handler, None
        if handler is None:
            return
        await handler.close_async()  # type: ignore[no-untyped-call]
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
            await asyncio.gather(self._connecting, return_exceptions=True)
