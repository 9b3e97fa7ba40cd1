"""The incident pipeline on a real ledger: grouping, muting, dedupe, reminders,
auto-resolve and reopening — asserted on the incidents and outbox entries it leaves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.levels import Level
from ledger import Ledger
from monitors.drift import DiffRules, Drift, SystemRules, diff
from monitors.pipeline import Candidate, Mute, Scope, Timers, build_pipeline
from monitors.pipeline.evaluate import Explained
from monitors.reconcile import cell_snapshot

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RULES = DiffRules(
    systems={
        "shopify": SystemRules("shopify", "storefront", ("available", "committed")),
        "wms": SystemRules("wms", "warehouse", ("available", "committed")),
    },
    source_of_truth=("wms", "shopify"),
)
FULL = Scope(systems=frozenset({"shopify", "wms"}))
CHANNEL = "C0DRIFT01"


def drifts(pairs: dict[str, tuple[int, int]], location: str = "east") -> list[Drift]:
    """Drifts from the engine itself: SKU -> (shopify available, wms available)."""
    levels = []
    for sku, (shop, wms) in pairs.items():
        levels.append(Level("shopify", sku, location, {"available": shop}, T0))
        levels.append(Level("wms", sku, location, {"available": wms}, T0))
    return diff(levels, RULES)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Ledger.from_url(f"sqlite:///{tmp_path / 'pipeline.db'}") as led:
        await led.upgrade()
        yield led


async def outbox(ledger: Ledger) -> list[tuple[str, str | None]]:
    return [(e.kind, (e.payload or {}).get("reply")) for e in await ledger.list_outbox()]


async def test_a_single_drift_opens_one_incident_and_queues_one_alert(ledger: Ledger) -> None:
    ctx = await build_pipeline().run(
        ledger, drifts({"SKU-1": (14, 10)}), scope=FULL, now=T0, channel=CHANNEL
    )
    [incident] = ctx.opened
    assert incident.title == "Oversell risk: SKU-1 at east"
    assert await outbox(ledger) == [("incident.opened", None)]


async def test_a_storm_is_one_incident_listing_the_worst(ledger: Ledger) -> None:
    storm = drifts({f"SKU-{i:03d}": (10 + i + 1, 10) for i in range(25)})
    ctx = await build_pipeline(timers=Timers(group_threshold=10, group_list=5)).run(
        ledger, storm, scope=FULL, now=T0, channel=CHANNEL
    )
    [incident] = ctx.opened
    assert incident.title == "Oversell risk: 25 SKUs at east"
    assert incident.details["count"] == 25
    assert [w["sku"] for w in incident.details["worst"]] == [
        "SKU-024",
        "SKU-023",
        "SKU-022",
        "SKU-021",
        "SKU-020",
    ]
    assert len(await ledger.list_outbox()) == 1


async def test_a_mute_holds_the_alert_back_but_keeps_the_incident(ledger: Ledger) -> None:
    window = Mute(
        id="maintenance-east",
        starts_at=T0 - timedelta(hours=1),
        ends_at=T0 + timedelta(hours=1),
        reason="cycle count at east",
        location="east",
    )

    async def mutes(now: datetime) -> list[Mute]:
        return [window]

    ctx = await build_pipeline(mute_source=mutes).run(
        ledger, drifts({"SKU-1": (14, 10)}), scope=FULL, now=T0, channel=CHANNEL
    )
    assert [c.muted_by for c in ctx.muted] == ["maintenance-east"]
    assert len(ctx.opened) == 1
    assert await outbox(ledger) == []


async def test_the_same_drift_again_touches_and_reminds_once_per_interval(ledger: Ledger) -> None:
    pipeline = build_pipeline(timers=Timers(repeat_interval=timedelta(hours=1)))
    seen = drifts({"SKU-1": (14, 10)})
    await pipeline.run(ledger, seen, scope=FULL, now=T0, channel=CHANNEL)
    await pipeline.run(ledger, seen, scope=FULL, now=T0 + timedelta(minutes=15), channel=CHANNEL)
    assert await outbox(ledger) == [("incident.opened", None)]

    later = T0 + timedelta(minutes=70)
    first = await pipeline.run(ledger, seen, scope=FULL, now=later, channel=CHANNEL)
    again = await pipeline.run(ledger, seen, scope=FULL, now=later, channel=CHANNEL)
    assert len(first.reminded) == 1
    assert again.reminded == []
    assert await outbox(ledger) == [
        ("incident.opened", None),
        ("incident.updated", "Still drifting after 70 min: Oversell risk: SKU-1 at east (gap +4)"),
    ]
    assert len(await ledger.list_incidents()) == 1


async def test_a_snoozed_incident_is_not_reminded(ledger: Ledger) -> None:
    pipeline = build_pipeline(timers=Timers(repeat_interval=timedelta(hours=1)))
    seen = drifts({"SKU-1": (14, 10)})
    [incident] = (await pipeline.run(ledger, seen, scope=FULL, now=T0, channel=CHANNEL)).opened
    await ledger.snooze(incident.id, T0 + timedelta(hours=4), "U0OPS001", T0)
    ctx = await pipeline.run(ledger, seen, scope=FULL, now=T0 + timedelta(hours=2), channel=CHANNEL)
    assert [c.muted_by for c in ctx.muted] == [f"snooze:{incident.id}"]
    assert await outbox(ledger) == [("incident.opened", None)]


async def test_recovery_resolves_and_says_so(ledger: Ledger) -> None:
    pipeline = build_pipeline()
    await pipeline.run(ledger, drifts({"SKU-1": (14, 10)}), scope=FULL, now=T0, channel=CHANNEL)
    ctx = await pipeline.run(
        ledger, [], scope=FULL, now=T0 + timedelta(minutes=15), channel=CHANNEL
    )
    [resolved] = ctx.resolved
    assert (resolved.status, resolved.resolved_by) == ("resolved", "driftwatch")
    assert (await outbox(ledger))[-1] == (
        "incident.resolved",
        "Recovered: every system agrees with the source of truth again.",
    )


async def test_no_resolution_where_the_evaluation_did_not_look(ledger: Ledger) -> None:
    pipeline = build_pipeline()
    await pipeline.run(ledger, drifts({"SKU-1": (14, 10)}), scope=FULL, now=T0, channel=CHANNEL)
    shopify_down = Scope(systems=frozenset({"wms"}))
    other_sku = Scope(systems=frozenset({"shopify", "wms"}), skus=frozenset({"SKU-2"}))
    for scope in (shopify_down, other_sku):
        ctx = await pipeline.run(ledger, [], scope=scope, now=T0, channel=CHANNEL)
        assert ctx.resolved == []
    assert [i.status for i in await ledger.list_incidents()] == ["open"]


async def test_no_resolution_when_the_truth_it_was_compared_with_was_not_read(
    ledger: Ledger,
) -> None:
    """With the WMS down, Shopify stands in as the truth and agrees with itself: that is
    no evidence the drift against the WMS ended."""
    pipeline = build_pipeline()
    await pipeline.run(ledger, drifts({"SKU-1": (14, 10)}), scope=FULL, now=T0, channel=CHANNEL)
    wms_down = Scope(systems=frozenset({"shopify"}))
    ctx = await pipeline.run(ledger, [], scope=wms_down, now=T0, channel=CHANNEL)
    assert ctx.resolved == []
    assert [i.status for i in await ledger.list_incidents()] == ["open"]


async def test_a_drift_on_its_own_alert_is_never_absorbed_into_a_storm(ledger: Ledger) -> None:
    pipeline = build_pipeline(timers=Timers(group_threshold=10))
    await pipeline.run(ledger, drifts({"SKU-000": (30, 10)}), scope=FULL, now=T0, channel=CHANNEL)
    storm = drifts({f"SKU-{i:03d}": (10 + i + 1, 10) for i in range(25)})
    ctx = await pipeline.run(
        ledger, storm, scope=FULL, now=T0 + timedelta(minutes=5), channel=CHANNEL
    )
    assert ctx.resolved == []
    [own] = await ledger.list_incidents(sku="SKU-000")
    assert (own.status, own.details["gap"]) == ("open", 1)
    [group] = ctx.opened
    assert (group.details["count"], group.details["tracked_apart"]) == (24, 1)
    assert "SKU-000" not in {m["sku"] for m in group.details["members"]}
    assert not any("Recovered" in (reply or "") for _, reply in await outbox(ledger))


async def test_a_recurrence_within_the_window_reopens_the_incident(ledger: Ledger) -> None:
    pipeline = build_pipeline(timers=Timers(reopen_window=timedelta(hours=24)))
    seen = drifts({"SKU-1": (14, 10)})
    [first] = (await pipeline.run(ledger, seen, scope=FULL, now=T0, channel=CHANNEL)).opened
    await pipeline.run(ledger, [], scope=FULL, now=T0 + timedelta(hours=1), channel=CHANNEL)
    ctx = await pipeline.run(ledger, seen, scope=FULL, now=T0 + timedelta(hours=3), channel=CHANNEL)
    [reopened] = ctx.reopened
    assert reopened.id == first.id
    assert reopened.reopened_count == 1
    assert (await outbox(ledger))[-1] == (
        "incident.updated",
        "Drifting again: Oversell risk: SKU-1 at east",
    )
    assert len(await ledger.list_incidents()) == 1


async def test_an_unconfirmed_drift_waits(ledger: Ledger) -> None:
    ctx = await build_pipeline().run(
        ledger, drifts({"SKU-1": (14, 10)}), scope=FULL, now=T0, channel=CHANNEL, confirmed=set()
    )
    assert [c.sku for c in ctx.pending] == ["SKU-1"]
    assert await ledger.list_incidents() == []


@pytest.mark.parametrize(
    ("family", "recovered"),
    [
        ("health:", "Recovered: the system is reading normally again."),
        ("webhook:", "Recovered: webhooks are arriving and verifying normally again."),
    ],
)
async def test_health_and_webhook_incidents_recover_in_their_own_words(
    ledger: Ledger, family: str, recovered: str
) -> None:
    pipeline = build_pipeline()
    given = [
        Candidate(
            f"{family}sync_stale:wms", "sync_stale", "warning", "WMS is stale", {}, system="wms"
        )
    ]
    run = {"scope": FULL, "channel": CHANNEL, "families": (family,)}
    await pipeline.run(ledger, [], now=T0, given=given, **run)  # type: ignore[arg-type]
    later = T0 + timedelta(hours=2)
    await pipeline.run(ledger, [], now=later, given=given, **run)  # type: ignore[arg-type]
    await pipeline.run(ledger, [], now=later + timedelta(minutes=1), given=[], **run)  # type: ignore[arg-type]
    replies = [reply for _, reply in await outbox(ledger)]
    assert replies[1].startswith("Still unhealthy" if family == "health:" else "Still failing")
    assert "gap" not in replies[1]
    assert replies[-1] == recovered


async def test_a_live_incident_keeps_the_cause_it_was_opened_with(ledger: Ledger) -> None:
    pipeline = build_pipeline()
    race = Explained("race_in_flight_orders", "Likely a race with in-flight orders")
    manual = Explained("manual_storefront_override", "Likely a manual change in Shopify")
    seen = drifts({"SKU-1": (14, 10)})
    run = {"scope": FULL, "channel": CHANNEL}
    await pipeline.run(ledger, seen, now=T0, hint=lambda d: race, **run)  # type: ignore[arg-type]
    later = T0 + timedelta(minutes=30)
    await pipeline.run(ledger, seen, now=later, hint=lambda d: manual, **run)  # type: ignore[arg-type]
    incident = await ledger.find_open_incident(seen[0].fingerprint)
    assert incident is not None
    assert incident.root_cause_hint == "Likely a race with in-flight orders"
    assert incident.details["root_cause"] == "race_in_flight_orders"


async def test_an_incident_opened_without_a_cause_takes_a_later_one(ledger: Ledger) -> None:
    pipeline = build_pipeline()
    manual = Explained("manual_storefront_override", "Likely a manual change in Shopify")
    seen = drifts({"SKU-1": (14, 10)})
    run = {"scope": FULL, "channel": CHANNEL}
    await pipeline.run(ledger, seen, now=T0, hint=lambda d: None, **run)  # type: ignore[arg-type]
    later = T0 + timedelta(minutes=30)
    await pipeline.run(ledger, seen, now=later, hint=lambda d: manual, **run)  # type: ignore[arg-type]
    incident = await ledger.find_open_incident(seen[0].fingerprint)
    assert incident is not None
    assert incident.details["root_cause"] == "manual_storefront_override"


async def reminders(ledger: Ledger) -> list[datetime]:
    return [
        e.created_at
        for e in await ledger.list_outbox()
        if str((e.payload or {}).get("reply", "")).startswith("Still drifting")
    ]


async def test_reminders_are_a_whole_interval_apart_whenever_the_diffs_run(ledger: Ledger) -> None:
    """Issue 13, H: reminders fell due at fixed hour marks after the opening, so a diff
    just before a mark and one just after it both reminded (56 minutes apart here). A
    reminder now waits a whole interval after the last one."""
    pipeline = build_pipeline(timers=Timers(repeat_interval=timedelta(hours=1)))
    seen = drifts({"SKU-1": (14, 10)})
    for minutes in (0, 65, 121, 126, 150, 190, 250):
        now = T0 + timedelta(minutes=minutes)
        await pipeline.run(ledger, seen, scope=FULL, now=now, channel=CHANNEL)
    sent = await reminders(ledger)
    assert [int((t - T0).total_seconds() // 60) for t in sent] == [65, 126, 190, 250]


async def test_a_storm_of_evaluations_at_once_reminds_once(ledger: Ledger) -> None:
    pipeline = build_pipeline(timers=Timers(repeat_interval=timedelta(hours=1)))
    seen = drifts({"SKU-1": (14, 10)})
    await pipeline.run(ledger, seen, scope=FULL, now=T0, channel=CHANNEL)
    later = T0 + timedelta(minutes=61)
    for _ in range(8):
        await pipeline.run(ledger, seen, scope=FULL, now=later, channel=CHANNEL)
    assert len(await reminders(ledger)) == 1


async def test_an_acknowledged_incident_is_not_reminded(ledger: Ledger) -> None:
    """Reminders are for incidents nobody has taken ([schedules] reminder_seconds:
    "remind the channel of an unacknowledged incident")."""
    pipeline = build_pipeline(timers=Timers(repeat_interval=timedelta(hours=1)))
    seen = drifts({"SKU-1": (14, 10)})
    [incident] = (await pipeline.run(ledger, seen, scope=FULL, now=T0, channel=CHANNEL)).opened
    await ledger.acknowledge(incident.id, "U0OPS001", T0 + timedelta(minutes=5))
    for hours in (2, 5, 9):
        now = T0 + timedelta(hours=hours)
        await pipeline.run(ledger, seen, scope=FULL, now=now, channel=CHANNEL)
    assert await reminders(ledger) == []


async def test_a_system_that_recovers_while_another_drifts_does_not_say_every_system_agrees(
    ledger: Ledger,
) -> None:
    rules = DiffRules(
        systems={
            "shopify": SystemRules("shopify", "storefront", ("available",)),
            "wms": SystemRules("wms", "warehouse", ("available",)),
            "erp": SystemRules("erp", "erp", ("available",)),
        },
        source_of_truth=("wms",),
    )

    def read(shop: int, erp: int) -> list[Level]:
        return [
            Level("shopify", "MUG", "east", {"available": shop}, T0),
            Level("wms", "MUG", "east", {"available": 46}, T0),
            Level("erp", "MUG", "east", {"available": erp}, T0),
        ]

    async def evaluate(levels: list[Level], at: datetime) -> None:
        await build_pipeline().run(
            ledger,
            diff(levels, rules),
            scope=Scope(systems=frozenset({"shopify", "wms", "erp"})),
            now=at,
            channel=CHANNEL,
            snapshot_of=lambda sku, location: cell_snapshot(levels, rules, sku, location),
        )

    await evaluate(read(56, 64), T0)
    await evaluate(read(56, 46), T0 + timedelta(minutes=5))

    [erp] = await ledger.list_incidents(status="resolved")
    assert erp.system == "erp"
    assert erp.details["resolution"]["agrees"] is False
    assert (await outbox(ledger))[-1] == (
        "incident.resolved",
        "Resolved: erp agrees with the source of truth again; shopify still differs by +10 "
        "(shopify 56, wms 46 (source of truth), erp 46).",
    )
    [shopify] = await ledger.list_incidents(status="open")
    assert (shopify.system, shopify.details["gap"]) == ("shopify", 10)
