"""Sync health and rate limits: what each connector's counters say, as incidents.

Pure evaluation over connector :class:`~connectors.health.Health` snapshots and a
small rolling window of past snapshots (kept by :class:`HealthWindow`), producing
pipeline candidates in the ``health:`` family:

=====================  ==============================================================
``sync_stale``         no successful read within the system's SLA (critical at 2×)
``sync_failing``       three or more reads in a row failed
``rate_limited``       throttled (429 / THROTTLED) at least ``throttle_alarm`` times
                       within the window, or the cost bucket more than 90 % used
``retry_storm``        at least ``retry_alarm`` retries within the window
=====================  ==============================================================
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.health import Health
from ledger import HealthCounters
from monitors.pipeline import Candidate

FAMILY = "health:"
#: the incident kinds sync health reports (see the table above)
KINDS: tuple[str, ...] = ("sync_stale", "sync_failing", "rate_limited", "retry_storm")
FAILING_STREAK = 3
PRESSURE_ALARM = 0.9


@dataclass(frozen=True)
class Sample:
    at: datetime
    requests: int
    throttles: int
    retries: int


class HealthWindow:
    """Counter samples per system over the last ``window``, to count events in it."""

    def __init__(self, window: timedelta = timedelta(minutes=5)) -> None:
        self.window = window
        self._samples: dict[str, deque[Sample]] = {}

    def add(self, health: Health, at: datetime) -> None:
        samples = self._samples.setdefault(health.system, deque())
        samples.append(Sample(at, health.requests, health.throttles, health.retries))
        while samples and at - samples[0].at > self.window:
            samples.popleft()

    def to_json(self) -> dict[str, Any]:
        """The samples, for the next holder of the health job's lease."""
        return {
            system: [[s.at.isoformat(), s.requests, s.throttles, s.retries] for s in samples]
            for system, samples in self._samples.items()
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], window: timedelta = timedelta(minutes=5)
    ) -> HealthWindow:
        """A window holding the samples of :meth:`to_json` (malformed ones skipped)."""
        restored = cls(window)
        for system, samples in data.items():
            if not isinstance(samples, list):
                continue
            kept: deque[Sample] = deque()
            for sample in samples:
                try:
                    at, requests, throttles, retries = sample
                    kept.append(
                        Sample(
                            datetime.fromisoformat(at), int(requests), int(throttles), int(retries)
                        )
                    )
                except (TypeError, ValueError):
                    continue
            restored._samples[str(system)] = kept
        return restored

    def delta(self, system: str) -> Sample | None:
        """Counts between the oldest and newest sample in the window."""
        samples = self._samples.get(system)
        if not samples:
            return None
        first, last = samples[0], samples[-1]
        return Sample(
            last.at,
            last.requests - first.requests,
            last.throttles - first.throttles,
            last.retries - first.retries,
        )


def counters(health: Health) -> HealthCounters:
    """What a replica publishes of one connector's :class:`Health`."""
    return HealthCounters(
        system=health.system,
        requests=health.requests,
        throttles=health.throttles,
        retries=health.retries,
        failures=health.failures,
        error_streak=health.error_streak,
        last_success=health.last_success,
        last_error=health.last_error,
        last_error_at=health.last_error_at,
    )


def combined(local: Health, published: Sequence[HealthCounters]) -> Health:
    """One connector's health across replicas: ``local`` (this replica's, whose
    throttle state it keeps) with every replica's ``published`` counters of the same
    system (this replica's among them) summed; the newest success and error anywhere;
    a failure streak only where it is newer than the newest success anywhere."""
    rows = [c for c in published if c.system == local.system] or [counters(local)]
    successes = [c.last_success for c in rows if c.last_success is not None]
    last_success = max(successes) if successes else None
    errors = [c for c in rows if c.last_error_at is not None]
    newest_error = max(errors, key=lambda c: c.last_error_at or datetime.min) if errors else None
    streaks = [
        c.error_streak
        for c in errors
        if c.last_error_at is not None and (last_success is None or c.last_error_at > last_success)
    ]
    return Health(
        system=local.system,
        last_success=last_success,
        last_error=newest_error.last_error if newest_error else None,
        last_error_at=newest_error.last_error_at if newest_error else None,
        error_streak=max(streaks, default=0),
        requests=sum(c.requests for c in rows),
        throttles=sum(c.throttles for c in rows),
        retries=sum(c.retries for c in rows),
        failures=sum(c.failures for c in rows),
        throttle=local.throttle,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def evaluate_health(
    healths: Iterable[Health],
    *,
    sla_seconds: Mapping[str, int],
    window: HealthWindow,
    now: datetime,
    started_at: datetime,
    throttle_alarm: int = 10,
    retry_alarm: int = 30,
) -> list[Candidate]:
    """Health candidates for every system that needs attention now.

    ``started_at`` is when monitoring began: a system never read successfully is only
    stale once its SLA has passed since then.
    """
    out: list[Candidate] = []
    for h in healths:
        window.add(h, now)
        sla = timedelta(seconds=sla_seconds.get(h.system, 900))
        since = h.last_success or started_at
        age = now - since
        facts = {
            "system": h.system,
            "last_success": _iso(h.last_success),
            "last_error": h.last_error,
            "error_streak": h.error_streak,
            "sla_seconds": int(sla.total_seconds()),
            "age_seconds": int(age.total_seconds()),
        }
        if age > sla:
            out.append(
                Candidate(
                    fingerprint=f"{FAMILY}sync_stale:{h.system}",
                    kind="sync_stale",
                    severity="critical" if age > 2 * sla else "warning",
                    title=f"{h.system}: no successful sync for {_minutes(age)}",
                    details=facts,
                    system=h.system,
                )
            )
        if h.error_streak >= FAILING_STREAK:
            out.append(
                Candidate(
                    fingerprint=f"{FAMILY}sync_failing:{h.system}",
                    kind="sync_failing",
                    severity="critical",
                    title=f"{h.system}: {h.error_streak} reads in a row failed",
                    details=facts,
                    system=h.system,
                )
            )
        delta = window.delta(h.system)
        pressure = h.throttle.pressure
        throttled = delta.throttles if delta else 0
        if throttled >= throttle_alarm or (pressure is not None and pressure > PRESSURE_ALARM):
            out.append(
                Candidate(
                    fingerprint=f"{FAMILY}rate_limited:{h.system}",
                    kind="rate_limited",
                    severity="warning",
                    title=f"{h.system}: rate limited {throttled}× in {_minutes(window.window)}",
                    details={
                        **facts,
                        "throttles_in_window": throttled,
                        "bucket_pressure": pressure,
                        "retry_after": h.throttle.retry_after,
                    },
                    system=h.system,
                )
            )
        if delta and delta.retries >= retry_alarm:
            out.append(
                Candidate(
                    fingerprint=f"{FAMILY}retry_storm:{h.system}",
                    kind="retry_storm",
                    severity="warning",
                    title=f"{h.system}: {delta.retries} retries in {_minutes(window.window)}",
                    details={**facts, "retries_in_window": delta.retries},
                    system=h.system,
                )
            )
    return out


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"
