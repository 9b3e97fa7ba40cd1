"""From drifts to incidents in the ledger, and notifications in its outbox.

The outbox entry names the incident and the event; the bot renders the message from
the incident's current state when it delivers, so a message never shows stale facts
and nothing is lost while Slack is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger import Incident, Ledger
from monitors.drift import Drift

SEVERITY = {
    "negative": "critical",
    "oversell_risk": "critical",
    "missing": "warning",
    "undersell": "warning",
    "count_mismatch": "warning",
}

TITLES = {
    "negative": "Negative inventory",
    "oversell_risk": "Oversell risk",
    "missing": "SKU missing in a system",
    "undersell": "Undersell: stock not shown",
    "count_mismatch": "Counts disagree",
}


@dataclass(frozen=True)
class Raised:
    incident: Incident
    new: bool


def drift_details(drift: Drift) -> dict[str, Any]:
    """The facts of a drift, as stored on its incident."""
    return {
        "sku": drift.sku,
        "location": drift.location,
        "system": drift.system,
        "truth_system": drift.truth_system,
        "expected": drift.expected,
        "actual": drift.actual,
        "gap": drift.gap,
        "gap_percent": None if drift.gap_percent is None else round(drift.gap_percent, 1),
        "direction": drift.direction,
        "values": dict(drift.values),
        "observed_at": {k: v.isoformat() for k, v in drift.observed_at.items()},
        "changed_at": drift.changed_at.isoformat() if drift.changed_at else None,
    }


async def raise_incidents(
    drifts: Sequence[Drift], ledger: Ledger, *, channel: str, at: datetime
) -> list[Raised]:
    """Open (or touch) one incident per drift; queue an alert for each new one."""
    raised: list[Raised] = []
    for drift in drifts:
        incident, new = await ledger.open_incident(
            fingerprint=drift.fingerprint,
            kind=drift.kind,
            severity=SEVERITY.get(drift.kind, "warning"),
            title=f"{TITLES.get(drift.kind, drift.kind)}: {drift.sku} at {drift.location}",
            at=at,
            sku=drift.sku,
            location=drift.location,
            system=drift.system,
            details=drift_details(drift),
        )
        if new:
            await ledger.enqueue(
                "incident.opened",
                channel,
                {"incident_id": incident.id},
                at=at,
                incident_id=incident.id,
                dedupe_key=f"incident:{incident.id}:opened:{incident.reopened_count}",
            )
        raised.append(Raised(incident, new))
    return raised
