"""The cyclic collector's CPU between full diffs, in steady state:
``python -m bench.collector [--skus N] [--diffs N] [--freeze]``.

Each "diff" builds a full read's levels (B2's :class:`~connectors.levels.Level` objects,
3 systems × SKUS × 5 locations) with the collector paused as
:func:`monitors.reconcile.run_diff` pauses it, keeps them until the next one (as the
drift job keeps its last result), and then does some ordinary work of the service
(small containers) with the collector back on. Printed per diff: the CPU seconds the
collector spent at the pause's end and after it (timed with ``gc.callbacks``) and how
many of its walks were full ones: what a service pays per full diff once the walks of
older generations come round, which B1's two runs are too few to show.

``--freeze``: the pause freezes when it ends, as a full diff's does in the product
(``cyclic_gc_paused(freeze=True)``: a full collection first on every
:data:`~monitors.collector.FULL_COLLECTION_EVERY`-th diff, so run at least that many to
see it). Without it, the pause as before 2026-12-06 night (and as a targeted
diff's still is).
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

from bench.b2_engine import build
from monitors.collector import cyclic_gc_paused


def run(skus: int, diffs: int, freeze: bool) -> list[tuple[float, int]]:
    """Per diff: (the collector's CPU seconds at the pause's end and after it, its full
    walks)."""
    spent, walks, started = [0.0], [0], [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.process_time()
        else:
            spent[0] += time.process_time() - started[0]
            walks[0] += info["generation"] == 2

    gc.collect()
    gc.callbacks.append(timed)
    out: list[tuple[float, int]] = []
    kept: object = None
    try:
        for _ in range(diffs):
            spent[0], walks[0] = 0.0, 0
            with cyclic_gc_paused(freeze=freeze):
                levels, plain = build(skus * 5)
                del plain
                kept = levels  # the last diff's levels live until the next one
                del levels
            for _ in range(200):  # the service's ordinary work until the next diff
                [[{} for _ in range(50)] for _ in range(100)]
            out.append((spent[0], walks[0]))
    finally:
        gc.callbacks.remove(timed)
        gc.unfreeze()
        del kept
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.collector", description=__doc__)
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--diffs", type=int, default=9)
    parser.add_argument("--freeze", action="store_true", help="freeze when a pause ends")
    args = parser.parse_args()
    for n, (seconds, full) in enumerate(run(args.skus, args.diffs, args.freeze)):
        line = f"diff {n}: collector {seconds:.3f} s CPU at its end and after, {full} full walks"
        print(line, flush=True)


if __name__ == "__main__":
    main()
