"""What goes into the ledger and what comes out: frozen dataclasses, detached from any
session, safe to keep and pass around."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, NamedTuple, Self

import numpy as np
import numpy.typing as npt

from ledger.errors import InvalidArgument
from ledger.types import JSONDict


class _FromRow:
    """Builds a record from a result row whose column names match the fields."""

    __slots__ = ()

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        return cls(**{name: row[name] for name in names})


class LevelObservation(NamedTuple):
    """One system's quantity of one state of one SKU at one location, at ``observed_at``.

    ``changed_at`` is when the system says the quantity last changed, where it says so.

    A named tuple, not a frozen dataclass like the records below: a full read makes one
    per level and state (6.5 million for 100,000 SKUs × 5 locations in three systems),
    and a tuple is built in a third of the time (issue 16).
    """

    system: str
    sku: str
    location: str
    state: str
    quantity: int
    observed_at: datetime
    source: str
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """Where a block's levels sit in its caller's read, and what the caller knows of them
    against an earlier complete read it recorded (:attr:`LevelBlock.place`).

    A caller that holds its last complete read (``monitors.diffmemo`` does, for the diff)
    can tell which levels of the next read are equal to the level at their position in
    it, comparing objects by identity first, at a fraction of what hashing every level's
    content costs (BENCHMARKS.md, issue 16). The ledger takes its word for those levels'
    content, and only where it is sure the word is about the read it holds: the one its
    call returned ``since`` for (:attr:`RecordResult.read`), its block of these states at
    the same ``positions``. Anything else and the content is hashed as without a place.

    ``positions``: level ``i`` of the block is level ``positions[i]`` of the caller's
    read (one run of it). ``since``: the :attr:`RecordResult.read` of the record of the
    read compared with (None: nothing compared). ``same``: per level of the block, True
    where the caller's level at its position is equal in SKU, location, quantities,
    ``changed_at`` and source to the one it had at that position in ``since``'s read.
    """

    positions: range
    since: object = None
    same: Sequence[bool] | npt.NDArray[np.bool_] | None = None


@dataclass(frozen=True, slots=True)
class LevelBlock:
    """Levels of one system that report the same states, held as columns: a full read
    handed to :meth:`~ledger.Ledger.record_levels` without an observation per level and
    state (6.5 million for 100,000 SKUs × 5 locations in three systems). The ledger
    makes observations only of the levels its read watermark cannot vouch for.

    Level ``i`` is ``skus[i]`` at ``locations[i]``, observed at ``observed_at[i]`` from
    ``sources[i]``, with the system's ``changed_at[i]``; its quantities are
    ``quantities[i * len(states) : (i + 1) * len(states)]``, in ``states`` order.
    """

    system: str
    states: tuple[str, ...]
    skus: Sequence[str]
    locations: Sequence[str]
    quantities: Sequence[int]
    observed_at: Sequence[datetime]
    changed_at: Sequence[datetime | None]
    sources: Sequence[str]
    #: where its levels sit in the caller's read (None: not said; see :class:`Place`)
    place: Place | None = None

    def __post_init__(self) -> None:
        n = len(self.skus)
        columns = (self.locations, self.observed_at, self.changed_at, self.sources)
        if any(len(c) != n for c in columns) or len(self.quantities) != n * len(self.states):
            raise InvalidArgument(
                f"a block of {n} levels of {len(self.states)} states needs {n} locations, "
                f"times and sources and {n * len(self.states)} quantities"
            )
        place = self.place
        if place is not None and (
            len(place.positions) != n or (place.same is not None and len(place.same) != n)
        ):
            raise InvalidArgument(f"a block of {n} levels placed at {len(place.positions)}")

    def __len__(self) -> int:
        return len(self.skus)

    def observations(self, rows: Iterable[int] | None = None) -> Iterator[LevelObservation]:
        """One observation per state of each level of ``rows`` (default: every level)."""
        # tuple.__new__ skips the named tuple's Python-level __new__ (fields in order)
        new, cls, system, states = tuple.__new__, LevelObservation, self.system, self.states
        if rows is None:  # every level: the columns read through once, in step
            values = iter(self.quantities)
            columns = (self.skus, self.locations, self.observed_at, self.sources, self.changed_at)
            for sku, location, observed, source, changed in zip(*columns, strict=True):
                # zip asks states first: it takes exactly len(states) values
                for state, quantity in zip(states, values):  # noqa: B905
                    yield new(
                        cls, (system, sku, location, state, quantity, observed, source, changed)
                    )
            return
        k, quantities = len(states), self.quantities
        for i in rows:
            sku, location, observed = self.skus[i], self.locations[i], self.observed_at[i]
            source, changed = self.sources[i], self.changed_at[i]
            for state, quantity in zip(states, quantities[i * k : i * k + k], strict=True):
                yield new(cls, (system, sku, location, state, quantity, observed, source, changed))


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What :meth:`Ledger.record_levels` did with a batch.

    ``observed``: observations received; ``changed``: history rows written (values that
    differ from the one before); ``stale``: observations older than the stored value,
    ignored.
    """

    observed: int
    changed: int
    stale: int
    #: this record's complete reads, as a later record names them (:attr:`Place.since`)
    read: object = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class LevelRow(_FromRow):
    """A stored level: the current one (with ``changed_at``) or a history row (without)."""

    system: str
    sku: str
    location: str
    state: str
    quantity: int
    observed_at: datetime
    source: str
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """A SKU with its title, tags and the ids other systems give it (system → id)."""

    sku: str
    title: str | None
    tags: tuple[str, ...]
    created_at: datetime | None
    ids: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Incident(_FromRow):
    """An incident as stored. ``details`` holds the drift facts and evidence."""

    id: int
    fingerprint: str
    kind: str
    severity: str
    status: str
    title: str
    sku: str | None
    location: str | None
    system: str | None
    details: JSONDict
    root_cause_hint: str | None
    opened_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    slack_channel: str | None
    slack_ts: str | None
    root_cause: str | None
    remediation: str | None
    follow_up: str | None
    reopened_count: int
    snoozed_until: datetime | None

    def is_snoozed(self, now: datetime) -> bool:
        """Whether notifications for this incident are snoozed at ``now``."""
        return self.snoozed_until is not None and self.snoozed_until > now


