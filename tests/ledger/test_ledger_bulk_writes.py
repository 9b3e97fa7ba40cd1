"""The bulk write paths (COPY on PostgreSQL, executemany on SQLite) store every string
exactly as it came, whatever another system put in it.

A first complete read of a system goes through them (its keys are surely new), and so
does every history row. COPY's text format gives a tab, a newline, a carriage return and
a backslash a meaning, and ``\\N`` means NULL: these keys must come back unchanged, in
a read full of ordinary keys too (the whole chunk then takes the escaping path).
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_testing import at, obs, scalar
from pg_testing import pg_schema
from sql_testing import TIMELINE
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.cluster import libpq_url, pg_base_url
from ledger import InvalidArgument, Ledger, LevelBlock, LevelObservation, RecordResult
from ledger.bulk import bulk_for
from ledger.levels import SQLITE_ADVICE_ROWS

HOSTILE = [
    "TAB\tSKU",
    "LINE\nSKU",
    "CR\rSKU",
    "BACK\\SLASH",
    "\\N",
    "None",
    "\\.",
    "end\\",
    "ÜBER-Größe-😀",
    "'; DROP TABLE level_current; --",
    " lead and trail ",
]


@pytest.mark.parametrize("plain", [0, 500], ids=["alone", "among-500-plain-keys"])
async def test_hostile_keys_round_trip_through_a_first_read_and_a_change(
    ledger: Ledger, raw: AsyncEngine, plain: int
) -> None:
    skus = HOSTILE + [f"PLAIN-{n}" for n in range(plain)]
    first = [
        obs(n, 0, sku=sku, location=f"loc\t{n % 3}", state="on_hand") for n, sku in enumerate(skus)
    ]
    result = await ledger.record_levels(first, complete=["shopify"])
    assert result == RecordResult(observed=len(skus), changed=len(skus), stale=0)
    second = [
        o._replace(observed_at=at(5), quantity=o.quantity + (o.sku in HOSTILE)) for o in first
    ]
    result = await ledger.record_levels(second, complete=["shopify"])
    assert result == RecordResult(observed=len(skus), changed=len(HOSTILE), stale=0)

    rows = {r.sku: r for r in await ledger.current_levels()}
    assert set(rows) == set(skus)
    for n, sku in enumerate(skus):
        row = rows[sku]
        assert (row.location, row.state) == (f"loc\t{n % 3}", "on_hand")
        assert row.quantity == n + (sku in HOSTILE)
        assert row.changed_at == (at(5) if sku in HOSTILE else at(0))
    series = await ledger.level_series("\\N", at(-1))
    assert [(r.sku, r.quantity, r.observed_at) for r in series] == [
        ("\\N", 4, at(0)),
        ("\\N", 5, at(5)),
    ]
    # every change once: the hostile SKUs' first values replaced, into history
    assert await scalar(raw, f"SELECT count(*) FROM {TIMELINE}") == len(skus) + len(HOSTILE)
    replaced = "SELECT sku, location, state, quantity FROM level_history"
    async with raw.connect() as conn:
        history = sorted(tuple(r) for r in await conn.exec_driver_sql(replaced))
    assert history == sorted(
        (sku, f"loc\t{n % 3}", "on_hand", n) for n, sku in enumerate(skus) if sku in HOSTILE
    )


#: text a %-format or a str.format gives a meaning (the first read of a block is
#: formatted for COPY one level at a time)
FORMATS = ["100%", "%s", "%d", "%(x)s", "%%", "{0}", "{}", "}{"]


PLAIN = [f"PLAIN-{n}" for n in range(40)]
#: more levels than a SQLite statement's step takes (64) twice over, and a rest
MANY = [f"MANY-{n}" for n in range(150)]


@pytest.mark.parametrize(
    ("system", "states", "skus", "odd_location", "source"),
    [
        ("erp", ("on_hand", "available"), PLAIN + FORMATS, "loc %s {}", "bulk %s"),
        ("erp%s{0}", ("on_hand", "available", "committed"), PLAIN, "loc", "bulk"),
        # one column that needs COPY's escaping, the others plain: each is checked
        ("erp\t1", ("on_hand", "available"), PLAIN, "loc", "bulk"),
        ("erp", ("on_hand",), PLAIN, "loc\\1", "bulk"),
        ("erp", ("on_hand",), PLAIN, "loc", "bulk\n"),
        ("erp\\N", ("on_hand",), PLAIN, "loc", "bulk"),
        ("erp", ("on_hand",), [*PLAIN, "\\N"], "loc", "bulk"),
        ("erp%s\t", ("incoming", "on_hand"), HOSTILE + FORMATS, "loc\r%s", "bulk\t%s"),
        # SQLite writes 64 levels a statement's step: two steps and a rest, hostile text
        # at both ends of them
        ("erp", ("on_hand", "available"), HOSTILE + MANY + FORMATS, "l\t%s", "b"),
    ],
    ids=[
        "formats-in-skus-locations-sources",
        "formats-in-the-system",
        "tab-in-the-system",
        "backslash-in-a-location",
        "newline-in-the-source",
        "backslash-in-the-system",
        "null-marker-as-a-sku",
        "hostile-everywhere",
        "more-levels-than-a-step",
    ],
)
async def test_a_first_read_as_columns_stores_every_string_as_it_came(
    ledger: Ledger,
    raw: AsyncEngine,
    system: str,
    states: tuple[str, ...],
    skus: list[str],
    odd_location: str,
    source: str,
) -> None:
    """A system's first complete read handed over as columns (a ``LevelBlock``, as the
    connectors hand it) is written straight from them: every SKU, location, state,
    source and system name comes back as it went in, each level's quantities in its
    states' order."""
    locations = [f"{odd_location} {n % 3}" if n % 2 else f"loc-{n % 3}" for n in range(len(skus))]
    quantities = [n * 10 + s for n in range(len(skus)) for s in range(len(states))]
    first = LevelBlock(
        system=system,
        states=states,
        skus=skus,
        locations=locations,
        quantities=quantities,
        observed_at=[at(0)] * len(skus),
        changed_at=[at(-1) if n % 2 else None for n in range(len(skus))],
        sources=[source] * len(skus),
    )
    result = await ledger.record_levels(blocks=[first], complete=[system])
    cells = len(skus) * len(states)
    assert result == RecordResult(observed=cells, changed=cells, stale=0)
    back = {(r.sku, r.location, r.state): r for r in await ledger.current_levels()}
    assert {key: (r.system, r.quantity, r.changed_at, r.source) for key, r in back.items()} == {
        (sku, locations[n], state): (system, n * 10 + s, at(-1) if n % 2 else at(0), source)
        for n, sku in enumerate(skus)
        for s, state in enumerate(states)
    }
    assert await scalar(raw, _not_first_changes()) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("columns", [True, False], ids=["columns", "observations"])
