"""A bulk file's lines decoded as :class:`BulkLine` structs (the fast path) read exactly
as the same lines decoded as dicts (the general path), whatever shape Shopify or a proxy
gives them; lines that do not fit the struct are read as dicts and fail as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.levels import Level
from connectors.memo import Memo
from connectors.shopify.items import BulkLine, LevelReader, item_facts
from connectors.shopify.jsonl import BulkLines, Made, lines
from monitors.config import config_from_dict

T0 = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
EAST, WEST = "gid://shopify/Location/1", "gid://shopify/Location/2"
MAPPING = config_from_dict(
    {
        "source_of_truth": ["shopify"],
        "systems": [{"name": "shopify", "kind": "shopify", "shop_url": "https://x.test"}],
        "locations": {"east": {"shopify": EAST}, "west": {"shopify": WEST}},
        "pack_sizes": {"shopify": {"skus": {"CASE-1": 12}}},
        "slack": {"alerts_channel": "C0DRIFT01"},
    }
)


def item(num: int, sku: Any = None, **fields: Any) -> dict[str, Any]:
    line = {
        "id": f"gid://shopify/InventoryItem/{num}",
        "sku": f"SKU-{num}" if sku is None else sku,
        "tracked": True,
        "updatedAt": "2026-12-01T00:00:00Z",
        "variant": {"id": f"gid://shopify/ProductVariant/{num}", "inventoryPolicy": "DENY"},
    }
    line.update(fields)
    return line


def level(num: int, where: Any = EAST, **fields: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": f"gid://shopify/InventoryLevel/{num}?inventory_item_id={num}",
        "updatedAt": "2026-12-02T00:00:00Z",
        "location": {"id": where},
        "quantities": [
            {"name": "available", "quantity": num},
            {"name": "on_hand", "quantity": num + 2},
            {"name": "committed", "quantity": 2},
        ],
        "__parentId": f"gid://shopify/InventoryItem/{num}",
    }
    line.update(fields)
    return line


def jsonl(objs: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objs)


def read(data: bytes) -> list[Level]:
    """What a first full read makes of ``data``, fed as one chunk."""
    run = BulkLines(system="shopify", mapping=MAPPING, observed_at=T0, memo=Memo[Made]())
    levels = run.chunk(data, "utf-8")
    run.finish()
    return levels


def by_dicts(data: bytes) -> list[Level]:
    """The oracle: each line through :mod:`json` and the dict readers, one by one."""
    objs = [json.loads(line) for line in data.splitlines() if line.strip()]
    facts = {
        str(o["id"]): item_facts(o, system="shopify", mapping=MAPPING)
        for o in objs
        if "__parentId" not in o
    }
    reader = LevelReader("shopify", MAPPING)
    return [
        reader(f, o, T0)
        for o in objs
        if "__parentId" in o and (f := facts[o["__parentId"]]) is not None
    ]


def everything(levels: list[Level]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            lv.sku,
            lv.location,
            tuple(lv.quantities.items()),
            lv.observed_at,
            lv.changed_at,
            lv.source,
            tuple(lv.refs.items()),
            tuple(lv.flags.items()),
        )
        for lv in levels
    )


ODD_LINES = {
    "a quantity null": [level(1, quantities=[{"name": "available", "quantity": None}]), item(1)],
    "a quantity absent": [
        level(1, quantities=[{"name": "on_hand"}, {"name": "x", "quantity": 4}]),
        item(1),
    ],
    "quantities null": [level(1, quantities=None), item(1)],
    "no quantities": [{k: v for k, v in level(1).items() if k != "quantities"}, item(1)],
    "no quantity at all": [level(1, quantities=[]), item(1)],
    "a huge quantity": [
        level(1, quantities=[{"name": "available", "quantity": 10**30}]),
        item(1),
    ],
    "a state Shopify may add": [
        level(1, quantities=[{"name": "in_transit", "quantity": 3}]),
        item(1),
    ],
    "a location id that is a number": [level(1, where=75310000001), item(1)],
    "an unmapped location": [level(1, where="gid://shopify/Location/99"), item(1)],
    "no updatedAt": [level(1, updatedAt=None), item(1)],
    "variant null": [level(1), item(1, variant=None)],
    "no variant, no tracked": [level(1), {"id": "gid://shopify/InventoryItem/1", "sku": "S-1"}],
    "a policy that is not a string": [level(1), item(1, variant={"inventoryPolicy": 3})],
    "tracked as a string": [level(1), item(1, tracked="yes")],
    "an item without a SKU": [level(1), item(1, sku="")],
    "a SKU that is a number (misshapen)": [level(1), item(1, sku=12345)],
    "hostile SKU": [level(1), item(1, sku="<@U123> *bold* ` '; DROP TABLE levels; -- é 😀")],
    "pack of 12": [level(1), item(1, sku="CASE-1")],
    "fields never asked for": [level(1, extra={"a": [1, 2]}), item(1, more="x")],
    "item before its levels": [item(1), level(1), level(1, where=WEST)],
}


@pytest.mark.parametrize("odd", list(ODD_LINES), ids=list(ODD_LINES))
def test_an_odd_line_reads_as_the_dict_readers_read_it(odd: str) -> None:
    # the odd lines among ordinary ones, in one chunk: the rest still read the same
    data = jsonl([level(7), level(7, where=WEST), item(7), *ODD_LINES[odd], level(8), item(8)])
    try:
        expected = by_dicts(data)
    except Exception as exc:  # misshapen for the dict readers: the same error (the
        with pytest.raises(type(exc)):  # connector reports it as a misshapen answer)
            read(data)
        return
    got = read(data)
    assert everything(got) == everything(expected)
    assert {lv.sku for lv in got} >= {"SKU-7", "SKU-8"}


def test_ordinary_lines_take_the_fast_path_and_odd_ones_the_general_path() -> None:
    plain = jsonl([level(1), item(1)])
    assert [type(o) for o in lines(plain, "shopify", "utf-8")] == [BulkLine, BulkLine]
    # a line msgspec cannot fit (a quantity that is not an Int) sends its chunk to dicts
    odd = jsonl([level(1, quantities=[{"name": "available", "quantity": True}]), item(1)])
    assert [type(o) for o in lines(odd, "shopify", "utf-8")] == [dict, dict]


@pytest.mark.parametrize("value", [True, 2.5, "5", [1], {"n": 1}])
def test_a_quantity_that_is_not_an_int_is_refused_by_name(value: object) -> None:
    data = jsonl(
        [level(1), item(1), level(2, quantities=[{"name": "on_hand", "quantity": value}]), item(2)]
    )
    with pytest.raises(ValueError, match=r"the quantity of 'on_hand' is .*, not an Int"):
        read(data)


@pytest.mark.parametrize(
    ("shape", "error"),
    [
        ({"location": None}, TypeError),
        ({"location": {}}, KeyError),
        ({"location": "east"}, TypeError),
    ],
)
def test_a_level_without_a_location_fails_as_the_dict_reader_fails(
    shape: dict[str, Any], error: type[Exception]
) -> None:
    broken = level(2)
    broken.update(shape)
    with pytest.raises(error):
        read(jsonl([level(1), item(1), broken, item(2)]))
    with pytest.raises(error):
        by_dicts(jsonl([broken, item(2)]))
