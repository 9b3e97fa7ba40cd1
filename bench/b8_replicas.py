"""B8, replicas: three ``driftwatch serve`` processes on one PostgreSQL
(:mod:`bench.cluster`: the fakes in a process of their own, a round-robin balancer in
front of the replicas, 2 s ticks on real time).

* **job runs per tick**: full-diff runs summed over the replicas' ``/metrics``
  (``driftwatch_job_runs_total{job="diff"}``), divided by the most firings one 2 s
  timer can have in the window (``ceil(window / 2 s)``); 1.0 is one run per tick
  across all replicas, 3.0 every replica on every tick.
* **duplicate messages**: drifts opened on several SKUs at once; Slack alerts beyond
  one per SKU, counted in the fake Slack once the outbox is empty.
* **failover**: kill -9 of the holder of the full diff's lease (``job_leases``),
  seconds until a survivor's diff counter moves.
* **webhooks per second, 1 vs 3 replicas**: signed ``inventory_levels/update``
  deliveries posted concurrently through the balancer, 2xx answers per second of wall
  time; batches with the balancer sending to one replica and to all three, in the
  order 1, 3, 3, 1 (the same processes, so only the number of replicas taking
  deliveries differs; the order cancels the drift of a ledger that grows batch by
  batch). Reported with their ratio, but not the target: a replica taking webhooks is
  CPU-bound (its database sessions wait on it), so three replicas add throughput only
  with cores to spare, and a 2-core machine shared with PostgreSQL, the fakes and the
  balancer has none.
* **product CPU per webhook, 3 vs 1 replicas**: what says whether replicas scale where
  there are cores. The replicas' own CPU seconds (user + system, /proc/<pid>/stat, every
  replica and its children, from the first post until every delivery is processed,
  less their idle rate measured over 10 s before: the ticks) divided by the
  deliveries; target: three replicas take at most 1.25x the CPU per delivery of one
  (coordination, smaller group commits and the balancer's spread must not eat the
  cores that more replicas bring). Throughput on N free cores is then about N ÷ CPU
  per delivery.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench._common import Check, Outcome
from bench.cluster import Cluster, Settings, alert_messages, cpu_seconds, slack_429s
from sandbox.shopify.webhooks import sign

TICK = 2
#: how long the replicas' idle CPU (their ticks alone) is measured before the batches
IDLE_SECONDS = 10.0


@dataclass(frozen=True)
class Size:
    ticks: int
    drifts: int
    webhooks: int
    concurrency: int


FULL = Size(ticks=30, drifts=6, webhooks=3000, concurrency=48)
QUICK = Size(ticks=2, drifts=1, webhooks=100, concurrency=12)


def signed_delivery(fleet: dict[str, Any], n: int) -> tuple[bytes, dict[str, str]]:
    """A signed ``inventory_levels/update`` delivery about catalog item ``n``, as Shopify
    sends it (a fresh event id)."""
    items = sorted(fleet["items"].items())
    _sku, item = items[n % len(items)]
    location = fleet["location_ids"]["east"]
    now = datetime.now(UTC)
    body = json.dumps(
        {
            "inventory_item_id": item,
            "location_id": location,
            "available": 40,
            "updated_at": now.isoformat(timespec="seconds"),
            "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{item}?inventory_item_id={n}",
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Shopify-Captain-Hook",
        "X-Shopify-Topic": "inventory_levels/update",
        "X-Shopify-Hmac-Sha256": sign(body, fleet["webhook_secret"]),
        "X-Shopify-Shop-Domain": fleet["shop_domain"],
        "X-Shopify-API-Version": "2026-07",
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    return body, headers


#: answers to the measured webhook posts that were not 2xx ("503", "ReadTimeout", ...)
REFUSED: Counter[str] = Counter()


async def post_webhooks(cluster: Cluster, count: int, concurrency: int) -> tuple[int, float]:
    """``count`` signed deliveries through the balancer; (accepted, wall seconds)."""
    url = cluster.fleet["balancer_url"] + "/webhooks/shopify"
    deliveries = [signed_delivery(cluster.fleet, n) for n in range(count)]
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for delivery in deliveries:
        queue.put_nowait(delivery)
    accepted = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        while not queue.empty():
            body, headers = queue.get_nowait()
            try:
                response = await client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                REFUSED[type(exc).__name__] += 1
                continue
            if 200 <= response.status_code < 300:
                accepted += 1
            else:
                REFUSED[str(response.status_code)] += 1

    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(sender(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return accepted, seconds


def idle_cpu_rate(cluster: Cluster, seconds: float) -> float:
    """The replicas' CPU seconds per second with no delivery coming in (their ticks)."""
    pids = [r.pid for r in cluster.replicas if r.alive]
    cpu, t0 = cpu_seconds(pids), time.monotonic()
    cluster.wait_for(lambda: time.monotonic() - t0 >= seconds or None, 2 * seconds, "idle")
    return (cpu_seconds(pids) - cpu) / (time.monotonic() - t0)


async def measured_batch(
    cluster: Cluster, size: Size, idle_rate: float
) -> tuple[int, float, float]:
    """One batch of ``size.webhooks`` deliveries: (accepted, wall seconds of the posts,
    the replicas' CPU seconds until every delivery is processed, less what they spend
    idle in that time)."""
    pids = [r.pid for r in cluster.replicas if r.alive]
    cpu, t0 = cpu_seconds(pids), time.monotonic()
    accepted, seconds = await post_webhooks(cluster, size.webhooks, size.concurrency)
    cluster.wait_for(lambda: _webhooks_processed(cluster), 300, "the batch to be processed")
    used = cpu_seconds(pids) - cpu - idle_rate * (time.monotonic() - t0)
    return accepted, seconds, max(used, 0.0)


