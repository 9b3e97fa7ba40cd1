"""Outbox claims name their replica, so a dead replica's claims are taken over early.

``outbox.claimed_by`` is the replica (``replicas.id``) that claimed an entry last. An
entry's lease covers the longest Slack call a live worker may be waiting on (three
client timeouts), which is far longer than it takes to see that a replica was killed:
its heartbeat stops. A claim held by a replica that is no longer alive (its heartbeat
older than the TTL, or stopped) is therefore claimable at once, lease or not, and the
next claim marks it ``in_doubt`` (the dead worker may have reached Slack).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
