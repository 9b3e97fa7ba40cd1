"""The weekly KPIs beyond the summary's four: shrinkage against its 2 % line, the
baseline week, the weekly review (baseline, last week's decision, the 30-day drift rate
per hop, this week's cycle counts) and the dashboard the Home tab shows.

Definitions:

- *units moved* in a period: the sum, over SKU × location, of every change of the
  first source of truth's compared value (``compare_states`` summed) in the period, up
  or down — receipts, shipments, adjustments. A SKU first seen in the period has not
  moved by appearing.
- *shrinkage units*: the units taken off by adjustments whose reason code is one of
  ``kpis.shrinkage_reasons`` (shrinkage and damaged), where the adjustment says by how
  much (``delta`` < 0); an adjustment that only set a new count is counted apart as
  ``unmeasured``.
- *shrinkage rate* = shrinkage units ÷ units moved, shown against
  ``kpis.shrinkage_line_percent`` (2 %).
- *the baseline*: the first full week (Monday to Sunday in the configuration's time
  zone) of level history — the week after the first change was recorded, or that week
  when it started at its first midnight. Its KPIs are captured in the ledger
  (``kpi_weeks``) the first time they are computed after it ended, and every later
  summary compares against those figures.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from ledger import Incident, Ledger, Verdict
from monitors.chain import ChainReport, compared_points, hops_from_config, measure_chain
from monitors.config import Config
from monitors.cycle_count import CycleCountList, cycle_count_list
from monitors.drift import DiffRules
from monitors.reports import (
    DAYS,
    MISMATCH_KINDS,
    Kpi,
    WeekFigures,
    week_bounds,
    week_figures,
)

TREND_DAYS = 30
TREND_WEEKS = 8
OPEN_SHOWN = 10


@dataclass(frozen=True)
class KpiDef:
    key: str
    label: str
    unit: str  # "%" (a rate in 0..1), "" (a count) or "min"
    lower_is_better: bool


#: The KPIs a week is judged by, in the order the team reviews them.
KPIS: tuple[KpiDef, ...] = (
    KpiDef("mismatch_rate", "Mismatch rate", "%", True),
    KpiDef("oversell_incidents", "Oversell incidents", "", True),
    KpiDef("auto_resync_success_rate", "Auto-resync success", "%", False),
    KpiDef("manual_interventions", "Manual interventions", "", True),
    KpiDef("mtta_minutes", "MTTA", "min", True),
    KpiDef("mttr_minutes", "MTTR", "min", True),
    KpiDef("shrinkage_rate", "Shrinkage", "%", True),
)


@dataclass(frozen=True)
class Shrinkage:
    start: datetime
    end: datetime
    units: int
    moved: int
    unmeasured: int
    line: float  # a rate in 0..1

    @property
    def rate(self) -> float | None:
        return self.units / self.moved if self.moved else None

    @property
    def over_line(self) -> bool:
        return self.rate is not None and self.rate > self.line


async def units_moved(
    ledger: Ledger, rules: DiffRules, start: datetime, end: datetime
) -> dict[tuple[str, str], int]:
    """Units moved per (SKU, location) at the first source of truth in ``[start, end]``."""
    truth = rules.source_of_truth[0]
    compare = {truth: tuple(rules.systems[truth].compare_states)}
    rows = await ledger.level_history_window([truth], start, end)
    moved: dict[tuple[str, str], int] = defaultdict(int)
    for key, points in compared_points(rows, compare).get(truth, {}).items():
        for (_, before), (when, after) in itertools.pairwise(points):
            if start <= when <= end:
                moved[key] += abs(after - before)
    return dict(moved)


async def shrinkage(
    ledger: Ledger, config: Config, rules: DiffRules, start: datetime, end: datetime
) -> Shrinkage:
    """The shrinkage of ``[start, end)`` (see the module docstring)."""
    reasons = set(config.kpis.shrinkage_reasons)
    units = unmeasured = 0
    for a in await ledger.adjustments_between(start, end, limit=1_000_000):
        if a.reason_code not in reasons:
            continue
        if a.delta is None:
            unmeasured += 1
        elif a.delta < 0:
            units -= a.delta
    moved = sum((await units_moved(ledger, rules, start, end - timedelta(microseconds=1))).values())
    return Shrinkage(start, end, units, moved, unmeasured, config.kpis.shrinkage_line_percent / 100)


def figures(week: WeekFigures, shrink: Shrinkage) -> dict[str, Any]:
    """A week's KPIs as plain data (captured, and kept with a decision)."""

    def minutes(value: timedelta | None) -> float | None:
        return None if value is None else round(value.total_seconds() / 60, 1)

    return {
        "mismatch_rate": week.mismatch_rate,
        "mismatch_by_location": {
            m.location: {"compared": m.compared, "drifting": m.drifting} for m in week.mismatch
        },
        "oversell_incidents": week.oversell_incidents,
        "auto_resync_success_rate": week.auto_resync_success_rate,
        "auto_resyncs_applied": week.auto_resyncs_applied,
        "auto_resyncs_failed": week.auto_resyncs_failed,
        "manual_interventions": week.manual_interventions,
        "mtta_minutes": minutes(week.response.mtta),
        "mttr_minutes": minutes(week.response.mttr),
        "incidents_opened": week.incidents_opened,
        "incidents_resolved": week.incidents_resolved,
        "shrinkage_rate": shrink.rate,
        "shrinkage_units": shrink.units,
        "units_moved": shrink.moved,
    }


