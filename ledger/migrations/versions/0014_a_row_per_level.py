"""A row per level, not per state: ``levels``, and ``level_current`` as a view (issue 16).

Until now ``level_current`` held a row per (system, sku, location, state): a first read
of 100,000 SKUs × 5 locations wrote 6.5 million of them, and on SQLite that write alone
was above B1's 20-second target (BENCHMARKS.md, B1F). From 0014 on ``levels`` holds a row
per (system, sku, location), 1.5 million for the same read: a quantity per state, the
level's first observation once (``observed_at``, ``changed_at``, ``source``), and per
state its own columns (``<state>_observed_at`` and the rest), NULL until something writes
that state apart from the level's first observation (``ledger.level_columns``).
``level_current`` becomes a view with the columns the table had, a row per key, so
every reader keeps its query. History (``level_history``) is unchanged.

The upgrade moves every row: each state of an existing ledger gets its own columns
filled from its row as it was, so it reads exactly as before (a later first read of new
levels writes the compact form). It reads ``level_current`` once in key order and writes
``levels`` in the same order: at 100,000 SKUs expect about a minute on SQLite, during
which recording waits (on PostgreSQL under the recording lock). A state outside the
eight the ledger keeps (only code outside the connectors could have written one) stops
the upgrade with its name, before anything is changed.

Replicas older than 0014 cannot write levels after it (``level_current`` is a view):
their record fails and rolls back, nothing half written. Upgrade every replica (see
docs/OPERATIONS.md).

The downgrade writes the rows of the view back into a table of the old shape.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Frozen copy of ledger.types.UTCDateTime's column type.
UTC_DATETIME = sa.DateTime(timezone=True)
#: Frozen copy of ledger.levels.LEVELS_LOCK (PostgreSQL's advisory lock of recording).
LEVELS_LOCK = 0x64772D6C6576656C
#: Frozen copy of ledger.level_columns.STATES and OWN, with their column types.
STATES = (
    "on_hand",
    "available",
    "committed",
    "reserved",
    "damaged",
    "safety_stock",
    "quality_control",
    "incoming",
)
OWN: dict[str, sa.types.TypeEngine[Any]] = {
    "observed_at": UTC_DATETIME,
    "changed_at": UTC_DATETIME,
    "source": sa.String(),
    "absent": sa.Boolean(),
    "since": UTC_DATETIME,
    "since_source": sa.String(),
    "since_quantity": sa.Integer(),
    "previous": sa.Integer(),
}
#: level_current's columns after its key, in the view as in the table before 0014
VIEW = ("quantity", *OWN)


def _value(state: str, name: str) -> str:
    """Frozen copy of ledger.level_columns.value: ``state``'s ``name`` in level row l."""
    if name == "quantity":
        return f"l.{state}"
    if name == "previous":
        return f"l.{state}_previous"
    if name == "absent":
        return f"COALESCE(l.{state}_absent, false)"
    first = {
        "observed_at": "observed_at",
        "changed_at": "changed_at",
        "source": "source",
        "since": "observed_at",
        "since_source": "source",
        "since_quantity": state,
    }[name]
    return f"CASE WHEN l.{state}_observed_at IS NULL THEN l.{first} ELSE l.{state}_{name} END"


def _states_as_rows() -> str:
    """A row per state a level holds, with level_current's columns."""
    return " UNION ALL ".join(
        "SELECT l.system, l.sku, l.location, "
        f"'{state}' AS state, {', '.join(f'{_value(state, n)} AS {n}' for n in VIEW)} "
        f"FROM levels AS l WHERE l.{state} IS NOT NULL"
        for state in STATES
    )


def _pivot() -> str:
    """level_current's rows (a table) as a row per level, every state with its own columns."""
    columns = ["system", "sku", "location", "observed_at", "changed_at", "source"]
    values = ["system", "sku", "location", "min(observed_at)", "NULL", "min(source)"]
    for state in STATES:
        for name in VIEW:
            column = state if name == "quantity" else f"{state}_{name}"
            columns.append(column)
            if name == "absent":
                values.append(
                    f"max(CASE WHEN state = '{state}' THEN "
                    "CASE WHEN absent THEN 1 ELSE 0 END END) = 1"
                )
            else:
                values.append(f"max(CASE WHEN state = '{state}' THEN {name} END)")
    return (
        f"INSERT INTO levels ({', '.join(columns)}) SELECT {', '.join(values)} "
        "FROM level_current GROUP BY system, sku, location ORDER BY system, sku, location"
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"SELECT pg_advisory_xact_lock({LEVELS_LOCK})")
    known = ", ".join(f"'{state}'" for state in STATES)
    unknown = bind.execute(
        sa.text(
            "SELECT state, count(*) FROM level_current "
            f"WHERE state NOT IN ({known}) GROUP BY state ORDER BY state LIMIT 5"
        )
    ).all()
    if unknown:
        found = "; ".join(f"{state!r} ({count} rows)" for state, count in unknown)
        raise RuntimeError(
            f"level_current holds states the ledger does not keep: {found}. The ledger "
            f"keeps {', '.join(STATES)}. Move or delete those rows, then upgrade again; "
            "nothing was changed."
        )
    op.create_table(
        "levels",
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("observed_at", UTC_DATETIME, nullable=False),
        sa.Column("changed_at", UTC_DATETIME, nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        *(
            sa.Column(state if name == "quantity" else f"{state}_{name}", t, nullable=True)
            for state in STATES
            for name, t in {"quantity": sa.Integer(), **OWN}.items()
        ),
        sa.PrimaryKeyConstraint("system", "sku", "location"),
        sqlite_with_rowid=False,
    )
    op.execute(_pivot())
    op.drop_index("ix_level_current_changes", table_name="level_current")
    op.drop_table("level_current")
    op.execute(f"CREATE VIEW level_current AS {_states_as_rows()}")
    for state in STATES:
        op.create_index(
            f"ix_levels_{state}_changes",
            "levels",
            ["system", f"{state}_since"],
            sqlite_where=sa.text(f"{state}_previous IS NOT NULL"),
            postgresql_where=sa.text(f"{state}_previous IS NOT NULL"),
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"SELECT pg_advisory_xact_lock({LEVELS_LOCK})")
    op.execute("DROP VIEW level_current")
    op.create_table(
        "level_current",
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("sku", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("observed_at", UTC_DATETIME, nullable=False),
        sa.Column("changed_at", UTC_DATETIME, nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("absent", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("since", UTC_DATETIME, nullable=True),
        sa.Column("since_source", sa.String(), nullable=True),
        sa.Column("since_quantity", sa.Integer(), nullable=True),
        sa.Column("previous", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("system", "sku", "location", "state"),
    )
    op.execute(
        f"INSERT INTO level_current (system, sku, location, state, {', '.join(VIEW)}) "
        f"SELECT * FROM ({_states_as_rows()}) AS k ORDER BY system, sku, location, state"
    )
    op.create_index(
        "ix_level_current_changes",
        "level_current",
        ["system", "since"],
        sqlite_where=sa.text("previous IS NOT NULL"),
        postgresql_where=sa.text("previous IS NOT NULL"),
    )
    for state in STATES:
        op.drop_index(f"ix_levels_{state}_changes", table_name="levels")
    op.drop_table("levels")
