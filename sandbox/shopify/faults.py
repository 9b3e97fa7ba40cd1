"""Fault injection for the fake Shopify: queued one-shot faults and a seeded random mix.

Queued faults fire on the next requests in this order of precedence: HTTP 429, HTTP 5xx,
THROTTLED, INTERNAL_SERVER_ERROR. ``fail_ratio`` (0..1) then draws, with a seeded
``random.Random``, one of THROTTLED, HTTP 429, HTTP 503 or a timeout (the server holds
the request for ``timeout_seconds`` and answers 504) for that share of the remaining
requests.
INTERNAL_SERVER_ERROR is a 200 answer whose only content is a top-level error with that
code: Shopify documents it as "returned instead of 500 Internal Server Error in most
circumstances" ("Status and error codes",
https://shopify.dev/docs/api/admin-graphql/latest and
https://shopify.dev/docs/api/usage/response-codes); the request is not executed.
``lost_response`` faults are different: the request is executed (a mutation is
applied) and then the connection is dropped before any response is written.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    kind: str  # "http_429" | "http_5xx" | "throttled" | "internal_error" | "timeout"
    status: int = 200
    retry_after: float | None = None


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.fail_ratio = 0.0
        self.timeout_seconds = 30.0
        self.retry_after = 2.0
        self._queue: deque[Fault] = deque()
        self._throttled = 0
        self._internal_errors = 0
        self.lost_responses = 0

    def http_429(self, n: int, retry_after: float = 2.0) -> None:
        self._queue.extend(Fault("http_429", 429, retry_after) for _ in range(n))

    def http_5xx(self, n: int, status: int = 503) -> None:
        self._queue.extend(Fault("http_5xx", status) for _ in range(n))

    def timeout(self, n: int) -> None:
        self._queue.extend(Fault("timeout", 504) for _ in range(n))

    def throttled(self, n: int) -> None:
        self._throttled += n

    def internal_error(self, n: int) -> None:
        self._internal_errors += n

    def next(self) -> Fault | None:
        """The fault for the request being handled now, if any."""
        if self._queue:
            return self._queue.popleft()
        if self._throttled > 0:
            self._throttled -= 1
            return Fault("throttled")
        if self._internal_errors > 0:
            self._internal_errors -= 1
            return Fault("internal_error")
        if self.fail_ratio > 0 and self.rng.random() < self.fail_ratio:
            kind = self.rng.choice(("throttled", "http_429", "http_5xx", "timeout"))
            if kind == "http_429":
                return Fault(kind, 429, self.retry_after)
            if kind == "http_5xx":
                return Fault(kind, 503)
            if kind == "timeout":
                return Fault(kind, 504)
            return Fault(kind)
        return None

    def take_lost_response(self) -> bool:
        if self.lost_responses > 0:
            self.lost_responses -= 1
            return True
        return False

    def clear(self) -> None:
        self._queue.clear()
        self._throttled = 0
        self._internal_errors = 0
        self.lost_responses = 0
        self.fail_ratio = 0.0