def _diff_total(cluster: Cluster) -> float:
    return sum(r.get("diff", 0.0) for r in cluster.all_job_runs().values())


def _webhooks_processed(cluster: Cluster) -> bool:
    left = cluster.sql("SELECT count(*) FROM webhook_deliveries WHERE processed_at IS NULL")
    return bool(left[0][0] == 0)


def _outbox_empty(cluster: Cluster) -> bool:
    due = cluster.sql(
        "SELECT count(*) FROM outbox WHERE status = 'pending' "
        "AND (next_attempt_at <= now() OR lease_until > now())"
    )
    return bool(due[0][0] == 0)


async def run(size: Size) -> Outcome:
    out = Outcome()
    with tempfile.TemporaryDirectory(prefix="driftwatch-b8-") as tmp:
        settings = Settings(replicas=3, tick_seconds=TICK, health_seconds=TICK)
        with Cluster(Path(tmp), settings) as cluster:
            # webhooks: one replica behind the balancer, then all three; each batch
            # starts once the deliveries before it are processed (and after a warm-up)
            await post_webhooks(cluster, size.concurrency, size.concurrency)
            cluster.wait_for(lambda: _webhooks_processed(cluster), 300, "warm-up deliveries")
            REFUSED.clear()
            idle = idle_cpu_rate(cluster, IDLE_SECONDS)
            # in the order one, three, three, one: the ledger grows with every batch
            # (and what the ticks read with it), which this order cancels to first order
            totals = {1: [0, 0.0, 0.0], 3: [0, 0.0, 0.0]}
            for replicas in (1, 3, 3, 1):
                cluster.set_backends(cluster.replicas[:replicas])
                for i, figure in enumerate(await measured_batch(cluster, size, idle)):
                    totals[replicas][i] += figure
            (one, one_s, one_cpu), (three, three_s, three_cpu) = totals[1], totals[3]
            rate_one, rate_three = one / one_s, three / three_s
            # milliseconds of the replicas' CPU per accepted delivery
            cost_one, cost_three = 1000 * one_cpu / max(one, 1), 1000 * three_cpu / max(three, 1)

            # job runs per tick, over a window of size.ticks ticks
            before, t0 = _diff_total(cluster), time.monotonic()
            cluster.wait_for(lambda: time.monotonic() - t0 >= size.ticks * TICK, 600, "ticks")
            # one timer's firings in a window of W seconds: at most ceil(W / TICK)
            runs, ticks = _diff_total(cluster) - before, math.ceil((time.monotonic() - t0) / TICK)

            # duplicate messages: drifts on several SKUs at once (left to a person)
            skus = [f"FLEET-{i:03d}" for i in range(4, 4 + size.drifts)]
            for sku in skus:
                cluster.set_shopify(sku, "west", 30)
            channel = cluster.fleet["alerts_channel"]
            cluster.wait_for(
                lambda: all(alert_messages(cluster.state(), channel, s) for s in skus),
                300,
                "every drift's alert",
            )
            cluster.wait_for(lambda: _outbox_empty(cluster), 300, "the outbox to empty")
            state = cluster.state()
            duplicates = sum(len(alert_messages(state, channel, s)) - 1 for s in skus)

            # failover: kill -9 the holder of the full diff's lease
            victim = cluster.wait_for(
                lambda: cluster.lease_holder("drift-diff"), 120, "the drift-diff lease holder"
            )
            survivors = {
                k: v.get("diff", 0.0)
                for k, v in cluster.all_job_runs().items()
                if k != victim.index
            }
            killed = cluster.kill(victim)
            took = cluster.wait_for(
                lambda: (
                    time.monotonic()
                    if any(
                        cluster.all_job_runs()[k].get("diff", 0.0) > n for k, n in survivors.items()
                    )
                    else None
                ),
                300,
                "a survivor's diff",
            )
            failover = took - killed
            limited = slack_429s(cluster.state())
    out.facts.update(
        {
            "replicas": 3,
            "tick_seconds": TICK,
            "window_ticks": ticks,
            "diff_runs_in_window": int(runs),
            "drifts": size.drifts,
            "webhooks_posted_each": 2 * size.webhooks,
            "webhook_concurrency": size.concurrency,
            "webhooks_accepted_1_replica": one,
            "webhooks_accepted_3_replicas": three,
            "webhooks_per_s_1_replica": round(rate_one, 1),
            "webhooks_per_s_3_replicas": round(rate_three, 1),
            "webhooks_ratio_3_vs_1": round(rate_three / rate_one, 2) if rate_one else "n/a",
            "replica_cpu_ms_per_webhook_1_replica": round(cost_one, 2),
            "replica_cpu_ms_per_webhook_3_replicas": round(cost_three, 2),
            "replicas_idle_cpu_per_s": round(idle, 3),
            "cores": os.cpu_count() or 0,
            "slack_429s": limited,
            "webhooks_not_accepted": ", ".join(f"{k}: {n}" for k, n in REFUSED.items()) or "none",
        }
    )
    out.checks += [
        Check("B8 full-diff runs per tick (3 replicas)", runs / ticks, "", "<=", 1.0),
        Check("B8 duplicate Slack alerts", float(duplicates), "", "==", 0.0),
        Check("B8 failover after kill -9", failover, "s", "<=", 30.0),
        # adding replicas must not cost CPU per delivery (the balancer, the
        # coordination); whether they add throughput depends on free cores: module doc
        Check(
            "B8 replica CPU per webhook, 3 replicas",
            cost_three,
            "ms",
            "<=",
            1.25 * cost_one,
            cost_one,
        ),
    ]
    return out


async def bench(quick: bool) -> Outcome:
    return await run(QUICK if quick else FULL)
