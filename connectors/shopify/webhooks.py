"""Shopify webhooks, received: verified, recorded, deduplicated, ordered, handed on.

Shopify signs each delivery with a base64 HMAC-SHA256 of the raw body under the app's
secret (``X-Shopify-Hmac-Sha256``), may deliver an event more than once, late (up to a
day) and in any order, and retries a delivery that is not answered 2xx (8 times over 4
hours). :meth:`WebhookReceiver.handle` is the aiohttp handler for that:

1. The raw body is read up to a limit (413 above it) within a read timeout (408), and
   verified in constant time against each configured secret — the current one and,
   during a rotation, the previous one (401 on mismatch). A delivery whose
   ``X-Shopify-Shop-Domain`` is not one of the shops served is refused (403). A body
   that is not a JSON object, or nests deeper than :data:`~connectors.safejson.MAX_DEPTH`
   levels, is 400.
2. The delivery is recorded through the :class:`DeliveryStore` *before* the answer, so
   a 200 means it is durably known; the record claims the event id
   (``X-Shopify-Event-Id``, else ``X-Shopify-Webhook-Id``, else a hash of the topic and
   the body), and a second delivery of the same event is recorded as ``duplicate`` and
   never processed again. Records are group-committed: one write is in flight at a
   time, and the deliveries that arrive meanwhile are recorded together in the next
   transaction (claims decided in arrival order, so a duplicate within one batch is
   still a duplicate); each is answered once its own batch is committed. If the store
   is down or slower than the ack budget, the answer is 503 and Shopify retries (a
   record that lands late is still processed once; the retry is then a duplicate).
3. After the answer, one worker task processes accepted deliveries in arrival order, a
   batch at a time (one read of the newest processed times, one write of the
   outcomes). Deliveries of one resource (an inventory item at a location) are ordered
   by the payload's own ``updated_at`` where it has one (the body is what the HMAC
   covers), else by ``X-Shopify-Triggered-At``; either is taken as the arrival time if
   it claims to be later than arrival plus :data:`MAX_CLOCK_SKEW`, so a replayed body
   with a forged future header cannot make later genuine deliveries stale. One ordered
   before the newest already processed for its resource, in the ledger or earlier in
   the same batch, is recorded ``stale`` and not applied. An
   ``inventory_levels/update`` becomes a :class:`Touched` handed to the injected
   ``on_touched`` callback; other topics (orders, refunds, item changes) are kept as
   evidence (a summary in the record) and handed to ``on_event`` if given.
4. :meth:`WebhookReceiver.resume` processes the deliveries a previous process recorded
   and answered but never processed (still ``received``): call it at start.

Refusals (413, 401, 403, 400) are counted, not recorded one by one: anyone can send
them, so they are aggregated per outcome and reason and handed to the store with the
next group commit. Connectors never import the ledger: the store is a Protocol the
ledger satisfies structurally.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from connectors.clock import Clock
from connectors.normalize import is_whole_number
from connectors.safejson import UnsafeJSON, loads_bounded

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
#: Seconds a sender may take to send the body before it is answered 408.
READ_TIMEOUT_SECONDS = 10.0
#: Seconds the handler may spend recording a delivery before it answers 503.
ACK_BUDGET_SECONDS = 0.8
#: How far past its arrival a delivery's own time may be before it is not believed (the
#: clocks of Shopify and of this host may differ a little; an event never comes from
#: the future).
MAX_CLOCK_SKEW = timedelta(seconds=60)
#: Deliveries recorded (or settled) per transaction at most.
MAX_BATCH = 500
#: Header values from unauthenticated senders are cut to this length before recording.
MAX_HEADER_CHARS = 200
#: Line items kept per order or refund in the evidence summary.
MAX_SUMMARY_LINES = 50
#: Keys of a record's ``detail`` that come from the headers, not the payload summary.
_HEADER_DETAIL = frozenset(("shop", "api_version", "triggered_at_header", "secret"))

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
    """An accepted, in-order delivery of any topic (orders, refunds, item changes...).

    ``payload`` is the body as sent; for a delivery resumed after a restart it is the
    recorded ``summary`` (the body itself is not kept)."""

    topic: str
    event_id: str | None
    triggered_at: datetime | None
    resource_key: str | None
    summary: Mapping[str, Any]
    payload: Mapping[str, Any]


OnTouched = Callable[[Touched], Awaitable[None]]
OnEvent = Callable[[WebhookEvent], Awaitable[None]]


class RecordedDelivery(Protocol):
    """What the store gives back for a recorded delivery."""

    @property
    def id(self) -> int: ...


class StoredDelivery(Protocol):
    """A delivery the store holds as ``received`` (accepted, not yet processed)."""

    @property
    def id(self) -> int: ...
    @property
    def topic(self) -> str | None: ...
    @property
    def event_id(self) -> str | None: ...
    @property
    def resource_key(self) -> str | None: ...
    @property
    def triggered_at(self) -> datetime | None: ...
    @property
    def ordered_at(self) -> datetime | None: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def detail(self) -> Mapping[str, Any]: ...


class DeliveryStore(Protocol):
    """Where deliveries are recorded (``ledger.Ledger`` implements it).

    ``record_deliveries`` records a batch in one transaction; each mapping holds a
    delivery's fields (``system``, ``topic``, ``event_id``, ``webhook_id``,
    ``triggered_at``, ``ordered_at``, ``received_at``, ``outcome``, ``resource_key``,
    ``detail``, ``dedupe_key``). A ``dedupe_key`` is claimed atomically, in batch
    order: when it was claimed before (in an earlier transaction or earlier in the
    batch) the delivery is recorded as ``duplicate`` and its result is ``(row, False)``.
    ``refusals`` are counts of deliveries refused at the door (``system``, ``outcome``,
    ``reason``, ``count``, ``first_at``, ``last_at``, ``sample``), stored in the same
    transaction. ``finish_deliveries`` settles a batch (``delivery_id``, ``outcome``,
    ``processed_at``, ``detail``). ``latest_ordered_many`` is the newest ``ordered_at``
    among ``processed`` deliveries of each resource (resources with none left out).
    ``received_deliveries`` pages through the deliveries still ``received``, by id.
    """

    async def record_deliveries(
        self,
        deliveries: Sequence[Mapping[str, Any]],
        refusals: Sequence[Mapping[str, Any]] = (),
    ) -> Sequence[tuple[RecordedDelivery, bool]]: ...

    async def finish_deliveries(self, finished: Sequence[Mapping[str, Any]]) -> object: ...

    async def latest_ordered_many(
        self, system: str, resource_keys: Iterable[str]
    ) -> Mapping[str, datetime]: ...

    async def received_deliveries(
        self, system: str, *, after_id: int = 0, limit: int = 500
    ) -> Sequence[StoredDelivery]: ...


@dataclass(frozen=True, slots=True)
class _Headers:
    topic: str | None
    hmac: str | None
    shop: str | None
    api_version: str | None
    webhook_id: str | None
    event_id: str | None
    triggered_raw: str | None
    triggered_at: datetime | None

    @classmethod
    def of(cls, request: web.Request) -> _Headers:
        def get(name: str) -> str | None:
            value = request.headers.get(name)
            return value.strip()[:MAX_HEADER_CHARS] if value and value.strip() else None

        triggered = get("X-Shopify-Triggered-At")
        return cls(
            topic=get("X-Shopify-Topic"),
            hmac=get("X-Shopify-Hmac-Sha256"),
            shop=get("X-Shopify-Shop-Domain"),
            api_version=get("X-Shopify-API-Version"),
            webhook_id=get("X-Shopify-Webhook-Id"),
            event_id=get("X-Shopify-Event-Id"),
            triggered_raw=triggered,
            triggered_at=parse_time(triggered),
        )

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

    def sample(self) -> dict[str, str | None]:
        """What is kept of a refused delivery: who it says it is, cut short."""
        return {
            "topic": self.topic,
            "shop": self.shop,
            "event_id": self.event_id,
            "webhook_id": self.webhook_id,
            "triggered_at": self.triggered_raw,
        }


@dataclass
class _Job:
    """An accepted delivery on its way through recording and processing."""

    topic: str
    event_id: str | None
    triggered_at: datetime | None
    ordered_at: datetime | None
    received_at: datetime
    resource_key: str | None
    summary: dict[str, Any]
    touched: Touched | None
    problem: str | None
    payload: Mapping[str, Any] = field(default_factory=dict)
    delivery_id: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    ignored: str | None = None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A delivery waiting for the next group commit; ``recorded`` resolves once it is."""

    fields: dict[str, Any]
    job: _Job
    recorded: asyncio.Future[None]


