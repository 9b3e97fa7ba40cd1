"""Webhook incidents reach Slack saying what was seen and what to do, with no Resync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli.demo import demo_world
from bot.slack.outbox import OutboxWorker
from bot.slack.render.health import health_blocks
from connectors import ManualClock
from connectors.health import Health
from connectors.shopify.subscriptions import (
    Subscription,
    SubscriptionReport,
    check_subscriptions,
    create_missing,
)
from connectors.shopify.transport import GraphQLTransport
from connectors.shopify.webhooks import TOPICS
from ledger import Ledger
from ledger.webhooks import DeliveryWindow, LevelChange
from monitors.webhook_health import WebhookFacts, WebhookHealthJob, WebhookWatch, evaluate_webhooks

URL = "https://driftwatch.example.com/webhooks/shopify"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


async def test_a_missing_subscription_is_posted_with_the_command_that_fixes_it(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'hooks.db'}") as ledger,
        httpx.AsyncClient() as http,
    ):
        await ledger.upgrade()
        world = demo.world
        gql = GraphQLTransport(
            http,
            system="shopify",
            shop_url=world.shopify_url,
            api_version="2026-07",
            token=world.shopify_token,
            clock=clock,
            health=Health(system="shopify"),
        )
        watch = WebhookWatch("shopify", check=partial(check_subscriptions, gql, TOPICS, URL))
        job = WebhookHealthJob(ledger, clock, [watch], channel=world.alerts_channel)
        slack = AsyncWebClient(token=world.slack_token, base_url=world.slack_api_url)
        outbox = OutboxWorker(ledger, slack, clock)

        for topic in TOPICS[1:]:
            world.shopify.webhooks.subscribe(topic, URL)
        [incident] = (await job.run()).opened
        await outbox.drain()
        [message] = world.slack.messages(world.alerts_channel)
        opened_text, opened_blocks = message.text, str(message.blocks)
        actions = next(b for b in message.blocks if b["type"] == "actions")

        report = await check_subscriptions(gql, TOPICS, URL)
        await create_missing(gql, report)  # what `driftwatch webhooks --create` does
        clock.advance(15 * 60)
        assert [i.id for i in (await job.run()).resolved] == [incident.id]
        await outbox.drain()
        [resolved] = world.slack.messages(world.alerts_channel)

    assert opened_text == "shopify: no webhook subscription for inventory_levels/update"
    assert f"Shopify has no subscription to {URL} for: inventory_levels/update" in opened_blocks
    assert "Run `driftwatch webhooks --create`" in opened_blocks
    assert [e["action_id"] for e in actions["elements"]] == [
        "acknowledge",
        "snooze",
        "root_cause",
        "resolve",
    ]
    assert resolved.ts == message.ts
    assert resolved.blocks[0]["text"]["text"].startswith("✅ Resolved: shopify: no webhook")
    assert all(b["type"] != "actions" for b in resolved.blocks)


def _every_kind() -> list[tuple[str, str, list[str]]]:
    window = DeliveryWindow(
        system="shopify",
        since=T0,
        by_outcome={
            "rejected_signature": 20,
            "wrong_shop": 10,
            "error": 5,
            "duplicate": 15,
            "stale": 8,
        },
        timed=40,
        late=10,
        late_after_seconds=300,
        max_delay_seconds=900,
        signature_mismatches=20,
        last_error="ValueError: available is not an integer: 'x'",
        last_received_at=T0,
    )
    moved = T0 + timedelta(minutes=3)
    facts = WebhookFacts(
        system="shopify",
        deliveries=window,
        subscriptions=SubscriptionReport(
            URL,
            TOPICS,
            (),
            ("refunds/create",),
            (Subscription("gid://shopify/WebhookSubscription/9", "orders/create", "https://x.io"),),
        ),
        missed=[
            LevelChange("shopify", sku, "east", "available", 5, 4, moved, "poll", T0)
            for sku in ("A", "B", "C")
        ],
        judged=3,
    )
    return [(c.kind, c.title, c.details["evidence"]) for c in evaluate_webhooks([facts])]


ADVICE = {
    "webhook_signatures_rejected": "webhook_secret_env",
    "webhook_processing_errors": "Read the newest error",
    "webhook_delayed": "answers within 5 s",
    "webhook_duplicates": "Duplicates are recorded and ignored",
    "webhook_out_of_order": "Nothing is applied out of order",
    "webhook_wrong_shop": "its own `[[systems]]` block with",
    "webhook_missed": "`driftwatch webhooks`",
    "webhook_subscription_missing": "`driftwatch webhooks --create`",
    "webhook_subscription_misaddressed": "Driftwatch never deletes subscriptions",
}


@pytest.mark.parametrize(("kind", "title", "evidence"), _every_kind())
async def test_every_webhook_kind_renders_its_evidence_and_advice(
    tmp_path: Path, kind: str, title: str, evidence: list[str]
) -> None:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'render.db'}") as ledger:
        await ledger.upgrade()
        incident, _ = await ledger.open_incident(
            fingerprint=f"webhook:{kind}:shopify",
            kind=kind,
            severity="warning",
            title=title,
            at=T0,
            system="shopify",
            details={"system": "shopify", "evidence": evidence},
        )
    blocks = [b.to_dict() for b in health_blocks(incident)]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert blocks[0]["text"]["text"] == title
    assert sections[0].startswith("*What we saw*\n• ")
    assert evidence[0] in sections[0]
    assert sections[1].startswith("*What to do*\n")
    assert ADVICE[kind] in sections[1]
    assert "resync" not in str(blocks)