def compare(this: Mapping[str, Any], other: Mapping[str, Any] | None) -> list[Kpi]:
    """Every KPI of ``this`` week next to ``other``'s (None: nothing to compare)."""
    return [
        Kpi(d.label, this.get(d.key), (other or {}).get(d.key), d.unit, d.lower_is_better)
        for d in KPIS
    ]


async def baseline_week(ledger: Ledger, tz: tzinfo) -> date | None:
    """The first full week of level history (its Monday), or None without history."""
    first = await ledger.first_level_observation()
    if first is None:
        return None
    local = first.astimezone(tz)
    monday = local.date() - timedelta(days=local.weekday())
    if local.weekday() == 0 and local.time() == time():
        return monday
    return monday + timedelta(days=DAYS)


async def week_kpis(
    ledger: Ledger,
    config: Config,
    rules: DiffRules,
    week_start: date,
    now: datetime,
) -> dict[str, Any]:
    """A week's KPIs: as captured if they were, else computed (and captured when the
    week is over, so they never change again)."""
    captured = await ledger.kpi_week(week_start)
    if captured is not None:
        return dict(captured.figures)
    tz = config.tz
    start, end = week_bounds(week_start, tz)
    data = figures(
        await week_figures(ledger, week_start, tz),
        await shrinkage(ledger, config, rules, start, end),
    )
    if end <= now:
        kept, _ = await ledger.capture_kpi_week(week_start, data, now)
        return dict(kept.figures)
    return data


@dataclass
class WeeklyReview:
    """What the weekly summary adds to the four KPIs: the comparison with the baseline
    and last week, last week's decision, which handoff is degrading, and this week's
    cycle counts. ``verdict`` is this week's decision once taken."""

    week_start: date
    this: dict[str, Any]
    last: dict[str, Any]
    baseline_start: date | None
    baseline: dict[str, Any] | None
    previous_verdict: Verdict | None
    verdict: Verdict | None
    chain: ChainReport
    cycle_counts: CycleCountList
    shrink: Shrinkage
    tz: tzinfo

    @property
    def is_baseline(self) -> bool:
        return self.baseline_start == self.week_start

    def against_baseline(self) -> list[Kpi]:
        return compare(self.this, self.baseline)

    def against_last_week(self) -> list[Kpi]:
        return compare(self.this, self.last)

    def decision_figures(self) -> dict[str, Any]:
        """What a decision is taken on, kept with it."""
        return {
            "this_week": self.this,
            "last_week": self.last,
            "baseline": self.baseline,
            "baseline_week": self.baseline_start.isoformat() if self.baseline_start else None,
        }


def trend_days(end: datetime, tz: tzinfo, days: int = TREND_DAYS) -> list[datetime]:
    """Local midnights: the ``days`` days before the local day of ``end`` began, and
    that day's end when ``end`` is not a midnight itself."""
    local = end.astimezone(tz)
    last = local.date() if local.time() == time() else local.date() + timedelta(days=1)
    return [datetime.combine(last - timedelta(days=days - i), time(), tz) for i in range(days + 1)]


async def cycle_counts_for(
    ledger: Ledger, config: Config, rules: DiffRules, week_start: date, now: datetime
) -> CycleCountList:
    """The cycle-count list of the week starting ``week_start``, from the 30 days
    before ``now``."""
    since = now - timedelta(days=TREND_DAYS)
    drifted = await ledger.top_drifting_skus(since, now, limit=100_000, kinds=MISMATCH_KINDS)
    per_sku: dict[str, int] = defaultdict(int)
    for (sku, _), units in (await units_moved(ledger, rules, since, now)).items():
        per_sku[sku] += units
    return cycle_count_list(
        config,
        week_start,
        await ledger.known_skus(),
        incidents={d.sku: d.incidents for d in drifted},
        moved=per_sku,
    )


