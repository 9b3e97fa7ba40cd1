"""The signal chain for people: Block Kit for ``/synchealth chain``, a table for
``driftwatch chain``, and plain data for ``driftwatch chain --json``."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.slack.render.kpi_format import fit, span, when
from bot.slack.render.review import hop_line
from monitors.chain import ChainReport, HopStats

DEFINITIONS = (
    "Transit: from a change at the upstream system until the downstream shows what it "
    "implies (observed by polls and webhooks). Never arrived: not there after the hop's "
    "lost-after time. Over its SLA: the p95 above the declared SLA, or more than 5 % of "
    "changes never arrived."
)


def chain_blocks(report: ChainReport, tz: tzinfo) -> list[Block]:
    """The chain, hop by hop: declared beside measured; the chart follows in the thread."""
    over = [s.hop.name for s in report.hops if s.over_sla]
    head = (
        f"*{len(report.hops)} hop{'s' if len(report.hops) != 1 else ''}*, changes from "
        f"{when(report.start, tz)} to {when(report.end, tz)}"
    )
    if over:
        head += f" — :warning: over SLA: {', '.join(over)}"
    lines = [hop_line(s) for s in report.hops] or ["_No hop: the chain needs two systems._"]
    return [
        HeaderBlock(text="Signal chain: measured transit per hop"),
        SectionBlock(text=MarkdownTextObject(text=fit(head + "\n" + "\n".join(lines)))),
        ContextBlock(elements=[MarkdownTextObject(text=DEFINITIONS)]),
    ]


def chain_text(report: ChainReport) -> str:
    """The notification text: one line."""
    over = [s.hop.name for s in report.hops if s.over_sla]
    tail = f"; over SLA: {', '.join(over)}" if over else "; every hop within its SLA"
    return f"Signal chain: {len(report.hops)} hops measured{tail}"


def _cell(stats: HopStats) -> list[str]:
    hop = stats.hop
    share = "" if stats.lost_share is None else f"{stats.lost_share:.0%}"
    return [
        hop.name,
        hop.trigger or "-",
        span(hop.sla) if hop.sla else "-",
        str(stats.changes),
        span(stats.p50) if stats.p50 else "-",
        span(stats.p95) if stats.p95 else "-",
        span(stats.max) if stats.max else "-",
        share or "-",
        str(stats.pending),
        "OVER SLA" if stats.over_sla else "",
    ]


def chain_table(report: ChainReport, tz: tzinfo) -> str:
    """A plain-text table for the terminal, declared beside measured."""
    header = ["HOP", "TRIGGER", "SLA", "CHANGES", "P50", "P95", "MAX", "NEVER", "PENDING", ""]
    rows = [header, *(_cell(s) for s in report.hops)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    lines.append(f"changes from {when(report.start, tz)} to {when(report.end, tz)}")
    transforms = [f"  {s.hop.name}: {s.hop.transform}" for s in report.hops if s.hop.transform]
    if transforms:
        lines += ["transforms:", *transforms]
    return "\n".join(lines)


def chain_json(report: ChainReport) -> dict[str, Any]:
    return {
        "from": report.start.isoformat(),
        "to": report.end.isoformat(),
        "measured_at": report.now.isoformat(),
        "hops": [s.to_json() for s in report.hops],
    }
