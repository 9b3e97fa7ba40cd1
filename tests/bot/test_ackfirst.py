"""Acks before answers (bot/service/ackfirst.py): the work a Slack ack hands over waits
while Slack requests are being handled or keep arriving, and never longer than its
bound. The gate's clock is injected; every wait below is on an event or a task."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bot.service.ackfirst import AckFirst


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _spin(times: int = 20) -> None:
    """Let the loop run other tasks a few rounds (no time passes on the gate's clock)."""
    for _ in range(times):
        await asyncio.sleep(0)


async def _request_in_flight(
    gate: AckFirst,
) -> tuple[asyncio.Task[web.StreamResponse], asyncio.Event]:
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="ok")

    task = asyncio.create_task(gate.wrap(handler)(make_mocked_request("POST", "/slack/events")))
    await _spin()
    assert gate.handling == 1
    return task, release


class Waiting:
    """A gate with one Slack request in flight and one answer waiting on it."""

    def __init__(self, longest: float) -> None:
        self.clock = Clock()
        self.gate = AckFirst(quiet=0.001, longest=longest, monotonic=self.clock)

    async def __aenter__(self) -> Waiting:
        self.request, self.release = await _request_in_flight(self.gate)
        self.answer = asyncio.create_task(self.gate.settled())
        await _spin()
        assert not self.answer.done(), "an answer must not start while a request is handled"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.request
        self.answer.cancel()


async def test_an_answer_waits_for_the_request_being_handled_then_for_a_lull() -> None:
    async with Waiting(longest=60.0) as w:
        w.release.set()
        assert (await w.request).status == 200
        assert w.gate.handling == 0
        await _spin()
        assert not w.answer.done(), "a request arrived just now: wait for the lull"

        w.clock.now += 0.01
        await asyncio.wait_for(w.answer, 30)


async def test_a_steady_stream_of_requests_does_not_starve_an_answer() -> None:
    async with Waiting(longest=1.0) as w:
        w.clock.now += 1.0  # the request is still being handled: the bound decides
        await asyncio.wait_for(w.answer, 30)
        assert w.gate.handling == 1


async def test_a_failing_handler_is_no_longer_counted() -> None:
    gate = AckFirst(quiet=0.001, longest=60.0, monotonic=Clock())

    async def broken(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await gate.wrap(broken)(make_mocked_request("POST", "/slack/events"))
    assert gate.handling == 0


async def test_with_no_request_seen_an_answer_starts_at_once() -> None:
    gate = AckFirst(monotonic=Clock())
    await asyncio.wait_for(gate.settled(), 30)