async def weekly_review(
    ledger: Ledger, config: Config, rules: DiffRules, week_start: date, now: datetime
) -> WeeklyReview:
    """The review of the week starting ``week_start``, as known at ``now``."""
    tz = config.tz
    start, end = week_bounds(week_start, tz)
    previous = week_start - timedelta(days=DAYS)
    this = await week_kpis(ledger, config, rules, week_start, now)
    last = await week_kpis(ledger, config, rules, previous, now)
    base = await baseline_week(ledger, tz)
    baseline: dict[str, Any] | None = None
    if base is not None and base <= week_start:
        baseline = this if base == week_start else await week_kpis(ledger, config, rules, base, now)
    days = trend_days(end, tz)
    chain = await measure_chain(
        ledger,
        hops_from_config(config),
        rules,
        start=start,
        end=end,
        now=max(now, end),
        lost_after_seconds=config.chain.lost_after_seconds,
        days=days,
    )
    return WeeklyReview(
        week_start=week_start,
        this=this,
        last=last,
        baseline_start=base,
        baseline=baseline,
        previous_verdict=await ledger.get_verdict(previous),
        verdict=await ledger.get_verdict(week_start),
        chain=chain,
        cycle_counts=await cycle_counts_for(
            ledger, config, rules, week_start + timedelta(days=DAYS), now
        ),
        shrink=await shrinkage(ledger, config, rules, start, end),
        tz=tz,
    )


@dataclass
class Dashboard:
    """What the Home tab shows, as of ``now``."""

    now: datetime
    week_start: date
    this_week: dict[str, Any]
    last_week: dict[str, Any]
    baseline_start: date | None
    baseline: dict[str, Any] | None
    shrink: Shrinkage
    open_incidents: list[Incident]
    open_total: int
    weeks: list[tuple[date, dict[str, Any]]]
    chain: ChainReport
    latest_verdict: Verdict | None
    cycle_counts: CycleCountList
    tz: tzinfo
    extras: dict[str, Any] = field(default_factory=dict)


def this_monday(now: datetime, tz: tzinfo) -> date:
    today = now.astimezone(tz).date()
    return today - timedelta(days=today.weekday())


async def dashboard(ledger: Ledger, config: Config, rules: DiffRules, now: datetime) -> Dashboard:
    """The KPI dashboard: this week so far against last week and the baseline, the
    open incidents, the weekly trend, the chain's last 30 days, the latest decision."""
    tz = config.tz
    monday = this_monday(now, tz)
    start, _ = week_bounds(monday, tz)
    first = await ledger.first_level_observation()
    weeks: list[tuple[date, dict[str, Any]]] = []
    for i in range(TREND_WEEKS, 0, -1):
        week = monday - timedelta(days=DAYS * i)
        if first is None or week_bounds(week, tz)[1] <= first:
            continue  # before any history: nothing to show, not a week of zeros
        weeks.append((week, await week_kpis(ledger, config, rules, week, now)))
    previous = monday - timedelta(days=DAYS)
    last = await week_kpis(ledger, config, rules, previous, now)
    this = await week_kpis(ledger, config, rules, monday, now)
    base = await baseline_week(ledger, tz)
    baseline = None
    if base is not None and base < monday:
        baseline = await week_kpis(ledger, config, rules, base, now)
    live: list[Incident] = []
    for status in ("open", "acknowledged"):
        live += await ledger.list_incidents(status=status, limit=1000)
    live.sort(key=lambda i: (i.severity != "critical", -i.opened_at.timestamp()))
    chain = await measure_chain(
        ledger,
        hops_from_config(config),
        rules,
        start=now - timedelta(days=config.chain.window_days),
        end=now,
        now=now,
        lost_after_seconds=config.chain.lost_after_seconds,
        days=trend_days(now, tz),
    )
    verdicts = await ledger.list_verdicts(limit=1)
    return Dashboard(
        now=now,
        week_start=monday,
        this_week=this,
        last_week=last,
        baseline_start=base,
        baseline=baseline,
        shrink=await shrinkage(ledger, config, rules, start, now),
        open_incidents=live[:OPEN_SHOWN],
        open_total=len(live),
        weeks=[*weeks, (monday, this)],
        chain=chain,
        latest_verdict=verdicts[0] if verdicts else None,
        cycle_counts=await cycle_counts_for(ledger, config, rules, monday, now),
        tz=tz,
    )


def kpi_series(
    weeks: Sequence[tuple[date, Mapping[str, Any]]], key: str
) -> list[tuple[date, float | None]]:
    """One KPI across weeks, for a trend chart."""
    return [(week, data.get(key)) for week, data in weeks]
