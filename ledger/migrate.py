"""Schema migrations: Alembic, driven from code (no alembic.ini needed).

The migration scripts ship inside the package (``ledger/migrations``). ``upgrade`` runs
in one transaction; on PostgreSQL an advisory lock makes replicas that start together
upgrade one after the other.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.engine import create_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: pg_advisory_xact_lock key held while migrating ("drftwtch").
_PG_LOCK_KEY = 0x6472667477746368


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config for the ledger's migrations (and ``url``, for Alembic's CLI
    commands such as ``revision --autogenerate``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision the migration scripts define."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision``."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        await conn.run_sync(_upgrade, revision)


async def engine_revision(engine: AsyncEngine) -> str | None:
    """The revision the database behind ``engine`` is at (None before the first one)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def upgrade_sync(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision``, from synchronous code (a CLI).

    Must not be called while an event loop is running in this thread.
    """

    async def run() -> None:
        engine = create_engine(url)
        try:
            await upgrade_engine(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
