"""What the outbox tests share: drifts, the pipeline that turns them into incidents and
queued alerts, workers with the real chart hook, and reading the fake Slack's channel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.charts.sku import AlertChart
from bot.slack.outbox import OutboxWorker
from connectors import ManualClock
from ledger import Incident, Ledger
from monitors.drift import DiffRules, Drift, SystemRules
from monitors.pipeline import Context, Scope, build_pipeline
from sandbox.slack import FakeSlack, Message

CHANNEL = "C0DRIFT01"
TOKEN = "xoxb-outbox"
RULES = DiffRules(
    systems={
        "shopify": SystemRules("shopify", "storefront", ("available",)),
        "wms": SystemRules("wms", "warehouse", ("available",)),
    },
    source_of_truth=("wms",),
)


def drift(sku: str, location: str = "east", actual: int = 14) -> Drift:
    return Drift(
        sku=sku,
        location=location,
        system="shopify",
        kind="oversell_risk",
        truth_system="wms",
        expected=10,
        actual=actual,
        values={"shopify": actual, "wms": 10},
        observed_at={"shopify": datetime(2026, 11, 2, 9, tzinfo=UTC)},
    )


async def raise_incidents(
    found: list[Drift], ledger: Ledger, *, at: datetime, channel: str = CHANNEL
) -> Context:
    return await build_pipeline().run(
        ledger, found, scope=Scope(systems=frozenset({"shopify", "wms"})), now=at, channel=channel
    )


def worker(
    ledger: Ledger, slack: FakeSlack, clock: ManualClock, *, charts: bool = True
) -> OutboxWorker:
    """The worker as the Service builds it: the real client, and the alert chart hook."""
    client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    outbox = OutboxWorker(ledger, client, clock, health_channel=CHANNEL)
    if charts:
        outbox.on_alert_posted.append(AlertChart(ledger, client, RULES, clock))
    return outbox


async def acknowledge(ledger: Ledger, incident: Incident, at: datetime) -> str:
    """Acknowledge as the button does: the incident changes, an update is queued."""
    await ledger.acknowledge(incident.id, "U0OPS001", at)
    reply = "Acknowledged by <@U0OPS001>"
    await ledger.enqueue(
        "incident.updated",
        CHANNEL,
        {"incident_id": incident.id, "reply": reply},
        at=at,
        incident_id=incident.id,
    )
    return reply


def alerts_for(slack: FakeSlack, incident_id: int) -> list[Message]:
    """The top-level messages in the channel that show incident ``incident_id``."""
    return [m for m in slack.messages(CHANNEL) if f"incident:{incident_id}" in _block_ids(m)]


def _block_ids(message: Message) -> set[str]:
    return {str(b.get("block_id")) for b in message.blocks if isinstance(b, dict)}


def files_in_thread(slack: FakeSlack, message: Message) -> list[dict[str, Any]]:
    return [f for m in slack.thread(CHANNEL, message.ts)[1:] for f in m.files]
