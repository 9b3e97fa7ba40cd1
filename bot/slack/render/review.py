"""The weekly summary's review, as Block Kit: the KPIs against the baseline, shrinkage
against its line, which handoff is degrading, last week's decision, this week's cycle
counts, and the two buttons that record this week's decision — plus the note modal, the
decided line that replaces the buttons, and the one reminder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.slack.render.kpi_format import (
    DECISIONS,
    decision_line,
    esc,
    fit,
    percent,
    span,
    week_label,
)
from bot.slack.render.summary import format_value, trend
from ledger import Verdict
from monitors.chain import ChainReport, HopStats
from monitors.cycle_count import CycleCountList
from monitors.kpis import Shrinkage, WeeklyReview

PASS_ACTION = "verdict_pass"
ESCALATE_ACTION = "verdict_escalate"
ACTIONS = {PASS_ACTION: "pass", ESCALATE_ACTION: "escalate"}
NOTE_CALLBACK = "verdict_note"
NOTE_BLOCK = "note"
NOTE_ACTION = "note"
#: cycle-count SKUs listed by name in a message (the rest are counted)
LISTED_SKUS = 30
#: days at the end of the 30-day trend compared with the days before them
RECENT_DAYS = 7
QUESTION = (
    "*This week's verification*: did mismatch and oversells trend down, with no hidden "
    "failure spikes? Record the decision (once; with a note):"
)


def verdict_block_id(week: date) -> str:
    return f"verdict:{week.isoformat()}"


def verdict_buttons(week: date) -> ActionsBlock:
    """The two buttons that record the week's decision."""
    value = week.isoformat()
    return ActionsBlock(
        block_id=verdict_block_id(week),
        elements=[
            ButtonElement(
                text=DECISIONS["pass"], action_id=PASS_ACTION, value=value, style="primary"
            ),
            ButtonElement(
                text=DECISIONS["escalate"], action_id=ESCALATE_ACTION, value=value, style="danger"
            ),
        ],
    )


def decided_block(verdict: Verdict, review_tz: Any) -> SectionBlock:
    """What replaces the buttons once the week is decided."""
    return SectionBlock(
        block_id=verdict_block_id(verdict.week),
        text=MarkdownTextObject(
            text=fit("*Decision recorded*\n" + decision_line(verdict, review_tz))
        ),
    )


def _compare_lines(review: WeeklyReview) -> str:
    if review.baseline is None:
        return (
            "*Against the baseline*\n_No full week of history yet: the first full week "
            "becomes the baseline._"
        )
    assert review.baseline_start is not None
    if review.is_baseline:
        return (
            "*Against the baseline*\nThis is the baseline week: every later week is "
            "compared with its figures."
        )
    lines = [f"*Against the baseline* (week of {week_label(review.baseline_start)})"]
    for kpi in review.against_baseline():
        lines.append(
            f"• {kpi.name}: {format_value(kpi.this_week, kpi.unit)} — baseline "
            f"{format_value(kpi.last_week, kpi.unit)}, {trend(kpi)}"
        )
    return "\n".join(lines)


def shrinkage_text(shrink: Shrinkage) -> str:
    line = (
        f"{shrink.line:.0%}"
        if shrink.line * 100 == round(shrink.line * 100)
        else f"{shrink.line:.1%}"
    )
    if shrink.rate is None:
        body = f"no unit moved at the source of truth (line {line})"
    else:
        mark = (
            ":warning: over the line" if shrink.over_line else ":white_check_mark: under the line"
        )
        body = (
            f"{percent(shrink.rate)} — {shrink.units} of {shrink.moved} units moved "
            f"(line {line}) {mark}"
        )
    if shrink.unmeasured:
        body += f"; {shrink.unmeasured} adjustment(s) set a count without saying by how much"
    return body


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def hop_line(stats: HopStats, rates: Sequence[float | None] | None = None) -> str:
    """``• wms → shopify (webhook): p50 1 min, p95 20 min, max 20 min …``."""
    hop = stats.hop
    head = f"• *{esc(hop.name)}*" + (f" ({hop.trigger})" if hop.trigger else "")
    measured = (
        f"{stats.changes} change{'s' if stats.changes != 1 else ''}: p50 {span(stats.p50)}, "
        f"p95 {span(stats.p95)}, max {span(stats.max)}"
        if stats.changes
        else "no change measured"
    )
    if stats.lost_share:
        measured += f", {stats.lost_share:.0%} never arrived"
    if stats.pending:
        measured += f", {stats.pending} in transit"
    sla = f"SLA {span(hop.sla)}" if hop.sla else "no SLA declared"
    flag = " :warning: *over its SLA*" if stats.over_sla else ""
    line = f"{head}: {measured} ({sla}){flag}"
    if rates:
        recent, before = _mean(rates[-RECENT_DAYS:]), _mean(rates[:-RECENT_DAYS])
        if recent is not None:
            line += f"\n    drift rate {percent(recent)} the last {RECENT_DAYS} days"
            if before is not None:
                direction = "▲" if recent > before else "▼" if recent < before else "="
                line += (
                    f", {percent(before)} the {len(rates) - RECENT_DAYS} days before {direction}"
                )
    if hop.transform:
        line += f"\n    _transform: {esc(hop.transform)}_"
    return line


