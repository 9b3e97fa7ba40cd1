"""The tables, as sqlmodel classes; the Alembic migrations create them.

Queries use the Core ``Table`` handles at the bottom (``ITEMS``, ``INCIDENTS``, ...):
rows leave the ledger as the frozen dataclasses of :mod:`ledger.records`, never as
these classes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy import Column as SAColumn
from sqlmodel import Field, SQLModel

from ledger.level_columns import OWN, STATES, own
from ledger.types import (
    ADJUSTMENT_STATUSES,
    INCIDENT_STATUSES,
    OUTBOX_STATUSES,
    REFUSAL_OUTCOMES,
    RESYNC_STATUSES,
    SEVERITIES,
    VERDICT_DECISIONS,
    WEBHOOK_OUTCOMES,
    BigId,
    JSONDict,
    UTCDateTime,
    json_type,
)

metadata = SQLModel.metadata

#: Rows of ``incidents`` that count as live for the one-per-fingerprint rule.
OPEN_INCIDENT_WHERE = text("status != 'resolved'")


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name)


class ItemRow(SQLModel, table=True):
    """A SKU Driftwatch knows, with its title and tags."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("sku", name="uq_items_sku"),)

    id: int | None = Field(default=None, primary_key=True)
    sku: str
    title: str | None = None
    tags: list[str] = Field(default_factory=list, sa_type=json_type())
    created_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ItemSystemIdRow(SQLModel, table=True):
    """What one system calls a SKU (e.g. a Shopify InventoryItem gid)."""

    __tablename__ = "item_system_ids"
    __table_args__ = (
        UniqueConstraint("system", "external_id", name="uq_item_system_ids_external"),
    )

    sku: str = Field(
        sa_column=SAColumn(
            ForeignKey("items.sku", ondelete="CASCADE", name="fk_item_system_ids_sku"),
            primary_key=True,
        )
    )
    system: str = Field(primary_key=True)
    external_id: str


class LevelSkuRow(SQLModel, table=True):
    """A SKU some system holds a level of: written when a SKU's first level is recorded,
    so ``/drift`` knows a SKU with one seek and lists a catalog's SKUs for "Did you
    mean" by reading one row each (``level_current``'s key leads with ``system``, and a
    big catalog has millions of levels for its 100,000 SKUs)."""

    __tablename__ = "level_skus"

    sku: str = Field(primary_key=True)


class LevelReadRow(SQLModel, table=True):
    """The last complete read of one system's levels, and a counter of writes.

    A complete read that finds a key unchanged does not rewrite its current row: the
    key's ``observed_at`` is the later of its row's and ``observed_at`` here (unless the
    row is ``absent``). ``version`` grows with every batch of levels of the system
    recorded, so a process that keeps the current values in memory knows when another
    one wrote (see :mod:`ledger.watermark`).
    """

    __tablename__ = "level_reads"

    system: str = Field(primary_key=True)
    observed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    version: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})


