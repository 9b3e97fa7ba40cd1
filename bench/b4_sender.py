"""B4's load generator in a process of its own: ``python -m bench.b4_sender``.

It reads one JSON job per line on stdin — ``{"url": ..., "secret": ..., "bodies":
[...]}`` — signs each body as Slack does, posts them all at once to ``url`` +
``/slack/events``, and answers with one JSON line: ``{"acks": [[seconds, status],
...]}``, each the time from opening its connection to reading its whole answer. An empty
line (or end of input) stops it. The bot under test keeps its event loop and its CPU
to itself.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

from slack_sdk.signature import SignatureVerifier


def _request(url: str, verifier: SignatureVerifier, body: str) -> bytes:
    """The whole HTTP/1.1 request Slack would send for ``body``, signed now."""
    parts = urlsplit(url)
    ts = str(int(time.time()))
    data = body.encode()
    head = (
        f"POST /slack/events HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"X-Slack-Request-Timestamp: {ts}\r\n"
        f"X-Slack-Signature: {verifier.generate_signature(timestamp=ts, body=body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + data


async def _post(host: str, port: int, request: bytes) -> tuple[float, int]:
    """One request on a connection of its own: the time from connecting until the whole
    answer is read, and its status. Plain asyncio streams, so the sender's own work per
    request is a connect, one write and reads (an HTTP client library's is ten times
    that, and it is spent in the measured window)."""
    start = time.perf_counter()
    async with asyncio.timeout(60):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            answer = await reader.read()  # the bot closes the connection after answering
        finally:
            writer.close()
    elapsed = time.perf_counter() - start
    status_line = answer.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) >= 2 and status_line[1].isdigit() else 0
    return elapsed, status


async def _job(job: dict[str, object]) -> list[tuple[float, int]]:
    url = str(job["url"])
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"B4 sender: no host and port in {url!r}")
    verifier = SignatureVerifier(str(job["secret"]))
    # signed before the clock starts: signing is the sender's work, not the bot's
    requests = [_request(url, verifier, str(b)) for b in job["bodies"]]  # type: ignore[attr-defined]
    return list(await asyncio.gather(*(_post(parts.hostname, parts.port, r) for r in requests)))


async def main() -> None:
    while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
        acks = await _job(json.loads(line))
        print(json.dumps({"acks": acks}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
