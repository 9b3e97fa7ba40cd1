"""Incidents: at most one live (non-resolved) incident per fingerprint, and a lifecycle
whose every state change is written together with its audit entry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.audit import insert_audit
from ledger.errors import Conflict, InvalidArgument, InvalidTransition, NotFound
from ledger.records import Incident
from ledger.store import Store
from ledger.tables import INCIDENTS
from ledger.types import (
    INCIDENT_STATUSES,
    SEVERITIES,
    SYSTEM_ACTOR,
    require_choice,
    require_json,
    require_text,
    require_utc,
)

#: How often open_incident retries after losing an insert race to another writer.
_OPEN_ATTEMPTS = 3
#: ``details`` key listing the keys written by ``annotate_incident`` (kept on touch)
NOTES_KEY = "_notes"

_Change = Callable[[Incident, datetime], dict[str, Any] | None]


class Incidents(Store):
    """Opening incidents and moving them through their lifecycle."""

    async def open_incident(
        self,
        fingerprint: str,
        kind: str,
        severity: str,
        title: str,
        at: datetime,
        sku: str | None = None,
        location: str | None = None,
        system: str | None = None,
        details: Mapping[str, Any] | None = None,
        root_cause_hint: str | None = None,
    ) -> tuple[Incident, bool]:
        """The live incident for ``fingerprint``, and whether this call opened it.

        If a non-resolved incident has this fingerprint, its ``last_seen_at`` moves to
        ``at`` and, unless ``at`` is older than what it has seen, ``details``,
        ``root_cause_hint`` and ``severity`` are replaced by the given ones. Otherwise a
        new incident is opened (audited as ``incident.opened``). Concurrent callers, in
        this process or another, get the same incident.
        """
        fingerprint = require_text(fingerprint, "fingerprint")
        require_choice(severity, SEVERITIES, "severity")
        at = require_utc(at, "at")
        for attempt in range(_OPEN_ATTEMPTS):
            try:
                async with self._write() as conn:
                    existing = await _find_open(conn, fingerprint, lock=True)
                    if existing is not None:
                        touched = await _touch(
                            conn, existing, at, severity, details, root_cause_hint
                        )
                        return touched, False
                    row = (
                        (
                            await conn.execute(
                                insert(INCIDENTS)
                                .values(
                                    fingerprint=fingerprint,
                                    kind=require_text(kind, "kind"),
                                    severity=severity,
                                    status="open",
                                    title=title,
                                    sku=sku,
                                    location=location,
                                    system=system,
                                    details=require_json(dict(details or {}), "details"),
                                    root_cause_hint=root_cause_hint,
                                    opened_at=at,
                                    last_seen_at=at,
                                    reopened_count=0,
                                )
                                .returning(*INCIDENTS.c)
                            )
                        )
                        .mappings()
                        .one()
                    )
                    incident = Incident.from_row(row)
                    await insert_audit(
                        conn,
                        actor=SYSTEM_ACTOR,
                        action="incident.opened",
                        subject=incident_subject(incident.id),
                        detail={
                            "fingerprint": fingerprint,
                            "kind": kind,
                            "severity": severity,
                            "sku": sku,
                            "location": location,
                            "system": system,
                        },
                        at=at,
                    )
                    return incident, True
            except IntegrityError:
                # Another writer opened it between our look and our insert: look again.
                if attempt == _OPEN_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def annotate_incident(
        self, incident_id: int, key: str, value: Any, at: datetime
    ) -> Incident:
        """Set ``details[key]`` on an incident, and keep it there when later evaluations
        replace the incident's details (what Driftwatch did about it, not what it saw).
        Refused (:class:`InvalidTransition`) on a resolved incident."""
        key = require_text(key, "key")
        if key == NOTES_KEY:
            raise InvalidArgument(f"{NOTES_KEY!r} is reserved")
        at = require_utc(at, "at")
        async with self._write() as conn:
            query = select(INCIDENTS).where(INCIDENTS.c.id == incident_id).with_for_update()
            row = (await conn.execute(query)).mappings().first()
            if row is None:
                raise NotFound(f"no incident {incident_id}")
            incident = Incident.from_row(row)
            if incident.status == "resolved":
                raise InvalidTransition(f"incident {incident_id} is resolved")
            details = dict(incident.details or {})
            notes = list(details.get(NOTES_KEY) or [])
            if key not in notes:
                notes.append(key)
            details.update({key: value, NOTES_KEY: notes})
            updated = (
                (
                    await conn.execute(
                        update(INCIDENTS)
                        .where(INCIDENTS.c.id == incident_id)
                        .values(details=require_json(details, "details"))
                        .returning(*INCIDENTS.c)
                    )
                )
                .mappings()
                .one()
            )
            return Incident.from_row(updated)

    async def get_incident(self, incident_id: int) -> Incident:
        """The incident with this id; :class:`NotFound` if there is none."""
        async with self._read() as conn:
            row = (
                (await conn.execute(select(INCIDENTS).where(INCIDENTS.c.id == incident_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        return Incident.from_row(row)

    async def find_open_incident(self, fingerprint: str) -> Incident | None:
        """The non-resolved incident with this fingerprint, or None."""
        async with self._read() as conn:
            return await _find_open(conn, fingerprint, lock=False)

    async def list_incidents(
        self,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        *,
        sku: str | None = None,
        since: datetime | None = None,
    ) -> list[Incident]:
        """Incidents, newest first, filtered by status, kind, SKU and ``opened_at >= since``."""
        query = select(INCIDENTS).order_by(INCIDENTS.c.opened_at.desc(), INCIDENTS.c.id.desc())
        if status is not None:
            query = query.where(
                INCIDENTS.c.status == require_choice(status, INCIDENT_STATUSES, "status")
            )
        if kind is not None:
            query = query.where(INCIDENTS.c.kind == kind)
        if sku is not None:
            query = query.where(INCIDENTS.c.sku == sku)
        if since is not None:
            query = query.where(INCIDENTS.c.opened_at >= require_utc(since, "since"))
        async with self._read() as conn:
            rows = (await conn.execute(query.limit(limit))).mappings().all()
        return [Incident.from_row(row) for row in rows]

    async def set_incident_message(self, incident_id: int, channel: str, ts: str) -> Incident:
        """Remember the Slack message that shows this incident."""
        async with self._write() as conn:
            row = (
                (
                    await conn.execute(
                        update(INCIDENTS)
                        .where(INCIDENTS.c.id == incident_id)
                        .values(slack_channel=channel, slack_ts=ts)
                        .returning(*INCIDENTS.c)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        return Incident.from_row(row)

    async def acknowledge(
        self, incident_id: int, by: str, at: datetime, *, detail: Mapping[str, Any] | None = None
    ) -> Incident:
        """open → acknowledged. No change if already acknowledged; refused if resolved."""

        def change(incident: Incident, at: datetime) -> dict[str, Any] | None:
            if incident.status == "resolved":
                raise InvalidTransition(f"incident {incident.id} is resolved")
            if incident.status == "acknowledged":
                return None
            return {"status": "acknowledged", "acknowledged_at": at, "acknowledged_by": by}

        return await self._transition(incident_id, "incident.acknowledged", by, at, detail, change)

    async def resolve(
        self,
        incident_id: int,
        by: str,
        at: datetime,
        *,
        detail: Mapping[str, Any] | None = None,
        resolution: Mapping[str, Any] | None = None,
    ) -> Incident:
        """open/acknowledged → resolved. No change if already resolved.

        ``resolution``: how it was resolved and what every system said then (the final
        counts), kept as ``details["resolution"]`` in the same transaction, so the alert
        of a resolved incident shows its end, not the last gap it drifted by. A reopen
        drops it with the next evaluation's facts."""
        note = require_json(dict(resolution), "resolution") if resolution is not None else None

        def change(incident: Incident, at: datetime) -> dict[str, Any] | None:
            if incident.status == "resolved":
                return None
            values: dict[str, Any] = {"status": "resolved", "resolved_at": at, "resolved_by": by}
            if note is not None:
                values["details"] = {**(incident.details or {}), "resolution": note}
            return values

        return await self._transition(incident_id, "incident.resolved", by, at, detail, change)

    async def set_root_cause(
        self,
        incident_id: int,
        root_cause: str,
        remediation: str | None,
        follow_up: str | None,
        by: str,
        at: datetime,
        *,
        detail: Mapping[str, Any] | None = None,
    ) -> Incident:
        """Record root cause, remediation and follow-up (in any status)."""

        def change(_: Incident, __: datetime) -> dict[str, Any] | None:
            return {"root_cause": root_cause, "remediation": remediation, "follow_up": follow_up}

        return await self._transition(incident_id, "incident.root_cause", by, at, detail, change)

    async def snooze(
        self,
        incident_id: int,
        until: datetime | None,
        by: str,
        at: datetime,
        *,
        detail: Mapping[str, Any] | None = None,
    ) -> Incident:
        """Snooze notifications until ``until`` (None lifts the snooze); refused if resolved."""
        until = require_utc(until, "until") if until is not None else None

        def change(incident: Incident, at: datetime) -> dict[str, Any] | None:
            if incident.status == "resolved":
                raise InvalidTransition(f"incident {incident.id} is resolved")
            return {"snoozed_until": until}

        action = "incident.snoozed" if until is not None else "incident.unsnoozed"
        return await self._transition(incident_id, action, by, at, detail, change)

    async def reopen(
        self,
        incident_id: int,
        at: datetime,
        by: str = SYSTEM_ACTOR,
        *,
        detail: Mapping[str, Any] | None = None,
    ) -> Incident:
        """resolved → open, counting the reopen; no change if not resolved.

        Acknowledgement, resolution and snooze are cleared (the audit log keeps them); the
        root cause stays. Raises :class:`Conflict` if another incident with the same
        fingerprint is live.
        """

        def change(incident: Incident, at: datetime) -> dict[str, Any] | None:
            if incident.status != "resolved":
                return None
            return {
                "status": "open",
                "reopened_count": incident.reopened_count + 1,
                "last_seen_at": max(incident.last_seen_at, at),
                "acknowledged_at": None,
                "acknowledged_by": None,
                "resolved_at": None,
                "resolved_by": None,
                "snoozed_until": None,
            }

        return await self._transition(incident_id, "incident.reopened", by, at, detail, change)

    async def _transition(
        self,
        incident_id: int,
        action: str,
        by: str,
        at: datetime,
        detail: Mapping[str, Any] | None,
        change: _Change,
    ) -> Incident:
        """Apply ``change`` to the locked row and audit it, in one transaction."""
        at = require_utc(at, "at")
        by = require_text(by, "by")
        try:
            async with self._write() as conn:
                row = (
                    (
                        await conn.execute(
                            select(INCIDENTS).where(INCIDENTS.c.id == incident_id).with_for_update()
                        )
                    )
                    .mappings()
                    .first()
                )
                if row is None:
                    raise NotFound(f"no incident {incident_id}")
                before = Incident.from_row(row)
                values = change(before, at)
                if values is None:
                    return before
                after = (
                    (
                        await conn.execute(
                            update(INCIDENTS)
                            .where(INCIDENTS.c.id == incident_id)
                            .values(**values)
                            .returning(*INCIDENTS.c)
                        )
                    )
                    .mappings()
                    .one()
                )
                await insert_audit(
                    conn,
                    actor=by,
                    action=action,
                    subject=incident_subject(incident_id),
                    detail={
                        "from_status": before.status,
                        **_jsonable({k: v for k, v in values.items() if k != "details"}),
                        **(
                            {"resolution": values["details"]["resolution"]}
                            if "details" in values
                            else {}
                        ),
                        **(detail or {}),
                    },
                    at=at,
                )
                return Incident.from_row(after)
        except IntegrityError as exc:
            raise Conflict(
                f"incident {incident_id}: another live incident has its fingerprint"
            ) from exc


