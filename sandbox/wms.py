"""A fake warehouse management system speaking a small REST API on loopback.

The product's config-driven REST connector is configured to read this wire format, so
it is documented here in full.

Authentication
    Every request carries ``Authorization: Bearer <token>``. A missing or wrong token
    gets ``401 {"error": "unauthorized"}``.

Reading levels
    ``GET /api/v1/inventory?page=N&per_page=M[&sku=A,B]``

    * ``page`` starts at 1 (default 1); ``per_page`` defaults to 100 and is clamped to
      500. A value that is not a positive integer gets ``400 {"error": "invalid_paging"}``.
    * ``sku`` is an optional comma-separated list of exact SKUs.
    * Items are ordered by ``(sku, warehouse)``; a page past the end is empty.
    * Body::

        {"items": [{"sku": "SKU-1", "warehouse": "WH-EAST", "on_hand": 10,
                    "pickable": 8, "allocated": 2, "damaged": 0,
                    "updated_at": "2026-11-02T09:00:00Z"}],
         "page": 1, "per_page": 500, "total": 1234, "next_page": 2}

      ``next_page`` and ``next_cursor`` are ``null`` on the last page. Instead of
      ``page``, a client may page by ``offset=K`` (items from the K-th, 0-based) or by
      ``cursor=<next_cursor of the page before>`` (an opaque token); a bad one gets
      ``400 {"error": "invalid_paging"}``. When there is a next page the response
      also carries an RFC 8288 header ``Link: <http://host:port/api/v1/inventory?...>;
      rel="next"`` (absolute URL, same ``per_page`` and ``sku`` filter).
    * ``on_hand = pickable + allocated + damaged`` for levels the fake derives itself.

Writing a level (a resync)
    ``PUT /api/v1/inventory/{sku}/{warehouse}`` with ``Idempotency-Key: <key>`` and a
    JSON body holding exactly one of ``{"on_hand": n}`` or ``{"pickable": n}`` (n >= 0),
    optionally ``"expected": x`` (compare-and-set on that same field).

    * ``200 {"item": {...}, "write": {"idempotency_key", "field", "before", "after"}}``.
      Setting ``on_hand`` moves ``pickable`` by the same delta; setting ``pickable``
      moves ``on_hand``; ``allocated`` and ``damaged`` never change.
    * No ``Idempotency-Key`` → ``400 {"error": "idempotency_key_required"}``.
    * Bad body → ``400 {"error": "invalid_body"}``; unknown SKU×warehouse →
      ``404 {"error": "not_found"}``; ``on_hand`` below ``allocated + damaged`` →
      ``422 {"error": "below_committed", "committed": c}``.
    * ``expected`` differs from the current value → ``409 {"error": "stale",
      "current": x}`` (nothing applied, the key is not consumed).
    * A key is remembered once its write was applied: the same key with the same
      method, path and body replays the stored response (``Idempotent-Replayed: true``)
      without applying anything; the same key with anything else →
      ``409 {"error": "idempotency_key_reused"}``.

Faults (checked before authentication, like a gateway in front of the WMS)
    ``force_429(n, retry_after)`` → ``429 {"error": "rate_limited"}`` with
    ``Retry-After: <whole seconds, rounded up>``; ``force_5xx(n, status, after=k)``
    (once k more requests were answered) → ``{"error": "unavailable"}``;
    ``down = True`` → ``503 {"error": "down"}``;
    ``latency`` seconds of real delay before every response.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, TypeGuard
from urllib.parse import urlencode

from aiohttp import web

__all__ = ["FakeWMS", "WmsLevel", "WmsRequest", "WmsWrite"]

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 100


class Clock(Protocol):
    """The time source the fake reads (aware UTC datetimes)."""

    def now(self) -> datetime: ...


class _WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class WmsLevel:
    """One SKU at one warehouse, as the WMS believes it."""

    sku: str
    warehouse: str
    on_hand: int
    pickable: int
    allocated: int
    damaged: int
    updated_at: datetime

    def to_wire(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "warehouse": self.warehouse,
            "on_hand": self.on_hand,
            "pickable": self.pickable,
            "allocated": self.allocated,
            "damaged": self.damaged,
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class WmsWrite:
    """A write the fake applied (replays and rejected writes are not listed)."""

    key: str
    sku: str
    warehouse: str
    field: str
    before: WmsLevel
    after: WmsLevel
    at: datetime


@dataclass(frozen=True)
class WmsRequest:
    """One HTTP request the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    at: datetime


