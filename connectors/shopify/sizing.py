"""Page sizes that fit Shopify's cost limit, learned from the cost Shopify reports.

A paged query's requested cost grows with its page size: a connection costs 2 plus
``first`` times what one of its nodes costs, and a nested connection multiplies in
(https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits). Shopify refuses,
before running it, any query that requests more than 1,000 points (``MAX_COST_EXCEEDED``).
Every answer reports ``requestedQueryCost``, so after one page the cost of a node is
known, and the largest page under the limit follows.

:class:`PageSizer` remembers that cost per document and per nested page size for the
life of the connector, so every read after the first starts at the right size. Before
anything is known it starts from a deliberately high estimate of a node's cost (four
points, plus four per nested node), so even the first query of a process is not
refused; the answer it gets then sizes the rest. An estimate for a nested size it has
not seen is scaled from one it has, upwards only (a node's cost grows with the nested
page: ``a + b·n``, and ``c(m)·n/m`` is at least that when ``n ≥ m``).
"""

from __future__ import annotations

import math

#: The largest ``first`` Shopify accepts on a connection.
MAX_PAGE = 250
#: Points per node assumed before Shopify has said: the node's own objects, and this
#: many per node of a nested connection.
GUESS_BASE = 4.0
GUESS_PER_NESTED = 4.0


class PageSizer:
    """Per (document, nested page size): the requested cost of one node."""

    def __init__(self) -> None:
        self._per_node: dict[tuple[str, int], float] = {}

    def per_node(self, document: str, nested: int) -> float:
        """What one node of ``document`` costs with ``nested`` nodes under it (learned,
        scaled from a size learned, or the high estimate)."""
        known = self._per_node.get((document, nested))
        if known is not None:
            return known
        safe = [
            cost if size >= nested else cost * nested / max(1, size)
            for (name, size), cost in self._per_node.items()
            if name == document
        ]
        if safe:
            return min(safe)
        return GUESS_BASE + GUESS_PER_NESTED * nested

    def size(self, document: str, nested: int, *, limit: float, base: float) -> int:
        """The largest page whose requested cost stays within ``limit``; ``base`` is what
        the query costs beyond its nodes (2 for a root connection)."""
        room = (limit - base) / self.per_node(document, nested)
        return max(1, min(MAX_PAGE, math.floor(room)))

    def expected(self, document: str, nested: int, first: int, *, base: float) -> float:
        """The requested cost of a page of ``first`` nodes (to pace the bucket by)."""
        return base + first * self.per_node(document, nested)

    def learn(
        self, document: str, nested: int, first: int, requested: float, *, base: float
    ) -> None:
        """Shopify reported ``requested`` points for a page of ``first`` nodes."""
        if first <= 0 or requested <= base:
            return
        self._per_node[(document, nested)] = (requested - base) / first

    def shrink(self, document: str, nested: int, first: int, *, base: float, limit: float) -> None:
        """A page of ``first`` was refused and Shopify did not say what it cost: assume a
        node costs enough that half the page fills the limit."""
        half = max(1, first // 2)
        floor = (limit - base) / half
        self._per_node[(document, nested)] = max(self.per_node(document, nested), floor)