async def test_a_database_speaking_latin1_gets_its_text_in_latin1(columns: bool) -> None:
    """COPY's text is built by hand as UTF-8; a connection whose client encoding is
    another (a LATIN1 database's default) gets its rows through psycopg, which encodes
    them as the server expects: an umlaut comes back an umlaut, not two letters."""
    skus = ["ÜBER-Größe", "café", "PLAIN"]
    async with pg_schema() as url:
        parsed = make_url(url)
        options = f"{parsed.query['options']} -cclient_encoding=LATIN1"
        latin1 = parsed.update_query_dict({"options": options})
        async with Ledger.from_url(latin1.render_as_string(hide_password=False)) as ledger:
            await ledger.upgrade()
            if columns:
                first = LevelBlock(
                    system="erp",
                    states=("on_hand",),
                    skus=skus,
                    locations=["Lager Süd"] * 3,
                    quantities=[1, 2, 3],
                    observed_at=[at(0)] * 3,
                    changed_at=[None] * 3,
                    sources=["bulk"] * 3,
                )
                await ledger.record_levels(blocks=[first], complete=["erp"])
            else:
                read = [obs(n, 0, sku=s, location="Lager Süd") for n, s in enumerate(skus)]
                await ledger.record_levels(read, complete=["shopify"])
            back = await ledger.current_levels()
            # each key's first change, written beside it: its chart starts there
            [change] = await ledger.level_series("café", at(-1))
        assert sorted((r.sku, r.location) for r in back) == sorted((s, "Lager Süd") for s in skus)
        assert (change.location, change.quantity, change.observed_at, change.source) == (
            "Lager Süd",
            2 if columns else 1,
            at(0),
            "bulk" if columns else "poll",
        )


