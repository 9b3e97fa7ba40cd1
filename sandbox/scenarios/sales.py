"""Drift born at the storefront: a flash-sale race, returns that never flow back, a
bundle mis-modelled, and a manual edit in Shopify's admin."""

from __future__ import annotations

import random

from sandbox.scenarios.model import (
    Expected,
    Scenario,
    Stage,
    erp_catches_up,
    flush,
    later,
    push_available,
    wms_allocate,
    wms_receive,
    wms_ship,
)
from sandbox.shopify.orders import OutOfStock

EAST = "east"

#: The flash sale: attempts, the window, the WMS's commit batch and its push interval.
SALE_ATTEMPTS = 500
SALE_SECONDS = 300.0
WMS_COMMIT_EVERY = 90.0
WMS_PUSH_EVERY = 20.0


async def flash_sale(stage: Stage, rng: random.Random) -> None:
    """500 checkouts in five minutes for 100 hoodies. Shopify takes each order against
    its own available count; the WMS commits orders in a batch every 90 seconds but pushes
    its pickable count to Shopify every 20 seconds, so each push hands back units that
    are already sold. The storefront keeps selling what is gone."""
    world, sku = stage.world, "HOODIE-DROP"
    await stage.checkpoint("before the sale")
    await later(stage, 600)
    attempts = sorted(rng.uniform(0, SALE_SECONDS) for _ in range(SALE_ATTEMPTS))
    uncommitted: list[int] = []
    elapsed, next_commit, next_push = 0.0, WMS_COMMIT_EVERY, WMS_PUSH_EVERY

    def move_to(t: float) -> None:
        nonlocal elapsed
        stage.clock.advance(t - elapsed)
        elapsed = t

    def commit() -> None:
        for qty in uncommitted:
            wms_allocate(world, sku, EAST, qty)  # what is not pickable stays backordered
        uncommitted.clear()

    for at in attempts:
        while min(next_commit, next_push) <= at:
            if next_commit <= next_push:
                move_to(next_commit)
                commit()
                next_commit += WMS_COMMIT_EVERY
            else:
                move_to(next_push)
                push_available(world, sku, EAST)
                flush(world)
                await stage.settle()  # Shopify's webhooks keep up with the sale
                next_push += WMS_PUSH_EVERY
        move_to(at)
        qty = rng.choice((1, 1, 1, 2))
        try:
            world.shopify.place_order(world.gid(EAST), {sku: qty})
        except OutOfStock:
            continue  # the storefront showed it sold out at this instant
        uncommitted.append(qty)
        flush(world)
    move_to(SALE_SECONDS)
    commit()
    push_available(world, sku, EAST)
    flush(world)
    await stage.settle()
    await later(stage, 30)
    await stage.checkpoint("the sale is over")


async def returns_not_flowing(stage: Stage, rng: random.Random) -> None:
    """Rain jackets sell and ship; days later customers send some back. The returns app
    refunds them in Shopify without restocking (the location is the 3PL's, which
    restocks), the warehouse puts the parcels back on the shelf, and the restock never
    flows back to the storefront: Shopify shows fewer than the shelf holds."""
    world, sku = stage.world, "JACKET-RAIN"
    await stage.checkpoint("before the season")
    orders = []
    for _ in range(6):
        await later(stage, rng.randint(60, 600))
        qty = rng.choice((1, 2))
        order = world.shopify.place_order(world.gid(EAST), {sku: qty})
        wms_allocate(world, sku, EAST, qty)
        world.shopify.fulfill_order(order)
        wms_ship(world, sku, EAST, qty)
        orders.append((order, qty))
        flush(world)
    await erp_catches_up(stage)
    await stage.checkpoint("orders shipped")
    await later(stage, 3 * 3600)
    returned = 0
    for order, qty in rng.sample(orders, 4):
        await later(stage, rng.randint(20, 60))
        world.shopify.refund_order(order, {sku: qty}, restock_type="return", restock=False)
        wms_receive(world, sku, EAST, qty)
        returned += qty
    flush(world)
    await erp_catches_up(stage)  # the ERP imports the warehouse's count: it is in step
    await stage.settle()
    await stage.checkpoint(f"{returned} returned units restocked in the warehouse only")


async def bundle_mismodelled(stage: Stage, rng: random.Random) -> None:
    """The Mug Gift Set is two mugs, but Shopify sells it as an item with a count of its
    own: a set sold deducts the set, not its mugs, and a mug sold alone does not deduct
    the sets. The warehouse picks two mugs per set. Both counts drift from the mugs on
    the shelf, in opposite ways."""
    world, mug, gift = stage.world, "MUG-STONE", "MUG-GIFT-2"
    await stage.checkpoint("before the weekend")
    await later(stage, 1800)
    lines = [gift] * 5 + [mug] * 8
    rng.shuffle(lines)
    per_set = world.bundles[gift][mug]
    for sku in lines:
        await later(stage, rng.randint(10, 30))
        order = world.shopify.place_order(world.gid(EAST), {sku: 1})
        picked = per_set if sku == gift else 1
        wms_allocate(world, mug, EAST, picked)
        world.shopify.fulfill_order(order)
        wms_ship(world, mug, EAST, picked)
        flush(world)
    await erp_catches_up(stage)
    await stage.settle()
    await stage.checkpoint("sets and mugs shipped")


