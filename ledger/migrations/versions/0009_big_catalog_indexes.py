"""Indexes that keep per-diff queries cheap at 100,000 SKUs (issue 16).

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

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_level_history_system_time", "level_history", ["system", "observed_at"])
    op.create_index(
        "ix_webhook_deliveries_topic_time", "webhook_deliveries", ["system", "topic", "received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_topic_time", table_name="webhook_deliveries")
    op.drop_index("ix_level_history_system_time", table_name="level_history")
