"""Alembic environment for the ledger.

:func:`ledger.migrate.upgrade_engine` hands in an open connection (in
``config.attributes["connection"]``); Alembic's own CLI, given a config from
:func:`ledger.migrate.alembic_config`, connects to ``sqlalchemy.url`` itself.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from ledger.engine import create_engine
from ledger.errors import LedgerConfigError
from ledger.tables import metadata

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise LedgerConfigError("no sqlalchemy.url in the Alembic config")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run_with)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    given = config.attributes.get("connection")
    if given is None:
        asyncio.run(run_online())
    else:
        run_with(given)
