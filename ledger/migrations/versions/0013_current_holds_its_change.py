"""A level's newest change lives in ``level_current``, not also in history (issue 16).

Until now every change, a key's first observation included, wrote a ``level_history``
row, and the newest of them repeated the current row: a first read of 100,000 SKUs × 5
locations wrote 6.5 million rows twice, and on SQLite history's share was at least a
third of that write (BENCHMARKS.md, B1F). From 0013 on, ``level_current`` carries the
change that set its value: ``since`` (when it was first observed), ``since_source``,
``since_quantity`` (the value it set) and ``previous`` (the value it replaced, None for a
first observation). History holds the values that were replaced; a key's timeline is its
history rows followed by its current row (:mod:`ledger.timeline`).

No row is rewritten. A row with ``since`` None is one this change has not written: its
value is already history's newest row, as before. A replica older than 0013 that keeps
recording during a rolling upgrade writes such rows, and where it changes a row a newer
replica wrote, it leaves ``since_quantity`` behind the row's quantity: that row reads as
an old one too (history holds the old replica's change). Building the partial index
reads the table once (seconds at 100,000 SKUs; recording waits for it on PostgreSQL).

``ix_level_current_changes (system, since) WHERE previous IS NOT NULL``: the webhook
monitor's recent changes of one system, without indexing a first read's rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Frozen copy of ledger.types.UTCDateTime's column type.
UTC_DATETIME = sa.DateTime(timezone=True)
#: Frozen copy of ledger.levels.LEVELS_LOCK (PostgreSQL's advisory lock of recording).
LEVELS_LOCK = 0x64772D6C6576656C


def upgrade() -> None:
    with op.batch_alter_table("level_current") as batch:
        batch.add_column(sa.Column("since", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("since_source", sa.String(), nullable=True))
        batch.add_column(sa.Column("since_quantity", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("previous", sa.Integer(), nullable=True))
    op.create_index(
        "ix_level_current_changes",
        "level_current",
        ["system", "since"],
        sqlite_where=sa.text("previous IS NOT NULL"),
        postgresql_where=sa.text("previous IS NOT NULL"),
    )


def downgrade() -> None:
    # The changes only current holds go back to history, where the code before 0013
    # reads every change (under the recording lock: no record is half seen).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"SELECT pg_advisory_xact_lock({LEVELS_LOCK})")
    op.execute(
        "INSERT INTO level_history (system, sku, location, state, quantity, observed_at, source) "
        "SELECT system, sku, location, state, quantity, since, since_source FROM level_current "
        "WHERE since IS NOT NULL AND since_quantity = quantity "
        "ORDER BY since, system, sku, location, state"
    )
    op.drop_index("ix_level_current_changes", table_name="level_current")
    with op.batch_alter_table("level_current") as batch:
        batch.drop_column("previous")
        batch.drop_column("since_quantity")
        batch.drop_column("since_source")
        batch.drop_column("since")
