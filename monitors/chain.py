"""The signal chain, measured: how long a change upstream takes to show up downstream,
per hop, from the level history the ledger keeps.

A *hop* joins an upstream system to a downstream one. Without configuration the chain
is the first source of truth → every other system; ``[[chain.hops]]`` replaces or adds
hops and declares each one's trigger (webhook, poll, batch), transformation and SLA.

Definitions (all from ``level_history``, which holds changes only, each at the time a
poll or webhook *observed* it — so a transit time is measured to the observation, at
the resolution of the polls):

- *compared value*: a system's sum of its ``compare_states`` for a SKU at a location,
  the quantity the drift engine compares (pack sizes are already applied by the
  connectors). The downstream is *expected* to show the upstream's value minus its
  safety stock when it is a storefront (plus the upstream's when that is one; floor 0
  on a storefront). Bundles are left out: their value is derived, never carried.
- *a change*: a new compared value upstream after one known before (the first sighting
  of a SKU is not a change).
- *transit*: from the change to the first moment the downstream equals what the
  upstream's value at that moment implies — the hop is in sync again. A change
  overtaken by the next one before the downstream caught up arrives when the hop is
  next in sync (the downstream was stale all that time). A downstream that never held
  the SKU (no level at all) does not carry it: those changes are left out.
- *never arrived*: not in sync by ``now`` and older than the hop's ``lost_after``
  (``chain.lost_after_seconds``, or twice the SLA when that is longer); younger ones
  are *pending* and counted apart. ``lost_share`` = never arrived ÷ (arrived + never
  arrived).
- *p50, p95, max*: of the arrived transits, nearest-rank percentiles (the p-th is the
  ⌈p·n⌉-th smallest).
- *over its SLA*: a declared SLA, and the p95 above it or more than 5 % of the changes
  never arrived. That is a health finding (``health:hop_over_sla:<hop>``), opened and
  resolved by :class:`ChainHealthJob`.
- *drift rate* of a hop on a day: the share of the time its SKUs were out of sync that
  day, beyond their drift threshold (``thresholds``): the sum over SKU × location of the
  time both systems had a value and disagreed, over the sum of the time both had one.
  The weekly summary draws it for 30 days, one line per hop: the handoff that degrades
  is the one whose line climbs.

Nothing here reads the clock: ``now`` and the windows come in.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connectors.clock import Clock
from ledger import Ledger, LevelRow
from monitors.config import Config
from monitors.drift import ROLE_STOREFRONT, DiffRules
from monitors.pipeline import Candidate, Pipeline, Scope, build_pipeline
from monitors.pipeline.model import Context

#: The fingerprint family of hop findings (inside the health family, so they are
#: rendered and worded like sync-health incidents).
FAMILY = "health:hop_over_sla:"
KIND = "hop_over_sla"
#: More than this share of changes never arriving puts a hop over its SLA.
LOST_ALARM = 0.05
#: Fewer arrived changes than this say nothing about a hop's p95.
MIN_SAMPLES = 3
ARRIVED, LOST, PENDING = "arrived", "lost", "pending"

Key = tuple[str, str]  # (sku, location)
Points = list[tuple[datetime, int]]


@dataclass(frozen=True)
class HopSpec:
    """A hop with what the configuration declares about it (``declared`` False: the
    default hop from the source of truth, nothing declared)."""

    upstream: str
    downstream: str
    trigger: str | None = None
    transform: str = ""
    sla_seconds: int | None = None
    declared: bool = False

    @property
    def name(self) -> str:
        return f"{self.upstream} → {self.downstream}"

    @property
    def key(self) -> str:
        """An ASCII identity for fingerprints and JSON."""
        return f"{self.upstream}>{self.downstream}"

    @property
    def sla(self) -> timedelta | None:
        return None if self.sla_seconds is None else timedelta(seconds=self.sla_seconds)

    def lost_after(self, default_seconds: int) -> timedelta:
        """How long a change may take before it counts as never arrived."""
        sla = self.sla_seconds or 0
        return timedelta(seconds=max(default_seconds, 2 * sla))


def hops_from_config(config: Config) -> list[HopSpec]:
    """The chain: the first source of truth → every other system, with the declared
    hops replacing those and adding their own, in the file's order after them."""
    declared = {
        (h.upstream, h.downstream): HopSpec(
            h.upstream, h.downstream, h.trigger, h.transform, h.sla_seconds, declared=True
        )
        for h in config.chain.hops
    }
    truth = config.source_of_truth[0]
    hops = [
        declared.pop((truth, s.name), HopSpec(truth, s.name))
        for s in config.systems
        if s.name != truth
    ]
    return hops + list(declared.values())


