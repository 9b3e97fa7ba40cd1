"""Shopify Admin GraphQL over HTTP: authentication, cost-based pacing and throttling.

Shopify meters the Admin GraphQL API with a leaky bucket of query cost points. Every
response reports ``extensions.cost.throttleStatus`` (the bucket's size, what is
available now and the restore rate). Before sending, :class:`GraphQLTransport` waits
until the bucket is projected to hold the query's expected cost, so a long paged read
never meets THROTTLED. If Shopify throttles anyway (another app shares the bucket), it
waits the time the bucket needs to refill and tries again, within a budget.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.clock import Clock
from connectors.errors import GraphQLError, RateLimited, ResponseError
from connectors.health import Health
from connectors.http import RetryPolicy, send


@dataclass
class _Bucket:
    maximum: float = 1000.0
    available: float = 1000.0
    restore_rate: float = 50.0
    known: bool = False


class GraphQLTransport:
    """Sends GraphQL documents to one shop's Admin API.

    :param client: the injected httpx client (its transport decides where bytes go).
    :param shop_url: ``https://shop.myshopify.com`` (or the sandbox's loopback URL).
    :param api_version: e.g. ``2026-07``.
    :param token: the Admin API access token; sent in a header, never logged.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        system: str,
        shop_url: str,
        api_version: str,
        token: str,
        clock: Clock,
        health: Health,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._system = system
        self._url = f"{shop_url.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._headers = {"X-Shopify-Access-Token": token, "Content-Type": "application/json"}
        self._clock = clock
        self._health = health
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._bucket = _Bucket()
        self._bucket_at = clock.now()
        self._expected_cost: dict[str, float] = {}

    async def execute(self, name: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one document; return its ``data``. ``name`` keys the cost estimate."""
        for attempt in range(1, self._policy.attempts + 1):
            await self._pace(self._expected_cost.get(name, 10.0))
            response = await send(
                lambda: self._client.post(
                    self._url, headers=self._headers, json={"query": query, "variables": variables}
                ),
                system=self._system,
                health=self._health,
                clock=self._clock,
                policy=self._policy,
                rng=self._rng,
            )
            body = _json(response, self._system)
            cost = self._read_cost(body)
            if cost is not None:
                self._expected_cost[name] = cost
            errors = body.get("errors")
            if errors:
                codes = _error_codes(errors)
                if "THROTTLED" in codes:
                    self._health.throttles += 1
                    if attempt == self._policy.attempts:
                        break
                    self._health.retries += 1
                    await self._clock.sleep(
                        self._refill_wait(cost or 10.0) + self._rng.uniform(0, 0.5)
                    )
                    continue
                raise GraphQLError(
                    f"{self._system}: {_error_message(errors)}",
                    system=self._system,
                    code=codes[0] if codes else None,
                )
            data = body.get("data")
            if not isinstance(data, dict):
                raise ResponseError(f"{self._system}: response had no data", system=self._system)
            return data
        raise RateLimited(
            f"{self._system}: still THROTTLED after {self._policy.attempts} tries",
            system=self._system,
        )

    def _projected_available(self) -> float:
        elapsed = (self._clock.now() - self._bucket_at).total_seconds()
        b = self._bucket
        return min(b.maximum, b.available + max(0.0, elapsed) * b.restore_rate)

    def _refill_wait(self, cost: float) -> float:
        missing = cost - self._projected_available()
        return max(0.0, missing / self._bucket.restore_rate) if missing > 0 else 0.0

    async def _pace(self, expected_cost: float) -> None:
        if not self._bucket.known:
            return
        wait = self._refill_wait(min(expected_cost, self._bucket.maximum))
        if wait > 0:
            await self._clock.sleep(wait)

    def _read_cost(self, body: dict[str, Any]) -> float | None:
        cost = (body.get("extensions") or {}).get("cost")
        if not isinstance(cost, dict):
            return None
        status = cost.get("throttleStatus") or {}
        try:
            self._bucket = _Bucket(
                maximum=float(status["maximumAvailable"]),
                available=float(status["currentlyAvailable"]),
                restore_rate=float(status["restoreRate"]),
                known=True,
            )
        except (KeyError, TypeError, ValueError):
            return None
        self._bucket_at = self._clock.now()
        t = self._health.throttle
        t.maximum, t.available, t.restore_rate = (
            self._bucket.maximum,
            self._bucket.available,
            self._bucket.restore_rate,
        )
        t.at = self._bucket_at
        requested = cost.get("requestedQueryCost")
        return float(requested) if isinstance(requested, int | float) else None


def _json(response: httpx.Response, system: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResponseError(
            f"{system}: HTTP {response.status_code} with a body that is not JSON", system=system
        ) from exc
    if response.status_code >= 400 or not isinstance(body, dict):
        detail = body.get("errors") if isinstance(body, dict) else body
        raise ResponseError(f"{system}: HTTP {response.status_code}: {detail}", system=system)
    return body


def _error_codes(errors: Any) -> list[str]:
    if not isinstance(errors, list):
        return []
    return [
        str(e.get("extensions", {}).get("code"))
        for e in errors
        if isinstance(e, dict)
        and isinstance(e.get("extensions"), dict)
        and e["extensions"].get("code")
    ]


def _error_message(errors: Any) -> str:
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message", errors[0]))
    return str(errors)
