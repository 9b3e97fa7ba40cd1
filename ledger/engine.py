"""Database URLs and engines: which URLs the ledger accepts and how it connects.

SQLite runs in WAL mode with foreign keys on and a busy timeout, and every writing
transaction starts with ``BEGIN IMMEDIATE``, so read-modify-write transactions never
fail half-way on a lock upgrade; reading transactions start with a plain ``BEGIN``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ledger.errors import LedgerConfigError

#: Milliseconds a SQLite connection waits for a lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000

_SQLITE_DRIVERS = {"", "aiosqlite", "pysqlite"}
_POSTGRES_DRIVERS = {"", "psycopg", "psycopg_async", "psycopg2", "asyncpg"}

#: Execution option marking a connection that only reads (SQLite: deferred BEGIN).
READ_ONLY = "driftwatch_read_only"


def database_url_from_env(default_path: str) -> str:
    """``$DATABASE_URL`` if set, else a SQLite URL for the file ``default_path``."""
    url = os.environ.get("DATABASE_URL", "").strip()
    return url or f"sqlite:///{default_path}"


def normalize_url(url: str | URL) -> URL:
    """``url`` rewritten for the async driver the ledger uses for its backend.

    ``sqlite:///x.db`` becomes ``sqlite+aiosqlite:///x.db``; ``postgresql://``,
    ``postgres://`` and other PostgreSQL drivers become ``postgresql+psycopg://``.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise LedgerConfigError(f"not a database URL: {_scheme(url)!r}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in _SQLITE_DRIVERS:
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres") and driver in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    raise LedgerConfigError(
        f"unsupported database URL scheme {parsed.drivername!r}: "
        "use sqlite:///path.db or postgresql://user@host/dbname"
    )


def _scheme(url: str | URL) -> str:
    # Never echo a whole URL: it may hold a password.
    return str(url).partition(":")[0]


def create_engine(url: str | URL) -> AsyncEngine:
    """An async engine for ``url`` (normalized), set up as the ledger needs it."""
    normalized = normalize_url(url)
    if normalized.get_backend_name() == "sqlite":
        engine = create_async_engine(normalized)
        _setup_sqlite(engine)
        return engine
    return create_async_engine(normalized, pool_pre_ping=True)


def _setup_sqlite(engine: AsyncEngine) -> None:
    database = engine.url.database

    @event.listens_for(engine.sync_engine, "do_connect")
    def _check_directory(*_args: Any) -> None:
        # Fail before aiosqlite starts its connection thread: when sqlite cannot open
        # the file, that thread outlives the failure and later touches a closed loop.
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).expanduser().resolve().parent
            if not folder.is_dir():
                raise sqlite3.OperationalError(
                    f"unable to open database file: folder {folder} does not exist"
                )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below, not the driver, start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads; its transaction is rolled back at the end."""
    async with engine.connect() as conn:
        await conn.execution_options(**{READ_ONLY: True})
        yield conn