@dataclass(frozen=True)
class Transit:
    """One upstream change and what became of it downstream."""

    sku: str
    location: str
    changed_at: datetime
    value: int
    status: str  # arrived | lost | pending
    arrived_at: datetime | None = None

    @property
    def latency(self) -> timedelta | None:
        return None if self.arrived_at is None else self.arrived_at - self.changed_at


@dataclass(frozen=True)
class HopStats:
    """A hop's transits for changes made in ``[start, end)``, measured at ``now``."""

    hop: HopSpec
    start: datetime
    end: datetime
    arrived: int
    lost: int
    pending: int
    p50: timedelta | None
    p95: timedelta | None
    max: timedelta | None
    keys: int = 0
    #: when the latest change that arrived was seen downstream
    last_arrival: datetime | None = None

    @property
    def changes(self) -> int:
        """Changes with a known outcome (arrived or never arrived)."""
        return self.arrived + self.lost

    @property
    def lost_share(self) -> float | None:
        return self.lost / self.changes if self.changes else None

    @property
    def over_sla(self) -> bool:
        """Declared SLA exceeded: the p95 is above it, or too many never arrived."""
        sla = self.hop.sla
        if sla is None or not self.changes:
            return False
        if self.lost_share is not None and self.lost_share > LOST_ALARM:
            return True
        return self.arrived >= MIN_SAMPLES and self.p95 is not None and self.p95 > sla

    def to_json(self) -> dict[str, object]:
        """Plain data, for ``driftwatch chain --json`` and the packet."""

        def seconds(value: timedelta | None) -> float | None:
            return None if value is None else value.total_seconds()

        return {
            "hop": self.hop.key,
            "upstream": self.hop.upstream,
            "downstream": self.hop.downstream,
            "declared": {
                "trigger": self.hop.trigger,
                "transform": self.hop.transform or None,
                "sla_seconds": self.hop.sla_seconds,
            },
            "measured": {
                "from": self.start.isoformat(),
                "to": self.end.isoformat(),
                "changes": self.changes,
                "arrived": self.arrived,
                "never_arrived": self.lost,
                "pending": self.pending,
                "never_arrived_share": self.lost_share,
                "p50_seconds": seconds(self.p50),
                "p95_seconds": seconds(self.p95),
                "max_seconds": seconds(self.max),
                "skus_at_locations": self.keys,
            },
            "over_sla": self.over_sla,
        }


