"""The memo of a full read's lines: a read that takes unchanged lines from it reads exactly
what a read decoding every line reads, whatever changed, in whatever order and however
the network cuts the file."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.errors import ResponseError
from connectors.levels import Level, build_level, observed_again, tuple_map
from connectors.memo import Memo, hashes
from connectors.shopify.catalog import Catalog
from connectors.shopify.jsonl import BulkLines, Made
from monitors.config import Config, config_from_dict

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
LOCATIONS = ("gid://shopify/Location/1", "gid://shopify/Location/2", "gid://shopify/Location/3")


def config() -> Config:
    return config_from_dict(
        {
            "source_of_truth": ["shopify"],
            "systems": [{"name": "shopify", "kind": "shopify", "shop_url": "https://x.test"}],
            "locations": {"east": {"shopify": LOCATIONS[0]}, "west": {"shopify": LOCATIONS[1]}},
            "skus": {"aliases": {"OLD-1": "SKU-1"}},
            "pack_sizes": {"shopify": {"skus": {"CASE-1": 12}}},
            "slack": {"alerts_channel": "C0DRIFT01"},
        }
    )


MAPPING = config()


# -- the memo itself ---------------------------------------------------------------------
def test_the_memo_gives_what_the_last_complete_read_kept_once() -> None:
    memo: Memo[str] = Memo()
    pieces = [b"a", b"b", b"c"]
    assert memo.take(hashes(pieces)) == [None, None, None]
    memo.keep(hashes(pieces), ["A", None, "C"])  # None: nothing to keep for b
    assert memo.take(hashes(pieces)) == [None, None, None], "kept is not found before commit"
    memo.commit()
    assert len(memo) == 2
    assert memo.take(hashes([b"c", b"b", b"x"])) == ["C", None, None]
    # taken: this read keeps what it makes of c instead (the last read's C can go)
    assert memo.take(hashes([b"c", b"a"])) == [None, "A"]
    assert len(memo) == 0


def test_a_read_that_does_not_complete_leaves_the_memo_less_what_it_took() -> None:
    memo: Memo[str] = Memo()
    memo.keep(hashes([b"a", b"b"]), ["A", "B"])
    memo.commit()
    assert memo.take(hashes([b"a"])) == ["A"]
    memo.keep(hashes([b"a", b"z"]), ["A2", "Z"])
    memo.discard()
    assert memo.take(hashes([b"b", b"z", b"a"])) == ["B", None, None]
    memo.keep(hashes([b"q"]), ["Q"])
    memo.commit()
    memo.clear()
    assert memo.take(hashes([b"q"])) == [None]


def test_a_piece_met_twice_in_one_read_is_kept_for_neither() -> None:
    memo: Memo[str] = Memo()
    memo.keep(hashes([b"a", b"b", b"a"]), ["A1", "B", "A2"])
    memo.commit()
    assert memo.take(hashes([b"a", b"b"])) == [None, "B"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=st.lists(st.integers(0, 30), max_size=40),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["keep", "drop", "insert", "replace", "swap"]), st.integers(0, 60)
        ),
        max_size=12,
    ),
    cuts=st.lists(st.integers(1, 9), min_size=1, max_size=6),
    nothing=st.sets(st.integers(0, 30), max_size=5),
)
def test_taking_in_batches_gives_what_looking_each_piece_up_gives(
    before: list[int], edits: list[tuple[str, int]], cuts: list[int], nothing: set[int]
) -> None:
    """The memo compares a batch with where the last read was first and looks up only
    what differs: whatever a later read inserted, dropped, replaced or moved, and however
    its batches are cut, each piece is what a plain lookup gives (what the last read
    made of it, if it met it once and made something; once)."""
    pieces = [f"p{n}".encode() for n in before]
    memo: Memo[str] = Memo()
    memo.keep(hashes(pieces), [None if n in nothing else f"made-{n}" for n in before])
    memo.commit()
    counts = {n: before.count(n) for n in before}
    available = {n: f"made-{n}" for n in before if counts[n] == 1 and n not in nothing}
    later = list(before)
    for kind, at in edits:
        spot = at % (len(later) + 1)
        if kind == "drop" and later:
            del later[spot % len(later)]
        elif kind == "insert":
            later.insert(spot, 100 + at)
        elif kind == "replace" and later:
            later[spot % len(later)] = 200 + at
        elif kind == "swap" and len(later) > 1:
            i, j = spot % len(later), (spot + 1) % len(later)
            later[i], later[j] = later[j], later[i]
    expected = [available.pop(n, None) for n in later]
    got: list[str | None] = []
    rest, sizes = list(later), itertools.cycle(cuts)
    while rest:
        size = next(sizes)
        batch, rest = rest[:size], rest[size:]
        got.extend(memo.take(hashes([f"p{n}".encode() for n in batch])))
    assert got == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(st.integers(0, 20), max_size=30),
    moves=st.lists(
        st.tuples(st.sampled_from(["same", "shuffle", "replace", "grow"]), st.integers(0, 99)),
        min_size=1,
        max_size=5,
    ),
)
def test_read_after_read_each_finds_what_the_last_complete_one_made(
    first: list[int], moves: list[tuple[str, int]]
) -> None:
    """Commits one after another (of the same length, the same pieces moved, some
    replaced, more of them): each read finds what the last complete read made of each
    piece it met once, and nothing else."""
    memo: Memo[str] = Memo()
    last: dict[int, str] = {}
    read = list(first)
    for n, (kind, seed) in enumerate(moves):
        if kind == "shuffle":
            read = read[seed % max(1, len(read)) :] + read[: seed % max(1, len(read))]
        elif kind == "replace" and read:  # a piece no read had (a piece met twice in
            read[seed % len(read)] = 1000 * n + 100 + seed  # one read is another test's)
        elif kind == "grow":
            read = [*read, 1000 * n + 500 + seed]
        keys = hashes([f"p{x}".encode() for x in read])
        expected = [last.pop(x, None) for x in read]
        assert memo.take(keys) == expected
        made = [f"read-{n}-{x}" for x in read]
        memo.keep(keys, made)
        memo.commit()
        last = {x: m for x, m in zip(read, made, strict=True) if read.count(x) == 1}


def test_keep_refuses_a_count_that_does_not_match() -> None:
    memo: Memo[str] = Memo()
    with pytest.raises(ValueError, match="2 things made for 1 pieces"):
        memo.keep(np.array([1], np.int64), ["a", "b"])


def test_a_level_observed_again_is_the_same_level_at_the_new_time() -> None:
    level = build_level(
        system="wms",
        sku="SKU-1",
        location="east",
        quantities=tuple_map(("on_hand",), (4,)),
        observed_at=T0,
        changed_at=T0 - timedelta(days=1),
        refs=tuple_map(("sku",), ("sku-1",)),
    )
    later = T0 + timedelta(hours=5)
    again = observed_again(later, level)
    assert type(again) is Level
    assert again == level._replace(observed_at=later)
    assert again.quantities is level.quantities
    assert again.refs is level.refs


# -- a bulk result's lines ---------------------------------------------------------------
def item_line(
    num: int, sku: str | None, tracked: bool = True, policy: str = "DENY"
) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/InventoryItem/{num}",
        "sku": sku,
        "tracked": tracked,
        "updatedAt": "2026-12-01T00:00:00Z",
        "variant": {"id": f"gid://shopify/ProductVariant/{num}", "inventoryPolicy": policy},
    }


def level_line(num: int, location: int, available: int, on_hand: int) -> dict[str, Any]:
    return {
        "id": f"gid://shopify/InventoryLevel/{location}?inventory_item_id={num}",
        "updatedAt": "2026-12-02T00:00:00Z",
        "location": {"id": LOCATIONS[location]},
        "quantities": [
            {"name": "available", "quantity": available},
            {"name": "on_hand", "quantity": on_hand},
        ],
        "__parentId": f"gid://shopify/InventoryItem/{num}",
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)


def read(
    data: bytes, memo: Memo[Made], at: datetime, cuts: list[int] | None = None
) -> tuple[list[Level], Catalog]:
    """The levels and catalog of one read of ``data`` cut into chunks of whole lines at
    the given line numbers (as the network delivers them)."""
    catalog = Catalog()
    lines = data.splitlines(keepends=True)
    bounds = sorted({0, len(lines), *(c % (len(lines) + 1) for c in cuts or [])})
    run = BulkLines(system="shopify", mapping=MAPPING, observed_at=at, memo=memo, catalog=catalog)
    levels: list[Level] = []
    for start, end in itertools.pairwise(bounds):
        if end > start:
            levels.extend(run.chunk(b"".join(lines[start:end]), "utf-8"))
    run.finish()
    return levels, catalog


def everything(levels: list[Level]) -> list[tuple[Any, ...]]:
    """All a level says (observed_at included), in a comparable order."""
    return sorted(
        (
            lv.system,
            lv.sku,
            lv.location,
            tuple(sorted(lv.quantities.items())),
            lv.observed_at,
            lv.changed_at,
            lv.source,
            tuple(sorted(lv.refs.items())),
            tuple(sorted(lv.flags.items())),
        )
        for lv in levels
    )


def catalog_of(catalog: Catalog) -> tuple[Any, ...]:
    return (
        catalog.items,
        catalog.spellings,
        catalog.skus,
        {item: sorted(catalog.locations_of(item)) for item in catalog.stocked},
    )


def shop_lines(shop: dict[int, dict[str, Any]], items_first: bool) -> list[dict[str, Any]]:
    """The file's lines: each item's levels after it, or (as Shopify writes them since
    2026-01, ungrouped) before it."""
    out: list[dict[str, Any]] = []
    for num, item in sorted(shop.items()):
        levels = [level_line(num, loc, *q) for loc, q in sorted(item["levels"].items())]
        head = item_line(num, item["sku"], item["tracked"], item["policy"])
        out.extend([head, *levels] if items_first else [*levels, head])
    return out


SKUS = st.sampled_from(["SKU-1", "sku-1 ", "OLD-1", "CASE-1", "SKU-2", "SKU-3", "", "é😀\u2028"])
ITEM = st.fixed_dictionaries(
    {
        "sku": st.one_of(st.none(), SKUS),
        "tracked": st.booleans(),
        "policy": st.sampled_from(["DENY", "CONTINUE"]),
        "levels": st.dictionaries(
            st.integers(0, 2), st.tuples(st.integers(-3, 50), st.integers(0, 60)), max_size=3
        ),
    }
)
SHOP = st.dictionaries(st.integers(1, 12), ITEM, max_size=8)


CHANGES = st.sampled_from(["keep", "keep", "rename", "track", "policy", "move", "drop"])


def changed(item: dict[str, Any], change: str, sku: str | None) -> dict[str, Any] | None:
    """``item`` after one change: its SKU, a flag, one level's quantities, or gone."""
    if change == "drop":
        return None
    item = {**item, "levels": dict(item["levels"])}
    if change == "rename":
        item["sku"] = sku
    elif change == "track":
        item["tracked"] = not item["tracked"]
    elif change == "policy":
        item["policy"] = "CONTINUE" if item["policy"] == "DENY" else "DENY"
    elif change == "move" and item["levels"]:
        location = min(item["levels"])
        available, on_hand = item["levels"][location]
        item["levels"][location] = (available - 1, on_hand)
    return item


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=SHOP,
    changes=st.lists(st.tuples(CHANGES, st.one_of(st.none(), SKUS)), min_size=12, max_size=12),
    added=SHOP,
    items_first=st.booleans(),
    cuts=st.lists(st.integers(0, 60), max_size=4),
)
def test_a_read_from_the_memo_reads_what_decoding_every_line_reads(
    before: dict[int, dict[str, Any]],
    changes: list[tuple[str, str | None]],
    added: dict[int, dict[str, Any]],
    items_first: bool,
    cuts: list[int],
) -> None:
    # between two reads each item is kept as it was, renamed, has a flag flipped or a
    # level moved, or is gone; new items come (numbered after the first read's)
    second: dict[int, dict[str, Any]] = {}
    for num, item in before.items():
        change, sku = changes[num - 1]
        after = changed(item, change, sku)
        if after is not None:
            second[num] = after
    second.update({num + 100: item for num, item in added.items()})
    memo: Memo[Made] = Memo()
    first_levels, _ = read(jsonl(shop_lines(before, items_first)), memo, T0, cuts)
    later = T0 + timedelta(hours=5)
    data = jsonl(shop_lines(second, items_first))
    levels, catalog = read(data, memo, later, cuts)
    fresh_levels, fresh_catalog = read(data, Memo(), later)
    assert everything(levels) == everything(fresh_levels)
    assert in_order(levels) == in_order(fresh_levels)
    assert catalog_of(catalog) == catalog_of(fresh_catalog)
    # a level whose line and item line are unchanged was not built again
    kept = {num for num in before if changes[num - 1][0] == "keep"}
    unchanged = {
        (lv.refs["inventory_item_id"], lv.location): lv.quantities
        for lv in first_levels
        if int(lv.refs["inventory_item_id"].rsplit("/", 1)[1]) in kept
    }
    for lv in levels:
        known = unchanged.get((lv.refs["inventory_item_id"], lv.location))
        if known is not None:
            assert lv.quantities is known, "an unchanged line was decoded again"
    # a third read of the same file, nothing changed, takes every level from the memo
    # (whole items at a time where a chunk holds them), in the same order
    third, third_catalog = read(data, memo, later + timedelta(hours=3), cuts)
    assert everything(third) == everything(
        [lv._replace(observed_at=later + timedelta(hours=3)) for lv in fresh_levels]
    )
    assert in_order(third) == in_order(fresh_levels)
    assert catalog_of(third_catalog) == catalog_of(fresh_catalog)
    assert all(
        a.quantities is b.quantities
        for a, b in zip(sorted_levels(third), sorted_levels(levels), strict=True)
    )


