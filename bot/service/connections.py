"""How many connections the web server holds open, and for how long a slow one may wait.

aiohttp by itself keeps a connection that has not finished sending its request for as
long as its keep-alive timeout (an hour by default) and accepts connections until the
process runs out of file descriptors: 1,100 clients dripping their requests a byte at a
time exhausted 1,024 descriptors, and ``/healthz`` went unanswered. Here:

* :class:`ConnectionLimit` is the listener's protocol factory. At most ``limit``
  connections are open; a new one beyond that closes the *oldest connection still
  waiting for its request* — no request yet, between requests, or a request whose body
  has not all arrived — so a flood of slow clients evicts its own oldest members, never
  a request being answered. If every open connection is being answered, the newcomer
  is told 503 and closed.
* The idle/header deadline is aiohttp's ``keepalive_timeout`` (see
  :data:`HEADER_TIMEOUT_SECONDS`), which counts from the connection (or the previous
  answer) and does not restart when another byte trickles in. Request *bodies* are read
  with their own timeout by the handlers that read them.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable, Callable

from aiohttp import web

#: Seconds a connection may take to send a complete request head (from when it opened
#: or was last answered) before it is closed.
HEADER_TIMEOUT_SECONDS = 30.0
#: Seconds a request body may take to arrive before the handler answers 408.
BODY_TIMEOUT_SECONDS = 10.0
#: The most connections held open, whatever the descriptor limit allows.
MAX_CONNECTIONS = 1024

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nbusy\n"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def default_limit() -> int:
    """Half the process's file descriptors (the rest are the database, the HTTP clients
    and the logs), at most :data:`MAX_CONNECTIONS`, at least 16."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft // 2))


class _Refuse(asyncio.Protocol):
    """Answers 503 and closes: every open connection is busy being answered."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(_BUSY)
        transport.close()


class ConnectionLimit:
    """The protocol factory for ``loop.create_server``: aiohttp's server behind a cap on
    open connections. Add :attr:`middleware` to the application (it tells which
    connections are answering a request) and :meth:`attach` the runner's server."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit if limit is not None else default_limit()
        if self.limit < 1:
            raise ValueError("the connection limit must be at least 1")
        self._server: web.Server | None = None
        self._answering: dict[web.RequestHandler, web.BaseRequest] = {}
        #: connections closed to make room, and connections refused (all busy)
        self.evicted = 0
        self.refused = 0

    def attach(self, server: web.Server) -> None:
        self._server = server

    def open_connections(self) -> list[web.RequestHandler]:
        """The connections open now, oldest first."""
        if self._server is None:
            return []
        return [
            h
            for h in self._server.connections
            if h.transport is not None and not h.transport.is_closing()
        ]

    def __call__(self) -> asyncio.BaseProtocol:
        if self._server is None:
            raise RuntimeError("ConnectionLimit.attach() the server before listening")
        open_now = self.open_connections()
        if len(open_now) >= self.limit:
            waiting = next((h for h in open_now if self._waiting(h)), None)
            if waiting is None:
                self.refused += 1
                return _Refuse()
            waiting.force_close()
            self.evicted += 1
        return self._server()

    def _waiting(self, handler: web.RequestHandler) -> bool:
        request = self._answering.get(handler)
        return request is None or not request.content.is_eof()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        self._answering[protocol] = request
        try:
            return await handler(request)
        finally:
            if self._answering.get(protocol) is request:
                del self._answering[protocol]
