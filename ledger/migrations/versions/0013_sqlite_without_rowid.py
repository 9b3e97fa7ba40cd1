"""SQLite: ``level_current`` and ``level_skus`` become ``WITHOUT ROWID`` tables (issue 16).

A SQLite table with a text primary key is two B-trees: the table, by a hidden rowid, and
an index of its key that points into it. Every insert writes the key twice, and every
seek by key walks both. ``WITHOUT ROWID`` makes the table the key's B-tree, the layout
SQLite's documentation recommends for tables whose primary key is not an integer and
whose rows are small (https://www.sqlite.org/withoutrowid.html). B1's first read of
100,000 SKUs × 5 locations writes 6.5 million ``level_current`` rows on SQLite; their
part of that write (B1F's ``current_cpu_s``) is what this shrinks. Each table is
rebuilt (copied, dropped, renamed) in one transaction: 6.5 million ``level_current``
rows took 32 s (25 s of CPU) on the benchmark machine, 2026-12-07. PostgreSQL has no
rowid: nothing changes there.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("level_current", "level_skus")


def _rebuild(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}
        ):
            pass


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