async def test_a_first_read_without_the_systems_changed_at_stores_the_read_time(
    ledger: Ledger,
) -> None:
    """No ``changed_at`` from the system: the first value's is its observation (never a
    NULL, never the text 'None')."""
    await ledger.record_levels([obs(3, 0, sku=s) for s in ("A", "None")], complete=["wms"])
    rows = await ledger.current_levels()
    assert [(r.sku, r.changed_at) for r in rows] == [("A", at(0)), ("None", at(0))]


_SYSTEMS = iter(range(1_000_000))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    skus=st.lists(
        st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12),
        min_size=1,
        max_size=30,
        unique=True,
    )
)
async def test_any_storable_text_round_trips(ledger: Ledger, skus: list[str]) -> None:
    """Every key both backends can store comes back as it went in, from a first read
    (COPY on PostgreSQL); each example reads a system of its own."""
    system = f"erp-{next(_SYSTEMS)}"
    await ledger.record_levels([obs(1, 0, sku=s, system=system) for s in skus], complete=[system])
    back = [r.sku for r in await ledger.current_levels(skus=skus) if r.system == system]
    assert sorted(back) == sorted(skus)


async def test_replicas_making_the_first_complete_read_at_once_write_each_key_once(
    db_url: str, raw: AsyncEngine
) -> None:
    """Three replicas record the same first complete read at the same moment. The first
    one writes the new keys in bulk (COPY on PostgreSQL, which fails on a key that
    exists); the others, serialized behind it, load the keys it wrote and find them
    known: no error, one history row per key, and a second storm writes only changes."""
    skus = [f"SKU-{n:03}" for n in range(300)]

    def read(minutes: float, quantity: int) -> list[LevelObservation]:
        return [obs(quantity, minutes, sku=s, system=sy) for s in skus for sy in ("erp", "wms")]

    replicas = [Ledger.from_url(db_url) for _ in range(3)]
    try:
        await replicas[0].upgrade()
        results = await asyncio.gather(
            *(
                r.record_levels(read(n * 0.01, 5), complete=["erp", "wms"])
                for n, r in enumerate(replicas)
            )
        )
        assert sorted(r.changed for r in results) == [0, 0, 600]
        results = await asyncio.gather(
            *(
                r.record_levels(read(1 + n * 0.01, 6), complete=["erp", "wms"])
                for n, r in enumerate(replicas)
            )
        )
        assert sorted(r.changed for r in results) == [0, 0, 600]
    finally:
        for r in replicas:
            await r.close()
    assert await scalar(raw, f"SELECT count(*) FROM {TIMELINE}") == 1_200
    assert await scalar(raw, "SELECT count(*) FROM level_current") == 600


