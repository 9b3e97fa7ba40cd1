"""Reading a whole shop's inventory with a bulk operation.

Paging ``inventoryItems`` costs query points for every page; a large shop is better read
with ``bulkOperationRunQuery``: Shopify runs the query in the background and offers the
result as a JSONL file. :class:`BulkReader` starts the operation, polls
``bulkOperation(id:)`` with backoff on the injected clock until it is ``COMPLETED``
(``FAILED``, ``CANCELED`` or ``EXPIRED`` raise :class:`BulkOperationFailed` with
Shopify's ``errorCode``), then streams the file line by line: it is never held whole.

The file has one object per line. Each inventory level is a line of its own, joined to
its item by ``__parentId``; since 2026-01 Shopify does not group children under their
parents by default, so a level may come before its item. Levels whose item has been seen
are yielded at once; the others wait (in memory, per item) until their item arrives.
What stays in memory is one small record per item (its SKU, pack size and flags).

The download URL is a signed storage URL: it gets no Shopify access token.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from connectors.clock import Clock
from connectors.errors import ConnectorError, ResponseError, TransportError
from connectors.health import Health
from connectors.http import RETRYABLE_STATUS, RetryPolicy
from connectors.levels import Level
from connectors.memo import Memo
from connectors.normalize import Mapping
from connectors.pages import streamed
from connectors.shopify.catalog import Catalog
from connectors.shopify.documents import document
from connectors.shopify.items import parse_time
from connectors.shopify.jsonl import BulkLines, Made, objects
from connectors.shopify.transport import GraphQLTransport

#: Statuses of an operation still under way.
LIVE = frozenset({"CREATED", "RUNNING", "CANCELING"})
#: userError codes that mean "not now" rather than "not ever".
BUSY = frozenset({"OPERATION_IN_PROGRESS", "LIMIT_REACHED"})
#: errorCodes worth running the same query again for.
TRANSIENT = frozenset({"INTERNAL_SERVER_ERROR", "TIMEOUT"})
_GID = re.compile(r"gid://shopify/BulkOperation/\d+")


class BulkOperationRejected(ConnectorError):
    """``bulkOperationRunQuery`` refused to start (its userError ``code``)."""

    def __init__(
        self, message: str, *, system: str, code: str | None, field: list[str] | None = None
    ) -> None:
        super().__init__(message, system=system)
        self.code = code
        self.field = field or []
        self.retryable = code in BUSY


class BulkOperationFailed(ConnectorError):
    """The operation ended without a result. ``code`` is Shopify's ``errorCode``
    (``ACCESS_DENIED``, ``INTERNAL_SERVER_ERROR``, ``TIMEOUT``) or, without one, the
    final status (``CANCELED``, ``EXPIRED``)."""

    def __init__(
        self,
        message: str,
        *,
        system: str,
        code: str,
        status: str,
        operation_id: str,
        partial_data_url: str | None = None,
    ) -> None:
        super().__init__(message, system=system)
        self.code = code
        self.status = status
        self.operation_id = operation_id
        self.partial_data_url = partial_data_url
        self.retryable = code in TRANSIENT


class BulkOperationTimedOut(BulkOperationFailed):
    """Still running when the reader's patience (clock time) ran out."""


@dataclass(frozen=True)
class BulkOperation:
    """A ``BulkOperation`` as Shopify reported it."""

    id: str
    status: str
    error_code: str | None
    object_count: int
    root_object_count: int
    file_size: int | None
    url: str | None
    partial_data_url: str | None
    query: str | None
    created_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> BulkOperation:
        def count(name: str) -> int:
            value = data.get(name)
            return int(value) if value is not None else 0

        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            error_code=data.get("errorCode"),
            object_count=count("objectCount"),
            root_object_count=count("rootObjectCount"),
            file_size=int(data["fileSize"]) if data.get("fileSize") is not None else None,
            url=data.get("url") or None,
            partial_data_url=data.get("partialDataUrl") or None,
            query=data.get("query"),
            created_at=parse_time(data.get("createdAt")),
            completed_at=parse_time(data.get("completedAt")),
        )


