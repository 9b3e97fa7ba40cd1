"""The fake Shopify Admin GraphQL server and its Python control API.

``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token`` answers the
supported subset of the real 2026-07 schema from an in-memory shop. Tests and the demo
build the world with the control methods (``add_location``, ``add_item``,
``set_quantities`` ...), read what happened from ``writes`` and ``requests``, and inject
faults with ``force_http_429``, ``force_5xx``, ``force_timeout``, ``force_throttled``,
``force_internal_error``, ``force_lost_response``, ``latency``, ``down`` and
``fail_ratio``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from aiohttp import web
from graphql import GraphQLSyntaxError, OperationDefinitionNode, parse

from sandbox.shopify.adjustments import Write
from sandbox.shopify.bulk import BulkOperations
from sandbox.shopify.clock import Clock, WallClock
from sandbox.shopify.cost import LeakyBucket
from sandbox.shopify.executor import Executor, Outcome
from sandbox.shopify.faults import Fault, Faults
from sandbox.shopify.mutations import Mutations
from sandbox.shopify.orders import Order, OrderBook, Refund
from sandbox.shopify.schema import load_schema
from sandbox.shopify.state import Store
from sandbox.shopify.webhooks import DEFAULT_WEBHOOK_SECRET, SHOP_DOMAIN, WebhookEmitter

DEFAULT_TOKEN = "shpat_driftwatch_sandbox"
BAD_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake received, and how it was answered."""

    at: datetime
    api_version: str
    operation_name: str | None
    operation_type: str | None
    variables: dict[str, Any]
    status: int
    throttled: bool = False
    fault: str | None = None
    requested_cost: int | None = None
    actual_cost: int | None = None
    error_codes: list[str] = field(default_factory=list)


