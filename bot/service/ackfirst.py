"""Acks before answers: the work a Slack ack hands over (a ``/drift`` answer, a resync)
waits while Slack requests keep arriving, so a burst of commands is acked first.

Slack wants every request answered within 3 seconds and retries one that is not; an
answer through the response_url may come later. Each answer costs the event loop about
as much as an ack, so answers started in the middle of a burst delay every ack behind
them. An answer starts once no Slack request is being handled and none arrived in the
last :data:`QUIET_SECONDS`, or after :data:`LONGEST_SECONDS` whatever happens (a steady
stream of requests never starves the answers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

#: how long no Slack request must have arrived before answers start
QUIET_SECONDS = 0.02
#: the longest an answer waits for the requests to quiet down
LONGEST_SECONDS = 1.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AckFirst:
    """Counts the Slack requests being handled; :meth:`settled` waits for a lull.

    The waiting answers share one timer: a burst of 200 commands leaves 200 answers
    waiting on futures, and one check every few milliseconds decides for all of them
    (no answer polls on its own)."""

    def __init__(
        self,
        *,
        quiet: float = QUIET_SECONDS,
        longest: float = LONGEST_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quiet, self.longest, self._now = quiet, longest, monotonic
        self.handling = 0
        self._last_arrival = float("-inf")
        #: waiting answers: (deadline, future), in the order they came
        self._waiting: list[tuple[float, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None

    def wrap(self, handler: Handler) -> Handler:
        """``handler`` (the Slack endpoint), counted while it runs."""

        async def counted(request: web.Request) -> web.StreamResponse:
            self.handling += 1
            self._last_arrival = self._now()
            try:
                return await handler(request)
            finally:
                self.handling -= 1

        return counted

    def _lull(self, now: float) -> bool:
        return self.handling == 0 and now - self._last_arrival >= self.quiet

    async def settled(self) -> None:
        """Return once no request is being handled and none arrived for ``quiet``
        seconds, or after ``longest`` seconds."""
        now = self._now()
        if self._lull(now):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((now + self.longest, future))
        self._arm()
        await future

    def _arm(self) -> None:
        if self._timer is None and self._waiting:
            delay = max(self.quiet - (self._now() - self._last_arrival), self.quiet / 4)
            self._timer = asyncio.get_running_loop().call_later(delay, self._check)

    def _check(self) -> None:
        self._timer = None
        now = self._now()
        lull = self._lull(now)
        waiting, self._waiting = self._waiting, []
        for deadline, future in waiting:
            if future.done():  # the answer was cancelled (shutdown)
                continue
            if lull or now >= deadline:
                future.set_result(None)
            else:
                self._waiting.append((deadline, future))
        self._arm()