@pytest.mark.parametrize("field", ["system", "sku", "location", "state", "source"])
@pytest.mark.parametrize(
    "bad", ["NUL\x00SKU", "LONE\ud800HALF", 42], ids=["nul", "surrogate", "int"]
)
@pytest.mark.parametrize("complete", [True, False], ids=["complete-read", "poll"])
async def test_text_no_backend_can_store_is_refused_by_name_and_nothing_is_written(
    ledger: Ledger, raw: AsyncEngine, field: str, bad: object, complete: bool
) -> None:
    """A SQLite ledger would keep a NUL that a PostgreSQL one refuses mid-transaction with
    a driver error: both refuse it first, saying which field, and the batch writes
    nothing (the connectors make such SKUs U+FFFD before they get here)."""
    good = [obs(n, 0, sku=f"SKU-{n}") for n in range(30)]
    hostile = obs(1, 0, sku="SKU-X")._replace(**{field: bad})
    batch = [*good[:10], hostile, *good[10:]]
    with pytest.raises(InvalidArgument, match=f"^{field} "):
        await ledger.record_levels(batch, complete=["shopify"] if complete else ())
    assert await ledger.current_levels() == []
    assert await scalar(raw, "SELECT count(*) FROM level_history") == 0
    # the same ledger goes on recording what it can store
    assert (await ledger.record_levels(good, complete=["shopify"])).changed == 30


