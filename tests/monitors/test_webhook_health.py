"""Webhook health: table-driven evaluation of every kind, and over the fake Shopify — a
rotated secret, a deleted or misaddressed subscription, duplicates and reordering, and
a change no webhook announced — each an incident that resolves once things recover."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.cli.demo import demo_config, demo_world
from connectors import ManualClock
from connectors.health import Health
from connectors.normalize import Mapping
from connectors.shopify import ShopifyConnector
from connectors.shopify.subscriptions import (
    Subscription,
    SubscriptionReport,
    check_subscriptions,
    create_missing,
)
from connectors.shopify.transport import GraphQLTransport
from connectors.shopify.webhooks import TOPICS, UNKNOWN_SHOP, WebhookReceiver
from ledger import Ledger
from ledger.webhooks import Announcement, DeliveryWindow, LevelChange
from monitors.assemble import webhook_health_job
from monitors.config import config_from_dict
from monitors.reconcile import observations, run_diff
from monitors.webhook_health import (
    Thresholds,
    WebhookFacts,
    WebhookHealthJob,
    WebhookWatch,
    evaluate_webhooks,
    level_resolver,
    missed_changes,
)
from monitors.wiring import build_systems, rules_from_config
from sandbox.shopify import FakeShopify

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
URL = "https://driftwatch.example.com/webhooks/shopify"
SECRET = "shpss_current"


def window(
    *, late: int = 0, timed: int = 0, max_delay: float | None = None, mismatches: int = 0, **n: int
) -> DeliveryWindow:
    return DeliveryWindow(
        system="shopify",
        since=T0,
        by_outcome=n,
        timed=timed,
        late=late,
        late_after_seconds=300,
        max_delay_seconds=max_delay,
        signature_mismatches=mismatches,
        last_error="ValueError: available is not an integer: '7'" if n.get("error") else None,
        last_received_at=T0,
    )


def report(missing: Iterable[str] = (), elsewhere: Iterable[str] = ()) -> SubscriptionReport:
    wrong = tuple(
        Subscription(f"gid://shopify/WebhookSubscription/{i}", t, "https://old-tunnel.example/h")
        for i, t in enumerate(elsewhere)
    )
    return SubscriptionReport(URL, TOPICS, wrong, tuple(missing), wrong)


def change(
    sku: str = "TEE-BLK-M", minutes: float = 0, location: str = "east", since: float = -600
) -> LevelChange:
    """``sku`` went from 10 to 7, seen at T0 + ``minutes``; 10 was seen at T0 + ``since``."""
    at = T0 + timedelta(minutes=minutes)
    return LevelChange(
        "shopify", sku, location, "available", 10, 7, at, "poll", T0 + timedelta(minutes=since)
    )


@dataclass
class Case:
    facts: WebhookFacts
    #: (kind, severity) of every candidate, in order
    expected: list[tuple[str, str]]
    #: words the first candidate's evidence must contain
    says: list[str] = field(default_factory=list)


def facts(**kw: Any) -> WebhookFacts:
    return WebhookFacts(system="shopify", **kw)


CASES = {
    "quiet": Case(facts(deliveries=window(processed=40, duplicate=1, stale=1)), []),
    "rotated secret": Case(
        facts(deliveries=window(rejected_signature=41, processed=9, mismatches=41)),
        [("webhook_signatures_rejected", "warning")],
        [
            "41 of 50 deliveries in the last 15 min were refused: bad HMAC signature",
            "was the webhook secret rotated?",
        ],
    ),
    "nothing accepted": Case(
        facts(deliveries=window(rejected_signature=5, mismatches=3)),
        [("webhook_signatures_rejected", "critical")],
        ["3 signed with another secret, 2 not signed at all"],
    ),
    "a few probes": Case(facts(deliveries=window(rejected_signature=2, processed=1)), []),
    "rejections lost in traffic": Case(
        facts(deliveries=window(rejected_signature=3, processed=97, mismatches=3)), []
    ),
    "processing errors": Case(
        facts(deliveries=window(error=3, processed=20)),
        [("webhook_processing_errors", "warning")],
        ["3 of 23 deliveries", "The newest error: ValueError: available is not an integer"],
    ),
    "mostly failing": Case(
        facts(deliveries=window(error=4, malformed=1, processed=2)),
        [("webhook_processing_errors", "critical")],
    ),
    "late": Case(
        facts(deliveries=window(processed=10, timed=10, late=4, max_delay=20 * 60)),
        [("webhook_delayed", "warning")],
        ["4 of 10 deliveries in the last 15 min arrived more than 5 min after", "20 min"],
    ),
    "hours late": Case(
        facts(deliveries=window(processed=3, timed=3, late=3, max_delay=2 * 3600)),
        [("webhook_delayed", "critical")],
    ),
    "a few late among many": Case(
        facts(deliveries=window(processed=100, timed=100, late=3, max_delay=600)), []
    ),
    "duplicates": Case(
        facts(deliveries=window(processed=28, duplicate=12)),
        [("webhook_duplicates", "info")],
        ["12 of 40 accepted deliveries"],
    ),
    "duplicates lost in traffic": Case(facts(deliveries=window(processed=90, duplicate=10)), []),
    "out of order": Case(
        facts(deliveries=window(processed=24, stale=6)),
        [("webhook_out_of_order", "info")],
        ["6 of 30 deliveries"],
    ),
    "levels unsubscribed": Case(
        facts(subscriptions=report(missing=["inventory_levels/update"])),
        [("webhook_subscription_missing", "critical")],
        [f"no subscription to {URL} for: inventory_levels/update", "next scheduled poll"],
    ),
    "evidence topic unsubscribed": Case(
        facts(subscriptions=report(missing=["refunds/create"])),
        [("webhook_subscription_missing", "warning")],
    ),
    "misaddressed": Case(
        facts(subscriptions=report(elsewhere=["orders/create"])),
        [("webhook_subscription_misaddressed", "warning")],
        ["orders/create is also delivered to https://old-tunnel.example/h"],
    ),
    "healthy subscriptions": Case(facts(subscriptions=report()), []),
    "missed": Case(
        facts(missed=[change("A"), change("B", 5), change("C", 9)], judged=20),
        [("webhook_missed", "warning")],
        ["3 of 20 changes of Shopify levels found by polling", "`B` at east: 10 → 7"],
    ),
    "missed once": Case(facts(missed=[change("A")], judged=20), []),
    "missed because unsubscribed": Case(
        facts(
            subscriptions=report(missing=["inventory_levels/update"]),
            missed=[change("A"), change("B"), change("C")],
            judged=3,
        ),
        [("webhook_subscription_missing", "critical")],
        ["3 changes found by polling in the last 60 min arrived with no webhook"],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_evaluation(case: Case) -> None:
    found = evaluate_webhooks([case.facts])
    assert [(c.kind, c.severity) for c in found] == case.expected
    for c in found:
        assert c.fingerprint == f"webhook:{c.kind}:shopify"
        assert (c.system, c.sku, c.details["system"]) == ("shopify", None, "shopify")
        assert c.title.startswith("shopify: ")
    if case.says:
        evidence = " ".join(found[0].details["evidence"])
        for words in case.says:
            assert words in evidence


def test_every_kind_is_found_at_once_and_one_per_system() -> None:
    busy = facts(
        deliveries=window(
            rejected_signature=20,
            error=5,
            duplicate=15,
            stale=8,
            processed=20,
            timed=40,
            late=10,
            max_delay=900,
            mismatches=20,
        ),
        subscriptions=report(missing=["refunds/create"], elsewhere=["orders/create"]),
        missed=[change("A"), change("B"), change("C")],
        judged=3,
    )
    other = replace(busy, system="shopify-eu")
    found = evaluate_webhooks([busy, other])
    kinds = [c.kind for c in found if c.system == "shopify"]
    assert kinds == [
        "webhook_subscription_missing",
        "webhook_subscription_misaddressed",
        "webhook_signatures_rejected",
        "webhook_processing_errors",
        "webhook_delayed",
        "webhook_duplicates",
        "webhook_out_of_order",
        "webhook_missed",
    ]
    assert len({c.fingerprint for c in found}) == 16


SKUS = {"i1": "A", "i2": "B"}


def _resolve(key: str) -> tuple[str, str] | None:
    item, _, location = key.partition("@")
    sku = SKUS.get(item)
    return (sku, location) if sku else None


def heard(item: str, minutes: float, location: str = "east") -> Announcement:
    at = T0 + timedelta(minutes=minutes)
    return Announcement(f"{item}@{location}", at, at + timedelta(seconds=2))


@pytest.mark.parametrize(
    ("changes", "announcements", "missed"),
    [
        pytest.param([change("A", 1)], [heard("i1", 0.5)], [], id="announced before"),
        pytest.param([change("A", 1)], [heard("i1", 8)], [], id="announced late"),
        pytest.param([change("A", 40)], [heard("i1", 0)], ["A"], id="too long before"),
        pytest.param(
            [change("A", 5, since=1)], [heard("i1", 0.5)], ["A"], id="it announced the old value"
        ),
        pytest.param([change("A", 1)], [heard("i2", 0.5)], ["A"], id="another item"),
        pytest.param([change("A", 1)], [heard("i1", 0.5, "west")], ["A"], id="another location"),
        pytest.param([change("A", 1)], [heard("i9", 0.5)], ["A"], id="an item not read yet"),
        pytest.param(
            [change("A", 1), change("A", 3)],
            [heard("i1", 0.5)],
            ["A"],
            id="one webhook, one change",
        ),
        pytest.param(
            [change("A", 1), change("A", 3)],
            [heard("i1", 0.5), heard("i1", 0.5)],
            ["A"],
            id="a duplicate announces once",
        ),
        pytest.param(
            [change("A", 1), change("B", 1)],
            [heard("i1", 0.5), heard("i2", 0.7)],
            [],
            id="both announced",
        ),
    ],
)
def test_missed_changes(
    changes: list[LevelChange], announcements: list[Announcement], missed: list[str]
) -> None:
    found = missed_changes(
        changes,
        announcements,
        _resolve,
        before=timedelta(minutes=30),
        after=timedelta(minutes=10),
    )
    assert [c.sku for c in found] == missed


# -- over the fake Shopify ------------------------------------------------------------------
@dataclass
class Names:
    """Test data for the Mapping protocol: SKUs as they are, locations by name."""

    locations: dict[str, str]

    def normalize_sku(self, raw: str) -> str:
        return raw

    def location_key(self, system: str, system_location_id: str) -> str | None:
        return self.locations.get(system_location_id)

    def location_id(self, system: str, location_key: str) -> str | None:
        return next((g for g, k in self.locations.items() if k == location_key), None)

    def pack_size(self, system: str, sku: str) -> int:
        return 1


_CONFORMS: Mapping = Names({})


@dataclass
class Shop:
    fake: FakeShopify
    ledger: Ledger
    clock: ManualClock
    receiver: WebhookReceiver
    connector: ShopifyConnector
    gql: GraphQLTransport
    url: str
    east: str
    items: dict[str, str]

    def job(self, **thresholds: Any) -> WebhookHealthJob:
        watch = WebhookWatch(
            "shopify",
            check=partial(check_subscriptions, self.gql, TOPICS, self.url),
            resolve=level_resolver(self.connector, Names({self.east: "east"})),
        )
        return WebhookHealthJob(
            self.ledger, self.clock, [watch], channel="C0HOOKS", thresholds=Thresholds(**thresholds)
        )

    async def settle(self) -> None:
        await self.fake.webhooks.idle()
        await self.receiver.idle()

    async def poll(self) -> None:
        levels = await self.connector.read_levels()
        await self.ledger.record_levels(observations(levels))

    def subscription_checks(self) -> int:
        return sum(1 for r in self.fake.requests if r.operation_name == "WebhookSubscriptions")


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    clock = ManualClock(T0)
    async with (
        FakeShopify(clock=clock) as fake,
        Ledger.from_url(f"sqlite:///{tmp_path / 'hooks.db'}") as ledger,
        httpx.AsyncClient() as http,
    ):
        await ledger.upgrade()
        fake.webhooks.secret = SECRET
        # a generous ack budget: the product's 0.8 s is wall-clock time, which a loaded
        # machine can overrun, and the fake retries a 503 only hours later on its clock
        receiver = WebhookReceiver(
            system="shopify", secrets=[SECRET], store=ledger, clock=clock, ack_budget=120.0
        )
        app = web.Application()
        app.router.add_post("/webhooks/shopify", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/shopify"
        east = fake.add_location("Brooklyn DC")
        items = {sku: fake.add_item(sku) for sku in ("TEE-BLK-M", "MUG-WHT")}
        for item in items.values():
            fake.set_quantities(item, east, available=10)
        for topic in TOPICS:
            fake.webhooks.subscribe(topic, url)
        connector = ShopifyConnector(
            http,
            name="shopify",
            shop_url=fake.url or "",
            token=fake.access_token,
            mapping=Names({east: "east"}),
            clock=clock,
        )
        gql = GraphQLTransport(
            http,
            system="shopify",
            shop_url=fake.url or "",
            api_version="2026-07",
            token=fake.access_token,
            clock=clock,
            health=Health(system="shopify"),
        )
        shop = Shop(fake, ledger, clock, receiver, connector, gql, url, east, items)
        await shop.settle()  # the webhooks of the initial stock
        try:
            yield shop
        finally:
            await receiver.close()
            await runner.cleanup()


async def test_a_rotated_secret_is_an_incident_until_the_secret_matches(shop: Shop) -> None:
    job = shop.job()
    assert (await job.run()).opened == []
    shop.clock.advance(15 * 60)  # the initial stock's deliveries leave the window

    shop.fake.webhooks.secret = "shpss_rotated_without_telling_us"
    for qty in (9, 8, 7):
        shop.fake.set_quantities(shop.items["TEE-BLK-M"], shop.east, available=qty)
        await shop.settle()
        shop.clock.advance(30)
    ctx = await job.run()
    [incident] = ctx.opened
    assert (incident.kind, incident.severity, incident.title) == (
        "webhook_signatures_rejected",
        "critical",
        "shopify: 3 of 3 webhooks refused (bad signature)",
    )
    assert incident.details["evidence"][0] == (
        "3 of 3 deliveries in the last 15 min were refused: bad HMAC signature "
        "(3 signed with another secret) — was the webhook secret rotated?"
    )
    assert SECRET not in str(incident.details)

    shop.fake.webhooks.secret = SECRET  # the deployer fixes the configuration
    shop.clock.advance(60)
    assert await shop.fake.webhooks.deliver_due() == 3
    await shop.receiver.idle()
    assert (await job.run()).resolved == []  # the refusals are still in the window
    shop.clock.advance(15 * 60)
    ctx = await job.run()
    assert [i.id for i in ctx.resolved] == [incident.id]
    assert ctx.opened == []


async def test_a_deleted_subscription_is_missing_until_it_is_created_again(shop: Shop) -> None:
    job = shop.job()
    assert (await job.run()).opened == []
    assert shop.subscription_checks() == 1

    [levels] = [
        s for s in shop.fake.webhooks.subscriptions.values() if s.topic == "INVENTORY_LEVELS_UPDATE"
    ]
    shop.fake.webhooks.delete_subscription(levels.gid)
    shop.clock.advance(5 * 60)
    assert (await job.run()).opened == []  # checked 5 min ago: no API call yet
    assert shop.subscription_checks() == 1

    shop.clock.advance(10 * 60)
    ctx = await job.run()
    assert shop.subscription_checks() == 2
    [incident] = ctx.opened
    assert (incident.kind, incident.severity, incident.title) == (
        "webhook_subscription_missing",
        "critical",
        "shopify: no webhook subscription for inventory_levels/update",
    )
    assert incident.details["missing"] == ["inventory_levels/update"]

    report = await check_subscriptions(shop.gql, TOPICS, shop.url)
    [created] = await create_missing(shop.gql, report)  # driftwatch webhooks --create
    assert created.errors == ()
    shop.clock.advance(15 * 60)
    ctx = await job.run()
    assert [i.id for i in ctx.resolved] == [incident.id]


async def test_a_subscription_to_another_address_is_reported(shop: Shop) -> None:
    shop.fake.webhooks.subscribe("orders/create", "https://old-tunnel.example/hook")
    [incident] = (await shop.job().run()).opened
    assert (incident.kind, incident.severity) == ("webhook_subscription_misaddressed", "warning")
    assert incident.details["evidence"] == [
        f"orders/create is also delivered to https://old-tunnel.example/hook, not {shop.url}."
    ]


async def test_duplicate_and_reordered_deliveries_are_reported(shop: Shop) -> None:
    job = shop.job(duplicates=3, out_of_order=2)
    shop.fake.webhooks.duplicate = True
    shop.fake.webhooks.holding = True
    for qty in (9, 8, 7):
        shop.fake.set_quantities(shop.items["TEE-BLK-M"], shop.east, available=qty)
        await shop.fake.webhooks.idle()
        shop.clock.advance(20)
    shop.fake.webhooks.release(reverse=True)  # newest first, each delivered twice
    await shop.settle()

    ctx = await job.run()
    assert sorted((i.kind, i.severity) for i in ctx.opened) == [
        ("webhook_duplicates", "info"),
        ("webhook_out_of_order", "info"),
    ]
    stale = next(i for i in ctx.opened if i.kind == "webhook_out_of_order")
    assert stale.title == "shopify: 2 webhooks arrived out of order"

    shop.clock.advance(16 * 60)
    assert len((await job.run()).resolved) == 2


async def test_a_change_found_by_polling_without_a_webhook_is_missed(shop: Shop) -> None:
    job = shop.job(missed=1)
    await shop.poll()
    tee, mug = shop.items["TEE-BLK-M"], shop.items["MUG-WHT"]
    shop.clock.advance(60)

    shop.fake.set_quantities(tee, shop.east, available=6)  # announced by a webhook
    await shop.settle()
    shop.clock.advance(5)
    shop.fake.webhooks.holding = True  # Shopify drops the next one
    shop.fake.set_quantities(mug, shop.east, available=3)
    await shop.fake.webhooks.idle()
    shop.clock.advance(60)
    await shop.poll()  # the scheduled poll finds both changes

    shop.clock.advance(5 * 60)
    assert (await job.run()).opened == []  # too early to call it missed
    shop.clock.advance(5 * 60)
    ctx = await job.run()
    [incident] = ctx.opened
    assert (incident.kind, incident.title) == (
        "webhook_missed",
        "shopify: 1 change no webhook announced",
    )
    assert (incident.details["missed"], incident.details["judged"]) == (1, 2)
    [missed] = incident.details["changes"]
    assert (missed["sku"], missed["location"], missed["from"], missed["to"]) == (
        "MUG-WHT",
        "east",
        10,
        3,
    )

    shop.clock.advance(3600)  # the change ages out of the lookback: nothing missed since
    ctx = await job.run()
    assert [i.id for i in ctx.resolved] == [incident.id]


async def test_a_failing_subscription_check_keeps_the_last_report(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    job = shop.job()
    shop.fake.webhooks.subscribe("orders/create", "https://old-tunnel.example/hook")
    [incident] = (await job.run()).opened
    shop.fake.force_5xx(50)
    shop.clock.advance(15 * 60)
    ctx = await job.run()  # the check fails: the incident is neither resolved nor lost
    assert ctx.resolved == []
    assert "shopify: could not check webhook subscriptions: shopify: HTTP 503" in caplog.text
    assert job.last["shopify"].subscriptions is not None
    assert [w.uri for w in job.last["shopify"].subscriptions.wrong_address] == [
        "https://old-tunnel.example/hook"
    ]
    [live] = await shop.ledger.list_incidents(status="open")
    assert live.id == incident.id


# -- assembled from the configuration -------------------------------------------------------
async def test_the_assembled_job_finds_changes_the_demo_shop_never_announced(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'demo.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        systems = build_systems(demo.config, client=client, clock=clock, environ=demo.environ)
        job = webhook_health_job(demo.config, ledger, clock, systems)
        assert job is not None
        assert job.systems == ("shopify",)
        rules = rules_from_config(demo.config)
        await run_diff(systems, rules, ledger)
        clock.advance(60)
        west = demo.world.locations["west"][0]
        for sku, qty in (("TEE-BLK-M", 14), ("TEE-WHT-M", 8), ("CAP-NAVY", 6)):
            demo.world.shopify.set_quantities(sku, west, available=qty)  # no one subscribed
        await run_diff(systems, rules, ledger)
        clock.advance(11 * 60)
        [incident] = (await job.run()).opened

        plain = demo_config(demo.world)
        del plain["systems"][0]["webhook_secret_env"]
        assert webhook_health_job(config_from_dict(plain), ledger, clock, systems) is None

    assert (incident.kind, incident.title) == (
        "webhook_missed",
        "shopify: 3 changes no webhook announced",
    )
    assert sorted((c["sku"], c["location"], c["to"]) for c in incident.details["changes"]) == [
        ("CAP-NAVY", "west", 6),
        ("TEE-BLK-M", "west", 14),
        ("TEE-WHT-M", "west", 8),
    ]


def test_deliveries_for_a_shop_not_served_are_one_warning() -> None:
    def window(system: str, wrong: int, other: int = 0) -> WebhookFacts:
        by = {"wrong_shop": wrong, "processed": other}
        return WebhookFacts(
            system,
            DeliveryWindow(system, T0, by, 0, 0, 300, None, 0, None, T0),
        )

    [unknown] = evaluate_webhooks([window(UNKNOWN_SHOP, 3)])
    assert (unknown.kind, unknown.severity) == ("webhook_wrong_shop", "warning")
    assert unknown.title == "3 webhooks named a shop no configured store serves"
    assert unknown.fingerprint == f"webhook:webhook_wrong_shop:{UNKNOWN_SHOP}"
    [other] = evaluate_webhooks([window("shopify", 4, other=10)])
    assert other.title == "shopify: 4 webhooks named another shop"
    # two are noise; three among a hundred good ones are too
    assert evaluate_webhooks([window(UNKNOWN_SHOP, 2)]) == []
    assert evaluate_webhooks([window("shopify", 3, other=100)]) == []
