"""Drift born in the integration between systems: an ERP batch window, a pack-size
transformation, an out-of-sequence retry, and updates dropped in a 429 storm."""

from __future__ import annotations

import random
import uuid

import httpx

from sandbox.scenarios.model import (
    ERP_SETTLE_SECONDS,
    Expected,
    Scenario,
    Stage,
    erp_catches_up,
    flush,
    later,
    push_available,
    sell_in_step,
    wms_count,
    wms_receive,
)
from sandbox.world import World

EAST = "east"
#: Tries the storefront integration makes before it drops an update (silently).
INTEGRATION_TRIES = 3

SET_AVAILABLE = """
mutation PushAvailable($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}
"""


async def erp_batch_window(stage: Stage, rng: random.Random) -> None:
    """The ERP imports the warehouse's counts in a nightly batch. The next morning the
    grey beanies sell fast, in step between Shopify and the WMS; hours later the ERP
    still has last night's count."""
    world, sku = stage.world, "BEANIE-GRY"
    await later(stage, 1800)  # the night
    await erp_catches_up(stage)
    await stage.checkpoint("after the ERP's nightly import")
    sold = 0
    for _ in range(rng.randint(9, 12)):
        await later(stage, rng.randint(300, 900))
        qty = rng.choice((1, 1, 2))
        sell_in_step(world, sku, EAST, qty)
        sold += qty
        flush(world)
    await stage.settle()
    await later(stage, 600)
    await stage.checkpoint(f"{sold} beanies sold since the ERP's batch")


async def pack_size_mismatch(stage: Stage, rng: random.Random) -> None:
    """The ERP counts cedar candles in cases of 12 and the deployment says so. The
    exporter's middle layer is upgraded and starts writing the count in units; the ERP
    file now says 60 where it meant 5 cases."""
    world, sku = stage.world, "CANDLE-CEDAR"
    await later(stage, 1800)
    await erp_catches_up(stage)
    await stage.checkpoint("cases of 12, as configured")
    await later(stage, rng.randint(3600, 7200))
    world.erp_units[sku] = 1  # the exporter now disaggregates cases into units
    world.export_erp()
    await later(stage, ERP_SETTLE_SECONDS)
    await stage.checkpoint("the upgraded exporter's first drop")


async def out_of_sequence_retry(stage: Stage, rng: random.Random) -> None:
    """A cycle count finds more totes; the integration's push of that count reaches
    Shopify but its answer is lost. A wholesale order then ships, and the newer, lower
    count is pushed. The integration retries the first push and the old count
    overwrites the new one. Shopify's webhooks of the three changes, held up by the
    same network trouble, arrive newest first."""
    world, sku = stage.world, "TOTE-CNVS"
    await stage.checkpoint("in step")
    await later(stage, 1800)
    world.shopify.webhooks.holding = True
    found = rng.randint(5, 8)
    wms_count(world, sku, EAST, world.wms.level(sku, world.warehouse(EAST)).pickable + found)
    counted = world.wms.level(sku, world.warehouse(EAST)).pickable
    push_available(world, sku, EAST)  # applied; the integration never sees the answer
    flush(world)
    await later(stage, 60)
    wholesale = found + rng.randint(4, 6)
    level = world.wms.level(sku, world.warehouse(EAST))
    world.wms.set_level(sku, level.warehouse, on_hand=level.on_hand - wholesale)
    push_available(world, sku, EAST)
    flush(world)
    await later(stage, 60)
    push_available(world, sku, EAST, counted)  # the retry of the first push
    flush(world)
    await later(stage, 240)
    world.shopify.webhooks.holding = False
    world.shopify.webhooks.release(reverse=True)
    await stage.settle()
    await erp_catches_up(stage)
    await stage.checkpoint("after the retry")


