"""The CSV drop connector against the fake ERP's exports, as real files in tmp_path."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from connector_testing import ERP_COLUMNS, SETTLE, TableMapping, csv_connector

from connectors.clock import ManualClock
from connectors.csv import CsvColumns, CsvConnector, CsvProblem, NoSettledExport, default_uom_units
from connectors.errors import ConnectorError, WriteRejected
from connectors.levels import Level, LevelWrite
from sandbox.erp import FakeERP


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    return tmp_path / "drop"


@pytest.fixture
def erp(drop: Path, clock: ManualClock) -> FakeERP:
    fake = FakeERP(drop, clock=clock)
    fake.set_level("SKU-1", "WH-EAST", 12)
    fake.set_level("SKU-1", "WH-WEST", 7)
    fake.set_level("SKU-2", "WH-EAST", 40)
    fake.set_level("SKU-3", "WH-EAST", 2)
    return fake


@pytest.fixture
def connector(drop: Path, mapping: TableMapping, clock: ManualClock) -> CsvConnector:
    return csv_connector(drop, mapping, clock)


def _write_file(directory: Path, name: str, data: bytes, clock: ManualClock) -> Path:
    """A file dropped by hand (for shapes the fake ERP never writes), modified now."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    os.utime(path, (clock.now().timestamp(), clock.now().timestamp()))
    return path


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def _on_hand(levels: list[Level]) -> dict[tuple[str, str], int]:
    return {(lv.sku, lv.location): lv.quantities["on_hand"] for lv in levels}


async def test_the_newest_settled_file_is_read(
    connector: CsvConnector, erp: FakeERP, clock: ManualClock
) -> None:
    erp.export_now()
    clock.advance(3600)
    erp.set_level("SKU-2", "WH-EAST", 41)
    newest = erp.export_now()
    clock.advance(SETTLE)
    erp.set_level("SKU-2", "WH-EAST", 42)
    fresh = erp.export_now()  # written this very second: not settled yet

    levels = await connector.read_levels()
    assert _on_hand(levels)[("SKU-2", "east")] == 41
    health = connector.health()
    assert (health.file, health.skipped_unsettled) == (newest.name, 1)
    assert health.file_time == clock.now() - timedelta(seconds=SETTLE)

    clock.advance(SETTLE - 1)
    assert _on_hand(await connector.read_levels())[("SKU-2", "east")] == 41
    clock.advance(1)
    assert _on_hand(await connector.read_levels())[("SKU-2", "east")] == 42
    assert (connector.health().file, connector.health().skipped_unsettled) == (fresh.name, 0)


async def test_levels_are_normalized_and_observed_at_the_files_time(
    connector: CsvConnector, erp: FakeERP, clock: ManualClock
) -> None:
    exported_at = clock.now()
    path = erp.export_now()
    clock.advance(2 * 3600)
    levels = await connector.read_levels()
    assert _on_hand(levels) == {
        ("SKU-1", "east"): 12,
        ("SKU-1", "west"): 7,
        ("SKU-2", "east"): 40,
        ("SKU-3", "east"): 2,
    }
    assert {lv.observed_at for lv in levels} == {exported_at}  # not the read time
    assert {lv.system for lv in levels} == {"erp"}
    assert levels[0].refs == {"file": path.name, "location_id": "WH-EAST", "sku": "SKU-1"}
    assert connector.last_problems == []


async def test_an_observed_at_column_wins_over_the_files_mtime(
    drop: Path, mapping: TableMapping, erp: FakeERP, clock: ManualClock
) -> None:
    exported_at = clock.now()
    path = erp.export_now()
    copied_at = exported_at + timedelta(minutes=30)  # e.g. copied to the share later
    os.utime(path, (copied_at.timestamp(), copied_at.timestamp()))
    clock.advance(3600)
    by_mtime = await csv_connector(drop, mapping, clock).read_levels()
    assert {lv.observed_at for lv in by_mtime} == {copied_at}
    columns = replace(ERP_COLUMNS, observed_at="EXPORTED_AT")
    by_column = await csv_connector(drop, mapping, clock, columns=columns).read_levels()
    assert {lv.observed_at for lv in by_column} == {exported_at}


