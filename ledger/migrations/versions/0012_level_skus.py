"""``level_skus``: every SKU some system holds a level of, one row each (issue 16).

``/drift`` of a SKU the ledger does not know offers close matches from every SKU it
does. They came from ``level_history``'s index by SKU, one seek each: 1.1 s on SQLite
and 1.8 s on PostgreSQL at 100,000 SKUs × 5 locations (BENCHMARKS.md, B9), most of it
walking 6.5 million index entries' worth of B-tree for 100,000 values. The record path
now writes a SKU here when its first level is recorded, and the lookups read this table.
Filled from both level tables, so a ledger upgraded in place lists what it held.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table("level_skus", sa.Column("sku", sa.String(), primary_key=True))
    op.execute(
        "INSERT INTO level_skus (sku) "
        "SELECT sku FROM level_history UNION SELECT sku FROM level_current"
    )


def downgrade() -> None:
    op.drop_table("level_skus")
