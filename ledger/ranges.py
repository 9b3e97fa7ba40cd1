"""What each system has ever listed: the ranges of stores that carry only what they list.

A level once read stays in ``level_current`` after its listing disappears (it is the
last value seen), so a (system, SKU, location) there is one the system has listed.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from ledger.store import Store
from ledger.tables import LEVEL_CURRENT

#: SKUs per ``IN (...)`` list: well under SQLite's limit on bound parameters.
_CHUNK = 500
#: Above this many SKUs asked of one system, all its listed keys are read in one query
#: (a store carrying a tenth of 100,000 SKUs is asked of 90,000 on every full diff).
_WHOLE = 5_000


class Ranges(Store):
    """Which SKUs a system has listed."""

    async def ever_listed(
        self, keys: Iterable[tuple[str, str, str]]
    ) -> frozenset[tuple[str, str, str]]:
        """Those of ``keys`` — (system, SKU, location) — the ledger holds a level of."""
        wanted = set(keys)
        by_system: dict[str, set[str]] = {}
        for system, sku, _ in wanted:
            by_system.setdefault(system, set()).add(sku)
        found: set[tuple[str, str, str]] = set()
        c = LEVEL_CURRENT.c
        async with self._read() as conn:
            for system, skus in sorted(by_system.items()):
                names = sorted(skus)
                if len(names) > _WHOLE:
                    query = select(c.system, c.sku, c.location).where(c.system == system)
                    found.update((r[0], r[1], r[2]) for r in await conn.execute(query.distinct()))
                    continue
                for start in range(0, len(names), _CHUNK):
                    query = (
                        select(c.system, c.sku, c.location)
                        .where(c.system == system, c.sku.in_(names[start : start + _CHUNK]))
                        .distinct()
                    )
                    for row in await conn.execute(query):
                        found.add((row[0], row[1], row[2]))
        return frozenset(found & wanted)
