"""Sync health and rate-limit monitoring over the sandbox: a WMS that stops answering
and a Shopify that throttles become incidents, and recover into resolved ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.cli.demo import DemoWorld, demo_world
from connectors import ManualClock
from connectors.base import InventorySystem
from connectors.health import Health
from ledger import HealthCounters, Ledger
from monitors.health import HealthWindow, combined
from monitors.jobs import HealthJob
from monitors.reconcile import read_all
from monitors.wiring import build_systems


@dataclass
class Setup:
    demo: DemoWorld
    ledger: Ledger
    clock: ManualClock
    systems: list[InventorySystem]
    job: HealthJob


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'health.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        job = HealthJob(
            systems,
            ledger,
            clock,
            channel="C0DRIFT01",
            sla_seconds={s.name: s.sla_seconds for s in demo.config.systems},
        )
        yield Setup(demo, ledger, clock, systems, job)


async def test_a_system_that_keeps_failing_is_an_incident_that_recovers(setup: Setup) -> None:
    await read_all(setup.systems)
    assert (await setup.job.run()).opened == []

    setup.demo.world.wms.down = True
    for _ in range(3):
        setup.clock.advance(60)
        await read_all(setup.systems)
    ctx = await setup.job.run()
    assert [i.title for i in ctx.opened] == ["wms: 3 reads in a row failed"]
    [incident] = ctx.opened
    assert incident.details["last_error"].startswith("wms: HTTP 503")

    setup.demo.world.wms.down = False
    setup.clock.advance(60)
    await read_all(setup.systems)
    ctx = await setup.job.run()
    assert [i.id for i in ctx.resolved] == [incident.id]


async def test_no_successful_sync_within_the_sla_is_stale(setup: Setup) -> None:
    await read_all(setup.systems)
    setup.demo.world.shopify.down = True
    setup.clock.advance(901)  # the demo's SLA is the default 900 s
    await read_all(setup.systems)
    ctx = await setup.job.run()
    [incident] = ctx.opened
    assert (incident.kind, incident.severity, incident.title) == (
        "sync_stale",
        "warning",
        "shopify: no successful sync for 15 min",
    )


async def test_repeated_throttling_is_a_rate_limit_incident(setup: Setup) -> None:
    await read_all(setup.systems)
    await setup.job.run()
    for _ in range(4):
        setup.demo.world.shopify.force_throttled(3)
        setup.clock.advance(30)
        await read_all(setup.systems)
    ctx = await setup.job.run()
    [incident] = [i for i in ctx.opened if i.kind == "rate_limited"]
    assert incident.system == "shopify"
    assert incident.details["throttles_in_window"] == 12


def test_the_health_window_survives_a_round_trip_through_json() -> None:
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    window = HealthWindow()
    window.add(Health("shopify", requests=10, throttles=1), t0)
    window.add(Health("shopify", requests=30, throttles=21, retries=4), t0 + timedelta(minutes=1))
    restored = HealthWindow.from_json(window.to_json())
    assert restored.delta("shopify") == window.delta("shopify")
    # hostile or damaged state is skipped, not trusted
    damaged = HealthWindow.from_json({"shopify": [["not a time", 1, 2, 3], [1]], "wms": "x"})
    assert damaged.delta("shopify") is None
    assert damaged.delta("wms") is None


def test_replicas_counters_combine_into_one_health() -> None:
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    local = Health("shopify", last_success=t0, requests=5)
    published = [
        HealthCounters("shopify", 5, 0, 0, 0, 0, t0, None, None),
        # another replica: 20 throttles, and a streak of failures older than a success
        HealthCounters(
            "shopify",
            30,
            20,
            20,
            3,
            3,
            t0 - timedelta(minutes=1),
            "HTTP 503",
            t0 - timedelta(seconds=30),
        ),
        HealthCounters("wms", 99, 99, 99, 99, 9, None, "down", t0),
    ]
    health = combined(local, published)
    assert (health.requests, health.throttles, health.retries) == (35, 20, 20)
    assert health.last_success == t0
    assert health.error_streak == 0  # a success came after that replica's failures
    assert health.last_error == "HTTP 503"
    fresh = [
        *published[:1],
        HealthCounters("shopify", 1, 0, 0, 3, 3, None, "boom", t0 + timedelta(seconds=1)),
    ]
    assert combined(local, fresh).error_streak == 3
