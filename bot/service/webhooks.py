"""The Shopify webhook receivers of ``driftwatch serve``: one per store with a webhook
secret, all behind one address (``/webhooks/shopify``), routed by the shop each
delivery names (:class:`connectors.shopify.webhooks.WebhookRouter`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from connectors.clock import Clock
from connectors.shopify.webhooks import (
    DeliveryStore,
    Touched,
    WebhookReceiver,
    WebhookRouter,
    make_webhook_handler,
)
from monitors.config import Config

log = logging.getLogger("driftwatch.service")

#: Called with the store's name and what its webhook says changed.
OnStoreTouched = Callable[[str, Touched], Awaitable[None]]


def build_webhooks(
    config: Config,
    environ: Mapping[str, str],
    store: DeliveryStore,
    clock: Clock,
    on_touched: OnStoreTouched,
    *,
    read_timeout: float,
) -> WebhookRouter | None:
    """A receiver for every Shopify store whose ``webhook_secret_env`` is set, each with
    its own secret and shop domain, behind one router; None when no store has one."""
    receivers: list[WebhookReceiver] = []
    for shop in config.stores():
        if shop.webhook_secret_env is None:
            continue
        secret = environ.get(shop.webhook_secret_env)
        if not secret:
            log.warning(
                "%s is not set: Shopify webhooks of %s are off", shop.webhook_secret_env, shop.name
            )
            continue
        receivers.append(
            make_webhook_handler(
                system=shop.name,
                secrets=[secret],
                store=store,
                clock=clock,
                on_touched=partial(on_touched, shop.name),
                shop_domains=[shop.webhook_shop_domain],
                read_timeout=read_timeout,
            )
        )
    if not receivers:
        return None
    return WebhookRouter(receivers, store=store, clock=clock)