def chain_text(chain: ChainReport, title: str) -> str:
    lines = [title]
    lines += [hop_line(s, chain.drift_rates.get(s.hop.key)) for s in chain.hops]
    return fit("\n".join(lines))


def cycle_count_text(counts: CycleCountList) -> str:
    head = (
        f"*Cycle counts for the week of {week_label(counts.week_start)}*: "
        f"{len(counts.items)} SKU{'s' if len(counts.items) != 1 else ''} "
        f"(every SKU of {counts.catalog} once in {counts.weeks} weeks; slot "
        f"{counts.slot + 1} of {counts.weeks})"
    )
    lines = [head]
    for item in counts.first[:LISTED_SKUS]:
        lines.append(f"• `{esc(item.sku, 80)}` — {esc('; '.join(item.reasons))}")
    rotation = counts.rotation
    room = max(0, LISTED_SKUS - len(counts.first))
    if rotation:
        shown = ", ".join(f"`{esc(i.sku, 80)}`" for i in rotation[:room])
        more = len(rotation) - min(room, len(rotation))
        lines.append(f"• rotation: {shown}" + (f" and {more} more" if more else ""))
    if not counts.items:
        lines.append("_No SKU is due this week._")
    return fit("\n".join(lines))


def previous_verdict_text(review: WeeklyReview) -> str:
    previous = review.week_start.toordinal() - 7
    label = week_label(date.fromordinal(previous))
    if review.previous_verdict is None:
        return f"*Last week's decision* ({label})\n_No decision was recorded._"
    return f"*Last week's decision* ({label})\n{decision_line(review.previous_verdict, review.tz)}"


def review_blocks(review: WeeklyReview) -> list[Block]:
    """The blocks appended to the weekly summary."""
    blocks: list[Block] = [
        DividerBlock(),
        SectionBlock(text=MarkdownTextObject(text=fit(_compare_lines(review)))),
        SectionBlock(text=MarkdownTextObject(text=f"*Shrinkage*\n{shrinkage_text(review.shrink)}")),
        SectionBlock(
            text=MarkdownTextObject(
                text=chain_text(
                    review.chain,
                    "*Which handoff is degrading* (the week's transit times; the 30-day "
                    "drift rate per hop is charted in the thread)",
                )
            )
        ),
        SectionBlock(text=MarkdownTextObject(text=fit(previous_verdict_text(review)))),
        SectionBlock(text=MarkdownTextObject(text=cycle_count_text(review.cycle_counts))),
        DividerBlock(),
    ]
    if review.verdict is not None:
        blocks.append(decided_block(review.verdict, review.tz))
    else:
        blocks += [
            SectionBlock(text=MarkdownTextObject(text=QUESTION)),
            verdict_buttons(review.week_start),
        ]
    return blocks


