"""The signal chain measured from a scripted level history, with known answers
(``chain_testing.SCRIPT`` works them out), and the hop-over-SLA health finding."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from chain_testing import HOUR, MIN, NOW, T0, at, chain_config, level, record_script

from connectors import ManualClock
from ledger import Ledger
from monitors.chain import (
    FAMILY,
    ChainHealthJob,
    HopSpec,
    hops_from_config,
    measure_chain,
    percentile,
)
from monitors.config import config_from_dict
from monitors.wiring import rules_from_config


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'chain.db'}") as ledger:
        await ledger.upgrade()
        yield ledger


def test_nearest_rank_percentiles() -> None:
    values = [timedelta(minutes=m) for m in (20, 0, 5, 1)]
    assert percentile(values, 0.5) == timedelta(minutes=1)
    assert percentile(values, 0.95) == timedelta(minutes=20)
    assert percentile([timedelta(seconds=7)], 0.95) == timedelta(seconds=7)
    assert percentile([], 0.5) is None


def test_the_default_chain_runs_from_the_first_source_of_truth() -> None:
    config = chain_config(chain={})
    assert [(h.upstream, h.downstream, h.declared) for h in hops_from_config(config)] == [
        ("wms", "shopify", False),
        ("wms", "erp", False),
    ]
    declared = chain_config(
        chain={"hops": [{"upstream": "erp", "downstream": "shopify", "trigger": "batch"}]}
    )
    assert [h.key for h in hops_from_config(declared)] == [
        "wms>shopify",
        "wms>erp",
        "erp>shopify",
    ]


async def test_transit_times_per_hop_from_the_level_history(ledger: Ledger) -> None:
    config = chain_config()
    await record_script(ledger)
    report = await measure_chain(
        ledger,
        hops_from_config(config),
        rules_from_config(config),
        start=T0,
        end=NOW,
        now=NOW,
    )
    shop, erp = report.hops
    assert shop.hop == HopSpec(
        "wms", "shopify", "webhook", "available + committed, minus safety stock", 600, True
    )
    assert (shop.arrived, shop.lost, shop.pending) == (4, 1, 1)
    assert (shop.p50, shop.p95, shop.max) == (1 * MIN, 20 * MIN, 20 * MIN)
    assert shop.lost_share == pytest.approx(0.2)
    assert shop.keys == 3  # TEE, CAP, MUG: the bundle is left out, SOCK not carried
    assert shop.over_sla
    assert (erp.arrived, erp.lost, erp.pending) == (5, 0, 1)
    assert (erp.p50, erp.p95, erp.max) == (22 * HOUR, 24 * HOUR, 24 * HOUR)
    assert not erp.over_sla
    assert shop.to_json()["measured"] == {
        "from": T0.isoformat(),
        "to": NOW.isoformat(),
        "changes": 5,
        "arrived": 4,
        "never_arrived": 1,
        "pending": 1,
        "never_arrived_share": 0.2,
        "p50_seconds": 60.0,
        "p95_seconds": 1200.0,
        "max_seconds": 1200.0,
        "skus_at_locations": 3,
    }


async def test_only_changes_made_in_the_window_are_measured(ledger: Ledger) -> None:
    config = chain_config()
    await record_script(ledger)
    report = await measure_chain(
        ledger,
        hops_from_config(config)[:1],
        rules_from_config(config),
        start=at(2),
        end=at(3, 30),
        now=NOW,
    )
    [shop] = report.hops
    # TEE's changes at +2 h (20 min) and +3 h (1 min) only
    assert (shop.arrived, shop.lost, shop.pending) == (2, 0, 0)
    assert (shop.p50, shop.max) == (1 * MIN, 20 * MIN)


async def test_a_change_is_pending_until_it_is_older_than_lost_after(ledger: Ledger) -> None:
    config = chain_config()
    await record_script(ledger)
    hops = hops_from_config(config)[:1]
    rules = rules_from_config(config)
    # measured 30 hours after the week began: TEE's +4 h change is 26 h old (> 1 day)
    early = await measure_chain(ledger, hops, rules, start=T0, end=at(30), now=at(30))
    assert (early.hops[0].lost, early.hops[0].pending) == (1, 0)
    # measured at +10 h the same change is 6 h old: still in transit
    sooner = await measure_chain(ledger, hops, rules, start=T0, end=at(10), now=at(10))
    assert (sooner.hops[0].lost, sooner.hops[0].pending) == (0, 1)
    # a longer lost_after keeps it pending at +30 h too
    patient = await measure_chain(
        ledger, hops, rules, start=T0, end=at(30), now=at(30), lost_after_seconds=3 * 86_400
    )
    assert (patient.hops[0].lost, patient.hops[0].pending) == (0, 1)


async def test_the_daily_drift_rate_of_each_hop(ledger: Ledger) -> None:
    config = chain_config()
    await record_script(ledger)
    days = [T0 + timedelta(days=i) for i in range(8)]
    report = await measure_chain(
        ledger,
        hops_from_config(config),
        rules_from_config(config),
        start=T0,
        end=NOW,
        now=NOW,
        days=days,
    )
    shop = report.drift_rates["wms>shopify"]
    # day 0: TEE off 5 + 20 + 1 min and the last 20 h (1226 min) of 3 × 1440 SKU-minutes
    # (CAP's 2-unit gap is within its threshold); days 1-5: TEE off all day; day 6: and
    # MUG's last hour
    expected = [Fraction(1226, 4320)] + [Fraction(1, 3)] * 5 + [Fraction(1500, 4320)]
    assert shop == pytest.approx([float(f) for f in expected])
    erp = report.drift_rates["wms>erp"]
    # TEE off from +1 h until the batch at +25 h; CAP's 2 units stay within threshold
    assert erp[:2] == pytest.approx([1380 / 4320, 60 / 4320])
    assert erp[2:6] == [0.0] * 4
    assert erp[6] == pytest.approx(60 / 4320)


async def test_no_history_measures_nothing_and_raises_nothing(ledger: Ledger) -> None:
    config = chain_config()
    report = await measure_chain(
        ledger,
        hops_from_config(config),
        rules_from_config(config),
        start=T0,
        end=NOW,
        now=NOW,
        days=[T0, T0 + timedelta(days=1)],
    )
    assert [(h.changes, h.p95, h.over_sla) for h in report.hops] == [(0, None, False)] * 2
    assert report.drift_rates == {"wms>shopify": [None], "wms>erp": [None]}


async def test_a_hop_over_its_sla_is_a_health_incident_until_it_recovers(
    ledger: Ledger,
) -> None:
    config = chain_config()
    await record_script(ledger)
    clock = ManualClock(NOW)
    job = ChainHealthJob(config, rules_from_config(config), ledger, clock, channel="C0DRIFT01")
    ctx = await job.run()
    [opened] = ctx.opened
    assert opened.fingerprint == f"{FAMILY}wms>shopify"
    assert opened.kind == "hop_over_sla"
    assert opened.system == "wms → shopify"
    assert opened.title == "wms → shopify: 20% of changes never arrived, over its 10 min SLA"
    assert opened.details["sla_seconds"] == 600
    assert "p50 60 s" in opened.details["last_error"]
    # the same finding an hour later touches the incident, opens nothing new
    clock.advance(3600)
    again = await job.run()
    assert again.opened == []
    assert again.resolved == []
    # the storefront catches up and a week of quick changes follows: back under the SLA
    await ledger.record_levels(level("shopify", "TEE", 18, clock.now()))
    for i in range(1, 8):
        when = clock.now() + timedelta(days=i)
        await ledger.record_levels(level("wms", "TEE", 18 + i, when))
        await ledger.record_levels(level("shopify", "TEE", 16 + i, when + MIN))
    await ledger.record_levels(level("shopify", "MUG", 25, clock.now()))
    clock.advance(8 * 86_400)
    recovered = await job.run()
    assert [i.fingerprint for i in recovered.resolved] == [f"{FAMILY}wms>shopify"]
    assert job.last is not None
    assert not job.last.hops[0].over_sla
    assert job.last.hops[0].p95 == MIN


async def test_the_sync_health_job_leaves_hop_incidents_alone(ledger: Ledger) -> None:
    """Hop findings live in the health family; the sync-health job, which resolves the
    health incidents it no longer sees, must not resolve them."""
    from monitors.jobs import HealthJob

    config = chain_config()
    await record_script(ledger)
    clock = ManualClock(NOW)
    job = ChainHealthJob(config, rules_from_config(config), ledger, clock, channel="C0DRIFT01")
    await job.run()
    health = HealthJob([], ledger, clock, channel="C0DRIFT01", sla_seconds={})
    await health.run()
    [live] = await ledger.list_incidents(status="open")
    assert live.kind == "hop_over_sla"


def test_hop_systems_must_exist() -> None:
    from monitors.config import ConfigError

    data = {
        "source_of_truth": ["wms"],
        "systems": [{"name": "wms", "kind": "csv", "directory": "d", "columns": {}}],
        "locations": {"east": {"wms": "E"}},
        "slack": {"alerts_channel": "C0DRIFT01"},
        "chain": {"hops": [{"upstream": "wms", "downstream": "shopfy", "sla_seconds": 0}]},
    }
    with pytest.raises(ConfigError) as raised:
        config_from_dict(data)
    text = str(raised.value)
    assert "chain.hops[0].downstream: names unknown system `shopfy` (known: wms)" in text
    assert "chain.hops[0].sla_seconds" in text