class BulkReader:
    """Bulk reads of one shop, over the connector's transport and HTTP client.

    :param poll_interval: the first wait before polling, in clock seconds; it doubles
        after every poll up to ``max_poll_interval``.
    :param timeout: clock seconds to wait for the operation before giving up.
    """

    def __init__(
        self,
        gql: GraphQLTransport,
        client: httpx.AsyncClient,
        *,
        system: str,
        mapping: Mapping,
        clock: Clock,
        health: Health,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        poll_interval: float = 1.0,
        max_poll_interval: float = 30.0,
        timeout: float = 6 * 3600.0,
    ) -> None:
        self._gql = gql
        self._client = client
        self._system = system
        self._mapping = mapping
        self._clock = clock
        self._health = health
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self._poll_interval = poll_interval
        self._max_poll_interval = max_poll_interval
        self._timeout = timeout
        #: the last complete read's lines (:mod:`connectors.memo`)
        self._memo: Memo[Made] = Memo()

    # -- the whole read -----------------------------------------------------------------
    async def levels(self, catalog: Catalog | None = None) -> AsyncIterator[Level]:
        """Every level of every item with a SKU, as the file streams in; ``catalog``
        learns each such item and where it is stocked. Lines unchanged since the last
        complete read are not decoded again (:mod:`connectors.shopify.jsonl`)."""
        async for batch in self.level_batches(catalog):
            for level in batch:
                yield level

    async def level_batches(self, catalog: Catalog | None = None) -> AsyncIterator[list[Level]]:
        """:meth:`levels`, a network chunk's levels at a time: a full read of 100,000
        SKUs is 500,000 levels, and resuming an async generator once a level cost about
        0.1 s of such a read (BENCHMARKS.md, issue 16)."""
        op = await self.wait(await self.start(document("bulk_inventory_items")))
        if op.url is None:  # nothing matched: Shopify writes no file
            self._memo.clear()
            return
        read = BulkLines(
            system=self._system,
            mapping=self._mapping,
            observed_at=op.completed_at or self._clock.now(),
            memo=self._memo,
            catalog=catalog,
        )
        async for data, encoding in self.chunks(op.url):
            if batch := read.chunk(data, encoding):
                yield batch
        read.finish()

    async def count_items(self, limit: int | None) -> int:
        """How many variants (one inventory item each) the shop has, counting at most
        ``limit`` (None: all)."""
        data = await self._gql.execute(
            "bulk_variant_count", document("bulk_variant_count"), {"limit": limit}
        )
        found = data.get("productVariantsCount") or {}
        return int(found.get("count") or 0)

    # -- the operation ------------------------------------------------------------------
    async def start(self, query: str) -> BulkOperation:
        """Start a bulk query. A retried start that meets its own first attempt
        (``OPERATION_IN_PROGRESS`` naming an operation running this same query) adopts it."""
        data = await self._gql.execute(
            "bulk_run_query", document("bulk_run_query"), {"query": query}
        )
        payload = data.get("bulkOperationRunQuery") or {}
        errors = payload.get("userErrors") or []
        if errors:
            code = errors[0].get("code")
            if code == "OPERATION_IN_PROGRESS":
                for gid in _GID.findall(" ".join(str(e.get("message")) for e in errors)):
                    running = await self.fetch(gid)
                    if running.query == query and running.status in LIVE:
                        return running
            message = "; ".join(str(e.get("message")) for e in errors)
            raise BulkOperationRejected(
                f"{self._system}: bulk query refused ({code}): {message}",
                system=self._system,
                code=str(code) if code else None,
                field=[str(f) for f in errors[0].get("field") or []],
            )
        raw = payload.get("bulkOperation")
        if not isinstance(raw, dict):
            raise ResponseError(
                f"{self._system}: bulkOperationRunQuery returned no operation", system=self._system
            )
        return BulkOperation.from_wire(raw)

    async def fetch(self, operation_id: str) -> BulkOperation:
        data = await self._gql.execute(
            "bulk_operation", document("bulk_operation"), {"id": operation_id}
        )
        raw = data.get("bulkOperation")
        if not isinstance(raw, dict):
            raise ResponseError(
                f"{self._system}: no bulk operation {operation_id}", system=self._system
            )
        return BulkOperation.from_wire(raw)

    async def wait(self, op: BulkOperation) -> BulkOperation:
        """Poll until ``op`` is over; return it COMPLETED or raise."""
        started = self._clock.now()
        delay = self._poll_interval
        while op.status in LIVE:
            if (self._clock.now() - started).total_seconds() >= self._timeout:
                raise BulkOperationTimedOut(
                    f"{self._system}: bulk operation {op.id} still {op.status} after "
                    f"{self._timeout:.0f}s",
                    system=self._system,
                    code="TIMEOUT",
                    status=op.status,
                    operation_id=op.id,
                )
            await self._clock.sleep(delay)
            delay = min(delay * 2, self._max_poll_interval)
            op = await self.fetch(op.id)
        if op.status != "COMPLETED":
            code = op.error_code or op.status
            raise BulkOperationFailed(
                f"{self._system}: bulk operation {op.id} ended {op.status} ({code})",
                system=self._system,
                code=code,
                status=op.status,
                operation_id=op.id,
                partial_data_url=op.partial_data_url,
            )
        return op

    # -- the file -----------------------------------------------------------------------
    async def batches(self, url: str) -> AsyncIterator[list[dict[str, Any]]]:
        """The JSONL file at ``url``, its objects in file order, a network chunk's lines
        at a time, streamed. Opening is retried (5xx, connection failures); a download
        that breaks off after the first batch raises :class:`TransportError` (what was
        yielded cannot be taken back)."""
        async for data, encoding in self.chunks(url):
            if found := objects(data, self._system, encoding):
                yield found

    async def chunks(self, url: str) -> AsyncIterator[tuple[bytes, str]]:
        """The JSONL file at ``url`` as it streams, a network chunk's whole lines at a time
        (the last may lack its line break), with the response's text encoding; retried
        and broken off as :meth:`batches` says."""
        attempt = 0
        while True:
            attempt += 1
            self._health.requests += 1
            yielded = False
            try:
                # over aiohttp where the client is plain: a 280 MB file cost less than
                # half the CPU to receive (connectors.pages)
                async with streamed(self._client, httpx.URL(url)) as response:
                    if response.status_code in RETRYABLE_STATUS and attempt < self._policy.attempts:
                        self._health.retries += 1
                        await self._clock.sleep(self._policy.backoff(attempt, self._rng))
                        continue
                    if response.status_code != 200:
                        raise ResponseError(
                            f"{self._system}: bulk result download answered HTTP "
                            f"{response.status_code}",
                            system=self._system,
                        )
                    encoding = response.encoding or "utf-8"
                    #: the start of a line still arriving (a list: a long line is
                    #: joined once, not copied with every piece)
                    started: list[bytes] = []
                    async for piece in response.aiter_bytes():
                        cut = piece.rfind(b"\n") + 1  # whole lines now, the rest later
                        if not cut:
                            started.append(piece)
                            continue
                        lines = b"".join((*started, piece[:cut])) if started else piece[:cut]
                        started = [piece[cut:]] if cut < len(piece) else []
                        if not lines.isspace():  # blank lines are nothing to take back
                            yielded = True
                            yield lines, encoding
                    if started and not (rest := b"".join(started)).isspace():
                        yield rest, encoding
                    return
            except httpx.TransportError as exc:
                if yielded or attempt >= self._policy.attempts:
                    raise TransportError(
                        f"{self._system}: bulk result download failed ({type(exc).__name__})",
                        system=self._system,
                    ) from exc
                self._health.retries += 1
                await self._clock.sleep(self._policy.backoff(attempt, self._rng))
