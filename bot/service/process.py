"""The long-running Driftwatch process: the scheduled jobs and the web server.

``Service`` is assembled from a configuration and started and stopped as one unit, so
tests run the same process in-process that ``driftwatch serve`` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.charts.health import HealthChart, HealthHistory
from bot.charts.sku import AlertChart
from bot.charts.summary import DailyAdjustmentsChart, WeeklyChart
from bot.service.ackfirst import AckFirst
from bot.service.connections import (
    BODY_TIMEOUT_SECONDS,
    HEADER_TIMEOUT_SECONDS,
    ConnectionLimit,
)
from bot.service.kpi_jobs import KpiJobs
from bot.service.replicas import ALL, Coordinator, HeldState, Shared, Solo
from bot.service.targeted import TargetedDiffs
from bot.service.webhooks import build_webhooks
from bot.slack.app import EVENTS_PATH, build_slack_app, events_handler
from bot.slack.deps import BotDeps, Work
from bot.slack.outbox import LeaseKeepingClient, OutboxWorker
from bot.slack.pace import LedgerPacer
from bot.slack.render.summary import post_daily_adjustments
from bot.slack.socket_mode import SocketMode
from bot.slack.weekly_review import post_weekly_review
from connectors.base import InventorySystem
from connectors.clock import Clock, SystemClock
from connectors.health import Health
from connectors.shopify import ShopifyConnector
from connectors.shopify.webhooks import Touched, WebhookRouter
from ledger import HEARTBEAT_SECONDS, Ledger
from ledger.single_process import ProcessLock, process_lock
from monitors.assemble import (
    after_diff_hooks,
    evidence_source,
    incident_pipeline,
    webhook_health_job,
)
from monitors.config import Config, ShopifySystem, resolve_secret
from monitors.health import HealthWindow, combined
from monitors.health import counters as health_counters
from monitors.jobs import DriftDiffJob, HealthJob, Recheck
from monitors.persistence import Persistence, Seen
from monitors.plans import ResyncPlanner
from monitors.resync import ResyncService
from monitors.settle import ResyncSettler
from monitors.stores import adjustment_rules, store_report_channels
from monitors.wiring import build_systems, rules_from_config

log = logging.getLogger("driftwatch.service")

OUTBOX_INTERVAL_SECONDS = 2.0
WEBHOOKS_PATH = "/webhooks/shopify"

#: scheduled jobs one replica runs per unit and tick, under a lease (bot/service/replicas.py)
LEASED_JOBS = ("drift-diff", "health", "webhook-health", "chain-health", "verdict-reminder")
#: scheduled jobs with no lease that run once per tick across replicas (the reports)
ONCE_JOBS = ("weekly-summary", "daily-adjustments")


def ledger_url(config: Config, environ: Mapping[str, str]) -> str:
    """``DATABASE_URL`` if set, else the config's ``database.url_env`` variable, else
    ``database.url`` (a SQLite file by default)."""
    if environ.get("DATABASE_URL"):
        return environ["DATABASE_URL"]
    if config.database.url_env:
        return resolve_secret(
            config.database.url_env, environ, path="database.url_env"
        ).get_secret_value()
    return config.database.url


#: pending connections the web server queues (aiohttp's default is 128)
LISTEN_BACKLOG = 1024
#: work handed over by Slack acks that runs at once (the rest waits its turn)
ANSWER_CONCURRENCY = 8
#: running services that froze the start-up heap (see Service._freeze_startup_heap)
_FROZEN_SERVICES = 0


class Service:
    """Scheduler + web server + outbox worker around one ledger."""

    def __init__(
        self,
        config: Config,
        environ: Mapping[str, str],
        ledger: Ledger,
        *,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
        max_connections: int | None = None,
        header_timeout: float = HEADER_TIMEOUT_SECONDS,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.clock = clock or SystemClock()
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=30.0)
        self.systems: list[InventorySystem] = build_systems(
            config, client=self.http, clock=self.clock, environ=environ
        )
        token = resolve_secret(config.slack.bot_token_env, environ, path="slack.bot_token_env")
        slack_kwargs: dict[str, Any] = {"token": token.get_secret_value()}
        if config.slack.api_url:
            slack_kwargs["base_url"] = str(config.slack.api_url)
        self.slack: AsyncWebClient = LeaseKeepingClient(**slack_kwargs)
        self.outbox = OutboxWorker(
            ledger,
            self.slack,
            self.clock,
            health_channel=config.slack.alerts_channel,
            # replicas on PostgreSQL share one pace per channel; SQLite has one process
            pacer=LedgerPacer(ledger) if ledger.dialect == "postgresql" else None,
        )
        self.rules = rules_from_config(config)
        self.outbox.on_alert_posted.append(AlertChart(ledger, self.slack, self.rules, self.clock))
        #: health snapshots over time, for the charts of health incidents (memory only)
        self.health_history = HealthHistory(self.clock.now())
        self.outbox.on_alert_posted.append(
            HealthChart(
                ledger,
                self.slack,
                self.health_history,
                self.clock,
                {s.name: s.sla_seconds for s in config.systems},
            )
        )
        self.outbox.on_message_posted.append(WeeklyChart(ledger, self.slack, config.tz))
        self.outbox.on_message_posted.append(
            DailyAdjustmentsChart(
                ledger,
                self.slack,
                config.tz,
                adjustment_rules(config),
            )
        )
        self.resync = ResyncService(self.systems, self.rules, ledger, self.clock)
        #: resyncs a dead process left pending, settled at start (monitors/settle.py)
        self.settler = ResyncSettler(self.resync, ledger, self.clock, config.slack.alerts_channel)
        #: the ids found pending at start and not settled yet (their system was down)
        self.unsettled: set[int] = set()
        self.diff_job = self._diff_job_over(self.systems)
        shops = [s.name for s in config.systems if isinstance(s, ShopifySystem)]
        others = [s for s in self.systems if s.name not in shops]
        #: with several Shopify stores the scheduled diff is one per store (that store
        #: and the systems that are not Shopify stores), each under its own lease, so
        #: different stores' diffs run on different replicas; stores judged against
        #: one another (a store whose truth is another store) share one diff, named by
        #: its stores; webhooks' targeted diffs and re-checks still read every system
        #: (:attr:`diff_job`)
        groups = _store_groups(shops, self.rules.source_of_truth, self.rules.orders)
        self.store_diffs: dict[str, DriftDiffJob] = (
            {
                "+".join(group): self._diff_job_over(
                    [s for s in self.systems if s.name in group] + others
                )
                for group in groups
            }
            if len(groups) > 1
            else {}
        )
        #: after every resync, its SKU is read again and its alerts tell what is true now
        self.recheck = Recheck(self.diff_job)
        self.resync.after.append(self.recheck.after_resync)
        self.settler.after.append(self.recheck.after_settled)
        self.health_job = HealthJob(
            self.systems,
            ledger,
            self.clock,
            channel=config.slack.alerts_channel,
            sla_seconds={s.name: s.sla_seconds for s in config.systems},
            pipeline=incident_pipeline(config),
        )
        #: the hop-over-SLA check, the decision reminder, the chain charts' outbox hooks
        self.kpi_jobs = KpiJobs(config, self.rules, ledger, self.clock, self.slack, self.outbox)
        #: webhook failures (refused signatures, delays, missed changes, subscriptions);
        #: None when no Shopify system receives webhooks
        self.webhook_health_job = webhook_health_job(config, ledger, self.clock, self.systems)
        self.registry = CollectorRegistry()
        self.job_runs = Counter(
            "driftwatch_job_runs", "Scheduled job runs", ["job", "outcome"], registry=self.registry
        )
        self.scheduler = AsyncIOScheduler(timezone=config.tz)
        #: who runs which job on a shared PostgreSQL (alone on SQLite)
        self.coordinator: Coordinator = (
            Shared(ledger, self.clock, self.registry, self._job_units())
            if ledger.dialect == "postgresql"
            else Solo(ledger)
        )
        self.coordinator.on_taken.append(self._taken_over)
        #: the health window and the drift debounce, kept for the next lease holder
        self._held_state = (
            {
                (job, unit): HeldState(ledger, self.coordinator, self.clock, job, unit)
                for job, units in self._job_units().items()
                if job in ("health", "drift-diff")
                for unit in units
            }
            if isinstance(self.coordinator, Shared)
            else {}
        )
        #: the jobs as registered, before coordination wraps them (run_job runs these)
        self._job_funcs: dict[str, Callable[[], Awaitable[None]]] = {}
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        #: open connections are capped; slow clients are evicted, oldest first
        self.connections = ConnectionLimit(max_connections)
        self._header_timeout = header_timeout
        self._body_timeout = body_timeout
        self._frozen = False
        self._running: set[asyncio.Task[Any]] = set()
        self._answers = asyncio.Semaphore(ANSWER_CONCURRENCY)
        #: answers wait for a lull in Slack requests (acks first)
        self.ack_first = AckFirst()
        self._stopping = False
        #: set after every completed diff run (tests and the demo wait on it)
        self.diff_done = asyncio.Event()
        self.url: str | None = None
        self._signing_secret = environ.get(config.slack.signing_secret_env) or None
        app_token = environ.get(config.slack.app_token_env) or None
        self.slack_app = self._build_slack_app(environ)
        #: Socket Mode, when the app-level token is set (started and stopped with us)
        self.socket_mode = (
            SocketMode(self.slack_app, app_token)
            if self.slack_app is not None and app_token
            else None
        )
        #: webhook-touched SKUs, diffed soon by the unit's diff job (and its holder)
        self.targeted = TargetedDiffs(
            ledger,
            self.clock,
            debounce_seconds=config.schedules.debounce_seconds,
            unit_of=self._diff_unit_of,
            run=self._diff_unit,
            sku_for=self._sku_for,
            spawn=self.spawn,
            after=self.outbox.deliver_due,
        )
        #: set after every targeted diff
        self.targeted_done = self.targeted.done
        self.webhooks = self._build_webhooks(environ)
        self._process_lock: ProcessLock | None = None

    def _diff_job_over(self, systems: list[InventorySystem]) -> DriftDiffJob:
        """A drift diff of ``systems`` (every system, or one store's)."""
        config, ledger = self.config, self.ledger
        return DriftDiffJob(
            systems,
            self.rules,
            ledger,
            self.clock,
            channel=config.slack.alerts_channel,
            persistence=Persistence.from_config(config),
            pipeline=incident_pipeline(config),
            kinds={s.name: s.kind for s in config.systems},
            evidence=evidence_source(config, ledger, self.clock),
            after=after_diff_hooks(config, ledger, self.resync, self.clock),
            planner=ResyncPlanner(
                self.rules,
                {s.name: s.write_state for s in config.systems if s.writable},
                config.policy,
                config.sku_tags,
            ),
        )

    def _build_webhooks(self, environ: Mapping[str, str]) -> WebhookRouter | None:
        """Every store's webhook receiver, behind /webhooks/shopify (bot/service/webhooks)."""
        return build_webhooks(
            self.config,
            environ,
            self.ledger,
            self.clock,
            self._touched,
            read_timeout=self._body_timeout,
        )

    async def _touched(self, system: str, touched: Touched) -> None:
        """A store's webhook says a level changed: diff just that SKU, soon (debounced).
        With replicas the holder of the store's diff lease does, from the ledger, at its
        next heartbeat (:meth:`pick_up_touched`), whichever replica received it."""
        if not self.coordinator.shared:
            self.targeted.touch(system, touched.inventory_item_id)

    async def pick_up_touched(self) -> int:
        """Replicas: touch what any replica received for the stores whose diff lease
        this replica holds (run at every heartbeat); how many deliveries."""
        stores = [s.name for s in self.systems if isinstance(s, ShopifyConnector)]
        return await self.targeted.pick_up(
            stores, lambda unit: self.coordinator.holds("drift-diff", unit)
        )

    def _diff_unit_of(self, system: str) -> str:
        """The diff unit (lease) a store's levels are diffed in."""
        return next((unit for unit in self.store_diffs if system in unit.split("+")), ALL)

    def _sku_for(self, system: str, inventory_item_id: str) -> str | None:
        connector = next((s for s in self.systems if s.name == system), None)
        if isinstance(connector, ShopifyConnector):
            return connector.sku_for_item(inventory_item_id)
        return None

    def _build_slack_app(self, environ: Mapping[str, str]) -> AsyncApp | None:
        """The bolt app: at /slack/events with a signing secret, over Socket Mode with an
        app-level token; None (and a warning) with neither."""
        secret = self._signing_secret
        if not secret and not environ.get(self.config.slack.app_token_env):
            log.warning(
                "neither %s nor %s is set: Slack commands and buttons are off",
                self.config.slack.signing_secret_env,
                self.config.slack.app_token_env,
            )
            return None
        deps = BotDeps(
            config=self.config,
            ledger=self.ledger,
            clock=self.clock,
            client=self.slack,
            outbox=self.outbox,
            resync=self.resync,
            systems=self.systems,
            rules=self.rules,
            spawn=self.spawn_answer,
            recheck=self.recheck,
        )
        # Without a signing secret (Socket Mode only) /slack/events is not served at all.
        return build_slack_app(deps, secret or "")

    def spawn(self, name: str, work: Work) -> None:
        """Run ``work`` now, in the background, tracked: :meth:`stop` waits for it."""
        task = asyncio.create_task(self._tracked(name, work), name=f"driftwatch:{name}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def spawn_answer(self, name: str, work: Work) -> None:
        """Like :meth:`spawn`, for the work a Slack ack hands over (answers, resyncs):
        it starts once Slack's requests pause (:mod:`bot.service.ackfirst`), and at most
        :data:`ANSWER_CONCURRENCY` run at once, so a burst of commands is acked first
        and answered right after instead of every answer slowing every ack."""

        async def limited() -> None:
            await self.ack_first.settled()
            async with self._answers:
                await work()

        self.spawn(name, limited)

    async def idle(self) -> None:
        """Wait until no job and no work spawned after a Slack ack is running."""
        while self._running:
            await asyncio.wait(set(self._running))

    async def _tracked(self, name: str, work: Callable[[], Awaitable[object]]) -> None:
        if self._stopping:
            return  # dispatched by the scheduler as we stopped: the ledger may be closing
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await work()
        except Exception:
            self.job_runs.labels(name, "error").inc()
            log.exception("%s job failed", name)
        else:
            self.job_runs.labels(name, "ok").inc()
        finally:
            if task is not None:
                self._running.discard(task)

    def _sample_health(self) -> None:
        self.health_history.record([s.health() for s in self.systems], self.clock.now())

    async def _diff(self, unit: str = ALL) -> None:
        """The scheduled diff of ``unit``: every system, or one store's (with several).
        Run for every unit when called without coordination (SQLite)."""
        if unit == ALL and self.store_diffs:
            for store in self.store_diffs:
                await self._diff(store)
            return

        async def work() -> None:
            await self._diff_unit(unit)
            self._sample_health()
            await self.outbox.deliver_due()

        await self._tracked("diff" if unit == ALL else f"diff:{unit}", work)
        self.diff_done.set()

    async def _diff_unit(self, unit: str, skus: list[str] | None = None) -> None:
        """One diff of ``unit`` (of ``skus`` only, if given) with the unit's drift
        debounce: on a shared PostgreSQL, continued from what the previous lease holder
        kept when this replica has just taken the lease, and kept for the next."""
        job = self.store_diffs.get(unit, self.diff_job)
        held = self._held_state.get(("drift-diff", unit))
        if held is not None:
            state = await held.resume()
            if state is not None:
                job.seen = _seen_from_json(state)
        await job.run(skus=skus)
        if held is not None:
            await held.keep({fp: seen.to_json() for fp, seen in job.seen.items()})

    async def _deliver(self) -> None:
        await self._tracked("outbox", self.outbox.deliver_due)

    async def weekly_summary(self) -> None:
        """Queue last week's summary (with its review and decision buttons) for the
        reports channel and deliver."""

        async def work() -> None:
            await post_weekly_review(self.ledger, self.config, self.rules, self.clock.now())
            await self.outbox.deliver_due()

        await self._tracked("weekly-summary", work)

    async def daily_adjustments(self) -> None:
        """Queue yesterday's adjustment report for the reports channel, and each store's
        own for the store's channel when it has one (monitors/stores.py), and deliver."""

        async def work() -> None:
            reports = {
                self.config.slack.reports_channel: None,
                **store_report_channels(self.config),
            }
            for channel, stores in reports.items():
                await post_daily_adjustments(
                    self.ledger,
                    channel,
                    self.clock.now(),
                    self.config.tz,
                    adjustment_rules(self.config, stores),
                )
            await self.outbox.deliver_due()

        await self._tracked("daily-adjustments", work)

    def _schedule_reports(self) -> None:
        weekly = self.config.schedules.weekly_summary_at()
        if weekly is not None:
            day, at = weekly
            self.scheduler.add_job(
                self.weekly_summary,
                CronTrigger(
                    day_of_week=day, hour=at.hour, minute=at.minute, timezone=self.config.tz
                ),
                id="weekly-summary",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )
        daily = self.config.schedules.daily_adjustments_at()
        if daily is not None:
            self.scheduler.add_job(
                self.daily_adjustments,
                CronTrigger(hour=daily.hour, minute=daily.minute, timezone=self.config.tz),
                id="daily-adjustments",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=3600,
            )

    async def _health(self) -> None:
        async def work() -> None:
            self._sample_health()
            held = self._held_state.get(("health", ALL))
            if held is None:
                await self.health_job.run()
            else:
                # the lease holder judges every replica's counters, from the window the
                # previous holder kept: no replica flaps an incident another one owns
                state = await held.resume()
                if state is not None:
                    self.health_job.window = HealthWindow.from_json(
                        state, self.health_job.window.window
                    )
                await self.health_job.run(await self._combined_health())
                await held.keep(self.health_job.window.to_json())
            await self.outbox.deliver_due()

        await self._tracked("health", work)

    async def _webhook_health(self) -> None:
        job = self.webhook_health_job
        if job is None:
            return

        async def work() -> None:
            if self.webhooks is not None:
                await self.webhooks.flush()  # judge every delivery answered before now
            await job.run()
            await self.outbox.deliver_due()

        await self._tracked("webhook-health", work)

    async def settle_resyncs(self) -> None:
        """Settle the resyncs found pending at start (see :meth:`start`) that are not
        settled yet, tell whoever asked, and deliver. Scheduled again while any is left
        (its system could not be reached)."""
        if not self.unsettled:
            return

        async def work() -> None:
            settled = await self.settler.settle(self.unsettled)
            self.unsettled = settled.left
            await self.outbox.deliver_due()

        await self._tracked("settle-resyncs", work)

    def web_app(self) -> web.Application:
        app = web.Application(middlewares=[self.connections.middleware])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        if self.slack_app is not None and self._signing_secret:
            app.router.add_post(
                EVENTS_PATH,
                self.ack_first.wrap(
                    events_handler(
                        self.slack_app, self._signing_secret, read_timeout=self._body_timeout
                    )
                ),
            )
        if self.webhooks is not None:
            app.router.add_post(WEBHOOKS_PATH, self.webhooks.handle)
        return app

    async def start(
        self, *, host: str | None = None, port: int | None = None, schedule: bool = True
    ) -> str:
        """Start the jobs (the first diff runs at once), the web server and Socket Mode;
        return the server's URL. A refused app token stops the start (SocketModeError).

        ``schedule=False`` registers the jobs but never fires them (the scheduler starts
        paused): a test that counts side effects runs each job itself with
        :meth:`run_job`, so no timer races its assertions."""
        # SQLite serves one process: a second one on the same file is refused here
        # (DatabaseInUse), before it runs any job (ledger/single_process.py)
        self._process_lock = process_lock(self.ledger.url)
        if self._process_lock is not None:
            self._process_lock.acquire()
        # Before anything can start a resync here, the resyncs left pending are a dead
        # process's (between its write and its record); settled before any job runs.
        try:
            self.unsettled = await self.settler.pending_ids()
        except Exception:
            log.exception("could not list the resyncs left pending")
        # SKUs a version older than migration 0012 recorded after it ran (a replica in a
        # rolling upgrade; on SQLite, an old process still running when `driftwatch db
        # upgrade` migrated its file): /drift would call them unknown until noted
        # (Ledger.note_unlisted_skus)
        try:
            noted = await self.ledger.note_unlisted_skus()
            if noted:
                log.info("noted %d SKUs recorded by an older version", noted)
        except Exception:
            log.exception("could not note the SKUs an older version recorded")
        if self.socket_mode is not None:
            await self.socket_mode.start()
        await self.settle_resyncs()
        now = datetime.now(self.config.tz)
        every = self.config.schedules
        self._every(self.settle_resyncs, every.health_seconds, "settle-resyncs")
        self._every(self._diff, every.full_diff_seconds, "drift-diff", next_run_time=now)
        self._every(self._health, every.health_seconds, "health")
        if self.webhook_health_job is not None:
            # as often as sync health; the job spaces its own subscription checks
            self._every(self._webhook_health, every.health_seconds, "webhook-health")
        self._every(self._deliver, OUTBOX_INTERVAL_SECONDS, "outbox")
        self._schedule_reports()
        self.kpi_jobs.schedule(self.scheduler, self._tracked)
        self._coordinate_jobs()
        if self.coordinator.shared:
            self._every(self._heartbeat, HEARTBEAT_SECONDS, "replica-heartbeat")
            await self._heartbeat()  # registered, with its share of leases, before a job
        self.scheduler.start(paused=not schedule)
        self._resume_webhooks()
        # keepalive_timeout is also how long a connection may take to send a request
        # head: aiohttp counts it from the connection (or the last answer) and does not
        # restart it when another byte trickles in
        self._runner = web.AppRunner(
            self.web_app(), access_log=None, keepalive_timeout=self._header_timeout
        )
        await self._runner.setup()
        if self._runner.server is None:
            raise RuntimeError("aiohttp's runner made no server")
        self.connections.attach(self._runner.server)
        bind_host = host or self.config.server.host
        # a backlog above aiohttp's 128: a burst of Slack commands or webhooks opening
        # new connections would otherwise wait out a 1 s SYN retry past the 128th
        self._listener = await asyncio.get_running_loop().create_server(
            self.connections,
            bind_host,
            self.config.server.port if port is None else port,
            backlog=LISTEN_BACKLOG,
        )
        bound = self._listener.sockets[0].getsockname()[1]
        self.url = f"http://{bind_host}:{bound}"
        self._freeze_startup_heap()
        return self.url

    def _every(
        self, func: Callable[[], Awaitable[None]], seconds: float, job_id: str, **kw: Any
    ) -> None:
        """An interval job on this replica's timers: one run at a time, a missed run
        coalesced into the next (whether it runs here is decided by the coordinator)."""
        self.scheduler.add_job(
            func, "interval", seconds=seconds, id=job_id, max_instances=1, coalesce=True, **kw
        )

    async def run_job(self, job_id: str, *, scheduled: bool = False) -> None:
        """Run the scheduled job ``job_id`` (``drift-diff``, ``health``, ``outbox``,
        ``webhook-health``, ``weekly-summary``, ``daily-adjustments``) now, once.

        On a shared PostgreSQL a leased job runs only where its lease is held.
        ``scheduled``: as its timer would, i.e. also only if this replica wins the
        current tick's claim (a report: the day's or week's claim)."""
        job = self.scheduler.get_job(job_id)
        if job is None:
            raise KeyError(f"no job {job_id!r}")
        if scheduled or job_id not in self._job_funcs:
            await job.func()
        else:
            await self._run_coordinated(job_id, None)

    def _job_units(self) -> dict[str, list[str]]:
        """The leases there are: each leased job's units (the drift diff's stores, when
        there are several; ``all`` otherwise)."""
        jobs = [j for j in LEASED_JOBS if j != "webhook-health" or self.webhook_health_job]
        units = {job: [ALL] for job in jobs}
        if self.store_diffs:
            units["drift-diff"] = sorted(self.store_diffs)
        return units

    def _tick(self, job_id: str) -> str:
        """The current tick of a job's timer: the interval's number since the epoch, or
        the local day of a cron timer (the reports fire at most once a day)."""
        job = self.scheduler.get_job(job_id)
        now = self.clock.now()
        if job is not None and isinstance(job.trigger, IntervalTrigger):
            seconds = max(1.0, job.trigger.interval.total_seconds())
            return str(int(now.timestamp() // seconds))
        return now.astimezone(self.config.tz).strftime("%Y-%m-%d")

    def _coordinate_jobs(self) -> None:
        """Wrap the registered jobs so a fired timer asks the coordinator first."""
        for job in self.scheduler.get_jobs():
            if job.id not in LEASED_JOBS and job.id not in ONCE_JOBS:
                continue
            self._job_funcs[job.id] = job.func
            # a partial of a coroutine function: APScheduler's asyncio executor awaits it
            job.modify(func=functools.partial(self._fire, job.id))

    async def _fire(self, job_id: str) -> None:
        """A job's timer fired."""
        await self._run_coordinated(job_id, self._tick(job_id))

    async def _run_coordinated(
        self, job_id: str, tick: str | None, units: list[str] | None = None
    ) -> None:
        """Run ``job_id`` for each of its units (default: all) this replica should: it
        holds the unit's lease (and wins ``tick``); for a report, wins its tick."""
        work = self._job_funcs[job_id]
        if job_id in ONCE_JOBS:
            if tick is None or await self.coordinator.claim_once(job_id, tick):
                await work()
            return
        for unit in units if units is not None else self._job_units().get(job_id, [ALL]):
            if not await self.coordinator.should_run(job_id, unit, tick):
                continue
            if job_id == "drift-diff":
                await self._diff(unit)
            else:
                await work()

    async def _taken_over(self, job_id: str, unit: str) -> None:
        """A lease was just taken (its holder died or left): run its job for the
        current tick at once, unless that tick ran already; only while timers run."""
        if self.scheduler.state != STATE_RUNNING or job_id not in self._job_funcs:
            return
        tick = self._tick(job_id)
        self.spawn(f"takeover:{job_id}:{unit}", lambda: self._run_coordinated(job_id, tick, [unit]))

    async def _heartbeat(self) -> None:
        if self._stopping:
            return  # a heartbeat after stop would bring this replica back to life
        try:
            await self.coordinator.beat()
            await self._publish_health()
            await self.pick_up_touched()
        except Exception:
            log.exception("replica heartbeat failed")

    async def _publish_health(self) -> None:
        """This replica's connector counters, for the health job's holder to sum."""
        await self.ledger.publish_health(
            self.ledger.replica_id,
            [health_counters(s.health()) for s in self.systems],
            self.clock.now(),
        )

    async def _combined_health(self) -> list[Health]:
        """Every connector's health across the replicas (this one's published first)."""
        await self._publish_health()
        published = [counters for _, counters in await self.ledger.replica_health()]
        return [combined(s.health(), published) for s in self.systems]

    def _resume_webhooks(self) -> None:
        """Process the webhooks a previous process answered but never processed."""
        if self.webhooks is not None:
            self.spawn("resume-webhooks", self.webhooks.resume)

    def _freeze_startup_heap(self) -> None:
        """Exclude everything alive after start-up from the garbage collector's scans.

        Measured (docs/RELIABILITY.md): the recording stalls under steady webhook load
        were the event loop stopped by full (generation 2) collections, which traverse
        every object alive: modules, the bolt app, the schema of an in-process fake
        Shopify — 0.2 s with the service alone, over 1 s with the sandbox in the same
        process. Frozen, those objects are never traversed again; :meth:`stop` thaws
        them when the last running service stops."""
        global _FROZEN_SERVICES
        if not self._frozen:
            self._frozen = True
            _FROZEN_SERVICES += 1
            gc.freeze()

    def _thaw_heap(self) -> None:
        global _FROZEN_SERVICES
        if self._frozen:
            self._frozen = False
            _FROZEN_SERVICES -= 1
            if _FROZEN_SERVICES == 0:
                gc.unfreeze()

    async def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop scheduling, let running jobs finish (a resync is not cut in half), close."""
        self._stopping = True
        if self.socket_mode is not None:
            await self.socket_mode.stop()  # no new commands; those acked finish below
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self.coordinator.stop()  # the other replicas take the leases at once
        except Exception:
            log.exception("could not release this replica's leases")
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        if self.webhooks is not None:
            # Let deliveries already acknowledged finish processing (they are recorded
            # and Shopify will not resend them), then close.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.webhooks.idle(), grace_seconds)
            await self.webhooks.close()
        if self._own_http:
            await self.http.aclose()
        if self._process_lock is not None:
            self._process_lock.release()
        self._thaw_heap()

    async def _healthz(self, request: web.Request) -> web.Response:
        systems = {}
        for system in self.systems:
            h = system.health()
            systems[system.name] = {
                "last_success": h.last_success.isoformat() if h.last_success else None,
                "error_streak": h.error_streak,
                "last_error": h.last_error,
            }
        ok = all(s["error_streak"] == 0 for s in systems.values())
        body = {"status": "ok" if ok else "degraded", "systems": systems}
        if self.outbox.last_error:
            body["slack_last_error"] = self.outbox.last_error
        return web.json_response(body, status=200)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )


def _seen_from_json(state: Mapping[str, Any]) -> dict[str, Seen]:
    """The drift debounce a previous lease holder kept (malformed entries skipped)."""
    seen: dict[str, Seen] = {}
    for fingerprint, data in state.items():
        try:
            seen[str(fingerprint)] = Seen.from_json(data)
        except (KeyError, TypeError, ValueError):
            continue
    return seen


def _store_groups(
    shops: Sequence[str], truth: Sequence[str], orders: Mapping[str, Sequence[str]]
) -> list[tuple[str, ...]]:
    """The stores, grouped so that a store and the stores its counts are judged against
    first (the stores its truth order, its own or the global one, names before any
    other system) are read in one diff. A store named only as a fallback behind a
    warehouse does not join: while that warehouse cannot be read, such a store's diff
    finds no truth rather than every store's diff reading every store."""
    group = {shop: {shop} for shop in shops}
    for shop in shops:
        order = orders.get(shop) or truth
        first = list(itertools.takewhile(lambda name: name in group, order))
        for other in first:
            if group[other] is not group[shop]:
                merged = group[shop] | group[other]
                for member in merged:
                    group[member] = merged
    seen: list[tuple[str, ...]] = []
    for members in group.values():
        ordered = tuple(s for s in shops if s in members)
        if ordered not in seen:
            seen.append(ordered)
    return seen
