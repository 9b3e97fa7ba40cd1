"""``driftwatch demo``: the sandbox world and the real bot, on 127.0.0.1 only.

The fakes (sandbox/) speak the real wire formats; everything on Driftwatch's side is
the production process (:class:`bot.service.Service`, as ``driftwatch serve`` runs it):
the connectors read Shopify over Admin GraphQL, the WMS over REST and the ERP's CSV
drops, the drift engine diffs, the incident pipeline records incidents and queues the
alerts, the outbox posts them through slack_sdk's real client to the fake Slack, and
the fake Slack's channel page sends signed button clicks and slash commands back.

Then the scripted scenarios (``sandbox.scenarios``) play, in accelerated time: the
world and the bot share one :class:`DemoClock`, which the scripts move (hours in
milliseconds) while they play; at each checkpoint of a script the bot polls (a full
diff), checks sync and webhook health and delivers its alerts. Afterwards the clock
runs with the wall clock for whoever clicks around in the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from bot.charts.sku import render_png
from bot.charts.worker import off_loop
from bot.cli.terminal import render_blocks
from bot.service import WEBHOOKS_PATH, Service
from bot.slack.weekly_review import post_weekly_review
from connectors.clock import ManualClock
from connectors.shopify.webhooks import TOPICS
from ledger import SYSTEM_ACTOR, Incident, Ledger, Resync
from monitors.config import Config, config_from_dict
from monitors.kpis import this_monday
from sandbox.scenarios import ERP_SETTLE_SECONDS, SCENARIOS, Scenario, by_name
from sandbox.world import ALERTS_CHANNEL as ALERTS
from sandbox.world import SandboxWorld, World

T = TypeVar("T")

#: When the demo's day starts (the accelerated clock's origin).
DEMO_START = datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
#: How much faster than the wall clock the bot's own waits pass while scenarios play.
PLAY_SPEED = 4.0
#: How often the bot may look at the outbox once the scenarios are played (clock seconds).
DRAIN_STEP_SECONDS = 2.0
DRAIN_STEPS = 60


#: Root-cause keys (monitors.hints.CAUSES) by the words their alert sentence opens with.
class DemoClock(ManualClock):
    """The demo's accelerated clock. While the scenarios play only their scripts move it
    (:meth:`advance`), and the bot's own waits (a webhook debounce, a Retry-After) take
    1/:data:`PLAY_SPEED` of their time on the wall clock without moving it, so a script
    always plays the same instants. :meth:`flow` then sets it running with the wall
    clock, for whoever clicks around in the browser."""

    def __init__(self, start: datetime = DEMO_START) -> None:
        super().__init__(start)
        self._since: float | None = None

    def flow(self) -> None:
        """From now on, time passes as on the wall clock (and sleeps really wait)."""
        self._since = time.monotonic()

    def now(self) -> datetime:
        if self._since is not None:
            wall = time.monotonic()
            self.advance(wall - self._since)
            self._since = wall
        return super().now()

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.slept.append(seconds)
        await asyncio.sleep(seconds if self._since is not None else seconds / PLAY_SPEED)


@dataclass
class DemoWorld:
    """The running sandbox and the configuration Driftwatch uses for it."""

    world: World
    config: Config
    environ: dict[str, str]


def demo_config(world: World, *, webhook_url: str | None = None) -> dict[str, Any]:
    """The embedded default configuration: what a deployer would write for this world
    (with its ERP, bundles and pack sizes when the world has them)."""
    shopify: dict[str, Any] = {
        "name": "shopify",
        "kind": "shopify",
        "role": "storefront",
        "shop_url": world.shopify_url,
        # the fake shop names itself in its webhooks as a real one would
        "shop_domain": world.shopify.webhooks.shop_domain,
        "token_env": "DEMO_SHOPIFY_ACCESS_TOKEN",
        "webhook_secret_env": "DEMO_SHOPIFY_WEBHOOK_SECRET",
        "writable": True,
    }
    if webhook_url is not None:
        shopify["webhook_url"] = webhook_url
    systems: list[dict[str, Any]] = [
        shopify,
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
    ]
    locations: dict[str, dict[str, str]] = {
        key: {"shopify": gid, "wms": warehouse} for key, (gid, warehouse) in world.locations.items()
    }
    config: dict[str, Any] = {
        "timezone": "UTC",
        # The WMS holds the truth; without an ERP, Shopify stands in for SKUs it lacks.
        "source_of_truth": ["wms", "shopify"],
        "systems": systems,
        "locations": locations,
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
    if world.erp is not None:
        # The ERP's nightly export: good stock on hand per warehouse, in its own unit.
        systems.append(
            {
                "name": "erp",
                "kind": "csv",
                "role": "erp",
                "directory": str(world.erp.directory),
                "pattern": "inventory_*.csv",
                "columns": {
                    "sku": "ITEM_NO",
                    "location": "WAREHOUSE",
                    "quantities": {"on_hand": "QTY_ON_HAND"},
                    "observed_at": "EXPORTED_AT",
                },
                "compare_states": ["on_hand"],
                "settle_seconds": 60,
            }
        )
        for key, (_gid, warehouse) in world.locations.items():
            locations[key]["erp"] = warehouse
        # The ERP is the fallback truth; Shopify never is, so a bundle only Shopify sells
        # is judged by its components' truth.
        config["source_of_truth"] = ["wms", "erp"]
        config["bundles"] = [
            {"sku": bundle, "components": parts} for bundle, parts in world.bundles.items()
        ]
        # A bundle's count is derived: when it drifts, its modelling needs a person, so
        # the policy never writes it on its own.
        config["skus"]["tags"]["bundle"] = sorted(world.bundles)
        # Small, safe drifts (lowering a count by at most 3 units, never a hero SKU or
        # a bundle) are resynced by the policy on its own; the rest go to a person.
        config["policy"] = {
            "auto_resync": True,
            "auto_resync_max_units": 3,
            "never_auto_tags": ["hero", "bundle"],
        }
        config["pack_sizes"] = {
            system: {"skus": packs} for system, packs in world.pack_sizes.items()
        }
        # The scenarios squeeze a day into a minute: the bot's own timers run on the
        # wall clock, so the demo's director polls and checks health at each checkpoint
        # itself, and reminders wait a day of the accelerated clock.
        config["schedules"] = {
            "debounce_seconds": 2,
            "full_diff_seconds": 3600,
            "health_seconds": 3600,
            "reminder_seconds": 86400,
        }
    return config


@contextlib.asynccontextmanager
async def demo_world(
    *,
    scenarios: bool = False,
    clock: DemoClock | None = None,
    webhook_url: str | None = None,
) -> AsyncIterator[DemoWorld]:
    """The sandbox world and its configuration. ``scenarios``: with the ERP and the
    scenarios' catalog (``driftwatch demo``); otherwise the small world with one drift."""
    async with SandboxWorld(clock, scenarios=scenarios) as world:
        environ = {
            "DEMO_SHOPIFY_ACCESS_TOKEN": world.shopify_token,
            "DEMO_SHOPIFY_WEBHOOK_SECRET": world.shopify.webhooks.secret,
            "DEMO_WMS_TOKEN": world.wms_token,
            "DEMO_SLACK_BOT_TOKEN": world.slack_token,
            "DEMO_SLACK_SIGNING_SECRET": world.slack.signing_secret,
        }
        config = config_from_dict(demo_config(world, webhook_url=webhook_url))
        yield DemoWorld(world, config, environ)


