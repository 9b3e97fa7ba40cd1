"""The diff job end to end over the sandbox: a drift pages only once it has persisted,
so orders in flight do not page anyone; a large one pages at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.cli.demo import DemoWorld, demo_world
from connectors import ManualClock
from ledger import Ledger
from monitors.jobs import DiffResult, DriftDiffJob
from monitors.persistence import Persistence
from monitors.wiring import build_systems, rules_from_config


@dataclass
class Setup:
    demo: DemoWorld
    ledger: Ledger
    clock: ManualClock
    job: DriftDiffJob


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'job.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        job = DriftDiffJob(
            systems,
            rules_from_config(demo.config),
            ledger,
            clock,
            channel=demo.world.alerts_channel,
            persistence=Persistence(diffs=2),
        )
        yield Setup(demo, ledger, clock, job)


async def test_a_drift_pages_on_its_second_sighting(setup: Setup) -> None:
    first = await setup.job.run()
    assert [d.sku for d in first.run.drifts] == ["TEE-BLK-M"]
    assert first.incidents.opened == []
    assert [c.sku for c in first.incidents.pending] == ["TEE-BLK-M"]

    setup.clock.advance(900)
    second = await setup.job.run()
    assert [i.title for i in second.incidents.opened] == ["Oversell risk: TEE-BLK-M at east"]


async def test_a_drift_that_clears_before_the_second_diff_never_pages(setup: Setup) -> None:
    await setup.job.run()
    gid = setup.demo.world.locations["east"][0]
    setup.demo.world.shopify.set_quantities("TEE-BLK-M", gid, available=28)  # caught up
    setup.clock.advance(900)
    second = await setup.job.run()
    assert second.run.drifts == []
    assert await setup.ledger.list_incidents() == []


async def test_a_large_drift_pages_at_once(setup: Setup) -> None:
    gid = setup.demo.world.locations["west"][0]
    setup.demo.world.shopify.set_quantities("MUG-STONE", gid, available=90)  # WMS says 33
    result = await setup.job.run()
    assert [i.sku for i in result.incidents.opened] == ["MUG-STONE"]


async def test_a_targeted_diff_of_a_component_reads_its_bundle_too(tmp_path: Path) -> None:
    clock = ManualClock()
    async with (
        demo_world(scenarios=True) as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'bundle.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        job = DriftDiffJob(
            systems, rules_from_config(demo.config), ledger, clock, channel="C0DRIFT01"
        )
        for targeted in (["MUG-STONE"], ["MUG-GIFT-2"]):
            result = await job.run(targeted)
            read = {lv.sku for lv in result.run.levels}
            assert {"MUG-STONE", "MUG-GIFT-2"} <= read, targeted
            assert not [d for d in result.run.drifts if d.sku == "MUG-GIFT-2"], targeted


async def test_a_failing_after_diff_hook_costs_the_diff_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    seen: list[int] = []

    async def broken(result: DiffResult) -> None:
        raise RuntimeError("policy bug")

    async def counting(result: DiffResult) -> None:
        seen.append(len(result.run.drifts))

    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'hooks.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        job = DriftDiffJob(
            systems,
            rules_from_config(demo.config),
            ledger,
            clock,
            channel="C0DRIFT01",
            after=[broken, counting],
        )
        result = await job.run()
        assert [i.sku for i in result.incidents.opened] == ["TEE-BLK-M"]
        assert seen == [1]  # the hook after the broken one still ran
        assert "policy bug" in caplog.text
