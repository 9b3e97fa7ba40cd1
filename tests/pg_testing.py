"""A fresh PostgreSQL schema per test, for every test that needs PostgreSQL (the ledger
contract suite, the replicas, the stores, the crash-and-upgrade tests)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

from bench.cluster import libpq_url, pg_base_url


def _where(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432} (database {parsed.database})"


#: The first connection failure, so later tests skip (or fail) without waiting again.
_unreachable: list[str] = []


@asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A URL whose ``search_path`` is a fresh schema, dropped (CASCADE) afterwards.

    Skips when PostgreSQL cannot be reached, or fails when ``$CI`` is ``true``.
    """
    base = pg_base_url()
    try:
        if _unreachable:
            raise OSError(_unreachable[0])
        admin = await psycopg.AsyncConnection.connect(
            libpq_url(base), autocommit=True, connect_timeout=3
        )
    except (OSError, psycopg.Error) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not _unreachable:
            _unreachable.append(reason)
        message = f"PostgreSQL not reachable at {_where(base)}: {reason}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    schema = f"dw_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        try:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await admin.close()
