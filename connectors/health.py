"""Counters every connector keeps, for the sync-health and rate-limit monitors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class ThrottleState:
    """The last throttle figures a system reported (Shopify's bucket, or a Retry-After)."""

    maximum: float | None = None
    available: float | None = None
    restore_rate: float | None = None
    retry_after: float | None = None
    at: datetime | None = None

    @property
    def pressure(self) -> float | None:
        """Share of the bucket in use, 0..1, where the system reports a bucket."""
        if self.maximum and self.available is not None:
            return max(0.0, min(1.0, 1.0 - self.available / self.maximum))
        return None


@dataclass
class Health:
    """A connector's running account of itself. Mutated only by its connector."""

    system: str
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    error_streak: int = 0
    requests: int = 0
    throttles: int = 0
    retries: int = 0
    failures: int = 0
    throttle: ThrottleState = field(default_factory=ThrottleState)

    def succeeded(self, at: datetime) -> None:
        self.last_success = at
        self.error_streak = 0

    def failed(self, message: str, at: datetime) -> None:
        self.failures += 1
        self.error_streak += 1
        self.last_error = message
        self.last_error_at = at
