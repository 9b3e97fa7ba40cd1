"""Replicas on one database: heartbeats, job leases with fencing tokens, per-tick job
claims, the shared Slack pace, and each replica's connector counters.

* ``replicas``: one row per running process, its ``heartbeat_at`` refreshed every few
  seconds; a replica whose heartbeat is older than the lease TTL is dead.
* ``job_leases``: who runs a job for a unit (a store, or ``all``) until ``expires_at``;
  ``token`` is bumped on every takeover and fences the holder's writes.
* ``job_claims``: (job, unit, tick) claimed once across replicas; also one auto-resync
  decision per incident opening.
* ``slack_pace``: the next free posting slot per Slack channel, shared.
* ``replica_health``: each replica's connector counters, summed by the health job.
* ``job_state``: what a leased job keeps between runs (the health window, the drift
  debounce), written under the lease's fencing token, read by the next holder.
* ``resyncs.replica``: the replica that requested a resync, so a pending one of a live
  replica is "in progress" there, not left behind by a dead process.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of ledger.types, so later changes there cannot change this migration.
UTC_DATETIME = sa.DateTime(timezone=True)
BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON(none_as_null=False).with_variant(postgresql.JSONB(none_as_null=False), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("resyncs") as batch:
        batch.add_column(sa.Column("replica", sa.String(), nullable=True))
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("heartbeat_at", UTC_DATETIME, nullable=False),
        sa.Column("stopped_at", UTC_DATETIME, nullable=True),
    )
    op.create_table(
        "job_leases",
        sa.Column("job", sa.String(), primary_key=True),
        sa.Column("unit", sa.String(), primary_key=True),
        sa.Column("holder", sa.String(), nullable=True),
        sa.Column("token", BIG, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.Column("acquired_at", UTC_DATETIME, nullable=True),
    )
    op.create_table(
        "job_claims",
        sa.Column("job", sa.String(), primary_key=True),
        sa.Column("unit", sa.String(), primary_key=True),
        sa.Column("tick", sa.String(), primary_key=True),
        sa.Column("replica", sa.String(), nullable=False),
        sa.Column("token", BIG, nullable=False),
        sa.Column("claimed_at", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_job_claims_claimed_at", "job_claims", ["claimed_at"])
    op.create_table(
        "slack_pace",
        sa.Column("channel", sa.String(), primary_key=True),
        sa.Column("next_at", UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "job_state",
        sa.Column("job", sa.String(), primary_key=True),
        sa.Column("unit", sa.String(), primary_key=True),
        sa.Column("token", BIG, nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "replica_health",
        sa.Column("replica", sa.String(), primary_key=True),
        sa.Column("system", sa.String(), primary_key=True),
        sa.Column("requests", BIG, nullable=False),
        sa.Column("throttles", BIG, nullable=False),
        sa.Column("retries", BIG, nullable=False),
        sa.Column("failures", BIG, nullable=False),
        sa.Column("error_streak", sa.Integer(), nullable=False),
        sa.Column("last_success", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("last_error_at", UTC_DATETIME, nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("replica_health")
    op.drop_table("job_state")
    op.drop_table("slack_pace")
    op.drop_index("ix_job_claims_claimed_at", table_name="job_claims")
    op.drop_table("job_claims")
    op.drop_table("job_leases")
    op.drop_table("replicas")
    with op.batch_alter_table("resyncs") as batch:
        batch.drop_column("replica")
