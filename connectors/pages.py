"""The many GETs of one full read, over aiohttp, answered as httpx responses.

A full read of a REST inventory API is a thousand pages at 100,000 SKUs × 5 locations.
httpx spends ~0.7 ms of CPU on each (its request and response models, httpcore, h11
and anyio), aiohttp with its C parser ~0.13 ms: a later read of the WMS took 1.8–1.9 s
instead of 2.3–2.5 s of CPU (BENCHMARKS.md, issue 16). :func:`page_session` opens an aiohttp
session for one read that sends what the injected ``httpx.AsyncClient`` would send (its
headers and timeouts, its TLS context, the URL as httpx writes it) and hands back
``httpx.Response`` objects, decoded by httpx as it decodes its own, and httpx's
exceptions, so retries (:mod:`connectors.http`) and parsing stay one code path.

It does so only for a client that is plain: its own HTTP/1.1 transport to the URL, no
proxy, no event hooks, no auth, no cookies, no redirects followed. Any other client
(a test's transport or hooks, a proxy from the environment) sends the read itself.
Hand-written: httpx-aiohttp's transport keeps httpx's models and saved a fifth of this.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import aiohttp
import httpcore
import httpx
from yarl import URL

#: one GET: (url, headers) -> the response
Get = Callable[[httpx.URL, Mapping[str, str]], Awaitable[httpx.Response]]


@asynccontextmanager
async def page_session(client: httpx.AsyncClient, url: str) -> AsyncIterator[Get]:
    """A GET for one read's pages: over aiohttp to ``url``'s origin where ``client`` is
    plain for it, else (and to any other origin) ``client.get``. The aiohttp session is
    closed when the read ends."""

    async def through_client(url: httpx.URL, headers: Mapping[str, str]) -> httpx.Response:
        return await client.get(url, headers=headers)

    origin = httpx.URL(url)
    tls = _plain_tls(client, origin)
    if tls is None:
        yield through_client
        return
    timeout = client.timeout
    async with aiohttp.ClientSession(
        headers=dict(client.headers.multi_items()),
        timeout=aiohttp.ClientTimeout(sock_connect=timeout.connect, sock_read=timeout.read),
        # the body as sent: httpx decodes it (what it accepts is what it asked for)
        auto_decompress=False,
        connector=aiohttp.TCPConnector(ssl=tls),
        trust_env=False,  # no proxy applies: _plain_tls asked httpx
    ) as session:

        async def over_aiohttp(target: httpx.URL, headers: Mapping[str, str]) -> httpx.Response:
            # the URL as httpx parsed it is what it writes on the wire
            if (target.scheme, target.host, target.port) != (
                origin.scheme,
                origin.host,
                origin.port,
            ):  # a next link elsewhere: the client's own settings for it
                return await through_client(target, headers)
            request = httpx.Request("GET", target, headers=headers)
            try:
                async with session.get(
                    URL(str(target), encoded=True), headers=headers, allow_redirects=False
                ) as answer:
                    body = await answer.read()
                    status, raw, reason = answer.status, answer.raw_headers, answer.reason
            except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
                raise httpx.ReadTimeout(f"timed out: {exc}", request=request) from exc
            except aiohttp.ClientConnectorError as exc:
                raise httpx.ConnectError(str(exc), request=request) from exc
            except aiohttp.ClientError as exc:
                raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
            return httpx.Response(
                status,
                headers=list(raw),
                content=body,
                request=request,
                # as httpcore gives them (no network stream: aiohttp keeps its connection)
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": (reason or "").encode()},
            )

        yield over_aiohttp


def _plain_tls(client: httpx.AsyncClient, url: httpx.URL) -> ssl.SSLContext | bool | None:
    """What aiohttp is to use for TLS to ``url`` as ``client`` would (its TLS context for
    https, True for http: none used), or None where the client is not plain for it.
    Reads httpx's and httpcore's private attributes (pinned by pyproject;
    tests/connectors/test_pages.py fails if they move)."""
    if (
        client.follow_redirects
        or client.auth is not None
        or client.cookies
        or client.params
        or any(client.event_hooks.values())
        or url.scheme not in ("http", "https")
    ):
        return None
    transport = client._transport_for_url(url)
    if type(transport) is not httpx.AsyncHTTPTransport:
        return None
    pool = getattr(transport, "_pool", None)
    if (
        type(pool) is not httpcore.AsyncConnectionPool
        or getattr(pool, "_proxy", True) is not None
        or getattr(pool, "_http2", True)
        or getattr(pool, "_uds", True) is not None
        or getattr(pool, "_local_address", True) is not None
        or getattr(pool, "_socket_options", True) is not None
    ):
        return None
    if url.scheme == "http":
        return True
    context = getattr(pool, "_ssl_context", None)
    return context if isinstance(context, ssl.SSLContext) else None
