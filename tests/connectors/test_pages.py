"""A full read's pages and a long download over aiohttp (connectors.pages): on the wire
what httpx sends, back what httpx would answer, httpx's errors, and the client itself
where it is not plain. The server is a few lines of asyncio on loopback that records each
request's bytes and answers from a script."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from connectors.pages import page_session, streamed

#: what the server does for a request: the bytes to answer, or "hang" / "cut", or the
#: answer in parts, an event between two parts waited for, "hang" or "close" ending it
Script = Callable[[bytes], bytes | str | list[bytes | asyncio.Event | str]]


def answer(
    status: int, body: bytes, headers: dict[str, str] | None = None, reason: str = "OK"
) -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def ok_json(_: bytes) -> bytes:
    return answer(200, b'{"items": []}', {"Content-Type": "application/json"})


@asynccontextmanager
async def server(script: Script) -> AsyncIterator[tuple[str, list[bytes]]]:
    """An HTTP/1.1 server on 127.0.0.1, port 0: its base URL and the request heads it
    got (keep-alive: many requests a connection)."""
    heads: list[bytes] = []
    serving: set[asyncio.Task[Any]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        serving.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                heads.append(head)
                out = script(head)
                if isinstance(out, list):
                    for part in out:
                        if isinstance(part, asyncio.Event):
                            await part.wait()
                        elif part == "hang":
                            await asyncio.Event().wait()
                        elif part == "close":
                            return
                        else:
                            assert isinstance(part, bytes)
                            writer.write(part)
                            await writer.drain()
                    continue
                if out == "hang":
                    await asyncio.Event().wait()
                if out == "cut":  # headers promise 1,000 bytes; 10 come, then the close
                    writer.write(answer(200, b"x" * 1000)[:-990])
                    await writer.drain()
                    return
                assert isinstance(out, bytes)
                writer.write(out)
                await writer.drain()
        finally:
            writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        listening.close()
        for task in serving:  # a hanging answer, a kept-alive connection
            task.cancel()
        await asyncio.gather(*serving, return_exceptions=True)
        await listening.wait_closed()


def request_line_and_headers(head: bytes) -> tuple[str, set[tuple[str, str]]]:
    line, *rest = head.decode("latin-1").strip().split("\r\n")
    pairs = {
        (name.strip().lower(), value.strip()) for name, value in (h.split(":", 1) for h in rest)
    }
    return line, pairs


#: URLs as a connector asks for them (a next link, its query merged with parameters,
#: hostile SKUs in a filter): the bytes on the wire are httpx's for each
HOSTILE = [
    "/api/v1/inventory?page=2&per_page=500",
    "/api/v1/inventory?cursor=a%2Fb%2Bc%3D%3D&x=1",
    str(httpx.URL("/api/v1/inventory?cursor=a%2Fb&w=3").copy_merge_params({"per_page": 500})),
    str(httpx.URL("/caf%C3%A9 bar/é").copy_merge_params({"sku": "A B,C&D=é+<x>", "e": "%zz"})),
    "/api/v1/inventory?q=a b&r=é&s=%2",
]


async def test_a_plain_clients_pages_go_on_the_wire_as_httpx_sends_them() -> None:
    async with server(ok_json) as (base, heads), httpx.AsyncClient(timeout=60.0) as client:
        headers = {"Authorization": "Bearer s3cret", "Accept": "application/json"}
        for path in HOSTILE:
            await client.get(base + path, headers=headers)
            async with page_session(client, base + path) as get:
                response = await get(httpx.URL(base + path), headers)
            assert response.status_code == 200
            assert response.json() == {"items": []}
            assert "network_stream" not in response.extensions  # not httpcore's: aiohttp's
        assert len(heads) == 2 * len(HOSTILE)
        for by_httpx, by_pages in zip(heads[::2], heads[1::2], strict=True):
            assert request_line_and_headers(by_pages) == request_line_and_headers(by_httpx)


async def test_the_answer_is_httpx_s_own_reading_of_it_decoded_with_its_headers() -> None:
    body = json.dumps({"items": [{"sku": "SKU-1", "qty": 3}], "next": "é"}).encode()
    gz = gzip.compress(body)
    link = '<http://next.example/api?page=2&per_page=500>; rel="next"'

    def script(_: bytes) -> bytes:
        return answer(
            200,
            gz,
            {"Content-Type": "application/json", "Content-Encoding": "gzip", "Link": link},
        )

    async with server(script) as (base, _), httpx.AsyncClient(timeout=60.0) as client:
        expected = await client.get(base + "/x")
        async with page_session(client, base + "/x") as get:
            response = await get(httpx.URL(base + "/x"), {})
    assert response.content == expected.content == body
    assert response.json()["next"] == "é"
    assert response.links["next"]["url"] == "http://next.example/api?page=2&per_page=500"
    assert response.headers["content-type"] == "application/json"
    assert str(response.request.url) == base + "/x"


async def test_a_redirect_is_answered_not_followed_as_by_the_client() -> None:
    def script(_: bytes) -> bytes:
        return answer(302, b"", {"Location": "/elsewhere"}, reason="Found")

    async with (
        server(script) as (base, heads),
        httpx.AsyncClient(timeout=60.0) as client,
        page_session(client, base + "/x") as get,
    ):
        response = await get(httpx.URL(base + "/x"), {})
    assert (response.status_code, response.reason_phrase) == (302, "Found")
    assert response.headers["location"] == "/elsewhere"
    assert len(heads) == 1


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [("cut", httpx.TransportError), ("hang", httpx.TimeoutException)],
)
async def test_a_server_that_dies_or_hangs_mid_answer_raises_httpx_s_transport_errors(
    behaviour: str, error: type[Exception]
) -> None:
    # the read timeout only bounds a server that never answers: the verdict is the same
    # on any machine
    async with (
        server(lambda _: behaviour) as (base, _),
        httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=0.2)) as client,
        page_session(client, base + "/x") as get,
    ):
        with pytest.raises(error):
            await get(httpx.URL(base + "/x"), {})


async def test_a_server_that_is_down_is_a_connect_error() -> None:
    async with server(ok_json) as (base, _):
        pass  # closed: nothing listens on its port now
    async with httpx.AsyncClient(timeout=60.0) as client, page_session(client, base) as get:
        with pytest.raises(httpx.ConnectError):
            await get(httpx.URL(base + "/x"), {})


async def test_a_client_with_hooks_or_its_own_transport_sends_the_read_itself() -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    def mocked(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"from": "the client's transport"})

    async with server(ok_json) as (base, heads):
        async with (
            httpx.AsyncClient(event_hooks={"request": [hook]}) as hooked,
            page_session(hooked, base + "/x") as get,
        ):
            await get(httpx.URL(base + "/x?page=1"), {})
        assert seen == [base + "/x?page=1"]
        assert len(heads) == 1
        async with (
            httpx.AsyncClient(mounts={"http://": httpx.MockTransport(mocked)}) as mounted,
            page_session(mounted, base + "/x") as get,
        ):
            response = await get(httpx.URL(base + "/x"), {})
        assert response.json() == {"from": "the client's transport"}
        async with httpx.AsyncClient() as plain, page_session(plain, base + "/x") as get:
            response = await get(httpx.URL(base + "/x"), {})
        assert "network_stream" not in response.extensions  # aiohttp's, as the hooks saw
        assert len(heads) == 2


async def test_a_next_link_to_another_origin_goes_through_the_client() -> None:
    def elsewhere(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"at": str(request.url)})

    other = "http://cdn.example"
    async with (
        server(ok_json) as (base, heads),
        httpx.AsyncClient(mounts={other: httpx.MockTransport(elsewhere)}) as client,
        page_session(client, base + "/x") as get,
    ):
        first = await get(httpx.URL(base + "/x"), {})
        second = await get(httpx.URL(other + "/page/2?per_page=500"), {})
    assert first.json() == {"items": []}
    assert len(heads) == 1
    assert second.json() == {"at": other + "/page/2?per_page=500"}


# -- one long download (Shopify's bulk result file) --------------------------------------
async def read_into(response: httpx.Response, received: list[bytes]) -> None:
    async for piece in response.aiter_bytes():
        received.append(piece)


async def test_a_download_arrives_piece_by_piece_decoded_as_httpx_decodes_it() -> None:
    lines = b"".join(
        b'{"id":"gid://shopify/InventoryItem/%d","sku":"\xc3\xa9"}\n' % i for i in range(2000)
    )
    gz = gzip.compress(lines)
    half = len(gz) // 2
    more = asyncio.Event()
    head = answer(200, gz, {"Content-Type": "application/jsonl", "Content-Encoding": "gzip"})
    head = head[: len(head) - len(gz)]

    def script(_: bytes) -> list[bytes | asyncio.Event | str]:
        return [head + gz[:half], more, gz[half:]]

    async with server(script) as (base, heads), httpx.AsyncClient(timeout=60.0) as client:
        async with client.stream("GET", base + "/f.jsonl") as by_client:
            more.set()
            expected = b"".join([piece async for piece in by_client.aiter_bytes()])
        more.clear()
        got: list[bytes] = []
        async with streamed(client, httpx.URL(base + "/f.jsonl")) as response:
            assert response.status_code == 200
            assert response.headers["content-encoding"] == "gzip"
            assert "network_stream" not in response.extensions  # aiohttp's, not httpcore's
            async for piece in response.aiter_bytes():
                got.append(piece)
                # the first half decoded before the server sends the rest
                more.set()
    assert expected == b"".join(got) == lines
    assert len(got) >= 2
    assert len(heads) == 2
    assert request_line_and_headers(heads[1]) == request_line_and_headers(heads[0])


@pytest.mark.parametrize(
    ("end", "error"), [("close", httpx.TransportError), ("hang", httpx.TimeoutException)]
)
async def test_a_download_that_dies_or_hangs_halfway_raises_httpx_s_errors(
    end: str, error: type[Exception]
) -> None:
    def script(_: bytes) -> list[bytes | asyncio.Event | str]:
        return [answer(200, b"x\n" * 50_000)[:50_000], end]

    # the read timeout only bounds a server that never sends more: the same on any machine
    async with (
        server(script) as (base, _),
        httpx.AsyncClient(timeout=httpx.Timeout(60.0, read=0.2)) as client,
        streamed(client, httpx.URL(base + "/f.jsonl")) as response,
    ):
        received: list[bytes] = []
        with pytest.raises(error):
            await read_into(response, received)
    assert 0 < len(b"".join(received)) < 100_000


async def test_a_download_refused_or_down_is_answered_or_raised_as_by_the_client() -> None:
    def script(_: bytes) -> bytes:
        return answer(403, b"<Error>AccessDenied</Error>", {"Content-Type": "application/xml"})

    async with (
        server(script) as (base, _),
        httpx.AsyncClient(timeout=60.0) as client,
        streamed(client, httpx.URL(base + "/f.jsonl")) as response,
    ):
        assert response.status_code == 403
        assert await response.aread() == b"<Error>AccessDenied</Error>"
    async with httpx.AsyncClient(timeout=60.0) as client:
        with pytest.raises(httpx.ConnectError):
            async with streamed(client, httpx.URL(base + "/f.jsonl")):
                pass


async def test_a_client_that_is_not_plain_downloads_itself() -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async with (
        server(lambda _: answer(200, b"{}\n")) as (base, heads),
        httpx.AsyncClient(event_hooks={"request": [hook]}) as hooked,
        streamed(hooked, httpx.URL(base + "/f.jsonl")) as response,
    ):
        assert await response.aread() == b"{}\n"
        assert "network_stream" in response.extensions  # httpcore's: the client's own
    assert seen == [base + "/f.jsonl"]
    assert len(heads) == 1
