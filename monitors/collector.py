"""The cyclic garbage collector paused while a reconciliation builds and frees millions of
small objects that are in no cycle: the levels a read returns, the observations recorded
from them, the drift engine's grid.

Left on, the collector walks every live object (the levels, and the caller's) each time
enough new containers survive, and a read of 100,000 SKUs × 5 locations survives a great
many: measured at 30,000 SKUs × 5 locations, about a fifth of the CPU of reading and
recording went to it (issue 16). Memory is still freed by reference counting while it is
paused; cyclic garbage made meanwhile waits for the collector to be back on.

Pauses nest and overlap (two stores' diffs on one event loop): the collector is back on
when the last pause ends, and only if it was on when the first began.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_was_enabled = False


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """The cyclic collector off inside (see the module docstring)."""
    global _depth, _was_enabled
    if _depth == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _was_enabled:
            gc.enable()
