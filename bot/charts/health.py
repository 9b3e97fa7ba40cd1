"""Charts for ``health:`` and ``webhook:`` incidents, uploaded into the alert's thread
like drift charts.

* sync incidents (``sync_stale``, ``sync_failing``): the lag (time since the last good
  read) over time against the SLA, and the failed reads in a row;
* rate-limit incidents (``rate_limited``, ``retry_storm``): throttles and retries per
  interval, and how full the API cost bucket was;
* webhook incidents (family ``webhook:``, kinds ``webhook_*``): deliveries per interval
  by outcome (accepted, noise, failed) from the ledger, and each delivery's delay.

Lag, throttles and the bucket level are not kept anywhere over time (a connector's
:class:`~connectors.health.Health` holds counters and the latest figures only), so the
Service keeps a :class:`HealthHistory`: a small in-memory ring of snapshots per system,
taken at every health check and diff. It starts empty with the process; the chart says
from when it has data. Webhook deliveries come from the ledger (``webhook_deliveries``,
and the counts of deliveries refused at the door, ``webhook_refusals``).
Rendering runs in a worker thread with matplotlib's Agg canvas (see :mod:`bot.charts.sku`).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from matplotlib.axes import Axes
from matplotlib.dates import ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts.style import (
    axis_start,
    date_locator,
    legend_below,
    new_figure,
    styled,
    to_png,
    wrapped,
)
from bot.charts.upload import upload_chart
from bot.charts.worker import off_loop
from connectors.clock import Clock
from connectors.health import Health
from ledger import Incident, Ledger, RefusalCount, WebhookDelivery

log = logging.getLogger("driftwatch.health_charts")

#: one week of snapshots at the default 60 s health interval
HISTORY_SAMPLES = 10_080
SYNC_KINDS = frozenset({"sync_stale", "sync_failing"})
RATE_KINDS = frozenset({"rate_limited", "retry_storm"})
RATE_SPAN = timedelta(hours=2)
WEBHOOK_SPAN = timedelta(hours=6)
MIN_LAG_SPAN = timedelta(hours=2)
MAX_SPAN = timedelta(days=7)
BINS = 24
PRESSURE_ALARM = 0.9

#: webhook outcomes in three groups (anything unknown counts as failed)
ACCEPTED = ("received", "processed")
NOISE = ("duplicate", "stale", "ignored")


@dataclass(frozen=True, slots=True)
class HealthSample:
    """One system's health at one moment."""

    at: datetime
    lag_seconds: float
    error_streak: int
    requests: int
    throttles: int
    retries: int
    failures: int
    bucket_used: float | None


class HealthHistory:
    """The last :data:`HISTORY_SAMPLES` health snapshots of each system, in memory."""

    def __init__(self, started_at: datetime, maxlen: int = HISTORY_SAMPLES) -> None:
        self._started = started_at
        self._maxlen = maxlen
        self._samples: dict[str, deque[HealthSample]] = {}

    def record(self, healths: Iterable[Health], at: datetime) -> None:
        """Snapshot every system's counters (never synced: lag since monitoring began)."""
        for h in healths:
            since = h.last_success or self._started
            sample = HealthSample(
                at,
                max(0.0, (at - since).total_seconds()),
                h.error_streak,
                h.requests,
                h.throttles,
                h.retries,
                h.failures,
                h.throttle.pressure,
            )
            ring = self._samples.setdefault(h.system, deque(maxlen=self._maxlen))
            if ring and ring[-1].at > at:
                continue  # never out of order
            ring.append(sample)

    def samples(self, system: str, since: datetime) -> list[HealthSample]:
        return [s for s in self._samples.get(system, ()) if s.at >= since]


# ------------------------------------------------------------------ rendering


def _figure() -> tuple[Figure, Axes, Axes]:
    figure = new_figure(4.8)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    return figure, top, bottom


