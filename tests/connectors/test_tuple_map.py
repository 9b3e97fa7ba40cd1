"""Levels keep their quantities and references as TupleMaps (a full read holds millions):
whatever the keys, a TupleMap reads exactly as the dict of the same pairs would."""

from __future__ import annotations

import copy
import json
import pickle
import struct
import sys
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest
from connector_testing import TableMapping
from hypothesis import given
from hypothesis import strategies as st

from connectors import levels
from connectors.levels import Level, TupleMap, build_level, map_type, tuple_map
from connectors.shopify.items import ItemFacts, LevelReader

#: state names as systems send them, and strings nobody planned for
KEYS = st.one_of(
    st.sampled_from(["available", "on_hand", "committed", "incoming", "sku", "file"]),
    st.text(max_size=12),
)
PAIRS = st.lists(st.tuples(KEYS, st.integers()), max_size=10)


@given(PAIRS, KEYS)
def test_a_tuple_map_reads_as_the_dict_of_its_pairs(
    pairs: list[tuple[str, int]], other: str
) -> None:
    expected = dict(pairs)
    got = tuple_map([k for k, _ in pairs], [v for _, v in pairs])
    assert got == expected
    assert expected == got
    assert list(got) == list(expected)
    assert list(got.items()) == list(expected.items())
    assert list(got.values()) == list(expected.values())
    assert len(got) == len(expected)
    for key in [*expected, other]:
        assert (key in got) == (key in expected)
        assert got.get(key) == expected.get(key)
        assert got.get(key, -1) == expected.get(key, -1)
        if key in expected:
            assert got[key] == expected[key]
        else:
            with pytest.raises(KeyError):
                got[key]


def test_keys_that_are_not_strings_become_strings_and_a_repeat_keeps_the_last() -> None:
    # keys come from outside (JSON): 5 and "5" are one state, as str() spells them
    got = tuple_map([5, "5", None], [1, 2, 3])  # type: ignore[list-item]
    assert got == {"5": 2, "None": 3}


@pytest.fixture
def own_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that fills the shared key table does it in a table of its own: the maps
    other tests build (in this process) keep their shared keys."""
    monkeypatch.setattr(levels, "_SHARED_KEYS", {})


@pytest.mark.usefixtures("own_table")
def test_many_distinct_key_sets_stay_correct_past_the_shared_table() -> None:
    maps = [tuple_map([f"state-{i}", "available"], [i, -i]) for i in range(5_000)]
    assert all(m == {f"state-{i}": i, "available": -i} for i, m in enumerate(maps))


def test_keys_and_values_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 keys for 1 values"):
        TupleMap(("a", "b"), (1,))
    with pytest.raises(ValueError, match="3 keys for 2 values"):
        tuple_map(["a", "b", "a"], [1, 2])


def test_a_shopify_level_reads_its_quantities_as_shopify_sent_them(mapping: TableMapping) -> None:
    """Unreported states (quantity null) are left out, a repeated name keeps its last
    quantity, and the pack size multiplies every count."""
    node = {
        "location": {"id": "gid://shopify/Location/1"},
        "quantities": [
            {"name": "available", "quantity": 3},
            {"name": "incoming", "quantity": None},
            {"name": "committed", "quantity": 1},
            {"name": "available", "quantity": 4},
        ],
        "updatedAt": "2026-12-01T10:00:00Z",
    }
    now = datetime(2026, 12, 1, 11, tzinfo=UTC)
    for sku, pack in (("SKU-1", 1), ("CASE-1", 12)):
        facts = ItemFacts("gid://shopify/InventoryItem/9", sku, pack, {"tracked": True}, sku)
        level = LevelReader("shopify", mapping)(facts, node, now)
        assert level.quantities == {"available": 4 * pack, "committed": 1 * pack}
        assert level.refs == {
            "inventory_item_id": "gid://shopify/InventoryItem/9",
            "location_id": "gid://shopify/Location/1",
            "sku": sku,
        }
        assert level.changed_at == datetime(2026, 12, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize("value", [True, 2.5, 3.0, "5", [1], {"n": 1}])
def test_a_shopify_quantity_that_is_not_an_int_is_refused_by_name(
    mapping: TableMapping, value: object
) -> None:
    """Shopify's schema says ``quantity: Int``: anything else is a misshapen answer (the
    connector reports it as one), never read as the count it might have meant."""
    node = {
        "location": {"id": "gid://shopify/Location/1"},
        "quantities": [
            {"name": "available", "quantity": 3},
            {"name": "on_hand", "quantity": value},
        ],
    }
    facts = ItemFacts("gid://shopify/InventoryItem/9", "SKU-1", 1, {}, "SKU-1")
    reader = LevelReader("shopify", mapping)
    now = datetime(2026, 12, 1, 11, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"the quantity of 'on_hand' is .*, not an Int"):
        reader(facts, node, now)
    # the reader goes on: the next level is read, its location already known
    node["quantities"] = [{"name": "available", "quantity": 3}, {"name": "on_hand"}]
    assert reader(facts, node, now).quantities == {"available": 3}


def test_build_level_is_the_level_its_keywords_name() -> None:
    """The connectors' fast constructor puts every field where ``Level(...)`` would."""
    fields: dict[str, Any] = {
        "system": "wms",
        "sku": "SKU-1",
        "location": "east",
        "quantities": tuple_map(["on_hand"], [4]),
        "observed_at": datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        "changed_at": datetime(2026, 11, 1, 8, 0, tzinfo=UTC),
        "source": "bulk",
        "refs": TupleMap(("sku",), ("sku-1",)),
        "flags": {"tracked": True},
    }
    built = build_level(**fields)
    assert type(built) is Level
    assert built == Level(**fields)
    assert {name: getattr(built, name) for name in fields} == fields
    assert build_level(**{k: fields[k] for k in list(fields)[:5]}) == Level(
        **{k: fields[k] for k in list(fields)[:5]}
    )


