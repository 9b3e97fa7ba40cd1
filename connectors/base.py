"""The one seam every inventory system implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from connectors.health import Health
from connectors.levels import Level, LevelWrite, WriteOutcome


@runtime_checkable
class InventorySystem(Protocol):
    """A Shopify store, a WMS, an ERP: something that holds inventory levels.

    :param name: the system's name in the configuration.
    """

    name: str

    @property
    def writable(self) -> bool:
        """Whether :meth:`write_levels` may be called."""
        ...

    async def read_levels(self, skus: Sequence[str] | None = None) -> list[Level]:
        """Every level, or only those of the given normalized SKUs, in the system's own
        order, as a new list the caller owns (and may sort)."""
        ...

    async def write_levels(self, writes: Sequence[LevelWrite]) -> list[WriteOutcome]:
        """Apply compare-and-set writes idempotently; one outcome per write, in order."""
        ...

    def health(self) -> Health:
        """The connector's counters and last success or error."""
        ...
