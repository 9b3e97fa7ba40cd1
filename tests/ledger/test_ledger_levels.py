"""Levels: changes-only history, no travel back in time, bulk batches, series for charts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

import pytest
from ledger_testing import T0, at, obs, scalar
from sql_testing import TIMELINE, sent_statements
from sqlalchemy.ext.asyncio import AsyncEngine

import connectors
from ledger import (
    InvalidArgument,
    Ledger,
    LevelBlock,
    LevelObservation,
    RecordResult,
    level_columns,
)
from ledger.levels import CHUNK, READ_CHUNK
from ledger.tables import LEVELS


async def history_count(raw: AsyncEngine, sku: str = "TEE-BLK-M") -> int:
    """The changes of ``sku`` the ledger recorded (history's and current's)."""
    return int(await scalar(raw, f"SELECT count(*) FROM {TIMELINE} WHERE sku = :s", s=sku))


async def test_the_same_value_twice_writes_one_history_row(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    assert await ledger.record_levels([obs(10, 0)]) == RecordResult(1, 1, 0)
    assert await ledger.record_levels([obs(10, 5)]) == RecordResult(1, 0, 0)
    assert await history_count(raw) == 1
    [current] = await ledger.current_levels("TEE-BLK-M")
    assert (current.quantity, current.observed_at, current.changed_at) == (10, at(5), at(0))


async def test_a_change_writes_a_second_history_row(ledger: Ledger, raw: AsyncEngine) -> None:
    await ledger.record_levels([obs(10, 0)])
    await ledger.record_levels([obs(10, 5)])
    assert await ledger.record_levels([obs(7, 10, source="webhook")]) == RecordResult(1, 1, 0)
    assert await history_count(raw) == 2
    [current] = await ledger.current_levels("TEE-BLK-M")
    assert (current.quantity, current.observed_at, current.changed_at, current.source) == (
        7,
        at(10),
        at(10),
        "webhook",
    )


async def test_an_older_observation_is_stale_and_changes_nothing(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    await ledger.record_levels([obs(10, 10)])
    assert await ledger.record_levels([obs(3, 5)]) == RecordResult(1, 0, 1)
    assert await history_count(raw) == 1
    [current] = await ledger.current_levels("TEE-BLK-M")
    assert (current.quantity, current.observed_at) == (10, at(10))


async def test_a_webhook_of_one_state_makes_only_that_state_stale_for_an_older_read(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    # Shopify's inventory_levels/update brings `available` alone. A poll that started
    # before it and lands after it is stale for `available` only: its `on_hand` is
    # still the newest anyone saw. (Pinned for docs/PER_LEVEL_LEDGER.md, question 1.)
    await ledger.record_levels([obs(10, 0), obs(12, 0, state="on_hand")])
    await ledger.record_levels([obs(8, 10, source="webhook")])
    late_poll = [obs(9, 5), obs(11, 5, state="on_hand")]
    assert await ledger.record_levels(late_poll) == RecordResult(2, 1, 1)
    current = {r.state: r for r in await ledger.current_levels("TEE-BLK-M")}
    assert {s: (r.quantity, r.observed_at, r.source) for s, r in current.items()} == {
        "available": (8, at(10), "webhook"),
        "on_hand": (11, at(5), "poll"),
    }
    series = await ledger.level_series("TEE-BLK-M", since=at(-60))
    assert [(r.state, r.quantity, r.observed_at) for r in series] == [
        ("available", 10, at(0)),
        ("on_hand", 12, at(0)),
        ("on_hand", 11, at(5)),
        ("available", 8, at(10)),
    ]
    assert await history_count(raw) == 4


async def test_a_batch_is_applied_in_time_order_per_key(ledger: Ledger, raw: AsyncEngine) -> None:
    # Out of order within one batch: 5 @ t2, 4 @ t0, 4 @ t1 → history 4 (t0), 5 (t2).
    result = await ledger.record_levels([obs(5, 2), obs(4, 0), obs(4, 1)])
    assert result == RecordResult(observed=3, changed=2, stale=0)
    series = await ledger.level_series("TEE-BLK-M", since=at(-60))
    assert [(r.quantity, r.observed_at) for r in series] == [(4, at(0)), (5, at(2))]
    [current] = await ledger.current_levels("TEE-BLK-M")
    assert (current.quantity, current.observed_at) == (5, at(2))
    assert await history_count(raw) == 2


async def test_the_systems_changed_at_is_kept(ledger: Ledger) -> None:
    await ledger.record_levels([obs(10, 5, changed_at=at(-30))])
    [current] = await ledger.current_levels("TEE-BLK-M")
    assert current.changed_at == at(-30)


async def test_the_same_observation_twice_is_neither_stale_nor_a_change(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    assert await ledger.record_levels([obs(10, 5)]) == RecordResult(1, 1, 0)
    assert await ledger.record_levels([obs(10, 5)]) == RecordResult(1, 0, 0)
    assert await history_count(raw) == 1


async def test_an_unchanged_quantity_still_brings_a_new_changed_at_and_source(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    await ledger.record_levels([obs(10, 0, changed_at=at(-30))])
    assert await ledger.record_levels([obs(10, 5, changed_at=at(-2))]) == RecordResult(1, 0, 0)
    [current] = await ledger.current_levels("TEE-BLK-M")
    assert (current.observed_at, current.changed_at, current.source) == (at(5), at(-2), "poll")
    assert await ledger.record_levels([obs(10, 6, source="webhook")]) == RecordResult(1, 0, 0)
    [current] = await ledger.current_levels("TEE-BLK-M")
    assert (current.observed_at, current.changed_at, current.source) == (at(6), at(-2), "webhook")
    assert await history_count(raw) == 1


async def test_a_batch_larger_than_a_chunk_is_streamed_in_arrival_order(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    # A generator, consumed once: the key's two changes land in different chunks.
    def stream() -> Iterator[LevelObservation]:
        yield obs(1, 0)
        for i in range(CHUNK + 10):
            yield obs(i, 0, sku=f"SKU-{i:06d}")
        yield obs(2, 1)
        yield obs(0, -1)  # older than what the first chunk stored: stale

    assert await ledger.record_levels(stream()) == RecordResult(CHUNK + 13, CHUNK + 12, 1)
    series = await ledger.level_series("TEE-BLK-M", since=at(-60))
    assert [(r.quantity, r.observed_at) for r in series] == [(1, at(0)), (2, at(1))]
    assert await scalar(raw, "SELECT count(*) FROM level_current") == CHUNK + 11
    assert await history_count(raw) == 2


async def test_keys_are_separate(ledger: Ledger, raw: AsyncEngine) -> None:
    batch = [
        obs(10, 0),
        obs(10, 0, system="wms"),
        obs(10, 0, location="west"),
        obs(12, 0, state="on_hand"),
    ]
    assert await ledger.record_levels(batch) == RecordResult(4, 4, 0)
    rows = await ledger.current_levels("TEE-BLK-M")
    assert [(r.location, r.system, r.state) for r in rows] == [
        ("east", "shopify", "available"),
        ("east", "shopify", "on_hand"),
        ("east", "wms", "available"),
        ("west", "shopify", "available"),
    ]


async def test_times_round_trip_as_aware_utc(ledger: Ledger) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = T0.astimezone(plus_two)
    observation = LevelObservation("erp", "SKU-1", "east", "on_hand", 3, local, "csv")
    await ledger.record_levels([observation])
    [row] = await ledger.current_levels("SKU-1")
    assert row.observed_at == T0
    assert row.observed_at.utcoffset() == timedelta(0)
    [change] = await ledger.level_series("SKU-1", since=at(-1))
    assert change.observed_at.tzinfo is not None
    assert change.observed_at.utcoffset() == timedelta(0)


async def test_naive_times_are_refused(ledger: Ledger) -> None:
    naive = LevelObservation("erp", "SKU-1", "east", "on_hand", 3, T0.replace(tzinfo=None), "csv")
    with pytest.raises(InvalidArgument, match="naive"):
        await ledger.record_levels([naive])
    assert await ledger.current_levels("SKU-1") == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"changed_at": T0.replace(tzinfo=None)}, "naive datetime"),
        ({"observed_at": None}, "no datetime"),
        ({"observed_at": "2026-11-02T09:00:00+00:00"}, "no datetime"),
        ({"observed_at": ["not", "hashable"]}, "no datetime"),
        ({"changed_at": {"not": "hashable"}}, "no datetime"),
        ({"quantity": 2.5}, "quantity must be an int"),
        ({"quantity": "7"}, "quantity must be an int"),
        # PostgreSQL's integer column would refuse these mid-transaction; SQLite stored them
        ({"quantity": 2**31}, "quantity 2147483648 is beyond what the ledger stores"),
        ({"quantity": -(2**31) - 1}, "beyond what the ledger stores"),
        ({"quantity": 10**30}, "beyond what the ledger stores"),
    ],
)
async def test_one_bad_observation_in_a_large_batch_is_named_and_nothing_is_written(
    ledger: Ledger, bad: dict[str, object], message: str
) -> None:
    good = [obs(n % 9, 0, sku=f"SKU-{n}", system="erp") for n in range(3_000)]
    culprit = good[1_234]._replace(**bad)
    with pytest.raises(InvalidArgument, match=message):
        await ledger.record_levels([*good[:1_234], culprit, *good[1_235:]], complete=["erp"])
    assert await ledger.current_levels() == []


async def test_a_realistic_bulk_batch_records_changes_only(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    def poll(minutes: int, bump_every: int) -> list[LevelObservation]:
        return [
            LevelObservation(
                system="shopify",
                sku=f"SKU-{i // 10:05d}",
                location=f"loc-{i % 5}",
                state="available" if i % 10 < 5 else "on_hand",
                quantity=i + (1 if bump_every and i % bump_every == 0 else 0),
                observed_at=at(minutes),
                source="poll",
            )
            for i in range(20_000)
        ]

    # How fast is bench B1's to measure (BENCHMARKS.md), not a verdict here.
    assert await ledger.record_levels(poll(0, 0)) == RecordResult(20_000, 20_000, 0)
    assert await ledger.record_levels(poll(5, 0)) == RecordResult(20_000, 0, 0)
    assert await ledger.record_levels(poll(10, 4)) == RecordResult(20_000, 5_000, 0)
    assert await ledger.record_levels(poll(1, 0)) == RecordResult(20_000, 0, 20_000)
    total = await scalar(raw, f"SELECT count(*) FROM {TIMELINE}")
    assert total == 25_000
    assert await scalar(raw, "SELECT count(*) FROM level_current") == 20_000
    assert (
        await scalar(raw, "SELECT sum(quantity) FROM level_current") == sum(range(20_000)) + 5_000
    )


async def test_level_series_starts_with_the_value_before_since(ledger: Ledger) -> None:
    await ledger.record_levels([obs(10, 0), obs(10, 0, location="west")])
    await ledger.record_levels([obs(8, 10), obs(9, 10, location="west")])
    await ledger.record_levels([obs(6, 30), obs(9, 30, location="west")])
    await ledger.record_levels([obs(4, 50)])
    await ledger.record_levels([obs(99, 0, sku="OTHER")])
    series = await ledger.level_series("TEE-BLK-M", since=at(20))
    assert [(r.location, r.quantity, r.observed_at) for r in series] == [
        ("east", 8, at(10)),  # the last change before `since`, per key
        ("west", 9, at(10)),
        ("east", 6, at(30)),
        ("east", 4, at(50)),
    ]
    later = await ledger.level_series("TEE-BLK-M", since=at(60))
    assert [(r.location, r.quantity, r.observed_at) for r in later] == [
        ("west", 9, at(10)),
        ("east", 4, at(50)),
    ]


async def test_current_levels_filters_by_sku(ledger: Ledger) -> None:
    await ledger.record_levels([obs(1, sku="A"), obs(2, sku="B"), obs(3, sku="C")])
    assert [r.sku for r in await ledger.current_levels(sku="B")] == ["B"]
    assert [r.sku for r in await ledger.current_levels(skus=["C", "A"])] == ["A", "C"]
    assert [r.sku for r in await ledger.current_levels()] == ["A", "B", "C"]
    assert await ledger.current_levels(skus=[]) == []


async def test_known_skus_come_from_levels_and_items(ledger: Ledger) -> None:
    await ledger.record_levels([obs(1, sku="B"), obs(2, sku="A")])
    await ledger.upsert_item("C", "shopify", "gid://shopify/InventoryItem/3")
    assert await ledger.known_skus() == ["A", "B", "C"]


async def test_replicas_recording_one_poll_at_once_write_each_change_once(
    db_url: str, ledger: Ledger, raw: AsyncEngine
) -> None:
    """Three replicas (ledgers) record the same poll of 200 keys at the same moment,
    each with its own read time: every key gets one history row, not one per replica;
    a repeated storm of the same values writes nothing more."""
    skus = [f"SKU-{n:03}" for n in range(100)]

    def poll(seconds: float, quantity: int) -> list[LevelObservation]:
        return [
            obs(quantity, seconds / 60, sku=sku, system=system)
            for sku in skus
            for system in ("shopify", "wms")
        ]

    replicas = [Ledger.from_url(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(r.record_levels(poll(n * 0.001, 5)) for n, r in enumerate(replicas)))
        await asyncio.gather(
            *(r.record_levels(poll(1 + n * 0.001, 5)) for n, r in enumerate(replicas))
        )
        await asyncio.gather(
            *(r.record_levels(poll(2 + n * 0.001, 6)) for n, r in enumerate(replicas))
        )
    finally:
        for r in replicas:
            await r.close()
    assert await scalar(raw, f"SELECT count(*) FROM {TIMELINE}") == 400
    assert await scalar(raw, "SELECT count(*) FROM level_skus") == 100
    duplicated = await scalar(
        raw,
        "SELECT count(*) FROM (SELECT system, sku, location, state, quantity"
        f" FROM {TIMELINE} GROUP BY system, sku, location, state, quantity"
        " HAVING count(*) > 1) AS d",
    )
    assert duplicated == 0


async def test_the_largest_and_smallest_quantities_a_level_holds_are_stored(
    ledger: Ledger,
) -> None:
    edges = [obs(2**31 - 1, 0, sku="HIGH"), obs(-(2**31), 0, sku="LOW")]
    assert await ledger.record_levels(edges) == RecordResult(2, 2, 0)
    assert {r.sku: r.quantity for r in await ledger.current_levels()} == {
        "HIGH": 2**31 - 1,
        "LOW": -(2**31),
    }


async def test_a_skus_levels_come_from_every_system_and_no_other_sku(ledger: Ledger) -> None:
    """``current_levels`` by SKU names every system the ledger holds levels of (found
    through the key, which leads with ``system``): systems sorting before, between and
    after the usual three, a system holding one SKU only, a SKU in one system only."""
    systems = ["a-first", "erp", "m-middle", "shopify", "wms", "zz-last"]
    batch = [obs(n, 0, system=s, sku=sku) for n, s in enumerate(systems) for sku in ("A-1", "B-2")]
    batch += [obs(7, 0, system="only-c", sku="C-3"), obs(8, 0, system="zz-last", sku="B-2_%")]
    await ledger.record_levels(batch)
    rows = await ledger.current_levels("B-2")
    assert [(r.system, r.sku, r.quantity) for r in rows] == [
        (s, "B-2", n) for n, s in sorted(enumerate(systems), key=lambda p: p[1])
    ]
    assert [(r.system, r.sku) for r in await ledger.current_levels("C-3")] == [("only-c", "C-3")]
    assert await ledger.current_levels("B-2_") == []
    many = [f"N-{i:04d}" for i in range(READ_CHUNK + 1)]  # two queries' worth of SKUs
    await ledger.record_levels([obs(1, 1, system="wms", sku=sku) for sku in many])
    found = await ledger.current_levels(skus=[*many, "C-3", "UNKNOWN"])
    assert sorted((r.system, r.sku) for r in found) == sorted(
        [("wms", sku) for sku in many] + [("only-c", "C-3")]
    )


async def test_an_empty_ledger_has_no_levels_of_any_sku(ledger: Ledger) -> None:
    assert await ledger.current_levels("A-1") == []
    assert await ledger.current_levels(skus=["A-1", "B-2"]) == []
    assert await ledger.known_skus() == []
    assert not await ledger.is_known_sku("A-1")


async def test_a_skus_levels_are_read_through_the_key_not_a_scan(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """/drift and /resync read one SKU's levels: every statement that takes is planned
    as seeks of ``level_current``'s key, never a scan of the table (millions of rows at
    100,000 SKUs)."""
    await ledger.record_levels(
        [obs(1, 0, system=s, sku=f"S-{i}") for s in ("erp", "shopify", "wms") for i in range(50)]
    )
    with sent_statements(ledger) as statements:
        rows = await ledger.current_levels("S-7")
    assert [(r.system, r.sku) for r in rows] == [("erp", "S-7"), ("shopify", "S-7"), ("wms", "S-7")]
    reads = [(s, p) for s, p in statements if "level_current" in s or "levels" in s]
    assert len(reads) == 2, reads  # the systems, then the SKU's levels
    await _assert_seeks(raw, reads, "levels", _LEVELS_KEY, "system")


async def test_known_skus_are_every_sku_of_levels_and_items_however_spelled(
    ledger: Ledger,
) -> None:
    """SKUs come from other systems: the ones that sort next to each other, a quote, a
    LIKE wildcard, accents, a prefix of another; each once, from any system, sorted."""
    skus = ["A", "A%", "A'B", "AB", "Ä-1", "ZZZ", "Z", "é", "日本-1"]
    systems = ("erp", "shopify", "wms")
    await ledger.record_levels(
        [obs(1, 0, system=systems[i % 3], sku=sku) for i, sku in enumerate(skus)]
        + [obs(2, 0, system="wms", sku="A"), obs(3, 0, sku="A", location="west")]
    )
    await ledger.upsert_item("ONLY-ITEM", "shopify", "gid://shopify/InventoryItem/9")
    await ledger.upsert_item("Z", "shopify", "gid://shopify/InventoryItem/10")
    assert await ledger.known_skus() == sorted({*skus, "ONLY-ITEM"})


async def test_known_skus_read_one_row_per_sku_not_the_levels(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """/drift of a SKU the ledger does not know lists every SKU for "Did you mean": one
    row of ``level_skus`` each, never the levels (millions of them at 100,000 SKUs); and
    whether a SKU is known is one seek of that table's key."""
    await ledger.record_levels(
        [
            obs(1, 0, system=s, sku=f"S-{i}", location=loc)
            for s in ("erp", "wms")
            for i in range(30)
            for loc in ("east", "west")
        ]
    )
    assert await scalar(raw, "SELECT count(*) FROM level_skus") == 30
    with sent_statements(ledger) as statements:
        assert len(await ledger.known_skus()) == 30
    reads = [s for s, _ in statements if "level_" in s]
    assert len(reads) == 1, reads
    assert "level_skus" in reads[0]
    assert "level_current" not in reads[0]
    assert "level_history" not in reads[0]
    with sent_statements(ledger) as statements:
        assert await ledger.is_known_sku("S-7")
        assert not await ledger.is_known_sku("S-77")
    seeks = [(s, p) for s, p in statements if "level_" in s]
    assert len(seeks) == 2, seeks
    skus_key = {"postgresql": "level_skus_pkey", "sqlite": "sqlite_autoindex_level_skus_1"}
    await _assert_seeks(raw, seeks, "level_skus", skus_key, "sku")


