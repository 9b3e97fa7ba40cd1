"""The Shopify connector's catalog of items, held compactly (tuples and bitmasks), answers
as the sets it replaced did: which item to write, at which location, spelled how. And an
item's flags, shared between items, are still each item's own."""

from __future__ import annotations

import pytest
from connector_testing import sample_mapping

from connectors.shopify.catalog import AmbiguousSku, Catalog
from connectors.shopify.items import item_facts


def _gid(kind: str, n: int) -> str:
    return f"gid://shopify/{kind}/{n}"


def test_an_item_stocked_at_many_locations_is_known_at_each_and_no_other() -> None:
    catalog = Catalog()
    places = [_gid("Location", n) for n in range(130)]  # past any fixed-width mask
    catalog.add_item("TEE", _gid("InventoryItem", 1), "TEE")
    for gid in places[::2]:
        catalog.add_level(_gid("InventoryItem", 1), gid)
    catalog.add_item("MUG", _gid("InventoryItem", 2), "MUG")
    for gid in places[1::2]:
        catalog.add_level(_gid("InventoryItem", 2), gid)

    assert catalog.locations_of(_gid("InventoryItem", 1)) == places[::2]
    assert catalog.is_stocked(_gid("InventoryItem", 2), places[129])
    assert not catalog.is_stocked(_gid("InventoryItem", 2), places[128])
    assert not catalog.is_stocked(_gid("InventoryItem", 2), _gid("Location", 999))
    assert catalog.item_for("shopify", "MUG", places[127], "loc127") == _gid("InventoryItem", 2)


def test_two_items_of_one_sku_are_told_apart_by_location_or_refused() -> None:
    catalog = Catalog()
    east, west, north = (_gid("Location", n) for n in (1, 2, 3))
    a, b = _gid("InventoryItem", 1), _gid("InventoryItem", 2)
    catalog.add_item("DUP", a, "DUP")
    catalog.add_level(a, east)
    catalog.add_item("DUP", b, "DUP")
    catalog.add_level(b, west)
    catalog.add_item("DUP", a, "DUP")  # the same item met again: still two items

    assert catalog.items["DUP"] == (a, b)
    assert catalog.item_for("shopify", "DUP", east, "east") == a
    assert catalog.item_for("shopify", "DUP", west, "west") == b
    with pytest.raises(AmbiguousSku, match="2 inventory items with SKU DUP"):
        catalog.item_for("shopify", "DUP", north, "north")
    with pytest.raises(KeyError, match="NONE is not in shopify"):
        catalog.item_for("shopify", "NONE", east, "east")


@pytest.mark.parametrize("first", ["TEE-BLK-M", "tee-blk-m "])
def test_every_spelling_of_a_sku_is_kept_in_whichever_order_met(first: str) -> None:
    catalog = Catalog()
    other = "tee-blk-m " if first == "TEE-BLK-M" else "TEE-BLK-M"
    catalog.add_item("TEE-BLK-M", _gid("InventoryItem", 1), first)
    catalog.add_item("TEE-BLK-M", _gid("InventoryItem", 2), other)
    catalog.add_item("MUG", _gid("InventoryItem", 3), "MUG")
    catalog.add_item("CUP", _gid("InventoryItem", 4), "")  # no spelling given: the SKU

    assert catalog.spellings_of("TEE-BLK-M") == {"TEE-BLK-M", "tee-blk-m "}
    assert catalog.spellings_of("MUG") == {"MUG"}
    assert catalog.spellings_of("CUP") == {"CUP"}
    assert catalog.spellings_of("NEVER-SEEN") == {"NEVER-SEEN"}
    # only the SKU spelled otherwise holds its spellings
    assert set(catalog.spellings) == {"TEE-BLK-M"}


def test_a_read_of_some_skus_replaces_only_theirs() -> None:
    east, west = _gid("Location", 1), _gid("Location", 2)
    old = Catalog()
    old.add_item("TEE", _gid("InventoryItem", 1), "tee")
    old.add_level(_gid("InventoryItem", 1), east)
    old.add_item("MUG", _gid("InventoryItem", 2), "MUG")
    old.add_level(_gid("InventoryItem", 2), east)
    newer = Catalog()
    newer.add_level(_gid("InventoryItem", 9), west)  # west gets bit 1 here, bit 2 in old
    newer.add_item("TEE", _gid("InventoryItem", 5), "TEE")
    newer.add_level(_gid("InventoryItem", 5), west)
    newer.add_level(_gid("InventoryItem", 5), east)

    old.update(newer, ["TEE"])

    assert old.items == {"TEE": (_gid("InventoryItem", 5),), "MUG": (_gid("InventoryItem", 2),)}
    assert sorted(old.locations_of(_gid("InventoryItem", 5))) == [east, west]
    assert old.locations_of(_gid("InventoryItem", 2)) == [east]
    assert old.skus == {_gid("InventoryItem", 5): "TEE", _gid("InventoryItem", 2): "MUG"}
    assert old.spellings_of("TEE") == {"TEE"}  # the lower-case spelling went with its item
    assert old.item_for("shopify", "TEE", west, "west") == _gid("InventoryItem", 5)


def test_an_items_flags_are_what_shopify_said_whatever_it_said() -> None:
    """Flags are shared between items with the same values (a bounded table): however
    many distinct policies arrive, and of whatever type, each item reads its own."""
    mapping = sample_mapping()

    def flags(tracked: object, policy: object) -> dict[str, object]:
        node = {"id": "gid://shopify/InventoryItem/1", "sku": "SKU-1", "tracked": tracked}
        node["variant"] = {"inventoryPolicy": policy}
        facts = item_facts(node, system="shopify", mapping=mapping)
        assert facts is not None
        return dict(facts.flags)

    assert flags(True, "DENY") == {"tracked": True, "inventory_policy": "DENY"}
    assert flags(False, "CONTINUE") == {"tracked": False, "inventory_policy": "CONTINUE"}
    assert flags(None, None) == {"tracked": False}
    assert flags(True, "") == {"tracked": True}
    for n in range(200):  # past the shared table's bound
        assert flags(n % 2 == 0, f"POLICY-{n}") == {
            "tracked": n % 2 == 0,
            "inventory_policy": f"POLICY-{n}",
        }
    odd = {"not": "a string"}  # unhashable: built, never shared
    assert flags(True, odd) == {"tracked": True, "inventory_policy": str(odd)}
    assert flags(True, "DENY") == {"tracked": True, "inventory_policy": "DENY"}
