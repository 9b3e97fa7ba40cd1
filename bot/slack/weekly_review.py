"""The weekly summary as the service posts it: the four KPIs (``bot.slack.render.summary``)
followed by the review — baseline, shrinkage, which handoff is degrading, last week's
decision, this week's cycle counts — and the buttons that record this week's decision.
Its charts (incidents per day, drift rate per hop) follow in the thread.

Each Shopify store with a reports channel of its own (``monitors.stores``) also gets its
own summary there: the same KPIs over that store's incidents, resyncs, adjustments and
levels, with its own chart. The review and its decision buttons are the deployment's
and stay in the reports channel."""

from __future__ import annotations

import logging
from datetime import date, datetime

from bot.slack.render.review import review_blocks
from bot.slack.render.summary import post_weekly_summary
from ledger import Ledger, OutboxEntry
from monitors.config import Config
from monitors.drift import DiffRules
from monitors.kpis import weekly_review
from monitors.reports import previous_week_start
from monitors.stores import store_report_channels

log = logging.getLogger("driftwatch.weekly")


async def post_weekly_review(
    ledger: Ledger,
    config: Config,
    rules: DiffRules,
    now: datetime,
    week_start: date | None = None,
) -> OutboxEntry | None:
    """Queue the summary (with its review) of ``week_start`` — by default the last
    complete week before ``now`` — for the reports channel, and each store's own for
    its channel; the reports channel's entry, None if it was queued before. The week's
    KPIs are captured in the ledger on the way (the first capture stands)."""
    tz = config.tz
    week = week_start or previous_week_start(now, tz)
    try:
        extra = review_blocks(await weekly_review(ledger, config, rules, week, now))
    except Exception:  # the four KPIs still go out; the review's failure is logged
        log.exception("the weekly review of %s failed; the summary goes out without it", week)
        extra = []
    entry = await post_weekly_summary(
        ledger, config.slack.reports_channel, now, tz, week_start=week, extra=extra
    )
    for channel, stores in store_report_channels(config).items():
        await post_weekly_summary(ledger, channel, now, tz, week_start=week, systems=stores)
    return entry