class FakeShopify:
    """A loopback Shopify Admin GraphQL API.

    :param clock: anything with ``now() -> aware datetime`` (default: the wall clock).
    :param seed: seeds the random fault mix (``fail_ratio``).
    :param restore_rate: cost points the bucket regains per second.
    :param bucket_size: the bucket's capacity (``maximumAvailable``).
    :param api_versions: versions served; others answer 404.
    :param access_token: the token ``X-Shopify-Access-Token`` must carry.
    :param max_query_cost: single-query cost limit (``MAX_COST_EXCEEDED`` above it).
    :param shop_domain: the ``*.myshopify.com`` domain this shop names in every webhook
        (``X-Shopify-Shop-Domain``); run several fakes with different ones to play many
        shops with one app installed.
    :param webhook_secret: the secret this shop signs its webhooks with (an app's client
        secret; with a custom app per shop, each shop's own).
    """

    def __init__(
        self,
        clock: Clock | None = None,
        seed: int = 0,
        restore_rate: int = 100,
        bucket_size: int = 2000,
        api_versions: Iterable[str] = frozenset({"2026-07", "2026-04"}),
        *,
        access_token: str = DEFAULT_TOKEN,
        max_query_cost: int = 1000,
        shop_domain: str = SHOP_DOMAIN,
        webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
    ) -> None:
        self.clock: Clock = clock or WallClock()
        self.access_token = access_token
        self.api_versions = frozenset(api_versions)
        self.schema = load_schema()
        self.store = Store(self.clock, shop_domain)
        self.mutations = Mutations(self.store, self.schema.idempotency_required)
        self.bucket = LeakyBucket(bucket_size, restore_rate, self.clock)
        self.executor = Executor(
            self.schema, self.store, self.mutations, self.bucket, self.clock, max_query_cost
        )
        self.bulk = BulkOperations(self.schema, self.store, self.clock, lambda: self.url)
        self.executor.bulk = self.bulk
        self.faults = Faults(seed)
        #: Webhook subscriptions and deliveries (see sandbox.shopify.webhooks).
        self.webhooks = WebhookEmitter(
            self.store, self.clock, seed=seed, secret=webhook_secret, shop_domain=shop_domain
        )
        #: Orders and refunds placed through the control API (sandbox.shopify.orders).
        self.orders = OrderBook(self.store)
        self.latency = 0.0
        self.down = False
        self.requests: list[RequestRecord] = []
        self.url: str | None = None
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 = any free port); return the base URL."""
        app = web.Application()
        app.router.add_post("/admin/api/{version}/graphql.json", self._handle)
        app.router.add_get("/bulk/{name}", self.bulk.download)
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1] if self._runner.addresses else port
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()
        await self.webhooks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.bulk.close()

    async def __aenter__(self) -> FakeShopify:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def graphql_url(self, version: str = "2026-07") -> str:
        if self.url is None:
            raise RuntimeError("FakeShopify is not started")
        return f"{self.url}/admin/api/{version}/graphql.json"

    # -- the world (control API) --------------------------------------------------------
    def add_location(
        self, name: str, *, active: bool = True, fulfillment_service: str | None = None
    ) -> str:
        """Create a location (also while the shop is being read); return its gid. With
        ``fulfillment_service``, a legacy location of that fulfillment service: the
        ``locations`` query lists it only with ``includeLegacy: true`` (see
        sandbox.shopify.resolvers)."""
        return self.store.add_location(
            name, active=active, fulfillment_service=fulfillment_service
        ).gid

    def add_item(
        self,
        sku: str | None,
        tracked: bool = True,
        inventory_policy: str = "DENY",
        title: str | None = None,
        *,
        locations: Iterable[str] | None = None,
    ) -> str:
        """Create a product with one variant and its inventory item, stocked at
        ``locations`` (gids or names; default: every active location). Returns the
        inventory item gid."""
        locs = None if locations is None else [self.store.location(ref) for ref in locations]
        return self.store.add_item(
            sku, tracked=tracked, inventory_policy=inventory_policy, title=title, locations=locs
        ).gid

    def delete_product(self, item: str) -> None:
        """Delete the product of an item (gid or SKU), its variants and inventory items:
        the listing is gone from the shop."""
        self.store.delete_product(self.store.item(item))

    def stock(self, item: str, location: str) -> str:
        """Activate an item (gid or SKU) at a location; return the inventory level gid."""
        return self.store.stock(self.store.item(item), self.store.location(location)).gid

    def set_quantities(self, item: str, location: str, **states: int) -> None:
        """Set absolute quantities by state name (``available=5, committed=2``...).
        ``on_hand`` is applied last and moves ``available``. Not recorded in ``writes``."""
        level = self.store.level(item, location)
        self.store.set_quantities(level, states)

    def quantities(self, item: str, location: str) -> dict[str, int]:
        """Every quantity name's value for an item (gid or SKU) at a location."""
        return self.store.level(item, location).snapshot()

    def simulate_order(self, item: str, location: str, qty: int) -> None:
        """A storefront order: ``qty`` moves from available to committed."""
        self.store.simulate_order(self.store.level(item, location), qty)

    def simulate_fulfillment(self, item: str, location: str, qty: int) -> None:
        """Committed units ship: committed (and so on_hand) drop by ``qty``."""
        self.store.simulate_fulfillment(self.store.level(item, location), qty)

    def place_order(self, location: str, lines: dict[str, int]) -> Order:
        """A checkout at ``location`` for ``{SKU or item gid: quantity}``: each line moves
        from available to committed and ``orders/create`` is sent (``OutOfStock`` when a
        DENY item lacks the units: nothing changes)."""
        order = self.orders.place(location, lines)
        self.webhooks.emit("orders/create", order.to_wire())
        return order

    def fulfill_order(self, order: Order) -> None:
        """Ship ``order``: its committed units leave the location."""
        self.orders.fulfill(order)

    def refund_order(
        self,
        order: Order,
        lines: dict[str, int],
        *,
        restock_type: str = "return",
        restock: bool | None = None,
    ) -> Refund:
        """Refund lines of ``order`` and send ``refunds/create``; a restocking type puts
        the units back into available unless ``restock=False`` (sandbox.shopify.orders)."""
        refund = self.orders.refund(order, lines, restock_type, restock)
        self.webhooks.emit("refunds/create", refund.to_wire())
        return refund

    @property
    def writes(self) -> list[Write]:
        """Every quantity change applied by a mutation, in order."""
        return self.mutations.writes

    # -- faults -------------------------------------------------------------------------
    def force_http_429(self, n: int = 1, retry_after: float = 2.0) -> None:
        self.faults.http_429(n, retry_after)

    def force_5xx(self, n: int = 1, status: int = 503) -> None:
        self.faults.http_5xx(n, status)

    def force_timeout(self, n: int = 1) -> None:
        """The next ``n`` requests are held for ``faults.timeout_seconds``, then 504."""
        self.faults.timeout(n)

    def force_throttled(self, n: int = 1) -> None:
        self.faults.throttled(n)

    def force_internal_error(self, n: int = 1) -> None:
        """The next ``n`` requests are answered 200 with a top-level
        ``INTERNAL_SERVER_ERROR`` and are not executed (sandbox.shopify.faults)."""
        self.faults.internal_error(n)

    def force_lost_response(self, n: int = 1) -> None:
        """The next ``n`` requests are executed, then the connection drops unanswered."""
        self.faults.lost_responses += n

    @property
    def fail_ratio(self) -> float:
        return self.faults.fail_ratio

    @fail_ratio.setter
    def fail_ratio(self, value: float) -> None:
        self.faults.fail_ratio = value

    def drain_bucket(self, to: float = 0.0) -> None:
        """Leave ``to`` points in the cost bucket, as if another app had spent the rest."""
        self.bucket.set_available(to)

    # -- HTTP ---------------------------------------------------------------------------
    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        version = request.match_info["version"]
        if self.down:
            return self._drop(request, version, "down")
        try:
            raw = await request.read()
        except ConnectionResetError:  # the client gave up before sending the body
            return web.Response(status=499)
        await self._pause(self.latency)
        fault = self.faults.next()
        if fault is not None and fault.kind not in ("throttled", "internal_error"):
            return await self._fault_response(version, fault)
        if version not in self.api_versions:
            return self._reply(version, 404, {"errors": "Not Found"})
        if request.headers.get("X-Shopify-Access-Token") != self.access_token:
            return self._reply(version, 401, {"errors": BAD_TOKEN})
        parsed = self._parse_body(raw, request.content_type)
        if not isinstance(parsed, tuple):
            return self._reply(version, 400, parsed)
        query, variables, operation_name = parsed
        if fault is not None and fault.kind == "internal_error":
            return self._internal_error(version, query, variables)
        await self.bulk.settle()
        outcome = self.executor.run(
            query, variables, operation_name, version, force_throttle=fault is not None
        )
        if self.faults.take_lost_response():
            return self._drop(request, version, "lost_response", outcome, variables)
        self._log(version, 200, outcome, variables, "throttled" if fault else None)
        return web.json_response(outcome.body, headers=self._headers(version))

    @staticmethod
    def _parse_body(
        raw: bytes, content_type: str
    ) -> tuple[str, dict[str, Any], str | None] | dict[str, Any]:
        text = raw.decode("utf-8", errors="replace")
        if content_type == "application/graphql":
            return text, {}, None
        try:
            body = json.loads(text)
        except ValueError:
            return {"errors": "Invalid JSON in request body"}
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, str) or not query.strip():
            return {"errors": {"query": "Required parameter missing or invalid"}}
        variables = body.get("variables") or {}
        if isinstance(variables, str):
            try:
                variables = json.loads(variables) or {}
            except ValueError:
                variables = None
        if not isinstance(variables, dict):
            return {"errors": {"variables": "Invalid variables"}}
        name = body.get("operationName")
        return query, variables, name if isinstance(name, str) else None

    async def _fault_response(self, version: str, fault: Fault) -> web.Response:
        self._log(version, fault.status, None, fault=fault.kind)
        if fault.kind == "timeout":
            await self._pause(self.faults.timeout_seconds)
            return web.Response(
                status=504,
                text="<html><body>504 Gateway Timeout</body></html>",
                content_type="text/html",
            )
        if fault.kind == "http_429":
            headers = {**self._headers(version), "Retry-After": f"{fault.retry_after:.1f}"}
            return web.json_response(
                {
                    "errors": "Exceeded 2 calls per second for api client. "
                    "Reduce request rates to resume uninterrupted service."
                },
                status=429,
                headers=headers,
            )
        if fault.status == 500:
            return web.json_response(
                {"errors": "Internal Server Error"}, status=500, headers=self._headers(version)
            )
        return web.Response(
            status=fault.status,
            content_type="text/html",
            text=f"<html><body>{fault.status} Service Unavailable</body></html>",
        )

    def _internal_error(self, version: str, query: str, variables: dict[str, Any]) -> web.Response:
        """Shopify's stand-in for a 500: HTTP 200, one top-level error with code
        ``INTERNAL_SERVER_ERROR`` and a request id, no data (the example under "Status
        and error codes", https://shopify.dev/docs/api/admin-graphql/latest)."""
        headers = self._headers(version)
        request_id = headers["X-Request-Id"]
        name, kind = _operation_of(query)
        self.requests.append(
            RequestRecord(
                at=self.clock.now(),
                api_version=version,
                operation_name=name,
                operation_type=kind,
                variables=variables,
                status=200,
                fault="internal_error",
                error_codes=["INTERNAL_SERVER_ERROR"],
            )
        )
        body = {
            "errors": [
                {
                    "message": "Internal error. Looks like something went wrong on our end.\n"
                    f"Request ID: {request_id} (include this in support requests).",
                    "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
                }
            ]
        }
        return web.json_response(body, headers=headers)

    def _drop(
        self,
        request: web.Request,
        version: str,
        why: str,
        outcome: Outcome | None = None,
        variables: dict[str, Any] | None = None,
    ) -> web.Response:
        self._log(version, 0, outcome, variables, fault=why)
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=499)  # never written: the connection is gone

    def _headers(self, version: str) -> dict[str, str]:
        return {
            "X-Shopify-API-Version": version,
            "X-Request-Id": f"fake-{len(self.requests) + 1:08d}",
        }

    def _reply(self, version: str, status: int, body: dict[str, Any]) -> web.Response:
        self._log(version, status, None)
        return web.json_response(body, status=status, headers=self._headers(version))

    def _log(
        self,
        version: str,
        status: int,
        outcome: Outcome | None,
        variables: dict[str, Any] | None = None,
        fault: str | None = None,
    ) -> None:
        self.requests.append(
            RequestRecord(
                at=self.clock.now(),
                api_version=version,
                operation_name=outcome.operation_name if outcome else None,
                operation_type=outcome.operation_type if outcome else None,
                variables=variables or {},
                status=status,
                throttled=bool(outcome and outcome.throttled),
                fault=fault,
                requested_cost=outcome.requested_cost if outcome else None,
                actual_cost=outcome.actual_cost if outcome else None,
                error_codes=list(outcome.error_codes) if outcome else [],
            )
        )


def _operation_of(query: str) -> tuple[str | None, str | None]:
    """The name and type of a document's first operation, for the request log."""
    try:
        document = parse(query)
    except GraphQLSyntaxError:
        return None, None
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            name = definition.name.value if definition.name else None
            return name, definition.operation.value
    return None, None
