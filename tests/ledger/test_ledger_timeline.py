"""A key's newest change lives in its current row; history holds the replaced ones.

A first read writes current rows only; a change moves the row it replaces into history.
Every reader of changes (charts, KPIs and the chain, an incident's evidence, the webhook
monitor) sees the same timeline as when history held every change, on both backends,
and rows written before migration 0013 (or by an older replica after it) read the same.
"""

from __future__ import annotations

from typing import Any

from ledger_testing import at, downgrade, obs, plain_value, scalar
from sql_testing import TIMELINE
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import Ledger, RecordResult


async def rows(raw: AsyncEngine, sql: str) -> list[tuple[Any, ...]]:
    async with raw.connect() as conn:
        return [tuple(map(plain_value, r)) for r in await conn.exec_driver_sql(sql)]


def naive(minutes: float) -> object:
    return plain_value(at(minutes))


async def test_a_first_read_writes_current_rows_only(ledger: Ledger, raw: AsyncEngine) -> None:
    first = [obs(n, 0, sku=f"SKU-{n}", source="bulk") for n in range(30)]
    assert await ledger.record_levels(first, complete=["shopify"]) == RecordResult(30, 30, 0)
    assert await scalar(raw, "SELECT count(*) FROM level_history") == 0
    current = await rows(
        raw, "SELECT sku, quantity, since, since_source, previous FROM level_current"
    )
    assert sorted(current) == sorted((f"SKU-{n}", n, naive(0), "bulk", None) for n in range(30))
    # the same read hours later: nothing changed, nothing written, the change kept
    again = [o._replace(observed_at=at(240)) for o in first]
    assert await ledger.record_levels(again, complete=["shopify"]) == RecordResult(30, 0, 0)
    assert await scalar(raw, "SELECT count(*) FROM level_history") == 0
    assert await rows(raw, "SELECT DISTINCT since, since_source FROM level_current") == [
        (naive(0), "bulk")
    ]
    [series] = await ledger.level_series("SKU-7", at(-1))
    assert (series.quantity, series.observed_at, series.source) == (7, at(0), "bulk")