async def rate_limit_storm(stage: Stage, rng: random.Random) -> None:
    """A purchase order of wool socks is received in the WMS while another app's bulk
    job keeps Shopify's API answering 429. The integration's push of the new count is
    refused three times and dropped without a word; Driftwatch's own reads are throttled
    too."""
    world, sku = stage.world, "SOCKS-WOOL"
    await stage.checkpoint("before the storm")
    await later(stage, 1200)
    received = rng.choice((24, 36, 48))
    wms_receive(world, sku, EAST, received)
    world.shopify.force_http_429(INTEGRATION_TRIES, retry_after=2.0)
    if await push_over_graphql(world, sku, EAST, stage):
        raise RuntimeError("the storm should have dropped the integration's update")
    await erp_catches_up(stage)  # the ERP reads the WMS, not Shopify: it is in step
    world.shopify.force_http_429(3, retry_after=2.0)  # the storm is still blowing
    await stage.checkpoint(f"{received} socks received; the push to Shopify dropped")
    world.shopify.faults.clear()


async def push_over_graphql(world: World, sku: str, location: str, stage: Stage) -> bool:
    """The storefront integration sets Shopify's available to the WMS's pickable over
    Admin GraphQL, honouring Retry-After on the stage's clock, up to
    :data:`INTEGRATION_TRIES` tries. True if Shopify took it."""
    item = world.shopify.store.item(sku).gid
    count = world.wms.level(sku, world.warehouse(location)).pickable
    variables = {
        "input": {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": "gid://wms-sync/Push/1",
            "quantities": [
                {
                    "inventoryItemId": item,
                    "locationId": world.gid(location),
                    "quantity": count,
                    "changeFromQuantity": None,
                }
            ],
        },
        "key": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sku}@{location}={count}")),
    }
    headers = {"X-Shopify-Access-Token": world.shopify_token}
    async with httpx.AsyncClient(timeout=10.0) as client:
        for _ in range(INTEGRATION_TRIES):
            response = await client.post(
                world.shopify.graphql_url(),
                json={"query": SET_AVAILABLE, "variables": variables},
                headers=headers,
            )
            if response.status_code != 429:
                return response.status_code == 200
            await later(stage, float(response.headers.get("Retry-After", "1")))
    return False


SCENARIOS = (
    Scenario(
        name="erp-batch-window",
        title="ERP batch window: last night's count, this afternoon",
        story=(
            "The ERP imports the warehouse's counts nightly; beanies sell all morning and "
            "the ERP's count is hours behind."
        ),
        seed=5,
        skus=("BEANIE-GRY",),
        expected=(Expected("count_mismatch", "erp", "BEANIE-GRY", EAST, "batch_window"),),
        script=erp_batch_window,
    ),
    Scenario(
        name="pack-size-mismatch",
        title="Pack-size mismatch: cases of 12 exported as units",
        story=(
            "The ERP's exporter starts writing candles in units while the deployment still "
            "reads them as cases of 12."
        ),
        seed=6,
        skus=("CANDLE-CEDAR",),
        expected=(
            Expected("count_mismatch", "erp", "CANDLE-CEDAR", EAST, "pack_size_transformation"),
        ),
        script=pack_size_mismatch,
    ),
    Scenario(
        name="out-of-sequence-retry",
        title="Out-of-sequence retry overwrites a newer count",
        story=(
            "A push whose answer was lost is retried after a newer count was pushed, and "
            "the old count wins; Shopify's webhooks arrive newest first."
        ),
        seed=7,
        skus=("TOTE-CNVS",),
        expected=(
            Expected("oversell_risk", "shopify", "TOTE-CNVS", EAST, "out_of_sequence_retry"),
        ),
        script=out_of_sequence_retry,
    ),
    Scenario(
        name="rate-limit-storm",
        title="429 storm: a stock update dropped under rate limiting",
        story=(
            "Another app's bulk job saturates Shopify's API; the integration's push of a "
            "received purchase order gets 429 three times and is dropped silently."
        ),
        seed=8,
        skus=("SOCKS-WOOL",),
        expected=(Expected("undersell", "shopify", "SOCKS-WOOL", EAST, "rate_limit_drops"),),
        script=rate_limit_storm,
    ),
)
