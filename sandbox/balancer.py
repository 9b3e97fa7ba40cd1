"""A round-robin TCP balancer on loopback, as a load balancer in front of replicas.

Each accepted connection goes to the next backend in turn; a backend that refuses the
connection (a killed replica) is skipped for that connection, so a client sees an
error only when every backend refuses. Bytes are copied both ways unchanged, so
HTTP keep-alive stays on one backend for the life of the connection, as with any
layer-4 balancer. Backends can be replaced while running (:meth:`Balancer.set_backends`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter


class Balancer:
    """``await Balancer().start()`` → its port; :meth:`set_backends` says where to."""

    def __init__(self, backends: list[tuple[str, int]] | None = None) -> None:
        self._backends: list[tuple[str, int]] = list(backends or [])
        self._turn = itertools.count()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: connections handed to each backend ("host:port" -> count)
        self.connections: Counter[str] = Counter()
        #: connections no backend accepted
        self.refused = 0
        self.port = 0

    def set_backends(self, backends: list[tuple[str, int]]) -> None:
        self._backends = list(backends)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, host, port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            upstream = await self._connect()
            if upstream is None:
                self.refused += 1
                return
            up_reader, up_writer = upstream
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        backends = list(self._backends)
        if not backends:
            return None
        start = next(self._turn)
        for offset in range(len(backends)):
            host, port = backends[(start + offset) % len(backends)]
            try:
                pair = await asyncio.open_connection(host, port)
            except OSError:
                continue
            self.connections[f"{host}:{port}"] += 1
            return pair
        return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
