"""What the drift diff job is assembled with beyond its connectors and rules: the
evidence source behind root-cause hints and the work that follows each diff (the
auto-resync policy). The bot calls these once when it builds its service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import partial

from connectors.base import InventorySystem
from connectors.clock import Clock
from connectors.shopify import ShopifyConnector
from connectors.shopify.subscriptions import check_subscriptions
from connectors.shopify.webhooks import TOPICS, UNKNOWN_SHOP
from ledger import Ledger
from monitors.config import Config, ShopifySystem
from monitors.jobs import AfterDiff, EvidenceSource
from monitors.pipeline import Pipeline, Timers, build_pipeline
from monitors.resync import ResyncService
from monitors.webhook_health import (
    SubscriptionCheck,
    WebhookHealthJob,
    WebhookWatch,
    level_resolver,
)


def incident_pipeline(config: Config) -> Pipeline:
    """The incident pipeline with the configured timers: reminders every
    ``[schedules] reminder_seconds`` (not the built-in hour), and each store with its
    own ``alerts_channel`` alerted there."""
    pipeline = build_pipeline(
        timers=Timers(repeat_interval=timedelta(seconds=config.schedules.reminder_seconds))
    )
    pipeline.routes = {s.name: s.alerts_channel for s in config.stores() if s.alerts_channel}
    return pipeline


def evidence_source(config: Config, ledger: Ledger, clock: Clock) -> EvidenceSource | None:
    """The ledger- and config-backed evidence for root-cause hints (None: the diff's own)."""
    from monitors.evidence import LedgerEvidence

    return LedgerEvidence(config, ledger)


def after_diff_hooks(
    config: Config, ledger: Ledger, resync: ResyncService, clock: Clock
) -> list[AfterDiff]:
    """Hooks run after every diff, in order: the auto-resync policy (it also escalates
    high-risk drifts, and in shadow mode only shows what it would write)."""
    from monitors.policy import AutoResyncPolicy

    return [AutoResyncPolicy(config, ledger, resync, clock)]


def webhook_health_job(
    config: Config, ledger: Ledger, clock: Clock, systems: Sequence[InventorySystem]
) -> WebhookHealthJob | None:
    """Webhook health for each Shopify system with webhooks configured; None if none is.

    Subscriptions are checked for systems with a ``webhook_url``, through the connector's
    own paced transport; missed webhooks are looked for where this process receives them
    (``webhook_secret_env``).
    """
    connectors = {s.name: s for s in systems}
    watches: list[WebhookWatch] = []
    for system in config.systems:
        if not isinstance(system, ShopifySystem):
            continue
        if system.webhook_url is None and system.webhook_secret_env is None:
            continue
        connector = connectors.get(system.name)
        check: SubscriptionCheck | None = None
        # the connector's public GraphQL transport (ShopifyConnector.transport); without
        # one, subscriptions are not checked
        transport = getattr(connector, "transport", None)
        if system.webhook_url is not None and transport is not None:
            check = partial(check_subscriptions, transport, TOPICS, str(system.webhook_url))
        resolve = (
            level_resolver(connector, config)
            if system.webhook_secret_env is not None and isinstance(connector, ShopifyConnector)
            else None
        )
        watches.append(WebhookWatch(system.name, check=check, resolve=resolve))
    receiving = [s for s in config.stores() if s.webhook_secret_env is not None]
    if len(receiving) > 1:
        # one address serves several stores: deliveries naming none of them are counted
        # under UNKNOWN_SHOP (connectors.shopify.webhooks.WebhookRouter)
        watches.append(WebhookWatch(UNKNOWN_SHOP))
    if not watches:
        return None
    return WebhookHealthJob(
        ledger,
        clock,
        watches,
        channel=config.slack.alerts_channel,
        pipeline=incident_pipeline(config),
    )
