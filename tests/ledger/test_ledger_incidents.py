"""Incidents: one live incident per fingerprint, a lifecycle, every change audited."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from ledger_testing import T0, at, scalar
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import (
    Conflict,
    Incident,
    InvalidArgument,
    InvalidTransition,
    Ledger,
    NotFound,
)

FP = "drift:TEE-BLK-M:east:shopify"


async def open_one(
    ledger: Ledger,
    minutes: float = 0,
    *,
    severity: str = "warning",
    details: Mapping[str, Any] | None = None,
) -> tuple[Incident, bool]:
    return await ledger.open_incident(
        FP,
        "oversell_risk",
        severity,
        "Oversell risk: TEE-BLK-M at east",
        at(minutes),
        sku="TEE-BLK-M",
        location="east",
        system="shopify",
        details={"gap": 3} if details is None else details,
    )


async def actions(ledger: Ledger, incident_id: int) -> list[str]:
    entries = await ledger.list_audit(subject=f"incident:{incident_id}")
    return [e.action for e in reversed(entries)]


async def count_incidents(raw: AsyncEngine) -> int:
    return int(await scalar(raw, "SELECT count(*) FROM incidents"))


async def test_opening_then_touching(ledger: Ledger, raw: AsyncEngine) -> None:
    first, new = await open_one(ledger)
    assert new
    assert (first.status, first.opened_at, first.last_seen_at, first.details) == (
        "open",
        T0,
        T0,
        {"gap": 3},
    )
    again, new = await open_one(ledger, 5, details={"gap": 5})
    assert not new
    assert again.id == first.id
    assert (again.opened_at, again.last_seen_at, again.details) == (T0, at(5), {"gap": 5})
    late, _ = await open_one(ledger, 2, details={"gap": 1})  # an older evaluation
    assert (late.last_seen_at, late.details) == (at(5), {"gap": 5})
    assert await count_incidents(raw) == 1
    assert await actions(ledger, first.id) == ["incident.opened"]


async def test_a_severity_change_is_applied_and_audited(ledger: Ledger) -> None:
    incident, _ = await open_one(ledger)
    escalated, _ = await open_one(ledger, 1, severity="critical")
    assert escalated.severity == "critical"
    assert await actions(ledger, incident.id) == ["incident.opened", "incident.severity_changed"]


async def test_concurrent_opens_make_one_incident(
    ledger: Ledger, db_url: str, raw: AsyncEngine
) -> None:
    async with Ledger.from_url(db_url) as replica:
        results = await asyncio.gather(
            *(open_one(ledger if i % 2 else replica, i / 10) for i in range(10))
        )
    assert sum(new for _, new in results) == 1
    assert len({incident.id for incident, _ in results}) == 1
    assert await count_incidents(raw) == 1
    opened = await scalar(raw, "SELECT count(*) FROM audit_log WHERE action = 'incident.opened'")
    assert opened == 1


async def test_the_database_allows_one_live_incident_per_fingerprint(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    incident, _ = await open_one(ledger)
    insert = text(
        "INSERT INTO incidents (fingerprint, kind, severity, status, title, details, "
        "opened_at, last_seen_at, reopened_count) VALUES (:fp, 'k', 'info', :status, 't', "
        "'{}', :t, :t, 0)"
    )
    with pytest.raises(IntegrityError):
        async with raw.begin() as conn:
            await conn.execute(insert, {"fp": FP, "status": "acknowledged", "t": T0})
    async with raw.begin() as conn:  # resolved ones do not count
        await conn.execute(insert, {"fp": FP, "status": "resolved", "t": T0})
    assert await ledger.find_open_incident(FP) == await ledger.get_incident(incident.id)


async def test_the_lifecycle(ledger: Ledger) -> None:
    incident, _ = await open_one(ledger)
    acked = await ledger.acknowledge(incident.id, "U_ALICE", at(3))
    assert (acked.status, acked.acknowledged_by, acked.acknowledged_at) == (
        "acknowledged",
        "U_ALICE",
        at(3),
    )
    again = await ledger.acknowledge(incident.id, "U_BOB", at(4))
    assert again.acknowledged_by == "U_ALICE"  # no change, no second audit entry
    rooted = await ledger.set_root_cause(
        incident.id, "ERP import skipped", "re-ran import", "alert on skips", "U_ALICE", at(5)
    )
    assert (rooted.root_cause, rooted.remediation, rooted.follow_up) == (
        "ERP import skipped",
        "re-ran import",
        "alert on skips",
    )
    resolved = await ledger.resolve(incident.id, "U_BOB", at(9))
    assert (resolved.status, resolved.resolved_by, resolved.resolved_at) == (
        "resolved",
        "U_BOB",
        at(9),
    )
    assert await ledger.resolve(incident.id, "U_BOB", at(10)) == resolved
    assert await ledger.find_open_incident(FP) is None
    assert await ledger.get_incident(incident.id) == resolved
    assert await actions(ledger, incident.id) == [
        "incident.opened",
        "incident.acknowledged",
        "incident.root_cause",
        "incident.resolved",
    ]
    [last] = await ledger.list_audit(subject=f"incident:{incident.id}", limit=1)
    assert (last.actor, last.at, last.detail["from_status"]) == ("U_BOB", at(9), "acknowledged")
    with pytest.raises(InvalidTransition):
        await ledger.acknowledge(incident.id, "U_ALICE", at(11))
    with pytest.raises(InvalidTransition):
        await ledger.snooze(incident.id, at(60), "U_ALICE", at(11))


async def test_snooze(ledger: Ledger) -> None:
    incident, _ = await open_one(ledger)
    snoozed = await ledger.snooze(incident.id, at(60), "U_ALICE", at(1))
    assert snoozed.snoozed_until == at(60)
    assert snoozed.is_snoozed(at(59))
    assert not snoozed.is_snoozed(at(60))
    lifted = await ledger.snooze(incident.id, None, "U_ALICE", at(2))
    assert lifted.snoozed_until is None
    assert await actions(ledger, incident.id) == [
        "incident.opened",
        "incident.snoozed",
        "incident.unsnoozed",
    ]


async def test_after_resolve_the_fingerprint_opens_a_new_incident(ledger: Ledger) -> None:
    first, _ = await open_one(ledger)
    await ledger.resolve(first.id, "U_BOB", at(5))
    second, new = await open_one(ledger, 10)
    assert new
    assert second.id != first.id
    assert (second.status, second.reopened_count) == ("open", 0)
    assert [i.id for i in await ledger.list_incidents()] == [second.id, first.id]
    assert [i.id for i in await ledger.list_incidents(status="resolved")] == [first.id]


async def test_reopen(ledger: Ledger) -> None:
    incident, _ = await open_one(ledger)
    await ledger.acknowledge(incident.id, "U_ALICE", at(1))
    await ledger.resolve(incident.id, "U_ALICE", at(2))
    reopened = await ledger.reopen(incident.id, at(7))
    assert (reopened.status, reopened.reopened_count, reopened.last_seen_at) == ("open", 1, at(7))
    assert (reopened.resolved_at, reopened.acknowledged_by) == (None, None)
    assert await ledger.reopen(incident.id, at(8)) == reopened  # not resolved: no change
    assert await ledger.find_open_incident(FP) == reopened
    touched, new = await open_one(ledger, 9)
    assert (touched.id, new) == (incident.id, False)
    assert (await actions(ledger, incident.id))[-1] == "incident.reopened"


async def test_reopen_refuses_a_second_live_incident(ledger: Ledger) -> None:
    first, _ = await open_one(ledger)
    await ledger.resolve(first.id, "U_BOB", at(1))
    second, _ = await open_one(ledger, 2)
    with pytest.raises(Conflict):
        await ledger.reopen(first.id, at(3))
    assert (await ledger.get_incident(first.id)).status == "resolved"
    assert (await actions(ledger, first.id))[-1] == "incident.resolved"
    assert (await ledger.find_open_incident(FP)) == second


async def test_a_failing_state_change_leaves_no_partial_write(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    incident, _ = await open_one(ledger)
    audit_before = await scalar(raw, "SELECT count(*) FROM audit_log")
    # The incident row is updated first; then the audit entry cannot be encoded.
    with pytest.raises(InvalidArgument):
        await ledger.resolve(incident.id, "U_BOB", at(5), detail={"button": object()})
    stored = await ledger.get_incident(incident.id)
    assert (stored.status, stored.resolved_at, stored.resolved_by) == ("open", None, None)
    assert await scalar(raw, "SELECT count(*) FROM audit_log") == audit_before
    assert await scalar(raw, "SELECT status FROM incidents WHERE id = :i", i=incident.id) == "open"


async def test_a_failing_open_leaves_neither_incident_nor_audit_entry(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    with pytest.raises(InvalidArgument):
        await open_one(ledger, details={"evidence": {1, 2}})
    assert await count_incidents(raw) == 0
    assert await scalar(raw, "SELECT count(*) FROM audit_log") == 0


async def test_unknown_ids_and_bad_values(ledger: Ledger) -> None:
    with pytest.raises(NotFound):
        await ledger.get_incident(404)
    with pytest.raises(NotFound):
        await ledger.acknowledge(404, "U_ALICE", T0)
    with pytest.raises(NotFound):
        await ledger.set_incident_message(404, "C1", "1.2")
    with pytest.raises(InvalidArgument, match="severity"):
        await open_one(ledger, severity="apocalyptic")
    with pytest.raises(InvalidArgument, match="aware"):
        await ledger.open_incident(FP, "k", "info", "t", T0.replace(tzinfo=None))
    with pytest.raises(InvalidArgument, match="status"):
        await ledger.list_incidents(status="closed")


async def test_listing_and_the_slack_message(ledger: Ledger) -> None:
    a, _ = await ledger.open_incident("a", "drift", "info", "A", at(0), sku="A")
    b, _ = await ledger.open_incident("b", "sync_lag", "warning", "B", at(1), sku="B")
    c, _ = await ledger.open_incident("c", "drift", "critical", "C", at(2), sku="A")
    assert [i.id for i in await ledger.list_incidents()] == [c.id, b.id, a.id]
    assert [i.id for i in await ledger.list_incidents(kind="drift")] == [c.id, a.id]
    assert [i.id for i in await ledger.list_incidents(sku="A", limit=1)] == [c.id]
    assert [i.id for i in await ledger.list_incidents(since=at(1))] == [c.id, b.id]
    posted = await ledger.set_incident_message(b.id, "C_OPS", "1700000000.000100")
    assert (posted.slack_channel, posted.slack_ts) == ("C_OPS", "1700000000.000100")
    assert (await ledger.get_incident(b.id)).slack_ts == "1700000000.000100"


async def test_an_annotation_survives_fresh_details(ledger: Ledger) -> None:
    incident, _ = await open_one(ledger, details={"gap": 4, "runner_up": "race"})
    await ledger.annotate_incident(incident.id, "policy", {"outcome": "applied"}, at(1))
    touched, _ = await open_one(ledger, 2, details={"gap": 5})
    assert touched.details["gap"] == 5
    assert "runner_up" not in touched.details  # fresh facts replace facts...
    assert touched.details["policy"] == {"outcome": "applied"}  # ...never notes
    again = await ledger.annotate_incident(incident.id, "policy", {"outcome": "x"}, at(3))
    assert again.details["policy"] == {"outcome": "x"}
    with pytest.raises(InvalidArgument):
        await ledger.annotate_incident(incident.id, "_notes", [], at(3))
    with pytest.raises(NotFound):
        await ledger.annotate_incident(incident.id + 99, "policy", {}, at(3))
    await ledger.resolve(incident.id, "U1", at(4))
    with pytest.raises(InvalidTransition):
        await ledger.annotate_incident(incident.id, "policy", {}, at(5))