def incident_subject(incident_id: int) -> str:
    """The audit subject of an incident."""
    return f"incident:{incident_id}"


async def require_incident(conn: AsyncConnection, incident_id: int) -> None:
    """Raise :class:`NotFound` unless the incident exists (for rows that refer to one)."""
    query = select(INCIDENTS.c.id).where(INCIDENTS.c.id == incident_id)
    if (await conn.execute(query)).first() is None:
        raise NotFound(f"no incident {incident_id}")


async def _find_open(conn: AsyncConnection, fingerprint: str, *, lock: bool) -> Incident | None:
    query = select(INCIDENTS).where(
        INCIDENTS.c.fingerprint == fingerprint, INCIDENTS.c.status != "resolved"
    )
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return Incident.from_row(row) if row is not None else None


async def _touch(
    conn: AsyncConnection,
    incident: Incident,
    at: datetime,
    severity: str,
    details: Mapping[str, Any] | None,
    root_cause_hint: str | None,
) -> Incident:
    values: dict[str, Any] = {"last_seen_at": max(incident.last_seen_at, at)}
    if at >= incident.last_seen_at:
        if details is not None:
            values["details"] = require_json(_keep_notes(incident.details, details), "details")
        if root_cause_hint is not None:
            values["root_cause_hint"] = root_cause_hint
        if severity != incident.severity:
            values["severity"] = severity
    row = (
        (
            await conn.execute(
                update(INCIDENTS)
                .where(INCIDENTS.c.id == incident.id)
                .values(**values)
                .returning(*INCIDENTS.c)
            )
        )
        .mappings()
        .one()
    )
    if "severity" in values:
        await insert_audit(
            conn,
            actor=SYSTEM_ACTOR,
            action="incident.severity_changed",
            subject=incident_subject(incident.id),
            detail={"from": incident.severity, "to": severity},
            at=at,
        )
    return Incident.from_row(row)


def _keep_notes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """``new``, plus the keys of ``old`` that :meth:`Incidents.annotate_incident` wrote
    (listed under :data:`NOTES_KEY`): fresh facts replace facts, never notes."""
    merged = dict(new)
    kept = list((old or {}).get(NOTES_KEY) or [])
    for key in kept:
        if key in (old or {}) and key not in merged:
            merged[key] = (old or {})[key]
    if kept:
        merged[NOTES_KEY] = kept
    return merged


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}