async def test_states_added_to_many_levels_rows_keep_what_each_state_had(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """A poll brings a state the ledger has not seen for 150 levels, some of which have
    a row (another state) and some not, interleaved: on SQLite 64 levels a statement's
    step, each level's row inserted or given the state. Each state then reads as its own
    observation, and the earlier state is as it was."""
    skus = [f"SKU-{n:03}" for n in range(200)]
    first = [obs(n, 0, sku=sku, system="wms", state="on_hand") for n, sku in enumerate(skus)]
    await ledger.record_levels(first, complete=["wms"])
    # every other level known, then 50 new ones
    later = [
        obs(1000 + n, 5, sku=sku, system="wms", state="available", source="webhook")
        for n, sku in enumerate(skus[::2] + [f"NEW-{n:02}" for n in range(50)])
    ]
    result = await ledger.record_levels(later)
    assert result == RecordResult(observed=150, changed=150, stale=0)
    back = {(r.sku, r.state): r for r in await ledger.current_levels()}
    assert len(back) == 200 + 150
    for n, sku in enumerate(skus):
        row = back[(sku, "on_hand")]
        assert (row.quantity, row.observed_at, row.changed_at, row.source) == (
            n,
            at(0),
            at(0),
            "poll",
        )
    for n, o in enumerate(later):
        row = back[(o.sku, "available")]
        assert (row.quantity, row.observed_at, row.changed_at, row.source) == (
            1000 + n,
            at(5),
            at(5),
            "webhook",
        )
    assert await scalar(raw, _not_first_changes()) == 0


def _block(system: str, n: int, states: tuple[str, ...], minutes: float) -> LevelBlock:
    return LevelBlock(
        system=system,
        states=states,
        skus=[f"SKU-{i:05}" for i in range(n)],
        locations=[f"loc-{i % 3}" for i in range(n)],
        quantities=[i * 10 + s for i in range(n) for s in range(len(states))],
        observed_at=[at(minutes)] * n,
        changed_at=[at(minutes - 1) if i % 2 else None for i in range(n)],
        sources=["bulk"] * n,
    )


_ROW = "system, sku, location, state, quantity, observed_at, source"


def _not_first_changes(where: str = "TRUE") -> str:
    """SQL counting the rows (those ``where`` picks) a first read must not leave: any
    history row, and any current row that is not its own first change (``since`` and
    ``since_source`` its ``observed_at`` and ``source``, no ``previous``). 0 when each
    key went once into ``level_current`` and nowhere else."""
    return (
        f"SELECT (SELECT count(*) FROM level_history WHERE {where}) "
        f"+ (SELECT count(*) FROM level_current WHERE ({where}) AND NOT (since = observed_at "
        "AND since_source = source AND since_quantity = quantity AND previous IS NULL))"
    )


async def test_first_reads_of_many_chunks_write_each_key_once_as_its_first_change(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """A first read is written from its columns, a chunk at a time (on PostgreSQL
    through a table of the transaction's own). Three chunks of one system, then a second
    system in a transaction of its own: each key once in ``level_current``, as its own
    first change, and nothing in history."""
    erp = _block("erp", 25_000, ("on_hand", "available"), 0)  # 50,000 rows: three chunks
    await ledger.record_levels(blocks=[erp], complete=["erp"])
    wms = _block("wms", 3_000, ("on_hand",), 1)
    await ledger.record_levels(blocks=[wms], complete=["wms"])
    rows = 50_000 + 3_000
    assert await scalar(raw, "SELECT count(*) FROM level_current") == rows
    assert await scalar(raw, _not_first_changes()) == 0
    back = {(r.system, r.sku, r.location, r.state): r for r in await ledger.current_levels()}
    row = back[("erp", "SKU-24999", "loc-0", "available")]
    assert (row.quantity, row.observed_at, row.changed_at) == (249_991, at(0), at(-1))
    row = back[("wms", "SKU-02998", "loc-1", "on_hand")]
    assert (row.quantity, row.changed_at, row.source) == (29_980, at(1), "bulk")


async def test_a_first_read_that_fails_leaves_nothing_and_the_next_one_is_written(
    ledger: Ledger, raw: AsyncEngine
) -> None:
    """A first read that fails after its rows went out (the database refuses one of them:
    here a trigger, as a full disk or a killed connection would) is rolled back whole,
    and the connection records the next first read as if nothing happened (the rows
    staged for it on PostgreSQL went with the failed transaction)."""
    await ledger.record_levels(complete=["wms"])  # the ledger now holds wms as empty
    async with raw.begin() as conn:
        if raw.dialect.name == "postgresql":
            await conn.exec_driver_sql(
                "CREATE FUNCTION refuse_level() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse_level BEFORE INSERT ON levels FOR EACH ROW "
                "WHEN (NEW.system = 'wms' AND NEW.sku = 'SKU-00007') "
                "EXECUTE FUNCTION refuse_level()"
            )
        else:
            await conn.exec_driver_sql(
                "CREATE TRIGGER refuse_level BEFORE INSERT ON levels "
                "WHEN NEW.system = 'wms' AND NEW.sku = 'SKU-00007' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
    with pytest.raises((DBAPIError, psycopg.Error), match="refused"):
        await ledger.record_levels(blocks=[_block("wms", 10, ("on_hand",), 1)], complete=["wms"])
    assert await scalar(raw, "SELECT count(*) FROM level_history") == 0
    assert await scalar(raw, "SELECT count(*) FROM levels") == 0
    await ledger.record_levels(blocks=[_block("erp", 10, ("on_hand",), 2)], complete=["erp"])
    assert await scalar(raw, "SELECT count(*) FROM level_current WHERE system = 'erp'") == 10
    assert await scalar(raw, _not_first_changes("system = 'erp'")) == 0


@pytest.mark.parametrize("as_block", [False, True], ids=["observations", "block"])
async def test_a_state_the_ledger_does_not_keep_is_refused_by_name_and_nothing_is_written(
    ledger: Ledger, raw: AsyncEngine, as_block: bool
) -> None:
    """A level's row has a column per state the connectors know: a state from anywhere
    else (a typo, another system's name, a hostile string) is refused with its name and
    the states the ledger keeps, before anything of the batch is written."""
    hostile = "on\nhand'; DROP TABLE levels; --"
    fine = [obs(n, 0, sku=f"OK-{n}") for n in range(5)]
    if as_block:
        record = ledger.record_levels(
            fine, blocks=[_block("erp", 3, ("on_hand", hostile), 0)], complete=["erp"]
        )
    else:
        record = ledger.record_levels([*fine, obs(1, 0, state=hostile)], complete=["shopify"])
    with pytest.raises(InvalidArgument, match="is not one the ledger keeps") as refused:
        await record
    assert repr(hostile) in str(refused.value)
    assert "on_hand, available" in str(refused.value)
    assert await scalar(raw, "SELECT count(*) FROM levels") == 0
    assert await ledger.current_levels() == []


@pytest.mark.postgres
async def test_a_role_that_may_not_make_temporary_tables_records_a_first_read() -> None:
    """A database whose TEMPORARY privilege was revoked (a hardened role): a first read
    cannot go through a table of the transaction's own, so it goes to ``level_current``
    as one COPY of its rows with their change, and is stored the same."""
    async with pg_schema():  # PostgreSQL reachable (or the test skips or fails)
        base = make_url(pg_base_url())
        admin = await psycopg.AsyncConnection.connect(libpq_url(str(base)), autocommit=True)
        name = f"dw_notemp_{secrets.token_hex(4)}"
        try:
            await admin.execute(f'CREATE ROLE "{name}" LOGIN')
            await admin.execute(f'CREATE DATABASE "{name}"')
            await admin.execute(f'REVOKE TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
            own = base.set(database=name)
            async with await psycopg.AsyncConnection.connect(
                libpq_url(own.render_as_string(hide_password=False)), autocommit=True
            ) as db:
                await db.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
            url = own.set(username=name, password=None).update_query_dict(
                {"options": f"-csearch_path={name}"}
            )
            async with Ledger.from_url(url.render_as_string(hide_password=False)) as ledger:
                await ledger.upgrade()
                await ledger.record_levels(
                    blocks=[_block("erp", 40, ("on_hand", "available"), 0)], complete=["erp"]
                )
                back = await ledger.current_levels()
                assert len(back) == 80
                assert {(r.sku, r.state, r.quantity) for r in back} >= {
                    ("SKU-00039", "available", 391)
                }
                series = await ledger.level_series("SKU-00039", since=at(-5))
                assert sorted((r.state, r.quantity) for r in series) == [
                    ("available", 391),
                    ("on_hand", 390),
                ]
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'DROP ROLE IF EXISTS "{name}"')
            await admin.close()


async def test_a_big_first_read_on_sqlite_advises_postgresql_once(
    ledger: Ledger, raw: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """The person who deploys on the default SQLite file with a big catalog is told, once,
    in the log, why the first full diff takes long and what to set (PostgreSQL, which
    takes the same rows for a quarter of the CPU, is not told anything)."""
    states = ("available", "committed", "on_hand", "incoming")
    levels = SQLITE_ADVICE_ROWS // len(states)

    def advice() -> list[str]:
        return [r.getMessage() for r in caplog.records if "DATABASE_URL" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="ledger.levels"):
        # one level short of the threshold: nothing said
        await ledger.record_levels(
            blocks=[_block("shopify", levels - 1, states, 0)], complete=["shopify"]
        )
        assert advice() == []
        for system in ("wms", "erp"):  # at the threshold, and once more: said once
            await ledger.record_levels(
                blocks=[_block(system, levels, states, 0)], complete=[system]
            )
    rows = await scalar(raw, "SELECT count(*) FROM level_current")
    assert rows == 3 * SQLITE_ADVICE_ROWS - len(states)  # every level recorded regardless
    if raw.dialect.name != "sqlite":
        assert advice() == []
        return
    assert len(advice()) == 1
    said = advice()[0]
    assert f"{SQLITE_ADVICE_ROWS:,} level changes recorded in one batch on SQLite" in said
    assert "PostgreSQL" in said
    assert "driftwatch db upgrade" in said


def test_levels_rows_of_the_wrong_width_are_refused_before_they_are_cut_into_steps() -> None:
    """SQLite binds 64 levels' values a step: a row one value short would shift every
    later level's values into its neighbour's columns, so it is refused whole."""
    bulk = bulk_for("sqlite")
    row = ("erp", "SKU-1", "loc", "2026-01-01 00:00:00.000000", None, "csv", 5)
    steps = bulk.new_levels_steps(("on_hand",), [row] * 130)
    assert [len(params) for _, params in steps] == [2, 2]  # two steps of 64, two rows
    assert [len(params[0]) for _, params in steps] == [64 * 7, 7]
    with pytest.raises(ValueError, match="7 values for states"):
        bulk.new_levels_steps(("on_hand",), [row] * 100 + [row[:-1]] + [row] * 27)
