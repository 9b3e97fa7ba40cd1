"""The weekly summary and the daily adjustment report, computed from the ledger.

The weekly summary leads with the four KPIs the ops team tracks every week: mismatch
rate by location, oversell incidents, auto-resync success rate and manual intervention
count; this week and last week side by side. Then MTTA/MTTR, incidents by root cause and
kind, the SKUs that drifted most, and incidents opened per day by kind (for the chart).

Definitions (all over the half-open period; see :mod:`ledger.reports` for which time
places a row in it):

- *mismatch rate* at a location: SKUs with a count-gap incident (``negative``,
  ``missing``, ``oversell_risk``, ``undersell``, ``count_mismatch``) opened in the period,
  over SKUs known at that location now (an approximation, see
  :meth:`ledger.Ledger.mismatch_by_location`); overall: the sums of both.
- *oversell incidents*: ``oversell_risk`` and ``oversell_policy`` incidents opened.
- *auto-resync success rate*: of the resyncs Driftwatch requested itself that finished,
  the share ``applied``: ``applied / (applied + failed)``. ``stale`` attempts are retried
  as a new decision and ``skipped`` ones were shadow runs, so neither counts; nor do
  ``pending`` ones.
- *manual interventions*: adjustments that applied (one the source of truth refused,
  or that never got written, changed nothing), plus resyncs a person requested from an
  incident (a resync an adjustment propagates has no incident, and is already counted
  as its adjustment; stale attempts are not counted), plus incidents a person resolved.

The daily adjustment report lists the day's adjustments that applied by operator and
reason code (those that did not apply are listed apart, as refused, and counted
nowhere) and flags unusual patterns among those that applied: one SKU adjusted
:attr:`AdjustmentRules.repeat` times or more, an adjustment of
:attr:`AdjustmentRules.large_units` units or more or of
:attr:`AdjustmentRules.large_ratio` of the count or more (where the count before is
known: both ``delta`` and ``new_quantity`` given), and an adjustment recorded in a system
other than the source of truth.

Nothing here reads the clock: periods start at the given dates and times.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

from ledger import (
    Adjustment,
    AdjustmentCount,
    Ledger,
    LocationMismatch,
    ResponseTimes,
    SkuDrift,
)
from monitors.drift import (
    COUNT_MISMATCH,
    MISSING,
    NEGATIVE,
    OVERSELL_POLICY,
    OVERSELL_RISK,
    UNDERSELL,
)

#: Incident kinds that mean counts disagree (the mismatch rate counts these).
MISMATCH_KINDS: tuple[str, ...] = (NEGATIVE, MISSING, OVERSELL_RISK, UNDERSELL, COUNT_MISMATCH)
#: Incident kinds that count as oversell incidents.
OVERSELL_KINDS: tuple[str, ...] = (OVERSELL_RISK, OVERSELL_POLICY)
DAYS = 7
TOP_SKUS = 5


@dataclass(frozen=True)
class WeekFigures:
    """One week's figures."""

    start: datetime
    end: datetime
    mismatch: tuple[LocationMismatch, ...]
    oversell_incidents: int
    auto_resyncs_applied: int
    auto_resyncs_failed: int
    adjustments: int
    manual_resyncs: int
    manual_resolutions: int
    incidents_opened: int
    incidents_resolved: int
    response: ResponseTimes
    by_root_cause: dict[str | None, int]
    by_kind: dict[str, int]
    top_skus: tuple[SkuDrift, ...]
    #: per day of the week (0 = the first), incidents opened by kind
    daily: tuple[dict[str, int], ...]

    @property
    def mismatch_rate(self) -> float | None:
        """Drifting over compared, summed over the locations."""
        compared = sum(m.compared for m in self.mismatch)
        return sum(m.drifting for m in self.mismatch) / compared if compared else None

    @property
    def auto_resync_success_rate(self) -> float | None:
        finished = self.auto_resyncs_applied + self.auto_resyncs_failed
        return self.auto_resyncs_applied / finished if finished else None

    @property
    def manual_interventions(self) -> int:
        return self.adjustments + self.manual_resyncs + self.manual_resolutions


