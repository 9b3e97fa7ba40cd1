"""A key's timeline: the changes of its value, from ``level_history`` and ``level_current``.

Since migration 0013 a key's newest change lives in its current row (``since``,
``since_source``; :class:`ledger.tables.LevelCurrentRow`) and history holds the changes
a later one replaced: a first read writes current rows only. A key's timeline is its
history rows, then its current row where that row holds a change (``since`` is not
None and ``since_quantity`` is its quantity; a row written before 0013, or changed
since by a version before it, does not, and history's newest row holds its value).

:func:`changes` gives both as one selectable with history's columns (``id``,
``system``, ``sku``, ``location``, ``state``, ``quantity``, ``observed_at``, ``source``):
a current row's ``observed_at`` is its ``since``, its ``source`` its ``since_source``,
and its ``id`` :data:`CURRENT_ID`, after every history row, so ordering a key's changes
by ``observed_at, id`` keeps them in the order they were recorded (:func:`in_order`;
different keys' changes at one time come by key: a history row's id tells when it was
replaced, not when it was recorded). The filter is applied to each table's rows on its
own (each through its own indexes), not to the union.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    String,
    func,
    literal,
    literal_column,
    select,
    union_all,
)

from ledger.level_columns import own
from ledger.tables import LEVEL_CURRENT, LEVEL_HISTORY

#: a current row's ``id`` in a timeline: history's ids are positive 64-bit integers
CURRENT_ID = 2**63 - 1


class Columns(NamedTuple):
    """One table's columns, under a timeline's names."""

    id: ColumnElement[Any]
    system: ColumnElement[Any]
    sku: ColumnElement[Any]
    location: ColumnElement[Any]
    state: ColumnElement[Any]
    quantity: ColumnElement[Any]
    observed_at: ColumnElement[Any]
    source: ColumnElement[Any]


_h, _c = LEVEL_HISTORY.c, LEVEL_CURRENT.c
HISTORY = Columns(
    _h.id, _h.system, _h.sku, _h.location, _h.state, _h.quantity, _h.observed_at, _h.source
)
CURRENT = Columns(
    literal_column(str(CURRENT_ID)),
    _c.system,
    _c.sku,
    _c.location,
    _c.state,
    _c.quantity,
    _c.since,
    _c.since_source,
)
NAMES = Columns._fields


def replaced(levels: Any, state: str) -> tuple[Columns, tuple[ColumnElement[bool], ...]]:
    """``state``'s changes held by ``levels`` (the table, or an alias of it) that replaced
    a value, as :data:`CURRENT` gives them through the view, read from the state's own
    columns, which such a change always has: the columns and the conditions. Through
    ``ix_levels_<state>_changes`` (by system and ``since``, only levels whose state holds
    a ``previous``), where the view's ``since`` is an expression no index serves."""
    c = levels.c
    columns = Columns(
        literal_column(str(CURRENT_ID)),
        c.system,
        c.sku,
        c.location,
        literal(state, String),
        c[state],
        c[own(state, "since")],
        c[own(state, "since_source")],
    )
    since, since_quantity = c[own(state, "since")], c[own(state, "since_quantity")]
    return columns, (
        c[own(state, "previous")].is_not(None),
        since.is_not(None),
        since_quantity == c[state],
    )


def holds_change(current: Any = LEVEL_CURRENT) -> tuple[ColumnElement[bool], ...]:
    """The rows of ``current`` (``level_current`` or an alias of it) that hold their
    key's newest change. The one definition: ``ledger.bulk`` moves to history exactly
    the changes the readers here show."""
    return (current.c.since.is_not(None), current.c.since_quantity == current.c.quantity)


HOLDS_CHANGE = holds_change()

Where = Callable[[Columns], Iterable[ColumnElement[bool]]]


def changes(where: Where, *, current: Iterable[ColumnElement[bool]] = ()) -> CompoundSelect[Any]:
    """The changes ``where(columns)`` selects, from both tables; ``current`` adds
    conditions on ``level_current``'s own columns (its key leads with ``system``: name
    the systems when selecting by SKU, or the current rows are scanned)."""
    history = select(*(col.label(name) for name, col in zip(NAMES, HISTORY, strict=True)))
    latest = select(*(col.label(name) for name, col in zip(NAMES, CURRENT, strict=True)))
    return union_all(
        history.where(*where(HISTORY)),
        latest.where(*HOLDS_CHANGE, *where(CURRENT), *current),
    )


def from_last_before(
    where: Where,
    start: datetime,
    *,
    key: Sequence[str],
    end: datetime | None = None,
    current: Iterable[ColumnElement[bool]] = (),
) -> CompoundSelect[Any]:
    """The changes ``where`` selects from ``start`` on (up to and including ``end``),
    each key's last change before ``start`` leading, so every series starts from a known
    value. ``key`` names the columns that tell keys apart among those selected (all four
    of the key's, or those ``where`` does not fix)."""
    before = changes(lambda t: (*where(t), t.observed_at < start), current=current).subquery(
        "before"
    )
    b = before.c
    ranked = select(
        *(b[name] for name in NAMES),
        func.row_number()
        .over(partition_by=[b[name] for name in key], order_by=(b.observed_at.desc(), b.id.desc()))
        .label("rank"),
    ).subquery("ranked")
    prior = select(*(ranked.c[name] for name in NAMES)).where(ranked.c.rank == 1)

    def window(t: Columns) -> Iterable[ColumnElement[bool]]:
        yield from where(t)
        yield t.observed_at >= start
        if end is not None:
            yield t.observed_at <= end

    recent = changes(window, current=current).subquery("recent")
    return union_all(prior, select(recent))


def in_order(selected: Any) -> list[ColumnElement[Any]]:
    """The order of changes in ``selected`` (a subquery with a timeline's columns):
    by time, then by key, then as each key's were recorded."""
    c = selected.c
    return [c.observed_at, c.system, c.sku, c.location, c.state, c.id]
