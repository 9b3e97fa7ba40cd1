"""How one row of ``levels`` holds every state of a level (migration 0014, issue 16).

A key is (system, sku, location, state), but since 0014 the ledger stores a row per
level, (system, sku, location), with a column per state in :data:`STATES` for its
quantity (NULL: the system has no such key). A full read of 100,000 SKUs × 5 locations
writes 1.5 million rows instead of 6.5 million (BENCHMARKS.md, B1F).

A level's row carries its **first observation** once: ``observed_at``, ``changed_at``
and ``source``. A state written only by that observation reads everything else from
it: it was observed then, from that source, its value has not changed since it was
first seen (``since`` is ``observed_at``, ``since_source`` is ``source``,
``since_quantity`` is its quantity), it replaced nothing (``previous`` is NULL) and a
complete read has not missed it (``absent`` is false). Once anything writes the state
apart from that (a later observation that changed it or only refreshed it, a webhook
carrying that state alone, a read that did not report it), the state gets **its own
columns**, ``<state>_observed_at`` and the rest of :data:`OWN`, and reads from them
alone. ``<state>_observed_at`` is never NULL in a state's own columns, so it tells
which way a state reads. A first read writes no own column: each is a NULL, a byte in
SQLite's record header and a bit in PostgreSQL's.

So every state keeps what it had as a row of its own (its time, source, staleness and
change), and the view ``level_current`` gives the ledger's readers the row per state
they always read (:data:`ledger.tables.LEVEL_CURRENT`). This module writes the SQL that
reads a state's columns: :func:`value` for a named state, :func:`keyed` for a state
named by an expression (a row per key, joined to its level's row).

A state outside :data:`STATES` has no column: the ledger refuses it
(:func:`require_known_states`). The states are the connectors' (``connectors.STATES``,
kept equal by a test); adding one takes a migration that adds its columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ledger.errors import InvalidArgument

#: the states a level's row has columns for (``connectors.STATES``, in its order)
STATES: tuple[str, ...] = (
    "on_hand",
    "available",
    "committed",
    "reserved",
    "damaged",
    "safety_stock",
    "quality_control",
    "incoming",
)
#: a level's key
KEY = ("system", "sku", "location")
#: a level's first observation, which its states read unless they have their own
FIRST = ("observed_at", "changed_at", "source")
#: a state's own columns, each named ``<state>_<name>``
OWN = (
    "observed_at",
    "changed_at",
    "source",
    "absent",
    "since",
    "since_source",
    "since_quantity",
    "previous",
)
#: the columns of a state as ``level_current`` shows them (after its key)
VIEW = ("quantity", *OWN)

_KNOWN = frozenset(STATES)


def own(state: str, name: str) -> str:
    """The name of ``state``'s own column ``name`` (the quantity's is the state's)."""
    return state if name == "quantity" else f"{state}_{name}"


def value(state: str, name: str, level: str = "l") -> str:
    """SQL for ``state``'s ``name`` (one of :data:`VIEW`) in the level row ``level``."""
    if name not in VIEW:
        raise ValueError(f"{name!r} is not a column of a state")
    if name == "quantity":
        return f"{level}.{state}"
    if name == "previous":  # NULL until the state's own columns say otherwise
        return f"{level}.{own(state, name)}"
    if name == "absent":
        return f"COALESCE({level}.{own(state, name)}, false)"
    first = {
        "observed_at": "observed_at",
        "changed_at": "changed_at",
        "source": "source",
        "since": "observed_at",
        "since_source": "source",
        "since_quantity": state,
    }[name]
    return (
        f"CASE WHEN {level}.{own(state, 'observed_at')} IS NULL THEN {level}.{first} "
        f"ELSE {level}.{own(state, name)} END"
    )


def keyed(name: str, state: str, level: str = "l", states: Iterable[str] = STATES) -> str:
    """SQL for ``name`` (one of :data:`VIEW`) of the state the SQL ``state`` names, in the
    level row ``level``: NULL for a state the row has no column for."""
    branches = " ".join(f"WHEN '{s}' THEN {value(s, name, level)}" for s in states)
    return f"CASE {state} {branches} END"


def require_known_states(states: Sequence[object], items: Sequence[object]) -> None:
    """Refuse ``states`` (the state of each of ``items``, in order) unless each is one a
    level's row has a column for, naming the first that is not."""
    try:
        if _KNOWN.issuperset(states):
            return
    except TypeError:  # an unhashable state: named below
        pass
    for state, item in zip(states, items, strict=True):
        if not (isinstance(state, str) and state in _KNOWN):
            raise InvalidArgument(
                f"state {state!r} is not one the ledger keeps (known: {', '.join(STATES)})"
                f" in {item!r}"
            )
