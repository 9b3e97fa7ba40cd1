"""Webhook deliveries: every webhook received, its outcome, and the dedupe claim.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of ledger.types, so later changes there cannot change this migration.
UTC_DATETIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON(none_as_null=False).with_variant(postgresql.JSONB(none_as_null=False), "postgresql")
OUTCOMES = (
    "received",
    "processed",
    "stale",
    "duplicate",
    "ignored",
    "error",
    "rejected_signature",
    "malformed",
    "too_large",
)


def upgrade() -> None:
    allowed = ", ".join(f"'{v}'" for v in OUTCOMES)
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("topic", sa.String(), nullable=True),
        sa.Column("event_id", sa.String(), nullable=True),
        sa.Column("webhook_id", sa.String(), nullable=True),
        sa.Column("dedupe_key", sa.String(), nullable=True),
        sa.Column("resource_key", sa.String(), nullable=True),
        sa.Column("triggered_at", UTC_DATETIME, nullable=True),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.Column("delay_seconds", sa.Float(), nullable=True),
        sa.Column("processed_at", UTC_DATETIME, nullable=True),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.UniqueConstraint("system", "dedupe_key", name="uq_webhook_deliveries_dedupe"),
        sa.CheckConstraint(f"outcome IN ({allowed})", name="ck_webhook_deliveries_outcome"),
    )
    op.create_index("ix_webhook_deliveries_received_at", "webhook_deliveries", ["received_at"])
    op.create_index(
        "ix_webhook_deliveries_resource",
        "webhook_deliveries",
        ["system", "resource_key", "triggered_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_resource", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_received_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