@dataclass
class _Refusals:
    """Refusals of one outcome and reason not yet handed to the store."""

    count: int
    first_at: datetime
    last_at: datetime
    sample: dict[str, str | None]


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
    :param shop_domains: the ``*.myshopify.com`` domains served; a signed delivery whose
        ``X-Shopify-Shop-Domain`` is none of them is refused (403) and counted. None:
        not checked.
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
        shop_domains: Iterable[str] | None = None,
        topics: Iterable[str] = TOPICS,
        max_body_bytes: int = MAX_BODY_BYTES,
        read_timeout: float = READ_TIMEOUT_SECONDS,
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
        self._shops = (
            None if shop_domains is None else frozenset(shop_domain(d) for d in shop_domains)
        )
        self._topics = frozenset(topics)
        self._max_body = max_body_bytes
        self._read_timeout = read_timeout
        self._ack_budget = ack_budget
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._pending: list[_Pending] = []
        self._refused: dict[tuple[str, str], _Refusals] = {}
        self._writer: asyncio.Future[Any] | None = None
        #: deliveries queued for processing by this process and not settled yet
        self._in_flight: set[int] = set()
        #: deliveries queued for the group commit and not written yet, by dedupe key: a
        #: retry (same event id) waits for the first copy instead of queueing behind it,
        #: so under a retry storm a slow store is never asked for a copy per retry before
        #: it can answer any (each would lengthen the queue that made the first one late)
        self._recording: dict[str, asyncio.Future[None]] = {}
        #: Deliveries by outcome, as decided by this process (for /metrics).
        self.outcomes: Counter[str] = Counter()
        #: Verified deliveries by the index of the secret that matched.
        self.secrets_used: Counter[int] = Counter()

    @property
    def shop_domains(self) -> frozenset[str] | None:
        """The shop domains served (None: any)."""
        return self._shops

    # -- the handler --------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: answer one delivery (processing happens after)."""
        received_at = self._clock.now()
        headers = _Headers.of(request)
        try:
            body = await self._read(request)
        except TimeoutError:
            return web.Response(status=408, text="request body not received in time")
        if body is None:
            self._refuse(headers, received_at, "too_large", "")
            return web.Response(status=413, text="payload too large")
        secret = self._verify(body, headers.hmac)
        if secret is None:
            reason = "missing" if headers.hmac is None else "mismatch"
            self._refuse(headers, received_at, "rejected_signature", reason)
            return web.Response(status=401, text="invalid signature")
        self.secrets_used[secret] += 1
        if self._shops is not None and shop_domain(headers.shop or "") not in self._shops:
            self._refuse(
                headers, received_at, "wrong_shop", "missing" if headers.shop is None else "other"
            )
            return web.Response(status=403, text="this shop is not served here")
        if headers.topic is None:
            self._refuse(headers, received_at, "malformed", "no_topic")
            return web.Response(status=400, text="no X-Shopify-Topic")
        try:
            payload = loads_bounded(body)
        except UnsafeJSON as exc:
            self._refuse(headers, received_at, "malformed", "not_json")
            return web.Response(status=400, text=f"body is not JSON this receiver reads: {exc}")
        if not isinstance(payload, dict):
            self._refuse(headers, received_at, "malformed", "not_object")
            return web.Response(status=400, text="body is not a JSON object")
        job = _job(headers, headers.topic, payload, received_at)
        job.detail = {**headers.detail(), **job.detail, "secret": secret, **job.summary}
        job.ignored = self._ignore_reason(job)
        dedupe_key = headers.event_id or headers.webhook_id or _body_key(headers.topic, body)
        fields = self._fields(job, headers, dedupe_key)
        first = self._recording.get(dedupe_key) if not job.ignored else None
        # a retry of a delivery still waiting for the group commit waits for that write,
        # not for one of its own queued behind it; once the first copy is recorded it is
        # answered, and its own row (a duplicate) is written with the next commit
        recorded = self._record(fields, job) if first is None else first
        try:
            async with asyncio.timeout(self._ack_budget):
                await asyncio.shield(recorded)
        except TimeoutError:
            log.warning("%s: recording webhook %s took too long; 503", self.system, job.topic)
            return web.Response(status=503, text="try again")
        except asyncio.CancelledError:
            if not recorded.cancelled():  # this handler was cancelled, not the record
                raise
            return web.Response(status=503, text="try again")
        except Exception as exc:
            log.warning("%s: could not record webhook %s; 503: %s", self.system, job.topic, exc)
            return web.Response(status=503, text="try again")
        if first is not None:
            self._record(fields, job)  # every delivery answered 200 is a row
        return web.Response(status=200, text="ok")

    async def flush(self) -> None:
        """Wait until what was answered so far is written: deliveries and refusal counts.

        Refusals are counted in memory and reach the store with the next group commit;
        a webhook-health check flushes first, so it judges every answer given before it.
        """
        while self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})

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
        for pending in self._pending:  # never written: their senders were answered 503
            pending.recorded.cancel()
        self._pending.clear()
        self._worker = None

    async def resume(self, *, page: int = MAX_BATCH) -> int:
        """Process what a previous process accepted (answered 200) but never processed:
        the deliveries the store still holds as ``received``, oldest first, a page at a
        time (each page processed before the next is read). How many were queued."""
        queued = 0
        after = 0
        while True:
            rows = await self._store.received_deliveries(self.system, after_id=after, limit=page)
            if not rows:
                return queued
            after = rows[-1].id
            for row in rows:
                if row.id not in self._in_flight:  # this process has it queued already
                    self._enqueue(_resumed(row))
                    queued += 1
            log.info("%s: resuming %d unprocessed webhooks", self.system, len(rows))
            await self._queue.join()
            if len(rows) < page:
                return queued

    # -- at the door --------------------------------------------------------------------
    async def _read(self, request: web.Request) -> bytes | None:
        """The body, or None above the limit; TimeoutError if it does not arrive in
        time (a slow sender must not hold a connection open for ever)."""
        if request.content_length is not None and request.content_length > self._max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self._read_timeout):
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

    def _refuse(self, headers: _Headers, at: datetime, outcome: str, reason: str) -> None:
        """Count a refusal; it reaches the store with the next group commit."""
        self.outcomes[outcome] += 1
        counted = self._refused.get((outcome, reason))
        if counted is None:
            self._refused[(outcome, reason)] = _Refusals(1, at, at, headers.sample())
        else:
            counted.count += 1
            counted.last_at = max(counted.last_at, at)
            counted.sample = headers.sample()
        self._kick()

    def _fields(self, job: _Job, headers: _Headers, dedupe_key: str) -> dict[str, Any]:
        ignored = job.ignored
        return {
            "system": self.system,
            "topic": job.topic,
            "event_id": headers.event_id,
            "webhook_id": headers.webhook_id,
            "triggered_at": job.triggered_at,
            "ordered_at": job.ordered_at,
            "received_at": job.received_at,
            "outcome": "ignored" if ignored else "received",
            "resource_key": job.resource_key,
            "detail": {**job.detail, "ignored": ignored} if ignored else job.detail,
            "dedupe_key": None if ignored else dedupe_key,
        }

    # -- group commit -------------------------------------------------------------------
    def _record(self, fields: dict[str, Any], job: _Job) -> asyncio.Future[None]:
        """Queue a delivery for the next group commit; the future resolves once it is
        recorded (and, if accepted, queued for processing), or fails as the write did.

        One writer at a time: deliveries arriving while a transaction is in flight are
        written together in the next one, so a burst costs a few transactions instead
        of one each queued behind the other for the database's write lock.
        """
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        recorded.add_done_callback(_retrieve)  # the writer logs a failure; no handler may wait
        self._pending.append(_Pending(fields, job, recorded))
        key = fields["dedupe_key"]
        if key is not None:
            self._recording[key] = recorded
            recorded.add_done_callback(lambda done: self._written(key, done))
        self._kick()
        return recorded

    def _written(self, key: str, recorded: asyncio.Future[None]) -> None:
        if self._recording.get(key) is recorded:
            del self._recording[key]

    def _kick(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = self._track(asyncio.ensure_future(self._write_batches()))

    async def _write_batches(self) -> None:
        while self._pending or self._refused:
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            refused, self._refused = self._refused, {}
            refusals = [
                {
                    "system": self.system,
                    "outcome": outcome,
                    "reason": reason,
                    "count": r.count,
                    "first_at": r.first_at,
                    "last_at": r.last_at,
                    "sample": r.sample,
                }
                for (outcome, reason), r in refused.items()
            ]
            try:
                results = await self._store.record_deliveries([p.fields for p in batch], refusals)
            except asyncio.CancelledError:
                for pending in batch:
                    pending.recorded.cancel()
                raise
            except Exception as exc:
                log.error("%s: could not record %d webhooks: %s", self.system, len(batch), exc)
                for pending in batch:
                    if not pending.recorded.done():
                        pending.recorded.set_exception(exc)
                self._count_again(refused)
                if not batch:
                    return  # only counts left: the next delivery brings them along
                continue
            for pending, (delivery, is_new) in zip(batch, results, strict=True):
                self._admitted(pending.job, delivery.id, is_new)
                if not pending.recorded.done():
                    pending.recorded.set_result(None)

    def _count_again(self, refused: dict[tuple[str, str], _Refusals]) -> None:
        """Refusal counts whose write failed, merged back for the next one."""
        for key, r in refused.items():
            now = self._refused.get(key)
            if now is None:
                self._refused[key] = r
            else:
                now.count += r.count
                now.first_at = min(now.first_at, r.first_at)

    def _admitted(self, job: _Job, delivery_id: int, is_new: bool) -> None:
        if job.ignored:
            self.outcomes["ignored"] += 1
            return
        if not is_new:
            self.outcomes["duplicate"] += 1
            return
        job.delivery_id = delivery_id
        self._enqueue(job)

    def _enqueue(self, job: _Job) -> None:
        self._in_flight.add(job.delivery_id)
        self._queue.put_nowait(job)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name=f"{self.system}-webhooks")

    def _ignore_reason(self, job: _Job) -> str | None:
        if job.topic not in self._topics:
            return f"topic {job.topic} is not handled"
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
            jobs = [await self._queue.get()]
            while len(jobs) < MAX_BATCH and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            try:
                await self._process(jobs)
            except Exception:
                log.exception("%s: %d webhooks could not be settled", self.system, len(jobs))
            finally:
                for job in jobs:
                    self._in_flight.discard(job.delivery_id)
                    self._queue.task_done()

    async def _process(self, jobs: list[_Job]) -> None:
        """Settle a batch of accepted deliveries, in arrival order, with one read of the
        newest processed times and one write of the outcomes."""
        timed = {j.resource_key for j in jobs if j.resource_key and j.ordered_at}
        unread: Exception | None = None
        latest: dict[str, datetime] = {}
        try:
            if timed:
                latest = dict(await self._store.latest_ordered_many(self.system, timed))
        except Exception as exc:
            unread = exc
        finished = [await self._settle(job, latest, unread) for job in jobs]
        await self._store.finish_deliveries(finished)

    async def _settle(
        self, job: _Job, latest: dict[str, datetime], unread: Exception | None
    ) -> dict[str, Any]:
        """Decide one delivery (stale, processed or error) and hand it on; ``latest``
        holds the newest processed ``ordered_at`` per resource, kept up to date with
        this batch's decisions so far."""
        outcome, detail = "processed", {}
        ordered, key = job.ordered_at, job.resource_key
        try:
            if job.problem is not None:
                raise ValueError(job.problem)
            if key is not None and ordered is not None:
                if unread is not None:
                    raise unread
                newest = latest.get(key)
                if newest is not None and ordered < newest:
                    outcome = "stale"
                    detail["newer_ordered_at"] = newest.isoformat()
            if outcome == "processed":
                if job.touched is not None:
                    if self._on_touched is not None:
                        await self._on_touched(job.touched)
                elif self._on_event is not None:
                    await self._on_event(
                        WebhookEvent(
                            job.topic,
                            job.event_id,
                            job.triggered_at,
                            job.resource_key,
                            job.summary,
                            job.payload,
                        )
                    )
        except Exception as exc:
            log.warning("%s: webhook %s failed: %s", self.system, job.topic, exc)
            outcome = "error"
            detail["error"] = f"{type(exc).__name__}: {exc}"[:500]
        if outcome == "processed" and key is not None and ordered is not None:
            latest[key] = max(latest.get(key, ordered), ordered)
        self.outcomes[outcome] += 1
        return {
            "delivery_id": job.delivery_id,
            "outcome": outcome,
            "processed_at": self._clock.now(),
            "detail": detail,
        }


