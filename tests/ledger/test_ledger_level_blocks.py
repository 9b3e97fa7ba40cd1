"""Levels handed to the ledger as columns (``LevelBlock``): the read watermark vouches for
the unchanged levels of a complete read without an observation being made of them, and
what is recorded is exactly what their observations would have recorded."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_testing import Writes, at, level_tables, obs, plain_tables, scalar
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import (
    InvalidArgument,
    Ledger,
    LevelBlock,
    LevelObservation,
    RecordResult,
)

STATES = ("on_hand", "available")
SKUS = [f"SKU-{n}" for n in range(4)]
LOCATIONS = ("east", "west")
CELLS = [(sku, location) for sku in SKUS for location in LOCATIONS]


def block(
    levels: dict[tuple[str, str], tuple[object, ...]],
    minutes: float,
    *,
    system: str = "shopify",
    states: tuple[str, ...] = STATES,
    source: str = "poll",
    changed_at: datetime | None = None,
) -> LevelBlock:
    """One system's levels (SKU, location → quantities in ``states`` order) at
    ``T0 + minutes``."""
    cells = list(levels)
    return LevelBlock(
        system=system,
        states=states,
        skus=[sku for sku, _ in cells],
        locations=[location for _, location in cells],
        quantities=[q for values in levels.values() for q in values],  # type: ignore[misc]
        observed_at=[at(minutes)] * len(cells),
        changed_at=[changed_at] * len(cells),
        sources=[source] * len(cells),
    )


async def quantities(ledger: Ledger) -> dict[tuple[str, str, str], int]:
    return {(r.sku, r.location, r.state): r.quantity for r in await ledger.current_levels()}


async def test_a_second_read_as_blocks_writes_only_the_level_that_changed(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    first = {cell: (10, 8) for cell in CELLS}
    result = await ledger.record_levels(blocks=[block(first, 0)], complete=["shopify"])
    assert result == RecordResult(observed=16, changed=16, stale=0)
    second = {**first, ("SKU-2", "west"): (10, 7)}
    async with Writes(raw) as writes:
        result = await ledger.record_levels(blocks=[block(second, 5)], complete=["shopify"])
    assert result == RecordResult(observed=16, changed=1, stale=0)
    assert writes.rows == 2  # SKU-2 west available: one history row, one current row
    rows = {(r.sku, r.location, r.state): r for r in await ledger.current_levels()}
    assert {key: r.quantity for key, r in rows.items()} == {
        (sku, location, state): q
        for (sku, location), values in second.items()
        for state, q in zip(STATES, values, strict=True)
    }
    # every level reads as observed by the second read, vouched for or written
    assert {r.observed_at for r in rows.values()} == {at(5)}
    assert rows[("SKU-2", "west", "available")].changed_at == at(5)
    assert rows[("SKU-2", "west", "on_hand")].changed_at == at(0)
    series = await ledger.level_series("SKU-2", since=at(-1))
    assert [(r.location, r.state, r.quantity) for r in series if r.location == "west"] == [
        ("west", "available", 8),  # the first read's levels, at one time: by key
        ("west", "on_hand", 10),
        ("west", "available", 7),
    ]


async def test_a_new_level_is_written_and_a_vanished_one_stops_being_observed(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    first = {cell: (3, 3) for cell in CELLS}
    await ledger.record_levels(blocks=[block(first, 0)], complete=["shopify"])
    second = {cell: q for cell, q in first.items() if cell != ("SKU-0", "east")}
    second[("SKU-NEW", "east")] = (1, 0)
    result = await ledger.record_levels(blocks=[block(second, 5)], complete=["shopify"])
    assert result == RecordResult(observed=16, changed=2, stale=0)
    rows = {(r.sku, r.location, r.state): r for r in await ledger.current_levels()}
    new = [rows[("SKU-NEW", "east", state)].quantity for state in STATES]
    assert new == [1, 0]
    # the read no longer has SKU-0 at east: its last value stays, observed at the first read
    assert rows[("SKU-0", "east", "on_hand")].observed_at == at(0)
    assert rows[("SKU-0", "west", "on_hand")].observed_at == at(5)
    absent = await scalar(raw, "SELECT count(*) FROM level_current WHERE absent")
    assert int(absent) == 2


async def test_a_level_given_twice_in_one_read_is_applied_not_vouched_for(
    ledger: Ledger,
) -> None:
    """Two levels of one SKU and location (two items with one SKU) have no one value:
    neither is taken as unchanged, both are applied in order, as observations are."""
    first = {cell: (5, 5) for cell in CELLS}
    await ledger.record_levels(blocks=[block(first, 0)], complete=["shopify"])
    twice = block({("SKU-1", "east"): (9,)}, 5, states=("available",))
    result = await ledger.record_levels(blocks=[block(first, 5), twice], complete=["shopify"])
    assert result == RecordResult(observed=17, changed=1, stale=0)
    assert (await quantities(ledger))[("SKU-1", "east", "available")] == 9


async def test_blocks_of_a_read_that_is_not_complete_are_recorded_as_observations(
    ledger: Ledger,
) -> None:
    first = {cell: (2, 2) for cell in CELLS}
    await ledger.record_levels(blocks=[block(first, 0)], complete=["shopify"])
    result = await ledger.record_levels(blocks=[block({("SKU-3", "west"): (2, 1)}, 5)])
    assert result == RecordResult(observed=2, changed=1, stale=0)
    assert (await quantities(ledger))[("SKU-3", "west", "available")] == 1
    # not a complete read: the levels it did not hold are not marked absent
    rows = {(r.sku, r.location, r.state): r for r in await ledger.current_levels()}
    assert rows[("SKU-0", "east", "on_hand")].observed_at == at(0)


@pytest.mark.parametrize(
    ("field", "bad", "named"),
    [
        ("quantities", 2.5, "quantity must be an int"),
        ("quantities", "7", "quantity must be an int"),
        ("skus", "SKU\x00-1", "holds a NUL or a lone surrogate"),
        ("skus", "\ud800", "holds a NUL or a lone surrogate"),
        ("locations", None, "location must be text"),
        ("observed_at", datetime(2026, 11, 2, 9, 5), "naive datetime"),
        ("changed_at", datetime(2026, 11, 2, 9, 5), "naive datetime"),
        ("changed_at", ["2026-11-02"], "naive datetime or no datetime"),
        ("quantities", 2**70, "beyond what the ledger stores"),
        ("quantities", 2**31, "beyond what the ledger stores"),
        ("quantities", -(2**31) - 1, "beyond what the ledger stores"),
        ("sources", 3, "source must be text"),
    ],
)
@pytest.mark.parametrize("read", ["first", "second"])
async def test_a_bad_value_in_a_read_is_named_and_nothing_is_written(
    ledger: Ledger, field: str, bad: object, named: str, read: str
) -> None:
    """A block written straight from its columns (a first read) or one the watermark could
    vouch for but one level (a second): the bad value is still refused by name, and the
    whole batch with it."""
    first = {cell: (4, 4) for cell in CELLS}
    if read == "second":
        await ledger.record_levels(blocks=[block(first, 0)], complete=["shopify"])
    before = await ledger.current_levels()
    second = block({**first, ("SKU-0", "west"): (4, 3)}, 5)
    columns = {name: list(getattr(second, name)) for name in _COLUMNS}
    columns[field][-1] = bad  # the last level's (its "available" quantity)
    hostile = LevelBlock(system="shopify", states=STATES, **columns)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=named):
        await ledger.record_levels(blocks=[hostile], complete=["shopify"])
    assert await ledger.current_levels() == before


_COLUMNS = ("skus", "locations", "quantities", "observed_at", "changed_at", "sources")


async def test_a_system_name_no_backend_stores_is_refused_before_anything_is_written(
    ledger: Ledger,
) -> None:
    with pytest.raises(InvalidArgument, match="system"):
        await ledger.record_levels(
            blocks=[block({("SKU-0", "east"): (1, 1)}, 0, system="shop\x00ify")],
            complete=["shop\x00ify"],
        )
    assert await ledger.current_levels() == []


def test_a_block_whose_columns_disagree_in_length_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="needs 2 locations"):
        LevelBlock(
            system="shopify",
            states=STATES,
            skus=["A", "B"],
            locations=["east"],
            quantities=[1, 2, 3, 4],
            observed_at=[at(0)] * 2,
            changed_at=[None] * 2,
            sources=["poll"] * 2,
        )


# -- blocks never change what is recorded: against the same levels as observations ---------

cell_values = st.one_of(
    st.none(), st.tuples(st.integers(0, 2), st.integers(0, 2))
)  # None: the read does not have the level
reads = st.lists(
    st.fixed_dictionaries(
        {
            "cells": st.lists(cell_values, min_size=len(CELLS), max_size=len(CELLS)),
            # levels that report only "available" (a second block of the system)
            "narrow": st.sets(st.integers(0, len(CELLS) - 1), max_size=2),
            "twice": st.sets(st.integers(0, len(CELLS) - 1), max_size=1),
            "changed_at": st.booleans(),
            "source": st.sampled_from(["poll", "bulk"]),
            "webhook": st.booleans(),
            "complete": st.booleans(),
        }
    ),
    min_size=1,
    max_size=4,
)


def _blocks(step: dict, n: int) -> list[LevelBlock]:
    minutes = n * 10
    changed = at(minutes - 1) if step["changed_at"] else None
    wide: dict[tuple[str, str], tuple[object, ...]] = {}
    narrow: dict[tuple[str, str], tuple[object, ...]] = {}
    for i, values in enumerate(step["cells"]):
        if values is None:
            continue
        if i in step["narrow"]:
            narrow[CELLS[i]] = values[1:]
        else:
            wide[CELLS[i]] = values
    made = [block(wide, minutes, source=step["source"], changed_at=changed)]
    if narrow:
        made.append(block(narrow, minutes, states=("available",), source=step["source"]))
    again = {CELLS[i]: (1, 1) for i in step["twice"] if CELLS[i] in wide}
    if again:
        made.append(block(again, minutes, source="poll"))
    return made


async def _replay(url: str, steps: list[dict], as_blocks: bool) -> tuple[list, list]:
    results = []
    async with Ledger.from_url(url) as ledger:
        await ledger.upgrade()
        for n, step in enumerate(steps):
            blocks = _blocks(step, n)
            if step["webhook"]:  # another source writes between reads
                await ledger.record_levels([obs(7, n * 10 - 5, sku="SKU-0", source="webhook")])
            complete = ["shopify"] if step["complete"] else []
            if as_blocks:
                result = await ledger.record_levels(blocks=blocks, complete=complete)
            else:
                observations: list[LevelObservation] = [o for b in blocks for o in b.observations()]
                result = await ledger.record_levels(observations, complete=complete)
            results.append(result)
    return results, await level_tables(url)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=reads)
async def test_blocks_record_exactly_what_their_observations_record(
    tmp_path_factory: pytest.TempPathFactory, steps: list[dict]
) -> None:
    folder = tmp_path_factory.mktemp("blocks")
    observed = await _replay(f"sqlite:///{folder / 'observations.db'}", steps, as_blocks=False)
    blocked = await _replay(f"sqlite:///{folder / 'blocks.db'}", steps, as_blocks=True)
    assert blocked == observed


FIXED_STEPS = [
    {
        "cells": [(1, 1)] * 8,
        "narrow": set(),
        "twice": set(),
        "changed_at": False,
        "source": "poll",
        "webhook": False,
        "complete": True,
    },
    {
        "cells": [(1, 1)] * 7 + [(2, 1)],
        "narrow": {3},
        "twice": {0},
        "changed_at": True,
        "source": "poll",
        "webhook": True,
        "complete": True,
    },
    {
        "cells": [None] + [(1, 1)] * 7,
        "narrow": {3},
        "twice": set(),
        "changed_at": False,
        "source": "bulk",
        "webhook": False,
        "complete": True,
    },
    {
        "cells": [(0, 2)] * 8,
        "narrow": set(),
        "twice": set(),
        "changed_at": False,
        "source": "bulk",
        "webhook": True,
        "complete": False,
    },
]


async def test_blocks_and_observations_agree_on_each_backend(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same check on SQLite and PostgreSQL, with fixed steps: one database holds the
    blocks' replay; the observations' is replayed on SQLite beside it."""
    folder = tmp_path_factory.mktemp("agree")
    observed = await _replay(f"sqlite:///{folder / 'observations.db'}", FIXED_STEPS, False)
    blocked = await _replay(db_url, FIXED_STEPS, True)
    assert blocked[0] == observed[0]
    assert plain_tables(blocked[1]) == plain_tables(observed[1])
