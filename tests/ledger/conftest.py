"""The ledger contract suite runs every test on SQLite and on PostgreSQL.

SQLite gets a file under ``tmp_path``; PostgreSQL gets a fresh schema per test (see
``ledger_testing.pg_schema``), so concurrent runs never collide.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pg_testing import pg_schema
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger import Ledger, normalize_url

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
async def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A database URL for an empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
        return
    async with pg_schema() as url:
        yield url


@pytest.fixture
async def ledger(db_url: str) -> AsyncIterator[Ledger]:
    """A migrated ledger."""
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade()
        yield ledger


@pytest.fixture
async def raw(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A plain engine on the same database, for checks that go around the ledger."""
    engine = create_async_engine(normalize_url(db_url))
    yield engine
    await engine.dispose()
