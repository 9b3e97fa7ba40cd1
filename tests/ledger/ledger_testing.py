"""Helpers for the ledger contract tests: times and observations (PostgreSQL schemas:
``pg_testing``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger import LevelObservation, normalize_url
from ledger.migrate import alembic_config

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


class Writes:
    """Rows the database wrote to levels (a row per level, its states' keys in it) and
    level_history, counted by row triggers, so every way in counts: INSERT, UPDATE,
    upsert and COPY."""

    _TABLES = ("levels", "level_history")

    def __init__(self, raw: AsyncEngine) -> None:
        self._raw = raw

    def _statements(self) -> list[str]:
        made = [
            "CREATE TABLE write_count (n integer NOT NULL)",
            "INSERT INTO write_count VALUES (0)",
        ]
        bump = "UPDATE write_count SET n = n + 1"
        if self._raw.dialect.name == "postgresql":
            made.append(
                "CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN {bump}; RETURN NULL; END $$"
            )
            made += [
                f"CREATE TRIGGER count_{t} AFTER INSERT OR UPDATE ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION count_write()"
                for t in self._TABLES
            ]
        else:
            made += [
                f"CREATE TRIGGER count_{t}_{op} AFTER {op} ON {t} BEGIN {bump}; END"
                for t in self._TABLES
                for op in ("INSERT", "UPDATE")
            ]
        return made

    async def __aenter__(self) -> Writes:
        async with self._raw.begin() as conn:
            for statement in self._statements():
                await conn.exec_driver_sql(statement)
        return self

    async def __aexit__(self, *exc: object) -> None:
        async with self._raw.begin() as conn:
            self.rows = int((await conn.exec_driver_sql("SELECT n FROM write_count")).scalar_one())
            for t in self._TABLES:
                if self._raw.dialect.name == "postgresql":
                    await conn.exec_driver_sql(f"DROP TRIGGER count_{t} ON {t}")
                else:
                    for op in ("INSERT", "UPDATE"):
                        await conn.exec_driver_sql(f"DROP TRIGGER count_{t}_{op}")
            await conn.exec_driver_sql("DROP TABLE write_count")
            if self._raw.dialect.name == "postgresql":
                await conn.exec_driver_sql("DROP FUNCTION count_write()")


async def level_tables(url: str) -> list[list[Any]]:
    """The rows of level_current, level_history, level_reads and level_skus, in a fixed
    order, read around the ledger: what two ledgers fed the same levels must agree on.
    Checks that level_skus holds exactly the SKUs level_current does, whichever way
    their levels were written."""
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            tables = [
                list(await conn.execute(text(query)))
                for query in (
                    "SELECT system, sku, location, state, quantity, observed_at, changed_at, "
                    "source, absent, since, since_source, since_quantity, previous "
                    "FROM level_current "
                    "ORDER BY system, sku, location, state",
                    "SELECT system, sku, location, state, quantity, observed_at, source "
                    "FROM level_history ORDER BY id",
                    "SELECT system, observed_at FROM level_reads ORDER BY system",
                    "SELECT sku FROM level_skus ORDER BY sku",
                )
            ]
    finally:
        await engine.dispose()
    assert {row[0] for row in tables[3]} == {row[1] for row in tables[0]}, tables[3]
    return tables


def plain_value(value: object) -> object:
    """A time as naive UTC (SQLite returns text, PostgreSQL aware datetimes); any other
    value as it is."""
    if isinstance(value, str) and value[:2] == "20" and len(value) >= 19 and value[10] in " T":
        return datetime.fromisoformat(value).replace(tzinfo=None)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def plain_tables(tables: list[list[Any]]) -> list[list[tuple[object, ...]]]:
    """:func:`level_tables`' rows with :func:`plain_value` times (comparable across
    backends)."""
    return [[tuple(map(plain_value, row)) for row in rows] for rows in tables]


def downgrade_sync(connection: Connection, revision: str) -> None:
    """Migrate the database ``connection`` reaches down to ``revision``."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def downgrade(raw: AsyncEngine, revision: str) -> None:
    """Migrate the database behind ``raw`` down to ``revision`` (as an operator would
    roll back a release), in one transaction."""
    async with raw.begin() as conn:
        await conn.run_sync(downgrade_sync, revision)
