"""Shopify Admin GraphQL over HTTP: authentication, cost-based pacing and throttling.

Shopify meters the Admin GraphQL API with a leaky bucket of query cost points. Every
response reports ``extensions.cost`` (the query's ``requestedQueryCost`` and the
bucket's ``throttleStatus``: its size, what is available now and the restore rate).
Before sending, :class:`GraphQLTransport` waits until the bucket is projected to hold
the query's expected cost, so a long paged read never meets THROTTLED. If Shopify
throttles anyway (another app shares the bucket), it waits the time the bucket needs to
refill and tries again, within a budget.

A GraphQL answer can be HTTP 200 and still a server failure: Shopify answers
``errors[].extensions.code = INTERNAL_SERVER_ERROR`` "instead of 500 Internal Server
Error in most circumstances" (https://shopify.dev/docs/api/admin-graphql/latest, "Status
and error codes"). Those are retried with backoff exactly like an HTTP 5xx, and when the
budget runs out they are a :class:`TransportError` (retryable), not a failed query.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.clock import Clock
from connectors.errors import GraphQLError, RateLimited, ResponseError, TransportError
from connectors.health import Health
from connectors.http import RetryPolicy, send

#: Shopify's single-query maximum, whatever the plan: a query requesting more points is
#: refused with MAX_COST_EXCEEDED before it runs
#: (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits).
MAX_QUERY_COST = 1000.0
#: Top-level error codes that mean "Shopify failed this time", retried like HTTP 5xx.
#: THROTTLED is transient too, but is waited out from the bucket's refill rate instead.
TRANSIENT_CODES = frozenset({"INTERNAL_SERVER_ERROR"})


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
        self._max_cost = MAX_QUERY_COST

    @property
    def max_query_cost(self) -> float:
        """The most one query may request: Shopify's single-query maximum, the bucket's
        size, or the ``maxCost`` a MAX_COST_EXCEEDED answer named, whichever is least."""
        limit = min(MAX_QUERY_COST, self._max_cost)
        if self._bucket.known:
            return min(limit, self._bucket.maximum)
        return limit

    async def execute(
        self,
        name: str,
        query: str,
        variables: dict[str, Any],
        *,
        expected_cost: float | None = None,
    ) -> dict[str, Any]:
        """Run one document; return its ``data``. ``name`` keys the cost estimate used to
        pace when ``expected_cost`` is not given."""
        data, _ = await self.execute_costed(name, query, variables, expected_cost=expected_cost)
        return data

    async def execute_costed(
        self,
        name: str,
        query: str,
        variables: dict[str, Any],
        *,
        expected_cost: float | None = None,
    ) -> tuple[dict[str, Any], float | None]:
        """:meth:`execute`, and the ``requestedQueryCost`` Shopify reported for it."""
        throttled = False
        problem = "no attempt made"
        for attempt in range(1, self._policy.attempts + 1):
            await self._pace(
                expected_cost if expected_cost is not None else self._expected_cost.get(name, 10.0)
            )
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
                transient = "THROTTLED" in codes or bool(TRANSIENT_CODES.intersection(codes))
                if transient and attempt == self._policy.attempts:
                    throttled = "THROTTLED" in codes
                    problem = ", ".join(c for c in codes if c in TRANSIENT_CODES) or "THROTTLED"
                    break
                if "THROTTLED" in codes:
                    self._health.throttles += 1
                    self._health.retries += 1
                    await self._clock.sleep(
                        self._refill_wait(cost or 10.0) + self._rng.uniform(0, 0.5)
                    )
                    continue
                if TRANSIENT_CODES.intersection(codes):
                    self._health.retries += 1
                    await self._clock.sleep(self._policy.backoff(attempt, self._rng))
                    continue
                max_cost = _max_cost(errors)
                if max_cost is not None and max_cost > 0:
                    self._max_cost = min(self._max_cost, max_cost)
                raise GraphQLError(
                    f"{self._system}: {_error_message(errors)}",
                    system=self._system,
                    code=codes[0] if codes else None,
                    requested_cost=cost if cost is not None else _refused_cost(errors),
                    max_cost=max_cost,
                )
            data = body.get("data")
            if not isinstance(data, dict):
                raise ResponseError(f"{self._system}: response had no data", system=self._system)
            return data, cost
        if throttled:
            self._health.throttles += 1
            raise RateLimited(
                f"{self._system}: still THROTTLED after {self._policy.attempts} tries",
                system=self._system,
            )
        raise TransportError(
            f"{self._system}: Shopify answered {problem} after {self._policy.attempts} tries",
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


def _refused_cost(errors: Any) -> float | None:
    """The requested cost a MAX_COST_EXCEEDED error names (``extensions.cost``)."""
    return _extension_number(errors, "cost")


def _max_cost(errors: Any) -> float | None:
    """The limit a MAX_COST_EXCEEDED error names (``extensions.maxCost``)."""
    return _extension_number(errors, "maxCost")


def _extension_number(errors: Any, key: str) -> float | None:
    if not isinstance(errors, list):
        return None
    for e in errors:
        ext = e.get("extensions") if isinstance(e, dict) else None
        value = ext.get(key) if isinstance(ext, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _error_message(errors: Any) -> str:
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message", errors[0]))
    return str(errors)
