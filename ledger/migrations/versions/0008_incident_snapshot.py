"""Adjustment outcomes: what became of each adjustment's write to the source of truth.

An adjustment was recorded before its write and its outcome lived only in the audit
log, so the reports counted refused and failed adjustments as if they had applied. Each
adjustment now carries its ``status`` (``pending`` until the write settles, then
``applied`` or ``failed``), the level it replaced (``before``), the level written
(``after``), the reason it was not applied (``error``) and when it settled. Rows from
before this revision take their outcome from their audit entries
(``adjustment.applied`` / ``adjustment.failed``); one with neither stays ``pending``.

(The incident snapshot of issue 13 needs no column: the facts an incident was last
evaluated from live in ``incidents.details``, written in one transaction.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of ledger.types, so later changes there cannot change this migration.
UTC_DATETIME = sa.DateTime(timezone=True)
STATUSES = ("pending", "applied", "failed")

_OUTCOME_FROM_AUDIT = """
UPDATE adjustments SET status = CASE
    WHEN EXISTS (
        SELECT 1 FROM audit_log
        WHERE audit_log.subject = 'adjustment:' || CAST(adjustments.id AS VARCHAR)
          AND audit_log.action = 'adjustment.applied'
    ) THEN 'applied'
    WHEN EXISTS (
        SELECT 1 FROM audit_log
        WHERE audit_log.subject = 'adjustment:' || CAST(adjustments.id AS VARCHAR)
          AND audit_log.action = 'adjustment.failed'
    ) THEN 'failed'
    ELSE 'pending'
END
"""


def upgrade() -> None:
    allowed = ", ".join(f"'{s}'" for s in STATUSES)
    with op.batch_alter_table("adjustments") as batch:
        batch.add_column(
            sa.Column("status", sa.String(), nullable=False, server_default="pending")
        )
        batch.add_column(sa.Column("before", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("after", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("error", sa.String(), nullable=True))
        batch.add_column(sa.Column("settled_at", UTC_DATETIME, nullable=True))
        batch.create_check_constraint("ck_adjustments_status", f"status IN ({allowed})")
    op.execute(_OUTCOME_FROM_AUDIT)


def downgrade() -> None:
    with op.batch_alter_table("adjustments") as batch:
        batch.drop_constraint("ck_adjustments_status", type_="check")
        batch.drop_column("settled_at")
        batch.drop_column("error")
        batch.drop_column("after")
        batch.drop_column("before")
        batch.drop_column("status")
