"""Guarantee 1: resync exactly once, through faults and a killed process.

The fake Shopify answers 20% of calls with THROTTLED, 429, 503 or a timeout; one write's
answer is lost after Shopify applied it; a storefront order lands between one resync's
read and its write; and the Driftwatch process is killed (its task cancelled, nothing
shut down) right after Shopify applied a write and before the ledger recorded it. A new
process over the same SQLite file then resyncs again, twice per level at once.

Afterwards every level is at the source of truth, every idempotency key was applied
once (the fake's record of writes), and every write compared against the value it
replaced (``changeFromQuantity`` equal to the value before).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.cli.demo import DemoWorld, demo_world
from connectors import ManualClock
from ledger import Ledger
from monitors.resync import ResyncRequest, ResyncResult, ResyncService
from monitors.wiring import build_systems, rules_from_config

#: (sku, location) -> Shopify available before the test (committed stays as seeded)
DRIFTING = {
    ("TEE-BLK-M", "east"): 40,  # WMS 28 + 2: target available 28
    ("TEE-WHT-M", "east"): 35,  # WMS 22 + 1: target 22
    ("MUG-STONE", "west"): 20,  # WMS 30 + 3: target 30
    ("CAP-NAVY", "east"): 3,  # WMS 12: target 12
    ("CAP-NAVY", "west"): 30,  # WMS 7 + 1: target 7
}
CLIENT_TIMEOUT = 0.5
FAULT_HOLD = 1.5  # a "timeout" fault holds the request this long: the client gives up


@dataclass
class Process:
    """One Driftwatch process: its HTTP client, ledger and resync service."""

    http: httpx.AsyncClient
    ledger: Ledger
    resync: ResyncService

    async def drop(self) -> None:
        """What the OS does when the process dies: sockets and files close. Nothing of
        Driftwatch's own runs."""
        await self.http.aclose()
        await self.ledger.close()


def boot(demo: DemoWorld, db: Path, clock: ManualClock, http: httpx.AsyncClient) -> Process:
    ledger = Ledger.from_url(f"sqlite:///{db}")
    systems = build_systems(demo.config, client=http, clock=clock, environ=demo.environ)
    return Process(
        http, ledger, ResyncService(systems, rules_from_config(demo.config), ledger, clock)
    )


def request(sku: str, location: str, who: str = "U0OPS001") -> ResyncRequest:
    return ResyncRequest(sku=sku, location=location, system="shopify", requested_by=who)


def at_truth(demo: DemoWorld, sku: str, location: str) -> bool:
    gid, warehouse = demo.world.locations[location]
    shop = demo.world.shopify.quantities(sku, gid)
    wms = demo.world.wms.level(sku, warehouse)
    return shop["available"] + shop["committed"] == wms.pickable + wms.allocated


def is_write(req: httpx.Request) -> bool:
    return b"inventorySetQuantities" in req.content


async def test_every_drift_is_resynced_exactly_once_through_faults_and_a_kill(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    db = tmp_path / "resync.db"
    async with demo_world() as demo:
        shop = demo.world.shopify
        for (sku, location), available in DRIFTING.items():
            shop.set_quantities(sku, demo.world.locations[location][0], available=available)
        assert not any(at_truth(demo, sku, loc) for sku, loc in DRIFTING)
        shop.faults.timeout_seconds = FAULT_HOLD
        shop.fail_ratio = 0.2
        # Besides the random 20%, one of each kind for sure (a short run may miss one).
        shop.force_http_429(1, retry_after=1.0)
        shop.force_5xx(1)
        shop.force_timeout(1)
        shop.force_throttled(1)

        # -- the first process: a lost answer, an order mid-resync, then killed -----------
        sent: list[str] = []  # idempotency keys, in the order first sent
        answered: list[httpx.Request] = []
        stale: list[httpx.Request] = []
        doomed: list[asyncio.Task[list[ResyncResult]]] = []

        async def on_request(req: httpx.Request) -> None:
            if not is_write(req):
                return
            variables = json.loads(req.content)["variables"]
            if variables["key"] in sent:
                return  # a retry of a write already sent
            sent.append(variables["key"])
            if len(sent) == 1:
                shop.force_lost_response(1)  # applied by Shopify, the answer never arrives
            if len(sent) == 2:  # a storefront order between this resync's read and write
                quantities = variables["input"]["quantities"][0]
                shop.simulate_order(quantities["inventoryItemId"], quantities["locationId"], 1)

        async def on_response(response: httpx.Response) -> None:
            if is_write(response.request) and response.status_code == 200:
                if b"CHANGE_FROM_QUANTITY_STALE" in await response.aread():
                    stale.append(response.request)
                answered.append(response.request)
                if len(answered) == 3:
                    doomed[0].cancel()  # killed: Shopify applied it, the ledger never hears

        http = httpx.AsyncClient(
            timeout=CLIENT_TIMEOUT,
            event_hooks={"request": [on_request], "response": [on_response]},
        )
        first = boot(demo, db, clock, http)
        await first.ledger.upgrade()

        async def resync_everything() -> list[ResyncResult]:
            # One after the other, as one person works down the alerts: at the kill only
            # the write is in flight (a kill inside a SQLite transaction would leave the
            # file locked until the test process ends, which a real process death does
            # not).
            return [await first.resync.resync(request(s, loc)) for s, loc in DRIFTING]

        doomed.append(asyncio.create_task(resync_everything()))
        async with asyncio.timeout(120):
            await asyncio.wait(doomed)
        assert doomed[0].cancelled(), "the process was killed mid-resync"
        left_pending = [r for r in await first.ledger.list_resyncs() if r.status == "pending"]
        assert left_pending, "the kill left a resync the ledger never saw finish"
        await first.drop()

        # -- a new process over the same database, every level asked twice at once --------
        second = boot(demo, db, clock, httpx.AsyncClient(timeout=CLIENT_TIMEOUT))
        try:
            for _ in range(3):  # a person clicks again if a fault outlasted the retries
                todo = [(s, loc) for s, loc in DRIFTING if not at_truth(demo, s, loc)]
                if not todo:
                    break
                async with asyncio.timeout(120):
                    await asyncio.gather(
                        *(second.resync.resync(request(s, loc)) for s, loc in todo),
                        *(second.resync.resync(request(s, loc, "U0ONCALL1")) for s, loc in todo),
                    )
            resyncs = await second.ledger.list_resyncs()
        finally:
            await second.drop()

    assert all(at_truth(demo, sku, loc) for sku, loc in DRIFTING)
    writes = [w for w in shop.writes if w.mutation == "inventorySetQuantities"]
    keys = Counter(w.idempotency_key for w in writes)
    assert keys
    assert max(keys.values()) == 1, f"a key applied twice: {keys}"
    decisions = Counter(w.reference_document_uri for w in writes)
    assert max(decisions.values()) == 1, f"one resync written twice: {decisions}"
    assert all(w.change_from_quantity == w.before for w in writes), "a newer value overwritten"
    assert {w.sku for w in writes} == {sku for sku, _ in DRIFTING}
    assert len({r.idempotency_key for r in resyncs}) == len(resyncs)

    # The run met what it claims to have met.
    faults = Counter(r.fault for r in shop.requests if r.fault)
    assert {"throttled", "http_429", "http_5xx", "timeout", "lost_response"} <= set(faults)
    assert sum(faults.values()) >= 0.1 * len(shop.requests), faults
    print(f"{len(shop.requests)} Shopify requests, faults: {dict(faults)}")
    assert stale, "the order between a read and its write made that write come back stale"
