"""``driftwatch demo``: the sandbox world and the real bot, on 127.0.0.1 only.

The fakes (sandbox/) speak the real wire formats; everything on Driftwatch's side is
the production process (:class:`bot.service.Service`, as ``driftwatch serve`` runs it):
the connectors read Shopify over Admin GraphQL and the WMS over REST, the drift engine
diffs, the incident pipeline records the incident and queues the alert, the outbox
posts it through slack_sdk's real client to the fake Slack, and the fake Slack's
channel page sends signed button clicks and slash commands back to the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.diffcmd import render_table
from bot.service import Service
from bot.terminal import render_blocks
from ledger import Incident, Ledger, Resync
from monitors.config import Config, config_from_dict
from sandbox.world import ALERTS_CHANNEL as ALERTS
from sandbox.world import CATALOG, SandboxWorld, World


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
                "webhook_secret_env": "DEMO_SHOPIFY_WEBHOOK_SECRET",
                "writable": True,
            },
            {
                "name": "wms",
                "kind": "rest",
                "role": "warehouse",
                "base_url": world.wms_url,
                "auth": {"type": "bearer", "token_env": "DEMO_WMS_TOKEN"},
                # The WMS holds the truth; /adjust writes counts there first.
                "writable": True,
                "write_state": "available",
                "write": {
                    "method": "PUT",
                    "path": "/api/v1/inventory/{sku}/{location}",
                    "body_quantity_field": "pickable",
                },
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
        # The demo pages at the first diff; a deployment waits for two (persistence_diffs)
        # so that orders in flight do not page anyone.
        # A webhook's targeted diff waits 2 s for more changes to the same SKUs.
        "schedules": {"debounce_seconds": 2},
        "thresholds": {
            "persistence_diffs": 1,
            "tags": {"hero": {"absolute": 0, "percent": 0.0}},
        },
        "slack": {
            "alerts_channel": world.alerts_channel,
            "api_url": world.slack_api_url,
            "bot_token_env": "DEMO_SLACK_BOT_TOKEN",
            "signing_secret_env": "DEMO_SLACK_SIGNING_SECRET",
            "writers": {"users": ["U0OPS001", "U0ONCALL1"]},
        },
    }


@contextlib.asynccontextmanager
async def demo_world() -> AsyncIterator[DemoWorld]:
    async with SandboxWorld() as world:
        environ = {
            "DEMO_SHOPIFY_ACCESS_TOKEN": world.shopify_token,
            "DEMO_SHOPIFY_WEBHOOK_SECRET": world.shopify.webhooks.secret,
            "DEMO_WMS_TOKEN": world.wms_token,
            "DEMO_SLACK_BOT_TOKEN": world.slack_token,
            "DEMO_SLACK_SIGNING_SECRET": world.slack.signing_secret,
        }
        yield DemoWorld(world, config_from_dict(demo_config(world)), environ)


def demo_report(world: World, incidents: list[Incident], resyncs: list[Resync]) -> dict[str, Any]:
    """What happened, for CI smoke tests of a configuration (``--report``)."""
    quantities: dict[str, dict[str, dict[str, int]]] = {"shopify": {}, "wms": {}}
    for sku, _title, levels in CATALOG:
        for key in levels:
            gid, warehouse = world.locations[key]
            shop = world.shopify.quantities(sku, gid)
            wms = world.wms.level(sku, warehouse)
            quantities["shopify"][f"{sku}@{key}"] = {
                "available": shop["available"],
                "committed": shop["committed"],
            }
            quantities["wms"][f"{sku}@{key}"] = {
                "pickable": wms.pickable,
                "allocated": wms.allocated,
            }
    return {
        "incidents": [
            {
                "id": i.id,
                "kind": i.kind,
                "status": i.status,
                "sku": i.sku,
                "location": i.location,
                "system": i.system,
                "root_cause_hint": i.root_cause_hint,
            }
            for i in incidents
        ],
        "messages_posted": [
            {"ts": m.ts, "text": m.text, "thread_replies": len(world.slack.thread(ALERTS, m.ts))}
            for m in world.slack.messages(ALERTS)
        ],
        "resyncs_applied": [
            {
                "sku": r.sku,
                "location": r.location,
                "system": r.system,
                "before": r.before,
                "after": r.after,
            }
            for r in resyncs
            if r.status == "applied"
        ],
        "final_quantities": quantities,
    }


async def run_demo(
    db_path: Path | None = None,
    *,
    headless: bool = False,
    report: Path | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[DemoWorld, str], None] | None = None,
    out: Callable[[str], None] | None = None,
) -> int:
    """Run the sandbox world and the real bot. Headless: play, report, exit. Otherwise
    serve the channel page until ``stop`` is set (Ctrl-C in the CLI)."""
    say = out or print
    with tempfile.TemporaryDirectory(prefix="driftwatch-demo-") as tmp:
        path = db_path or Path(tmp) / "driftwatch.db"
        async with demo_world() as demo, Ledger.from_url(f"sqlite:///{path}") as ledger:
            world = demo.world
            await ledger.upgrade()
            service = Service(demo.config, demo.environ, ledger)
            url = await service.start(host="127.0.0.1", port=0)
            world.slack.interactivity_url = f"{url}/slack/events"
            world.shopify.webhooks.subscribe("inventory_levels/update", f"{url}/webhooks/shopify")
            try:
                say("Driftwatch demo — everything below runs on 127.0.0.1")
                graphql = f"{world.shopify_url}/admin/api/2026-07/graphql.json"
                say(f"  fake Shopify Admin GraphQL  {graphql}")
                say(f"  fake WMS REST API           {world.wms_url}/api/v1/inventory")
                say(f"  fake Slack Web API          {world.slack_api_url}")
                say(f"  Driftwatch (Slack requests) {url}/slack/events")
                say(f"  ledger (SQLite)             {path}")
                await service.diff_done.wait()
                await service.idle()
                last = service.diff_job.last
                if last is not None:
                    say(f"\nRead {len(last.run.levels)} levels; drifts found:")
                    say(render_table(last.run.drifts))
                for message in world.slack.messages(ALERTS):
                    say(f"\n#ops-inventory · Driftwatch · ts {message.ts}")
                    say(render_blocks(message.blocks or []))
                if headless:
                    if report is not None:
                        data = demo_report(
                            world, await ledger.list_incidents(), await ledger.list_resyncs()
                        )
                        await asyncio.to_thread(
                            report.write_text, json.dumps(data, indent=2), "utf-8"
                        )
                        say(f"\nReport written to {report}")
                    return 0
                say(f"\nOpen the channel in your browser:  {world.slack.page_url}")
                say("  · click Resync on the alert, confirm, and watch the message update")
                say("  · type /drift TEE-BLK-M in the message box")
                say("Ctrl-C stops the demo.")
                if ready is not None:
                    ready(demo, url)
                await (stop or asyncio.Event()).wait()
                return 0
            finally:
                await service.stop()
