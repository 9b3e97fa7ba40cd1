"""``level_skus``: every SKU some system holds a level of, one row each (issue 16).

``/drift`` of a SKU the ledger does not know offers close matches from every SKU it
does. They came from ``level_history``'s index by SKU, one seek each: 1.1 s on SQLite
and 1.8 s on PostgreSQL at 100,000 SKUs × 5 locations (BENCHMARKS.md, B9), most of it
walking 6.5 million index entries' worth of B-tree for 100,000 values. The record path
now writes a SKU here when its first level is recorded, and the lookups read this table.
Filled from history's SKUs (a level's first observation has always written a history
row, and nothing deletes them), one seek of its index by SKU each, so a ledger upgraded
in place lists what it held. On PostgreSQL the fill holds the lock replicas record
levels under, so no record is half seen; a replica older than this migration that keeps
recording during a rolling upgrade does not note its new SKUs, and each service notes
them at start (``Ledger.note_unlisted_skus``).

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


#: Frozen copy of ledger.levels.LEVELS_LOCK (PostgreSQL's advisory lock of recording).
LEVELS_LOCK = 0x64772D6C6576656C


def upgrade() -> None:
    op.create_table("level_skus", sa.Column("sku", sa.String(), primary_key=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"SELECT pg_advisory_xact_lock({LEVELS_LOCK})")
    op.execute(
        "WITH RECURSIVE d(v) AS (SELECT min(sku) FROM level_history "
        "UNION ALL SELECT (SELECT min(t.sku) FROM level_history AS t WHERE t.sku > d.v) "
        "FROM d WHERE d.v IS NOT NULL) "
        "INSERT INTO level_skus (sku) SELECT v FROM d WHERE v IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("level_skus")
