"""Initial schema: items, levels, incidents, resyncs, adjustments, audit log, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of ledger.types, so later changes there cannot change this migration.
UTC_DATETIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json(nullable: bool = False) -> sa.types.TypeEngine[object]:
    return sa.JSON(none_as_null=nullable).with_variant(
        postgresql.JSONB(none_as_null=nullable), "postgresql"
    )


def _one_of(column: str, values: Sequence[str], name: str) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=name)


OPEN_INCIDENT_WHERE = sa.text("status != 'resolved'")

AUDIT_APPEND_ONLY = "audit_log is append-only"

PG_AUDIT_FUNCTION = f"""
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{AUDIT_APPEND_ONLY}: % refused', TG_OP;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("tags", _json(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=True),
        sa.UniqueConstraint("sku", name="uq_items_sku"),
    )
    op.create_table(
        "item_system_ids",
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("sku", "system"),
        sa.ForeignKeyConstraint(
            ["sku"], ["items.sku"], name="fk_item_system_ids_sku", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("system", "external_id", name="uq_item_system_ids_external"),
    )
    op.create_table(
        "level_current",
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("observed_at", UTC_DATETIME, nullable=False),
        sa.Column("changed_at", UTC_DATETIME, nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("system", "sku", "location", "state"),
    )
    op.create_table(
        "level_history",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("observed_at", UTC_DATETIME, nullable=False),
        sa.Column("source", sa.String(), nullable=False),
    )
    op.create_index(
        "ix_level_history_key_time",
        "level_history",
        ["sku", "system", "location", "state", "observed_at"],
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("sku", sa.String(), nullable=True),
        sa.Column("location", sa.String(), nullable=True),
        sa.Column("system", sa.String(), nullable=True),
        sa.Column("details", _json(), nullable=False),
        sa.Column("root_cause_hint", sa.String(), nullable=True),
        sa.Column("opened_at", UTC_DATETIME, nullable=False),
        sa.Column("last_seen_at", UTC_DATETIME, nullable=False),
        sa.Column("acknowledged_at", UTC_DATETIME, nullable=True),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        sa.Column("resolved_at", UTC_DATETIME, nullable=True),
        sa.Column("resolved_by", sa.String(), nullable=True),
        sa.Column("slack_channel", sa.String(), nullable=True),
        sa.Column("slack_ts", sa.String(), nullable=True),
        sa.Column("root_cause", sa.String(), nullable=True),
        sa.Column("remediation", sa.String(), nullable=True),
        sa.Column("follow_up", sa.String(), nullable=True),
        sa.Column("reopened_count", sa.Integer(), nullable=False),
        sa.Column("snoozed_until", UTC_DATETIME, nullable=True),
        _one_of("severity", ("info", "warning", "critical"), "ck_incidents_severity"),
        _one_of("status", ("open", "acknowledged", "resolved"), "ck_incidents_status"),
    )
    op.create_index("ix_incidents_fingerprint", "incidents", ["fingerprint"])
    op.create_index(
        "uq_incidents_open_fingerprint",
        "incidents",
        ["fingerprint"],
        unique=True,
        sqlite_where=OPEN_INCIDENT_WHERE,
        postgresql_where=OPEN_INCIDENT_WHERE,
    )
    op.create_index("ix_incidents_status_opened", "incidents", ["status", "opened_at"])
    op.create_table(
        "resyncs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("before", sa.Integer(), nullable=True),
        sa.Column("target", sa.Integer(), nullable=False),
        sa.Column("after", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_resyncs_idempotency_key"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_resyncs_incident_id"),
        _one_of(
            "status", ("pending", "applied", "stale", "failed", "skipped"), "ck_resyncs_status"
        ),
    )
    op.create_index("ix_resyncs_incident_id", "resyncs", ["incident_id"])
    op.create_index("ix_resyncs_created_at", "resyncs", ["created_at"])
    op.create_table(
        "adjustments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=True),
        sa.Column("new_quantity", sa.Integer(), nullable=True),
        sa.Column("reason_code", sa.String(), nullable=False),
        sa.Column("operator", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_adjustments_idempotency_key"),
    )
    op.create_index("ix_adjustments_sku_created", "adjustments", ["sku", "created_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("detail", _json(), nullable=False),
    )
    op.create_index("ix_audit_log_subject", "audit_log", ["subject", "id"])
    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=False),
        sa.Column("lease_until", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("delivered_at", UTC_DATETIME, nullable=True),
        sa.Column("response", _json(nullable=True), nullable=True),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_outbox_incident_id"),
        _one_of("status", ("pending", "delivered", "dead"), "ck_outbox_status"),
    )
    op.create_index("ix_outbox_status_due", "outbox", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_incident_status", "outbox", ["incident_id", "status"])
    _create_audit_triggers()


def downgrade() -> None:
    _drop_audit_triggers()
    for table in (
        "outbox",
        "audit_log",
        "adjustments",
        "resyncs",
        "incidents",
        "level_history",
        "level_current",
        "item_system_ids",
        "items",
    ):
        op.drop_table(table)


def _create_audit_triggers() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_AUDIT_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{AUDIT_APPEND_ONLY}: {event} refused'); END"
            )


def _drop_audit_triggers() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
