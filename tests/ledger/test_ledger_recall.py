"""A complete read compared with the last one position by position (``ledger.recall``):
whatever happened to the ledger between the two reads — a webhook, another replica, a
level that vanished, a read that came late — what is recorded is exactly what the same
levels recorded as observations record (which never recall anything)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_testing import Writes, at, level_tables, obs, plain_tables
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import InvalidArgument, Ledger, LevelBlock, LevelObservation, Place, RecordResult

STATES = ("on_hand", "available")
CELLS = [(f"SKU-{n}", location) for n in range(6) for location in ("east", "west")]
BASE = [(sku, location, (10 + i, 5 + i)) for i, (sku, location) in enumerate(CELLS)]

Level = tuple[str, str, tuple[int, int]]


def _block(
    levels: list[Level],
    minutes: float,
    changed: datetime | None,
    source: str,
    place: Place | None = None,
) -> LevelBlock:
    return LevelBlock(
        system="shopify",
        states=STATES,
        skus=[sku for sku, _, _ in levels],
        locations=[location for _, location, _ in levels],
        quantities=[q for _, _, values in levels for q in values],
        observed_at=[at(minutes)] * len(levels),
        changed_at=[changed] * len(levels),
        sources=[source] * len(levels),
        place=place,
    )


#: a complete read as its caller holds it: its levels, changed_at and source, and the
#: RecordResult.read of its record
Held = tuple[list[Level], "datetime | None", str, object]


def _placed(levels: list[Level], changed: datetime | None, source: str, held: Held | None) -> Place:
    """Where a read's levels are, and which are the same as at their position in the last
    complete read the caller recorded (``held``), as a caller that holds it says."""
    if held is None:
        return Place(range(len(levels)))
    before, changed_before, source_before, since = held
    alike = changed == changed_before and source == source_before
    same = [alike and i < len(before) and before[i] == level for i, level in enumerate(levels)]
    return Place(range(len(levels)), since, same)


def read(
    levels: list[Level],
    minutes: float,
    *,
    changed: datetime | None = None,
    source: str = "poll",
    complete: bool = True,
) -> tuple[Any, ...]:
    """A read of every level of ``levels`` (complete: the system's whole read)."""
    return ("read", levels, minutes, changed, source, complete)


def mixed(levels: list[Level], minutes: float, cell: int, quantity: int) -> tuple[Any, ...]:
    """A complete read handed over with a later observation of one of its keys, in one
    batch (``record_levels(observations, blocks=...)``)."""
    return ("mixed", levels, minutes, cell, quantity)


def webhook(minutes: float, cell: int, state: str, quantity: int) -> tuple[Any, ...]:
    """One observation of one key, from a webhook, recorded by this process."""
    return ("webhook", minutes, cell, state, quantity)


def refresh(minutes: float, cell: int, state: str, quantity: int) -> tuple[Any, ...]:
    """One observation of one key by a poll of it alone (the read's source), recorded by
    this process."""
    return ("refresh", minutes, cell, state, quantity)


def other(minutes: float, cell: int, state: str, quantity: int) -> tuple[Any, ...]:
    """One observation of one key, recorded by another replica (its own Ledger)."""
    return ("other", minutes, cell, state, quantity)


def changed(levels: list[Level], cell: int, values: tuple[int, int]) -> list[Level]:
    sku, location, _ = levels[cell]
    return [*levels[:cell], (sku, location, values), *levels[cell + 1 :]]


async def _replay(
    url: str, steps: list[tuple[Any, ...]], as_blocks: bool, placed: bool = False
) -> tuple[list, list]:
    """``steps`` recorded: reads as observations, or as blocks (``placed``: each with
    what a caller holding its last complete read says of it, :class:`ledger.Place`)."""
    results: list[RecordResult] = []
    held: Held | None = None
    async with Ledger.from_url(url) as ledger:
        await ledger.upgrade()
        for step in steps:
            if step[0] in ("read", "mixed"):
                if step[0] == "read":
                    _, levels, minutes, changed_at, source, complete = step
                    later = []
                else:
                    _, levels, minutes, cell, quantity = step
                    changed_at, source, complete = None, "poll", True
                    sku, location = CELLS[cell]
                    later = [obs(quantity, minutes + 1, sku=sku, location=location)]
                place = _placed(levels, changed_at, source, held) if placed else None
                block = _block(levels, minutes, changed_at, source, place)
                systems = ["shopify"] if complete else []
                if as_blocks:
                    result = await ledger.record_levels(later, blocks=[block], complete=systems)
                else:
                    observations: list[LevelObservation] = [*block.observations(), *later]
                    result = await ledger.record_levels(observations, complete=systems)
                if complete:
                    held = (levels, changed_at, source, result.read)
                results.append(result)
                continue
            kind, minutes, cell, state, quantity = step
            sku, location = CELLS[cell]
            source = "poll" if kind == "refresh" else kind
            one = [obs(quantity, minutes, sku=sku, location=location, state=state, source=source)]
            if kind != "other":
                await ledger.record_levels(one)
            else:
                async with Ledger.from_url(url) as replica:
                    await replica.record_levels(one)
    return results, plain_tables(await level_tables(url))


SCENARIOS = {
    "a webhook changed a key between two identical reads": [
        read(BASE, 0),
        webhook(5, 0, "available", 7),
        read(BASE, 10),
        read(BASE, 20),
    ],
    "another replica changed a key between two identical reads": [
        read(BASE, 0),
        other(5, 3, "on_hand", 99),
        read(BASE, 10),
        read(BASE, 20),
    ],
    "a level changed, then changed back": [
        read(BASE, 0),
        read(changed(BASE, 4, (0, 0)), 10),
        read(BASE, 20),
        read(BASE, 30),
    ],
    "a level vanished, then came back": [
        read(BASE, 0),
        read(BASE[:7] + BASE[8:], 10),
        read(BASE, 20),
        read(BASE, 30),
    ],
    "the last level vanished, then came back": [
        read(BASE, 0),
        read(BASE[:-1], 10),
        read(BASE, 20),
    ],
    "a new level at the end, then a webhook on it": [
        read(BASE, 0),
        read([*BASE, ("NEW", "east", (1, 1))], 10),
        read([*BASE, ("NEW", "east", (1, 1))], 20),
        webhook(25, 0, "on_hand", 3),
        read([*BASE, ("NEW", "east", (1, 1))], 30),
    ],
    "new levels, then gone again": [
        read(BASE, 0),
        read([*BASE, *((f"NEW-{n}", "east", (n, n)) for n in range(4))], 10),
        read(BASE, 20),
        read(BASE, 30),
    ],
    "a poll saw the same value, then a read older than it": [
        read(BASE, 10),
        refresh(12, 0, "available", 5),
        read(BASE, 11),
        read(BASE, 20),
    ],
    "an observation in the read's batch changed a level it holds": [
        read(BASE, 0),
        read(BASE, 10),
        mixed(BASE, 20, 2, 99),
        read(BASE, 30),
        read(BASE, 40),
    ],
    "a level given twice in a read": [
        read(BASE, 0),
        read([*BASE, ("SKU-0", "east", (1, 2))], 10),
        read(BASE, 20),
        read([*BASE, ("SKU-0", "east", (1, 2))], 30),
    ],
    "a read older than the last one": [
        read(BASE, 10),
        read(changed(BASE, 2, (0, 1)), 5),
        read(BASE, 8),
        read(BASE, 20),
    ],
    "the system's changed_at and source change alone": [
        read(BASE, 0),
        read(BASE, 10, changed=at(9)),
        read(BASE, 20, changed=at(9)),
        read(BASE, 30, changed=at(9), source="bulk"),
        read(BASE, 40, changed=at(9), source="bulk"),
    ],
    "the read's order changes": [
        read(BASE, 0),
        read(BASE[::-1], 10),
        read(BASE[::-1], 20),
        read(BASE, 30),
    ],
    "a read that is not complete between two identical reads": [
        read(BASE, 0),
        read([changed(BASE, 1, (3, 3))[1]], 5, complete=False),
        read(BASE, 10),
        read(BASE, 20),
    ],
    "most levels changed": [
        read(BASE, 0),
        read([(sku, location, (0, 0)) for sku, location, _ in BASE], 10),
        read(BASE, 20),
        read(BASE, 30),
    ],
}


@pytest.mark.parametrize("placed", [False, True], ids=["recalled", "placed by its caller"])
@pytest.mark.parametrize("steps", list(SCENARIOS.values()), ids=list(SCENARIOS))
async def test_a_read_recalled_records_what_its_observations_record(
    db_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[Any, ...]],
    placed: bool,
) -> None:
    folder = tmp_path_factory.mktemp("recall")
    observed = await _replay(f"sqlite:///{folder / 'observations.db'}", steps, as_blocks=False)
    recalled = await _replay(db_url, steps, as_blocks=True, placed=placed)
    assert recalled == observed


