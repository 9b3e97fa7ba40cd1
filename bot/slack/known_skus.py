"""Every SKU the ledger knows, for the "Did you mean" of an unknown SKU, read once for a
storm of them.

Listing a big catalog's SKUs is the one read of an unknown SKU that grows with the
catalog (``Ledger.known_skus``: about 0.1 s at 100,000 SKUs, most of it the event
loop's CPU, BENCHMARKS.md B9). Typos come in bursts (a pasted list, a script, a storm
of commands), so the list is kept for a minute, and the unknown SKUs that arrive while
it is being read wait for that one read instead of starting their own. A SKU first
seen within the minute is not offered yet; typed exactly, it is found all the same
(``Ledger.is_known_sku`` is read every time).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from connectors.clock import Clock
from ledger import Ledger

#: how long a list of SKUs is offered from before it is read again
KEPT = timedelta(seconds=60)


class KnownSkus:
    """The ledger's SKUs, read at most once per :data:`KEPT` and once at a time."""

    def __init__(self, ledger: Ledger, clock: Clock, *, kept: timedelta = KEPT) -> None:
        self._ledger, self._clock, self._kept = ledger, clock, kept
        #: the last list read, with the time its read began
        self._last: tuple[datetime, list[str]] | None = None
        self._reading: asyncio.Future[list[str]] | None = None

    async def get(self) -> list[str]:
        """The SKUs, as read at most :data:`KEPT` ago (a read in flight is shared; one
        that fails fails its waiters, and the next call reads again)."""
        now = self._clock.now()
        if self._last is not None and now - self._last[0] < self._kept:
            return self._last[1]
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read(now))
            # its error is its waiters'; if every one was cancelled, it is dropped here
            self._reading.add_done_callback(_retrieved)
        # shielded: a waiter cancelled (its command given up) leaves the read to the rest
        return await asyncio.shield(self._reading)

    async def _read(self, started: datetime) -> list[str]:
        try:
            skus = await self._ledger.known_skus()
        finally:
            self._reading = None
        self._last = (started, skus)
        return skus


def _retrieved(read: asyncio.Future[list[str]]) -> None:
    if not read.cancelled():
        read.exception()
