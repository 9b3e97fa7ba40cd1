"""Resync keys per decision: the reason each write carried, and an index on the level.

A resync's idempotency key now names the occurrence it decides about (the newest
settled resync of the same level), which is looked up by (system, sku, location,
state). The reason is kept so that a resync left ``pending`` by a crash is replayed at
start with exactly the input first sent (Shopify refuses a key reused with other input).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("resyncs") as batch:
        batch.add_column(sa.Column("reason", sa.String(), nullable=True))
    op.create_index("ix_resyncs_level", "resyncs", ["system", "sku", "location", "state"])


def downgrade() -> None:
    op.drop_index("ix_resyncs_level", table_name="resyncs")
    with op.batch_alter_table("resyncs") as batch:
        batch.drop_column("reason")
