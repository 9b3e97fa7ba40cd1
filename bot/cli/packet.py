"""``driftwatch packet``: the inventory reliability packet field note 004 asks for — the
sync contract, the escalation rulebook and the weekly KPI dashboard — written as
Markdown and HTML with their charts, generated from the configuration and the ledger
(never written by hand: regenerate it).

Files written into the output directory: ``packet.md``, ``packet.html`` and
``charts/signal-chain.png``, ``charts/hop-drift.png``, ``charts/kpi-trend.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.charts.chain import chain_title, render_chain_chart, render_hop_trend_chart
from bot.charts.kpi import render_kpi_trend_chart
from bot.cli.packet_doc import Document
from bot.slack.render.kpi_format import DECISIONS, percent, span, week_label, when
from bot.slack.render.summary import format_value
from connectors.clock import Clock, SystemClock
from ledger import Ledger, Verdict
from monitors.chain import ChainReport, hops_from_config, measure_chain
from monitors.config import Config, CsvSystem, RestSystem, System, load_config
from monitors.kpis import (
    KPIS,
    TREND_WEEKS,
    baseline_week,
    cycle_counts_for,
    this_monday,
    trend_days,
    week_kpis,
)
from monitors.reports import DAYS, week_bounds
from monitors.wiring import rules_from_config

CHARTS = "charts"

#: How every write Driftwatch makes is made idempotent (facts of the code, kept here so
#: the packet states them; the tests check the names against the modules).
IDEMPOTENCY = (
    "Resyncs: the key is derived from the decision — sha256 of (system, SKU, location, "
    "state, the value read, the target), prefixed dw- (monitors.resync.resync_key) — so "
    "two people clicking Resync at once make one decision with one key; the ledger keeps "
    "one resync row per key.",
    "Shopify writes: inventorySetQuantities with @idempotent(key:) set to that key and "
    "changeFromQuantity set to the quantity last read (compare-and-set): a count that "
    "changed since is never overwritten; the write comes back stale and is decided again.",
    "REST (WMS) writes: the same key in the configured idempotency header "
    "(Idempotency-Key by default).",
    "Manual adjustments: keyed by the Slack view they were submitted from "
    "(monitors.adjustments.adjustment_key), so a double submit records and writes once.",
    "Webhooks: each delivery claims its event id (X-Shopify-Event-Id, else the webhook "
    "id) under a unique index; a second delivery is recorded as a duplicate and not "
    "processed, an older one arriving late as stale.",
    "Slack messages: every outbox entry has a dedupe key (incident:<id>:opened:<n>, "
    "weekly-summary:<channel>:<week>, verdict:<week>, …): a repeated evaluation queues "
    "nothing twice.",
    "Weekly decisions: one per week under a unique index; the first submission decides.",
)


@dataclass(frozen=True)
class PacketFiles:
    markdown: Path
    html: Path
    charts: tuple[Path, ...]


def _mapping(system: System) -> str:
    if isinstance(system, RestSystem):
        pairs = system.fields.quantities.items()
    elif isinstance(system, CsvSystem):
        pairs = system.columns.quantities.items()
    else:
        return "Shopify's own quantity names"
    return ", ".join(f"{state} ← {source}" for state, source in pairs)


def _systems(doc: Document, config: Config) -> None:
    rows = []
    for s in config.systems:
        writes = f"yes ({s.write_state})" if s.writable else "no"
        rows.append(
            [
                s.name,
                s.kind,
                s.role,
                " + ".join(s.compare_states),
                _mapping(s),
                writes,
                span(s.sla_seconds),
            ]
        )
    doc.table(
        ["system", "kind", "role", "compared (summed)", "state mapping", "writes", "stale after"],
        rows,
    )


def _truth(doc: Document, config: Config) -> None:
    doc.heading("Source-of-truth hierarchy", 3)
    ranks = ("first", "second", "third", "fourth", "fifth")
    listed = [
        f"{ranks[i] if i < len(ranks) else f'number {i + 1}'}: {s.name} ({s.role}, {s.kind})"
        for i, s in enumerate(config.source_systems())
    ]
    doc.bullets(listed)
    others = [s.name for s in config.systems if s.name not in config.source_of_truth]
    if others:
        doc.paragraph(
            "The first of these with a fresh level is the truth for a SKU at a location; "
            f"never believed, only corrected: {', '.join(others)}."
        )


def _normalization(doc: Document, config: Config) -> None:
    rules = config.skus
    doc.heading("SKU normalization", 3)
    removed = " ".join(repr(c) for c in rules.remove_chars) if rules.remove_chars else "none"
    doc.bullets(
        [
            f"strip surrounding whitespace: {'yes' if rules.strip else 'no'}",
            f"upper-case: {'yes' if rules.uppercase else 'no'}",
            f"characters removed: {removed}",
            f"aliases: {len(rules.aliases)}",
        ]
    )
    if rules.aliases:
        doc.table(["raw SKU", "compared as"], sorted(rules.aliases.items())[:100])
    if rules.tags:
        doc.table(
            ["tag", "SKUs"], [[tag, ", ".join(skus)] for tag, skus in sorted(rules.tags.items())]
        )


def _transforms(doc: Document, config: Config) -> None:
    doc.heading("Transforms", 3)
    safety = config.safety_stock
    items = [
        "each system compares the sum of its compared states (table above)",
        f"a storefront shows the truth minus its safety stock: {safety.default} by default"
        + (f", per SKU {dict(safety.skus)}" if safety.skus else "")
        + (
            ", per location "
            + "; ".join(
                f"{loc}: default {t.default}, SKUs {dict(t.skus)}"
                for loc, t in safety.locations.items()
            )
            if safety.locations
            else ""
        ),
    ]
    for system, pack in config.pack_sizes.items():
        items.append(
            f"{system} counts in packs: default {pack.default}"
            + (f", per SKU {dict(pack.skus)}" if pack.skus else "")
        )
    for bundle in config.bundles:
        parts = ", ".join(f"{qty} × {sku}" for sku, qty in bundle.components.items())
        items.append(f"bundle {bundle.sku} = {parts} (shown as what its components allow)")
    for hop in config.chain.hops:
        if hop.transform:
            items.append(f"{hop.upstream} → {hop.downstream}: {hop.transform}")
    doc.bullets(items)


def _hops(doc: Document, report: ChainReport, chart: str) -> None:
    doc.heading("Hops and their SLAs", 3)
    rows = []
    for s in report.hops:
        hop = s.hop
        rows.append(
            [
                hop.name,
                hop.trigger or "—",
                hop.transform or "—",
                span(hop.sla) if hop.sla else "none declared",
                s.changes,
                span(s.p50) if s.p50 else "—",
                span(s.p95) if s.p95 else "—",
                span(s.max) if s.max else "—",
                percent(s.lost_share, 0) if s.lost_share is not None else "—",
                s.pending,
                "OVER SLA" if s.over_sla else ("ok" if hop.sla else "—"),
            ]
        )
    doc.table(
        [
            "hop",
            "trigger",
            "transform",
            "SLA",
            "changes",
            "p50",
            "p95",
            "max",
            "never arrived",
            "in transit",
            "status",
        ],
        rows,
    )
    doc.paragraph(
        f"Measured from the level history, changes from {when(report.start, _tz(report))} "
        f"to {when(report.end, _tz(report))}: from a change upstream until the downstream "
        "shows what it implies."
    )
    doc.image(chart, chain_title(report))


def _tz(report: ChainReport) -> Any:
    return report.now.tzinfo


def _rulebook(doc: Document, config: Config) -> None:
    doc.heading("Escalation rulebook")
    t = config.thresholds
    doc.heading("When a difference is a drift", 3)
    persistence = f"seen in {t.persistence_diffs} consecutive diffs"
    if t.persistence_seconds:
        persistence += f" and lasting at least {span(t.persistence_seconds)}"
    doc.bullets(
        [
            f"more than {t.default.absolute} units and more than {t.default.percent:g} % of "
            "the source-of-truth count",
            f"confirmed when {persistence}; at once when larger than {t.large.absolute} units "
            f"and {t.large.percent:g} %",
            *(
                f"SKUs tagged {tag}: absolute {o.absolute if o.absolute is not None else 'default'}"
                f", percent {o.percent if o.percent is not None else 'default'}"
                for tag, o in sorted(t.tags.items())
            ),
        ]
    )
    p = config.policy
    doc.heading("Auto-resync policy", 3)
    mode = "on" if p.auto_resync else "off"
    doc.bullets(
        [
            f"auto-resync: {mode}; shadow mode (decide, write nothing): "
            f"{'on' if p.shadow_mode else 'off'}",
            "only count drifts (oversell risk, undersell, count mismatch) of at most "
            f"{p.auto_resync_max_units} units, once per incident",
            "lowering a count only" if not p.auto_resync_raise else "lowering and raising counts",
            f"never SKUs tagged: {', '.join(p.never_auto_tags) or 'none'}",
            "a write always goes through compare-and-set from a fresh read of the truth",
        ]
    )
    s = config.slack
    doc.heading("Escalation", 3)
    writers = [*s.writers.users, *s.writers.usergroups, *s.writers.channels]
    doc.bullets(
        [
            "a drift the policy does not resync is escalated to "
            + (f"the on-call user group {s.oncall_usergroup}" if s.oncall_usergroup else "a person")
            + ", with the reasons",
            f"alerts go to {s.alerts_channel}; an unacknowledged incident is reminded every "
            f"{span(config.schedules.reminder_seconds)}",
            f"resync, resolve, adjust and the weekly decision: writers only "
            f"({', '.join(writers) or 'nobody configured'})",
            "a system with no successful read within its SLA (table above) is a sync-health "
            "incident; three failed reads in a row, throttling or a retry storm too",
            "a hop over its SLA (p95 transit above it, or more than 5 % of changes never "
            f"arriving) is a sync-health incident, checked every "
            f"{span(config.chain.check_seconds)}",
            f"the weekly summary ({config.schedules.weekly_summary}) asks for one decision; "
            f"left open {config.kpis.verdict_reminder_hours} h, it is reminded once",
        ]
    )


def _kpi_row(
    week: date, data: Mapping[str, Any], verdict: Verdict | None, tz: Any, label: str
) -> list[str]:
    row = [label]
    row += [format_value(data.get(d.key), d.unit) for d in KPIS]
    if verdict is None:
        row += ["—", "", ""]
    else:
        row += [
            DECISIONS.get(verdict.decision, verdict.decision),
            f"{verdict.decided_by}, {when(verdict.decided_at, tz)}",
            verdict.note,
        ]
    return row


async def _weeks(
    ledger: Ledger, config: Config, now: datetime
) -> list[tuple[date, dict[str, Any]]]:
    rules = rules_from_config(config)
    first = await ledger.first_level_observation()
    monday = this_monday(now, config.tz)
    weeks: list[tuple[date, dict[str, Any]]] = []
    for i in range(TREND_WEEKS, -1, -1):
        week = monday - timedelta(days=DAYS * i)
        if first is None or week_bounds(week, config.tz)[1] <= first:
            continue
        weeks.append((week, await week_kpis(ledger, config, rules, week, now)))
    return weeks


async def build_packet(config: Config, ledger: Ledger, now: datetime, out: Path) -> PacketFiles:
    """Write the packet for ``config`` and ``ledger`` as of ``now`` into ``out``."""
    tz = config.tz
    rules = rules_from_config(config)
    charts_dir = out / CHARTS
    await asyncio.to_thread(charts_dir.mkdir, parents=True, exist_ok=True)
    hops = hops_from_config(config)
    chain = await measure_chain(
        ledger,
        hops,
        rules,
        start=now - timedelta(days=config.chain.window_days),
        end=now,
        now=now,
        lost_after_seconds=config.chain.lost_after_seconds,
        days=trend_days(now, tz),
    )
    weeks = await _weeks(ledger, config, now)
    verdicts = {v.week: v for v in await ledger.list_verdicts(limit=TREND_WEEKS + 1)}
    base = await baseline_week(ledger, tz)
    pngs = {
        "signal-chain.png": await render_chain_chart(chain),
        "hop-drift.png": await render_hop_trend_chart(chain),
        "kpi-trend.png": await render_kpi_trend_chart(
            "Weekly KPIs (✓ passed, ! escalated)",
            weeks,
            baseline=base,
            line=config.kpis.shrinkage_line_percent / 100,
            verdicts={w: v.decision for w, v in verdicts.items()},
        ),
    }
    written = []
    for name, png in pngs.items():
        path = charts_dir / name
        await asyncio.to_thread(path.write_bytes, png)
        written.append(path)

    doc = Document("Inventory reliability packet")
    doc.note(
        f"Generated by driftwatch packet from the configuration and the ledger, "
        f"{when(now, tz)} ({config.timezone}). Regenerate it; do not edit it by hand."
    )
    doc.heading("Sync contract")
    _truth(doc, config)
    doc.heading("State mapping", 3)
    _systems(doc, config)
    doc.table(
        ["location", *(s.name for s in config.systems)],
        [
            [key, *(ids.get(s.name, "—") for s in config.systems)]
            for key, ids in sorted(config.locations.items())
        ],
    )
    _normalization(doc, config)
    _transforms(doc, config)
    doc.heading("Idempotency keys", 3)
    doc.bullets(IDEMPOTENCY)
    _hops(doc, chain, f"{CHARTS}/signal-chain.png")
    _rulebook(doc, config)

    doc.heading("Weekly KPI dashboard")
    monday = this_monday(now, tz)
    if base is None:
        doc.paragraph("No level history yet: the first full week of history becomes the baseline.")
    else:
        doc.paragraph(
            f"Baseline: the week of {week_label(base)} (the first full week of history); its "
            "KPIs are captured in the ledger and every week is compared with them."
        )
    rows = []
    for week, data in weeks:
        label = week_label(week)
        if week == base:
            label += " (baseline)"
        if week == monday:
            label += " (so far)"
        rows.append(_kpi_row(week, data, verdicts.get(week), tz, label))
    doc.table(["week", *(d.label for d in KPIS), "decision", "by, when", "note"], rows)
    doc.paragraph(
        "Pass condition: mismatch and oversells trend down with no hidden failure spikes. "
        "Each week's decision is recorded once, with who, when and a note, in the ledger "
        "and the audit log."
    )
    doc.image(f"{CHARTS}/kpi-trend.png", "Weekly KPIs: mismatch, oversells, auto-resync, shrinkage")
    doc.image(f"{CHARTS}/hop-drift.png", "Drift rate per hop, 30 days")
    counts = await cycle_counts_for(ledger, config, rules, monday, now)
    doc.heading("Cycle counts this week", 3)
    doc.paragraph(
        f"{len(counts.items)} SKUs for the week of {week_label(counts.week_start)}: every SKU "
        f"of the {counts.catalog} once in {counts.weeks} weeks; drift-prone, hero, "
        "high-value and high-velocity SKUs every week."
    )
    doc.table(
        ["SKU", "why"],
        [
            [i.sku, "; ".join(i.reasons) or f"rotation (slot {counts.slot + 1})"]
            for i in counts.items
        ],
    )
    markdown, html = out / "packet.md", out / "packet.html"
    await asyncio.to_thread(markdown.write_text, doc.markdown(), "utf-8")
    await asyncio.to_thread(html.write_text, doc.html(), "utf-8")
    return PacketFiles(markdown, html, tuple(written))


async def demo_packet(out: Path, *, scenarios: Sequence[str] | None = None) -> PacketFiles:
    """Play the demo's scenarios headlessly (as ``driftwatch demo --headless``), then
    write the packet of that world and ledger."""
    from bot.cli.demo import played_demo

    async with played_demo(scenarios) as (config, ledger, now):
        return await build_packet(config, ledger, now, out)


async def run_packet_command(
    config_path: Path, out: Path, *, demo: bool, clock: Clock | None = None
) -> int:
    if demo:
        files = await demo_packet(out)
    else:
        from bot.cli.main import CliError
        from bot.service import ledger_url

        config = load_config(config_path)
        async with Ledger.from_url(ledger_url(config, dict(os.environ))) as ledger:
            if await ledger.current_revision() is None:
                raise CliError(f"the ledger at {ledger.url} is empty: `driftwatch serve` fills it")
            await ledger.upgrade()
            files = await build_packet(config, ledger, (clock or SystemClock()).now(), out)
    print(
        json.dumps(
            {
                "markdown": str(files.markdown),
                "html": str(files.html),
                "charts": [str(c) for c in files.charts],
            },
            indent=2,
        )
    )
    return 0
