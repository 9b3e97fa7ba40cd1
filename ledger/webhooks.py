"""Webhook deliveries: every one received is recorded, the first of each event claims it.

The receiver (``connectors.shopify.webhooks``) records each delivery as it arrives —
accepted, refused at the door, or a duplicate — and settles accepted ones once
processed. Dedupe is a claim on (system, dedupe_key) under a unique index, so two
deliveries of one event racing on two replicas still produce one ``received`` row and
one ``duplicate`` row. Staleness is judged against the newest ``processed`` delivery for
the same resource (e.g. an inventory item at a location).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.errors import InvalidArgument, NotFound
from ledger.records import DeliveryStats, WebhookDelivery
from ledger.store import Store, dialect_insert
from ledger.tables import WEBHOOK_DELIVERIES as WD
from ledger.types import WEBHOOK_OUTCOMES, require_choice, require_json, require_text, require_utc


class WebhookDeliveries(Store):
    """Recording webhook deliveries and reading them back."""

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
    ) -> tuple[WebhookDelivery, bool]:
        """Record one delivery; return it and whether it is new.

        With a ``dedupe_key`` (the event id), the delivery claims that key for ``system``.
        If the key was claimed before, the delivery is recorded anyway, with outcome
        ``duplicate``, no key, and ``detail["duplicate_of"]`` naming the first delivery;
        the result is then ``(that row, False)``. Without a key every delivery is new.
        ``delay_seconds`` is computed from ``received_at - triggered_at``.
        """
        system = require_text(system, "system")
        require_choice(outcome, WEBHOOK_OUTCOMES, "outcome")
        received_at = require_utc(received_at, "received_at")
        triggered = require_utc(triggered_at, "triggered_at") if triggered_at else None
        values: dict[str, Any] = {
            "system": system,
            "topic": topic,
            "event_id": event_id,
            "webhook_id": webhook_id,
            "dedupe_key": dedupe_key,
            "resource_key": resource_key,
            "triggered_at": triggered,
            "received_at": received_at,
            "delay_seconds": (received_at - triggered).total_seconds() if triggered else None,
            "processed_at": None,
            "outcome": outcome,
            "detail": require_json(dict(detail or {}), "detail"),
        }
        async with self._write() as conn:
            if dedupe_key is None:
                return await _insert(conn, values), True
            stmt = (
                dialect_insert(self.dialect, WD)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["system", "dedupe_key"])
                .returning(*WD.c)
            )
            row = (await conn.execute(stmt)).mappings().first()
            if row is not None:
                return WebhookDelivery.from_row(row), True
            first = (
                await conn.execute(
                    select(WD.c.id).where(WD.c.system == system, WD.c.dedupe_key == dedupe_key)
                )
            ).scalar_one()
            duplicate = {
                **values,
                "dedupe_key": None,
                "outcome": "duplicate",
                "detail": {**values["detail"], "duplicate_of": first},
            }
            return await _insert(conn, duplicate), False

    async def finish_delivery(
        self,
        delivery_id: int,
        *,
        outcome: str,
        processed_at: datetime,
        detail: Mapping[str, Any] | None = None,
    ) -> WebhookDelivery:
        """Settle a delivery: its final ``outcome``, when, and ``detail`` merged in."""
        require_choice(outcome, WEBHOOK_OUTCOMES, "outcome")
        processed_at = require_utc(processed_at, "processed_at")
        extra = require_json(dict(detail or {}), "detail")
        async with self._write() as conn:
            current = (
                await conn.execute(select(WD.c.detail).where(WD.c.id == delivery_id))
            ).scalar_one_or_none()
            if current is None:
                raise NotFound(f"no webhook delivery {delivery_id}")
            row = (
                (
                    await conn.execute(
                        update(WD)
                        .where(WD.c.id == delivery_id)
                        .values(
                            outcome=outcome,
                            processed_at=processed_at,
                            detail={**current, **extra},
                        )
                        .returning(*WD.c)
                    )
                )
                .mappings()
                .one()
            )
        return WebhookDelivery.from_row(row)

    async def latest_triggered_at(self, system: str, resource_key: str) -> datetime | None:
        """When the newest ``processed`` delivery for ``resource_key`` was triggered."""
        query = select(func.max(WD.c.triggered_at)).where(
            WD.c.system == system,
            WD.c.resource_key == resource_key,
            WD.c.outcome == "processed",
        )
        async with self._read() as conn:
            latest: datetime | None = (await conn.execute(query)).scalar_one_or_none()
        return latest

    async def get_delivery(self, delivery_id: int) -> WebhookDelivery:
        """The delivery with this id; :class:`NotFound` if there is none."""
        async with self._read() as conn:
            row = (await conn.execute(select(WD).where(WD.c.id == delivery_id))).mappings().first()
        if row is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        return WebhookDelivery.from_row(row)

    async def list_deliveries(
        self,
        since: datetime | None = None,
        outcome: str | None = None,
        limit: int = 100,
        system: str | None = None,
    ) -> list[WebhookDelivery]:
        """Deliveries received at or after ``since``, oldest first, filtered by outcome."""
        if limit <= 0:
            raise InvalidArgument("limit must be positive")
        query = select(WD).order_by(WD.c.received_at, WD.c.id).limit(limit)
        if since is not None:
            query = query.where(WD.c.received_at >= require_utc(since, "since"))
        if outcome is not None:
            require_choice(outcome, WEBHOOK_OUTCOMES, "outcome")
            query = query.where(WD.c.outcome == outcome)
        if system is not None:
            query = query.where(WD.c.system == system)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [WebhookDelivery.from_row(row) for row in rows]

    async def delivery_stats(self, since: datetime, system: str | None = None) -> DeliveryStats:
        """Deliveries received at or after ``since``: counts by outcome, the largest delay
        and the last arrival."""
        since = require_utc(since, "since")
        where = [WD.c.received_at >= since]
        if system is not None:
            where.append(WD.c.system == system)
        counts = select(WD.c.outcome, func.count()).where(*where).group_by(WD.c.outcome)
        summary = select(func.max(WD.c.delay_seconds), func.max(WD.c.received_at)).where(*where)
        async with self._read() as conn:
            by_outcome: dict[str, int] = {
                outcome: count for outcome, count in await conn.execute(counts)
            }
            max_delay, last = (await conn.execute(summary)).one()
        return DeliveryStats(
            total=sum(by_outcome.values()),
            by_outcome=by_outcome,
            max_delay_seconds=float(max_delay) if max_delay is not None else None,
            last_received_at=last,
        )


async def _insert(conn: AsyncConnection, values: dict[str, Any]) -> WebhookDelivery:
    row = (await conn.execute(WD.insert().values(**values).returning(*WD.c))).mappings().one()
    return WebhookDelivery.from_row(row)