def _time_axis(ax: Axes, start: datetime, now: datetime) -> None:
    """The shared time axis, from ``start`` (for samples: just before the first, as the
    history starts with the process) to ``now``."""
    ax.set_xlim(start, now)  # type: ignore[arg-type]
    locator = date_locator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def _empty(ax: Axes, text: str) -> None:
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.35", wrap=False
    )


def _x(values: Sequence[datetime]) -> list[float]:
    return [float(v) for v in date2num(list(values))]  # type: ignore[no-untyped-call]


def render_lag_png(
    title: str,
    samples: Sequence[HealthSample],
    sla_seconds: int,
    start: datetime,
    now: datetime,
) -> bytes:
    """:func:`lag_figure` as PNG bytes."""
    return to_png(lag_figure(title, samples, sla_seconds, start, now))


@styled()
def lag_figure(
    title: str,
    samples: Sequence[HealthSample],
    sla_seconds: int,
    start: datetime,
    now: datetime,
) -> Figure:
    """Lag in minutes against the SLA (and twice it: critical), and failed reads in a row."""
    figure, top, bottom = _figure()
    sla = sla_seconds / 60
    if samples:
        xs = _x([s.at for s in samples])
        lag = [s.lag_seconds / 60 for s in samples]
        top.plot(
            xs,
            lag,
            color="C0",
            linewidth=2,
            marker="o" if len(samples) < 30 else None,
            markersize=3,
            label="lag (time since last good read)",
        )
        top.set_ylim(0, max(max(lag), 2 * sla) * 1.15)
        streak = [s.error_streak for s in samples]
        bottom.step(xs, streak, where="post", color="C3", linewidth=1.8)
        bottom.fill_between(xs, streak, step="post", color="C3", alpha=0.25)
        bottom.set_ylim(0, max(3, max(streak)) * 1.2)
    else:
        top.set_ylim(0, 2 * sla * 1.15)
        _empty(top, "no health samples yet\n(they start with the process)")
    top.axhline(sla, color="C1", linestyle="--", linewidth=1.2, label=f"SLA {_span(sla_seconds)}")
    top.axhline(2 * sla, color="C3", linestyle=":", linewidth=1.2, label="critical (2× SLA)")
    top.set_ylabel("lag (min)")
    top.set_title(wrapped(title), loc="left")
    top.grid(True, alpha=0.3)
    bottom.axhline(3, color="0.5", linestyle=":", linewidth=1)
    bottom.set_ylabel("failed reads\nin a row")
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.grid(True, alpha=0.3)
    _time_axis(bottom, axis_start(samples[0].at if samples else None, start, now), now)
    legend_below(figure, top, max_cols=1)
    return figure


def per_interval(samples: Sequence[HealthSample], field: str) -> tuple[list[datetime], list[int]]:
    """Counter increases between consecutive samples (a restart's reset counts as 0)."""
    xs, ys = [], []
    for before, after in itertools.pairwise(samples):
        xs.append(after.at)
        ys.append(max(0, getattr(after, field) - getattr(before, field)))
    return xs, ys


def render_rate_png(
    title: str, samples: Sequence[HealthSample], start: datetime, now: datetime
) -> bytes:
    """:func:`rate_figure` as PNG bytes."""
    return to_png(rate_figure(title, samples, start, now))


