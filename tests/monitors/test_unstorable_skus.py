"""A SKU another system wrote with a NUL in it (or, in JSON, a lone surrogate escape)
must not stop a reconciliation. PostgreSQL cannot store either in text; SQLite can. So
Driftwatch compares, stores and shows such a SKU with U+FFFD in their place, the same
on both backends, and the rest of the read is recorded as usual."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pg_testing import pg_schema

from bot.cli.demo import demo_world
from connectors import ManualClock
from ledger import Ledger
from monitors.jobs import DriftDiffJob
from monitors.wiring import build_systems, rules_from_config


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nul.db'}"
        return
    async with pg_schema() as url:
        yield url


async def test_a_sku_with_a_nul_is_recorded_with_a_replacement_character(
    ledger_url: str,
) -> None:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(ledger_url) as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        world = demo.world
        east = world.gid("east")
        item = world.shopify.add_item("nul\x00sku", locations=[east])
        world.shopify.set_quantities(item, east, available=7)
        world.wms.set_level("NUL\x00SKU", world.warehouse("east"), pickable=3, on_hand=3)
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        job = DriftDiffJob(
            systems,
            rules_from_config(demo.config),
            ledger,
            clock,
            channel=demo.config.slack.alerts_channel,
        )
        result = await job.run()
        assert result.run.failures == {}

        rows = await ledger.current_levels("NUL\ufffdSKU")
        seen = {(r.system, r.state): r.quantity for r in rows}
        assert seen[("shopify", "available")] == 7
        assert seen[("wms", "available")] == 3
        # the rest of the read was recorded alongside it
        assert len(await ledger.known_skus()) > 2
        assert [d.sku for d in result.run.drifts if "\ufffd" in d.sku] != []
