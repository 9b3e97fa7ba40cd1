"""An ERP (or anything else) that drops inventory exports as CSV files into a directory.

Which file is read
    Every :meth:`CsvConnector.read_levels` scans the directory for files matching
    ``pattern`` and reads the newest *settled* one (newest by mtime, then by name). A
    file is settled when its mtime is at least ``settle_seconds`` older than the
    injected clock's ``now()``: an exporter that writes in place keeps touching the
    file, so a recent mtime means it may still be growing. ``*.tmp`` files (the
    write-then-rename convention) are never read. How many files were passed over
    is in :class:`CsvHealth`. With no settled file at all the read fails with
    :class:`NoSettledExport` rather than reporting an empty warehouse.

    A read that finds the file of the read before, unchanged (same device, inode, size
    and mtime to the nanosecond), reuses its levels instead of parsing it again: an
    ERP drops hourly or daily while diffs run every few minutes, and a drop of 500,000
    rows costs seconds of CPU to parse (BENCHMARKS.md, issue 16). Counted in
    :attr:`CsvHealth.unchanged_reads`.

What a level says
    ``observed_at`` is the time of the data, not of the read: the ``observed_at``
    column when configured, else the file's mtime. Downstream thus sees the age of
    the ERP's batch window.

Units
    Quantities are counts. When ``uom_column`` is configured and the row's cell is
    not empty, the unit of measure wins: ``CS12`` means 12 units per count and the
    configured pack size is *not* applied on top (the file says what it counts).
    Otherwise the count is multiplied by ``mapping.pack_size(name, sku)``.

Bad data
    A row that cannot be read (too few or too many cells, an empty SKU or location,
    a quantity that is not an integer, an unknown unit, an unreadable time) is
    skipped and recorded as a :class:`CsvProblem` with the file name and line
    number; the rest of the file is still read. A last line without a line break is
    treated as cut off mid-write and skipped the same way. When the same SKU ×
    location appears twice, the later row wins and a problem is recorded. A header
    missing a configured column, an empty file, or a file that is not valid text in
    ``encoding`` fails the whole read with :class:`~connectors.errors.ConnectorError`:
    a partial view of a file is not passed on as if it were whole.

The file is streamed through :mod:`csv` in a worker thread (``asyncio.to_thread``),
never loaded whole, so neither memory nor the event loop pays for a big export.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Mapping as MappingOf
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeAlias

from connectors.clock import Clock
from connectors.errors import ConnectorError, WriteRejected
from connectors.health import Health
from connectors.levels import (
    Level,
    LevelWrite,
    TupleMap,
    WriteOutcome,
    build_level,
    map_type,
    tuple_map,
)
from connectors.normalize import Mapping, count_in_text, to_units

__all__ = [
    "CsvColumns",
    "CsvConnector",
    "CsvHealth",
    "CsvProblem",
    "NoSettledExport",
    "UomUnits",
    "default_uom_units",
]

log = logging.getLogger(__name__)

#: Units per count for a unit-of-measure code: a function (raising ``ValueError`` or
#: ``KeyError`` for an unknown code) or a table.
UomUnits: TypeAlias = Callable[[str], int] | MappingOf[str, int]

_CARTON = re.compile(r"(?:CS|CT|PK|BX)(\d+)")
_EACH = frozenset({"EA", "EACH", "PC", "PCS", "UNIT", "UN"})
_SHOWN = 40  # characters of a bad cell quoted in a problem message
#: a level's references, built from their values (the keys shared: millions of rows)
_refs = map_type(("file", "location_id", "sku"))


def _quantities_type(states: tuple[str, ...]) -> Callable[[tuple[int, ...]], TupleMap[int]]:
    """A constructor of a row's quantities from its counts, in ``states``' order."""
    try:
        return map_type(states)
    except ValueError:  # names map_type does not take: tuple_map makes each one
        return partial(tuple_map, states)


def default_uom_units(code: str) -> int:
    """``EA`` (and its usual spellings) is 1 unit; ``CS12``/``CT12``/``PK12``/``BX12``
    is a pack of 12. Anything else raises ``ValueError``."""
    code = code.strip().upper()
    if code in _EACH:
        return 1
    match = _CARTON.fullmatch(code)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"unknown unit of measure {code!r}")
    return int(match.group(1))


class NoSettledExport(ConnectorError):
    """The directory holds no settled export yet (or cannot be listed)."""

    retryable = True


@dataclass(frozen=True)
class CsvColumns:
    """Which header names hold what.

    :param quantities: inventory state → column, e.g. ``{"on_hand": "QTY_ON_HAND"}``.
    :param observed_at: a column holding the time of the data (ISO 8601; a time
        without an offset is read as UTC). Without it, the file's mtime is used.
    """

    sku: str
    location: str
    quantities: MappingOf[str, str]
    observed_at: str | None = None


@dataclass(frozen=True)
class CsvProblem:
    """A row (or line) of a file that was skipped, and why."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class CsvHealth(Health):
    """:class:`Health` plus what the last read of the drop directory found."""

    #: The file the last successful read used, and its mtime.
    file: str | None = None
    file_time: datetime | None = None
    #: Levels the last read produced (before any SKU filter) and rows it skipped.
    levels: int = 0
    problems: int = 0
    #: Files passed over by the last scan: too recently modified, or ``*.tmp``.
    skipped_unsettled: int = 0
    skipped_temporary: int = 0
    #: Reads that found the file of the read before unchanged and reused its levels.
    unchanged_reads: int = 0


