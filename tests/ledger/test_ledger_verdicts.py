"""Weekly decisions (recorded once, audited with them), captured KPI weeks and the reads
behind the signal chain, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from ledger_testing import T0, at, obs

from ledger import InvalidArgument, Ledger

WEEK = date(2026, 10, 26)


async def test_a_decision_is_recorded_once_and_audited_with_it(ledger: Ledger) -> None:
    verdict, created = await ledger.record_verdict(
        WEEK, "pass", "U0OPS001", T0, note="  mismatch down 3 pts  ", figures={"m": 0.1}
    )
    assert created
    assert (verdict.week, verdict.decision, verdict.decided_by, verdict.decided_at) == (
        WEEK,
        "pass",
        "U0OPS001",
        T0,
    )
    assert (verdict.note, verdict.figures, verdict.passed) == (
        "mismatch down 3 pts",
        {"m": 0.1},
        True,
    )
    again, created = await ledger.record_verdict(WEEK, "escalate", "U0ONCALL1", at(1), note="no")
    assert not created
    assert again == verdict  # the first decision stands; the second caller learns whose
    [entry] = await ledger.list_audit(subject="verdict:2026-10-26")
    assert (entry.actor, entry.action, entry.detail) == (
        "U0OPS001",
        "verdict.recorded",
        {"week_start": "2026-10-26", "decision": "pass", "note": "mismatch down 3 pts"},
    )
    assert await ledger.get_verdict(WEEK) == verdict
    assert await ledger.get_verdict(WEEK + timedelta(days=7)) is None


async def test_two_people_deciding_at_once_record_one_decision(ledger: Ledger) -> None:
    people = ["U0OPS001", "U0ONCALL1", "U0OPS001", "U0VIEWER1", "U0ONCALL1"]
    results = await asyncio.gather(
        *(
            ledger.record_verdict(WEEK, "pass" if i % 2 else "escalate", who, at(i), note=f"#{i}")
            for i, who in enumerate(people)
        )
    )
    assert sum(created for _, created in results) == 1
    assert len({v.id for v, _ in results}) == 1
    assert len(await ledger.list_audit(subject="verdict:2026-10-26")) == 1
    assert len(await ledger.list_verdicts()) == 1


async def test_bad_decisions_are_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidArgument):
        await ledger.record_verdict(WEEK, "maybe", "U0OPS001", T0)
    with pytest.raises(InvalidArgument):
        await ledger.record_verdict(WEEK, "pass", " ", T0)
    with pytest.raises(InvalidArgument):
        await ledger.record_verdict(WEEK, "pass", "U0OPS001", T0, note="x" * 2001)
    with pytest.raises(InvalidArgument):
        await ledger.record_verdict(WEEK, "pass", "U0OPS001", T0.replace(tzinfo=None))
    assert await ledger.list_verdicts() == []
    assert await ledger.list_audit() == []


async def test_decisions_are_listed_most_recent_week_first(ledger: Ledger) -> None:
    for i in range(3):
        await ledger.record_verdict(WEEK + timedelta(days=7 * i), "pass", "U0OPS001", at(i))
    assert [v.week_start for v in await ledger.list_verdicts(limit=2)] == [
        "2026-11-09",
        "2026-11-02",
    ]


async def test_a_captured_week_keeps_its_first_figures(ledger: Ledger) -> None:
    first, created = await ledger.capture_kpi_week(WEEK, {"mismatch_rate": 0.25}, T0)
    assert created
    second, created = await ledger.capture_kpi_week(WEEK, {"mismatch_rate": 0.5}, at(5))
    assert not created
    assert second == first
    assert (await ledger.kpi_week(WEEK)) == first
    assert await ledger.kpi_week(WEEK + timedelta(days=7)) is None
    assert [w.week for w in await ledger.list_kpi_weeks()] == [WEEK]


async def test_the_history_window_starts_from_each_keys_known_value(ledger: Ledger) -> None:
    assert await ledger.first_level_observation() is None
    await ledger.record_levels(
        [
            obs(10, 0, system="wms"),
            obs(9, 10, system="wms"),
            obs(7, 20, system="wms", state="committed"),
            obs(8, 30, system="wms"),
            obs(5, 40, system="shopify"),
            obs(6, 50, system="erp"),
        ]
    )
    assert await ledger.first_level_observation() == T0
    rows = await ledger.level_history_window(["wms", "shopify"], at(15), at(40))
    assert [(r.system, r.state, r.quantity, r.observed_at) for r in rows] == [
        ("wms", "available", 9, at(10)),  # the last change before the window
        ("wms", "committed", 7, at(20)),
        ("wms", "available", 8, at(30)),
        ("shopify", "available", 5, at(40)),  # the window's end is included
    ]
    assert await ledger.level_history_window([], at(0), at(1)) == []
    with pytest.raises(InvalidArgument):
        await ledger.level_history_window(["wms"], at(2), at(1))


async def test_an_outbox_entry_is_found_by_its_dedupe_key(ledger: Ledger) -> None:
    entry = await ledger.enqueue("message", "C1", {"text": "hi"}, T0, dedupe_key="weekly:x")
    assert entry is not None
    assert await ledger.outbox_entry_by_key("weekly:x") == entry
    assert await ledger.outbox_entry_by_key("weekly:y") is None
