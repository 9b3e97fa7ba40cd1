"""Charts for health, rate-limit and webhook incidents: the health monitor opens the
incident, the outbox posts the alert to the fake Slack, and the chart lands in its
thread, drawn from the Service's health history or the ledger's webhook deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts.health import (
    HealthChart,
    HealthHistory,
    bin_deliveries,
    per_interval,
    render_lag_png,
    render_rate_png,
    render_webhook_png,
)
from bot.cli.demo import demo_world
from bot.service import Service
from bot.slack.outbox import OutboxWorker
from connectors import ManualClock
from connectors.health import Health, ThrottleState
from ledger import Incident, Ledger
from monitors.health import FAMILY, HealthWindow, evaluate_health
from monitors.pipeline import Scope, build_pipeline
from sandbox.slack import FakeSlack, StoredFile

CHANNEL = "C0DRIFT01"
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Rig:
    ledger: Ledger
    slack: FakeSlack
    clock: ManualClock
    history: HealthHistory
    outbox: OutboxWorker
    client: AsyncWebClient

    async def raise_health(self, *healths: Health) -> list[Incident]:
        """The health monitor's evaluation through the incident pipeline, delivered."""
        now = self.clock.now()
        candidates = evaluate_health(
            healths,
            sla_seconds={"shopify": 900, "wms": 900},
            window=HealthWindow(),
            now=now,
            started_at=T0,
        )
        await build_pipeline().run(
            self.ledger,
            (),
            scope=Scope(systems=frozenset(h.system for h in healths)),
            now=now,
            channel=CHANNEL,
            given=candidates,
            families=(FAMILY,),
        )
        report = await self.outbox.drain()
        assert report.dead == []
        return [i for i in await self.ledger.list_incidents() if i.fingerprint.startswith(FAMILY)]

    def chart_of(self, incident: Incident) -> StoredFile:
        """The one file in the alert's thread (what a person sees under the alert)."""
        assert incident.slack_ts is not None
        replies = self.slack.thread(CHANNEL, incident.slack_ts)[1:]
        [file] = [f for m in replies for f in m.files]
        stored = self.slack.files[str(file["id"])]
        assert stored.content is not None
        assert stored.content.startswith(PNG)
        return stored


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = ManualClock(T0)
    async with (
        FakeSlack(clock=clock) as slack,
        Ledger.from_url(f"sqlite:///{tmp_path / 'health.db'}") as ledger,
    ):
        await ledger.upgrade()
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        history = HealthHistory(T0)
        outbox = OutboxWorker(ledger, client, clock)
        outbox.on_alert_posted.append(
            HealthChart(ledger, client, history, clock, {"shopify": 900, "wms": 900})
        )
        yield Rig(ledger, slack, clock, history, outbox, client)


def _move(clock: ManualClock, to: datetime) -> None:
    clock.advance((to - clock.now()).total_seconds())


def _health(system: str, **values: object) -> Health:
    health = Health(system)
    for name, value in values.items():
        setattr(health, name, value)
    return health


async def test_a_stale_sync_gets_its_lag_chart_in_the_thread(rig: Rig) -> None:
    for minute in range(0, 25, 5):
        _move(rig.clock, T0 + timedelta(minutes=minute))
        rig.history.record([_health("wms", last_success=T0)], rig.clock.now())

    [incident] = await rig.raise_health(_health("wms", last_success=T0))

    assert incident.kind == "sync_stale"
    chart = rig.chart_of(incident)
    assert chart.filename == f"incident-{incident.id}-sync_stale.png"
    assert chart.title == "wms: sync lag against its 15 min SLA"
    assert chart.shared_to == [(CHANNEL, incident.slack_ts)]
    lags = [s.lag_seconds / 60 for s in rig.history.samples("wms", T0)]
    assert lags == [0, 5, 10, 15, 20]