@dataclass(frozen=True)
class NoteContext:
    """What the note modal carries to its submission (``private_metadata``)."""

    week: date
    decision: str
    channel: str | None
    message_ts: str | None

    def dumps(self) -> str:
        return json.dumps(
            {
                "week": self.week.isoformat(),
                "decision": self.decision,
                "channel": self.channel,
                "ts": self.message_ts,
            }
        )

    @classmethod
    def loads(cls, text: str) -> NoteContext:
        """Raises ValueError for anything this module did not write."""
        data = json.loads(text or "{}")
        if not isinstance(data, dict) or data.get("decision") not in ("pass", "escalate"):
            raise ValueError("not a decision")
        channel, ts = data.get("channel"), data.get("ts")
        return cls(
            date.fromisoformat(str(data.get("week"))),
            str(data["decision"]),
            channel if isinstance(channel, str) else None,
            ts if isinstance(ts, str) else None,
        )


def note_modal(context: NoteContext, figures: dict[str, Any] | None) -> View:
    """The modal that asks for the decision's note before it is recorded."""
    label = DECISIONS[context.decision]
    text = f"*{label}* for the week of {week_label(context.week)}."
    this = (figures or {}).get("this_week") if figures else None
    if isinstance(this, dict):
        text += (
            f"\nMismatch rate {percent(this.get('mismatch_rate'))}, oversell incidents "
            f"{this.get('oversell_incidents', 'n/a')}, auto-resync success "
            f"{percent(this.get('auto_resync_success_rate'))}, manual interventions "
            f"{this.get('manual_interventions', 'n/a')}."
        )
    return View(
        type="modal",
        callback_id=NOTE_CALLBACK,
        title="Weekly verification",
        submit="Record decision",
        close="Cancel",
        private_metadata=context.dumps(),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=fit(text))),
            InputBlock(
                block_id=NOTE_BLOCK,
                label="Note",
                optional=True,
                hint="Kept with the decision in the ledger and the audit log.",
                element=PlainTextInputElement(
                    action_id=NOTE_ACTION,
                    multiline=True,
                    max_length=2000,
                    placeholder="What the decision rests on (optional)",
                ),
            ),
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text="A week's decision is recorded once: whoever submits first decides."
                    )
                ]
            ),
        ],
    )


def note_of(view: dict[str, Any]) -> str:
    """The note typed into the modal ('' when left empty)."""
    values = (view.get("state") or {}).get("values") or {}
    value = ((values.get(NOTE_BLOCK) or {}).get(NOTE_ACTION) or {}).get("value")
    return str(value or "").strip()


def decided_text(verdict: Verdict, tz: Any) -> str:
    """The thread reply once a decision is recorded (plain words, mrkdwn-safe)."""
    return f"Weekly verification for {week_label(verdict.week)}: {decision_line(verdict, tz)}"


def reminder_blocks(week: date, oncall: str | None) -> list[Block]:
    who = f"<!subteam^{oncall}> " if oncall else ""
    text = (
        f"{who}:hourglass_flowing_sand: *Reminder*: the verification decision for the week "
        f"of {week_label(week)} is still open. Did mismatch and oversells trend down?"
    )
    return [SectionBlock(text=MarkdownTextObject(text=text)), verdict_buttons(week)]


def reminder_text(week: date) -> str:
    return f"Reminder: the verification decision for the week of {week_label(week)} is still open"


def replace_verdict_block(
    blocks: Sequence[dict[str, Any]], verdict: Verdict, tz: Any
) -> list[dict[str, Any]]:
    """A posted summary's blocks with the buttons (and their question) replaced by the
    recorded decision."""
    wanted = verdict_block_id(verdict.week)
    decided = decided_block(verdict, tz).to_dict()
    out: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("block_id") == wanted:
            out.append(decided)
        elif (block.get("text") or {}).get("text") == QUESTION:
            continue
        else:
            out.append(dict(block))
    return out


def posted_at(payload_response: dict[str, Any] | None) -> tuple[str, str] | None:
    """(channel, ts) of a delivered outbox message, from Slack's answer."""
    if not payload_response:
        return None
    channel, ts = payload_response.get("channel"), payload_response.get("ts")
    if isinstance(channel, str) and isinstance(ts, str):
        return channel, ts
    return None


__all__ = [
    "ACTIONS",
    "ESCALATE_ACTION",
    "NOTE_CALLBACK",
    "PASS_ACTION",
    "NoteContext",
    "decided_text",
    "note_modal",
    "note_of",
    "reminder_blocks",
    "replace_verdict_block",
    "review_blocks",
    "verdict_buttons",
]