def in_order(levels: list[Level]) -> list[tuple[str, str]]:
    return [(lv.refs["inventory_item_id"], lv.location) for lv in levels]


@pytest.mark.parametrize("cuts", [[], [3], [5, 9]])
def test_items_whose_lines_are_not_each_levels_then_item_are_read_line_by_line(
    cuts: list[int],
) -> None:
    # a level of item 2 among item 1's, an item met twice, an item without a SKU, an
    # item whose levels come after it: what a read decoding every line reads, in order
    lines = [
        level_line(1, 0, 5, 9),
        level_line(2, 0, 1, 1),
        level_line(1, 1, 2, 2),
        item_line(1, "SKU-1"),
        item_line(2, "SKU-2"),
        level_line(3, 0, 4, 4),
        item_line(3, None),
        level_line(4, 0, 3, 3),
        item_line(4, "SKU-4"),
        level_line(4, 1, 6, 6),
        item_line(4, "SKU-4"),
        item_line(5, "SKU-5"),
        level_line(5, 2, 7, 7),
        level_line(6, 0, 8, 8),
        level_line(6, 1, 9, 9),
        item_line(6, "CASE-1"),
    ]
    data = jsonl(lines)
    memo: Memo[Made] = Memo()
    read(data, memo, T0, cuts)
    for hours in (5, 8):
        at = T0 + timedelta(hours=hours)
        again, catalog = read(data, memo, at, cuts)
        fresh, fresh_catalog = read(data, Memo(), at, cuts)
        assert everything(again) == everything(fresh)
        assert in_order(again) == in_order(fresh)
        assert catalog_of(catalog) == catalog_of(fresh_catalog)
        assert len(again) == 8


