"""The ledger: Driftwatch's database, and the only code that touches it.

SQLite (default; WAL, foreign keys on, busy timeout, writes under ``BEGIN IMMEDIATE``) or
PostgreSQL (several replicas), both through SQLAlchemy's asyncio layer; the schema is
made by the Alembic migrations in ``ledger/migrations`` (``await ledger.upgrade()``).
Every method takes its times as timezone-aware datetimes (the clock lives elsewhere) and
every stored time comes back as aware UTC on both backends.

Tables
    items, item_system_ids
        Known SKUs (title, tags) and what each system calls them, one id per
        (sku, system) and per (system, external id).
    level_current
        Per (system, sku, location, state): the latest quantity, when it was observed,
        when it last changed, and from which source; and the change that set it
        (``since``, ``since_source``, ``since_quantity``, ``previous``), the
        key's newest change.
    level_history
        The changes a later one replaced: a change moves the current row's change here.
        A key's changes are its history rows, then its current row
        (:mod:`ledger.timeline`). An observation older than the stored one is ignored
        (counted ``stale``), so a late poll never moves a level back in time.
    level_skus
        Every SKU some system holds a level of, noted with its first level: ``/drift``
        finds a SKU, and lists them all for "Did you mean", without reading levels.
    incidents
        Drift and other trouble, ``open`` → ``acknowledged`` → ``resolved`` (and
        ``reopen``). At most one non-resolved incident per fingerprint, enforced by a
        partial unique index, so concurrent openers get one incident.
    resyncs, adjustments
        Resync requests and manual adjustments, each unique per idempotency key: the
        second call with a key returns the first call's row.
    audit_log
        Who did what to what, when (subjects like ``incident:42``). Append-only: the API
        has no update or delete, and database triggers refuse UPDATE and DELETE.
    replicas, job_leases, job_claims, slack_pace, replica_health
        Several processes on one PostgreSQL (:mod:`ledger.coordination`): heartbeats,
        job leases with fencing tokens, one claim per job, unit and tick, the shared
        Slack pace per channel, and each replica's connector counters.
    outbox
        Slack messages to deliver, claimed by workers under a lease, at most one entry
        in flight per incident so an incident's messages arrive in order; deduplicated by
        an optional key.
    week_verdicts, kpi_weeks
        Each week's verification decision (pass or escalate; who, when, a note), one
        per week under a unique index, audited with it; and each week's KPIs as first
        captured, so the baseline keeps the figures it was judged by.
    webhook_deliveries
        Every webhook delivery received (accepted, refused, duplicate, stale), with its
        topic, event and webhook ids, when it was triggered and received, and its
        outcome. The first delivery of an event claims it under a unique index on
        (system, dedupe_key), so a duplicate is never processed twice, even across
        replicas.

Guarantees
    - A state change and its audit entry are one transaction: both land or neither does.
    - Results are frozen dataclasses (:mod:`ledger.records`), detached from any session.
    - Lookups by id raise :class:`NotFound`; lookups by a natural key (fingerprint,
      idempotency key, SKU) return None.
    - Idempotency keys and dedupe keys hold across processes (unique constraints).
    - Secrets are never stored; the ledger stores only what it is given.
"""

from __future__ import annotations

from ledger.coordination import (
    HEARTBEAT_SECONDS,
    LEASE_TTL_SECONDS,
    Acquired,
    HealthCounters,
    Lease,
    new_replica_id,
)
from ledger.engine import database_url_from_env, normalize_url
from ledger.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidArgument,
    InvalidTransition,
    LeaseLost,
    LedgerConfigError,
    LedgerError,
    NotFound,
)
from ledger.kpis import KpiWeek
from ledger.ledger import Ledger
from ledger.migrate import head_revision, upgrade_sync
from ledger.outbox import FollowUp
from ledger.records import (
    Adjustment,
    AuditEntry,
    DeliveryStats,
    Incident,
    Item,
    LevelBlock,
    LevelObservation,
    LevelRow,
    OutboxEntry,
    OutboxStats,
    Place,
    RecordResult,
    RefusalCount,
    Resync,
    WebhookDelivery,
)
from ledger.reports import (
    AdjustmentCount,
    IncidentCount,
    IncidentStats,
    LocationMismatch,
    ResponseTimes,
    ResyncCount,
    ResyncStats,
    SkuDrift,
)
from ledger.types import (
    ADJUSTMENT_STATUSES,
    INCIDENT_STATUSES,
    OUTBOX_STATUSES,
    REFUSAL_OUTCOMES,
    RESYNC_STATUSES,
    SEVERITIES,
    SYSTEM_ACTOR,
    VERDICT_DECISIONS,
    WEBHOOK_OUTCOMES,
)
from ledger.verdicts import Verdict

__all__ = [
    "ADJUSTMENT_STATUSES",
    "HEARTBEAT_SECONDS",
    "INCIDENT_STATUSES",
    "LEASE_TTL_SECONDS",
    "OUTBOX_STATUSES",
    "REFUSAL_OUTCOMES",
    "RESYNC_STATUSES",
    "SEVERITIES",
    "SYSTEM_ACTOR",
    "VERDICT_DECISIONS",
    "WEBHOOK_OUTCOMES",
    "Acquired",
    "Adjustment",
    "AdjustmentCount",
    "AuditEntry",
    "Conflict",
    "DatabaseUnavailable",
    "DeliveryStats",
    "FollowUp",
    "HealthCounters",
    "Incident",
    "IncidentCount",
    "IncidentStats",
    "InvalidArgument",
    "InvalidTransition",
    "Item",
    "KpiWeek",
    "Lease",
    "LeaseLost",
    "Ledger",
    "LedgerConfigError",
    "LedgerError",
    "LevelBlock",
    "LevelObservation",
    "LevelRow",
    "LocationMismatch",
    "NotFound",
    "OutboxEntry",
    "OutboxStats",
    "Place",
    "RecordResult",
    "RefusalCount",
    "ResponseTimes",
    "Resync",
    "ResyncCount",
    "ResyncStats",
    "SkuDrift",
    "Verdict",
    "WebhookDelivery",
    "database_url_from_env",
    "head_revision",
    "new_replica_id",
    "normalize_url",
    "upgrade_sync",
]