async def test_a_webhook_between_two_identical_reads_is_undone_by_the_second(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """What the on-call engineer would see: the warehouse still says 5 after a webhook
    said 7, so the ledger says 5 again, with the change in history."""
    url = f"sqlite:///{tmp_path_factory.mktemp('recall') / 'ledger.db'}"
    _, (current, history, *_) = await _replay(
        url, SCENARIOS["a webhook changed a key between two identical reads"][:3], True
    )
    key = ("shopify", "SKU-0", "east", "available")
    assert [row[4] for row in current if row[:4] == key] == [5]
    # the key's changes: those replaced in history, the last one in its current row
    changes = [row[4] for row in history if row[:4] == key]
    changes += [row[4] for row in current if row[:4] == key and row[9] is not None]
    assert changes == [5, 7, 5]


async def test_a_read_after_a_recalled_one_writes_only_its_changed_level(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    for minutes in (0, 10):
        await ledger.record_levels(
            blocks=[_block(BASE, minutes, None, "poll")], complete=["shopify"]
        )
    async with Writes(raw) as writes:
        result = await ledger.record_levels(
            blocks=[_block(changed(BASE, 5, (1, 1)), 20, None, "poll")], complete=["shopify"]
        )
    assert result == RecordResult(observed=2 * len(BASE), changed=2, stale=0)
    assert writes.rows == 4  # two history rows, two current rows
    rows = {(r.sku, r.location, r.state): r for r in await ledger.current_levels()}
    assert {r.observed_at for r in rows.values()} == {at(20)}
    assert rows[("SKU-2", "west", "available")].quantity == 1


async def _recorded_after_a_lie(ledger: Ledger, place_of: Any) -> int:
    """Two identical complete reads, then a third where SKU-2 at west changed but whose
    place says every level is the same (``place_of(first, second)``: that place, given
    the two reads' results): the quantity the ledger ends with there."""
    n = len(BASE)
    first = await ledger.record_levels(
        blocks=[_block(BASE, 0, None, "poll", Place(range(n)))], complete=["shopify"]
    )
    second = await ledger.record_levels(
        blocks=[_block(BASE, 10, None, "poll", Place(range(n), first.read, [True] * n))],
        complete=["shopify"],
    )
    lied = _block(changed(BASE, 5, (1, 1)), 20, None, "poll", place_of(first, second))
    await ledger.record_levels(blocks=[lied], complete=["shopify"])
    rows = {(r.sku, r.location, r.state): r for r in await ledger.current_levels()}
    return rows[("SKU-2", "west", "available")].quantity


async def test_a_level_its_caller_says_is_the_same_is_not_hashed(ledger: Ledger) -> None:
    """The caller's word for the last read it recorded is what spares hashing every
    level's content: a level it says is the same is taken as the last read's (so a
    caller must say so only of levels it compared)."""
    n = len(BASE)
    said = await _recorded_after_a_lie(ledger, lambda _, s: Place(range(n), s.read, [True] * n))
    assert said == 10  # what the last read held there


@pytest.mark.parametrize(
    "place_of",
    [
        pytest.param(lambda f, _: Place(range(len(BASE)), f.read, [True] * len(BASE)), id="older"),
        pytest.param(
            lambda _, s: Place(range(1, len(BASE) + 1), s.read, [True] * len(BASE)), id="moved"
        ),
        pytest.param(
            lambda _, s: Place(range(len(BASE)), object(), [True] * len(BASE)), id="other"
        ),
        pytest.param(lambda _, s: Place(range(len(BASE)), None, [True] * len(BASE)), id="none"),
        pytest.param(lambda _, s: Place(range(len(BASE)), s.read, None), id="unsaid"),
    ],
)
async def test_a_place_not_about_the_last_read_recorded_is_not_taken(
    ledger: Ledger, place_of: Any
) -> None:
    """A place about an older read, about levels that sat elsewhere in the caller's read,
    or about a read this ledger did not record: the content is hashed, the change found."""
    assert await _recorded_after_a_lie(ledger, place_of) == 1


def test_a_place_the_size_of_another_block_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="placed at 3"):
        _block(BASE[:2], 0, None, "poll", Place(range(3)))
    with pytest.raises(InvalidArgument, match="placed at 2"):
        _block(BASE[:2], 0, None, "poll", Place(range(2), None, [True]))


# -- any sequence: against the same levels as observations ----------------------------------

step = st.one_of(
    st.tuples(st.just("same")),
    st.tuples(st.just("change"), st.integers(0, len(CELLS) - 1), st.integers(0, 3)),
    st.tuples(st.just("drop"), st.integers(0, len(CELLS) - 1)),
    st.tuples(st.just("add"), st.integers(0, 3)),
    st.tuples(
        st.sampled_from(["webhook", "refresh", "other"]),
        st.integers(0, len(CELLS) - 1),
        st.sampled_from(STATES),
        st.integers(0, 3),
    ),
)


def _steps(moves: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Complete reads, each the last one moved as ``moves`` say, with webhooks and
    another replica's writes between them."""
    levels, steps = list(BASE), [read(BASE, 0)]
    for n, move in enumerate(moves, 1):
        minutes = n * 10
        if move[0] in ("webhook", "refresh", "other"):
            kind, cell, state, quantity = move
            steps.append((kind, minutes - 5, cell, state, quantity))
            continue
        if move[0] == "change" and move[1] < len(levels):
            levels = changed(levels, move[1], (move[2], move[2]))
        elif move[0] == "drop" and move[1] < len(levels):
            levels = levels[: move[1]] + levels[move[1] + 1 :]
        elif move[0] == "add":
            levels = [*levels, (f"ADD-{n}", "east", (move[1], 0))]
        steps.append(read(levels, minutes))
    return steps


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(moves=st.lists(step, min_size=1, max_size=8))
async def test_any_sequence_of_reads_records_what_its_observations_record(
    tmp_path_factory: pytest.TempPathFactory, moves: list[tuple[Any, ...]]
) -> None:
    folder = tmp_path_factory.mktemp("recall")
    steps = _steps(moves)
    observed = await _replay(f"sqlite:///{folder / 'observations.db'}", steps, as_blocks=False)
    recalled = await _replay(f"sqlite:///{folder / 'blocks.db'}", steps, as_blocks=True)
    assert recalled == observed
    placed = await _replay(f"sqlite:///{folder / 'placed.db'}", steps, True, placed=True)
    assert placed == observed
