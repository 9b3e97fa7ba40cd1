"""B1's steps at a size of your choosing, for comparing two commits quickly:
``python -m bench.steps SKUS [sqlite|postgresql] [--reads N] [--floor] [--shuffled]``.

Runs the fakes in their own process (as B1 does), then reads every level ``N`` times and
prints the product CPU of each read, then records a first full read, changes 0.1% of
the levels in the fakes, and reads and records again, printing each step's product CPU
and the peak RSS. SKUS must be above 5,000 (the Shopify connector's default
``bulk_threshold``): below it Shopify is read page by page, paced by its rate limit in
real time, which is not what B1 measures. Not a benchmark with targets (those are B1
and B1PG): a tool for the A/B comparisons BENCHMARKS.md quotes, at sizes small enough to
repeat.

``--floor`` first prints, per system, the product CPU of its connector's full read and
of what no per-level read can avoid: receiving and decoding the same bytes into Python
objects (Shopify's bulk file through the connector's own download and msgspec decode;
the WMS's pages with httpx and ``Response.json()``; the ERP's export through
:mod:`csv`), with no level built. The difference is what building levels costs. (The
CSV connector parses an unchanged export once: the ERP's later reads here cost nothing,
as they do in B1's second run.)

``--shuffled``: the fakes create products in a shuffled order of SKUs (:mod:`bench.fakes`), as
a shop does; B1's come in SKU order.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
from pathlib import Path
from typing import Any

import httpx

from bench import catalog
from bench._common import cpu_seconds, peak_rss_mb
from bench.b1_reconcile import CHANGED_FRACTION, Database, Size, fakes_running, three_systems
from bench.child import Child
from connectors.base import InventorySystem
from connectors.clock import SystemClock
from connectors.shopify import ShopifyConnector
from connectors.shopify.documents import document
from ledger import Ledger
from monitors.collector import cyclic_gc_paused
from monitors.reconcile import level_blocks, read_all
from monitors.wiring import build_systems

#: the Shopify connector's default: a shop with more variants is read in bulk
BULK_THRESHOLD = 5_000


async def run(
    skus: int, dialect: str, reads: int, floor: bool = False, shuffled: bool = False
) -> None:
    async with (
        fakes_running(Size(skus, shuffled=shuffled), "bench-steps-") as running,
        Database(dialect, running.folder) as database,
    ):
        await _steps(running.address, database, running.erp_dir, running.fakes, reads, floor)


async def _steps(
    address: dict[str, object],
    database: Database,
    erp_dir: Path,
    fakes: Child,
    reads: int,
    floor: bool,
) -> None:
    config, environ = three_systems(address, erp_dir)
    async with (
        httpx.AsyncClient(timeout=120.0) as client,
        Ledger.from_url(database.url) as ledger,
    ):
        await ledger.upgrade()
        systems = build_systems(config, client=client, clock=SystemClock(), environ=environ)
        names = [s.name for s in systems]
        if floor:
            await _floor(systems, client, address, erp_dir)
        times = []
        for _ in range(reads):
            with cyclic_gc_paused():
                before = cpu_seconds()
                levels, _ = await read_all(systems)
                times.append(cpu_seconds() - before)
            del levels
        if times:
            shown = ", ".join(f"{t:.2f}" for t in times)
            print(f"reads: median {statistics.median(times):.2f} s CPU ({shown})", flush=True)
        for label in ("first", "second"):
            with cyclic_gc_paused():
                before = cpu_seconds()
                levels, failures = await read_all(systems)
                if failures:
                    raise RuntimeError(f"systems failed: {failures}")
                middle = cpu_seconds()
                result = await ledger.record_levels(blocks=level_blocks(levels), complete=names)
                after = cpu_seconds()
            del levels
            print(
                f"{label}: read {middle - before:.2f} s, record {after - middle:.2f} s CPU; "
                f"{result}; peak RSS {peak_rss_mb():.0f} MiB",
                flush=True,
            )
            if label == "first":
                await fakes.ask({"cmd": "change", "fraction": CHANGED_FRACTION})


async def _floor(
    systems: list[InventorySystem],
    client: httpx.AsyncClient,
    address: dict[str, object],
    erp_dir: Path,
) -> None:
    """Per system: a full read, then the same bytes decoded with no level built."""
    for system in systems:
        read = (await _cpu(system.read_levels()))[0]
        if isinstance(system, ShopifyConnector):
            bulk = system.bulk
            op = await bulk.wait(await bulk.start(document("bulk_inventory_items")))
            assert op.url is not None
            decoded = await _cpu(_count_batches(bulk.batches(op.url)))
        elif system.name == "wms":
            decoded = await _cpu(_wms_pages(client, str(address["wms_url"])))
        else:
            decoded = await _cpu(asyncio.to_thread(_csv_rows, erp_dir))
        print(
            f"floor {system.name}: read {read:.2f} s CPU; decoded only {decoded[0]:.2f} s "
            f"({decoded[1]:,} objects or rows); levels built {read - decoded[0]:.2f} s",
            flush=True,
        )


async def _cpu(work: Any) -> tuple[float, Any]:
    with cyclic_gc_paused():
        before = cpu_seconds()
        result = await work
        spent = cpu_seconds() - before
    return spent, (len(result) if isinstance(result, list) else result)


async def _count_batches(batches: Any) -> int:
    return sum([len(batch) async for batch in batches])


async def _wms_pages(client: httpx.AsyncClient, url: str) -> int:
    """The WMS's inventory pages as the connector asks for them (500 a page), decoded."""
    count, page = 0, 1
    headers = {"Authorization": f"Bearer {catalog.WMS_TOKEN}"}
    while True:
        response = await client.get(
            f"{url}/api/v1/inventory", params={"page": page, "per_page": 500}, headers=headers
        )
        items = response.json()["items"]
        if not items:
            return count
        count, page = count + len(items), page + 1


def _csv_rows(directory: Path) -> int:
    [export] = directory.glob("*.csv")
    with export.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.steps", description=__doc__)
    parser.add_argument("skus", type=int)
    parser.add_argument("dialect", nargs="?", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--reads", type=int, default=0, help="plain reads first (default 0)")
    parser.add_argument(
        "--floor", action="store_true", help="each system's read against decoding alone, first"
    )
    parser.add_argument(
        "--shuffled", action="store_true", help="products created out of SKU order, as a shop's"
    )
    args = parser.parse_args()
    if args.skus <= BULK_THRESHOLD:
        parser.error(
            f"SKUS must be above {BULK_THRESHOLD:,}: below that Shopify is read page by page, "
            "paced by its rate limit in real time (B1 reads it in bulk)"
        )
    asyncio.run(run(args.skus, args.dialect, args.reads, args.floor, args.shuffled))


if __name__ == "__main__":
    main()