def percentile(values: Sequence[timedelta], p: float) -> timedelta | None:
    """The nearest-rank ``p``-th percentile (0 < p ≤ 1) of ``values``; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p * len(ordered)))
    return ordered[rank - 1]


# --- series ------------------------------------------------------------------------------


def compared_points(
    rows: Iterable[LevelRow], compare: Mapping[str, Sequence[str]]
) -> dict[str, dict[Key, Points]]:
    """Per system and (SKU, location): the compared value each time it changed, in time
    order. Rows must come oldest first (several at one instant settle into one point)."""
    states: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    out: dict[str, dict[Key, Points]] = defaultdict(dict)
    for row in rows:
        wanted = compare.get(row.system)
        if wanted is None or row.state not in wanted:
            continue
        held = states[(row.system, row.sku, row.location)]
        held[row.state] = row.quantity
        value = sum(held.values())
        points = out[row.system].setdefault((row.sku, row.location), [])
        if points and points[-1][0] == row.observed_at:
            points[-1] = (row.observed_at, value)
            if len(points) > 1 and points[-2][1] == value:
                points.pop()
        elif not points or points[-1][1] != value:
            points.append((row.observed_at, value))
    return out


class _Expect:
    """What the downstream should show for an upstream value, for one hop."""

    def __init__(self, hop: HopSpec, rules: DiffRules) -> None:
        self._rules = rules
        roles = {name: r.role for name, r in rules.systems.items()}
        self._up_store = roles.get(hop.upstream) == ROLE_STOREFRONT
        self._down_store = roles.get(hop.downstream) == ROLE_STOREFRONT

    def __call__(self, sku: str, location: str, upstream: int) -> int:
        held = self._rules.safety_stock(sku, location)
        value = upstream + (held if self._up_store else 0) - (held if self._down_store else 0)
        return max(0, value) if self._down_store else value


def _value_at(points: Points, index: int) -> int | None:
    return points[index][1] if index >= 0 else None


def _timeline(up: Points, down: Points) -> list[tuple[datetime, int | None, int | None]]:
    """Every instant either side changed, with both values just after it."""
    times = sorted({t for t, _ in up} | {t for t, _ in down})
    out = []
    i = j = -1
    for t in times:
        while i + 1 < len(up) and up[i + 1][0] <= t:
            i += 1
        while j + 1 < len(down) and down[j + 1][0] <= t:
            j += 1
        out.append((t, _value_at(up, i), _value_at(down, j)))
    return out


def hop_transits(
    hop: HopSpec,
    up: Mapping[Key, Points],
    down: Mapping[Key, Points],
    rules: DiffRules,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    lost_after: timedelta,
) -> tuple[list[Transit], int]:
    """The transits of the hop's changes made in ``[start, end)`` (and how many SKU ×
    location pairs it carries)."""
    expect = _Expect(hop, rules)
    transits: list[Transit] = []
    carried = 0
    for key in sorted(up.keys() & down.keys()):
        sku, location = key
        if sku in rules.bundles:
            continue
        carried += 1
        up_points = up[key]
        changes = {t: v for t, v in up_points[1:] if start <= t < end}
        if not changes:
            continue
        waiting: list[tuple[datetime, int]] = []
        for t, u, d in _timeline(up_points, down[key]):
            if t > now:
                break
            if t in changes:
                waiting.append((t, changes[t]))
            if waiting and u is not None and d is not None and d == expect(sku, location, u):
                transits += [Transit(sku, location, t0, v, ARRIVED, t) for t0, v in waiting]
                waiting = []
        for t0, v in waiting:
            status = LOST if now - t0 > lost_after else PENDING
            transits.append(Transit(sku, location, t0, v, status))
    return transits, carried


def hop_stats(
    hop: HopSpec, transits: Sequence[Transit], start: datetime, end: datetime, keys: int = 0
) -> HopStats:
    latencies = [t.latency for t in transits if t.latency is not None]
    return HopStats(
        hop=hop,
        start=start,
        end=end,
        arrived=len(latencies),
        lost=sum(1 for t in transits if t.status == LOST),
        pending=sum(1 for t in transits if t.status == PENDING),
        p50=percentile(latencies, 0.50),
        p95=percentile(latencies, 0.95),
        max=max(latencies) if latencies else None,
        keys=keys,
        last_arrival=max((t.arrived_at for t in transits if t.arrived_at), default=None),
    )


def drift_rate_by_day(
    hop: HopSpec,
    up: Mapping[Key, Points],
    down: Mapping[Key, Points],
    rules: DiffRules,
    days: Sequence[datetime],
    now: datetime,
) -> list[float | None]:
    """The hop's drift rate on each day ``[days[i], days[i+1])``, up to ``now`` (see the
    module docstring); None for a day on which no SKU had a value on both sides."""
    expect = _Expect(hop, rules)
    drifting = [0.0] * (len(days) - 1)
    known = [0.0] * (len(days) - 1)
    for key in up.keys() & down.keys():
        sku, location = key
        if sku in rules.bundles:
            continue
        threshold = rules.threshold(sku)
        timeline = _timeline(up[key], down[key])
        for n, (t, u, d) in enumerate(timeline):
            if u is None or d is None:
                continue
            until = timeline[n + 1][0] if n + 1 < len(timeline) else now
            e = expect(sku, location, u)
            off = threshold.exceeded_by(d - e, e)
            for i in range(len(days) - 1):
                lo, hi = max(t, days[i]), min(until, days[i + 1], now)
                if hi <= lo:
                    continue
                span = (hi - lo).total_seconds()
                known[i] += span
                if off:
                    drifting[i] += span
    return [d / k if k else None for d, k in zip(drifting, known, strict=True)]


# --- measuring from the ledger ---------------------------------------------------------


@dataclass
class ChainReport:
    """The measured chain: per hop its stats over the window, and (when asked) its
    drift rate per day."""

    start: datetime
    end: datetime
    now: datetime
    hops: list[HopStats]
    days: list[datetime] = field(default_factory=list)
    drift_rates: dict[str, list[float | None]] = field(default_factory=dict)


def _compare(rules: DiffRules) -> dict[str, tuple[str, ...]]:
    return {name: tuple(r.compare_states) for name, r in rules.systems.items()}


async def measure_chain(
    ledger: Ledger,
    hops: Sequence[HopSpec],
    rules: DiffRules,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    lost_after_seconds: int = 86_400,
    days: Sequence[datetime] = (),
) -> ChainReport:
    """Each hop's transits for changes in ``[start, end)``, measured with the history up
    to ``now``; with ``days`` (ascending day edges), also each hop's daily drift rate."""
    systems = sorted({h.upstream for h in hops} | {h.downstream for h in hops})
    earliest = min([start, *days[:1]])
    rows = await ledger.level_history_window(systems, earliest, now)
    points = compared_points(rows, _compare(rules))
    report = ChainReport(start=start, end=end, now=now, hops=[], days=list(days))
    for hop in hops:
        up, down = points.get(hop.upstream, {}), points.get(hop.downstream, {})
        transits, carried = hop_transits(
            hop,
            up,
            down,
            rules,
            start=start,
            end=end,
            now=now,
            lost_after=hop.lost_after(lost_after_seconds),
        )
        report.hops.append(hop_stats(hop, transits, start, end, carried))
        if len(days) > 1:
            report.drift_rates[hop.key] = drift_rate_by_day(hop, up, down, rules, days, now)
    return report