async def test_an_unchanged_export_is_parsed_once_and_any_change_is_read(
    connector: CsvConnector, drop: Path, clock: ManualClock
) -> None:
    """Diffs run every few minutes, an ERP drops hourly: the same file, unchanged, is
    not parsed again. A file changed in place, or replaced by another of the same name,
    size and mtime, is."""
    header = "ITEM_NO,WAREHOUSE,QTY_ON_HAND,UOM\n"
    path = _write_file(drop, "stock.csv", f"{header}SKU-1,WH-EAST,12,\n".encode(), clock)
    clock.advance(SETTLE)
    first = await connector.read_levels()
    assert _on_hand(first) == {("SKU-1", "east"): 12}
    assert connector.health().unchanged_reads == 0

    first.clear()  # the caller's list: the reused levels are not the caller's to lose
    clock.advance(3 * 3600)  # the same file, hours later
    again = await connector.read_levels()
    assert _on_hand(again) == {("SKU-1", "east"): 12}
    assert again[0].observed_at == clock.now() - timedelta(hours=3, seconds=SETTLE)
    assert (connector.health().unchanged_reads, connector.health().requests) == (1, 2)

    # rewritten in place, same size, new mtime
    _write_file(drop, "stock.csv", f"{header}SKU-1,WH-EAST,13,\n".encode(), clock)
    clock.advance(SETTLE)
    assert _on_hand(await connector.read_levels()) == {("SKU-1", "east"): 13}
    assert connector.health().unchanged_reads == 1

    # replaced by rename (write-then-rename): same name, size and mtime to the
    # nanosecond, another inode
    before = path.stat()
    fresh = drop / "stock.csv.tmp"
    fresh.write_bytes(f"{header}SKU-1,WH-EAST,14,\n".encode())
    os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(fresh, path)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert _on_hand(await connector.read_levels()) == {("SKU-1", "east"): 14}
    assert connector.health().unchanged_reads == 1
    assert _on_hand(await connector.read_levels(["SKU-1"])) == {("SKU-1", "east"): 14}
    assert connector.health().unchanged_reads == 2


async def test_a_half_written_file_is_not_read_until_finished_and_settled(
    connector: CsvConnector, erp: FakeERP, clock: ManualClock
) -> None:
    complete = erp.export_now()
    clock.advance(3600)
    erp.set_level("SKU-3", "WH-EAST", 3)
    partial = erp.write_partial()

    clock.advance(SETTLE - 1)  # still within the quiet period
    levels = await connector.read_levels()
    assert connector.health().file == complete.name
    assert connector.health().skipped_unsettled == 1
    assert _on_hand(levels)[("SKU-3", "east")] == 2

    clock.advance(SETTLE - 2)
    partial.finish()  # the exporter appends the rest: the mtime moves on
    clock.advance(SETTLE - 1)
    await connector.read_levels()
    assert connector.health().file == complete.name

    clock.advance(1)
    levels = await connector.read_levels()
    assert connector.health().file == partial.path.name
    assert len(levels) == 4
    assert _on_hand(levels)[("SKU-3", "east")] == 3
    assert connector.last_problems == []


async def test_a_file_cut_off_mid_write_is_read_without_its_last_line(
    connector: CsvConnector, erp: FakeERP, clock: ManualClock
) -> None:
    partial = erp.write_partial()  # the exporter died: the file never grows again
    clock.advance(SETTLE)
    text = _read_text(partial.path)
    complete_rows = text.count("\r\n") - 1  # lines after the header that were finished
    assert not text.endswith("\n")
    assert 0 < complete_rows < 4

    levels = await connector.read_levels()
    assert len(levels) == complete_rows
    assert connector.last_problems == [
        CsvProblem(
            partial.path.name,
            complete_rows + 2,
            "the last line has no line break (cut off mid-write?)",
        )
    ]
    assert connector.health().problems == 1


async def test_malformed_rows_are_reported_with_file_and_line_and_skipped(
    connector: CsvConnector, erp: FakeERP, clock: ManualClock
) -> None:
    erp.inject_malformed("bad_qty")
    erp.inject_malformed("missing_column", sku="SKU-SHORT")
    path = erp.export_now()
    clock.advance(SETTLE)

    levels = await connector.read_levels()
    assert set(_on_hand(levels)) == {
        ("SKU-1", "east"),
        ("SKU-1", "west"),
        ("SKU-2", "east"),
        ("SKU-3", "east"),
    }
    # header, SKU-1@EAST, SKU-1@WEST, then the two injected rows in the middle
    assert connector.last_problems == [
        CsvProblem(path.name, 4, "QTY_ON_HAND '12.5' is not an integer"),
        CsvProblem(path.name, 5, "3 cells where the header has 5"),
    ]
    assert str(connector.last_problems[0]) == f"{path.name}:4: QTY_ON_HAND '12.5' is not an integer"
    health = connector.health()
    assert (health.levels, health.problems, health.failures) == (4, 2, 0)
    assert health.last_success == clock.now()