class LevelHistoryRow(SQLModel, table=True):
    """A change of a level: written only when the quantity differs from the current one."""

    __tablename__ = "level_history"
    __table_args__ = (
        Index("ix_level_history_key_time", "sku", "system", "location", "state", "observed_at"),
        # level_changes and the webhook-health monitor read one system's recent changes.
        Index("ix_level_history_system_time", "system", "observed_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    system: str
    sku: str
    location: str
    state: str
    quantity: int
    observed_at: datetime = Field(sa_type=UTCDateTime)
    source: str


class IncidentRow(SQLModel, table=True):
    """A drift (or other trouble) the team is told about, from open to resolved."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index(
            "uq_incidents_open_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=OPEN_INCIDENT_WHERE,
            postgresql_where=OPEN_INCIDENT_WHERE,
        ),
        Index("ix_incidents_status_opened", "status", "opened_at"),
        _one_of("severity", SEVERITIES, "ck_incidents_severity"),
        _one_of("status", INCIDENT_STATUSES, "ck_incidents_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(index=True)
    kind: str
    severity: str
    status: str = "open"
    title: str
    sku: str | None = None
    location: str | None = None
    system: str | None = None
    details: JSONDict = Field(default_factory=dict, sa_type=json_type())
    root_cause_hint: str | None = None
    opened_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: str | None = None
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    root_cause: str | None = None
    remediation: str | None = None
    follow_up: str | None = None
    reopened_count: int = 0
    snoozed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ResyncRow(SQLModel, table=True):
    """One request to write the source-of-truth count into a drifting system."""

    __tablename__ = "resyncs"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_resyncs_idempotency_key"),
        Index("ix_resyncs_incident_id", "incident_id"),
        Index("ix_resyncs_created_at", "created_at"),
        #: the resyncs of one level, for the occurrence a new decision's key names
        Index("ix_resyncs_level", "system", "sku", "location", "state"),
        _one_of("status", RESYNC_STATUSES, "ck_resyncs_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str
    incident_id: int | None = Field(
        default=None,
        sa_column=SAColumn(ForeignKey("incidents.id", name="fk_resyncs_incident_id")),
    )
    system: str
    sku: str
    location: str
    state: str
    before: int | None = None
    target: int
    after: int | None = None
    status: str = "pending"
    attempts: int = 0
    error: str | None = None
    requested_by: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    #: the reason the write carried (None before migration 0004: ``correction``), so a
    #: resync settled after a crash is replayed with exactly the input first sent
    reason: str | None = None
    #: the replica that requested it (migration 0010; see ledger/coordination.py)
    replica: str | None = None


class AdjustmentRow(SQLModel, table=True):
    """A manual adjustment, with its reason code and operator."""

    __tablename__ = "adjustments"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_adjustments_idempotency_key"),
        Index("ix_adjustments_sku_created", "sku", "created_at"),
        _one_of("status", ADJUSTMENT_STATUSES, "ck_adjustments_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str
    sku: str
    location: str
    system: str
    delta: int | None = None
    new_quantity: int | None = None
    reason_code: str
    operator: str
    note: str = ""
    created_at: datetime = Field(sa_type=UTCDateTime)
    #: the outcome of its write to the source of truth (migration 0008): reports count
    #: only ``applied`` ones
    status: str = Field(default="pending", sa_column_kwargs={"server_default": "pending"})
    #: the level it replaced and the level written (read back), when known
    before: int | None = None
    after: int | None = None
    #: why it was not applied, in words
    error: str | None = None
    settled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditRow(SQLModel, table=True):
    """Who did what to what, when. Append-only: triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_subject", "subject", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str
    action: str
    subject: str
    detail: JSONDict = Field(default_factory=dict, sa_type=json_type())


class OutboxRow(SQLModel, table=True):
    """A message waiting to be delivered to Slack (transactional outbox)."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
        Index("ix_outbox_status_due", "status", "next_attempt_at"),
        Index("ix_outbox_incident_status", "incident_id", "status"),
        _one_of("status", OUTBOX_STATUSES, "ck_outbox_status"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    incident_id: int | None = Field(
        default=None,
        sa_column=SAColumn(ForeignKey("incidents.id", name="fk_outbox_incident_id")),
    )
    kind: str
    channel: str
    payload: JSONDict = Field(default_factory=dict, sa_type=json_type())
    dedupe_key: str | None = None
    status: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    response: JSONDict | None = Field(default=None, sa_type=json_type(nullable=True))
    #: bumped by every claim; settling requires the claimer's value (migration 0006)
    fence: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    #: an earlier attempt may have reached Slack without being recorded (migration 0006)
    in_doubt: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    #: the replica (``replicas.id``) that claimed it last; a dead one's claim is taken
    #: over before its lease runs out (migration 0011)
    claimed_by: str | None = None


class WebhookDeliveryRow(SQLModel, table=True):
    """One webhook delivery as received: who sent what, when, and what became of it.

    ``dedupe_key`` is set only on the delivery that claimed its event (the first one
    accepted); the unique index on (system, dedupe_key) makes that claim race-safe. NULLs
    never collide, so rejected and duplicate deliveries are recorded alongside.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("system", "dedupe_key", name="uq_webhook_deliveries_dedupe"),
        Index("ix_webhook_deliveries_received_at", "received_at"),
        Index("ix_webhook_deliveries_ordered", "system", "resource_key", "ordered_at"),
        # topics_seen probes each topic's newest delivery; evidence reads one topic's window.
        Index("ix_webhook_deliveries_topic_time", "system", "topic", "received_at"),
        _one_of("outcome", WEBHOOK_OUTCOMES, "ck_webhook_deliveries_outcome"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    system: str
    topic: str | None = None
    event_id: str | None = None
    webhook_id: str | None = None
    dedupe_key: str | None = None
    resource_key: str | None = None
    triggered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    received_at: datetime = Field(sa_type=UTCDateTime)
    delay_seconds: float | None = None
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: str
    detail: JSONDict = Field(default_factory=dict, sa_type=json_type())
    #: what the delivery is ordered by against others of its resource: the payload's
    #: ``updated_at`` where it has one, else ``triggered_at``; never later than arrival
    #: (plus a small skew), so a forged future time cannot make later ones stale
    ordered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookRefusalRow(SQLModel, table=True):
    """Deliveries refused at the door, counted: one row per system, outcome, reason and
    time bucket, however many arrived (anyone can send them), kept for a retention
    period. ``sample`` holds the headers of the last one counted."""

    __tablename__ = "webhook_refusals"
    __table_args__ = (
        UniqueConstraint(
            "system", "outcome", "reason", "bucket_start", name="uq_webhook_refusals_bucket"
        ),
        Index("ix_webhook_refusals_bucket_start", "bucket_start"),
        _one_of("outcome", REFUSAL_OUTCOMES, "ck_webhook_refusals_outcome"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    system: str
    outcome: str
    reason: str = ""
    bucket_start: datetime = Field(sa_type=UTCDateTime)
    count: int = Field(sa_type=BigId)
    first_at: datetime = Field(sa_type=UTCDateTime)
    last_at: datetime = Field(sa_type=UTCDateTime)
    sample: JSONDict = Field(default_factory=dict, sa_type=json_type())


class WeekVerdictRow(SQLModel, table=True):
    """A week's verification decision: pass (trend down) or escalate. One per week, ever:
    the unique week makes a double click or two people deciding at once record once."""

    __tablename__ = "week_verdicts"
    __table_args__ = (
        UniqueConstraint("week_start", name="uq_week_verdicts_week_start"),
        _one_of("decision", VERDICT_DECISIONS, "ck_week_verdicts_decision"),
    )

    id: int | None = Field(default=None, primary_key=True)
    #: the Monday (local) the week starts, ``YYYY-MM-DD``
    week_start: str
    decision: str
    decided_by: str
    decided_at: datetime = Field(sa_type=UTCDateTime)
    note: str = ""
    #: the KPIs the decision was taken on (this week, last week, baseline)
    figures: JSONDict = Field(default_factory=dict, sa_type=json_type())


class KpiWeekRow(SQLModel, table=True):
    """A week's KPIs as captured when its summary was built: the first capture stands,
    so the baseline week keeps the figures it was judged by."""

    __tablename__ = "kpi_weeks"

    week_start: str = Field(primary_key=True)
    figures: JSONDict = Field(default_factory=dict, sa_type=json_type())
    captured_at: datetime = Field(sa_type=UTCDateTime)


class ReplicaRow(SQLModel, table=True):
    """A running Driftwatch process on this database, and when it last said so.

    A replica is alive while ``heartbeat_at`` is within the lease TTL
    (:data:`ledger.coordination.LEASE_TTL_SECONDS`) and it has not stopped."""

    __tablename__ = "replicas"

    id: str = Field(primary_key=True)
    host: str
    pid: int
    started_at: datetime = Field(sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(sa_type=UTCDateTime)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class JobLeaseRow(SQLModel, table=True):
    """Who runs one job for one unit of work (a store, or ``all``), until when.

    ``token`` is the fencing token: bumped on every takeover, and every write a holder
    makes under the lease (a tick claim) names it, so a holder whose lease ran out and
    was taken over cannot write anything more under it."""

    __tablename__ = "job_leases"

    job: str = Field(primary_key=True)
    unit: str = Field(primary_key=True)
    holder: str | None = None
    token: int = Field(default=0, sa_type=BigId)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acquired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class JobClaimRow(SQLModel, table=True):
    """One run of a job for a unit at a tick, claimed by one replica: the primary key
    makes the claim race-safe (a tick runs once across replicas). Also one auto-resync
    decision per incident opening (job ``policy``)."""

    __tablename__ = "job_claims"
    __table_args__ = (Index("ix_job_claims_claimed_at", "claimed_at"),)

    job: str = Field(primary_key=True)
    unit: str = Field(primary_key=True)
    tick: str = Field(primary_key=True)
    replica: str
    token: int = Field(default=0, sa_type=BigId)
    claimed_at: datetime = Field(sa_type=UTCDateTime)


class SlackPaceRow(SQLModel, table=True):
    """The next moment a message may be posted to one Slack channel, shared by every
    replica (chat.postMessage allows about one per second per channel)."""

    __tablename__ = "slack_pace"

    channel: str = Field(primary_key=True)
    next_at: datetime = Field(sa_type=UTCDateTime)


class JobStateRow(SQLModel, table=True):
    """What a leased job keeps between runs for one unit (e.g. the health window),
    written only by the lease holder under its fencing token, so the replica that takes
    the lease over continues from it instead of starting blind."""

    __tablename__ = "job_state"

    job: str = Field(primary_key=True)
    unit: str = Field(primary_key=True)
    token: int = Field(default=0, sa_type=BigId)
    state: JSONDict = Field(default_factory=dict, sa_type=json_type())
    updated_at: datetime = Field(sa_type=UTCDateTime)


class ReplicaHealthRow(SQLModel, table=True):
    """One replica's running account of one connector (its counters only grow), so the
    health job sees the throttles and failures of every replica, not only its own."""

    __tablename__ = "replica_health"

    replica: str = Field(primary_key=True)
    system: str = Field(primary_key=True)
    requests: int = Field(default=0, sa_type=BigId)
    throttles: int = Field(default=0, sa_type=BigId)
    retries: int = Field(default=0, sa_type=BigId)
    failures: int = Field(default=0, sa_type=BigId)
    error_streak: int = 0
    last_success: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = None
    last_error_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


def _table(name: str) -> Table:
    return metadata.tables[name]


def _state_columns(state: str) -> list[SAColumn[object]]:
    types: dict[str, Any] = {
        "observed_at": UTCDateTime,
        "changed_at": UTCDateTime,
        "source": String,
        "absent": Boolean,
        "since": UTCDateTime,
        "since_source": String,
        "since_quantity": Integer,
        "previous": Integer,
    }
    return [
        SAColumn(state, Integer, nullable=True),
        *(SAColumn(own(state, name), types[name], nullable=True) for name in OWN),
    ]


#: One row per level: its key, its first observation, and a quantity and own columns per
#: state (:mod:`ledger.level_columns`). ``WITHOUT ROWID`` on SQLite: the rows live in the
#: key's B-tree, not in a second one beside it.
LEVELS = Table(
    "levels",
    metadata,
    SAColumn("system", String, primary_key=True),
    SAColumn("sku", String, primary_key=True),
    SAColumn("location", String, primary_key=True),
    SAColumn("observed_at", UTCDateTime, nullable=False),
    SAColumn("changed_at", UTCDateTime, nullable=True),
    SAColumn("source", String, nullable=False),
    *(column for state in STATES for column in _state_columns(state)),
    # level_changes (the webhook-health monitor) reads one system's recent changes of a
    # state: only states that replaced a value, so a first read adds nothing to these
    *(
        Index(
            f"ix_levels_{state}_changes",
            "system",
            own(state, "since"),
            sqlite_where=text(f"{own(state, 'previous')} IS NOT NULL"),
            postgresql_where=text(f"{own(state, 'previous')} IS NOT NULL"),
        )
        for state in STATES
    ),
    sqlite_with_rowid=False,
)

#: ``level_current``, a view over ``levels`` (migration 0014): the latest known quantity
#: of one state of one SKU at one location in one system, a row per key, as the table of
#: that name held it before. The row is also its key's newest change (see
#: :mod:`ledger.timeline`): the quantity took this value (``since_quantity``) at
#: ``since``, observed by ``since_source``, after ``previous`` (None for a key's first
#: observation). A row whose ``since`` is None was written before migration 0013, and one
#: whose quantity is no longer ``since_quantity`` was changed since by a version before
#: it: either way its value is history's newest row. ``absent``: the last complete read
#: of the system did not report this key, so its ``observed_at`` is its own, not lifted
#: to that read's (see :class:`LevelReadRow`). Read it; write ``levels``
#: (:mod:`ledger.bulk`). Not in :data:`metadata`, which holds what the migrations create
#: as tables.
LEVEL_CURRENT = Table(
    "level_current",
    MetaData(),
    SAColumn("system", String, primary_key=True),
    SAColumn("sku", String, primary_key=True),
    SAColumn("location", String, primary_key=True),
    SAColumn("state", String, primary_key=True),
    SAColumn("quantity", Integer, nullable=False),
    SAColumn("observed_at", UTCDateTime, nullable=False),
    SAColumn("changed_at", UTCDateTime, nullable=True),
    SAColumn("source", String, nullable=False),
    SAColumn("absent", Boolean, nullable=False),
    SAColumn("since", UTCDateTime, nullable=True),
    SAColumn("since_source", String, nullable=True),
    SAColumn("since_quantity", Integer, nullable=True),
    SAColumn("previous", Integer, nullable=True),
)


ITEMS = _table("items")
ITEM_SYSTEM_IDS = _table("item_system_ids")
LEVEL_HISTORY = _table("level_history")
LEVEL_READS = _table("level_reads")
LEVEL_SKUS = _table("level_skus")
INCIDENTS = _table("incidents")
RESYNCS = _table("resyncs")
ADJUSTMENTS = _table("adjustments")
AUDIT_LOG = _table("audit_log")
OUTBOX = _table("outbox")
WEBHOOK_DELIVERIES = _table("webhook_deliveries")
WEBHOOK_REFUSALS = _table("webhook_refusals")
WEEK_VERDICTS = _table("week_verdicts")
KPI_WEEKS = _table("kpi_weeks")
REPLICAS = _table("replicas")
JOB_LEASES = _table("job_leases")
JOB_CLAIMS = _table("job_claims")
SLACK_PACE = _table("slack_pace")
REPLICA_HEALTH = _table("replica_health")
JOB_STATE = _table("job_state")

__all__ = [
    "ADJUSTMENTS",
    "AUDIT_LOG",
    "INCIDENTS",
    "ITEMS",
    "ITEM_SYSTEM_IDS",
    "JOB_CLAIMS",
    "JOB_LEASES",
    "JOB_STATE",
    "KPI_WEEKS",
    "LEVELS",
    "LEVEL_CURRENT",
    "LEVEL_HISTORY",
    "LEVEL_READS",
    "LEVEL_SKUS",
    "OUTBOX",
    "REPLICAS",
    "REPLICA_HEALTH",
    "RESYNCS",
    "SLACK_PACE",
    "WEBHOOK_DELIVERIES",
    "WEBHOOK_REFUSALS",
    "WEEK_VERDICTS",
    "AdjustmentRow",
    "AuditRow",
    "IncidentRow",
    "ItemRow",
    "ItemSystemIdRow",
    "JobClaimRow",
    "JobLeaseRow",
    "JobStateRow",
    "KpiWeekRow",
    "LevelHistoryRow",
    "LevelReadRow",
    "LevelSkuRow",
    "OutboxRow",
    "ReplicaHealthRow",
    "ReplicaRow",
    "ResyncRow",
    "SlackPaceRow",
    "WebhookDeliveryRow",
    "WebhookRefusalRow",
    "WeekVerdictRow",
    "metadata",
]