@dataclass(frozen=True)
class _Stored:
    fingerprint: str
    status: int
    body: dict[str, Any]


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, error: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, **extra}, status=status)


class FakeWMS:
    """The fake WMS server plus the control API tests and the demo use to steer it."""

    def __init__(self, token: str = "wms-test-token", clock: Clock | None = None) -> None:
        self.token = token
        self.clock: Clock = clock or _WallClock()
        self.latency = 0.0
        self.down = False
        self.writes: list[WmsWrite] = []
        self.requests: list[WmsRequest] = []
        self._levels: dict[tuple[str, str], WmsLevel] = {}
        #: items listed verbatim after the levels in an unfiltered listing: to script
        #: what other WMSs send (missing fields, nulls, strings, booleans, huge numbers)
        self.raw_items: list[Any] = []
        #: where the page's items sit: ``{"items": [...]}`` by default; given a key,
        #: ``{key: {"items": [...]}}`` (a WMS whose items are nested deeper)
        self.items_key: str | None = None
        #: rewrites each listing's bytes before they are sent: to script bytes no JSON
        #: encoder writes (``1e400``, text that is not UTF-8)
        self.wire_filter: Callable[[bytes], bytes] | None = None
        self._keys: dict[str, _Stored] = {}
        self._429: list[float] = []
        self._5xx: list[int] = []
        self._5xx_after = 0
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # ---------------------------------------------------------------- control API

    def set_level(
        self,
        sku: str,
        warehouse: str,
        *,
        on_hand: int | None = None,
        pickable: int | None = None,
        allocated: int | None = None,
        damaged: int | None = None,
    ) -> WmsLevel:
        """Create or change a level. Omitted fields keep their value (0 when new).

        ``pickable`` is derived (``on_hand - allocated - damaged``) unless given; given
        alone, it derives ``on_hand`` instead. Give both and both are stored as given,
        even if they disagree (to script broken WMS data). Changing only ``allocated`` or
        ``damaged`` keeps ``on_hand`` and moves ``pickable``.
        """
        old = self._levels.get((sku, warehouse))
        alloc = allocated if allocated is not None else (old.allocated if old else 0)
        dmg = damaged if damaged is not None else (old.damaged if old else 0)
        if on_hand is None and pickable is not None:
            on_hand = pickable + alloc + dmg
        elif on_hand is None:
            on_hand = old.on_hand if old else 0
        pick = pickable if pickable is not None else on_hand - alloc - dmg
        level = WmsLevel(sku, warehouse, on_hand, pick, alloc, dmg, self.clock.now())
        self._levels[(sku, warehouse)] = level
        return level

    def level(self, sku: str, warehouse: str) -> WmsLevel:
        """The current level (``KeyError`` when unknown)."""
        return self._levels[(sku, warehouse)]

    def levels(self) -> list[WmsLevel]:
        """Every level, ordered by (sku, warehouse)."""
        return [self._levels[k] for k in sorted(self._levels)]

    def force_429(self, n: int = 1, retry_after: float = 1.0) -> None:
        """Answer the next ``n`` requests with 429 and ``Retry-After``."""
        self._429.extend([retry_after] * n)

    def force_5xx(self, n: int = 1, status: int = 503, *, after: int = 0) -> None:
        """Answer the next ``n`` requests (after any forced 429s) with ``status``, once
        ``after`` more requests have been answered as usual (a read that breaks off
        midway)."""
        self._5xx_after = after
        self._5xx.extend([status] * n)

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeWMS is not started")
        return self._base_url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port); return the base URL."""
        app = web.Application(middlewares=[self._record, self._faults, self._auth])
        app.router.add_get("/api/v1/inventory", self._list)
        app.router.add_put("/api/v1/inventory/{sku}/{warehouse}", self._put)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._base_url = f"http://{bound_host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeWMS:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ----------------------------------------------------------------- middleware

    @web.middleware
    async def _record(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        self.requests.append(
            WmsRequest(
                request.method,
                request.path,
                dict(request.query),
                response.status,
                self.clock.now(),
            )
        )
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @web.middleware
    async def _faults(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if self.down:
            return _error(503, "down")
        if self._429:
            retry_after = self._429.pop(0)
            response = _error(429, "rate_limited")
            response.headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
            return response
        if self._5xx and self._5xx_after > 0:
            self._5xx_after -= 1
        elif self._5xx:
            return _error(self._5xx.pop(0), "unavailable")
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "unauthorized")
        return await handler(request)

    # ------------------------------------------------------------------- handlers

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        try:
            page = int(query.get("page", "1"))
            per_page = min(int(query.get("per_page", str(DEFAULT_PER_PAGE))), MAX_PER_PAGE)
            offset = int(query["offset"]) if "offset" in query else None
            after = _cursor_position(query["cursor"]) if "cursor" in query else None
        except ValueError:
            return _error(400, "invalid_paging")
        if page < 1 or per_page < 1 or (offset is not None and offset < 0):
            return _error(400, "invalid_paging")
        sku_filter = query.get("sku")
        wanted = {s for s in sku_filter.split(",") if s} if sku_filter else None
        rows = [lv for lv in self.levels() if wanted is None or lv.sku in wanted]
        extra = self.raw_items if wanted is None else []
        if offset is not None:
            start = offset
        elif after is not None:
            start = after
        else:
            start = (page - 1) * per_page
        end = start + per_page
        # only this page's levels are put on the wire (a page of a million-level listing)
        chunk = [lv.to_wire() for lv in rows[start:end]]
        chunk += extra[max(0, start - len(rows)) : max(0, end - len(rows))]
        total = len(rows) + len(extra)
        has_next = end < total
        body = {
            **({self.items_key: {"items": chunk}} if self.items_key else {"items": chunk}),
            "page": page,
            "per_page": per_page,
            "total": total,
            "next_page": page + 1 if has_next else None,
            "next_cursor": _cursor(end) if has_next else None,
        }
        response = web.json_response(body)
        if self.wire_filter is not None:
            wire = self.wire_filter(json.dumps(body).encode())
            response = web.Response(body=wire, content_type="application/json")
        if has_next:
            params = {"page": str(page + 1), "per_page": str(per_page)}
            if sku_filter:
                params["sku"] = sku_filter
            url = f"{self.base_url}/api/v1/inventory?{urlencode(params)}"
            response.headers["Link"] = f'<{url}>; rel="next"'
        return response

    async def _put(self, request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return _error(400, "idempotency_key_required")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "invalid_body")
        fingerprint = json.dumps(
            [request.method, request.path, body], sort_keys=True, separators=(",", ":")
        )
        stored = self._keys.get(key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                return _error(409, "idempotency_key_reused")
            response = web.json_response(stored.body, status=stored.status)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        parsed = _parse_write(body)
        if parsed is None:
            return _error(400, "invalid_body")
        field, value, expected = parsed
        sku, warehouse = request.match_info["sku"], request.match_info["warehouse"]
        before = self._levels.get((sku, warehouse))
        if before is None:
            return _error(404, "not_found")
        current = getattr(before, field)
        if expected is not None and expected != current:
            return _error(409, "stale", current=current)
        delta = value - current
        committed = before.allocated + before.damaged
        if field == "on_hand" and value < committed:
            return _error(422, "below_committed", committed=committed)
        now = self.clock.now()
        after = replace(
            before,
            on_hand=before.on_hand + delta,
            pickable=before.pickable + delta,
            updated_at=now,
        )
        self._levels[(sku, warehouse)] = after
        self.writes.append(WmsWrite(key, sku, warehouse, field, before, after, now))
        result = {
            "item": after.to_wire(),
            "write": {
                "idempotency_key": key,
                "field": field,
                "before": current,
                "after": value,
            },
        }
        self._keys[key] = _Stored(fingerprint, 200, result)
        return web.json_response(result)


def _parse_write(body: object) -> tuple[str, int, int | None] | None:
    """``(field, value, expected)`` from a PUT body, or ``None`` when it is invalid."""
    if not isinstance(body, dict):
        return None
    fields = [f for f in ("on_hand", "pickable") if f in body]
    if len(fields) != 1 or set(body) - {"on_hand", "pickable", "expected"}:
        return None
    value, expected = body[fields[0]], body.get("expected")
    if not _is_int(value) or value < 0:
        return None
    if expected is not None and not _is_int(expected):
        return None
    return fields[0], value, expected


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _cursor(position: int) -> str:
    """An opaque cursor for the listing from ``position`` on."""
    return base64.urlsafe_b64encode(f"at:{position}".encode()).decode()


def _cursor_position(cursor: str) -> int:
    """Where a cursor from :func:`_cursor` points; ``ValueError`` for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (ValueError, UnicodeError) as exc:
        raise ValueError(cursor) from exc
    if not text.startswith("at:"):
        raise ValueError(cursor)
    position = int(text[3:])
    if position < 0:
        raise ValueError(cursor)
    return position
