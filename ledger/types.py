"""Column types and value checks shared by the tables and the queries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

from ledger.errors import InvalidArgument
from ledger.storable import refuse_unstorable

#: A JSON object as stored in ``details``, ``detail``, ``payload`` and ``response``.
JSONDict = dict[str, Any]

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
INCIDENT_STATUSES: tuple[str, ...] = ("open", "acknowledged", "resolved")
RESYNC_STATUSES: tuple[str, ...] = ("pending", "applied", "stale", "failed", "skipped")
#: An adjustment is ``pending`` from when it is recorded until its write to the source of
#: truth settles: ``applied``, or ``failed`` (refused, stale too often, unreachable).
ADJUSTMENT_STATUSES: tuple[str, ...] = ("pending", "applied", "failed")
OUTBOX_STATUSES: tuple[str, ...] = ("pending", "delivered", "dead")
#: A week's verification decision: the trend is down (pass), or not yet (escalate).
VERDICT_DECISIONS: tuple[str, ...] = ("pass", "escalate")
#: What became of a webhook delivery. ``received``: accepted and waiting to be processed;
#: ``processed``: applied; ``stale``: older than what is already known for its resource,
#: not applied; ``duplicate``: its event was received before; ``ignored``: authentic but
#: not for us (topic, shop); ``error``: processing failed; ``rejected_signature``,
#: ``malformed``, ``too_large``: refused at the door.
WEBHOOK_OUTCOMES: tuple[str, ...] = (
    "received",
    "processed",
    "stale",
    "duplicate",
    "ignored",
    "error",
    "rejected_signature",
    "malformed",
    "too_large",
)
#: Why a delivery was refused at the door. Refusals are not kept one row each (anyone
#: can send them): they are counted per system, outcome, reason and time bucket
#: (``webhook_refusals``). ``wrong_shop``: signed, but for a shop Driftwatch does not
#: serve.
REFUSAL_OUTCOMES: tuple[str, ...] = ("rejected_signature", "malformed", "too_large", "wrong_shop")

#: The actor recorded for changes Driftwatch makes on its own.
SYSTEM_ACTOR = "driftwatch"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime that comes back as aware UTC on every backend.

    PostgreSQL stores ``timestamptz``; SQLite stores the UTC wall time as fixed-width text
    (so text order is time order) and the zone is restored on the way out. Naive datetimes
    are refused: the ledger never guesses a zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = require_utc(value)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type(*, nullable: bool = False) -> TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL; a Python None is SQL NULL when ``nullable``."""
    return JSON(none_as_null=nullable).with_variant(JSONB(none_as_null=nullable), "postgresql")


#: 64-bit ids on PostgreSQL; SQLite needs ``INTEGER PRIMARY KEY`` to autoincrement.
BigId: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")


def require_utc(value: datetime, name: str = "datetime") -> datetime:
    """``value`` converted to UTC; refuses naive datetimes."""
    if not isinstance(value, datetime):
        raise InvalidArgument(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def require_choice(value: str, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise InvalidArgument(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def require_text(value: str, name: str) -> str:
    """``value`` stripped of surrounding whitespace; refuses empty text, and text no
    backend can store (a NUL or a lone surrogate: PostgreSQL refuses both mid-transaction,
    SQLite would keep what a PostgreSQL ledger cannot)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"{name} must be non-empty text (got {value!r})")
    refuse_unstorable(name, value)
    return value.strip()


def require_json(value: Any, name: str) -> Any:
    """``value`` if it can be stored as JSON (checked the same way on every backend)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{name} is not JSON-serializable: {exc}") from exc
    return value