#: The ``system`` under which deliveries naming no configured shop are counted: not a
#: valid system name (see monitors.config.types.Name), so never a store's.
UNKNOWN_SHOP = "(unknown shop)"


class WebhookRouter:
    """One webhook address for many shops: an app installed in several shops has each
    shop post to the same URL, naming itself in ``X-Shopify-Shop-Domain``
    (https://shopify.dev/docs/apps/build/webhooks/delivery-structure) and signing the
    raw body with the app's client secret
    (https://shopify.dev/docs/apps/build/webhooks/subscribe/https).

    Each delivery goes to the receiver serving the shop it names, which verifies it
    with *its* store's secrets and records it under *its* system. A delivery naming no
    shop served here is refused (403, as a receiver refuses a wrong shop) before its
    body is read, and counted as a ``wrong_shop`` refusal under :data:`UNKNOWN_SHOP`,
    never under a store; the header is kept cut to :data:`MAX_HEADER_CHARS` (the ledger
    makes it storable). With a single receiver every delivery goes to it, exactly as
    before: it refuses other shops itself.

    :param receivers: one per store; with several, each must name its shop domains
        (``shop_domains``) and no two may share one.
    """

    def __init__(
        self, receivers: Sequence[WebhookReceiver], *, store: DeliveryStore, clock: Clock
    ) -> None:
        if not receivers:
            raise ValueError("at least one webhook receiver is needed")
        self.receivers = tuple(receivers)
        self._by_domain: dict[str, WebhookReceiver] = {}
        for receiver in self.receivers:
            domains = receiver.shop_domains
            if domains is None:
                if len(self.receivers) > 1:
                    raise ValueError(f"{receiver.system}: several shops need shop_domains")
                continue
            for domain in domains:
                other = self._by_domain.setdefault(domain, receiver)
                if other is not receiver:
                    raise ValueError(
                        f"{domain} is served by both {other.system} and {receiver.system}"
                    )
        self._store = store
        self._clock = clock
        self._refused: dict[str, _Refusals] = {}
        self._writer: asyncio.Future[Any] | None = None
        #: Deliveries refused here because they named no shop served (for /metrics).
        self.outcomes: Counter[str] = Counter()

    def receiver_for(self, shop: str | None) -> WebhookReceiver | None:
        """The receiver serving the shop an ``X-Shopify-Shop-Domain`` value names."""
        if not shop:
            return None
        try:
            domain = shop_domain(shop)
        except ValueError:  # a hostile value urlsplit cannot read (http://[x)
            return None
        return self._by_domain.get(domain)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: hand the delivery to its shop's receiver."""
        if len(self.receivers) == 1:
            return await self.receivers[0].handle(request)
        headers = _Headers.of(request)
        receiver = self.receiver_for(headers.shop)
        if receiver is None:
            self._refuse(headers, "missing" if headers.shop is None else "unknown")
            return web.Response(status=403, text="this shop is not served here")
        return await receiver.handle(request)

    def _refuse(self, headers: _Headers, reason: str) -> None:
        at = self._clock.now()
        self.outcomes["wrong_shop"] += 1
        counted = self._refused.get(reason)
        if counted is None:
            self._refused[reason] = _Refusals(1, at, at, headers.sample())
        else:
            counted.count += 1
            counted.last_at = max(counted.last_at, at)
            counted.sample = headers.sample()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        """Hand the counts to the store, one write at a time; a failed write keeps its
        counts for the next refusal (anyone can send these: never a write each)."""
        while self._refused:
            refused, self._refused = self._refused, {}
            refusals = [
                {
                    "system": UNKNOWN_SHOP,
                    "outcome": "wrong_shop",
                    "reason": reason,
                    "count": r.count,
                    "first_at": r.first_at,
                    "last_at": r.last_at,
                    "sample": r.sample,
                }
                for reason, r in refused.items()
            ]
            try:
                await self._store.record_deliveries([], refusals)
            except Exception as exc:
                log.error("could not count %d refused webhooks: %s", len(refusals), exc)
                for reason, r in refused.items():
                    now = self._refused.setdefault(reason, r)
                    if now is not r:
                        now.count += r.count
                        now.first_at = min(now.first_at, r.first_at)
                return

    async def flush(self) -> None:
        """Wait until what was answered so far is written, here and by every store's
        receiver (a webhook-health check flushes first)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})
        for receiver in self.receivers:
            await receiver.flush()

    async def idle(self) -> None:
        """Wait until every delivery received so far is recorded and processed."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        for receiver in self.receivers:
            await receiver.idle()

    async def resume(self) -> int:
        """Every receiver's :meth:`WebhookReceiver.resume`; how many were queued."""
        return sum([await receiver.resume() for receiver in self.receivers])

    async def close(self) -> None:
        """Let the refusal counts land, then close every receiver."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        for receiver in self.receivers:
            await receiver.close()


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def make_webhook_handler(
    *,
    system: str,
    secrets: Sequence[str],
    store: DeliveryStore,
    clock: Clock,
    on_touched: OnTouched | None = None,
    on_event: OnEvent | None = None,
    shop_domains: Iterable[str] | None = None,
    topics: Iterable[str] = TOPICS,
    max_body_bytes: int = MAX_BODY_BYTES,
    read_timeout: float = READ_TIMEOUT_SECONDS,
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
        shop_domains=shop_domains,
        topics=topics,
        max_body_bytes=max_body_bytes,
        read_timeout=read_timeout,
        ack_budget=ack_budget,
    )


def sign(body: bytes, secret: str) -> str:
    """Shopify's signature of ``body``: base64 of its HMAC-SHA256 under ``secret``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


