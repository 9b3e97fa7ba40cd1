"""Sync health and rate-limit monitoring over the sandbox: a WMS that stops answering
and a Shopify that throttles become incidents, and recover into resolved ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.cli.demo import DemoWorld, demo_world
from connectors import ManualClock
from connectors.base import InventorySystem
from ledger import Ledger
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
