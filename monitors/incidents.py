"""How a drift is described as an incident: its severity, its title, its stored facts.

The incident pipeline (monitors/pipeline) decides when an incident opens; these are
the words and facts it uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitors.drift import Drift

SEVERITY = {
    "negative": "critical",
    "oversell_risk": "critical",
    "missing": "warning",
    "undersell": "warning",
    "count_mismatch": "warning",
    "untracked": "warning",
    "oversell_policy": "warning",
    "stale": "warning",
    "duplicate_sku": "warning",
    # webhook health (monitors/webhook_health.py)
    "webhook_signatures_rejected": "critical",
    "webhook_processing_errors": "warning",
    "webhook_delayed": "warning",
    "webhook_duplicates": "info",
    "webhook_out_of_order": "info",
    "webhook_wrong_shop": "warning",
    "webhook_missed": "warning",
    "webhook_subscription_missing": "critical",
    "webhook_subscription_misaddressed": "warning",
}

TITLES = {
    "negative": "Negative inventory",
    "oversell_risk": "Oversell risk",
    "missing": "SKU missing in a system",
    "undersell": "Undersell: stock not shown",
    "count_mismatch": "Counts disagree",
    "untracked": "Inventory not tracked",
    "oversell_policy": "Sells when out of stock",
    "stale": "Stale count",
    "duplicate_sku": "Duplicate SKU",
    "webhook_signatures_rejected": "Webhooks refused: bad signature",
    "webhook_processing_errors": "Webhooks failing to process",
    "webhook_delayed": "Webhooks arriving late",
    "webhook_duplicates": "Webhooks delivered twice",
    "webhook_out_of_order": "Webhooks out of order",
    "webhook_wrong_shop": "Webhooks for a shop not served",
    "webhook_missed": "Changes no webhook announced",
    "webhook_subscription_missing": "Webhook subscription missing",
    "webhook_subscription_misaddressed": "Webhook subscription points elsewhere",
}


def drift_title(drift: Drift) -> str:
    """The incident title: the class, the SKU and the location (and, for a SKU
    mismatch, which system lacks it)."""
    what = TITLES.get(drift.kind, drift.kind)
    if drift.kind == "missing" and drift.missing_from:
        side = "the source of truth " if drift.missing_side == "truth" else ""
        what = f"SKU missing in {side}{drift.missing_from}"
    if drift.kind == "duplicate_sku":
        what = f"Duplicate SKU in {drift.system} ({len(drift.items)} items)"
    return f"{what}: {drift.sku} at {drift.location}"


def duplicate_reason(system: str, sku: str, location: str, items: Iterable[str]) -> str:
    """Why nothing is written for a SKU that several of ``system``'s items carry."""
    ids = sorted(items)
    return (
        f"{system} has {len(ids)} items with SKU {sku} at {location} ({', '.join(ids)}); "
        "Driftwatch will not guess which one to write. Give each item its own SKU in "
        f"{system}, then resync."
    )


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
        "since": drift.since.isoformat() if drift.since else None,
        "age_seconds": drift.age.total_seconds(),
        "large": drift.large,
        "missing_from": drift.missing_from,
        "missing_side": drift.missing_side,
        "evidence": list(drift.evidence),
        "components": None if drift.components is None else dict(drift.components),
        **(
            {"items": [{"id": ident, "value": value} for ident, value in drift.items]}
            if drift.items
            else {}
        ),
    }