# -- payloads -------------------------------------------------------------------------------
def _job(headers: _Headers, topic: str, payload: dict[str, Any], received_at: datetime) -> _Job:
    triggered, forged = bounded(headers.triggered_at, received_at)
    updated, _ = bounded(parse_time(payload.get("updated_at")), received_at)
    job = _Job(
        topic,
        headers.event_id,
        triggered,
        updated or triggered,
        received_at,
        None,
        {},
        None,
        None,
        payload=payload,
    )
    if forged:  # kept for the record; the delivery is timed by its arrival
        job.detail["triggered_at_header"] = headers.triggered_raw
    try:
        if topic == INVENTORY_LEVELS_UPDATE:
            item = _gid("InventoryItem", payload.get("inventory_item_id"))
            location = _gid("Location", payload.get("location_id"))
            available = payload.get("available")
            if available is not None and (
                isinstance(available, bool) or not isinstance(available, int)
            ):
                raise ValueError(f"available is not an integer: {str(available)[:50]}")
            job.touched = Touched(item, location, available, triggered, updated, headers.event_id)
            job.resource_key = level_key(item, location)
            job.summary = {
                "available": available,
                "updated_at": updated.isoformat() if updated else None,
            }
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
        job.problem = f"unexpected {topic} payload: {exc}"[:500]
        job.summary = {"problem": job.problem}
    return job