def sorted_levels(levels: list[Level]) -> list[Level]:
    return sorted(levels, key=lambda lv: (lv.refs["inventory_item_id"], lv.location))


def test_a_level_whose_item_was_renamed_takes_the_new_sku() -> None:
    memo: Memo[Made] = Memo()
    levels = [level_line(1, 0, 5, 9), level_line(1, 1, 2, 2)]
    read(jsonl([*levels, item_line(1, "SKU-1")]), memo, T0)
    renamed, _ = read(jsonl([*levels, item_line(1, "SKU-9", tracked=False)]), memo, T0)
    assert {(lv.sku, lv.refs["sku"], lv.flags["tracked"]) for lv in renamed} == {
        ("SKU-9", "SKU-9", False)
    }
    # its levels were decoded again; the memo now holds them under the new SKU
    again, _ = read(jsonl([*levels, item_line(1, "SKU-9", tracked=False)]), memo, T0)
    assert everything(again) == everything(renamed)


@pytest.mark.parametrize("items_first", [False, True])
def test_a_level_whose_item_is_spelled_otherwise_takes_the_new_spelling(
    items_first: bool,
) -> None:
    # OLD-1 is an alias of SKU-1: the same Driftwatch SKU, flags and lines of levels, but
    # writes and searches must now use Shopify's new spelling
    memo: Memo[Made] = Memo()
    levels = [level_line(1, 0, 5, 9), level_line(1, 1, 2, 2), level_line(1, 2, 0, 0)]
    for spelling in ("SKU-1", "OLD-1", "OLD-1", "SKU-1"):
        item = item_line(1, spelling)
        lines = [item, *levels] if items_first else [*levels, item]
        found, catalog = read(jsonl(lines), memo, T0)
        assert {(lv.sku, lv.refs["sku"]) for lv in found} == {("SKU-1", spelling)}
        assert len(found) == 3
        assert catalog.spellings_of("SKU-1") == {spelling}
        assert sorted(catalog.locations_of("gid://shopify/InventoryItem/1")) == list(LOCATIONS)