async def manual_override(stage: Stage, rng: random.Random) -> None:
    """A merchandiser types a new count for the navy caps into Shopify's admin (a
    delivery they expect), instead of receiving it in the WMS. The warehouse never
    hears of it; the storefront now sells caps that are not there."""
    world, sku = stage.world, "CAP-NAVY"
    await stage.checkpoint("before the edit")
    await later(stage, 2700)
    typed = world.shopify.quantities(sku, world.gid(EAST))["available"] + rng.choice((18, 20, 24))
    world.shopify.set_quantities(sku, world.gid(EAST), available=typed)
    flush(world)
    await stage.settle()
    await later(stage, 300)
    await stage.checkpoint(f"Shopify's admin set available to {typed}")


async def damaged_on_the_shelf(stage: Stage, rng: random.Random) -> None:
    """A picker finds a few bottles dented on the shelf and moves them to damaged in the
    WMS. Nothing tells the storefront: Shopify keeps offering bottles the warehouse
    cannot ship. The gap is a few units, on a plain SKU, and lowering a count is the
    safe direction, so a policy that may resync small drifts fixes it on its own."""
    world, sku = stage.world, "BOTTLE-STEEL"
    await stage.checkpoint("before the shift")
    await later(stage, 1500)
    level = world.wms.level(sku, world.warehouse(EAST))
    dented = 3  # just over the default threshold of 2 units, within a policy's 3
    world.wms.set_level(
        sku, level.warehouse, pickable=level.pickable - dented, damaged=level.damaged + dented
    )
    await erp_catches_up(stage)  # the ERP imports the warehouse's good stock: in step
    await stage.settle()
    await later(stage, 600)
    await stage.checkpoint(f"{dented} bottles moved to damaged in the WMS only")


SCENARIOS = (
    Scenario(
        name="flash-sale-race",
        title="Flash-sale race: 500 orders in five minutes for 100 units",
        story=(
            "The WMS commits orders in 90-second batches but pushes its pickable count "
            "every 20 s, so the storefront is handed back units already sold and oversells."
        ),
        seed=500,
        skus=("HOODIE-DROP",),
        expected=(
            Expected("oversell_risk", "shopify", "HOODIE-DROP", EAST, "race_in_flight_orders"),
        ),
        script=flash_sale,
    ),
    Scenario(
        name="returns-not-flowing",
        title="Returns not flowing back to the storefront",
        story=(
            "Returned jackets are refunded without restock in Shopify and put back on the "
            "shelf in the WMS; the restock never reaches Shopify."
        ),
        seed=2,
        skus=("JACKET-RAIN",),
        expected=(
            Expected("undersell", "shopify", "JACKET-RAIN", EAST, "returns_damages_not_flowing"),
        ),
        script=returns_not_flowing,
    ),
    Scenario(
        name="bundle-mismodelled",
        title="Bundle mis-modelled: a gift set counted apart from its mugs",
        story=(
            "Shopify counts the two-mug gift set as an item of its own; sets and single "
            "mugs sell, the warehouse picks two mugs per set, and both counts drift."
        ),
        seed=3,
        skus=("MUG-GIFT-2", "MUG-STONE"),
        expected=(
            Expected("oversell_risk", "shopify", "MUG-GIFT-2", EAST, "bundle_math"),
            Expected("oversell_risk", "shopify", "MUG-STONE", EAST, "bundle_math"),
        ),
        script=bundle_mismodelled,
    ),
    Scenario(
        name="manual-storefront-override",
        title="Manual storefront override in Shopify's admin",
        story=(
            "A merchandiser types a new cap count into Shopify instead of receiving stock "
            "in the WMS; no order or refund explains the change."
        ),
        seed=4,
        skus=("CAP-NAVY",),
        expected=(
            Expected("oversell_risk", "shopify", "CAP-NAVY", EAST, "manual_storefront_override"),
        ),
        script=manual_override,
    ),
    Scenario(
        name="damaged-on-the-shelf",
        title="Damaged on the shelf: a small gap the policy fixes on its own",
        story=(
            "A picker moves dented bottles to damaged in the WMS; Shopify still offers "
            "them. A few units, a plain SKU, lowering: the auto-resync policy writes it."
        ),
        seed=11,
        skus=("BOTTLE-STEEL",),
        expected=(
            Expected(
                "oversell_risk",
                "shopify",
                "BOTTLE-STEEL",
                EAST,
                "returns_damages_not_flowing",
                auto_resync=True,
            ),
        ),
        script=damaged_on_the_shelf,
    ),
)