def _resumed(row: StoredDelivery) -> _Job:
    """The job of a delivery recorded ``received`` by an earlier process, rebuilt from
    its record: the summary stands in for the body, which is not kept."""
    summary = {k: v for k, v in dict(row.detail).items() if k not in _HEADER_DETAIL}
    topic = row.topic or ""
    problem = summary.get("problem")
    touched: Touched | None = None
    if topic == INVENTORY_LEVELS_UPDATE and problem is None:
        item, sep, location = (row.resource_key or "").partition("@")
        available = summary.get("available")
        if isinstance(available, bool) or not isinstance(available, int):
            available = None
        if not sep:
            problem = "recorded without an inventory level"
        else:
            touched = Touched(
                item,
                location,
                available
                if isinstance(available, int) and not isinstance(available, bool)
                else None,
                row.triggered_at,
                parse_time(summary.get("updated_at")),
                row.event_id,
            )
    return _Job(
        topic,
        row.event_id,
        row.triggered_at,
        row.ordered_at,
        row.received_at,
        row.resource_key,
        summary,
        touched,
        str(problem) if problem is not None else None,
        payload=summary,
        delivery_id=row.id,
    )


def bounded(moment: datetime | None, arrival: datetime) -> tuple[datetime | None, bool]:
    """``moment`` as believed for a delivery that arrived at ``arrival``: itself, or the
    arrival time if it claims to be more than :data:`MAX_CLOCK_SKEW` later (then the
    second value is True). A forged future time is never believed."""
    if moment is not None and moment > arrival + MAX_CLOCK_SKEW:
        return arrival, True
    return moment, False


def shop_domain(value: str) -> str:
    """A shop's ``*.myshopify.com`` domain as compared: lower case, no scheme, port,
    path or trailing dot (``https://Shop.myshopify.com/`` → ``shop.myshopify.com``)."""
    text = value.strip()
    if "://" in text:
        text = urlsplit(text).hostname or ""
    return text.split("/", 1)[0].split(":", 1)[0].rstrip(".").lower()


def _body_key(topic: str, body: bytes) -> str:
    """The dedupe key of a delivery without ids: its topic and the hash of its body."""
    return f"sha256:{topic}:{hashlib.sha256(body).hexdigest()}"


def level_key(inventory_item_id: str, location_id: str) -> str:
    """The resource key of an inventory level: ``<item gid>@<location gid>``."""
    return f"{inventory_item_id}@{location_id}"


def _gid(kind: str, value: Any) -> str:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or not is_whole_number(str(value))
    ):
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
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00, before year 1 in UTC
        return None