@styled()
def rate_figure(
    title: str, samples: Sequence[HealthSample], start: datetime, now: datetime
) -> Figure:
    """Throttles and retries per health interval; the cost bucket's use (Shopify)."""
    figure, top, bottom = _figure()
    if len(samples) >= 2:
        xs, throttles = per_interval(samples, "throttles")
        _, retries = per_interval(samples, "retries")
        width = max(
            min((b.at - a.at).total_seconds() for a, b in itertools.pairwise(samples))
            / 86400
            * 0.8,
            1 / 86400,
        )
        ends = _x(xs)  # each bar pair fills the interval that ends at its sample
        top.bar(
            [x - width for x in ends],
            throttles,
            width / 2,
            align="edge",
            color="C3",
            label="throttled (429 / THROTTLED)",
        )
        top.bar(
            [x - width / 2 for x in ends],
            retries,
            width / 2,
            align="edge",
            color="C0",
            label="retries",
        )
        top.set_ylim(0, max(1, *throttles, *retries) * 1.2)
    else:
        _empty(top, "not enough health samples yet\n(they start with the process)")
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_ylabel("per interval")
    top.set_title(wrapped(title), loc="left")
    top.grid(True, axis="y", alpha=0.3)
    used = [(s.at, s.bucket_used) for s in samples if s.bucket_used is not None]
    if used:
        bottom.plot(
            _x([at for at, _ in used]),
            [100 * u for _, u in used],
            color="C2",
            linewidth=1.8,
            marker="o" if len(used) < 30 else None,
            markersize=3,
        )
        bottom.axhline(100 * PRESSURE_ALARM, color="C3", linestyle=":", linewidth=1.2)
        bottom.text(
            0.995,
            100 * PRESSURE_ALARM + 2,
            "alarm 90%",
            transform=bottom.get_yaxis_transform(),
            ha="right",
            va="bottom",
            fontsize=11,
            color="C3",
        )
    else:
        _empty(bottom, "this system reports no cost bucket")
    bottom.set_ylim(0, 115)
    bottom.set_ylabel("bucket used (%)")
    bottom.grid(True, alpha=0.3)
    _time_axis(bottom, axis_start(samples[0].at if samples else None, start, now), now)
    legend_below(figure, top)
    return figure


def outcome_group(outcome: str) -> str:
    """``accepted``, ``noise`` or ``failed``."""
    if outcome in ACCEPTED:
        return "accepted"
    return "noise" if outcome in NOISE else "failed"


def bin_deliveries(
    deliveries: Iterable[WebhookDelivery],
    start: datetime,
    now: datetime,
    bins: int = BINS,
    refusals: Iterable[RefusalCount] = (),
) -> dict[str, list[int]]:
    """Deliveries per outcome group in ``bins`` equal intervals from ``start`` to ``now``;
    each count of refusals in the interval of its last refusal."""
    step = (now - start) / bins
    groups = {group: [0] * bins for group in ("accepted", "noise", "failed")}
    for d in deliveries:
        i = min(bins - 1, max(0, int((d.received_at - start) / step)))
        groups[outcome_group(d.outcome)][i] += 1
    for r in refusals:
        i = min(bins - 1, max(0, int((r.last_at - start) / step)))
        groups[outcome_group(r.outcome)][i] += r.count
    return groups


def render_webhook_png(
    title: str,
    deliveries: Sequence[WebhookDelivery],
    start: datetime,
    now: datetime,
    refusals: Sequence[RefusalCount] = (),
) -> bytes:
    """:func:`webhook_figure` as PNG bytes."""
    return to_png(webhook_figure(title, deliveries, start, now, refusals))


