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

A full diff's pause also *freezes* (``freeze=True``): when the last pause ends,
everything alive is moved to the collector's permanent generation (``gc.freeze()``, a
constant-time list splice), so the read's 1.5 million levels, which the drift job keeps
until its next full diff, are not walked again by every full collection in between
(about 0.9 s of CPU each at 100,000 SKUs × 5 locations: ``python -m bench.collector``,
BENCHMARKS.md, issue 16). Reference counting still frees frozen objects, so levels the
next read replaces are freed as before. What freezing delays is cyclic garbage alive at
that moment: it is collected by the full collection that every
:data:`FULL_COLLECTION_EVERY`-th freezing pause runs first (``gc.unfreeze()``,
``gc.collect()``, then the freeze). That bounds what waits to the cycles made during
that many full diffs, and it costs one full walk per that many full diffs instead of one
per diff. Which diff pays the walk is arbitrary; the first does not (start-up's cycles
wait like the others: the service freezes its start-up heap uncollected,
:mod:`bot.service.process`). Objects frozen by others are frozen again by that step.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Every this-many-th freezing pause runs a full collection before it freezes: the
#: cycles that wait frozen are at most this many full diffs' worth, and the full walk is
#: paid once per this many.
FULL_COLLECTION_EVERY = 8

_depth = 0
_was_enabled = False
_freeze_asked = False
_freezes = 0


@contextmanager
def cyclic_gc_paused(*, freeze: bool = False) -> Iterator[None]:
    """The cyclic collector off inside; with ``freeze``, what is alive when the last
    pause ends is frozen out of later walks (see the module docstring)."""
    global _depth, _was_enabled, _freeze_asked
    if _depth == 0:
        _was_enabled = gc.isenabled()
        _freeze_asked = False
        gc.disable()
    _depth += 1
    _freeze_asked = _freeze_asked or freeze
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _was_enabled:
            if _freeze_asked:
                _freeze_alive()
            gc.enable()


def _freeze_alive() -> None:
    global _freezes
    if _freezes % FULL_COLLECTION_EVERY == FULL_COLLECTION_EVERY - 1:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
    _freezes += 1
