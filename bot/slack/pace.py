"""The pace of ``chat.postMessage``: about one message per second per channel.

"chat.postMessage ... generally allows posting one message per second per channel"
(https://docs.slack.dev/apis/web-api/rate-limits); past that Slack answers 429. The
outbox reserves a slot from a :class:`Pacer` before each post and waits for it.
:class:`ChannelPacer` keeps the slots in this process: enough for the one process on
SQLite. Replicas on PostgreSQL share one pace per channel with :class:`LedgerPacer`: a
row per channel (``slack_pace.next_at``) locked while a slot is taken, so three replicas
posting to one channel post one second apart, not three at once into 429s.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from ledger import Ledger

#: chat.postMessage's documented pace: one message per second per channel
POST_SPACING_SECONDS = 1.0


class Pacer(Protocol):
    """Slots for ``chat.postMessage``, one per :data:`POST_SPACING_SECONDS` per channel."""

    async def reserve(self, channel: str, now: datetime, max_wait: float) -> datetime:
        """The channel's next free slot; taken only if it is at most ``max_wait``
        seconds after ``now``."""
        ...

    async def hold(self, channel: str, until: datetime) -> None:
        """Slack said to wait (429 Retry-After): no slot in ``channel`` before ``until``."""
        ...


class ChannelPacer:
    """The pace kept in this process."""

    def __init__(self, spacing: float = POST_SPACING_SECONDS) -> None:
        self._spacing = timedelta(seconds=spacing)
        self._next: dict[str, datetime] = {}

    async def reserve(self, channel: str, now: datetime, max_wait: float) -> datetime:
        slot = max(now, self._next.get(channel, now))
        if (slot - now).total_seconds() <= max_wait:
            self._next[channel] = slot + self._spacing
        return slot

    async def hold(self, channel: str, until: datetime) -> None:
        self._next[channel] = max(until, self._next.get(channel, until))


class LedgerPacer:
    """The pace kept in the database, shared by every replica (``slack_pace``)."""

    def __init__(self, ledger: Ledger, spacing: float = POST_SPACING_SECONDS) -> None:
        self._ledger = ledger
        self._spacing = spacing

    async def reserve(self, channel: str, now: datetime, max_wait: float) -> datetime:
        return await self._ledger.reserve_slot(channel, now, self._spacing, max_wait)

    async def hold(self, channel: str, until: datetime) -> None:
        await self._ledger.hold_channel(channel, until)