async def test_a_change_moves_the_value_it_replaces_into_history(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    await ledger.record_levels([obs(5, 0, source="bulk")], complete=["shopify"])
    await ledger.record_levels([obs(5, 3, source="poll")])  # the same value: no change
    await ledger.record_levels([obs(7, 5, source="webhook")])
    assert await rows(raw, "SELECT quantity, observed_at, source FROM level_history") == [
        (5, naive(0), "bulk")
    ]
    await ledger.record_levels([obs(3, 12, source="poll")])
    assert await rows(
        raw, "SELECT quantity, observed_at, source FROM level_history ORDER BY id"
    ) == [
        (5, naive(0), "bulk"),
        (7, naive(5), "webhook"),
    ]
    assert await rows(raw, "SELECT quantity, since, since_source, previous FROM level_current") == [
        (3, naive(12), "poll", 7)
    ]
    expected = [(5, at(0), "bulk"), (7, at(5), "webhook"), (3, at(12), "poll")]
    series = await ledger.level_series("TEE-BLK-M", at(-1))
    assert [(r.quantity, r.observed_at, r.source) for r in series] == expected
    window = await ledger.level_history_window(["shopify"], at(-1), at(20))
    assert [(r.quantity, r.observed_at, r.source) for r in window] == expected
    # a window after every change starts from the last one, which only current holds
    [last] = await ledger.level_history_window(["shopify"], at(13), at(20))
    assert (last.quantity, last.observed_at) == (3, at(12))
    points = await ledger.level_changes_since("shopify", ["TEE-BLK-M"], ["available"], at(6))
    assert [(p.quantity, p.observed_at) for p in points] == [(7, at(5)), (3, at(12))]
    changes = await ledger.level_changes("shopify", at(-1), at(20))
    assert [(c.previous, c.previous_at, c.quantity, c.observed_at) for c in changes] == [
        (5, at(0), 7, at(5)),
        (7, at(5), 3, at(12)),
    ]
    assert await ledger.first_level_observation() == at(0)


async def test_changes_in_one_batch_keep_every_value_but_the_last_in_history(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    # a new key seen four times in one batch, and a stored one changed twice in it
    await ledger.record_levels([obs(1, 0, sku="OLD")])
    batch = [obs(q, m) for q, m in ((4, 1), (4, 2), (6, 3), (2, 4))]
    batch += [obs(8, 5, sku="OLD"), obs(9, 6, sku="OLD")]
    assert await ledger.record_levels(batch) == RecordResult(6, 5, 0)
    history = "SELECT sku, quantity, observed_at FROM level_history ORDER BY sku, observed_at"
    assert await rows(raw, history) == [
        ("OLD", 1, naive(0)),
        ("OLD", 8, naive(5)),
        ("TEE-BLK-M", 4, naive(1)),
        ("TEE-BLK-M", 6, naive(3)),
    ]
    current = "SELECT sku, quantity, since, previous FROM level_current ORDER BY sku"
    assert await rows(raw, current) == [("OLD", 9, naive(6), 8), ("TEE-BLK-M", 2, naive(4), 6)]
    timeline = await rows(raw, f"SELECT count(*) FROM {TIMELINE}")
    assert timeline == [(6,)]  # every change once: 1 → 8 → 9 and 4 → 6 → 2


async def test_a_late_observation_moves_nothing(ledger: Ledger, raw: AsyncEngine) -> None:
    await ledger.record_levels([obs(5, 10)])
    assert await ledger.record_levels([obs(9, 2)]) == RecordResult(1, 0, 1)
    assert await scalar(raw, "SELECT count(*) FROM level_history") == 0
    assert await rows(raw, "SELECT quantity, since FROM level_current") == [(5, naive(10))]


async def _write_as_0012(ledger: Ledger, raw: AsyncEngine, quantity: int, minutes: float) -> None:
    """A level recorded as code before 0013 records it (a replica older than the
    migration, running until the upgrade to 0014, which it cannot write past): a
    history row for the change, the current row without its change; the current row's
    value is history's newest row. Written at 0013, then the ledger upgraded again
    (0014 moves the row into ``levels``, as it was)."""
    sqlite = raw.dialect.name == "sqlite"
    when = f"'{plain_value(at(minutes))}{'' if sqlite else '+00'}'"
    await downgrade(raw, "0013")
    async with raw.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO level_history (system, sku, location, state, quantity, observed_at, "
            f"source) VALUES ('shopify', 'TEE-BLK-M', 'east', 'available', {quantity}, {when}, "
            "'poll')"
        )
        await conn.exec_driver_sql(
            "INSERT INTO level_current (system, sku, location, state, quantity, observed_at, "
            f"changed_at, source) VALUES ('shopify', 'TEE-BLK-M', 'east', 'available', "
            f"{quantity}, {when}, {when}, 'poll') ON CONFLICT (system, sku, location, state) "
            "DO UPDATE SET quantity = excluded.quantity, observed_at = excluded.observed_at, "
            "changed_at = excluded.changed_at"
        )
    await ledger.upgrade()


async def test_rows_written_before_0013_read_the_same_and_are_not_copied_twice(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    await _write_as_0012(ledger, raw, 5, 0)
    await _write_as_0012(ledger, raw, 6, 2)
    assert await ledger.record_levels([obs(6, 4)]) == RecordResult(1, 0, 0)
    assert await ledger.record_levels([obs(8, 5, source="webhook")]) == RecordResult(1, 1, 0)
    # history already held 6 (the old row's value): it is not copied again
    assert await rows(raw, "SELECT quantity FROM level_history ORDER BY id") == [(5,), (6,)]
    series = await ledger.level_series("TEE-BLK-M", at(-1))
    assert [(r.quantity, r.observed_at) for r in series] == [(5, at(0)), (6, at(2)), (8, at(5))]
    changes = await ledger.level_changes("shopify", at(-1), at(20))
    assert [(c.previous, c.quantity, c.observed_at) for c in changes] == [
        (5, 6, at(2)),
        (6, 8, at(5)),
    ]


async def test_an_older_replica_changing_a_row_a_newer_one_wrote_leaves_one_true_timeline(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """A rolling upgrade: a replica older than 0013 changes a level after a new one did.
    It writes its change to history and the quantity to the current row, leaving the
    row's change as it was. The value in between is lost (the old replica never moved
    it), but no value is shown twice or at another value's time, and the next change
    by a new replica moves nothing stale into history."""
    await ledger.record_levels([obs(5, 0, source="bulk")])
    await ledger.record_levels([obs(6, 2)])  # a new replica's change: 5 → 6
    await _write_as_0012(ledger, raw, 8, 4)  # an old replica's: 6 → 8, as it writes it
    series = await ledger.level_series("TEE-BLK-M", at(-1))
    assert [(r.quantity, r.observed_at) for r in series] == [(5, at(0)), (8, at(4))]
    changes = await ledger.level_changes("shopify", at(-1), at(20))
    assert [(c.previous, c.quantity, c.observed_at) for c in changes] == [(5, 8, at(4))]
    assert await ledger.record_levels([obs(9, 6)]) == RecordResult(1, 1, 0)
    assert await rows(raw, "SELECT quantity FROM level_history ORDER BY id") == [(5,), (8,)]
    series = await ledger.level_series("TEE-BLK-M", at(-1))
    assert [(r.quantity, r.observed_at) for r in series] == [(5, at(0)), (8, at(4)), (9, at(6))]
    assert await scalar(raw, f"SELECT count(*) FROM {TIMELINE}") == 3


async def test_two_changes_at_the_same_instant_keep_the_order_they_were_recorded_in(
    ledger: Ledger,
) -> None:
    """A system that stamps two values with the same time: the one recorded later is
    the newer, whichever table holds it (history's ids come before current's)."""
    await ledger.record_levels([obs(1, 0)])
    await ledger.record_levels([obs(2, 0)])
    series = await ledger.level_series("TEE-BLK-M", at(-1))
    assert [(r.quantity, r.observed_at) for r in series] == [(1, at(0)), (2, at(0))]
    [last] = await ledger.level_history_window(["shopify"], at(1), at(2))
    assert last.quantity == 2
    [change] = await ledger.level_changes("shopify", at(-1), at(1))
    assert (change.previous, change.quantity) == (1, 2)