async def test_a_rate_limit_gets_throttles_and_bucket_level(rig: Rig) -> None:
    for minute, throttles, available in ((0, 0, 800.0), (1, 6, 300.0), (2, 14, 40.0)):
        _move(rig.clock, T0 + timedelta(minutes=minute))
        shop = _health(
            "shopify",
            last_success=rig.clock.now(),
            throttles=throttles,
            throttle=ThrottleState(maximum=1000.0, available=available),
        )
        rig.history.record([shop], rig.clock.now())

    [incident] = await rig.raise_health(shop)

    assert incident.kind == "rate_limited"
    chart = rig.chart_of(incident)
    assert chart.title == "shopify: throttles, retries and bucket use, last 2 h"
    samples = rig.history.samples("shopify", T0)
    assert per_interval(samples, "throttles")[1] == [6, 8]
    assert [s.bucket_used for s in samples] == pytest.approx([0.2, 0.7, 0.96])


async def test_a_webhook_incident_charts_deliveries_by_outcome(rig: Rig) -> None:
    outcomes = ["processed"] * 5 + ["rejected_signature"] * 3 + ["duplicate"]
    for i, outcome in enumerate(outcomes):
        at = T0 + timedelta(minutes=i)
        await rig.ledger.record_delivery(
            system="shopify",
            topic="inventory_levels/update",
            event_id=f"e{i}",
            webhook_id=f"w{i}",
            triggered_at=at - timedelta(seconds=2),
            received_at=at,
            outcome=outcome,
        )
    _move(rig.clock, T0 + timedelta(hours=1))
    incident, _ = await rig.ledger.open_incident(
        "webhook:webhook_signatures_rejected:shopify",
        "webhook_signatures_rejected",
        "warning",
        "shopify: 3 webhooks failed their signature check",
        rig.clock.now(),
        system="shopify",
        details={"system": "shopify"},
    )
    await rig.ledger.enqueue(
        "incident.opened", CHANNEL, {"incident_id": incident.id}, rig.clock.now()
    )
    await rig.outbox.drain()

    chart = rig.chart_of(await rig.ledger.get_incident(incident.id))
    assert chart.title == "shopify webhooks: deliveries and failures, last 6 h"
    start = rig.clock.now() - timedelta(hours=6)
    deliveries = await rig.ledger.list_deliveries(since=start, system="shopify")
    groups = bin_deliveries(deliveries, start, rig.clock.now())
    assert (sum(groups["accepted"]), sum(groups["failed"]), sum(groups["noise"])) == (5, 3, 1)


async def test_drift_incidents_get_no_health_chart(rig: Rig) -> None:
    incident, _ = await rig.ledger.open_incident(
        "drift:oversell_risk:TEE:east", "oversell_risk", "warning", "t", T0, sku="TEE"
    )
    chart = HealthChart(rig.ledger, rig.client, rig.history, rig.clock, {})
    assert await chart.render(incident) is None


async def test_charts_render_when_nothing_was_recorded_yet() -> None:
    now = T0 + timedelta(hours=2)
    for png in await asyncio.gather(
        asyncio.to_thread(render_lag_png, "lag", [], 900, T0, now),
        asyncio.to_thread(render_rate_png, "rate", [], T0, now),
        asyncio.to_thread(render_webhook_png, "webhooks", [], T0, now),
    ):
        assert png.startswith(PNG)


async def test_the_service_keeps_health_history_from_its_jobs(tmp_path: Path) -> None:
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'serve.db'}") as ledger,
    ):
        await ledger.upgrade()
        service = Service(demo.config, demo.environ, ledger, clock=ManualClock(T0))
        await service.start(host="127.0.0.1", port=0)
        try:
            await asyncio.wait_for(service.diff_done.wait(), 30)
            await service.idle()
        finally:
            await service.stop()
    [shopify] = service.health_history.samples("shopify", T0)
    assert shopify.lag_seconds == 0
    assert shopify.requests > 0
    assert len(service.health_history.samples("wms", T0)) == 1