async def test_empty_cells_and_unknown_units_are_problems(
    drop: Path, connector: CsvConnector, clock: ManualClock
) -> None:
    _write_file(
        drop,
        "inventory.csv",
        b"ITEM_NO,WAREHOUSE,QTY_ON_HAND,UOM,EXPORTED_AT\r\n"
        b",WH-EAST,1,EA,x\r\n"
        b"SKU-1,,1,EA,x\r\n"
        b"SKU-1,WH-EAST,,EA,x\r\n"
        b"SKU-1,WH-EAST,1,PALLET,x\r\n"
        b"SKU-1,WH-EAST,1_000,EA,x\r\n"
        b"\r\n"
        b" , ,\t,,\r\n"  # blank cells only: a blank line too
        b"SKU-2,WH-EAST,-3,EA,x,extra\r\n"
        b"SKU-3,WH-EAST,-3,EA,x\r\n"
        + "SKU-4,WH-EAST,\u0663,EA,x\r\n".encode()  # an Arabic-Indic 3: int() reads it
        + b"SKU-5,WH-EAST,"
        + b"9" * 40
        + b",EA,x\r\n",
        clock,
    )
    clock.advance(SETTLE)
    levels = await connector.read_levels()
    assert _on_hand(levels) == {("SKU-3", "east"): -3}
    assert [(p.line, p.message) for p in connector.last_problems] == [
        (2, "empty ITEM_NO"),
        (3, "empty WAREHOUSE"),
        (4, "QTY_ON_HAND '' is not an integer"),
        (5, "unknown unit of measure 'PALLET'"),
        (6, "QTY_ON_HAND '1_000' is not an integer"),
        (9, "6 cells where the header has 5"),
        (11, "QTY_ON_HAND '\u0663' is not an integer"),
        (12, f"QTY_ON_HAND '{'9' * 40}' is not an integer"),
    ]


async def test_counts_are_read_as_count_in_text_reads_them(
    drop: Path, connector: CsvConnector, clock: ManualClock
) -> None:
    """Plain digits take a shorter way than signed or padded counts: both read the same
    counts and refuse the same cells (18 digits at most)."""
    _write_file(
        drop,
        "inventory.csv",
        b"ITEM_NO,WAREHOUSE,QTY_ON_HAND,UOM,EXPORTED_AT\r\n"
        b"SKU-1,WH-EAST,007,EA,x\r\n"
        b"SKU-2,WH-EAST, 12 ,EA,x\r\n"
        b"SKU-3,WH-EAST,+5,EA,x\r\n"
        + b"SKU-4,WH-EAST,"
        + b"9" * 18
        + b",EA,x\r\n"
        + b"SKU-5,WH-EAST,"
        + b"9" * 19
        + b",EA,x\r\n"
        + "SKU-6,WH-EAST,\u00b9,EA,x\r\n".encode()  # superscript one: isdigit() says yes
        + "SKU-7,WH-EAST,\uff11,EA,x\r\n".encode(),  # a fullwidth 1: int() reads it
        clock,
    )
    clock.advance(SETTLE)
    levels = await connector.read_levels()
    assert _on_hand(levels) == {
        ("SKU-1", "east"): 7,
        ("SKU-2", "east"): 12,
        ("SKU-3", "east"): 5,
        ("SKU-4", "east"): 10**18 - 1,
    }
    assert [(p.line, p.message) for p in connector.last_problems] == [
        (6, f"QTY_ON_HAND '{'9' * 19}' is not an integer"),
        (7, "QTY_ON_HAND '\u00b9' is not an integer"),
        (8, "QTY_ON_HAND '\uff11' is not an integer"),
    ]