# --- the health finding ------------------------------------------------------------------


def _span(value: timedelta | None) -> str:
    if value is None:
        return "n/a"
    seconds = int(value.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def describe(stats: HopStats) -> str:
    """One line: what was measured against what was declared."""
    parts = [
        f"{stats.changes} change{'s' if stats.changes != 1 else ''}",
        f"p50 {_span(stats.p50)}",
        f"p95 {_span(stats.p95)}",
        f"max {_span(stats.max)}",
    ]
    if stats.lost_share is not None:
        parts.append(f"{stats.lost_share:.0%} never arrived")
    if stats.pending:
        parts.append(f"{stats.pending} still in transit")
    sla = f"SLA {_span(stats.hop.sla)}" if stats.hop.sla else "no SLA declared"
    return f"{', '.join(parts)} ({sla})"


def hop_findings(report: ChainReport) -> list[Candidate]:
    """A health candidate for every hop over its declared SLA."""
    out: list[Candidate] = []
    for stats in report.hops:
        if not stats.over_sla:
            continue
        hop = stats.hop
        why = f"changes take {_span(stats.p95)} to arrive (p95)"
        if stats.lost_share and stats.lost_share > LOST_ALARM:
            why = f"{stats.lost_share:.0%} of changes never arrived"
        out.append(
            Candidate(
                fingerprint=f"{FAMILY}{hop.key}",
                kind=KIND,
                severity="warning",
                title=f"{hop.name}: {why}, over its {_span(hop.sla)} SLA",
                details={
                    # read by the sync-health alert: "system", "last good sync" (the last
                    # change that arrived), "age vs SLA" (p95 against it), "last error"
                    "system": hop.name,
                    "hop": hop.key,
                    "trigger": hop.trigger,
                    "last_success": (
                        stats.last_arrival.isoformat() if stats.last_arrival else None
                    ),
                    "age_seconds": int(stats.p95.total_seconds()) if stats.p95 else None,
                    "sla_seconds": hop.sla_seconds,
                    "error_streak": 0,
                    "last_error": f"Last {_span(report.now - report.start)}: {describe(stats)}",
                    "p50_seconds": stats.p50.total_seconds() if stats.p50 else None,
                    "p95_seconds": stats.p95.total_seconds() if stats.p95 else None,
                    "never_arrived_share": stats.lost_share,
                },
                system=hop.name,
            )
        )
    return out


class ChainHealthJob:
    """Measures every hop over the last ``chain.window_days`` and keeps one health
    incident open per hop over its SLA (resolved once it is back under)."""

    def __init__(
        self,
        config: Config,
        rules: DiffRules,
        ledger: Ledger,
        clock: Clock,
        *,
        channel: str,
        pipeline: Pipeline | None = None,
    ) -> None:
        self._config = config
        self._rules = rules
        self._ledger = ledger
        self._clock = clock
        self._channel = channel
        self._pipeline = pipeline or build_pipeline()
        self.hops = hops_from_config(config)
        self.last: ChainReport | None = None

    async def run(self) -> Context:
        now = self._clock.now()
        start = now - timedelta(days=self._config.chain.window_days)
        self.last = await measure_chain(
            self._ledger,
            self.hops,
            self._rules,
            start=start,
            end=now,
            now=now,
            lost_after_seconds=self._config.chain.lost_after_seconds,
        )
        return await self._pipeline.run(
            self._ledger,
            (),
            # only hops with a declared SLA are judged (and resolved)
            scope=Scope(systems=frozenset(h.name for h in self.hops if h.sla is not None)),
            now=now,
            channel=self._channel,
            given=hop_findings(self.last),
            families=(FAMILY,),
        )