@dataclass(frozen=True, slots=True)
class Resync(_FromRow):
    """A request to write ``target`` into ``system``; ``before``/``after`` as read there."""

    id: int
    idempotency_key: str
    incident_id: int | None
    system: str
    sku: str
    location: str
    state: str
    before: int | None
    target: int
    after: int | None
    status: str
    attempts: int
    error: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime
    #: the reason the write carried; None for resyncs recorded before it was kept
    reason: str | None = None
    #: the replica (process) that made the request (migration 0010): while it is alive
    #: a pending resync is in flight there, not left behind by a dead process
    replica: str | None = None


@dataclass(frozen=True, slots=True)
class Adjustment(_FromRow):
    """A manual adjustment: a ``delta``, a ``new_quantity``, or both."""

    id: int
    idempotency_key: str
    sku: str
    location: str
    system: str
    delta: int | None
    new_quantity: int | None
    reason_code: str
    operator: str
    note: str
    created_at: datetime
    #: ``pending``, ``applied`` or ``failed`` (:data:`ledger.types.ADJUSTMENT_STATUSES`)
    status: str = "pending"
    before: int | None = None
    after: int | None = None
    error: str | None = None
    settled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry(_FromRow):
    """One line of the audit log. ``subject`` names what changed, e.g. ``incident:42``."""

    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: JSONDict


@dataclass(frozen=True, slots=True)
class OutboxEntry(_FromRow):
    """A message for Slack and its delivery state."""

    id: int
    incident_id: int | None
    kind: str
    channel: str
    payload: JSONDict
    dedupe_key: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    lease_until: datetime | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    response: JSONDict | None
    #: the claim's fencing token: settling the entry requires it to be unchanged
    fence: int = 0
    #: an earlier attempt may have reached Slack unrecorded: look before posting again
    in_doubt: bool = False
    #: the replica that claimed it last (None: never claimed, or before migration 0011)
    claimed_by: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Outbox counts by status, and the age of the oldest pending message."""

    pending: int
    delivered: int
    dead: int
    oldest_pending_at: datetime | None


@dataclass(frozen=True, slots=True)
class WebhookDelivery(_FromRow):
    """One webhook delivery as received and what became of it.

    ``dedupe_key`` is set on the delivery that claimed its event (the first accepted);
    ``delay_seconds`` is ``received_at - triggered_at`` where the sender said when.
    """

    id: int
    system: str
    topic: str | None
    event_id: str | None
    webhook_id: str | None
    dedupe_key: str | None
    resource_key: str | None
    triggered_at: datetime | None
    received_at: datetime
    delay_seconds: float | None
    processed_at: datetime | None
    outcome: str
    detail: JSONDict
    #: what it is ordered by against others of its resource (see ``webhook_deliveries``)
    ordered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefusalCount(_FromRow):
    """Deliveries refused at the door for one system, outcome and reason within one
    time bucket (``bucket_start`` and the bucket length after it): how many, the first
    and the last, and the headers of the last one (``sample``)."""

    system: str
    outcome: str
    reason: str
    bucket_start: datetime
    count: int
    first_at: datetime
    last_at: datetime
    sample: JSONDict


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """Webhook deliveries received since a moment: counts by outcome, and the delays."""

    total: int
    by_outcome: Mapping[str, int]
    max_delay_seconds: float | None
    last_received_at: datetime | None

    def count(self, outcome: str) -> int:
        """How many deliveries had ``outcome``."""
        return self.by_outcome.get(outcome, 0)