@dataclass(frozen=True)
class Kpi:
    """One figure, this week and last. ``lower_is_better`` tells which way is good."""

    name: str
    this_week: float | None
    last_week: float | None
    unit: str  # "%" (a rate in 0..1) or "" (a count) or "min"
    lower_is_better: bool


@dataclass(frozen=True)
class WeeklySummary:
    this_week: WeekFigures
    last_week: WeekFigures
    tz: tzinfo
    #: the systems the summary covers (a store's own summary); empty: the deployment's
    systems: tuple[str, ...] = ()

    @property
    def day_labels(self) -> list[str]:
        """``Mon``, ``Tue``, ... for the days of this week, in the summary's zone."""
        return [
            (self.this_week.start.astimezone(self.tz) + timedelta(days=i)).strftime("%a")
            for i in range(DAYS)
        ]

    def kpis(self) -> list[Kpi]:
        """The four weekly KPIs, in the order the team reviews them."""
        this, last = self.this_week, self.last_week
        return [
            Kpi("Mismatch rate", this.mismatch_rate, last.mismatch_rate, "%", True),
            Kpi("Oversell incidents", this.oversell_incidents, last.oversell_incidents, "", True),
            Kpi(
                "Auto-resync success",
                this.auto_resync_success_rate,
                last.auto_resync_success_rate,
                "%",
                False,
            ),
            Kpi(
                "Manual interventions",
                this.manual_interventions,
                last.manual_interventions,
                "",
                True,
            ),
        ]

    def response_kpis(self) -> list[Kpi]:
        """MTTA and MTTR in minutes."""
        this, last = self.this_week.response, self.last_week.response
        return [
            Kpi("MTTA", _minutes(this.mtta), _minutes(last.mtta), "min", True),
            Kpi("MTTR", _minutes(this.mttr), _minutes(last.mttr), "min", True),
        ]