def test_a_level_without_its_item_fails_the_read_and_the_memo_keeps_the_rest() -> None:
    memo: Memo[Made] = Memo()
    whole = [level_line(1, 0, 5, 9), item_line(1, "SKU-1"), level_line(3, 1, 2, 2)]
    whole.append(item_line(3, "SKU-3"))
    first, _ = read(jsonl(whole), memo, T0, cuts=[2])
    with pytest.raises(
        ResponseError, match="1 inventory levels in the bulk result belong to no item"
    ):  # item 1's lines arrive, then a level of an item that never comes
        read(jsonl([*whole[:2], level_line(2, 0, 1, 1)]), memo, T0)
    again, _ = read(jsonl(whole), memo, T0)
    assert everything(again) == everything(first)
    kept = {lv.sku: lv.quantities is was.quantities for lv, was in zip(again, first, strict=True)}
    assert kept == {"SKU-1": False, "SKU-3": True}, "the failed read lost more than it took"


def test_odd_lines_are_read_as_before_and_kept_nowhere() -> None:
    memo: Memo[Made] = Memo()
    lines = [jsonl([level_line(1, 0, 5, 9)]), b"   \r\n", jsonl([item_line(1, "SKU-1")])]
    data = b"".join(lines)
    first, _ = read(data, memo, T0, cuts=[])
    assert [(lv.sku, dict(lv.quantities)) for lv in first] == [
        ("SKU-1", {"available": 5, "on_hand": 9})
    ]
    second, _ = read(data, memo, T0, cuts=[])
    assert everything(second) == everything(first)
