"""Times as systems write them: ISO 8601 strings, parsed once per distinct string.

A full read parses a time per level (Shopify's ``updatedAt``, a WMS's ``updated_at``):
500,000 per system at 100,000 SKUs × 5 locations, and levels changed by one sync or one
import share their time to the second. A parsed time is immutable, so levels that share
a string share one ``datetime`` (48 bytes a level kept) and parse it once.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

#: distinct strings remembered (least recently used first out): a few MB at most
CACHED = 16_384


def iso_time(value: Any) -> datetime | None:
    """``value`` as a datetime when it is an ISO 8601 string (a trailing ``Z`` is UTC),
    else None. As :meth:`datetime.fromisoformat` reads it: a string without an offset
    gives a naive datetime."""
    if not isinstance(value, str):
        return None
    return _parsed(value)


@lru_cache(maxsize=CACHED)
def _parsed(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