#: SKUs from other systems: JSON's own quote and backslash, SQL's, a bracket, accents
#: and text that reads as JSON or a number
HOSTILE_SKUS = ['Q"1', "Q\\2", "Q'3", "Q]4", "Ä-5", "日本-6", "Q 7 ", "Q" + "x" * 300]
HOSTILE_SKUS += ["null", "[1]", "00123", "1e3", "true", "q-1", "Q-1"]


async def test_every_way_a_level_is_first_written_notes_its_sku(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """A SKU is known from its first level on, whichever way that level was written: a
    poll, a key observed twice in a batch, a system's first complete read (as
    observations, and as columns), a SKU new to a later complete read; each SKU once
    however many systems, locations and batches hold it, hours apart."""
    assert await ledger.record_levels([obs(1, 0, sku="POLL-1"), obs(2, 0, sku=HOSTILE_SKUS[0])])
    await ledger.record_levels([obs(1, 1, sku="TWICE-1"), obs(2, 2, sku="TWICE-1")])
    full = [obs(3, 3, system="wms", sku=sku) for sku in ("FULL-1", *HOSTILE_SKUS[1:4])]
    await ledger.record_levels(full, complete=["wms"])
    skus = ["BLOCK-1", "POLL-1", *HOSTILE_SKUS[4:]]
    block = LevelBlock(
        system="erp",
        states=("on_hand", "available"),
        skus=skus,
        locations=["east"] * len(skus),
        quantities=[q for n in range(len(skus)) for q in (n, n)],
        observed_at=[at(4)] * len(skus),
        changed_at=[None] * len(skus),
        sources=["poll"] * len(skus),
    )
    await ledger.record_levels(blocks=[block], complete=["erp"])
    later = [*full, obs(4, 60 * 5, system="wms", sku="LATER-1")]
    await ledger.record_levels(later, complete=["wms"])  # hours later, one SKU new
    expected = sorted({"POLL-1", "TWICE-1", "FULL-1", "BLOCK-1", "LATER-1", *HOSTILE_SKUS})
    assert await ledger.known_skus() == expected
    assert all([await ledger.is_known_sku(sku) for sku in expected])
    assert not await ledger.is_known_sku("Q")
    assert await scalar(raw, "SELECT count(*) FROM level_skus") == len(expected)
    # a batch refused for one bad level in its second chunk, after the first chunk's
    # levels were written, notes none of its SKUs
    refused = [obs(1, 9, sku=f"NEW-{n}") for n in range(CHUNK)]
    with pytest.raises(InvalidArgument):
        await ledger.record_levels([*refused, obs(1, 9, sku="NEW-X", source="\x00")])
    assert not await ledger.is_known_sku("NEW-1")
    assert await ledger.known_skus() == expected
    assert await scalar(raw, "SELECT count(*) FROM level_current WHERE sku = 'NEW-1'") == 0


async def _assert_seeks(
    raw: AsyncEngine,
    statements: list[tuple[str, Any]],
    table: str,
    indexes: dict[str, str],
    column: str,
) -> None:
    """Each statement reaches ``table`` only through its index (``indexes``, by backend)
    searched by ``column``
    (its leading one), never by a scan. On PostgreSQL, with sequential scans priced out,
    a query the index cannot serve still plans as one, or as a read of the whole index
    with no condition on ``column``: the check holds at any table size."""
    index = indexes[raw.dialect.name]
    async with raw.connect() as conn:
        for statement, params in statements:
            if raw.dialect.name == "postgresql":
                await conn.exec_driver_sql("SET enable_seqscan = off")
                result = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", params)
                nodes = list(_plan_nodes(result.scalar_one()[0]["Plan"]))
                on_table = [n for n in nodes if n.get("Relation Name") == table]
                assert on_table, nodes
                assert all(n["Node Type"] != "Seq Scan" for n in on_table), nodes
                by_index = [n for n in nodes if n.get("Index Name") == index]
                assert by_index, nodes
                assert all(column in n.get("Index Cond", "") for n in by_index), nodes
            else:
                result = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
                plan = [str(r[-1]) for r in result]
                # steps are "SEARCH name ..." or "SCAN name ...", name the table or its
                # alias in the recursive queries (t); d is those queries' own rows
                steps = [p for p in plan if p.split(" ")[0] in ("SEARCH", "SCAN")]
                # (l: the levels of the view level_current, one branch per state)
                on_table = [p for p in steps if p.split(" ")[1] in (table, "t", "l")]
                assert on_table, plan
                assert all(p.startswith("SEARCH") and index in p for p in on_table), plan
                assert all(p.split(" ")[1] != "d" or p.startswith("SCAN") for p in steps)


#: the key of levels (a WITHOUT ROWID table on SQLite), as each backend names its index
_LEVELS_KEY = {"postgresql": "levels_pkey", "sqlite": "PRIMARY KEY"}


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A PostgreSQL JSON plan's nodes, depth first."""
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


def test_a_level_row_has_a_column_for_every_state_the_connectors_read() -> None:
    """``levels`` holds a quantity column per state (migration 0014): the ledger's states
    are the connectors', in their order, or a connector's state would be refused."""
    assert level_columns.STATES == connectors.STATES
    assert [c.name for c in LEVELS.c if c.name in connectors.STATES] == list(connectors.STATES)
