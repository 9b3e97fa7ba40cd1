"""A later full read of Shopify's bulk result file, received two ways in turn in one
process: ``python -m bench.download SKUS [--runs N]``.

Runs the fakes in their own process (as B1 does), has the fake Shopify write one bulk
result file for SKUS SKUs × 5 locations, reads it once to fill the connector's memo,
then reads the same file ``N`` times each way, alternating, and prints the product CPU
of each read and the medians' ratio:

* ``connector``: :meth:`connectors.shopify.bulk.BulkReader.chunks`, as a full read
  receives the file (over aiohttp where the client is plain; :mod:`connectors.pages`);
* ``httpx``: the same loop over ``client.stream`` and ``aiter_bytes``, as the connector
  received it before (the baseline).

Each way's chunks go through :class:`connectors.shopify.jsonl.BulkLines` with the
memo, as :meth:`~connectors.shopify.bulk.BulkReader.level_batches` does: the file's
lines are the same every time, so every read is a later read with nothing changed. Not
a benchmark with targets (B1 is): the A/B that BENCHMARKS.md quotes, measured in
alternation because one B1 run varies more from run to run than what this compares.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx

from bench._common import cpu_seconds
from bench.b1_reconcile import Size, fakes_running, three_systems
from bench.steps import BULK_THRESHOLD
from connectors.clock import SystemClock
from connectors.shopify import ShopifyConnector
from connectors.shopify.bulk import BulkReader
from connectors.shopify.catalog import Catalog
from connectors.shopify.documents import document
from connectors.shopify.jsonl import BulkLines
from monitors.collector import cyclic_gc_paused
from monitors.wiring import build_systems

Chunks = Callable[[], AsyncIterator[tuple[bytes, str]]]


async def run(skus: int, runs: int) -> None:
    async with (
        fakes_running(Size(skus), "bench-download-") as running,
        httpx.AsyncClient(timeout=600.0) as client,
    ):
        config, environ = three_systems(running.address, running.erp_dir)
        systems = build_systems(config, client=client, clock=SystemClock(), environ=environ)
        shop = next(s for s in systems if isinstance(s, ShopifyConnector))
        await _compare(shop.bulk, client, runs)


async def _compare(bulk: BulkReader, client: httpx.AsyncClient, runs: int) -> None:
    op = await bulk.wait(await bulk.start(document("bulk_inventory_items")))
    if op.url is None:
        raise RuntimeError("the fake Shopify wrote no file")
    url = op.url
    ways: dict[str, Chunks] = {
        "connector": lambda: bulk.chunks(url),
        "httpx": lambda: _httpx_chunks(client, url),
    }
    await _read(bulk, ways["connector"])  # the memo filled: every read after is a later one
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, chunks in ways.items():
            spent, levels, pieces = await _read(bulk, chunks)
            times[name].append(spent)
            print(f"{name}: {spent:.2f} s CPU ({levels:,} levels, {pieces:,} chunks)", flush=True)
    median = {name: statistics.median(spent) for name, spent in times.items()}
    print(
        f"medians: connector {median['connector']:.2f} s, httpx {median['httpx']:.2f} s; "
        f"ratio {median['connector'] / median['httpx']:.2f}",
        flush=True,
    )


async def _read(bulk: BulkReader, chunks: Chunks) -> tuple[float, int, int]:
    """One later read of the file through ``chunks``: its CPU, levels and chunks."""
    with cyclic_gc_paused():
        before = cpu_seconds()
        lines = BulkLines(
            system="shopify",
            mapping=bulk._mapping,
            observed_at=datetime.now(UTC),
            memo=bulk._memo,
            catalog=Catalog(),
        )
        levels = pieces = 0
        async for data, encoding in chunks():
            pieces += 1
            levels += len(lines.chunk(data, encoding))
        lines.finish()
        return cpu_seconds() - before, levels, pieces


async def _httpx_chunks(client: httpx.AsyncClient, url: str) -> AsyncIterator[tuple[bytes, str]]:
    """The file's whole lines as the connector cut them from httpx's stream (no retry:
    the fake does not fail here)."""
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        encoding = response.encoding or "utf-8"
        started: list[bytes] = []
        async for piece in response.aiter_bytes():
            cut = piece.rfind(b"\n") + 1
            if not cut:
                started.append(piece)
                continue
            yield (b"".join((*started, piece[:cut])) if started else piece[:cut]), encoding
            started = [piece[cut:]] if cut < len(piece) else []
        if started:
            yield b"".join(started), encoding


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.download", description=__doc__)
    parser.add_argument("skus", type=int)
    parser.add_argument("--runs", type=int, default=3, help="reads each way (default 3)")
    args = parser.parse_args()
    if args.skus <= BULK_THRESHOLD:
        parser.error(f"SKUS must be above {BULK_THRESHOLD:,}: below that Shopify is not bulk read")
    asyncio.run(run(args.skus, args.runs))


if __name__ == "__main__":
    main()