@styled()
def webhook_figure(
    title: str,
    deliveries: Sequence[WebhookDelivery],
    start: datetime,
    now: datetime,
    refusals: Sequence[RefusalCount] = (),
) -> Figure:
    """Deliveries per interval by outcome group (refusals counted at the door included),
    and each delivery's delay."""
    figure, top, bottom = _figure()
    step = (now - start) / BINS
    edges = [start + step * i for i in range(BINS)]
    groups = bin_deliveries(deliveries, start, now, refusals=refusals)
    width = step.total_seconds() / 86400 * 0.85
    bottom_of = [0] * BINS
    colors = {"accepted": "C2", "noise": "C7", "failed": "C3"}
    labels = {
        "accepted": "accepted",
        "noise": "duplicate / stale / ignored",
        "failed": "failed (signature, malformed, error)",
    }
    for group in ("accepted", "noise", "failed"):
        counts = groups[group]
        top.bar(
            _x(edges),
            counts,
            width,
            bottom=bottom_of,
            align="edge",
            color=colors[group],
            label=labels[group],
        )
        bottom_of = [a + b for a, b in zip(bottom_of, counts, strict=True)]
    top.set_ylim(0, max(1, *bottom_of) * 1.25)
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.set_ylabel(f"per {_span(int(step.total_seconds()))}")
    top.set_title(wrapped(title), loc="left")
    top.grid(True, axis="y", alpha=0.3)
    if not deliveries and not refusals:
        _empty(top, "no webhook delivery received in this window")
    delayed = [(d.received_at, d.delay_seconds) for d in deliveries if d.delay_seconds is not None]
    if delayed:
        bottom.scatter(_x([at for at, _ in delayed]), [s for _, s in delayed], s=10, color="C0")
        bottom.set_ylim(0, max(1.0, max(s for _, s in delayed)) * 1.2)
    else:
        _empty(bottom, "no delivery said when it was triggered")
    bottom.set_ylabel("delay (s)")
    bottom.grid(True, alpha=0.3)
    _time_axis(bottom, start, now)
    legend_below(figure, top, max_cols=1)
    return figure


def _span(seconds: int) -> str:
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds} s"


# ------------------------------------------------------------------ the hook


def chart_kind(incident: Incident) -> str | None:
    """``lag``, ``rate``, ``webhooks`` or None (no chart for this incident)."""
    if incident.kind.startswith("webhook"):
        return "webhooks"
    if not incident.fingerprint.startswith("health:"):
        return None
    if incident.kind in SYNC_KINDS:
        return "lag"
    if incident.kind in RATE_KINDS:
        return "rate"
    return None


class HealthChart:
    """An outbox hook: after a health, rate-limit or webhook alert is posted, its chart
    goes into the alert's thread."""

    def __init__(
        self,
        ledger: Ledger,
        client: AsyncWebClient,
        history: HealthHistory,
        clock: Clock,
        sla_seconds: Mapping[str, int],
    ) -> None:
        self._ledger = ledger
        self._client = client
        self._history = history
        self._clock = clock
        self._sla = dict(sla_seconds)

    async def render(self, incident: Incident) -> tuple[bytes, str] | None:
        """The chart's PNG and its title, or None when this incident has no chart."""
        kind = chart_kind(incident)
        system = incident.system or str((incident.details or {}).get("system") or "")
        if kind is None or not system:
            return None
        now = self._clock.now()
        if kind == "webhooks":
            start = now - WEBHOOK_SPAN
            # a burst past the limit keeps the recent hours, the incident's own
            deliveries = await self._ledger.list_deliveries(
                since=start, system=system, limit=100_000, newest=True
            )
            title = f"{system} webhooks: deliveries and failures, last {_span(6 * 3600)}"
            refusals = await self._ledger.list_refusals(since=start, system=system)
            png = await off_loop(render_webhook_png, title, deliveries, start, now, refusals)
            return png, title
        if kind == "rate":
            start = now - RATE_SPAN
            samples = self._history.samples(system, start)
            title = f"{system}: throttles, retries and bucket use, last {_span(7200)}"
            png = await off_loop(render_rate_png, title, samples, start, now)
            return png, title
        sla = self._sla.get(system, 900)
        span = min(MAX_SPAN, max(MIN_LAG_SPAN, timedelta(seconds=4 * sla)))
        start = now - span
        samples = self._history.samples(system, start)
        title = f"{system}: sync lag against its {_span(sla)} SLA"
        png = await off_loop(render_lag_png, title, samples, sla, start, now)
        return png, title

    async def __call__(self, incident: Incident, channel: str, ts: str) -> None:
        rendered = await self.render(incident)
        if rendered is None:
            return
        png, title = rendered
        await upload_chart(
            self._client, channel, ts, png, f"incident-{incident.id}-{incident.kind}.png", title
        )
