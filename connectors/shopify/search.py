"""SKU lookups in Shopify's search syntax (the ``query:`` argument of ``inventoryItems``).

The syntax (https://shopify.dev/docs/api/usage/search-syntax): a value is a *name* (a
run of characters that are neither whitespace nor special) or a string in single or
double quotes; ``:``, ``\\``, ``(`` and ``)`` are special and escaped with a backslash; a
name may not start with ``-`` (the negation modifier) or a quote; after ``field:`` a
``<`` or ``>`` is read as a range comparator and a trailing ``*`` makes a prefix query.

So a SKU is sent as written only when it is a plain name (ASCII letters, digits, ``_``,
``.`` and ``-``, not leading ``-``); any other SKU (spaces, quotes, ``<``, ``>``, ``@``,
colons, backslashes, ``*``, parentheses, non-ASCII) goes in double quotes, with ``\\``
and ``"`` escaped by a backslash, so nothing in it is read as syntax.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

_PLAIN = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.\-]*")
#: SKUs per query: the query string stays short and one page usually holds the answer.
SKU_QUERY_BATCH = 50


def search_value(text: str) -> str:
    """``text`` as one value of the search syntax, matching exactly ``text``."""
    if _PLAIN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sku_queries(spellings: Iterable[str], *, batch: int = SKU_QUERY_BATCH) -> Iterator[str]:
    """``sku:A OR sku:B ...`` for every spelling, ``batch`` at a time, in sorted order."""
    unique = sorted(set(spellings))
    for start in range(0, len(unique), batch):
        chunk = unique[start : start + batch]
        yield " OR ".join(f"sku:{search_value(s)}" for s in chunk)