@dataclass
class _Parsed:
    file: str
    file_time: datetime
    #: the file as stat saw it before the parse (device, inode, size, mtime in ns)
    identity: tuple[int, int, int, int] = (0, 0, 0, 0)
    levels: list[Level] = field(default_factory=list)
    rows: int = 0
    problems: list[CsvProblem] = field(default_factory=list)


class _BadRow(Exception):
    """One row cannot be read; the message says why."""


class CsvConnector:
    """Reads the newest settled CSV export in ``directory``; never writes."""

    def __init__(
        self,
        name: str,
        directory: Path,
        mapping: Mapping,
        clock: Clock,
        columns: CsvColumns,
        *,
        pattern: str = "*.csv",
        delimiter: str = ",",
        encoding: str = "utf-8",
        settle_seconds: float = 60.0,
        uom_column: str | None = None,
        uom_units: UomUnits | None = None,
    ) -> None:
        if not columns.quantities:
            raise ValueError(f"{name}: CsvColumns.quantities names no column")
        if settle_seconds < 0:
            raise ValueError(f"{name}: settle_seconds must not be negative")
        self.name = name
        self.directory = Path(directory)
        self._mapping = mapping
        self._clock = clock
        self._columns = columns
        self._pattern = pattern
        self._delimiter = delimiter
        self._encoding = encoding
        self._settle = settle_seconds
        self._uom_column = uom_column
        self._uom = _uom_function(uom_units)
        self._health = CsvHealth(system=name)
        #: The rows the last successful read skipped (empty after a clean read).
        self.last_problems: list[CsvProblem] = []
        #: the last file parsed, reused while it is the newest settled file, unchanged
        self._last: _Parsed | None = None

    @property
    def writable(self) -> bool:
        return False

    def health(self) -> CsvHealth:
        return self._health

    async def write_levels(self, writes: Sequence[LevelWrite]) -> list[WriteOutcome]:
        raise WriteRejected(
            f"{self.name} is a CSV drop and cannot be written", system=self.name, code="read_only"
        )

    async def read_levels(self, skus: Sequence[str] | None = None) -> list[Level]:
        now = self._clock.now()
        self._health.requests += 1
        try:
            parsed = await asyncio.to_thread(self._read_newest, now)
        except Exception as exc:
            self._health.failed(str(exc), self._clock.now())
            raise
        self.last_problems = parsed.problems
        health = self._health
        health.file, health.file_time = parsed.file, parsed.file_time
        health.levels, health.problems = parsed.rows, len(parsed.problems)
        if parsed.problems:
            # Counts only: the cells themselves stay in ``last_problems``.
            log.warning(
                "%s: skipped %d row(s) of %s (first at line %d)",
                self.name,
                len(parsed.problems),
                parsed.file,
                parsed.problems[0].line,
            )
        health.succeeded(self._clock.now())
        if skus is None:
            return list(parsed.levels)  # the caller's list: the parse may be reused
        wanted = set(skus)
        return [lv for lv in parsed.levels if lv.sku in wanted]

    # ------------------------------------------------------------ in a worker thread

    def _read_newest(self, now: datetime) -> _Parsed:
        path, info = self._pick(now)
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        last = self._last
        if last is not None and last.file == path.name and last.identity == identity:
            # The same file, unchanged (an ERP drops hourly or daily, diffs run every few
            # minutes): its rows are the levels read last time. Parsing is deterministic
            # (the levels' time is the file's or a column's), so nothing is lost.
            self._health.unchanged_reads += 1
            return last
        self._last = None  # let the old levels go before the new ones are built
        parsed = self._parse(path, info.st_mtime)
        parsed.identity = identity
        self._last = parsed
        return parsed

    def _pick(self, now: datetime) -> tuple[Path, os.stat_result]:
        """The newest settled file; counts the passed-over ones into health."""
        cutoff = now.timestamp() - self._settle
        settled: list[tuple[float, str, Path, os.stat_result]] = []
        unsettled = temporary = 0
        try:
            candidates = sorted(self.directory.glob(self._pattern))
        except OSError as exc:
            raise NoSettledExport(
                f"{self.name}: cannot list {self.directory}: {exc.strerror or exc}",
                system=self.name,
            ) from exc
        for path in candidates:
            if path.name.endswith(".tmp"):
                temporary += 1
                continue
            try:
                info = path.stat()
            except FileNotFoundError:
                continue  # renamed or removed since the listing
            if not stat.S_ISREG(info.st_mode):
                continue
            if info.st_mtime > cutoff:
                unsettled += 1
                continue
            settled.append((info.st_mtime, path.name, path, info))
        self._health.skipped_unsettled = unsettled
        self._health.skipped_temporary = temporary
        if not settled:
            if not self.directory.is_dir():
                why = "does not exist"
            elif unsettled:
                why = f"holds {unsettled} file(s) modified in the last {self._settle:g}s only"
            else:
                why = f"holds no file matching {self._pattern}"
            raise NoSettledExport(f"{self.name}: {self.directory} {why}", system=self.name)
        _, _, path, info = max(settled, key=lambda s: s[:2])
        return path, info

    def _parse(self, path: Path, mtime: float) -> _Parsed:
        file_time = datetime.fromtimestamp(mtime, UTC)
        result = _Parsed(file=path.name, file_time=file_time)
        seen: dict[tuple[str, str], int] = {}
        levels: dict[tuple[str, str], Level] = {}
        #: this file's SKU spellings and locations, each worked out once (a SKU is on
        #: a row per location)
        known: _Known = ({}, {})
        line = 0
        try:
            terminated = _ends_with_line_break(path)
            with path.open("r", encoding=self._encoding, newline="") as handle:
                reader = csv.reader(handle, delimiter=self._delimiter, strict=True)
                header = next(reader, None)
                if header is None:
                    raise ConnectorError(f"{self.name}: {path.name} is empty", system=self.name)
                line = reader.line_num
                index = self._index(path.name, header)
                level_of = self._reader(len(header), index, path.name, file_time, known)
                for line, row, last in _with_last(reader, lambda: reader.line_num):
                    if not "".join(row).strip():
                        continue  # blank line
                    if last and not terminated:
                        result.problems.append(
                            CsvProblem(
                                path.name,
                                line,
                                "the last line has no line break (cut off mid-write?)",
                            )
                        )
                        continue
                    try:
                        level = level_of(row)
                    except _BadRow as bad:
                        result.problems.append(CsvProblem(path.name, line, str(bad)))
                        continue
                    key = (level.sku, level.location)
                    if key in seen:
                        result.problems.append(
                            CsvProblem(
                                path.name,
                                line,
                                f"{level.sku} at {level.location} repeats line {seen[key]};"
                                " the later row wins",
                            )
                        )
                    seen[key] = line
                    levels[key] = level
        except UnicodeDecodeError as exc:
            raise ConnectorError(
                f"{self.name}: {path.name} is not valid {self._encoding} text (after line {line})",
                system=self.name,
            ) from exc
        except csv.Error as exc:
            raise ConnectorError(
                f"{self.name}: {path.name} cannot be read as CSV after line {line}: {exc}",
                system=self.name,
            ) from exc
        except OSError as exc:
            raise ConnectorError(
                f"{self.name}: cannot read {path.name}: {exc.strerror or exc}", system=self.name
            ) from exc
        result.levels = list(levels.values())
        result.rows = len(result.levels)
        return result

    def _index(self, file: str, header: list[str]) -> dict[str, int]:
        """Column name → position, for every configured column; fails naming the first
        one missing."""
        names = [cell.strip().lstrip("\ufeff").strip() for cell in header]
        positions: dict[str, int] = {}
        for position, name in enumerate(names):
            positions.setdefault(name, position)
        c = self._columns
        wanted = [c.sku, c.location, *c.quantities.values()]
        if c.observed_at:
            wanted.append(c.observed_at)
        if self._uom_column:
            wanted.append(self._uom_column)
        missing = [w for w in wanted if w not in positions]
        if missing:
            raise ConnectorError(
                f"{self.name}: {file} has no column {missing[0]!r}"
                + (f" (nor {', '.join(repr(m) for m in missing[1:])})" if missing[1:] else "")
                + f"; its header is {_shown(self._delimiter.join(names), 200)}",
                system=self.name,
            )
        return {w: positions[w] for w in wanted}

    def _reader(
        self,
        width: int,
        index: dict[str, int],
        file: str,
        file_time: datetime,
        known: _Known,
    ) -> Callable[[list[str]], Level]:
        """The level of one row of ``file`` (``_BadRow`` for a row that cannot be read):
        a function made once a file, holding where each cell is, so a row costs only its
        own work (a drop of 500,000 rows; BENCHMARKS.md, issue 16)."""
        c, name, mapping = self._columns, self.name, self._mapping
        sku_column, location_column = c.sku, c.location
        sku_at, location_at = index[sku_column], index[location_column]
        counted = [(column, index[column]) for column in c.quantities.values()]
        # compact, the state names shared: a file holds up to millions of rows
        quantities_of = _quantities_type(tuple(c.quantities))
        time_column = c.observed_at or ""
        time_at = index[time_column] if time_column else -1
        units = self._units_per_count if self._uom_column else None
        skus, places = known

        def level(row: list[str]) -> Level:
            if len(row) != width:
                raise _BadRow(f"{len(row)} cells where the header has {width}")
            raw_sku, raw_location = row[sku_at].strip(), row[location_at].strip()
            if not raw_sku:
                raise _BadRow(f"empty {sku_column}")
            if not raw_location:
                raise _BadRow(f"empty {location_column}")
            spelled = skus.get(raw_sku)
            if spelled is None:
                sku = mapping.normalize_sku(raw_sku)
                spelled = skus[raw_sku] = (sku, mapping.pack_size(name, sku) if sku else 0)
            sku, pack = spelled
            if not sku:
                raise _BadRow(f"{sku_column} {_shown(raw_sku)} normalizes to nothing")
            if units is not None:
                pack = units(row, index, pack)
            counts: list[int] = []
            for column, at in counted:
                cell = row[at]
                count = count_in_text(cell)
                if count is None:
                    raise _BadRow(f"{column} {_shown(cell.strip())} is not an integer")
                counts.append(count if pack == 1 else to_units(count, pack))
            observed = file_time if time_at < 0 else _parse_time(row[time_at], time_column)
            place = places.get(raw_location)
            if place is None:
                interned = sys.intern(raw_location)  # a few locations, many rows
                key = mapping.location_key(name, interned) or interned
                place = places[interned] = (interned, key)
            return build_level(
                system=name,
                sku=sku,
                location=place[1],
                quantities=quantities_of(tuple(counts)),
                observed_at=observed,
                refs=_refs((file, place[0], sku if sku == raw_sku else raw_sku)),
            )

        return level

    def _units_per_count(self, row: list[str], index: dict[str, int], mapped: int) -> int:
        """The row's unit of measure when it has one, else ``mapped`` (the mapping's
        pack size for the SKU)."""
        if self._uom_column:
            code = row[index[self._uom_column]].strip()
            if code:
                try:
                    units = self._uom(code)
                except (KeyError, ValueError):
                    raise _BadRow(f"unknown unit of measure {_shown(code)}") from None
                if isinstance(units, bool) or not isinstance(units, int) or units < 1:
                    raise _BadRow(f"unit of measure {_shown(code)} gives {units!r} units")
                return units
        return mapped


