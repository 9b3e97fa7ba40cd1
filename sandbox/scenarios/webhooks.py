"""Webhooks gone quiet: a subscription deleted, and a secret rotated on one side only."""

from __future__ import annotations

import random

from sandbox.scenarios.model import (
    Expected,
    Scenario,
    Stage,
    erp_catches_up,
    flush,
    later,
    sell_in_step,
)
from sandbox.shopify.webhooks import enum_topic

EAST = "east"
LEVELS_TOPIC = "inventory_levels/update"


async def subscription_deleted(stage: Stage, rng: random.Random) -> None:
    """While tidying the shop's apps someone deletes the ``inventory_levels/update``
    subscription. Scarves keep selling; no level change is announced any more, and
    only the poll sees them."""
    world, sku = stage.world, "SCARF-RED"
    await stage.checkpoint("subscribed")
    await later(stage, 600)
    emitter = world.shopify.webhooks
    for sub in list(emitter.subscriptions.values()):
        if sub.topic == enum_topic(LEVELS_TOPIC):
            emitter.delete_subscription(sub.gid)
    for _ in range(rng.randint(3, 5)):
        await later(stage, rng.randint(120, 420))
        sell_in_step(world, sku, EAST, rng.choice((1, 2)))
        flush(world)
    await stage.settle()
    await erp_catches_up(stage)
    await stage.checkpoint("levels changed with no inventory webhook")


async def secret_rotated(stage: Stage, rng: random.Random) -> None:
    """The app's webhook secret is regenerated in Shopify; the deployment still has the
    old one. Every delivery from then on carries a signature the receiver must refuse,
    and Shopify retries them on its schedule."""
    world, sku = stage.world, "GLOVES-LTH"
    await stage.checkpoint("before the rotation")
    await later(stage, 900)
    emitter = world.shopify.webhooks
    emitter.secret = f"shpss_rotated_{rng.getrandbits(64):016x}"
    for _ in range(rng.randint(3, 4)):
        await later(stage, rng.randint(60, 300))
        sell_in_step(world, sku, EAST, 1)
        flush(world)
    await stage.settle()
    await later(stage, 65)
    await emitter.deliver_due()  # Shopify's first retries: refused again
    await erp_catches_up(stage)
    await stage.checkpoint("deliveries signed with the new secret")


SCENARIOS = (
    Scenario(
        name="webhook-subscription-deleted",
        title="Webhook subscription deleted",
        story=(
            "The inventory_levels/update subscription is deleted; levels keep changing and "
            "no webhook announces them."
        ),
        seed=9,
        skus=("SCARF-RED",),
        expected=(Expected("webhook_subscription_missing", "shopify"),),
        script=subscription_deleted,
    ),
    Scenario(
        name="webhook-secret-rotated",
        title="Webhook secret rotated in Shopify only",
        story=(
            "Shopify signs with a regenerated secret the deployment does not have; every "
            "delivery is refused and retried."
        ),
        seed=10,
        skus=("GLOVES-LTH",),
        expected=(Expected("webhook_signatures_rejected", "shopify"),),
        script=secret_rotated,
    ),
)
