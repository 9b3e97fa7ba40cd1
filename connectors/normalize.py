"""The mapping between a system's own names and Driftwatch's.

Connectors do not own the mapping rules (they live in the configuration); they take
any object with these methods. ``monitors.config.Config`` is one.
"""

from __future__ import annotations

import re
from typing import Protocol


class Mapping(Protocol):
    """SKU normalization, location mapping and pack sizes, as configured."""

    def normalize_sku(self, raw: str) -> str:
        """The canonical SKU for a system's raw SKU (rules, then aliases)."""
        ...

    def location_key(self, system: str, system_location_id: str) -> str | None:
        """The Driftwatch location key for a system's location id, if mapped."""
        ...

    def location_id(self, system: str, location_key: str) -> str | None:
        """The system's location id for a Driftwatch location key, if mapped."""
        ...

    def pack_size(self, system: str, sku: str) -> int:
        """Units per counted unit in ``system`` (12 for an ERP that counts cartons)."""
        ...


def is_whole_number(text: str) -> bool:
    """Whether ``text`` is a non-negative whole number in ASCII digits: ``str.isdigit``
    also accepts ``'¹'`` (which ``int()`` refuses), so outside input is checked here."""
    return text.isascii() and text.isdigit()


def count_in_text(text: str) -> int | None:
    """The signed whole number a system wrote as text (``"12"``, ``" -3 "``), or None:
    ASCII digits only (``int()`` also reads ``"٣"``), at most 18 of them (``int()`` reads
    4,300, and no count has that many)."""
    if text.isdigit() and text.isascii() and len(text) <= _DIGITS:
        return int(text)  # plain ASCII digits, most cells: no strip, no regex
    text = text.strip()
    return int(text) if _COUNT.fullmatch(text) else None


_DIGITS = 18
_COUNT = re.compile(rf"[+-]?[0-9]{{1,{_DIGITS}}}")


def to_units(count: int, pack: int) -> int:
    """A system's count in units."""
    return count * pack


def from_units(units: int, pack: int) -> int:
    """Units as the system counts them; refuses a count that is not a whole pack."""
    whole, rest = divmod(units, pack)
    if rest:
        raise ValueError(f"{units} units is not a whole number of packs of {pack}")
    return whole
