"""One run of one benchmark in this process: ``python -m bench.worker B1 [--quick]``.

Prints the run's outcome as one JSON line (see :class:`bench._common.Outcome`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging

from bench._common import Outcome

#: benchmark -> module with ``async def bench(quick: bool) -> Outcome``
MODULES = {
    "B1": "bench.b1_reconcile",
    "B1PG": "bench.b1_postgres",
    "B1F": "bench.b1_floor",
    "B2": "bench.b2_engine",
    "B3": "bench.b3_shopify",
    "B4": "bench.b4_slack",
    "B5": "bench.b5_latency",
    "B6": "bench.b6_storm",
    "B7": "bench.b7_charts",
    "B8": "bench.b8_replicas",
    "B9": "bench.b9_lookup",
}


async def run_one(name: str, quick: bool) -> Outcome:
    module = importlib.import_module(MODULES[name])
    outcome: Outcome = await module.bench(quick)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("name", choices=sorted(MODULES))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    outcome = asyncio.run(run_one(args.name, args.quick))
    print(json.dumps(outcome.to_json()), flush=True)


if __name__ == "__main__":
    main()