async def test_a_repeated_sku_and_location_keeps_the_last_row(
    connector: CsvConnector, erp: FakeERP, clock: ManualClock
) -> None:
    erp.set_level("OLD-SKU-9", "WH-EAST", 5)  # an alias of SKU-9 ...
    erp.set_level("SKU-9", "WH-EAST", 6)  # ... listed again under its own name
    path = erp.export_now()
    clock.advance(SETTLE)
    levels = await connector.read_levels()
    assert _on_hand(levels)[("SKU-9", "east")] == 6
    assert len(levels) == 5
    lines = _read_text(path).splitlines()
    first = 1 + next(i for i, ln in enumerate(lines) if ln.startswith("OLD-SKU-9"))
    second = 1 + next(i for i, ln in enumerate(lines) if ln.startswith("SKU-9"))
    assert connector.last_problems == [
        CsvProblem(path.name, second, f"SKU-9 at east repeats line {first}; the later row wins")
    ]


async def test_cartons_are_converted_and_the_uom_wins_over_the_pack_size(
    drop: Path, mapping: TableMapping, erp: FakeERP, clock: ManualClock
) -> None:
    erp.set_level("SKU-1", "WH-EAST", 5, uom="CS12")
    erp.set_level("SKU-PACK", "WH-EAST", 3)  # "EA" in the file; packs of 6 in the mapping
    erp.set_level("SKU-PACK", "WH-WEST", 2, uom="CS6")
    erp.export_now()
    clock.advance(SETTLE)

    with_uom = _on_hand(await csv_connector(drop, mapping, clock).read_levels())
    assert with_uom[("SKU-1", "east")] == 60
    assert with_uom[("SKU-PACK", "east")] == 3
    assert with_uom[("SKU-PACK", "west")] == 12

    without_uom = _on_hand(await csv_connector(drop, mapping, clock, uom_column=None).read_levels())
    assert without_uom[("SKU-1", "east")] == 5
    assert without_uom[("SKU-PACK", "east")] == 18
    assert without_uom[("SKU-PACK", "west")] == 12


async def test_a_uom_table_replaces_the_default_rules(
    drop: Path, mapping: TableMapping, erp: FakeERP, clock: ManualClock
) -> None:
    erp.set_level("SKU-1", "WH-EAST", 5, uom="CS12")
    erp.set_level("SKU-2", "WH-EAST", 1, uom="CS24")
    erp.export_now()
    clock.advance(SETTLE)
    connector = CsvConnector(
        "erp",
        drop,
        mapping,
        clock,
        ERP_COLUMNS,
        settle_seconds=SETTLE,
        uom_column="UOM",
        uom_units={"EA": 1, "CS12": 10},  # this ERP's CS12 really holds ten
    )
    levels = _on_hand(await connector.read_levels())
    assert levels[("SKU-1", "east")] == 50
    assert ("SKU-2", "east") not in levels
    assert [p.message for p in connector.last_problems] == ["unknown unit of measure 'CS24'"]


def test_default_uom_units() -> None:
    assert [default_uom_units(c) for c in ("EA", "ea", "CS12", "PK6", "BX1")] == [1, 1, 12, 6, 1]
    for bad in ("CS", "CS0", "PALLET", ""):
        with pytest.raises(ValueError, match="unknown unit of measure"):
            default_uom_units(bad)


async def test_a_missing_column_names_the_file_and_the_column(
    drop: Path, mapping: TableMapping, erp: FakeERP, clock: ManualClock
) -> None:
    path = erp.export_now()
    clock.advance(SETTLE)
    columns = replace(ERP_COLUMNS, quantities={"on_hand": "QTY_ON_HAND", "committed": "QTY_ALLOC"})
    connector = csv_connector(drop, mapping, clock, columns=columns)
    with pytest.raises(ConnectorError, match=rf"{path.name} has no column 'QTY_ALLOC'"):
        await connector.read_levels()
    health = connector.health()
    assert (health.failures, health.last_success) == (1, None)
    assert health.last_error is not None
    assert "QTY_ALLOC" in health.last_error

    wrong_uom = CsvConnector(
        "erp", drop, mapping, clock, ERP_COLUMNS, settle_seconds=SETTLE, uom_column="UNIT"
    )
    with pytest.raises(ConnectorError, match=rf"{path.name} has no column 'UNIT'"):
        await wrong_uom.read_levels()


