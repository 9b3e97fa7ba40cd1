"""``driftwatch demo``: the sandbox world and the real bot, on 127.0.0.1 only.

The fakes (sandbox/) speak the real wire formats; everything on Driftwatch's side is
the production code path: the connectors read Shopify over Admin GraphQL and the WMS
over REST, the drift engine diffs, the ledger records the incident and queues the alert,
and the outbox posts it through slack_sdk's real client to the fake Slack.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from slack_sdk.web.async_client import AsyncWebClient

from bot.diffcmd import render_table
from bot.outbox import OutboxWorker
from bot.terminal import render_blocks
from connectors.clock import SystemClock
from ledger import Ledger
from monitors.config import Config, config_from_dict
from monitors.jobs import DriftDiffJob
from monitors.wiring import build_systems, rules_from_config
from sandbox.world import SandboxWorld, World


@dataclass
class DemoWorld:
    """The running sandbox and the configuration Driftwatch uses for it."""

    world: World
    config: Config
    environ: dict[str, str]


def demo_config(world: World) -> dict[str, Any]:
    """The embedded default configuration: what a deployer would write for this world."""
    return {
        "timezone": "UTC",
        "source_of_truth": ["wms", "shopify"],
        "systems": [
            {
                "name": "shopify",
                "kind": "shopify",
                "role": "storefront",
                "shop_url": world.shopify_url,
                "token_env": "DEMO_SHOPIFY_ACCESS_TOKEN",
                "writable": True,
            },
            {
                "name": "wms",
                "kind": "rest",
                "role": "warehouse",
                "base_url": world.wms_url,
                "auth": {"type": "bearer", "token_env": "DEMO_WMS_TOKEN"},
                "list": {
                    "path": "/api/v1/inventory",
                    "pagination": "page",
                    "page_param": "page",
                    "size_param": "per_page",
                    "items_path": "items",
                    "page_size": 500,
                },
                "fields": {
                    "sku": "sku",
                    "location": "warehouse",
                    "updated_at": "updated_at",
                    "quantities": {
                        "on_hand": "on_hand",
                        "available": "pickable",
                        "committed": "allocated",
                        "damaged": "damaged",
                    },
                },
            },
        ],
        "locations": {
            key: {"shopify": gid, "wms": warehouse}
            for key, (gid, warehouse) in world.locations.items()
        },
        "skus": {"tags": {"hero": ["TEE-BLK-M"]}},
        "thresholds": {"tags": {"hero": {"absolute": 0, "percent": 0.0}}},
        "slack": {
            "alerts_channel": world.alerts_channel,
            "api_url": world.slack_api_url,
            "bot_token_env": "DEMO_SLACK_BOT_TOKEN",
            "writers": {"users": ["U0OPS001", "U0ONCALL1"]},
        },
    }


@contextlib.asynccontextmanager
async def demo_world() -> AsyncIterator[DemoWorld]:
    async with SandboxWorld() as world:
        environ = {
            "DEMO_SHOPIFY_ACCESS_TOKEN": world.shopify_token,
            "DEMO_WMS_TOKEN": world.wms_token,
            "DEMO_SLACK_BOT_TOKEN": world.slack_token,
        }
        yield DemoWorld(world, config_from_dict(demo_config(world)), environ)


async def run_demo(db_path: Path | None = None, *, out: Any = None) -> int:
    """Play the demo once and print what happens. Returns the exit status."""
    say = print if out is None else out
    with tempfile.TemporaryDirectory(prefix="driftwatch-demo-") as tmp:
        path = db_path or Path(tmp) / "driftwatch.db"
        clock = SystemClock()
        async with demo_world() as demo, Ledger.from_url(f"sqlite:///{path}") as ledger:
            world, config = demo.world, demo.config
            await ledger.upgrade()
            say("Driftwatch demo — everything below runs on 127.0.0.1")
            say(f"  fake Shopify Admin GraphQL  {world.shopify_url}/admin/api/2026-07/graphql.json")
            say(f"  fake WMS REST API           {world.wms_url}/api/v1/inventory")
            say(f"  fake Slack Web API          {world.slack_api_url}")
            say(f"  ledger (SQLite)             {path}")
            say("")
            async with httpx.AsyncClient(timeout=30.0) as client:
                systems = build_systems(config, client=client, clock=clock, environ=demo.environ)
                job = DriftDiffJob(
                    systems,
                    rules_from_config(config),
                    ledger,
                    clock,
                    channel=config.slack.alerts_channel,
                )
                result = await job.run()
            run = result.run
            recorded = run.recorded
            say(
                f"Read {len(run.levels)} levels from {len(systems)} systems"
                + (f"; {recorded.changed} level values recorded." if recorded else ".")
            )
            say(render_table(run.drifts))
            say(f"\nOpened {len(result.incidents.opened)} incident(s); delivering alerts to Slack…")
            slack = AsyncWebClient(token=world.slack_token, base_url=world.slack_api_url)
            report = await OutboxWorker(ledger, slack, clock).drain()
            for message in world.slack.messages(world.alerts_channel):
                say(f"\n#ops-inventory · Driftwatch · ts {message.ts}")
                say(render_blocks(message.blocks or []))
            if report.retried or report.dead:
                say(f"\nNot delivered: {report.retried + report.dead}")
                return 1
            say(
                f"\n{len(report.delivered)} alert(s) delivered. "
                "Next: `driftwatch diff --demo`, or set up your own systems (README → Configure)."
            )
    return 0
