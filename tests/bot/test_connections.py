"""The connection limit in front of aiohttp, on real loopback sockets: the oldest
connection still waiting for its request makes room; when every connection is being
answered, a newcomer is told 503 and closed."""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.service.connections import MAX_CONNECTIONS, ConnectionLimit, default_limit


class Rig:
    def __init__(self, limit: ConnectionLimit, port: int, release: asyncio.Event) -> None:
        self.limit, self.port, self.release = limit, port, release
        self.entered = asyncio.Queue[None]()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    limit = ConnectionLimit(3)
    release = asyncio.Event()
    holder: list[Rig] = []

    async def held(request: web.Request) -> web.Response:
        holder[0].entered.put_nowait(None)
        await release.wait()
        return web.Response(text="done")

    app = web.Application(middlewares=[limit.middleware])
    app.router.add_get("/held", held)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    assert runner.server is not None
    limit.attach(runner.server)
    server = await asyncio.get_running_loop().create_server(limit, "127.0.0.1", 0)
    holder.append(Rig(limit, server.sockets[0].getsockname()[1], release))
    try:
        yield holder[0]
    finally:
        release.set()
        server.close()
        await runner.cleanup()
        await server.wait_closed()


async def _request(rig: Rig) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await rig.connect()
    writer.write(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    return reader, writer


async def test_a_waiting_connection_makes_room_and_busy_ones_are_kept(rig: Rig) -> None:
    idle_reader, idle_writer = await rig.connect()  # says nothing
    busy = [await _request(rig) for _ in range(2)]
    for _ in busy:
        await rig.entered.get()  # both are being answered
    newcomer = await _request(rig)  # over the limit: the idle one makes room
    await rig.entered.get()
    assert await idle_reader.read() == b""
    assert rig.limit.evicted == 1
    # now all three are being answered: a fourth is refused, the three are kept
    refused_reader, refused_writer = await rig.connect()
    assert (await refused_reader.read()).startswith(b"HTTP/1.1 503")
    assert rig.limit.refused == 1
    rig.release.set()
    for reader, writer in [*busy, newcomer]:
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
    for writer in (idle_writer, refused_writer):
        writer.close()


def test_the_default_limit_leaves_descriptors_for_everything_else() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 16 <= default_limit() <= MAX_CONNECTIONS
    if soft != resource.RLIM_INFINITY:
        assert default_limit() <= max(16, soft // 2)
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionLimit(0)