async def test_no_settled_file_is_an_error_not_an_empty_warehouse(
    connector: CsvConnector, erp: FakeERP, clock: ManualClock
) -> None:
    with pytest.raises(NoSettledExport, match="does not exist"):
        await connector.read_levels()
    erp.export_now()
    with pytest.raises(NoSettledExport, match="1 file"):
        await connector.read_levels()
    assert connector.health().skipped_unsettled == 1
    assert connector.health().failures == 2
    assert NoSettledExport.retryable
    clock.advance(SETTLE)
    assert len(await connector.read_levels()) == 4
    assert connector.health().error_streak == 0


async def test_tmp_files_are_never_read(
    drop: Path, mapping: TableMapping, erp: FakeERP, clock: ManualClock
) -> None:
    erp.export_now()
    clock.advance(3600)
    _write_file(
        drop,
        "inventory_20261102T100000.csv.tmp",
        b"ITEM_NO,WAREHOUSE,QTY_ON_HAND,UOM,EXPORTED_AT\r\nSKU-1,WH-EAST,999,EA,x\r\n",
        clock,
    )
    clock.advance(3600)
    connector = CsvConnector(
        "erp", drop, mapping, clock, ERP_COLUMNS, pattern="inventory_*", uom_column="UOM"
    )
    levels = await connector.read_levels()
    assert _on_hand(levels)[("SKU-1", "east")] == 12
    assert connector.health().skipped_temporary == 1


async def test_a_file_that_is_not_valid_text_fails_the_read(
    drop: Path, connector: CsvConnector, clock: ManualClock
) -> None:
    _write_file(
        drop,
        "inventory.csv",
        b"ITEM_NO,WAREHOUSE,QTY_ON_HAND,UOM,EXPORTED_AT\r\nSKU-\xff,WH-EAST,1,EA,x\r\n",
        clock,
    )
    clock.advance(SETTLE)
    with pytest.raises(ConnectorError, match=r"inventory.csv is not valid utf-8 text"):
        await connector.read_levels()


async def test_an_empty_file_fails_the_read(
    drop: Path, connector: CsvConnector, clock: ManualClock
) -> None:
    _write_file(drop, "inventory.csv", b"", clock)
    clock.advance(SETTLE)
    with pytest.raises(ConnectorError, match=r"inventory.csv is empty"):
        await connector.read_levels()


async def test_another_dialect_and_a_bom(
    drop: Path, mapping: TableMapping, clock: ManualClock
) -> None:
    text = (
        "\ufeffArtikel;Lager;Bestand;Stand\n"
        "sku-1;WH-EAST;4;2026-11-01T23:00:00+01:00\n"
        '"sku;2";WH-WEST;5;2026-11-01T22:00:00\n'
        "SKU-3;WH-WEST;6;yesterday\n"
    )
    _write_file(drop, "stock.txt", text.encode("utf-8"), clock)
    clock.advance(SETTLE)
    connector = CsvConnector(
        "erp",
        drop,
        mapping,
        clock,
        CsvColumns(
            sku="Artikel", location="Lager", quantities={"on_hand": "Bestand"}, observed_at="Stand"
        ),
        pattern="*.txt",
        delimiter=";",
    )
    levels = await connector.read_levels()
    assert [(lv.sku, lv.location, lv.quantities["on_hand"], lv.observed_at) for lv in levels] == [
        ("SKU-1", "east", 4, datetime(2026, 11, 1, 22, 0, tzinfo=UTC)),
        ("SKU;2", "west", 5, datetime(2026, 11, 1, 22, 0, tzinfo=UTC)),
    ]
    assert [(p.line, p.message) for p in connector.last_problems] == [
        (4, "Stand 'yesterday' is not an ISO 8601 time")
    ]


async def test_reads_can_be_filtered_and_writes_are_rejected(
    connector: CsvConnector, erp: FakeERP, clock: ManualClock
) -> None:
    erp.export_now()
    clock.advance(SETTLE)
    levels = await connector.read_levels(["SKU-1", "SKU-404"])
    assert sorted(_on_hand(levels)) == [("SKU-1", "east"), ("SKU-1", "west")]
    assert connector.writable is False
    with pytest.raises(WriteRejected, match="cannot be written") as raised:
        await connector.write_levels([LevelWrite("SKU-1", "east", "on_hand", 1, 12, "k")])
    assert raised.value.code == "read_only"