def cause_of(incident: Incident) -> str | None:
    """The root-cause key of an incident's hint (``monitors.hints.CAUSES``; None: no hint)."""
    cause = (incident.details or {}).get("root_cause")
    return cause if isinstance(cause, str) else None


class DemoStage:
    """The stage the scenarios play on in the demo: at each checkpoint the bot polls
    (a full diff), checks sync and webhook health, and delivers what Slack must hear."""

    def __init__(self, demo: DemoWorld, service: Service, clock: DemoClock) -> None:
        self.demo = demo
        self.service = service
        self._clock = clock
        self.webhook_health = service.webhook_health_job
        self.checkpoints: list[str] = []

    @property
    def world(self) -> World:
        return self.demo.world

    @property
    def clock(self) -> DemoClock:
        return self._clock

    async def settle(self) -> None:
        await self.world.shopify.webhooks.idle()
        if self.service.webhooks is not None:
            await self.service.webhooks.idle()
        await self.service.idle()

    async def checkpoint(self, label: str) -> None:
        await self.settle()
        self.checkpoints.append(label)
        await self.service.diff_job.run()
        await self.service.health_job.run()
        if self.webhook_health is not None:
            await self.webhook_health.run()
        await self.service.outbox.deliver_due()


async def play(
    stage: DemoStage, scenarios: Sequence[Scenario], say: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Play ``scenarios`` in order, saying what each does and what the bot found;
    return each one's outcome (:func:`scenario_outcome`)."""
    ledger = stage.service.ledger
    outcomes: list[dict[str, Any]] = []
    for scenario in scenarios:
        before = {i.id for i in await ledger.list_incidents()}
        say(f"\n▶ {scenario.name}: {scenario.title}")
        say(f"  {scenario.story}")
        started = time.monotonic()
        await scenario.play(stage)
        say(f"  played in {time.monotonic() - started:.1f} s")
        incidents = await ledger.list_incidents()
        outcomes.append(scenario_outcome(scenario, incidents, await ledger.list_resyncs()))
        for incident in incidents:
            if incident.id not in before:
                where = f" {incident.sku} at {incident.location}" if incident.sku else ""
                cause = cause_of(incident)
                because = f": {cause}" if cause else ""
                say(f"  → {incident.kind}{where} ({incident.system}){because}")
        for check in outcomes[-1]["expectations"]:
            if check["auto_resynced"]:
                say(f"  → auto-resynced {check['sku']} at {check['location']} by the policy")
        verdict = "as expected" if outcomes[-1]["match"] else "NOT as expected"
        say(f"  expected {outcomes[-1]['expected_root_cause']}: {verdict}")
    await drain(stage)
    return outcomes


async def drain(stage: DemoStage) -> None:
    """Deliver what is still queued for Slack. Slack paces posts per channel in real
    time, so a 429's Retry-After is waited on the wall clock as well."""
    for _ in range(DRAIN_STEPS):
        await stage.service.idle()
        await stage.service.outbox.deliver_due()
        stats = await stage.service.ledger.outbox_stats()
        if stats.pending == 0:
            return
        await asyncio.sleep(DRAIN_STEP_SECONDS / 4)
        stage.clock.advance(DRAIN_STEP_SECONDS)


async def post_week_so_far(stage: DemoStage) -> None:
    """The weekly summary of the demo's week so far (a deployment posts last week's on
    Mondays), with its review and its decision buttons."""
    service = stage.service
    now = stage.clock.now()
    week = this_monday(now, service.config.tz)
    await post_weekly_review(service.ledger, service.config, service.rules, now, week_start=week)
    await drain(stage)


def _quantities(world: World) -> dict[str, dict[str, dict[str, int]]]:
    quantities: dict[str, dict[str, dict[str, int]]] = {"shopify": {}, "wms": {}}
    for sku, keys in sorted(world.stocked.items()):
        for key in keys:
            shop = world.shopify.quantities(sku, world.gid(key))
            quantities["shopify"][f"{sku}@{key}"] = {
                "available": shop["available"],
                "committed": shop["committed"],
            }
    for level in world.wms.levels():
        key = next(k for k, (_, code) in world.locations.items() if code == level.warehouse)
        quantities["wms"][f"{level.sku}@{key}"] = {
            "pickable": level.pickable,
            "allocated": level.allocated,
        }
    if world.erp is not None:
        quantities["erp"] = {}
        for row in world.erp.levels():
            key = next(k for k, (_, code) in world.locations.items() if code == row.warehouse)
            quantities["erp"][f"{row.sku}@{key}"] = {"qty": row.qty}
    return quantities


def scenario_outcome(
    scenario: Scenario, incidents: Sequence[Incident], resyncs: Sequence[Resync] = ()
) -> dict[str, Any]:
    """Expected against observed for one scenario, from the incidents as they stand
    right after it played (a later diff may re-hint a drift that has aged), and the
    resyncs the auto-resync policy applied by then."""
    checks: list[dict[str, Any]] = []
    for want in scenario.expected:
        found = [
            i
            for i in incidents
            if (i.kind, i.system, i.sku, i.location)
            == (want.kind, want.system, want.sku, want.location)
        ]
        observed = [cause_of(i) for i in found]
        auto = any(
            (r.system, r.sku, r.location, r.requested_by, r.status)
            == (want.system, want.sku, want.location, SYSTEM_ACTOR, "applied")
            for r in resyncs
        )
        checks.append(
            {
                "kind": want.kind,
                "system": want.system,
                "sku": want.sku,
                "location": want.location,
                "expected_root_cause": want.cause,
                "incident_found": bool(found),
                "observed_root_cause": observed[0] if observed else None,
                "observed_hint": found[0].root_cause_hint if found else None,
                "expected_auto_resync": want.auto_resync,
                "auto_resynced": auto,
                "match": bool(found)
                and (want.cause is None or want.cause in observed)
                and auto == want.auto_resync,
            }
        )
    primary, want = checks[0], scenario.expected[0]
    expected: str = want.cause or want.kind
    observed_cause: str | None = primary["observed_root_cause"]
    if want.cause is None:  # a webhook scenario: the incident's kind is the finding
        observed_cause = want.kind if primary["incident_found"] else None
    return {
        "name": scenario.name,
        "title": scenario.title,
        "seed": scenario.seed,
        "expected_root_cause": expected,
        "observed_root_cause": observed_cause,
        "match": primary["match"],
        "expectations": checks,
    }


def demo_report(
    world: World,
    incidents: list[Incident],
    resyncs: list[Resync],
    outcomes: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """What happened, for CI smoke tests of a configuration (``--report``): each played
    scenario's outcome (:func:`scenario_outcome`), the incidents as they stand at the
    end with their likely causes, the messages posted, the resyncs applied and every
    system's final quantities."""
    return {
        "scenarios": list(outcomes),
        "incidents": [
            {
                "id": i.id,
                "kind": i.kind,
                "status": i.status,
                "sku": i.sku,
                "location": i.location,
                "system": i.system,
                "root_cause": cause_of(i),
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
                "by": "auto-resync policy" if r.requested_by == SYSTEM_ACTOR else r.requested_by,
            }
            for r in resyncs
            if r.status == "applied"
        ],
        "final_quantities": _quantities(world),
    }


async def _warm_up_and_play(
    stage: DemoStage, scenarios: Sequence[Scenario], say: Callable[[str], None]
) -> list[dict[str, Any]]:
    # The first chart loads matplotlib's fonts: do it before the scenarios play, so no
    # webhook waits behind it.
    now = stage.clock.now()
    await off_loop(render_png, "warm-up", {}, now - timedelta(hours=1), now)
    await stage.service.diff_done.wait()
    await stage.service.idle()
    say(f"\nPlaying {len(scenarios)} scenario(s) in accelerated time")
    return await play(stage, scenarios, say)


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event | None) -> T | None:
    """``work``'s result, or None if ``stop`` is set first (``work`` is then cancelled):
    Ctrl-C stops the demo at once, not after the scenarios have played."""
    if stop is None:
        return await work
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


@contextlib.asynccontextmanager
async def played_demo(
    names: Sequence[str] | None = None,
) -> AsyncIterator[tuple[Config, Ledger, datetime]]:
    """The demo world with its scenarios (all, or ``names``) played headlessly, its
    week's summary posted: its configuration, ledger and the time, for a report of it
    (``driftwatch packet --demo``). Everything stops when the block ends."""
    chosen = SCENARIOS if names is None else tuple(by_name(n) for n in names)
    clock = DemoClock()
    with tempfile.TemporaryDirectory(prefix="driftwatch-demo-") as tmp:
        async with (
            demo_world(scenarios=True, clock=clock) as demo,
            Ledger.from_url(f"sqlite:///{Path(tmp) / 'demo.db'}") as ledger,
        ):
            clock.advance(ERP_SETTLE_SECONDS)
            await ledger.upgrade()
            service = Service(demo.config, demo.environ, ledger, clock=clock)
            url = await service.start(host="127.0.0.1", port=0)
            demo.world.slack.interactivity_url = f"{url}/slack/events"
            for topic in TOPICS:
                demo.world.shopify.webhooks.subscribe(topic, f"{url}{WEBHOOKS_PATH}")
            try:
                await service.diff_done.wait()
                await service.idle()
                stage = DemoStage(demo, service, clock)
                await play(stage, chosen, lambda _: None)
                await post_week_so_far(stage)
                yield demo.config, ledger, clock.now()
            finally:
                await service.stop()


def chosen_scenarios(name: str | None) -> tuple[Scenario, ...]:
    """All scenarios, or the one called ``name`` (``KeyError`` listing the valid names)."""
    return SCENARIOS if name is None else (by_name(name),)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def run_demo(
    db_path: Path | None = None,
    *,
    headless: bool = False,
    report: Path | None = None,
    scenario: str | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[DemoWorld, str], None] | None = None,
    out: Callable[[str], None] | None = None,
) -> int:
    """Run the sandbox world and the real bot and play the scenarios (all, or the one
    named ``scenario``). Headless: play, report, exit. Otherwise serve the channel page
    until ``stop`` is set (Ctrl-C in the CLI)."""
    say = out or print
    scenarios = chosen_scenarios(scenario)
    clock = DemoClock()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="driftwatch-demo-") as tmp:
        path = db_path or Path(tmp) / "driftwatch.db"
        async with (
            demo_world(scenarios=True, clock=clock, webhook_url=f"{url}{WEBHOOKS_PATH}") as demo,
            Ledger.from_url(f"sqlite:///{path}") as ledger,
        ):
            world = demo.world
            clock.advance(ERP_SETTLE_SECONDS)  # the ERP's first drop has settled
            await ledger.upgrade()
            service = Service(demo.config, demo.environ, ledger, clock=clock)
            url = await service.start(host="127.0.0.1", port=port)
            world.slack.interactivity_url = f"{url}/slack/events"
            for topic in TOPICS:
                world.shopify.webhooks.subscribe(topic, f"{url}{WEBHOOKS_PATH}")
            try:
                if not headless:
                    say(f"Open the channel in your browser:  {world.slack.page_url}")
                say("Driftwatch demo — everything below runs on 127.0.0.1")
                graphql = f"{world.shopify_url}/admin/api/2026-07/graphql.json"
                say(f"  fake Shopify Admin GraphQL  {graphql}")
                say(f"  fake WMS REST API           {world.wms_url}/api/v1/inventory")
                if world.erp is not None:
                    say(f"  fake ERP CSV drops          {world.erp.directory}")
                say(f"  fake Slack Web API          {world.slack_api_url}")
                say(f"  Driftwatch (Slack requests) {url}/slack/events")
                say(f"  ledger (SQLite)             {path}")
                # The first chart loads matplotlib's fonts: do it before the scenarios
                # play, so no webhook waits behind it.
                stage = DemoStage(demo, service, clock)
                played = await _unless_stopped(_warm_up_and_play(stage, scenarios, say), stop)
                if played is None:  # Ctrl-C while the scenarios played
                    say("\nStopped.")
                    return 0
                outcomes = played
                await post_week_so_far(stage)
                for message in world.slack.messages(ALERTS):
                    say(f"\n#ops-inventory · Driftwatch · ts {message.ts}")
                    say(render_blocks(message.blocks or []))
                incidents = await ledger.list_incidents()
                say(f"\n{len(incidents)} incidents; {len(world.slack.messages(ALERTS))} alerts")
                if headless:
                    if report is not None:
                        data = demo_report(world, incidents, await ledger.list_resyncs(), outcomes)
                        await asyncio.to_thread(
                            report.write_text, json.dumps(data, indent=2), "utf-8"
                        )
                        say(f"Report written to {report}")
                    return 0
                clock.flow()
                say(f"\nOpen the channel in your browser:  {world.slack.page_url}")
                say("  · click Resync on an alert, confirm, and watch the message update")
                say("  · type /drift CAP-NAVY in the message box")
                say("  · the weekly summary's buttons record the week's verification decision")
                home = f"{world.slack.base_url}/home"
                say(f"  · open the app's Home tab for the KPI dashboard:  {home}")
                say("Ctrl-C stops the demo.")
                if ready is not None:
                    ready(demo, url)
                await (stop or asyncio.Event()).wait()
                return 0
            finally:
                await service.stop()
