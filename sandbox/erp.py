"""A fake ERP that drops nightly inventory exports as CSV files into a directory.

It is not a server: the product's CSV connector polls the directory, as it would a
share or an SFTP drop. The file format:

* Name ``inventory_YYYYMMDDTHHMMSS.csv`` (the export time in UTC, injected clock).
* UTF-8 without BOM, comma-separated, CRLF line endings, header
  ``ITEM_NO,WAREHOUSE,QTY_ON_HAND,UOM,EXPORTED_AT``, rows ordered by
  ``(ITEM_NO, WAREHOUSE)``.
* ``QTY_ON_HAND`` is an integer counted in ``UOM``: ``EA`` is one unit, ``CS<n>`` a
  carton of ``n`` units (``CS12``: 5 means 60 units). :func:`units_per` converts.
* ``EXPORTED_AT`` is ISO 8601 UTC (``2026-11-02T09:00:00Z``), the same on every row.

How files appear:

* :meth:`FakeERP.export_now` is atomic: it writes ``<name>.csv.tmp`` in the same
  directory, fsyncs, then renames it to ``<name>.csv``. A consumer that ignores
  ``*.tmp`` never sees a half file.
* :meth:`FakeERP.write_partial` imitates an exporter that writes in place: the final
  ``.csv`` name holds the header and about half the rows, the last of them cut
  mid-line (no trailing newline). The file's handle is not kept open; the returned
  :class:`PartialExport` appends the rest with :meth:`PartialExport.finish`.
* Every file's mtime is set to the injected clock's ``now()`` when it is written or
  grows, so a consumer on the same clock can apply a quiet-period rule ("skip files
  modified in the last N seconds") and a half file always looks freshly modified.
* Rows in :attr:`FakeERP.malformed_rows` are written verbatim into the middle of every
  export: :meth:`FakeERP.inject_malformed` adds a non-integer quantity
  (``bad_qty``) or a row missing its ``UOM`` and ``EXPORTED_AT`` columns
  (``missing_column``).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

__all__ = ["HEADER", "ErpLevel", "FakeERP", "PartialExport", "units_per"]

HEADER = ("ITEM_NO", "WAREHOUSE", "QTY_ON_HAND", "UOM", "EXPORTED_AT")
_CARTON = re.compile(r"CS(\d+)")


class Clock(Protocol):
    """The time source the fake reads (aware UTC datetimes)."""

    def now(self) -> datetime: ...


class _WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class ErpLevel:
    """One ERP row: ``qty`` counted in ``uom`` (``EA`` or ``CS<n>``)."""

    sku: str
    warehouse: str
    qty: int
    uom: str = "EA"


def units_per(uom: str) -> int:
    """How many units one ``uom`` holds: 1 for ``EA``, n for ``CS<n>``."""
    if uom == "EA":
        return 1
    match = _CARTON.fullmatch(uom)
    if match is None:
        raise ValueError(f"unknown unit of measure {uom!r}")
    return int(match.group(1))


@dataclass
class PartialExport:
    """A ``.csv`` that is still being written in place."""

    path: Path
    remainder: bytes
    clock: Clock

    def finish(self) -> Path:
        """Append the rest of the file, as the exporter eventually does."""
        with self.path.open("ab") as handle:
            handle.write(self.remainder)
        self.remainder = b""
        _touch(self.path, self.clock.now())
        return self.path


class FakeERP:
    """Writes ERP exports into ``directory``; tests steer it with the control API."""

    def __init__(self, directory: Path, clock: Clock | None = None) -> None:
        self.directory = Path(directory)
        self.clock: Clock = clock or _WallClock()
        self.malformed_rows: list[list[str]] = []
        self.exports: list[Path] = []
        self._levels: dict[tuple[str, str], ErpLevel] = {}

    def set_level(self, sku: str, warehouse: str, qty: int, uom: str = "EA") -> ErpLevel:
        """Set what the next export says for ``sku`` at ``warehouse``."""
        units_per(uom)  # reject unknown units early
        level = ErpLevel(sku, warehouse, qty, uom)
        self._levels[(sku, warehouse)] = level
        return level

    def levels(self) -> list[ErpLevel]:
        return [self._levels[k] for k in sorted(self._levels)]

    def inject_malformed(
        self,
        kind: Literal["bad_qty", "missing_column"],
        sku: str = "SKU-BAD",
        warehouse: str = "WH-EAST",
    ) -> list[str]:
        """Add a broken row to every following export; returns the row."""
        if kind == "bad_qty":
            row = [sku, warehouse, "12.5", "EA", _iso(self.clock.now())]
        else:
            row = [sku, warehouse, "7"]
        self.malformed_rows.append(row)
        return row

    def export_now(self, levels: Iterable[ErpLevel] | None = None) -> Path:
        """Write a complete export atomically (``.tmp`` then rename); return its path.

        ``levels`` defaults to what :meth:`set_level` stored. Raises
        ``FileExistsError`` if an export with the same second already exists.
        """
        now = self.clock.now()
        final = self._final_path(now)
        data = self._render(levels, now)
        tmp = final.with_name(final.name + ".tmp")
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _touch(tmp, now)
        os.replace(tmp, final)
        self.exports.append(final)
        return final

    def write_partial(
        self, levels: Iterable[ErpLevel] | None = None, fraction: float = 0.5
    ) -> PartialExport:
        """Leave a half-written ``.csv`` in place (see the module docstring)."""
        now = self.clock.now()
        final = self._final_path(now)
        data = self._render(levels, now)
        cut = max(len(",".join(HEADER)) + 2, int(len(data) * fraction))
        if data[cut - 1 : cut] == b"\n" and cut < len(data):
            cut += 1  # never end on a clean line break: the cut is mid-row
        final.write_bytes(data[:cut])
        _touch(final, now)
        self.exports.append(final)
        return PartialExport(final, data[cut:], self.clock)

    def _final_path(self, now: datetime) -> Path:
        name = f"inventory_{now.astimezone(UTC):%Y%m%dT%H%M%S}.csv"
        final = self.directory / name
        if final.exists():
            raise FileExistsError(f"an ERP export named {name} already exists")
        self.directory.mkdir(parents=True, exist_ok=True)
        return final

    def _render(self, levels: Iterable[ErpLevel] | None, now: datetime) -> bytes:
        chosen = (
            self.levels()
            if levels is None
            else sorted(levels, key=lambda lv: (lv.sku, lv.warehouse))
        )
        stamp = _iso(now)
        rows = [[lv.sku, lv.warehouse, str(lv.qty), lv.uom, stamp] for lv in chosen]
        middle = len(rows) // 2
        rows[middle:middle] = self.malformed_rows
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
        return buffer.getvalue().encode("utf-8")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _touch(path: Path, moment: datetime) -> None:
    stamp = moment.timestamp()
    os.utime(path, (stamp, stamp))
