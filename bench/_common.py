"""What every benchmark shares: sizes, checks, timing, memory and the machine."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    """One target: ``value`` compared with ``target`` by ``op`` (``<=`` or ``>=``, or
    ``==``)."""

    name: str
    value: float
    unit: str
    op: str
    target: float
    #: what the same figure is for the baseline, when there is one
    baseline: float | None = None

    @property
    def met(self) -> bool:
        if self.op == "<=":
            return self.value <= self.target
        if self.op == ">=":
            return self.value >= self.target
        return self.value == self.target

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


@dataclass
class Outcome:
    """One run of one benchmark: its checks and whatever else is worth reporting."""

    checks: list[Check] = field(default_factory=list)
    #: figures reported but not judged (row counts, baseline details, sizes)
    facts: dict[str, float | int | str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "checks": [c.to_json() for c in self.checks],
            "facts": self.facts,
            "peak_rss_mb": peak_rss_mb(),
        }


def peak_rss_mb() -> float:
    """This process's peak resident set size (``getrusage(RUSAGE_SELF).ru_maxrss``),
    in MiB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 1024 / 1024


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used so far, all its threads
    included (``getrusage(RUSAGE_SELF)``): the SQLite driver's thread counts, a
    database server or a child process does not."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) another process has used so far, from
    ``/proc/PID/stat``; None where that cannot be read (not Linux, another user's)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # after the ")" closing the command name: state is field 3, utime 14 and stime 15
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: Iterable[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (perf_counter)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return {
        "cpus": str(os.cpu_count()),
        "python": platform.python_version(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "load_average_at_start": load,
    }
