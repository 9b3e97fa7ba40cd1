"""Migrations: to head on both backends, matching the models, runnable from a CLI."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from ledger_testing import at as minutes
from ledger_testing import downgrade, downgrade_sync, level_tables, obs, scalar
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import Ledger, head_revision, upgrade_sync
from ledger.tables import metadata

TABLES = {
    "items",
    "item_system_ids",
    "levels",
    "level_history",
    "level_skus",
    "incidents",
    "resyncs",
    "adjustments",
    "audit_log",
    "outbox",
    "webhook_deliveries",
    "week_verdicts",
    "kpi_weeks",
    "replicas",
    "job_leases",
    "job_claims",
    "slack_pace",
    "replica_health",
    "job_state",
}


async def test_upgrade_to_head_creates_the_tables(db_url: str, raw: AsyncEngine) -> None:
    async with Ledger.from_url(db_url) as ledger:
        assert await ledger.current_revision() is None
        await ledger.upgrade()
        assert await ledger.current_revision() == head_revision()
        await ledger.upgrade()  # a second run is a no-op
        assert await ledger.current_revision() == head_revision()
    async with raw.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        views = await conn.run_sync(lambda c: set(inspect(c).get_view_names()))
    assert names >= TABLES | {"alembic_version"}
    assert views == {"level_current"}


async def test_the_migrations_match_the_models(ledger: Ledger, raw: AsyncEngine) -> None:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with raw.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_downgrade_then_upgrade_round_trips(db_url: str, raw: AsyncEngine) -> None:
    def names(c: Connection) -> set[str]:
        return set(inspect(c).get_table_names())

    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade()
        async with raw.begin() as conn:
            await conn.run_sync(downgrade_sync, "0001")
        assert await ledger.current_revision() == "0001"
        async with raw.connect() as conn:
            assert "webhook_deliveries" not in await conn.run_sync(names)
        await ledger.upgrade()
        assert await ledger.current_revision() == head_revision()
        async with raw.connect() as conn:
            assert "webhook_deliveries" in await conn.run_sync(names)


async def test_upgrade_sync_works_from_synchronous_code(db_url: str) -> None:
    # upgrade_sync runs its own event loop, as a CLI would; give it a thread without one.
    await asyncio.to_thread(upgrade_sync, db_url)
    async with Ledger.from_url(db_url) as ledger:
        assert await ledger.current_revision() == head_revision()


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'dw.db'}") as ledger:
        await ledger.upgrade()
        async with ledger._read() as conn:
            journal = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            foreign_keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
            busy = (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one()
    assert (journal, foreign_keys) == ("wal", 1)
    assert busy >= 1000


def test_the_migration_scripts_ship_inside_the_package() -> None:
    versions = Path(__file__).resolve().parents[2] / "ledger" / "migrations" / "versions"
    assert (versions / "__init__.py").exists()
    assert (versions.parent / "script.py.mako").exists()
    assert any(p.name.startswith(head_revision()) for p in versions.glob("*.py"))


async def test_0003_unpoisons_trigger_times_and_folds_refusals_into_counts(
    db_url: str, raw: AsyncEngine
) -> None:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade("0002")
    rows = [  # (event_id, outcome, triggered_at, received_at, detail)
        ("genuine", "processed", t0, t0 + timedelta(seconds=3), "{}"),
        ("poisoned", "processed", datetime(9999, 12, 31, tzinfo=UTC), t0, "{}"),
        ("skewed", "processed", t0 + timedelta(seconds=30), t0, "{}"),
    ]
    rows += [
        (
            f"spam-{n}",
            "rejected_signature",
            None,
            t0 + timedelta(seconds=n),
            '{"signature": "missing"}',
        )
        for n in range(40)
    ]
    rows.append((None, "too_large", None, t0 + timedelta(minutes=7), '{"limit": 1}'))
    async with raw.begin() as conn:
        for event_id, outcome, triggered, received, detail in rows:
            sqlite = raw.dialect.name == "sqlite"
            await conn.execute(
                text(
                    "INSERT INTO webhook_deliveries (system, topic, event_id, triggered_at, "
                    "received_at, outcome, detail) VALUES ('shopify', 'inventory_levels/update', "
                    ":event_id, :triggered, :received, :outcome, :detail)"
                ),
                {
                    "event_id": event_id,
                    "triggered": triggered.replace(tzinfo=None)
                    if sqlite and triggered
                    else triggered,
                    "received": received.replace(tzinfo=None) if sqlite else received,
                    "outcome": outcome,
                    "detail": detail,
                },
            )
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade()
        kept = {d.event_id: d for d in await ledger.list_deliveries()}
        assert set(kept) == {"genuine", "poisoned", "skewed"}  # refusal rows are gone...
        counts = await ledger.list_refusals()
        assert [(r.outcome, r.reason, r.count) for r in counts] == [  # ...and counted
            ("rejected_signature", "missing", 40),
            ("too_large", "", 1),
        ]
        assert counts[0].last_at == t0 + timedelta(seconds=39)
        poisoned = kept["poisoned"]
        assert (poisoned.triggered_at, poisoned.ordered_at) == (t0, t0)
        assert poisoned.detail["triggered_at_header"].startswith("9999-12-31")
        assert kept["skewed"].ordered_at == t0 + timedelta(seconds=30)  # within the skew
        assert kept["genuine"].ordered_at == t0
        window = await ledger.delivery_window("shopify", t0)
        assert window.count("rejected_signature") == 40


async def test_0012_notes_every_sku_a_ledger_already_holds(db_url: str, raw: AsyncEngine) -> None:
    """A ledger upgraded in place knows the SKUs of the levels it held (as /drift knew
    them through history before), each once, quotes and all; its new levels add theirs."""
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade("0011")
    await _write_levels_as_0011(raw, ["A-1", "B'2", "日本-3"])
    await _write_levels_as_0011(raw, ["A-1"], quantity=2)  # a change: history twice
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade()
        assert await ledger.known_skus() == sorted({"A-1", "B'2", "日本-3"})
        assert await ledger.is_known_sku("B'2")
        await ledger.record_levels([obs(1, 0, sku="C-4"), obs(2, 0, sku="A-1")])
        assert await ledger.known_skus() == sorted({"A-1", "B'2", "C-4", "日本-3"})
        async with raw.begin() as conn:
            await conn.run_sync(downgrade_sync, "0011")
        async with raw.connect() as conn:
            assert "level_skus" not in await conn.run_sync(
                lambda c: set(inspect(c).get_table_names())
            )


async def test_skus_an_older_replica_recorded_are_noted_at_start(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """During a rolling upgrade a replica older than 0012 records levels without noting
    their SKUs: /drift would call them unknown. ``note_unlisted_skus`` (each service
    runs it at start) notes them, and only them."""
    await ledger.record_levels([obs(1, 0, sku="NEW-1")])
    await downgrade(raw, "0013")  # (a replica older than 0014 cannot write after it)
    await _write_levels_as_0011(raw, ["OLD-1", "OLD'2"])
    await ledger.upgrade()
    assert not await ledger.is_known_sku("OLD-1")
    assert await ledger.note_unlisted_skus() == 2
    assert await ledger.known_skus() == ["NEW-1", "OLD'2", "OLD-1"]
    assert await ledger.is_known_sku("OLD-1")
    assert await ledger.note_unlisted_skus() == 0


async def test_0013_reads_the_changes_a_ledger_held_and_a_downgrade_keeps_every_change(
    db_url: str, raw: AsyncEngine
) -> None:
    """Upgraded in place (no row moved), a ledger reads the changes it held as before:
    its current rows hold no change of their own, history's newest row holds it. A
    change after the upgrade lives in its current row, and a downgrade puts such changes
    back into history, where code before 0013 reads every change."""
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade("0012")
    await _write_levels_as_0011(raw, ["A-1"])
    await _write_levels_as_0011(raw, ["A-1"], quantity=2)  # 09:01 → 09:02 in erp and wms
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    day = 30 * 24 * 60  # obs' minutes from 2026-11-02 09:00 to 2026-12-02 09:00
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade()
        series = await ledger.level_series("A-1", start)
        assert [(r.system, r.quantity) for r in series] == [
            ("erp", 1),
            ("wms", 1),
            ("erp", 2),
            ("wms", 2),
        ]
        await ledger.record_levels([obs(5, day, sku="A-1", system="erp", state="available")])
        await ledger.record_levels([obs(7, day, sku="B-2", system="erp")])
        assert await scalar(raw, "SELECT count(*) FROM level_history") == 4  # nothing moved
        series = await ledger.level_series("A-1", start)
        assert [(r.system, r.quantity) for r in series][-1] == ("erp", 5)
        async with raw.begin() as conn:
            await conn.run_sync(downgrade_sync, "0012")
        async with raw.connect() as conn:
            history = [
                tuple(r)
                for r in await conn.exec_driver_sql(
                    "SELECT system, sku, quantity, source FROM level_history ORDER BY id"
                )
            ]
        assert history == [
            ("erp", "A-1", 1, "poll"),
            ("wms", "A-1", 1, "poll"),
            ("erp", "A-1", 2, "poll"),
            ("wms", "A-1", 2, "poll"),
            ("erp", "A-1", 5, "poll"),
            ("erp", "B-2", 7, "poll"),
        ]
        await ledger.upgrade()
        assert await ledger.current_revision() == head_revision()


async def _write_levels_as_0011(raw: AsyncEngine, skus: list[str], quantity: int = 1) -> None:
    """Levels of ``skus`` in two systems written as code before 0012 wrote them: a current
    row (inserted or updated) and a history row each, no ``level_skus``."""
    at = datetime(2026, 12, 1, 9, quantity, tzinfo=UTC)
    if raw.dialect.name == "sqlite":
        at = at.replace(tzinfo=None)
    columns = "system, sku, location, state, quantity, observed_at"
    async with raw.begin() as conn:
        for system in ("erp", "wms"):
            for sku in skus:
                values = {"system": system, "sku": sku, "q": quantity, "at": at}
                await conn.execute(
                    text(
                        f"INSERT INTO level_current ({columns}, changed_at, source) VALUES "
                        "(:system, :sku, 'east', 'available', :q, :at, :at, 'poll') "
                        "ON CONFLICT (system, sku, location, state) DO UPDATE SET "
                        "quantity = excluded.quantity"
                    ),
                    values,
                )
                await conn.execute(
                    text(
                        f"INSERT INTO level_history ({columns}, source) VALUES "
                        "(:system, :sku, 'east', 'available', :q, :at, 'poll')"
                    ),
                    values,
                )


#: level_current rows as 0013 held them: (sku, state, quantity, observed minute, changed
#: minute, source, absent, since minute, since_source, since_quantity, previous)
ROWS_0013 = [
    # a first read's rows: each its own first change
    ("A-1", "on_hand", 5, 0, 0, "poll", False, 0, "poll", 5, None),
    ("A-1", "available", 4, 0, None, "poll", False, 0, "poll", 4, None),
    # a change: 7 replaced 3 at minute 5; then a webhook observed it again
    ("B-2", "available", 7, 9, 5, "webhook", False, 5, "poll", 7, 3),
    # a state the last complete read did not report
    ("B-2", "committed", 1, 2, 0, "poll", True, 0, "poll", 1, None),
    # written before 0013: its change is history's newest row
    ("C-3", "incoming", 8, 3, 3, "bulk", False, None, None, None, None),
]


async def _write_as_0013(raw: AsyncEngine) -> None:
    sqlite = raw.dialect.name == "sqlite"

    def when(minute: int | None) -> object:
        if minute is None:
            return None
        value = minutes(minute)
        return value.replace(tzinfo=None) if sqlite else value

    async with raw.begin() as conn:
        for sku, state, q, seen, changed, source, absent, since, by, since_q, prev in ROWS_0013:
            await conn.execute(
                text(
                    "INSERT INTO level_current (system, sku, location, state, quantity, "
                    "observed_at, changed_at, source, absent, since, since_source, "
                    "since_quantity, previous) VALUES ('shopify', :sku, 'east', :state, :q, "
                    ":seen, :changed, :source, :absent, :since, :by, :since_q, :prev)"
                ),
                {
                    "sku": sku,
                    "state": state,
                    "q": q,
                    "seen": when(seen),
                    "changed": when(changed),
                    "source": source,
                    "absent": absent,
                    "since": when(since),
                    "by": by,
                    "since_q": since_q,
                    "prev": prev,
                },
            )
        await conn.execute(
            text(
                "INSERT INTO level_history (system, sku, location, state, quantity, "
                "observed_at, source) VALUES ('shopify', 'B-2', 'east', 'available', 3, "
                ":t0, 'poll'), ('shopify', 'C-3', 'east', 'incoming', 8, :t3, 'bulk')"
            ),
            {"t0": when(0), "t3": when(3)},
        )
        await conn.execute(text("INSERT INTO level_skus (sku) VALUES ('A-1'), ('B-2'), ('C-3')"))


async def test_0014_keeps_every_row_as_it_read_and_a_downgrade_gives_them_back(
    db_url: str, raw: AsyncEngine
) -> None:
    """A ledger at 0013 with every kind of row: a first read's, a change (with the value
    it replaced), a state a complete read did not report, and a row written before 0013
    (no change of its own). Upgraded to 0014 (a row per level) it reads the same, row for
    row and through the timeline, and records as before; downgraded, the old table holds
    the same rows again."""
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade("0013")
    await _write_as_0013(raw)
    before = await level_tables(db_url)
    assert len(before[0]) == len(ROWS_0013)
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade()
        assert await level_tables(db_url) == before
        series = await ledger.level_series("B-2", minutes(-10))
        assert [(r.state, r.quantity, r.observed_at) for r in series] == [
            ("available", 3, minutes(0)),
            ("committed", 1, minutes(0)),
            ("available", 7, minutes(5)),
        ]
        [change] = await ledger.level_changes("shopify", minutes(-10), minutes(60))
        assert (change.sku, change.previous, change.quantity) == ("B-2", 3, 7)
        # a change after the upgrade: the old value moves into history as before
        await ledger.record_levels([obs(9, 20, sku="C-3", state="incoming")])
        await ledger.record_levels([obs(6, 21, sku="A-1", state="available")])
        series = await ledger.level_series("C-3", minutes(-10))
        assert [(r.quantity, r.observed_at) for r in series] == [(8, minutes(3)), (9, minutes(20))]
        series = await ledger.level_series("A-1", minutes(-10))
        assert [(r.state, r.quantity) for r in series] == [
            ("available", 4),
            ("on_hand", 5),
            ("available", 6),
        ]
        after = await level_tables(db_url)
    await downgrade(raw, "0013")
    assert await level_tables(db_url) == after


async def test_0014_stops_on_a_state_it_has_no_column_for_and_changes_nothing(
    db_url: str, raw: AsyncEngine
) -> None:
    """Code before 0014 stored any state; 0014 has a column for each state the
    connectors know. A row of another state stops the upgrade with its name, before
    anything is changed: no row is dropped behind the operator's back."""
    async with Ledger.from_url(db_url) as ledger:
        await ledger.upgrade("0013")
    await _write_as_0013(raw)
    async with raw.begin() as conn:
        await conn.execute(
            text("UPDATE level_current SET state = :state WHERE sku = 'C-3'"),
            {"state": "on\nhand"},
        )
    async with Ledger.from_url(db_url) as ledger:
        with pytest.raises(Exception, match="states the ledger does not keep") as stopped:
            await ledger.upgrade()
        assert "'on\\nhand' (1 rows)" in str(stopped.value)
        assert await ledger.current_revision() == "0013"
    assert await scalar(raw, "SELECT count(*) FROM level_current") == len(ROWS_0013)
