"""The many GETs of one full read, over aiohttp, answered as httpx responses.

A full read of a REST inventory API is a thousand pages at 100,000 SKUs × 5 locations.
httpx spends ~0.7 ms of CPU on each (its request and response models, httpcore, h11
and anyio), aiohttp with its C parser ~0.13 ms against a fast local server (0.6 ms
against B1's fake WMS, which takes 37 ms a page): a later read of the WMS took 1.8–1.9 s
instead of 2.3–2.5 s of CPU (BENCHMARKS.md, issue 16). :func:`page_session` opens an aiohttp
session for one read that sends what the injected ``httpx.AsyncClient`` would send (its
headers and timeouts, its TLS context, the URL as httpx writes it) and hands back
``httpx.Response`` objects, decoded by httpx as it decodes its own, and httpx's
exceptions, so retries (:mod:`connectors.http`) and parsing stay one code path.

It does so only for a client that is plain: its own HTTP/1.1 transport to the URL, no
proxy, no event hooks, no auth, no cookies, no redirects followed. Any other client
(a test's transport or hooks, a proxy from the environment) sends the read itself.
Hand-written: httpx-aiohttp's transport keeps httpx's models and saved a fifth of this.

:func:`streamed` does the same for one long download (Shopify's bulk result file, 280 MB
at 100,000 SKUs): the body comes over aiohttp as it arrives, handed to an
``httpx.Response`` as its stream, so httpx decodes it (gzip and the rest) and the caller
reads it with ``aiter_bytes`` as from the client. Receiving that file cost 0.35-0.58 s of
CPU through httpx, 0.11-0.31 s this way (BENCHMARKS.md, issue 16).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

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
    async with _session(client, tls) as session:

        async def over_aiohttp(target: httpx.URL, headers: Mapping[str, str]) -> httpx.Response:
            # the URL as httpx parsed it is what it writes on the wire
            if (target.scheme, target.host, target.port) != (
                origin.scheme,
                origin.host,
                origin.port,
            ):  # a next link elsewhere: the client's own settings for it
                return await through_client(target, headers)
            request = httpx.Request("GET", target, headers=headers)
            with _as_httpx_errors(request):
                async with session.get(
                    URL(str(target), encoded=True), headers=headers, allow_redirects=False
                ) as answer:
                    body = await answer.read()
            return _response(answer, request, content=body)

        yield over_aiohttp


@asynccontextmanager
async def streamed(
    client: httpx.AsyncClient, url: httpx.URL, headers: Mapping[str, str] | None = None
) -> AsyncIterator[httpx.Response]:
    """``client.stream("GET", url)``: the response, its body not read yet (read it with
    ``aiter_bytes``, as it arrives). Over aiohttp where ``client`` is plain for ``url``,
    as :func:`page_session` says; errors while the body arrives are httpx's too."""
    tls = _plain_tls(client, url)
    if tls is None:
        async with client.stream("GET", url, headers=headers) as response:
            yield response
        return
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(_session(client, tls))
        request = httpx.Request("GET", url, headers=headers)
        with _as_httpx_errors(request):
            answer = await stack.enter_async_context(
                session.get(
                    URL(str(url), encoded=True), headers=headers or {}, allow_redirects=False
                )
            )
        yield _response(answer, request, stream=_Body(answer, request))


class _Body(httpx.AsyncByteStream):
    """An aiohttp response's body, as it arrives, as httpx reads a stream."""

    def __init__(self, answer: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._answer, self._request = answer, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for piece in self._answer.content.iter_any():
                yield piece

    async def aclose(self) -> None:
        self._answer.release()


def _session(client: httpx.AsyncClient, tls: ssl.SSLContext | bool) -> aiohttp.ClientSession:
    """An aiohttp session that sends what ``client`` would: its headers, timeouts and
    TLS context."""
    timeout = client.timeout
    return aiohttp.ClientSession(
        headers=dict(client.headers.multi_items()),
        timeout=aiohttp.ClientTimeout(sock_connect=timeout.connect, sock_read=timeout.read),
        # the body as sent: httpx decodes it (what it accepts is what it asked for)
        auto_decompress=False,
        connector=aiohttp.TCPConnector(ssl=tls),
        trust_env=False,  # no proxy applies: _plain_tls asked httpx
    )


@contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    """aiohttp's errors raised as the httpx errors the client would raise."""
    try:
        yield
    except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
        raise httpx.ReadTimeout(f"timed out: {exc}", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc


def _response(
    answer: aiohttp.ClientResponse,
    request: httpx.Request,
    *,
    content: bytes | None = None,
    stream: httpx.AsyncByteStream | None = None,
) -> httpx.Response:
    return httpx.Response(
        answer.status,
        headers=list(answer.raw_headers),
        content=content,
        stream=stream,
        request=request,
        # as httpcore gives them (no network stream: aiohttp keeps its connection)
        extensions={
            "http_version": b"HTTP/1.1",
            "reason_phrase": (answer.reason or "").encode(),
        },
    )


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