#: one file's SKU spellings -> (SKU, the mapping's pack size), and its locations ->
#: (the id interned, the location key)
_Known = tuple[dict[str, tuple[str, int]], dict[str, tuple[str, str]]]


def _uom_function(units: UomUnits | None) -> Callable[[str], int]:
    if units is None:
        return default_uom_units
    if isinstance(units, MappingOf):
        table = dict(units)
        return lambda code: table[code]
    return units


def _with_last(
    reader: Iterator[list[str]], line_of: Callable[[], int]
) -> Iterator[tuple[int, list[str], bool]]:
    """``(line number, row, is the last row)``; the line number is the row's last
    physical line (``line_of`` reads the reader's ``line_num``).

    Reads one row ahead, so the row is known to be the last before it is handed out.
    """
    pending = next(reader, None)
    pending_line = line_of()
    while pending is not None:
        following = next(reader, None)
        yield pending_line, pending, following is None
        pending, pending_line = following, line_of()


def _ends_with_line_break(path: Path) -> bool:
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return True
        handle.seek(size - 1)
        return handle.read(1) in (b"\n", b"\r")


def _parse_time(cell: str, column: str) -> datetime:
    text = cell.strip()
    if not text:
        raise _BadRow(f"empty {column}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _BadRow(f"{column} {_shown(text)} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _shown(cell: str, limit: int = _SHOWN) -> str:
    return repr(cell if len(cell) <= limit else cell[:limit] + "…")
