"""Items and the ids other systems give them."""

from __future__ import annotations

import pytest
from ledger_testing import T0, at, obs

from ledger import InvalidArgument, Ledger

GID_1 = "gid://shopify/InventoryItem/1"
GID_2 = "gid://shopify/InventoryItem/2"


async def test_an_item_is_created_with_its_ids(ledger: Ledger) -> None:
    item = await ledger.upsert_item(
        "TEE-BLK-M", "shopify", GID_1, title="Tee", tags=["tees"], at=T0
    )
    assert (item.sku, item.title, item.tags, item.created_at) == ("TEE-BLK-M", "Tee", ("tees",), T0)
    await ledger.upsert_item("TEE-BLK-M", "wms", "W-77")
    assert await ledger.item_ids("TEE-BLK-M") == {"shopify": GID_1, "wms": "W-77"}
    assert await ledger.sku_for_external_id("shopify", GID_1) == "TEE-BLK-M"


async def test_upserting_again_updates_only_what_is_given(ledger: Ledger) -> None:
    await ledger.upsert_item("TEE-BLK-M", "shopify", GID_1, title="Tee", tags=["tees"], at=T0)
    item = await ledger.upsert_item("TEE-BLK-M", "shopify", GID_2, at=at(5))
    assert (item.title, item.tags, item.created_at) == ("Tee", ("tees",), T0)
    assert item.ids == {"shopify": GID_2}  # one id per (sku, system)
    item = await ledger.upsert_item("TEE-BLK-M", "shopify", GID_2, title="Black tee", tags=[])
    assert (item.title, item.tags) == ("Black tee", ())


async def test_an_external_id_moves_to_a_renamed_sku(ledger: Ledger) -> None:
    await ledger.upsert_item("OLD-SKU", "shopify", GID_1)
    await ledger.upsert_item("NEW-SKU", "shopify", GID_1)
    assert await ledger.item_ids("OLD-SKU") == {}
    assert await ledger.item_ids("NEW-SKU") == {"shopify": GID_1}
    assert await ledger.sku_for_external_id("shopify", GID_1) == "NEW-SKU"


async def test_unknown_items(ledger: Ledger) -> None:
    assert await ledger.get_item("NOPE") is None
    assert await ledger.item_ids("NOPE") == {}
    assert await ledger.sku_for_external_id("shopify", GID_1) is None


async def test_skus_are_stripped_and_must_not_be_empty(ledger: Ledger) -> None:
    item = await ledger.upsert_item("  TEE-BLK-M ", "shopify", GID_1)
    assert item.sku == "TEE-BLK-M"
    with pytest.raises(InvalidArgument, match="sku"):
        await ledger.upsert_item("  ", "shopify", GID_2)


async def test_a_sku_is_known_as_an_item_or_by_a_level(ledger: Ledger) -> None:
    await ledger.upsert_item("TEE-BLK-M", "shopify", GID_1, at=T0)
    await ledger.record_levels([obs(4, sku="MUG-STONE", system="wms", state="on_hand")])
    assert await ledger.is_known_sku("TEE-BLK-M")
    assert await ledger.is_known_sku("MUG-STONE")
    assert not await ledger.is_known_sku("MUG-STON")
    assert await ledger.known_skus() == ["MUG-STONE", "TEE-BLK-M"]
