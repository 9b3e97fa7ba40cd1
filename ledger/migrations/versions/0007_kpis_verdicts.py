"""Weekly verification decisions and captured weekly KPIs (the baseline).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of ledger.types, so later changes there cannot change this migration.
UTC_DATETIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=False).with_variant(postgresql.JSONB(none_as_null=False), "postgresql")
DECISIONS = ("pass", "escalate")


def upgrade() -> None:
    allowed = ", ".join(f"'{v}'" for v in DECISIONS)
    op.create_table(
        "week_verdicts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("week_start", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=False),
        sa.Column("decided_at", UTC_DATETIME, nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("figures", JSON, nullable=False),
        sa.UniqueConstraint("week_start", name="uq_week_verdicts_week_start"),
        sa.CheckConstraint(f"decision IN ({allowed})", name="ck_week_verdicts_decision"),
    )
    op.create_table(
        "kpi_weeks",
        sa.Column("week_start", sa.String(), primary_key=True),
        sa.Column("figures", JSON, nullable=False),
        sa.Column("captured_at", UTC_DATETIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kpi_weeks")
    op.drop_table("week_verdicts")
