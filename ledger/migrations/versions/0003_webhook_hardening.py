"""Webhook hardening: deliveries get the time they are ordered by, and refusals are counted.

* ``webhook_deliveries.ordered_at``: what a delivery is ordered by against others of its
  resource (the payload's ``updated_at``, else ``X-Shopify-Triggered-At``), never later
  than its arrival plus a small skew. Existing rows get their ``triggered_at``; a
  ``triggered_at`` beyond arrival plus the skew (a forged future time, which made every
  later genuine delivery stale) is set to the arrival time first, the header kept in
  ``detail``.
* ``webhook_refusals``: deliveries refused at the door (bad signature, malformed, too
  large, another shop) are counted per system, outcome, reason and 5-minute bucket
  instead of one row each. Existing refusal rows are folded into those counts and
  deleted. A downgrade drops the counts (they cannot become rows again).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of ledger.types and ledger.webhooks, so later changes there cannot
# change this migration.
UTC_DATETIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON(none_as_null=False).with_variant(postgresql.JSONB(none_as_null=False), "postgresql")
REFUSALS = ("rejected_signature", "malformed", "too_large", "wrong_shop")
LEGACY_REFUSALS = ("rejected_signature", "malformed", "too_large")
SKEW = timedelta(seconds=60)
BUCKET_SECONDS = 300
CHUNK = 2000

deliveries = sa.table(
    "webhook_deliveries",
    sa.column("id", BIG_ID),
    sa.column("system", sa.String()),
    sa.column("topic", sa.String()),
    sa.column("event_id", sa.String()),
    sa.column("triggered_at", UTC_DATETIME),
    sa.column("received_at", UTC_DATETIME),
    sa.column("delay_seconds", sa.Float()),
    sa.column("outcome", sa.String()),
    sa.column("detail", JSON),
    sa.column("ordered_at", UTC_DATETIME),
)
refusals = sa.table(
    "webhook_refusals",
    sa.column("system", sa.String()),
    sa.column("outcome", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("bucket_start", UTC_DATETIME),
    sa.column("count", BIG_ID),
    sa.column("first_at", UTC_DATETIME),
    sa.column("last_at", UTC_DATETIME),
    sa.column("sample", JSON),
)


def upgrade() -> None:
    op.add_column("webhook_deliveries", sa.Column("ordered_at", UTC_DATETIME, nullable=True))
    op.drop_index("ix_webhook_deliveries_resource", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_ordered",
        "webhook_deliveries",
        ["system", "resource_key", "ordered_at"],
    )
    allowed = ", ".join(f"'{v}'" for v in REFUSALS)
    op.create_table(
        "webhook_refusals",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("system", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("bucket_start", UTC_DATETIME, nullable=False),
        sa.Column("count", BIG_ID, nullable=False),
        sa.Column("first_at", UTC_DATETIME, nullable=False),
        sa.Column("last_at", UTC_DATETIME, nullable=False),
        sa.Column("sample", JSON, nullable=False),
        sa.UniqueConstraint(
            "system", "outcome", "reason", "bucket_start", name="uq_webhook_refusals_bucket"
        ),
        sa.CheckConstraint(f"outcome IN ({allowed})", name="ck_webhook_refusals_outcome"),
    )
    op.create_index("ix_webhook_refusals_bucket_start", "webhook_refusals", ["bucket_start"])
    bind = op.get_bind()
    _unpoison(bind)
    bind.execute(sa.update(deliveries).values(ordered_at=deliveries.c.triggered_at))
    _fold_refusals(bind)


def downgrade() -> None:
    op.drop_index("ix_webhook_refusals_bucket_start", table_name="webhook_refusals")
    op.drop_table("webhook_refusals")
    op.drop_index("ix_webhook_deliveries_ordered", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_resource",
        "webhook_deliveries",
        ["system", "resource_key", "triggered_at"],
    )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("ordered_at")


def _utc(value: datetime) -> datetime:
    # SQLite gives the stored UTC wall time back naive; PostgreSQL gives it aware
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _stored(bind: sa.engine.Connection, value: datetime) -> datetime:
    return value.replace(tzinfo=None) if bind.dialect.name == "sqlite" else value


def _unpoison(bind: sa.engine.Connection) -> None:
    """Set a ``triggered_at`` later than arrival plus the skew to the arrival time."""
    d = deliveries.c
    rows = bind.execute(
        sa.select(d.id, d.triggered_at, d.received_at, d.detail).where(
            d.triggered_at.is_not(None), d.triggered_at > d.received_at
        )
    ).all()
    for row_id, triggered, received, detail in rows:
        if _utc(triggered) <= _utc(received) + SKEW:
            continue
        kept = {**(detail or {}), "triggered_at_header": _utc(triggered).isoformat()}
        bind.execute(
            sa.update(deliveries)
            .where(d.id == row_id)
            .values(triggered_at=received, delay_seconds=0.0, detail=kept)
        )


def _fold_refusals(bind: sa.engine.Connection) -> None:
    """Count the refusal rows per system, outcome, reason and bucket; delete them."""
    d = deliveries.c
    counts: dict[tuple[str, str, str, datetime], dict[str, Any]] = {}
    last_id = 0
    while True:
        rows = bind.execute(
            sa.select(d.id, d.system, d.topic, d.event_id, d.outcome, d.detail, d.received_at)
            .where(d.outcome.in_(LEGACY_REFUSALS), d.id > last_id)
            .order_by(d.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            break
        last_id = rows[-1].id
        for row in rows:
            detail = row.detail if isinstance(row.detail, dict) else {}
            at = _utc(row.received_at)
            reason = str(detail.get("signature") or detail.get("reason") or "")[:200]
            start = datetime.fromtimestamp(
                int(at.timestamp()) // BUCKET_SECONDS * BUCKET_SECONDS, UTC
            )
            key = (row.system, row.outcome, reason, start)
            bucket = counts.setdefault(key, {"count": 0, "first_at": at, "last_at": at})
            bucket["count"] += 1
            bucket["first_at"] = min(bucket["first_at"], at)
            if at >= bucket["last_at"]:
                bucket["last_at"] = at
                bucket["sample"] = {"topic": row.topic, "event_id": row.event_id}
    if not counts:
        return
    bind.execute(
        sa.insert(refusals),
        [
            {
                "system": system,
                "outcome": outcome,
                "reason": reason,
                "bucket_start": _stored(bind, start),
                "count": bucket["count"],
                "first_at": _stored(bind, bucket["first_at"]),
                "last_at": _stored(bind, bucket["last_at"]),
                "sample": bucket.get("sample") or {},
            }
            for (system, outcome, reason, start), bucket in counts.items()
        ],
    )
    bind.execute(sa.delete(deliveries).where(d.outcome.in_(LEGACY_REFUSALS)))
