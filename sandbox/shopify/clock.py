"""Time for the fake Shopify: a tiny protocol, the wall clock and a hand-driven clock.

The sandbox never imports the product, so it carries its own clock protocol. Anything
with a ``now() -> aware datetime`` method fits, including the product's clocks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of timezone-aware datetimes."""

    def now(self) -> datetime: ...


class WallClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when :meth:`advance` is called."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 7, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def iso(moment: datetime) -> str:
    """Shopify's DateTime wire format: UTC, whole seconds, ``Z`` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
