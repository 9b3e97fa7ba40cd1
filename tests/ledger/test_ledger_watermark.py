"""The read watermark: a complete read of a system writes only the keys that changed, are
new or vanished, and still reads back exactly as if every key had been rewritten."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_testing import Writes, at, obs, scalar
from pg_testing import pg_schema
from sql_testing import TIMELINE
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger import Ledger, LevelObservation, RecordResult
from ledger.levels import CHUNK

SKUS = [f"SKU-{n}" for n in range(6)]


def read(quantities: dict[str, int], minutes: float, system: str = "shopify") -> list:
    """A complete read of ``system``: one observation per SKU."""
    return [obs(q, minutes, sku=sku, system=system) for sku, q in quantities.items()]


async def own_observed_at(raw: AsyncEngine, sku: str) -> object:
    """The current row's own ``observed_at`` column (not lifted by the read time)."""
    return await scalar(raw, "SELECT observed_at FROM level_current WHERE sku = :s", s=sku)


async def history(raw: AsyncEngine) -> int:
    """The changes the ledger recorded (history's and current's)."""
    return int(await scalar(raw, f"SELECT count(*) FROM {TIMELINE}"))


async def test_a_second_complete_read_writes_only_the_changed_keys(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    first = dict.fromkeys(SKUS, 10)
    assert await ledger.record_levels(read(first, 0), complete=["shopify"]) == RecordResult(6, 6, 0)
    second = {**first, "SKU-2": 7}
    async with Writes(raw) as writes:
        result = await ledger.record_levels(read(second, 5), complete=["shopify"])
    assert result == RecordResult(observed=6, changed=1, stale=0)
    assert writes.rows == 2  # SKU-2's history row and its current row, nothing else
    assert await history(raw) == 7
    # an unchanged key's own row was not rewritten, yet it reads as observed at the read
    assert str(await own_observed_at(raw, "SKU-0")).startswith(str(at(0).date()))
    rows = {r.sku: r for r in await ledger.current_levels(skus=SKUS)}
    assert {sku: (r.quantity, r.observed_at) for sku, r in rows.items()} == {
        sku: (q, at(5)) for sku, q in second.items()
    }
    assert rows["SKU-0"].changed_at == at(0)
    assert rows["SKU-2"].changed_at == at(5)


async def test_a_value_that_changes_back_is_recorded(ledger: Ledger, raw: AsyncEngine) -> None:
    for minutes, quantity in ((0, 10), (5, 4), (10, 10), (15, 10), (20, 4)):
        await ledger.record_levels(read({"SKU-0": quantity}, minutes), complete=["shopify"])
    series = await ledger.level_series("SKU-0", since=at(-1))
    assert [(r.quantity, r.observed_at) for r in series] == [
        (10, at(0)),
        (4, at(5)),
        (10, at(10)),
        (4, at(20)),
    ]


async def test_the_watermark_is_rebuilt_from_the_ledger_after_a_restart(
    db_url: str, raw: AsyncEngine
) -> None:
    async with Ledger.from_url(db_url) as before:
        await before.upgrade()
        await before.record_levels(read(dict.fromkeys(SKUS, 10), 0), complete=["shopify"])
        changed = {**dict.fromkeys(SKUS, 10), "SKU-1": 3}
        await before.record_levels(read(changed, 5), complete=["shopify"])
    async with Ledger.from_url(db_url) as after:
        async with Writes(raw) as writes:
            result = await after.record_levels(
                read({**dict.fromkeys(SKUS, 10), "SKU-1": 3, "SKU-4": 11}, 10),
                complete=["shopify"],
            )
        assert result == RecordResult(6, 1, 0)
        assert writes.rows == 2
        rows = {r.sku: (r.quantity, r.observed_at) for r in await after.current_levels()}
    assert rows == {
        **dict.fromkeys(SKUS, (10, at(10))),
        "SKU-1": (3, at(10)),
        "SKU-4": (11, at(10)),
    }


async def test_a_stored_quantity_beyond_the_ledgers_range_is_never_vouched_for(
    db_url: str, raw: AsyncEngine
) -> None:
    """SQLite keeps any integer: a row written before the ledger refused quantities
    beyond PostgreSQL's ``integer`` may hold one. The watermark keeps quantities as int32;
    2**32 + 10 would read as 10 there, and a read of 10 would be taken as unchanged."""
    if raw.dialect.name == "postgresql":
        pytest.skip("PostgreSQL's integer column cannot hold such a row")
    async with Ledger.from_url(db_url) as before:
        await before.upgrade()
        await before.record_levels(read(dict.fromkeys(SKUS, 10), 0), complete=["shopify"])
    async with raw.begin() as conn:
        await conn.execute(
            text("UPDATE levels SET available = :q WHERE sku = 'SKU-0'"), {"q": 2**32 + 10}
        )
    async with Ledger.from_url(db_url) as after:  # its watermark is built from the rows
        result = await after.record_levels(read(dict.fromkeys(SKUS, 10), 5), complete=["shopify"])
        assert result.changed == 1
        [row] = await after.current_levels("SKU-0")
    assert (row.quantity, row.observed_at) == (10, at(5))


async def test_another_writer_is_noticed(db_url: str) -> None:
    """Two replicas on one database: what one wrote, the other's watermark does not hide."""
    async with Ledger.from_url(db_url) as a, Ledger.from_url(db_url) as b:
        await a.upgrade()
        await a.record_levels(read(dict.fromkeys(SKUS, 10), 0), complete=["shopify"])
        # b hears a webhook: SKU-3 is 2 now
        await b.record_levels([obs(2, 3, sku="SKU-3", source="webhook")])
        # a's next complete read finds SKU-3 at 10 again: a change, not "unchanged"
        result = await a.record_levels(read(dict.fromkeys(SKUS, 10), 5), complete=["shopify"])
        assert result.changed == 1
        [row] = await b.current_levels("SKU-3")
        assert (row.quantity, row.observed_at, row.source) == (10, at(5), "poll")


async def test_a_key_the_complete_read_no_longer_has_stops_being_observed(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    await ledger.record_levels(read(dict.fromkeys(SKUS, 10), 0), complete=["shopify"])
    await ledger.record_levels(read(dict.fromkeys(SKUS, 10), 5), complete=["shopify"])
    without = dict.fromkeys(SKUS[1:], 10)
    await ledger.record_levels(read(without, 10), complete=["shopify"])
    await ledger.record_levels(read(without, 15), complete=["shopify"])
    rows = {r.sku: r.observed_at for r in await ledger.current_levels()}
    assert rows == {"SKU-0": at(5), **dict.fromkeys(SKUS[1:], at(15))}
    # it comes back unchanged: observed again, from then on
    await ledger.record_levels(read(dict.fromkeys(SKUS, 10), 20), complete=["shopify"])
    await ledger.record_levels(read(dict.fromkeys(SKUS, 10), 25), complete=["shopify"])
    rows = {r.sku: r.observed_at for r in await ledger.current_levels()}
    assert rows == dict.fromkeys(SKUS, at(25))
    assert await history(raw) == 6


async def test_a_read_that_is_not_complete_refreshes_only_its_keys(ledger: Ledger) -> None:
    await ledger.record_levels(read(dict.fromkeys(SKUS, 10), 0), complete=["shopify"])
    await ledger.record_levels(read({"SKU-0": 10}, 5))  # a targeted read of one SKU
    rows = {r.sku: r.observed_at for r in await ledger.current_levels()}
    assert rows == {"SKU-0": at(5), **dict.fromkeys(SKUS[1:], at(0))}


async def test_an_observation_older_than_the_complete_read_is_stale(ledger: Ledger) -> None:
    await ledger.record_levels(read(dict.fromkeys(SKUS, 10), 0), complete=["shopify"])
    await ledger.record_levels(read(dict.fromkeys(SKUS, 10), 10), complete=["shopify"])
    # a webhook from before the read arrives late: the read already saw a later value
    result = await ledger.record_levels([obs(3, 5, sku="SKU-0", source="webhook")])
    assert result == RecordResult(1, 0, 1)
    [row] = await ledger.current_levels("SKU-0")
    assert (row.quantity, row.observed_at) == (10, at(10))


async def test_a_first_read_holding_a_new_key_twice_applies_both_in_time_order(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    # A key the watermark has never seen usually takes a shortcut to its first rows;
    # seen twice in one batch, it is applied observation by observation: the later,
    # equal one is no change.
    batch = [obs(3, 5, sku="SKU-0"), obs(3, 0, sku="SKU-0"), obs(8, 0, sku="SKU-1")]
    result = await ledger.record_levels(batch, complete=["shopify"])
    assert result == RecordResult(observed=3, changed=2, stale=0)
    series = await ledger.level_series("SKU-0", since=at(-60))
    assert [(r.quantity, r.observed_at) for r in series] == [(3, at(0))]
    rows = {r.sku: r for r in await ledger.current_levels(skus=["SKU-0", "SKU-1"])}
    assert (rows["SKU-0"].quantity, rows["SKU-0"].changed_at) == (3, at(0))
    assert (rows["SKU-1"].quantity, rows["SKU-1"].changed_at) == (8, at(0))
    assert await history(raw) == 2


async def test_thousands_of_keys_then_a_few_changed_and_one_new_write_only_those(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """Past the sizes the other tests use: the watermark grows its columns as a large
    first read streams in, and takes in a second read that mixes known and new keys."""
    skus = [f"BULK-{n:05}" for n in range(3_000)]
    first = {sku: n % 50 for n, sku in enumerate(skus)}
    result = await ledger.record_levels(read(first, 0), complete=["shopify"])
    assert result == RecordResult(observed=3_000, changed=3_000, stale=0)
    second = {**first, "BULK-00007": 999, "BULK-01500": 77, "BULK-02999": 1, "BULK-NEW": 4}
    async with Writes(raw) as writes:
        result = await ledger.record_levels(read(second, 5), complete=["shopify"])
    assert result == RecordResult(observed=3_001, changed=4, stale=0)
    assert writes.rows == 7  # the three replaced values into history, four current rows
    third = {**second, "BULK-00008": 12}
    assert await ledger.record_levels(read(third, 10), complete=["shopify"]) == RecordResult(
        observed=3_001, changed=1, stale=0
    )
    assert await history(raw) == 3_005
    rows = {r.sku: r for r in await ledger.current_levels()}
    assert {sku: r.quantity for sku, r in rows.items()} == third
    assert {sku: r.observed_at for sku, r in rows.items()} == dict.fromkeys(third, at(10))
    assert rows["BULK-00007"].changed_at == at(5)
    assert rows["BULK-00008"].changed_at == at(10)
    assert rows["BULK-00009"].changed_at == at(0)


async def test_a_key_repeated_chunks_apart_in_a_first_read_is_applied_in_order(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """The marks take a batch's writes only once it commits: a key written by an earlier
    chunk must not be taken for new again (it failed with a unique violation)."""
    batch = [obs(1, 0, sku=f"S{n}") for n in range(CHUNK)]
    batch.append(obs(5, 1, sku="S0"))
    result = await ledger.record_levels(batch, complete=["shopify"])
    assert result == RecordResult(observed=CHUNK + 1, changed=CHUNK + 1, stale=0)
    series = await ledger.level_series("S0", since=at(-1))
    assert [(r.quantity, r.observed_at) for r in series] == [(1, at(0)), (5, at(1))]


async def test_a_known_key_changed_and_changed_back_chunks_apart_records_both(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """A second read: the marks still hold the value from before the batch, so the change
    back must not be taken for 'unchanged' (it was, and the change stuck)."""
    first = [obs(1, 0, sku=f"S{n}") for n in range(CHUNK)]
    await ledger.record_levels(first, complete=["shopify"])
    second = [obs(1, 10, sku=f"S{n}") for n in range(CHUNK)]
    second[0] = obs(9, 10, sku="S0")
    second.append(obs(1, 11, sku="S0"))
    result = await ledger.record_levels(second, complete=["shopify"])
    assert result == RecordResult(observed=CHUNK + 1, changed=2, stale=0)
    series = await ledger.level_series("S0", since=at(-1))
    assert [(r.quantity, r.observed_at) for r in series] == [(1, at(0)), (9, at(10)), (1, at(11))]
    assert (await ledger.current_levels("S0"))[0].quantity == 1
    # and the next read, from marks that took both, is judged as the database says
    third = [obs(1, 20, sku=f"S{n}") for n in range(CHUNK)]
    assert await ledger.record_levels(third, complete=["shopify"]) == RecordResult(CHUNK, 0, 0)


# -- the watermark never changes what is recorded: against the plain path -----------------

quantities = st.lists(st.integers(min_value=0, max_value=3), min_size=4, max_size=4)
reads = st.lists(
    st.tuples(quantities, st.sets(st.integers(0, 3), max_size=1), st.booleans()),
    min_size=1,
    max_size=6,
)


async def _replay(url: str, steps: list, complete: bool) -> tuple[list, list]:
    async with Ledger.from_url(url) as ledger:
        await ledger.upgrade()
        for n, (values, missing, webhook) in enumerate(steps):
            batch: list[LevelObservation] = [
                obs(q, n * 10, sku=SKUS[i]) for i, q in enumerate(values) if i not in missing
            ]
            if webhook:  # another source writes between reads
                await ledger.record_levels([obs(values[0] + 1, n * 10 - 5, sku=SKUS[0])])
            await ledger.record_levels(batch, complete=["shopify"] if complete else ())
        current = [
            (r.sku, r.quantity, r.changed_at, r.source) for r in await ledger.current_levels()
        ]
        series = [
            (r.sku, r.quantity, r.observed_at)
            for sku in SKUS
            for r in await ledger.level_series(sku, since=at(-60))
        ]
    return current, series


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=reads)
async def test_complete_reads_record_what_plain_reads_record(
    tmp_path_factory: pytest.TempPathFactory, steps: list
) -> None:
    folder = tmp_path_factory.mktemp("wm")
    plain = await _replay(f"sqlite:///{folder / 'plain.db'}", steps, complete=False)
    marked = await _replay(f"sqlite:///{folder / 'marked.db'}", steps, complete=True)
    assert marked == plain


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with pg_schema() as url:
        yield url


@pytest.mark.postgres
async def test_postgresql_and_sqlite_record_the_same_rows(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    steps = [
        ([1, 2, 3, 0], set(), False),
        ([1, 2, 3, 0], set(), True),
        ([1, 3, 3, 0], {2}, False),
        ([1, 3, 2, 0], set(), False),
        ([0, 3, 2, 1], {3}, True),
    ]
    folder = tmp_path_factory.mktemp("same")
    on_sqlite = await _replay(f"sqlite:///{folder / 'l.db'}", steps, complete=True)
    on_postgres = await _replay(pg_url, steps, complete=True)
    assert on_sqlite == on_postgres


async def test_a_system_with_hundreds_of_sources_keeps_each_apart(ledger: Ledger) -> None:
    """The watermark holds a key's source in one byte while a system has at most 256; the
    257th widens it instead of wrapping round onto another source's number."""
    keys = [f"K-{i}" for i in range(300)]
    await ledger.record_levels([obs(1, 0, sku=k) for k in keys], complete=["shopify"])  # poll
    await ledger.record_levels([obs(1, 1, sku=f"X-{i}", source=f"src-{i}") for i in range(300)])
    # "late" is the system's 302nd source: in a byte it would be some src-i's number
    await ledger.record_levels([obs(1, 2, sku=k, source="late") for k in keys])
    # each key now reported by its own src-i, the same quantity: its source changes
    await ledger.record_levels(
        [obs(1, 5, sku=k, source=f"src-{i}") for i, k in enumerate(keys)]
        + [obs(1, 5, sku=f"X-{i}", source=f"src-{i}") for i in range(300)],
        complete=["shopify"],
    )
    rows = {r.sku: r.source for r in await ledger.current_levels(skus=keys)}
    assert rows == {k: f"src-{i}" for i, k in enumerate(keys)}


async def test_many_keys_written_twice_in_one_batch_are_marked_with_their_last_value(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """Thousands of keys each written twice by one batch, the two rows chunks apart and
    the keys in shuffled order: the marks take each key's later row (the database's
    value), so a next read of those values finds nothing changed, and one of the earlier
    values finds every key changed."""
    n = CHUNK // 2 + 2_000  # two rows a key, n apart: 4,000 keys have them chunks apart
    keys = [f"S{k}" for k in random.Random(16).sample(range(n), n)]
    first = [obs(k, 0, sku=sku) for k, sku in enumerate(keys)]
    later = [obs(k + 1, 1, sku=sku) for k, sku in enumerate(keys)]
    result = await ledger.record_levels([*first, *later], complete=["shopify"])
    assert result == RecordResult(observed=2 * n, changed=2 * n, stale=0)
    again = [obs(k + 1, 2, sku=sku) for k, sku in enumerate(keys)]
    assert await ledger.record_levels(again, complete=["shopify"]) == RecordResult(n, 0, 0)
    back = [obs(k, 3, sku=sku) for k, sku in enumerate(keys)]
    assert await ledger.record_levels(back, complete=["shopify"]) == RecordResult(n, n, 0)
    assert await history(raw) == 3 * n
