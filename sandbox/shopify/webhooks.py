"""Webhooks from the fake Shopify: subscriptions, signed deliveries, retries and knobs.

A :class:`WebhookEmitter` hangs off a :class:`~sandbox.shopify.server.FakeShopify` as
``fake.webhooks``. Subscriptions are made with the control API (:meth:`subscribe`,
:meth:`delete_subscription`) or over GraphQL (``webhookSubscriptionCreate``,
``webhookSubscriptionDelete``, ``webhookSubscriptions``, ``webhookSubscription``).

Whenever an inventory level changes — through ``inventorySetQuantities`` /
``inventoryAdjustQuantities`` or the control API (``set_quantities``,
``simulate_order``...) — one ``inventory_levels/update`` per level is emitted once the
synchronous operation ends (changes to several states of one level in one call make one
webhook, as on Shopify). Any topic can be emitted by hand with :meth:`emit`.

Each delivery is POSTed with Shopify's headers and a base64 HMAC-SHA256 of the exact
bytes sent, under :attr:`WebhookEmitter.secret` at the time of sending. Deliveries go
out one at a time in order, unless a knob says otherwise:

* ``duplicate = True`` — every delivery is sent twice (same ids, same body);
* ``holding = True`` — deliveries wait in ``held`` until :meth:`release` (``reverse=True``
  releases them newest first: out of order);
* ``secret = "..."`` — sign with another secret (a rotation the receiver missed);
* a non-2xx answer or a connection error is retried up to 8 times over 4 hours on the
  injected clock: advance it and call :meth:`deliver_due`.

And to play the attacker (:meth:`replay`): a delivery captured on the wire is sent
again, its body and signature untouched, with headers changed — a new event id, a
``X-Shopify-Triggered-At`` far in the future, another shop, or no ids at all. Shopify's
HMAC covers only the raw body, so such a replay still verifies.

Every attempt is kept in ``attempts``. The sandbox never imports the product.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import random
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from sandbox.shopify import search
from sandbox.shopify.clock import Clock, iso
from sandbox.shopify.errors import ShopifyError
from sandbox.shopify.paging import paginate
from sandbox.shopify.resolvers import RESOLVERS, TYPE_OF, Context, Info, attr
from sandbox.shopify.state import GID_PREFIX, Level, Store, parse_gid

DEFAULT_WEBHOOK_SECRET = "shpss_driftwatch_sandbox_webhooks"
#: Passed to :meth:`WebhookEmitter.replay` for a header to be sent as captured.
KEEP: Any = object()
SHOP_DOMAIN = "driftwatch-sandbox.myshopify.com"
#: Seconds before each of the 8 retries: 4 hours in all, as Shopify documents.
RETRY_DELAYS: tuple[float, ...] = (60, 120, 300, 600, 1200, 2400, 3600, 6120)
_LOOPBACK_NAMES = {"localhost"}

_EMITTERS: weakref.WeakKeyDictionary[Store, WebhookEmitter] = weakref.WeakKeyDictionary()


def sign(body: bytes, secret: str) -> str:
    """base64 of the HMAC-SHA256 of ``body`` under ``secret``, as Shopify signs."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def rest_topic(enum: str) -> str:
    """``INVENTORY_LEVELS_UPDATE`` → ``inventory_levels/update``."""
    head, _, tail = enum.lower().rpartition("_")
    return f"{head}/{tail}"


def enum_topic(topic: str) -> str:
    """``inventory_levels/update`` → ``INVENTORY_LEVELS_UPDATE``."""
    return topic.replace("/", "_").upper()


@dataclass(eq=False)
class HttpEndpoint:
    callback_url: str


@dataclass(eq=False)
class Subscription:
    """One webhook subscription: a topic (GraphQL enum form) and where to send it."""

    num: int
    topic: str
    uri: str
    created_at: datetime
    updated_at: datetime
    format: str = "JSON"
    include_fields: list[str] = field(default_factory=list)
    metafield_namespaces: list[str] = field(default_factory=list)
    filter: str | None = None
    name: str | None = None

    @property
    def gid(self) -> str:
        return f"{GID_PREFIX}WebhookSubscription/{self.num}"


@dataclass(eq=False)
class Delivery:
    """One webhook: an event sent to one subscription. Retries keep its ids."""

    subscription: Subscription
    topic: str
    event_id: str
    webhook_id: str
    triggered_at: datetime
    payload: dict[str, Any]
    body: bytes
    attempts: int = 0
    #: pending | held | retrying | delivered | failed
    status: str = "pending"
    next_attempt_at: datetime | None = None

    @property
    def url(self) -> str:
        return self.subscription.uri


