"""B4's load generator in a process of its own: ``python -m bench.b4_sender``.

It reads one JSON job per line on stdin — ``{"url": ..., "secret": ..., "bodies":
[...]}`` — signs each body as Slack does, posts them all at once to ``url`` +
``/slack/events``, and answers with one JSON line: ``{"acks": [[seconds, status],
...]}``, each the time from sending the request to reading its whole answer. An empty
line (or end of input) stops it. The bot under test keeps its event loop and its CPU
to itself.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
from slack_sdk.signature import SignatureVerifier


async def _post(
    http: aiohttp.ClientSession, url: str, verifier: SignatureVerifier, body: str
) -> tuple[float, int]:
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": str(verifier.generate_signature(timestamp=ts, body=body)),
    }
    data = body.encode()
    start = time.perf_counter()
    async with http.post(f"{url}/slack/events", data=data, headers=headers) as response:
        await response.read()
        return time.perf_counter() - start, response.status


async def _job(job: dict[str, object]) -> list[tuple[float, int]]:
    bodies = [str(b) for b in job["bodies"]]  # type: ignore[attr-defined]
    verifier = SignatureVerifier(str(job["secret"]))
    connector = aiohttp.TCPConnector(limit=len(bodies) + 10)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        return list(
            await asyncio.gather(*(_post(http, str(job["url"]), verifier, b) for b in bodies))
        )


async def main() -> None:
    while line := (await asyncio.to_thread(sys.stdin.readline)).strip():
        acks = await _job(json.loads(line))
        print(json.dumps({"acks": acks}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
