"""Big catalogs (issue 16): a complete read records only what changed, and indexes that
keep per-diff queries cheap at 100,000 SKUs.

* ``level_reads``: per system, the last complete read (its ``observed_at`` stands for
  every key it found unchanged, so those rows are not rewritten) and a write counter;
  ``level_current.absent`` marks keys the last complete read did not report.

* ``level_history (system, observed_at)``: ``level_changes`` (the webhook-health
  monitor's "changes in the last hour" of one system) scanned every row of the system
  through the key index, which leads with ``sku``.
* ``webhook_deliveries (system, topic, received_at)``: ``topics_seen`` probes the newest
  delivery of each topic instead of scanning seven days of deliveries, and the evidence
  reads ten minutes of orders without the day of refunds.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Frozen copy of ledger.types.UTCDateTime's column type.
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "level_reads",
        sa.Column("system", sa.String(), primary_key=True),
        sa.Column("observed_at", UTC_DATETIME, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    with op.batch_alter_table("level_current") as batch:
        batch.add_column(
            sa.Column("absent", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index("ix_level_history_system_time", "level_history", ["system", "observed_at"])
    op.create_index(
        "ix_webhook_deliveries_topic_time", "webhook_deliveries", ["system", "topic", "received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_topic_time", table_name="webhook_deliveries")
    op.drop_index("ix_level_history_system_time", table_name="level_history")
    with op.batch_alter_table("level_current") as batch:
        batch.drop_column("absent")
    op.drop_table("level_reads")