def week_bounds(week_start: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """Local midnight of ``week_start`` and seven local days later (DST-safe)."""
    start = datetime.combine(week_start, time(), tz)
    return start, datetime.combine(week_start + timedelta(days=DAYS), time(), tz)


def _day_edges(week_start: date, tz: tzinfo, days: int) -> list[datetime]:
    return [datetime.combine(week_start + timedelta(days=i), time(), tz) for i in range(days + 1)]


async def weekly_summary(
    ledger: Ledger, week_start: date, tz: tzinfo, systems: Collection[str] | None = None
) -> WeeklySummary:
    """The week from local midnight of ``week_start`` in ``tz``, and the week before;
    of ``systems`` only (a store's own summary), if given."""
    if isinstance(week_start, datetime):
        week_start = week_start.date()
    previous = week_start - timedelta(days=DAYS)
    edges = _day_edges(previous, tz, 2 * DAYS)
    buckets = await ledger.incidents_opened_by_bucket(edges, systems=systems)
    daily: list[dict[str, int]] = [{} for _ in range(2 * DAYS)]
    for (day, kind), n in sorted(buckets.items()):
        daily[day][kind] = n
    last = await _week(ledger, *week_bounds(previous, tz), tuple(daily[:DAYS]), systems)
    this = await _week(ledger, *week_bounds(week_start, tz), tuple(daily[DAYS:]), systems)
    return WeeklySummary(
        this_week=this, last_week=last, tz=tz, systems=tuple(sorted(systems or ()))
    )


async def week_figures(ledger: Ledger, week_start: date, tz: tzinfo) -> WeekFigures:
    """One week's figures, from local midnight of ``week_start`` in ``tz`` (the KPI
    trend and the baseline read weeks one at a time)."""
    if isinstance(week_start, datetime):
        week_start = week_start.date()
    buckets = await ledger.incidents_opened_by_bucket(_day_edges(week_start, tz, DAYS))
    daily: list[dict[str, int]] = [{} for _ in range(DAYS)]
    for (day, kind), n in sorted(buckets.items()):
        daily[day][kind] = n
    return await _week(ledger, *week_bounds(week_start, tz), tuple(daily))


async def _week(
    ledger: Ledger,
    start: datetime,
    end: datetime,
    daily: tuple[dict[str, int], ...],
    systems: Collection[str] | None = None,
) -> WeekFigures:
    incidents = await ledger.incident_stats(start, end, systems=systems)
    resyncs = await ledger.resync_stats(start, end, systems=systems)
    adjustments = await ledger.adjustment_counts(start, end, systems=systems)
    by_kind: dict[str, int] = {
        str(k): n for k, n in incidents.opened_by("kind").items() if k is not None
    }
    return WeekFigures(
        start=start,
        end=end,
        mismatch=tuple(
            await ledger.mismatch_by_location(start, end, kinds=MISMATCH_KINDS, systems=systems)
        ),
        oversell_incidents=incidents.opened_of(OVERSELL_KINDS),
        auto_resyncs_applied=resyncs.count("applied", automatic=True),
        auto_resyncs_failed=resyncs.count("failed", automatic=True),
        adjustments=sum(a.count for a in adjustments),
        manual_resyncs=resyncs.count(automatic=False, linked=True)
        - resyncs.count("stale", automatic=False, linked=True),
        manual_resolutions=incidents.resolved_by_person,
        incidents_opened=incidents.opened_total,
        incidents_resolved=incidents.resolved_total,
        response=await ledger.response_times(start, end, systems=systems),
        by_root_cause=incidents.opened_by("root_cause"),
        by_kind=by_kind,
        top_skus=tuple(await ledger.top_drifting_skus(start, end, limit=TOP_SKUS, systems=systems)),
        daily=daily,
    )


def _minutes(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds() / 60


# --- the daily adjustment report ---------------------------------------------------------


@dataclass(frozen=True)
class AdjustmentRules:
    """What counts as unusual in a day of adjustments, and whose adjustments a report
    covers.

    ``source_of_truth``: the system an adjustment should be made in; ``truths``: the
    whole ``source_of_truth`` order, where the truth of a SKU at a location is the first
    system that has ever listed it there (the fallback truth for what the first does not
    stock), as the drift engine judges it. ``systems``: only adjustments made in these
    systems (a store's own report); None: every adjustment.
    """

    source_of_truth: str | None = None
    truths: tuple[str, ...] = ()
    systems: frozenset[str] | None = None
    repeat: int = 3
    large_units: int = 50
    large_ratio: float = 0.25
    #: the ratio rule ignores changes smaller than this (1 → 2 is +100%, and harmless)
    ratio_min_units: int = 5


@dataclass(frozen=True)
class Flag:
    """An unusual pattern: ``repeated``, ``large`` or ``off_truth``."""

    kind: str
    sku: str
    text: str
    adjustment_ids: tuple[int, ...]


@dataclass(frozen=True)
class AdjustmentReport:
    start: datetime
    end: datetime
    counts: tuple[AdjustmentCount, ...]
    adjustments: tuple[Adjustment, ...]
    flags: tuple[Flag, ...] = field(default=())
    #: the day's adjustments whose write did not apply (refused, failed, never settled)
    refused: tuple[Adjustment, ...] = field(default=())
    #: the systems the report covers (a store's own report); empty: every system
    systems: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        return sum(c.count for c in self.counts)

    @property
    def by_operator(self) -> dict[str, int]:
        return _most_first(Counter(), self.counts, "operator")

    @property
    def by_reason(self) -> dict[str, int]:
        return _most_first(Counter(), self.counts, "reason_code")


def _most_first(
    tally: Counter[str], counts: Sequence[AdjustmentCount], name: str
) -> dict[str, int]:
    for c in counts:
        tally[getattr(c, name)] += c.count
    return dict(sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])))


async def daily_adjustments(
    ledger: Ledger, day_start: datetime, rules: AdjustmentRules | None = None
) -> AdjustmentReport:
    """The adjustments of the day from ``day_start`` (aware; the day ends at the same wall
    time the next day, so a DST day is 23 or 25 hours)."""
    rules = rules or AdjustmentRules()
    end = day_start + timedelta(days=1)
    counts = await ledger.adjustment_counts(day_start, end)
    rows = await ledger.adjustments_between(day_start, end)
    everything = await ledger.adjustments_between(day_start, end, status=None)
    if rules.systems is not None:
        wanted = rules.systems
        rows = [a for a in rows if a.system in wanted]
        everything = [a for a in everything if a.system in wanted]
        counts = _counts(rows)
    return AdjustmentReport(
        start=day_start,
        end=end,
        counts=tuple(counts),
        adjustments=tuple(rows),
        flags=tuple(unusual(rows, rules, await _truth_of(ledger, rows, rules))),
        refused=tuple(a for a in everything if a.status != "applied"),
        systems=tuple(sorted(rules.systems or ())),
    )


