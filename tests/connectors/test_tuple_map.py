"""Levels keep their quantities and references as TupleMaps (a full read holds millions):
whatever the keys, a TupleMap reads exactly as the dict of the same pairs would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from connector_testing import TableMapping
from hypothesis import given
from hypothesis import strategies as st

from connectors.levels import Level, TupleMap, build_level, tuple_map
from connectors.shopify.items import ItemFacts, level_of

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
        level = level_of(facts, node, system="shopify", mapping=mapping, observed_at=now)
        assert level.quantities == {"available": 4 * pack, "committed": 1 * pack}
        assert level.refs == {
            "inventory_item_id": "gid://shopify/InventoryItem/9",
            "location_id": "gid://shopify/Location/1",
            "sku": sku,
        }
        assert level.changed_at == datetime(2026, 12, 1, 10, tzinfo=UTC)


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
