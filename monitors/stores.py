"""What several Shopify stores in one deployment change in the reports: each store with
a reports channel of its own also gets its own daily adjustment report there."""

from __future__ import annotations

from monitors.config import Config
from monitors.reports import AdjustmentRules


def adjustment_rules(config: Config, systems: frozenset[str] | None = None) -> AdjustmentRules:
    """The rules adjustment reports are judged by: the whole ``source_of_truth`` order
    (an adjustment in the fallback truth of a SKU the first does not stock is at the
    truth), restricted to ``systems`` for a store's own report — judged by that store's
    own order when it has one (and every store of the report shares it)."""
    orders = {config.truth_order(s) for s in systems or ()}
    order = orders.pop() if len(orders) == 1 else tuple(config.source_of_truth)
    return AdjustmentRules(source_of_truth=order[0], truths=order, systems=systems)


def store_report_channels(config: Config) -> dict[str, frozenset[str]]:
    """Channel → the stores whose own reports go there: every store whose reports
    channel (``reports_channel``, else its ``alerts_channel``) is not
    ``slack.reports_channel``, which gets the report of every adjustment anyway."""
    channels: dict[str, set[str]] = {}
    for store in config.stores():
        channel = config.reports_channel_for(store.name)
        if channel != config.slack.reports_channel:
            channels.setdefault(channel, set()).add(store.name)
    return {channel: frozenset(names) for channel, names in channels.items()}
