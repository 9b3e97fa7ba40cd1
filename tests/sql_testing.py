"""The SQL a ledger sends, watched on its engine (what reaches the database, not a stand-in
for it): for tests that check how a read is planned or how often it is made; and the
levels' timeline in plain SQL, for tests that read the tables around the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from ledger import Ledger

#: Every recorded change, in SQL written apart from ``ledger.timeline`` (the oracle it is
#: checked against): history's rows, then each current row that holds a change (its
#: ``since`` and ``since_source``, where ``since_quantity`` is still its quantity),
#: ordered after every history row by its ``id``.
TIMELINE = (
    "(SELECT id, system, sku, location, state, quantity, observed_at, source "
    "FROM level_history UNION ALL SELECT 9223372036854775807, system, sku, location, state, "
    "quantity, since, since_source FROM level_current "
    "WHERE since IS NOT NULL AND since_quantity = quantity) AS timeline"
)


@contextmanager
def sent_statements(ledger: Ledger) -> Iterator[list[tuple[str, Any]]]:
    """The statements ``ledger`` sends while in the block, with their parameters, in order."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    engine = ledger._engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def sku_lists(statements: list[tuple[str, Any]]) -> list[str]:
    """Those of ``statements`` that list every SKU (``Ledger.known_skus``'s read of
    ``level_skus``, with no condition; ``is_known_sku`` seeks one)."""
    return [
        s
        for s, _ in statements
        if s.lstrip().upper().startswith("SELECT") and "level_skus" in s and "WHERE" not in s
    ]
