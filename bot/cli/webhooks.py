"""``driftwatch webhooks``: are Shopify's webhook subscriptions pointing at us?"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from connectors.clock import SystemClock
from connectors.health import Health
from connectors.shopify.subscriptions import check_subscriptions, create_missing
from connectors.shopify.transport import GraphQLTransport
from connectors.shopify.webhooks import TOPICS
from monitors.config import ShopifySystem, load_config, resolve_secret


async def run_webhooks_command(
    config_path: Path, *, create: bool, environ: Mapping[str, str] | None = None
) -> int:
    """Report each Shopify system's subscriptions; with ``create``, add the missing ones.
    Returns 0 when every expected topic is subscribed to ``webhook_url``, else 1."""
    env = dict(os.environ) if environ is None else environ
    config = load_config(config_path)
    healthy = True
    async with httpx.AsyncClient(timeout=30.0) as client:
        for index, system in enumerate(config.systems):
            if not isinstance(system, ShopifySystem):
                continue
            if system.webhook_url is None:
                print(
                    f"systems[{index}].webhook_url: not set — add the public URL of "
                    "`driftwatch serve` followed by /webhooks/shopify",
                    file=sys.stderr,
                )
                healthy = False
                continue
            token = resolve_secret(system.token_env, env, path=f"systems[{index}].token_env")
            transport = GraphQLTransport(
                client,
                system=system.name,
                shop_url=str(system.shop_url),
                api_version=system.api_version,
                token=token.get_secret_value(),
                clock=SystemClock(),
                health=Health(system=system.name),
            )
            report = await check_subscriptions(transport, TOPICS, str(system.webhook_url))
            for topic in report.expected:
                state = "missing" if topic in report.missing else "ok"
                print(f"{system.name}: {topic}: {state}")
            for sub in report.wrong_address:
                print(f"{system.name}: {sub.topic}: also delivered to {sub.uri} (left alone)")
            if report.missing and create:
                for created in await create_missing(transport, report):
                    if created.errors:
                        why = "; ".join(created.errors)
                        print(f"{system.name}: {created.topic}: not created: {why}")
                        healthy = False
                    else:
                        print(f"{system.name}: {created.topic}: subscribed")
            elif report.missing:
                print(f"{system.name}: run `driftwatch webhooks --create` to subscribe")
                healthy = False
    return 0 if healthy else 1
