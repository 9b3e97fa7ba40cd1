"""Outbox fencing: a token bumped by every claim, and whether an earlier attempt may
have reached Slack unrecorded.

``fence`` is incremented each time an entry is claimed; a worker records what it did
only while the entry still carries its fence, so a worker whose lease was taken over
cannot record anything. ``in_doubt`` is set when an entry is claimed again after a
lease ran out unsettled (the worker died or stalled) or after a failure that may have
happened after Slack accepted the message (a timeout); the next attempt then looks for
the earlier post before posting again.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("fence", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column("in_doubt", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("in_doubt")
        batch.drop_column("fence")
