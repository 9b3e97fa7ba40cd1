"""Helpers for the ledger contract tests: times and observations (PostgreSQL schemas:
``pg_testing``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import LevelObservation

#: The time every test starts at; tests move time by passing later datetimes.
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """``T0`` plus ``minutes``."""
    return T0 + timedelta(minutes=minutes)


def obs(
    quantity: int,
    minutes: float = 0,
    *,
    sku: str = "TEE-BLK-M",
    system: str = "shopify",
    location: str = "east",
    state: str = "available",
    source: str = "poll",
    changed_at: datetime | None = None,
) -> LevelObservation:
    """An observation of ``quantity`` at ``T0 + minutes``."""
    return LevelObservation(
        system=system,
        sku=sku,
        location=location,
        state=state,
        quantity=quantity,
        observed_at=at(minutes),
        source=source,
        changed_at=changed_at,
    )


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    """The single value ``sql`` selects, read around the ledger."""
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one()
