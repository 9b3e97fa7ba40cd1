"""The audit log: append and read through the API; the database refuses changes."""

from __future__ import annotations

import pytest
from ledger_testing import T0, at, scalar
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import InvalidArgument, Ledger


async def test_append_and_list(ledger: Ledger) -> None:
    first = await ledger.append_audit("U_ALICE", "config.reloaded", "config", {"n": 1}, T0)
    await ledger.append_audit("driftwatch", "report.posted", "report:2026-W45", None, at(1))
    third = await ledger.append_audit("U_BOB", "config.reloaded", "config", {"n": 2}, at(2))
    assert (first.actor, first.action, first.subject, first.detail, first.at) == (
        "U_ALICE",
        "config.reloaded",
        "config",
        {"n": 1},
        T0,
    )
    assert [e.id for e in await ledger.list_audit(subject="config")] == [third.id, first.id]
    assert [e.detail for e in await ledger.list_audit(limit=2)] == [{"n": 2}, {}]
    assert [e.id for e in await ledger.list_audit(since=at(2))] == [third.id]


async def test_many_entries_are_appended_together_or_not_at_all(ledger: Ledger) -> None:
    written = await ledger.append_audit_many(
        [
            ("U_ALICE", "slack.command", "sku:TEE", {"command": "/drift"}, T0),
            ("U_BOB", "slack.action", "incident:1", None, at(1)),
        ]
    )
    assert [(e.actor, e.detail) for e in written] == [
        ("U_ALICE", {"command": "/drift"}),
        ("U_BOB", {}),
    ]
    with pytest.raises(InvalidArgument):
        await ledger.append_audit_many(
            [("U_CAROL", "slack.command", "sku:TEE", None, at(2)), ("", "x", "y", None, at(2))]
        )
    assert [e.actor for e in await ledger.list_audit()] == ["U_BOB", "U_ALICE"]


async def test_bad_entries_are_refused(ledger: Ledger, raw: AsyncEngine) -> None:
    with pytest.raises(InvalidArgument):
        await ledger.append_audit("U_ALICE", "x", "y", {"when": T0}, T0)  # not JSON
    with pytest.raises(InvalidArgument):
        await ledger.append_audit("", "x", "y", {}, T0)
    assert await scalar(raw, "SELECT count(*) FROM audit_log") == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
    ],
)
async def test_the_database_refuses_to_change_the_audit_log(
    ledger: Ledger, raw: AsyncEngine, statement: str
) -> None:
    entry = await ledger.append_audit("U_ALICE", "incident.resolved", "incident:1", {}, T0)
    with pytest.raises(DBAPIError, match="append-only"):
        async with raw.begin() as conn:
            await conn.execute(text(statement))
    assert await ledger.list_audit() == [entry]


async def test_postgresql_also_refuses_truncate(ledger: Ledger, raw: AsyncEngine) -> None:
    if ledger.dialect != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    await ledger.append_audit("U_ALICE", "incident.resolved", "incident:1", {}, T0)
    with pytest.raises(DBAPIError, match="append-only"):
        async with raw.begin() as conn:
            await conn.execute(text("TRUNCATE audit_log"))
    assert await scalar(raw, "SELECT count(*) FROM audit_log") == 1


#: one request's worth of what Slack can send: a NUL, lone surrogates, an empty actor
#: (the ledger refuses it), a NaN
HOSTILE_ENTRIES = [
    ("U_ALICE", "slack.command", "command:/drift", {"text": "TEE-BLK-M"}, T0),
    ("U_BOB", "slack.command", "command:/drift", {"text": "TEE\u0000NUL"}, T0),
    ("U_CAROL", "slack.action", "incident:\ud800", {"value": "\udcff"}, T0),
    ("", "slack.command", "command:/drift", None, T0),
    ("U_DAN", "slack.command", "command:/drift", {"n": float("nan")}, T0),
]


async def test_unrelated_entries_succeed_or_fail_each_on_its_own(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    results = await ledger.append_audit_each(HOSTILE_ENTRIES)
    assert isinstance(results[3], InvalidArgument)
    written = [r for r in results if not isinstance(r, Exception)]
    assert [e.actor for e in written] == ["U_ALICE", "U_BOB", "U_CAROL", "U_DAN"]
    assert written[1].detail == {"text": "TEE\ufffdNUL"}
    assert (written[2].subject, written[2].detail) == ("incident:\ufffd", {"value": "\ufffd"})
    assert written[3].detail == {"n": "nan"}
    assert await scalar(raw, "SELECT count(*) FROM audit_log") == 4


async def test_written_without_reading_back_each_entry_still_succeeds_or_fails_alone(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    results = await ledger.write_audit_each(HOSTILE_ENTRIES)
    assert [type(r) for r in results] == [*[type(None)] * 3, InvalidArgument, type(None)]
    written = sorted(await ledger.list_audit(), key=lambda e: e.id)
    assert [(e.actor, e.subject, e.detail) for e in written] == [
        ("U_ALICE", "command:/drift", {"text": "TEE-BLK-M"}),
        ("U_BOB", "command:/drift", {"text": "TEE\ufffdNUL"}),
        ("U_CAROL", "incident:\ufffd", {"value": "\ufffd"}),
        ("U_DAN", "command:/drift", {"n": "nan"}),
    ]
    assert await scalar(raw, "SELECT count(*) FROM audit_log") == 4


async def test_an_entry_the_database_refuses_is_written_without_its_detail(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    async with raw.begin() as conn:  # a value the ledger cannot know is refused
        if raw.dialect.name == "sqlite":
            await conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON audit_log "
                "WHEN json_extract(NEW.detail, '$.poison') IS NOT NULL "
                "BEGIN SELECT RAISE(ABORT, 'poisoned detail'); END"
            )
        else:
            await conn.exec_driver_sql(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.detail ? 'poison' THEN RAISE EXCEPTION 'poisoned detail'; END IF; "
                "RETURN NEW; END $$"
            )
            await conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON audit_log "
                "FOR EACH ROW EXECUTE FUNCTION poison()"
            )
    results = await ledger.append_audit_each(
        [
            ("U_ALICE", "slack.command", "command:/drift", {"n": 1}, T0),
            ("U_BOB", "slack.command", "command:/drift", {"poison": 1}, T0),
            ("U_CAROL", "slack.command", "command:/drift", {"n": 3}, T0),
        ]
    )
    assert [(r.actor, r.detail) for r in results if not isinstance(r, Exception)] == [
        ("U_ALICE", {"n": 1}),
        ("U_BOB", {"unstorable": "poisoned detail"}),
        ("U_CAROL", {"n": 3}),
    ]
