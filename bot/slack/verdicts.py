"""The week's verification decision, from the click to the record: the note modal, the
record (once: ``ledger.record_verdict``, audited with it), the summary updated to show
it, a reply in its thread, and the one reminder when nobody decided.

Who decides: the writers (``[slack.writers]``), like every other change Driftwatch
records on someone's word. Whoever submits first decides; everyone after is told whose
decision stands.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.deps import BotDeps, Who, tell
from bot.slack.outbox import OutboxWorker
from bot.slack.render.alerts import blocks_json
from bot.slack.render.kpi_format import DECISIONS, decision_line, week_label
from bot.slack.render.review import (
    NoteContext,
    decided_text,
    note_modal,
    posted_at,
    reminder_blocks,
    reminder_text,
    replace_verdict_block,
)
from bot.slack.render.summary import weekly_summary_key
from connectors.clock import Clock
from ledger import Ledger, OutboxEntry, Verdict
from monitors.config import Config
from monitors.kpis import baseline_week
from monitors.reports import previous_week_start

log = logging.getLogger("driftwatch.verdicts")


def verdict_key(week: date) -> str:
    """The outbox dedupe key of the thread reply announcing a week's decision."""
    return f"verdict:{week.isoformat()}"


def reminder_key(week: date) -> str:
    return f"verdict-reminder:{week.isoformat()}"


def already_text(verdict: Verdict, tz: Any) -> str:
    return (
        f"The week of {week_label(verdict.week)} is already decided: "
        f"{decision_line(verdict, tz)}. A week's decision is recorded once."
    )


async def decision_figures(ledger: Ledger, config: Config, week: date) -> dict[str, Any]:
    """What the decision is taken on: the week's captured KPIs and the baseline's."""
    captured = await ledger.kpi_week(week)
    base = await baseline_week(ledger, config.tz)
    baseline = await ledger.kpi_week(base) if base is not None else None
    return {
        "this_week": captured.figures if captured else None,
        "baseline_week": base.isoformat() if base else None,
        "baseline": baseline.figures if baseline else None,
    }


async def open_note(
    deps: BotDeps, who: Who, decision: str, value: str, trigger_id: str, message_ts: str | None
) -> None:
    """A decision button was clicked: ask for the note (or say the week is decided)."""
    try:
        week = date.fromisoformat(value)
    except ValueError:
        await tell(deps, who, "This button does not name a week.")
        return
    existing = await deps.ledger.get_verdict(week)
    if existing is not None:
        await tell(deps, who, already_text(existing, deps.config.tz))
        return
    context = NoteContext(week, decision, who.channel, message_ts)
    figures = await decision_figures(deps.ledger, deps.config, week)
    view = note_modal(context, figures)
    await deps.client.views_open(trigger_id=trigger_id, view=view.to_dict())


async def record_decision(deps: BotDeps, who: Who, context: NoteContext, note: str) -> None:
    """Record the decision once; show it in the summary and its thread; tell the person."""
    figures = await decision_figures(deps.ledger, deps.config, context.week)
    verdict, created = await deps.ledger.record_verdict(
        context.week,
        context.decision,
        who.user,
        deps.clock.now(),
        note=note,
        figures=figures,
    )
    tz = deps.config.tz
    if not created:
        await tell(deps, who, already_text(verdict, tz))
        return
    await show_decision(deps.ledger, deps.config, deps.client, deps.outbox, deps.clock, verdict)
    label = DECISIONS[verdict.decision]
    await tell(deps, who, f"Recorded *{label}* for the week of {week_label(verdict.week)}.")


async def show_decision(
    ledger: Ledger,
    config: Config,
    client: AsyncWebClient,
    outbox: OutboxWorker,
    clock: Clock,
    verdict: Verdict,
) -> None:
    """The summary shows the decision instead of its buttons, and its thread says who
    decided (through the outbox: it waits out a Slack outage)."""
    channel = config.slack.reports_channel
    summary = await ledger.outbox_entry_by_key(weekly_summary_key(channel, verdict.week))
    posted = posted_at(summary.response) if summary is not None else None
    payload: dict[str, Any] = {"text": decided_text(verdict, config.tz)}
    if posted is not None:
        payload["thread_ts"] = posted[1]
    await ledger.enqueue(
        "message", channel, payload, clock.now(), dedupe_key=verdict_key(verdict.week)
    )
    if summary is not None and posted is not None:
        blocks = replace_verdict_block(summary.payload.get("blocks") or [], verdict, config.tz)
        try:
            await client.chat_update(
                channel=posted[0],
                ts=posted[1],
                text=str(summary.payload.get("text", "")),
                blocks=blocks,
            )
        except Exception:  # the thread reply and the next summary still say it
            log.exception("could not update the summary of %s", verdict.week_start)
    await outbox.deliver_due()


class VerdictReminder:
    """Once a week's summary has waited ``kpis.verdict_reminder_hours`` without a
    decision, the reports channel is reminded — once (the outbox's dedupe key)."""

    def __init__(self, config: Config, ledger: Ledger, clock: Clock) -> None:
        self._config = config
        self._ledger = ledger
        self._clock = clock

    async def run(self) -> OutboxEntry | None:
        """The reminder queued now, or None (nothing due, decided, or reminded before)."""
        now = self._clock.now()
        week = previous_week_start(now, self._config.tz)
        channel = self._config.slack.reports_channel
        summary = await self._ledger.outbox_entry_by_key(weekly_summary_key(channel, week))
        if summary is None or summary.status != "delivered" or summary.delivered_at is None:
            return None
        wait = timedelta(hours=self._config.kpis.verdict_reminder_hours)
        if now - summary.delivered_at < wait:
            return None
        if await self._ledger.get_verdict(week) is not None:
            return None
        blocks = reminder_blocks(week, self._config.slack.oncall_usergroup)
        return await self._ledger.enqueue(
            "message",
            channel,
            {"text": reminder_text(week), "blocks": blocks_json(blocks)},
            now,
            dedupe_key=reminder_key(week),
        )