def _counts(rows: Sequence[Adjustment]) -> list[AdjustmentCount]:
    """Adjustments by operator and reason code, most first (as the ledger counts)."""
    tally = Counter((a.operator, a.reason_code) for a in rows)
    ordered = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1]))
    return [AdjustmentCount(operator=op, reason_code=code, count=n) for (op, code), n in ordered]


async def _truth_of(
    ledger: Ledger, rows: Sequence[Adjustment], rules: AdjustmentRules
) -> dict[tuple[str, str], str]:
    """The source of truth of each adjusted SKU × location: the first of ``truths``
    that has ever listed it there (none has: the first)."""
    if len(rules.truths) < 2:
        return {}
    cells = {(a.sku, a.location) for a in rows}
    listed = await ledger.ever_listed(
        (t, sku, location) for t in rules.truths for sku, location in cells
    )
    return {
        (sku, location): next(
            (t for t in rules.truths if (t, sku, location) in listed), rules.truths[0]
        )
        for sku, location in cells
    }


def unusual(
    adjustments: Sequence[Adjustment],
    rules: AdjustmentRules,
    truth_of: Mapping[tuple[str, str], str] | None = None,
) -> list[Flag]:
    """The unusual patterns in a day's adjustments: repeats first, then by time.
    ``truth_of``: the source of truth per SKU × location, where it is not
    ``rules.source_of_truth`` (see :class:`AdjustmentRules`)."""
    flags: list[Flag] = []
    by_sku: dict[str, list[Adjustment]] = defaultdict(list)
    for a in adjustments:
        by_sku[a.sku].append(a)
    for sku, group in sorted(by_sku.items()):
        if len(group) >= rules.repeat:
            where = ", ".join(sorted({a.location for a in group}))
            flags.append(
                Flag(
                    "repeated",
                    sku,
                    f"{sku} adjusted {len(group)} times ({where})",
                    tuple(a.id for a in group),
                )
            )
    for a in adjustments:
        size = _large(a, rules)
        if size is not None:
            flags.append(Flag("large", a.sku, f"{a.sku} at {a.location}: {size}", (a.id,)))
    if rules.source_of_truth is not None:
        for a in adjustments:
            truth = (truth_of or {}).get((a.sku, a.location), rules.source_of_truth)
            if a.system != truth:
                flags.append(
                    Flag(
                        "off_truth",
                        a.sku,
                        f"{a.sku} at {a.location} adjusted in {a.system}, not in "
                        f"{truth} (the source of truth), by {a.operator}",
                        (a.id,),
                    )
                )
    return flags


def _large(a: Adjustment, rules: AdjustmentRules) -> str | None:
    """Why ``a`` is large, or None."""
    if a.delta is None:
        return None
    units = abs(a.delta)
    before = a.new_quantity - a.delta if a.new_quantity is not None else None
    ratio = units / before if before is not None and before > 0 else None
    change = f"{a.delta:+d}" + (f" ({before} → {a.new_quantity})" if before is not None else "")
    if units >= rules.large_units:
        return f"{change}, {units} units by {a.operator} ({a.reason_code})"
    if ratio is not None and ratio >= rules.large_ratio and units >= rules.ratio_min_units:
        return f"{change}, {ratio:.0%} of the count by {a.operator} ({a.reason_code})"
    return None


def previous_week_start(now: datetime, tz: tzinfo) -> date:
    """The Monday of the last complete week before ``now`` in ``tz``."""
    today = now.astimezone(tz).date()
    return today - timedelta(days=today.weekday() + DAYS)


def previous_day_start(now: datetime, tz: tzinfo) -> datetime:
    """Local midnight of the day before ``now`` in ``tz``."""
    return datetime.combine(now.astimezone(tz).date() - timedelta(days=1), time(), tz)
