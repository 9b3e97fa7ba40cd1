"""B3, Shopify API economy: the connector's paged read and batched resync against the
fake Shopify's cost bucket (2,000 points, 100 restored per second), beside a simple sync
script's one query and one mutation per item.

Time here is the bucket's time: the fake and the connector share one
:class:`~connectors.clock.ManualClock`; the connector's waits advance it, and nothing
else does, so the clock's elapsed time is exactly the time the client spent waiting for
points. The rate the bucket allows for a cost C is reached when the client waits no
longer than ``max(0, C − 2,000) ÷ 100`` seconds.

The baseline (one ``inventoryItems(query: "sku:…", first: 1)`` per item, one
``inventorySetQuantities`` per level, and one second's wait when THROTTLED) runs on a
sample of the items; its calls and waits are scaled to the full count (both grow
linearly with the items once the bucket's first 2,000 points are spent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from bench._common import Check, Outcome, Stopwatch
from connectors.clock import ManualClock
from connectors.levels import LevelWrite
from connectors.shopify import ShopifyConnector
from connectors.shopify.documents import document
from sandbox.shopify import FakeShopify

BUCKET = 2000
RESTORE = 100


@dataclass(frozen=True)
class Size:
    read_items: int
    locations: int
    resync_levels: int
    baseline_sample: int


FULL = Size(read_items=20_000, locations=2, resync_levels=10_000, baseline_sample=400)
QUICK = Size(read_items=3_000, locations=2, resync_levels=2_000, baseline_sample=100)


@dataclass
class _Mapping:
    """Location gid -> key; SKUs as they are (the connectors' Mapping protocol)."""

    keys: dict[str, str]

    def normalize_sku(self, raw: str) -> str:
        return raw

    def location_key(self, system: str, system_location_id: str) -> str | None:
        return self.keys.get(system_location_id)

    def location_id(self, system: str, location_key: str) -> str | None:
        return next((g for g, k in self.keys.items() if k == location_key), None)

    def pack_size(self, system: str, sku: str) -> int:
        return 1


def _allowed_seconds(cost: int) -> float:
    return max(0.0, (cost - BUCKET) / RESTORE)


def _window(fake: FakeShopify, start: int) -> tuple[int, int, int, int]:
    """(requests, mutations, THROTTLED answers, actual cost) since request ``start``."""
    records = fake.requests[start:]
    return (
        len(records),
        sum(1 for r in records if r.operation_type == "mutation"),
        sum(1 for r in records if r.throttled),
        sum(r.actual_cost or 0 for r in records),
    )


async def _refill(fake: FakeShopify, clock: ManualClock) -> None:
    clock.advance(BUCKET / RESTORE + 1)


class NaiveScript:
    """What simple sync scripts do: one call per item, a second's pause when throttled."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: str, clock: ManualClock):
        self.http, self.clock = http, clock
        self.url = f"{url}/admin/api/2026-07/graphql.json"
        self.headers = {"X-Shopify-Access-Token": token, "Content-Type": "application/json"}

    async def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        while True:
            response = await self.http.post(
                self.url,
                headers=self.headers,
                content=json.dumps({"query": query, "variables": variables}),
            )
            body: dict[str, Any] = response.json()
            codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
            if "THROTTLED" in codes:
                await self.clock.sleep(1.0)
                continue
            return body

    async def read(self, sku: str) -> dict[str, Any]:
        variables = {"first": 1, "after": None, "query": f"sku:{sku}", "levels": 5}
        return await self.call(document("inventory_items"), variables)

    async def write(self, item: str, location: str, quantity: int, key: str) -> None:
        variables = {
            "key": key,
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": f"gid://bench/Resync/{key}",
                "quantities": [
                    {
                        "inventoryItemId": item,
                        "locationId": location,
                        "quantity": quantity,
                        "changeFromQuantity": None,
                    }
                ],
            },
        }
        await self.call(document("set_quantities"), variables)


async def run(size: Size) -> Outcome:
    out = Outcome()
    clock = ManualClock()
    fake = FakeShopify(clock=clock, bucket_size=BUCKET, restore_rate=RESTORE)
    gids = [fake.add_location(f"DC {j + 1}") for j in range(size.locations)]
    items = [fake.add_item(f"SKU-{i:06d}") for i in range(size.read_items)]
    for i, item in enumerate(items):
        for gid in gids:
            fake.set_quantities(item, gid, available=10 + i % 50)
    mapping = _Mapping({gid: f"loc{j + 1}" for j, gid in enumerate(gids)})
    url = await fake.start()
    try:
        async with httpx.AsyncClient(timeout=60.0) as http:
            shop = ShopifyConnector(
                http,
                name="shopify",
                shop_url=url,
                token=fake.access_token,
                mapping=mapping,
                clock=clock,
                use_bulk=False,
            )
            # -- the paged read --------------------------------------------------------
            first, t0 = len(fake.requests), clock.now()
            with Stopwatch() as wall:
                levels = await shop.read_levels()
            waited = (clock.now() - t0).total_seconds()
            calls, _, throttled, cost = _window(fake, first)
            read_rate = _allowed_seconds(cost) / waited if waited > 0 else 1.0
            assert len(levels) == size.read_items * size.locations, len(levels)
            # -- the resync ------------------------------------------------------------
            await _refill(fake, clock)
            by_key = {(lv.sku, lv.location): lv for lv in levels}
            targets = list(by_key.items())[: size.resync_levels]
            writes = [
                LevelWrite(
                    sku=sku,
                    location=loc,
                    state="available",
                    quantity=(level.quantities["available"] + 3),
                    expected=level.quantities["available"],
                    key=f"bench-{sku}-{loc}",
                )
                for (sku, loc), level in targets
            ]
            first, t0 = len(fake.requests), clock.now()
            with Stopwatch() as write_wall:
                outcomes = await shop.write_levels(writes)
            write_waited = (clock.now() - t0).total_seconds()
            _, mutations, write_throttled, write_cost = _window(fake, first)
            applied = sum(1 for o in outcomes if o.status == "applied")
            allowed = _allowed_seconds(write_cost)
            write_ratio = (
                write_waited / allowed
                if allowed > 0
                else (1.0 if write_waited == 0 else float("inf"))
            )
            # -- the baseline ----------------------------------------------------------
            await _refill(fake, clock)
            script = NaiveScript(http, url, fake.access_token, clock)
            n = size.baseline_sample
            first, t0 = len(fake.requests), clock.now()
            for i in range(n):
                await script.read(f"SKU-{i:06d}")
            base_read_wait = (clock.now() - t0).total_seconds()
            base_read_calls, _, base_read_throttled, base_read_cost = _window(fake, first)
            await _refill(fake, clock)
            first, t0 = len(fake.requests), clock.now()
            for k, ((sku, loc), level) in enumerate(targets[:n]):
                item = items[int(sku.split("-")[1])]
                gid = gids[int(loc[3:]) - 1]
                await script.read(sku)
                await script.write(item, gid, level.quantities["available"] + 7, f"naive-{k}")
            base_write_wait = (clock.now() - t0).total_seconds()
            base_write_calls, base_mutations, base_write_throttled, base_write_cost = _window(
                fake, first
            )
    finally:
        await fake.stop()
    read_scale = size.read_items / n
    write_scale = size.resync_levels / n
    base_read_cost_full = base_read_cost * read_scale
    base_write_cost_full = base_write_cost * write_scale
    out.facts.update(
        {
            "read_items": size.read_items,
            "read_levels": len(levels),
            "read_calls": calls,
            "read_cost_points": cost,
            "read_waited_bucket_s": round(waited, 1),
            "read_wall_s": round(wall.seconds, 2),
            "resync_levels": len(writes),
            "resync_applied": applied,
            "resync_mutation_calls": mutations,
            "resync_cost_points": write_cost,
            "resync_waited_bucket_s": round(write_waited, 1),
            "resync_allowed_s": round(allowed, 1),
            "resync_throttled": write_throttled,
            "resync_wall_s": round(write_wall.seconds, 2),
            "baseline_sample": n,
            "baseline_read_calls_scaled": round(base_read_calls * read_scale),
            "baseline_read_throttled_scaled": round(base_read_throttled * read_scale),
            "baseline_read_wait_s_scaled": round(
                max(_allowed_seconds(round(base_read_cost_full)), base_read_wait * read_scale), 1
            ),
            "baseline_resync_calls_scaled": round(base_write_calls * write_scale),
            "baseline_resync_mutations_scaled": round(base_mutations * write_scale),
            "baseline_resync_throttled_scaled": round(base_write_throttled * write_scale),
            "baseline_resync_wait_s_scaled": round(
                max(_allowed_seconds(round(base_write_cost_full)), base_write_wait * write_scale), 1
            ),
        }
    )
    base_read_wait_full = float(out.facts["baseline_read_wait_s_scaled"])
    base_write_wait_full = float(out.facts["baseline_resync_wait_s_scaled"])
    out.checks += [
        Check(
            "B3 paged read: THROTTLED answers",
            throttled,
            "",
            "==",
            0,
            base_read_throttled * read_scale,
        ),
        Check(
            "B3 paged read: share of the bucket's rate",
            100 * read_rate,
            "%",
            ">=",
            90.0,
        ),
        Check(
            "B3 paged read: time waiting for points",
            waited,
            "s",
            "<=",
            max(_allowed_seconds(cost) / 0.9, 0.0),
            base_read_wait_full,
        ),
        Check(
            "B3 resync: mutation calls",
            mutations,
            "",
            "<=",
            40 * size.resync_levels / 10_000,
            base_mutations * write_scale,
        ),
        Check(
            "B3 resync: time ÷ the time the bucket allows",
            write_ratio,
            "×",
            "<=",
            1.2,
            base_write_wait_full / allowed if allowed > 0 else None,
        ),
    ]
    return out


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL)