@dataclass(frozen=True)
class Attempt:
    """One POST of a delivery and how it was answered (``status`` None: no answer)."""

    delivery: Delivery
    number: int
    at: datetime
    url: str
    status: int | None
    error: str | None
    signature: str
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class WebhookEmitter:
    """Subscriptions and deliveries of one fake shop (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        secret: str = DEFAULT_WEBHOOK_SECRET,
        shop_domain: str = SHOP_DOMAIN,
        api_version: str = "2026-07",
        seed: int = 0,
        timeout: float = 10.0,
    ) -> None:
        # No reference to ``store`` is kept: the registry below maps it to this emitter
        # weakly, and a value that held its key would never let either go.
        self.clock = clock
        self.secret = secret
        self.shop_domain = shop_domain
        self.api_version = api_version
        self.duplicate = False
        self.holding = False
        self.subscriptions: dict[int, Subscription] = {}
        self.deliveries: list[Delivery] = []
        self.attempts: list[Attempt] = []
        self.held: list[Delivery] = []
        self._rng = random.Random(seed)
        self._timeout = timeout
        self._next_num = 1_967_038_000_001
        self._dirty: dict[Level, datetime] = {}
        self._flush_scheduled = False
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        _EMITTERS[store] = self
        store.listeners.append(self._level_changed)

    # -- subscriptions ------------------------------------------------------------------
    def subscribe(self, topic: str, uri: str, *, format: str = "JSON") -> str:
        """Subscribe ``uri`` to ``topic`` (``inventory_levels/update`` or the enum form);
        return the subscription gid. Refuses what Shopify refuses (see :meth:`problems`)."""
        enum = enum_topic(topic) if "/" in topic else topic
        problems = self.problems(enum, uri)
        if problems:
            raise ValueError("; ".join(message for _, message in problems))
        return self._add(enum, uri, format).gid

    def problems(self, enum: str, uri: str | None) -> list[tuple[list[str], str]]:
        """Shopify's userErrors for subscribing ``uri`` to ``enum``, as (field, message)."""
        at = ["webhookSubscription", "callbackUrl"]
        if not uri:
            return [(at, "Address can't be blank")]
        parts = urlsplit(uri)
        if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname)):
            return [(at, f"Address protocol {parts.scheme}:// is not supported")]
        if not parts.hostname:
            return [(at, "Address is invalid")]
        if any(s.topic == enum and s.uri == uri for s in self.subscriptions.values()):
            return [(at, "Address for this topic has already been taken")]
        return []

    def delete_subscription(self, ref: str) -> bool:
        """Delete a subscription by gid; False if there is none."""
        num = parse_gid(ref, "WebhookSubscription")
        return num is not None and self.subscriptions.pop(num, None) is not None

    def _add(self, enum: str, uri: str, format: str = "JSON") -> Subscription:
        now = self.clock.now()
        sub = Subscription(self._next_num, enum, uri, now, now, format=format)
        self._next_num += 1
        self.subscriptions[sub.num] = sub
        return sub

    # -- emitting -----------------------------------------------------------------------
    def emit(
        self, topic: str, payload: dict[str, Any], *, triggered_at: datetime | None = None
    ) -> list[Delivery]:
        """One event of ``topic`` to every subscription of it (one delivery each)."""
        enum = enum_topic(topic)
        subs = [s for s in self.subscriptions.values() if s.topic == enum]
        if not subs:
            return []
        event_id = self._uuid()
        when = triggered_at or self.clock.now()
        body = json.dumps(payload, separators=(",", ":")).encode()
        out = []
        for sub in subs:
            delivery = Delivery(sub, rest_topic(enum), event_id, self._uuid(), when, payload, body)
            self.deliveries.append(delivery)
            out.append(delivery)
            if self.holding:
                delivery.status = "held"
                self.held.append(delivery)
            else:
                self._enqueue(delivery)
        return out

    def release(self, *, reverse: bool = False) -> int:
        """Send the held deliveries (newest first with ``reverse``); how many."""
        held, self.held = self.held, []
        for delivery in reversed(held) if reverse else held:
            delivery.status = "pending"
            self._enqueue(delivery)
        return len(held)

    def flush(self) -> None:
        """Emit ``inventory_levels/update`` for the levels changed since the last flush
        (runs by itself right after each operation when an event loop is running)."""
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, {}
        for level, when in dirty.items():
            self.emit("inventory_levels/update", level_payload(level), triggered_at=when)

    def _level_changed(self, level: Level) -> None:
        self._dirty.pop(level, None)  # keep order of the latest change
        self._dirty[level] = self.clock.now()
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: flush() by hand
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    # -- sending ------------------------------------------------------------------------
    async def idle(self) -> None:
        """Wait until every delivery queued so far has been sent (and answered)."""
        if self._dirty:
            self.flush()
        self._ensure_worker()
        await self._queue.join()

    async def deliver_due(self) -> int:
        """Retry every failed delivery whose next attempt is due on the clock; wait for
        them; return how many were sent."""
        now = self.clock.now()
        due = [
            d
            for d in self.deliveries
            if d.status == "retrying" and d.next_attempt_at is not None and d.next_attempt_at <= now
        ]
        for delivery in due:
            delivery.status = "pending"
            self._enqueue(delivery)
        await self.idle()
        return len(due)

    def next_retry_at(self) -> datetime | None:
        """When the earliest retry is due, if any."""
        times = [d.next_attempt_at for d in self.deliveries if d.status == "retrying"]
        return min((t for t in times if t is not None), default=None)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _enqueue(self, delivery: Delivery) -> None:
        self._queue.put_nowait(delivery)
        self._ensure_worker()

    def _ensure_worker(self) -> None:
        if self._worker is not None and not self._worker.done():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._worker = asyncio.create_task(self._work(), name="fake-shopify-webhooks")

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._send(delivery)
                if self.duplicate:
                    await self._send(delivery, duplicate=True)
            finally:
                self._queue.task_done()

    async def replay(
        self,
        delivery: Delivery,
        *,
        url: str | None = None,
        event_id: str | None = KEEP,
        webhook_id: str | None = KEEP,
        triggered_at: str | None = KEEP,
        shop_domain: str | None = KEEP,
    ) -> Attempt:
        """Send a captured ``delivery`` again as an attacker would: the same body and the
        signature it was sent with, headers changed as given (None leaves a header out;
        ``triggered_at`` is the raw header text, e.g. ``"9999-12-31T23:59:59Z"``). Not a
        delivery of Shopify's: never retried, and the delivery's status is unchanged.

        Shopify's documentation is why this verifies: "Each HTTPS delivery includes a
        base64-encoded HMAC signature in the X-Shopify-Hmac-SHA256 header, generated
        using your app's client secret and the raw request body" — the headers are not
        signed (https://shopify.dev/docs/apps/build/webhooks/verify-deliveries; the
        headers: https://shopify.dev/docs/apps/build/webhooks/delivery-structure).
        """
        signed = [a.signature for a in self.attempts if a.delivery is delivery]
        signature = signed[-1] if signed else sign(delivery.body, self.secret)
        headers = self._headers(delivery, signature)
        for name, value in (
            ("X-Shopify-Event-Id", event_id),
            ("X-Shopify-Webhook-Id", webhook_id),
            ("X-Shopify-Triggered-At", triggered_at),
            ("X-Shopify-Shop-Domain", shop_domain),
        ):
            if value is None:
                del headers[name]
            elif value is not KEEP:
                headers[name] = value
        status, error = await self._post(url or delivery.url, delivery.body, headers)
        attempt = Attempt(
            delivery,
            delivery.attempts,
            self.clock.now(),
            url or delivery.url,
            status,
            error,
            headers["X-Shopify-Hmac-Sha256"],
            duplicate=True,
        )
        self.attempts.append(attempt)
        return attempt

    def _headers(self, delivery: Delivery, signature: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": delivery.topic,
            "X-Shopify-Hmac-Sha256": signature,
            "X-Shopify-Shop-Domain": self.shop_domain,
            "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Webhook-Id": delivery.webhook_id,
            "X-Shopify-Event-Id": delivery.event_id,
            "X-Shopify-Triggered-At": triggered_header(delivery.triggered_at),
        }

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        try:
            async with self._session.post(url, data=body, headers=headers) as r:
                await r.read()
                return r.status, None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def _send(self, delivery: Delivery, *, duplicate: bool = False) -> None:
        if not duplicate:
            delivery.attempts += 1
        signature = sign(delivery.body, self.secret)
        headers = self._headers(delivery, signature)
        status, error = await self._post(delivery.url, delivery.body, headers)
        attempt = Attempt(
            delivery,
            delivery.attempts,
            self.clock.now(),
            delivery.url,
            status,
            error,
            signature,
            duplicate,
        )
        self.attempts.append(attempt)
        if duplicate:
            return
        if attempt.ok:
            delivery.status = "delivered"
            delivery.next_attempt_at = None
        elif delivery.attempts <= len(RETRY_DELAYS):
            delivery.status = "retrying"
            delay = RETRY_DELAYS[delivery.attempts - 1]
            delivery.next_attempt_at = self.clock.now() + timedelta(seconds=delay)
        else:
            delivery.status = "failed"
            delivery.next_attempt_at = None

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def level_payload(level: Level) -> dict[str, Any]:
    """The REST-style ``inventory_levels/update`` body for ``level``."""
    return {
        "inventory_item_id": level.item.num,
        "location_id": level.location.num,
        "available": level.get("available"),
        "updated_at": level.updated_at.astimezone(UTC).isoformat(timespec="seconds"),
        "admin_graphql_api_id": level.gid,
    }


