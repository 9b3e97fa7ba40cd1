"""The fake ERP's CSV drops: atomic exports, half-written files, bad rows, cartons."""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.clock import ManualClock
from sandbox.erp import HEADER, ErpLevel, FakeERP, units_per

START = datetime(2026, 11, 2, 2, 30, 5, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def erp(tmp_path: Path, clock: ManualClock) -> FakeERP:
    fake = FakeERP(tmp_path / "drop", clock=clock)
    fake.set_level("SKU-2", "WH-EAST", 40)
    fake.set_level("SKU-1", "WH-WEST", 7)
    fake.set_level("SKU-1", "WH-EAST", 12)
    return fake


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))


def test_export_is_named_by_clock_ordered_and_complete(erp: FakeERP) -> None:
    path = erp.export_now()
    assert path.name == "inventory_20261102T023005.csv"
    assert path.read_bytes().startswith(b"ITEM_NO,WAREHOUSE,QTY_ON_HAND,UOM,EXPORTED_AT\r\n")
    assert path.read_bytes().endswith(b"\r\n")
    assert _rows(path) == [
        list(HEADER),
        ["SKU-1", "WH-EAST", "12", "EA", "2026-11-02T02:30:05Z"],
        ["SKU-1", "WH-WEST", "7", "EA", "2026-11-02T02:30:05Z"],
        ["SKU-2", "WH-EAST", "40", "EA", "2026-11-02T02:30:05Z"],
    ]
    assert path.stat().st_mtime == START.timestamp()


def test_export_goes_through_a_tmp_file_and_a_rename(
    erp: FakeERP, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames: list[tuple[str, str, bool]] = []
    real_replace = os.replace

    def spying_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renames.append((Path(src).name, Path(dst).name, Path(dst).exists()))
        real_replace(src, dst)

    monkeypatch.setattr("sandbox.erp.os.replace", spying_replace)
    path = erp.export_now()
    assert renames == [(path.name + ".tmp", path.name, False)]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_explicit_levels_and_a_second_export_in_the_same_second(
    erp: FakeERP, clock: ManualClock
) -> None:
    path = erp.export_now([ErpLevel("SKU-9", "WH-EAST", 3)])
    assert _rows(path)[1:] == [["SKU-9", "WH-EAST", "3", "EA", "2026-11-02T02:30:05Z"]]
    with pytest.raises(FileExistsError):
        erp.export_now()
    clock.advance(86_400)
    assert erp.export_now().name == "inventory_20261103T023005.csv"
    assert len(erp.exports) == 2


def test_partial_file_is_cut_mid_row_and_can_finish(erp: FakeERP, clock: ManualClock) -> None:
    partial = erp.write_partial()
    data = partial.path.read_bytes()
    assert partial.path.name == "inventory_20261102T023005.csv"
    assert data.startswith(b"ITEM_NO,")
    assert 0 < data.count(b"\r\n") < 4
    tail = data.rsplit(b"\r\n", 1)[-1]
    assert tail, "the last row must be cut mid-line"
    assert partial.path.stat().st_mtime == clock.now().timestamp()
    assert [p.name for p in partial.path.parent.iterdir()] == [partial.path.name]

    clock.advance(30)
    partial.finish()
    full = partial.path.read_bytes()
    assert full.startswith(data)
    assert full.endswith(b"\r\n")
    cut_line = full.split(b"\r\n")[data.count(b"\r\n")]
    assert cut_line.startswith(tail)
    assert cut_line != tail
    assert len(_rows(partial.path)) == 4
    assert partial.path.stat().st_mtime == clock.now().timestamp()

    clock.advance(1)
    at_a_line_break = erp.write_partial(fraction=0.0).path.read_bytes()
    assert not at_a_line_break.endswith(b"\n")


def test_malformed_rows_land_in_the_middle_of_every_export(
    erp: FakeERP, clock: ManualClock
) -> None:
    bad_qty = erp.inject_malformed("bad_qty", sku="SKU-Q")
    short = erp.inject_malformed("missing_column", sku="SKU-M")
    rows = _rows(erp.export_now())[1:]
    assert len(rows) == 5
    assert bad_qty in rows
    assert short in rows
    assert rows.index(bad_qty) not in (0, len(rows) - 1)
    assert len(short) == 3
    with pytest.raises(ValueError, match="invalid literal"):
        int(bad_qty[2])
    clock.advance(1)
    assert short in _rows(erp.export_now())


def test_cartons_are_counted_in_cartons(erp: FakeERP) -> None:
    erp.set_level("SKU-CASE", "WH-EAST", 5, uom="CS12")
    rows = {(r[0], r[1]): r for r in _rows(erp.export_now())[1:]}
    row = rows[("SKU-CASE", "WH-EAST")]
    assert (row[2], row[3]) == ("5", "CS12")
    assert int(row[2]) * units_per(row[3]) == 60
    assert units_per("EA") == 1
    with pytest.raises(ValueError, match="unit of measure"):
        erp.set_level("SKU-X", "WH-EAST", 1, uom="PALLET")