def test_a_tuple_map_is_no_bigger_than_the_tuple_of_its_values() -> None:
    """The point of it: 1.5 million levels each hold two (issue 16). A map is one
    allocation: a tuple subclass's (one spare slot, as CPython allocates subclasses), not
    an object holding a tuple (48 bytes more)."""
    keys, values = ["available", "on_hand"], (3, 4)
    tuple_map(keys, values)  # the key tuple's class made before counting
    tracemalloc.start()
    try:
        maps = [tuple_map(keys, values) for _ in range(1_000)]
        per_map = (tracemalloc.get_traced_memory()[0] - sys.getsizeof(maps)) / len(maps)
    finally:
        tracemalloc.stop()
    assert round(per_map) <= sys.getsizeof(values) + struct.calcsize("P")  # and the spare slot


def test_a_tuple_map_is_a_mapping_not_a_tuple_of_its_values() -> None:
    got = tuple_map(["a", "b"], [1, 2])
    assert got != (1, 2)
    assert got != (1, 2)
    assert got == tuple_map(["b", "a"], [2, 1])  # a mapping: the order of keys is no matter
    assert got != tuple_map(["a", "b"], [1, 3])
    with pytest.raises(TypeError):
        hash(got)
    with pytest.raises(TypeError):
        got < got  # noqa: B015 (the comparison is what must raise)
    with pytest.raises(KeyError):
        got[0]  # type: ignore[index]
    assert dict(got) == {"a": 1, "b": 2}
    assert json.dumps(dict(got)) == '{"a": 1, "b": 2}'


@pytest.mark.usefixtures("own_table")
@pytest.mark.parametrize("shared", [True, False])
def test_a_tuple_map_survives_pickling_and_copies(shared: bool) -> None:
    """Levels cross to the chart worker's process; copies of either kind read the same."""
    if shared:
        got = tuple_map(["on_hand", "available"], [4, 3])
    else:  # past the shared table's bound: a map that holds its own keys
        for i in range(5_000):
            tuple_map([f"filler-{i}"], [i])
        got = tuple_map(["never-seen-before", "available"], [4, 3])
    for copied in (pickle.loads(pickle.dumps(got)), copy.copy(got), copy.deepcopy(got)):
        assert copied == got == {"on_hand" if shared else "never-seen-before": 4, "available": 3}
        assert isinstance(copied, TupleMap)


def test_map_type_builds_the_maps_tuple_map_would() -> None:
    build = map_type(("location_id", "sku"))
    assert build(("WH-1", "SKU-1")) == tuple_map(["location_id", "sku"], ["WH-1", "SKU-1"])
    with pytest.raises(ValueError, match="2 keys for 1 values"):
        build(("WH-1",))
    with pytest.raises(ValueError, match="distinct strings"):
        map_type(("sku", "sku"))
