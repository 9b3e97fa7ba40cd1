"""Sending one HTTP request to an outside system, with bounded retries.

httpx's transports retry only failed connects; an inventory system also answers 429
with Retry-After, 5xx while deploying, and times out under load. ``send`` retries those
within a budget, with exponential backoff and full jitter, honouring Retry-After, and
keeps the connector's :class:`Health` counters. It is hand-written because the retry
decision needs the response (status and headers), which no transport-level retry in
httpx offers.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from connectors.clock import Clock
from connectors.errors import AuthError, RateLimited, TransportError
from connectors.health import Health

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Delays are in seconds of the injected clock."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for the given (1-based) failed attempt."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return rng.uniform(ceiling / 2, ceiling)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (delta form only; Shopify and Slack send that)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def send(
    make_request: Callable[[], Awaitable[httpx.Response]],
    *,
    system: str,
    health: Health,
    clock: Clock,
    policy: RetryPolicy,
    rng: random.Random,
) -> httpx.Response:
    """Send until a response that is not a transient failure, or the budget runs out.

    Returns any response that is not 401/403, 429 or a retryable 5xx; raises
    :class:`AuthError`, :class:`RateLimited` or :class:`TransportError` otherwise.
    """
    last_problem = "no attempt made"
    for attempt in range(1, policy.attempts + 1):
        health.requests += 1
        try:
            response = await make_request()
        except httpx.TimeoutException:
            last_problem = "timed out"
            delay = policy.backoff(attempt, rng)
        except httpx.TransportError as exc:
            last_problem = f"could not connect ({type(exc).__name__})"
            delay = policy.backoff(attempt, rng)
        else:
            if response.status_code in (401, 403):
                raise AuthError(
                    f"{system} refused the credentials (HTTP {response.status_code})",
                    system=system,
                )
            if response.status_code == 429:
                health.throttles += 1
                wait = retry_after_seconds(response)
                health.throttle.retry_after = wait
                health.throttle.at = clock.now()
                last_problem = "rate limited (HTTP 429)"
                delay = (wait if wait is not None else policy.backoff(attempt, rng)) + rng.uniform(
                    0, 0.25
                )
                if attempt == policy.attempts:
                    raise RateLimited(
                        f"{system}: still rate limited after {attempt} tries", system=system
                    )
            elif response.status_code in RETRYABLE_STATUS:
                last_problem = f"HTTP {response.status_code}"
                delay = policy.backoff(attempt, rng)
            else:
                return response
        if attempt < policy.attempts:
            health.retries += 1
            await clock.sleep(delay)
    raise TransportError(f"{system}: {last_problem} after {policy.attempts} tries", system=system)