def triggered_header(moment: datetime) -> str:
    """``X-Shopify-Triggered-At``: UTC with fractional seconds and a ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- GraphQL ---------------------------------------------------------------------------------
def _emitter(ctx: Context) -> WebhookEmitter:
    emitter = _EMITTERS.get(ctx.store)
    if emitter is None:
        raise ShopifyError("This fake shop has no webhook emitter.", "NOT_IMPLEMENTED_IN_FAKE")
    return emitter


def _created_key(sub: Subscription) -> tuple[Any, int]:
    return sub.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), sub.num


def _webhook_subscriptions(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    subs = list(_emitter(ctx).subscriptions.values())
    if args.get("topics"):
        subs = [s for s in subs if s.topic in args["topics"]]
    uri = args.get("uri") or args.get("callbackUrl")
    if uri:
        subs = [s for s in subs if s.uri == uri]
    if args.get("format"):
        subs = [s for s in subs if s.format == args["format"]]
    matchers: dict[str | None, search.Matcher] = {
        "id": lambda s, t: search.id_match(s.num, t),
        "created_at": lambda s, t: search.date_match(s.created_at, t),
        "updated_at": lambda s, t: search.date_match(s.updated_at, t),
    }
    subs = search.filter_objects(
        subs, args.get("query"), matchers, list(info.path.as_list()), ctx.search_warnings
    )
    if args.get("sortKey") == "ID":
        return paginate(subs, lambda s: (s.num, s.num), args)
    return paginate(subs, _created_key, args, parse_value=str)


def _webhook_subscription(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    num = parse_gid(args["id"], "WebhookSubscription")
    return _emitter(ctx).subscriptions.get(num) if num is not None else None


def _create(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    emitter = _emitter(ctx)
    data = args["webhookSubscription"]
    uri = data.get("uri") or data.get("callbackUrl")
    problems = emitter.problems(args["topic"], uri)
    if problems:
        return {
            "webhookSubscription": None,
            "userErrors": [{"field": f, "message": m} for f, m in problems],
        }
    sub = emitter._add(args["topic"], str(uri), data.get("format") or "JSON")
    sub.include_fields = list(data.get("includeFields") or [])
    sub.metafield_namespaces = list(data.get("metafieldNamespaces") or [])
    sub.filter = data.get("filter")
    sub.name = data.get("name")
    return {"webhookSubscription": sub, "userErrors": []}


def _delete(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    if _emitter(ctx).delete_subscription(args["id"]):
        return {"deletedWebhookSubscriptionId": args["id"], "userErrors": []}
    return {
        "deletedWebhookSubscriptionId": None,
        "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
    }


RESOLVERS[("QueryRoot", "webhookSubscriptions")] = _webhook_subscriptions
RESOLVERS[("QueryRoot", "webhookSubscription")] = _webhook_subscription
RESOLVERS[("Mutation", "webhookSubscriptionCreate")] = _create
RESOLVERS[("Mutation", "webhookSubscriptionDelete")] = _delete
TYPE_OF[Subscription] = "WebhookSubscription"
TYPE_OF[HttpEndpoint] = "WebhookHttpEndpoint"
attr(
    "WebhookSubscription",
    id=lambda s: s.gid,
    topic=lambda s: s.topic,
    uri=lambda s: s.uri,
    callbackUrl=lambda s: s.uri,
    endpoint=lambda s: HttpEndpoint(s.uri),
    format=lambda s: s.format,
    createdAt=lambda s: iso(s.created_at),
    updatedAt=lambda s: iso(s.updated_at),
    includeFields=lambda s: s.include_fields,
    metafieldNamespaces=lambda s: s.metafield_namespaces,
    metafields=lambda s: [],
    filter=lambda s: s.filter,
    name=lambda s: s.name,
    legacyResourceId=lambda s: str(s.num),
    apiVersion=lambda s: {"handle": "2026-07", "displayName": "2026-07", "supported": True},
)
attr("WebhookHttpEndpoint", callbackUrl=lambda e: e.callback_url)
