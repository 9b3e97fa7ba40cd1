"""Slow clients cannot starve the server (issue 13, finding G).

1,100 connections dripping their requests exhausted 1,024 file descriptors and
``/healthz`` went unanswered. These tests open real sockets to the running Service on
loopback. Nothing waits for time to pass: each waits for the server to act (an answer,
or the connection closed). Where a timeout is the subject, the Service is given a tiny
one, and the test waits for its consequence however long the machine takes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from reliability_testing import Bot, running_bot


async def _connect(bot: Bot) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(bot.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


async def _drip_head(bot: Bot) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has sent the start of a request head, and no more."""
    reader, writer = await _connect(bot)
    writer.write(b"POST /slack/events HTTP/1.1\r\nHost: driftwatch\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


async def _drip_body(bot: Bot, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has sent a whole head and the first bytes of a 4 KiB body."""
    reader, writer = await _connect(bot)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: driftwatch\r\nContent-Type: application/json\r\n"
        'Content-Length: 4096\r\n\r\n{"a":'.encode()
    )
    await writer.drain()
    return reader, writer


async def _healthz(bot: Bot) -> int:
    response = await bot.http.get(f"{bot.url}/healthz")
    return response.status_code


async def test_a_body_that_never_finishes_is_answered_408(tmp_path: Path) -> None:
    async with running_bot(tmp_path, body_timeout=0.05) as bot:
        for path in ("/slack/events", "/webhooks/shopify"):
            reader, writer = await _drip_body(bot, path)
            answer = await reader.read()  # until the server closes the connection
            writer.close()
            assert answer.startswith(b"HTTP/1.1 408"), (path, answer[:80])
        assert await _healthz(bot) == 200


async def test_a_head_that_never_finishes_is_closed(tmp_path: Path) -> None:
    async with running_bot(tmp_path, header_timeout=0.05) as bot:
        reader, writer = await _drip_head(bot)
        assert await reader.read() == b""  # closed by the server, nothing answered
        writer.close()


async def test_1100_slow_clients_cannot_take_the_server(tmp_path: Path) -> None:
    limit = 64
    async with running_bot(tmp_path, max_connections=limit) as bot:
        slow = []
        for n in range(1_100):  # half drip their head, half their body
            slow.append(await (_drip_head(bot) if n % 2 else _drip_body(bot, "/slack/events")))
            assert len(bot.service.connections.open_connections()) <= limit
        assert await _healthz(bot) == 200, "/healthz is still answered"
        assert bot.service.connections.evicted >= 1_100 - limit
        # the oldest slow connections were closed to make room: they see the end
        oldest_reader, _ = slow[0]
        assert await oldest_reader.read() == b""  # closed, never served
        # and the service still does its work: a signed command is acked
        response = await bot.post(bot.command_body("/drift", "TEE-BLK-M"))
        assert response.status_code == 200
        for _, writer in slow:
            writer.close()
