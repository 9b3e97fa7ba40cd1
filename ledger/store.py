"""The base every part of :class:`ledger.Ledger` builds on: the engine, transactions, and
the translation of driver errors into :mod:`ledger.errors`."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.engine import reading
from ledger.errors import DatabaseUnavailable, InvalidArgument


class Store:
    """Holds the engine; hands out transactions."""

    #: this process's name among the replicas on the database (set by ``Ledger``)
    replica_id: str = ""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with translate_errors(), self._engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads only."""
        async with translate_errors(), reading(self._engine) as conn:
            yield conn


def dialect_insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for ``table`` that supports ON CONFLICT on ``dialect``."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Turn driver errors raised in the block into :mod:`ledger.errors`."""
    try:
        yield
    except OperationalError as exc:
        if not _is_unavailable(exc):
            raise
        raise DatabaseUnavailable(f"database unavailable: {_first_line(exc.orig)}") from exc
    except DBAPIError:
        raise
    except StatementError as exc:
        # Raised before the statement reached the database: a value could not be bound
        # (e.g. a detail that is not JSON-serializable).
        raise InvalidArgument(f"cannot store value: {_first_line(exc.orig)}") from exc


def _is_unavailable(exc: OperationalError) -> bool:
    """Whether the error says the database cannot be used now (rather than a bad query).

    psycopg raises OperationalError only for connection and server trouble; sqlite3 also
    uses it for errors in the SQL, so those are told apart by their message.
    """
    if isinstance(exc.orig, sqlite3.Error):
        message = str(exc.orig).lower()
        return any(s in message for s in ("locked", "busy", "unable to open", "disk i/o"))
    return True


def _first_line(error: BaseException | None) -> str:
    text = str(error) if error is not None else "unknown error"
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
