"""Guarantee 9: crash and upgrade safety.

* A crash in the middle of writing an incident leaves no half-written incident: the
  incident row and its audit entry are one transaction, so a failure between them (here
  the database refusing the audit insert, as a crash would cut it) leaves neither.
* Alembic upgrades from every earlier revision to head, on SQLite and PostgreSQL, with
  the rows written at the old revision readable through the ledger afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from pg_testing import pg_schema
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger import Ledger, head_revision
from ledger.engine import create_engine
from ledger.migrate import alembic_config, upgrade_engine

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


EARLIER = [r for r in _revisions() if r != head_revision()]


@asynccontextmanager
async def _database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'upgrade.db'}"
        return
    async with pg_schema() as url:
        yield url


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def test_there_is_history_to_upgrade_from() -> None:
    assert EARLIER, "no earlier revision: nothing to prove"
    assert _revisions()[-1] == head_revision()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start", EARLIER)
async def test_every_earlier_revision_upgrades_to_head_keeping_its_rows(
    backend: str, start: str, tmp_path: Path
) -> None:
    async with _database(backend, tmp_path) as url:
        engine = create_engine(url)
        try:
            await upgrade_engine(engine, start)
            async with engine.begin() as conn:  # rows as that revision's code wrote them
                await conn.execute(
                    text(
                        "INSERT INTO audit_log (at, actor, action, subject, detail) "
                        "VALUES (:at, 'U0OPS001', 'resync.applied', 'resync:1', :detail)"
                    ),
                    {"at": T0, "detail": '{"before": 40, "after": 28}'},
                )
        finally:
            await engine.dispose()
        async with Ledger.from_url(url) as ledger:
            assert await ledger.current_revision() == start
            await ledger.upgrade()
            assert await ledger.current_revision() == head_revision()
            [entry] = await ledger.list_audit()
            assert (entry.actor, entry.action, entry.subject, entry.at) == (
                "U0OPS001",
                "resync.applied",
                "resync:1",
                T0,
            )
            # Head works on the upgraded database: open an incident, audited.
            incident, new = await ledger.open_incident(
                "drift:oversell_risk:shopify:TEE-BLK-M:east",
                "oversell_risk",
                "critical",
                "Oversell risk: TEE-BLK-M at east",
                T0,
                sku="TEE-BLK-M",
            )
            assert new
            assert [
                a.action for a in await ledger.list_audit(subject=f"incident:{incident.id}")
            ] == ["incident.opened"]


async def test_a_crash_while_writing_an_incident_leaves_no_half_of_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    async with Ledger.from_url(url) as ledger:
        await ledger.upgrade()
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:  # the audit insert fails: a cut mid-write
                await conn.execute(
                    text(
                        "CREATE TRIGGER crash_mid_write BEFORE INSERT ON audit_log "
                        "BEGIN SELECT RAISE(ABORT, 'crash mid-write'); END"
                    )
                )
            with pytest.raises(DBAPIError, match="crash mid-write"):
                await ledger.open_incident(
                    "drift:oversell_risk:shopify:TEE-BLK-M:east",
                    "oversell_risk",
                    "critical",
                    "Oversell risk: TEE-BLK-M at east",
                    T0,
                    sku="TEE-BLK-M",
                )
            async with engine.begin() as conn:
                await conn.execute(text("DROP TRIGGER crash_mid_write"))
            async with engine.connect() as conn:
                counts = [
                    (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
                    for table in ("incidents", "audit_log", "outbox")
                ]
        finally:
            await engine.dispose()
        assert counts == [0, 0, 0], "no incident without its audit entry, nothing queued"
        assert await ledger.list_incidents() == []
        # After the restart the same drift opens the incident whole.
        incident, new = await ledger.open_incident(
            "drift:oversell_risk:shopify:TEE-BLK-M:east",
            "oversell_risk",
            "critical",
            "Oversell risk: TEE-BLK-M at east",
            T0,
            sku="TEE-BLK-M",
        )
        assert new
        assert incident.status == "open"
