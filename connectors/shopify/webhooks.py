"""Shopify webhooks, received: verified, recorded, deduplicated, ordered, handed on.

Shopify signs each delivery with a base64 HMAC-SHA256 of the raw body under the app's
secret (``X-Shopify-Hmac-Sha256``), may deliver an event more than once, late (up to a
day) and in any order, and retries a delivery that is not answered 2xx (8 times over 4
hours). :meth:`WebhookReceiver.handle` is the aiohttp handler for that:

1. The raw body is read up to a limit (413 above it) and verified in constant time
   against each configured secret — the current one and, during a rotation, the
   previous one (401 on mismatch). A body that is not a JSON object is 400.
2. The delivery is recorded through the :class:`DeliveryStore` *before* the answer, so
   a 200 means it is durably known; the record claims the event id
   (``X-Shopify-Event-Id``, else ``X-Shopify-Webhook-Id``), and a second delivery of
   the same event is recorded as ``duplicate`` and never processed again. If the store
   is down or slower than the ack budget, the answer is 503 and Shopify retries (a
   record that lands late is still processed once; the retry is then a duplicate).
3. After the answer, one worker task processes accepted deliveries in arrival order. A
   delivery whose ``X-Shopify-Triggered-At`` is older than the newest already processed
   for the same resource (an inventory item at a location) is recorded ``stale`` and not
   applied. An ``inventory_levels/update`` becomes a :class:`Touched` handed to the
   injected ``on_touched`` callback; other topics (orders, refunds, item changes) are
   kept as evidence (a summary in the record) and handed to ``on_event`` if given.

Refusals (413, 401, 400) are recorded too, with no payload and no effect. Connectors
never import the ledger: the store is a Protocol the ledger satisfies structurally.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web

from connectors.clock import Clock

log = logging.getLogger(__name__)

INVENTORY_LEVELS_UPDATE = "inventory_levels/update"
INVENTORY_ITEMS_UPDATE = "inventory_items/update"
ORDERS_CREATE = "orders/create"
REFUNDS_CREATE = "refunds/create"
#: The topics Driftwatch subscribes to: levels (the trigger), the rest as evidence.
TOPICS: tuple[str, ...] = (
    INVENTORY_LEVELS_UPDATE,
    INVENTORY_ITEMS_UPDATE,
    ORDERS_CREATE,
    REFUNDS_CREATE,
)
#: 1 MiB: far above any inventory payload, small enough to refuse floods cheaply.
MAX_BODY_BYTES = 1 << 20
#: Seconds the handler may spend recording a delivery before it answers 503.
ACK_BUDGET_SECONDS = 0.8
#: Header values from unauthenticated senders are cut to this length before recording.
MAX_HEADER_CHARS = 200
#: Line items kept per order or refund in the evidence summary.
MAX_SUMMARY_LINES = 50

GID = "gid://shopify/"


@dataclass(frozen=True, slots=True)
class Touched:
    """Shopify says one inventory item's level at one location changed.

    Handed to ``on_touched`` so the monitors can run a (debounced) targeted diff; the
    ids are Admin GraphQL gids, ``available`` is Shopify's value at ``updated_at``.
    """

    inventory_item_id: str
    location_id: str
    available: int | None
    triggered_at: datetime | None
    updated_at: datetime | None
    event_id: str | None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """An accepted, in-order delivery of any topic (orders, refunds, item changes...)."""

    topic: str
    event_id: str | None
    triggered_at: datetime | None
    resource_key: str | None
    summary: Mapping[str, Any]
    payload: Mapping[str, Any]


OnTouched = Callable[[Touched], Awaitable[None]]
OnEvent = Callable[[WebhookEvent], Awaitable[None]]


class RecordedDelivery(Protocol):
    """What the store gives back for a recorded delivery: at least its id."""

    @property
    def id(self) -> int: ...


class DeliveryStore(Protocol):
    """Where deliveries are recorded (``ledger.Ledger`` implements it).

    ``record_delivery`` with a ``dedupe_key`` claims it atomically: when the key was
    claimed before it records the delivery as ``duplicate`` and returns ``(row, False)``.
    ``latest_triggered_at`` is the newest ``triggered_at`` among ``processed``
    deliveries of a resource.
    """

    async def record_delivery(
        self,
        *,
        system: str,
        topic: str | None,
        event_id: str | None,
        webhook_id: str | None,
        triggered_at: datetime | None,
        received_at: datetime,
        outcome: str,
        resource_key: str | None = None,
        detail: Mapping[str, Any] | None = None,
        dedupe_key: str | None = None,
    ) -> tuple[RecordedDelivery, bool]: ...

    async def finish_delivery(
        self,
        delivery_id: int,
        *,
        outcome: str,
        processed_at: datetime,
        detail: Mapping[str, Any] | None = None,
    ) -> object: ...

    async def latest_triggered_at(self, system: str, resource_key: str) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class _Headers:
    topic: str | None
    hmac: str | None
    shop: str | None
    api_version: str | None
    webhook_id: str | None
    event_id: str | None
    triggered_raw: str | None

    @classmethod
    def of(cls, request: web.Request) -> _Headers:
        def get(name: str) -> str | None:
            value = request.headers.get(name)
            return value.strip()[:MAX_HEADER_CHARS] if value and value.strip() else None

        return cls(
            topic=get("X-Shopify-Topic"),
            hmac=get("X-Shopify-Hmac-Sha256"),
            shop=get("X-Shopify-Shop-Domain"),
            api_version=get("X-Shopify-API-Version"),
            webhook_id=get("X-Shopify-Webhook-Id"),
            event_id=get("X-Shopify-Event-Id"),
            triggered_raw=get("X-Shopify-Triggered-At"),
        )

    @property
    def triggered_at(self) -> datetime | None:
        return parse_time(self.triggered_raw)

    @property
    def dedupe_key(self) -> str | None:
        return self.event_id or self.webhook_id

    def detail(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (
                ("shop", self.shop),
                ("api_version", self.api_version),
                ("triggered_at_header", self.triggered_raw if self.triggered_at is None else None),
            )
            if v is not None
        }


@dataclass
class _Job:
    headers: _Headers
    topic: str
    payload: dict[str, Any]
    received_at: datetime
    resource_key: str | None
    summary: dict[str, Any]
    touched: Touched | None
    problem: str | None
    delivery_id: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


class WebhookReceiver:
    """Receives Shopify webhooks; mount :meth:`handle` with ``add_post``.

    :param system: the Shopify system's name in the configuration (recorded with each
        delivery, and the dedupe scope).
    :param secrets: the app's secret first, then any previous one still accepted during
        a rotation. Each record's ``detail["secret"]`` says which matched (0 = current).
    :param store: where deliveries are recorded (the ledger).
    :param clock: stamps ``received_at`` and ``processed_at``.
    :param on_touched: called, after the answer and in order, for each accepted, fresh
        ``inventory_levels/update``.
    :param on_event: called likewise for every other accepted, fresh topic.
    :param shop_domain: if given, deliveries for another shop are recorded ``ignored``.
    :param topics: topics processed; others are answered 200 and recorded ``ignored``.
    """

    def __init__(
        self,
        *,
        system: str,
        secrets: Sequence[str],
        store: DeliveryStore,
        clock: Clock,
        on_touched: OnTouched | None = None,
        on_event: OnEvent | None = None,
        shop_domain: str | None = None,
        topics: Iterable[str] = TOPICS,
        max_body_bytes: int = MAX_BODY_BYTES,
        ack_budget: float = ACK_BUDGET_SECONDS,
    ) -> None:
        keys = [s.encode("utf-8") for s in secrets if s]
        if not keys:
            raise ValueError("at least one webhook secret is needed")
        self.system = system
        self._keys = keys
        self._store = store
        self._clock = clock
        self._on_touched = on_touched
        self._on_event = on_event
        self._shop = shop_domain.lower() if shop_domain else None
        self._topics = frozenset(topics)
        self._max_body = max_body_bytes
        self._ack_budget = ack_budget
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        #: Deliveries by outcome, as decided by this process (for /metrics).
        self.outcomes: Counter[str] = Counter()
        #: Verified deliveries by the index of the secret that matched.
        self.secrets_used: Counter[int] = Counter()

    # -- the handler --------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: answer one delivery (processing happens after)."""
        received_at = self._clock.now()
        headers = _Headers.of(request)
        body = await self._read(request)
        if body is None:
            self._refuse(headers, received_at, "too_large", {"limit": self._max_body})
            return web.Response(status=413, text="payload too large")
        secret = self._verify(body, headers.hmac)
        if secret is None:
            reason = "missing" if headers.hmac is None else "mismatch"
            self._refuse(headers, received_at, "rejected_signature", {"signature": reason})
            return web.Response(status=401, text="invalid signature")
        self.secrets_used[secret] += 1
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict) or headers.topic is None:
            why = "body is not a JSON object" if headers.topic else "no X-Shopify-Topic"
            self._refuse(headers, received_at, "malformed", {"secret": secret, "reason": why})
            return web.Response(status=400, text=why)
        job = _job(headers, headers.topic, payload, received_at)
        job.detail = {**headers.detail(), "secret": secret, **job.detail}
        admit = self._track(asyncio.ensure_future(self._admit(job)))
        try:
            async with asyncio.timeout(self._ack_budget):
                await asyncio.shield(admit)
        except TimeoutError:
            log.warning("%s: recording webhook %s took too long; 503", self.system, job.topic)
            return web.Response(status=503, text="try again")
        except Exception:
            log.exception("%s: could not record webhook %s; 503", self.system, job.topic)
            return web.Response(status=503, text="try again")
        return web.Response(status=200, text="ok")

    async def idle(self) -> None:
        """Wait until every delivery received so far is recorded and processed."""
        while True:
            pending = [t for t in self._background if not t.done()]
            if pending:
                await asyncio.wait(pending)
                continue
            await self._queue.join()
            if not any(not t.done() for t in self._background):
                return

    async def close(self) -> None:
        """Stop the worker (deliveries not yet processed stay ``received``)."""
        tasks = [*self._background, *([self._worker] if self._worker else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker = None

    # -- at the door --------------------------------------------------------------------
    async def _read(self, request: web.Request) -> bytes | None:
        if request.content_length is not None and request.content_length > self._max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(64 * 1024):
            size += len(chunk)
            if size > self._max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _verify(self, body: bytes, signature: str | None) -> int | None:
        if signature is None:
            return None
        given = signature.encode("utf-8", errors="replace")
        matched: int | None = None
        for index, key in enumerate(self._keys):  # every key, so timing says nothing
            expected = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest())
            if hmac.compare_digest(expected, given) and matched is None:
                matched = index
        return matched

    def _refuse(
        self, headers: _Headers, received_at: datetime, outcome: str, detail: dict[str, Any]
    ) -> None:
        self.outcomes[outcome] += 1
        record = self._store.record_delivery(
            system=self.system,
            topic=headers.topic,
            event_id=headers.event_id,
            webhook_id=headers.webhook_id,
            triggered_at=headers.triggered_at,
            received_at=received_at,
            outcome=outcome,
            detail={**headers.detail(), **detail},
        )
        self._track(asyncio.ensure_future(record))

    async def _admit(self, job: _Job) -> None:
        headers = job.headers
        ignored = self._ignore_reason(job)
        delivery, is_new = await self._store.record_delivery(
            system=self.system,
            topic=job.topic,
            event_id=headers.event_id,
            webhook_id=headers.webhook_id,
            triggered_at=headers.triggered_at,
            received_at=job.received_at,
            outcome="ignored" if ignored else "received",
            resource_key=job.resource_key,
            detail={**job.detail, "ignored": ignored} if ignored else job.detail,
            dedupe_key=None if ignored else headers.dedupe_key,
        )
        if ignored:
            self.outcomes["ignored"] += 1
            return
        if not is_new:
            self.outcomes["duplicate"] += 1
            return
        job.delivery_id = delivery.id
        self._queue.put_nowait(job)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name=f"{self.system}-webhooks")

    def _ignore_reason(self, job: _Job) -> str | None:
        if job.topic not in self._topics:
            return f"topic {job.topic} is not handled"
        if self._shop is not None and (job.headers.shop or "").lower() != self._shop:
            return f"shop {job.headers.shop} is not {self._shop}"
        return None

    def _track(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._background.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: webhook record failed", self.system, exc_info=task.exception())

    # -- after the answer ---------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._process(job)
            except Exception:
                log.exception("%s: webhook %s could not be settled", self.system, job.topic)
            finally:
                self._queue.task_done()

    async def _process(self, job: _Job) -> None:
        outcome, detail = "processed", dict(job.summary)
        triggered = job.headers.triggered_at
        try:
            if job.problem is not None:
                raise ValueError(job.problem)
            if job.resource_key is not None and triggered is not None:
                latest = await self._store.latest_triggered_at(self.system, job.resource_key)
                if latest is not None and triggered < latest:
                    outcome = "stale"
                    detail["newer_triggered_at"] = latest.isoformat()
            if outcome == "processed":
                if job.touched is not None:
                    if self._on_touched is not None:
                        await self._on_touched(job.touched)
                elif self._on_event is not None:
                    await self._on_event(
                        WebhookEvent(
                            job.topic,
                            job.headers.event_id,
                            triggered,
                            job.resource_key,
                            job.summary,
                            job.payload,
                        )
                    )
        except Exception as exc:
            log.warning("%s: webhook %s failed: %s", self.system, job.topic, exc)
            outcome = "error"
            detail["error"] = f"{type(exc).__name__}: {exc}"[:500]
        self.outcomes[outcome] += 1
        await self._store.finish_delivery(
            job.delivery_id, outcome=outcome, processed_at=self._clock.now(), detail=detail
        )


def make_webhook_handler(
    *,
    system: str,
    secrets: Sequence[str],
    store: DeliveryStore,
    clock: Clock,
    on_touched: OnTouched | None = None,
    on_event: OnEvent | None = None,
    shop_domain: str | None = None,
    topics: Iterable[str] = TOPICS,
    max_body_bytes: int = MAX_BODY_BYTES,
    ack_budget: float = ACK_BUDGET_SECONDS,
) -> WebhookReceiver:
    """A :class:`WebhookReceiver`; mount it with
    ``app.router.add_post("/webhooks/shopify", receiver.handle)`` and
    ``await receiver.close()`` on shutdown."""
    return WebhookReceiver(
        system=system,
        secrets=secrets,
        store=store,
        clock=clock,
        on_touched=on_touched,
        on_event=on_event,
        shop_domain=shop_domain,
        topics=topics,
        max_body_bytes=max_body_bytes,
        ack_budget=ack_budget,
    )


def sign(body: bytes, secret: str) -> str:
    """Shopify's signature of ``body``: base64 of its HMAC-SHA256 under ``secret``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# -- payloads -------------------------------------------------------------------------------
def _job(headers: _Headers, topic: str, payload: dict[str, Any], received_at: datetime) -> _Job:
    job = _Job(headers, topic, payload, received_at, None, {}, None, None)
    try:
        if topic == INVENTORY_LEVELS_UPDATE:
            item = _gid("InventoryItem", payload.get("inventory_item_id"))
            location = _gid("Location", payload.get("location_id"))
            available = payload.get("available")
            if available is not None and not isinstance(available, int):
                raise ValueError(f"available is not an integer: {available!r}")
            job.touched = Touched(
                item,
                location,
                available,
                headers.triggered_at,
                parse_time(payload.get("updated_at")),
                headers.event_id,
            )
            job.resource_key = level_key(item, location)
            job.summary = {"available": available}
        elif topic == INVENTORY_ITEMS_UPDATE:
            job.resource_key = _gid("InventoryItem", payload.get("id"))
            job.summary = {"sku": payload.get("sku"), "tracked": payload.get("tracked")}
        elif topic == ORDERS_CREATE:
            job.resource_key = _gid("Order", payload.get("id"))
            job.summary = {
                "order": payload.get("name"),
                "line_items": [
                    {k: line.get(k) for k in ("sku", "variant_id", "quantity")}
                    for line in _lines(payload.get("line_items"))
                ],
            }
        elif topic == REFUNDS_CREATE:
            job.resource_key = _gid("Refund", payload.get("id"))
            job.summary = {
                "order_id": payload.get("order_id"),
                "refund_line_items": [
                    {
                        "sku": (line.get("line_item") or {}).get("sku"),
                        **{k: line.get(k) for k in ("quantity", "restock_type", "location_id")},
                    }
                    for line in _lines(payload.get("refund_line_items"))
                ],
            }
    except (ValueError, TypeError, AttributeError) as exc:
        job.problem = f"unexpected {topic} payload: {exc}"
    return job


def level_key(inventory_item_id: str, location_id: str) -> str:
    """The resource key of an inventory level: ``<item gid>@<location gid>``."""
    return f"{inventory_item_id}@{location_id}"


def _gid(kind: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise ValueError(f"{kind} id is missing or not numeric: {value!r}")
    return f"{GID}{kind}/{value}"


def _lines(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [line for line in value[:MAX_SUMMARY_LINES] if isinstance(line, dict)]


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset, up to nanoseconds) as aware UTC, else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)
