"""The auto-resync policy: its decisions, table-driven, and over the sandbox's fakes an
auto-resync written exactly once (across diffs and a restart), shadow mode writing
nothing, and high-risk drifts escalated instead of written."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cli.demo import DemoWorld, demo_config, demo_world
from connectors import ManualClock
from ledger import SYSTEM_ACTOR, Ledger
from monitors.assemble import after_diff_hooks
from monitors.config import Config, Policy, config_from_dict
from monitors.drift import Drift
from monitors.jobs import AfterDiff, DiffResult, DriftDiffJob
from monitors.policy import Decision, decide
from monitors.resync import ResyncRequest, ResyncService
from monitors.wiring import build_systems, rules_from_config

ONCALL = "S0ONCALL"
AT = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _drift(kind: str = "oversell_risk", expected: int = 30, actual: int = 33) -> Drift:
    return Drift(
        sku="MUG-STONE",
        location="west",
        system="shopify",
        kind=kind,
        truth_system="wms",
        expected=expected,
        actual=actual,
        values={"shopify": actual, "wms": expected},
        observed_at={"shopify": AT, "wms": AT},
    )


ON = Policy(auto_resync=True, auto_resync_max_units=5)


@pytest.mark.parametrize(
    ("drift", "policy", "tags", "writable", "expected"),
    [
        pytest.param(_drift(), ON, (), True, Decision("resync"), id="eligible"),
        pytest.param(
            _drift(actual=35),
            ON,
            (),
            True,
            Decision("resync"),
            id="exactly-at-the-limit",
        ),
        pytest.param(
            _drift(actual=36),
            ON,
            (),
            True,
            Decision("escalate", ("6 units is over the auto-resync limit of 5",)),
            id="too-many-units",
        ),
        pytest.param(
            _drift(),
            ON,
            ("hero", "summer"),
            True,
            Decision("escalate", ("hero SKU",)),
            id="hero-tag",
        ),
        pytest.param(
            _drift(actual=42),
            ON,
            ("hero",),
            True,
            Decision("escalate", ("hero SKU", "12 units is over the auto-resync limit of 5")),
            id="hero-and-too-large",
        ),
        pytest.param(
            _drift("undersell", actual=28),
            ON,
            (),
            True,
            Decision("escalate", ("it would raise shopify by 2 (only lowering is automatic)",)),
            id="unsafe-direction",
        ),
        pytest.param(
            _drift("undersell", actual=28),
            Policy(auto_resync=True, auto_resync_raise=True),
            (),
            True,
            Decision("resync"),
            id="raising-allowed",
        ),
        pytest.param(
            _drift("negative", expected=2, actual=-1),
            ON,
            (),
            True,
            Decision("escalate", ("negative inventory (-1 in shopify)",)),
            id="negative",
        ),
        pytest.param(
            _drift("stale"),
            ON,
            (),
            True,
            Decision("none", ("a stale drift is not fixed by writing a count",)),
            id="not-a-writable-kind",
        ),
        pytest.param(
            _drift("missing", expected=30, actual=None),  # type: ignore[arg-type]
            ON,
            (),
            True,
            Decision("none", ("a missing drift is not fixed by writing a count",)),
            id="missing-is-a-mapping-not-a-count",
        ),
        pytest.param(
            _drift(),
            ON,
            (),
            False,
            Decision("none", ("shopify is read-only in the configuration",)),
            id="read-only-system",
        ),
        pytest.param(
            _drift(),
            Policy(),
            (),
            True,
            Decision("none", ("auto-resync is off",)),
            id="policy-off",
        ),
        pytest.param(
            _drift(),
            Policy(shadow_mode=True),
            (),
            True,
            Decision("shadow"),
            id="shadow-mode",
        ),
    ],
)
def test_decisions(
    drift: Drift, policy: Policy, tags: Sequence[str], writable: bool, expected: Decision
) -> None:
    assert decide(drift, policy, tags=tags, writable=writable) == expected


def test_with_the_policy_off_high_risk_is_still_escalated_when_there_is_an_on_call_group() -> None:
    hero = _drift()
    assert decide(hero, Policy(), tags=("hero",), oncall=ONCALL) == Decision(
        "escalate", ("hero SKU",)
    )
    assert decide(hero, Policy(), tags=("hero",)).action == "none"


# -- over the sandbox ----------------------------------------------------------------


def policy_config(demo: DemoWorld, oncall: str | None = ONCALL, **policy: Any) -> Config:
    raw = demo_config(demo.world)
    raw["policy"] = {"auto_resync": True, "auto_resync_max_units": 5, **policy}
    if oncall is not None:
        raw["slack"]["oncall_usergroup"] = oncall
    return config_from_dict(raw)


@dataclass
class Setup:
    demo: DemoWorld
    ledger: Ledger
    clock: ManualClock
    client: httpx.AsyncClient

    def job(self, config: Config, *before: AfterDiff) -> DriftDiffJob:
        """A freshly built diff job with the policy hook (a restart builds a new one)."""
        systems = build_systems(
            config, client=self.client, clock=self.clock, environ=self.demo.environ
        )
        rules = rules_from_config(config)
        resync = ResyncService(systems, rules, self.ledger, self.clock)
        return DriftDiffJob(
            systems,
            rules,
            self.ledger,
            self.clock,
            channel=config.slack.alerts_channel,
            after=[*before, *after_diff_hooks(config, self.ledger, resync, self.clock)],
        )

    def shopify(self, sku: str, location: str, **states: int) -> dict[str, int]:
        gid = self.demo.world.locations[location][0]
        if states:
            self.demo.world.shopify.set_quantities(sku, gid, **states)
        return self.demo.world.shopify.quantities(sku, gid)

    async def policy_audit(self, incident_id: int) -> list[str]:
        entries = await self.ledger.list_audit(subject=f"incident:{incident_id}")
        return [e.action for e in reversed(entries) if e.action.startswith("policy.")]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'policy.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        yield Setup(demo, ledger, ManualClock(), client)


async def _incident(setup: Setup, sku: str) -> Any:
    [incident] = [i for i in await setup.ledger.list_incidents(limit=100) if i.sku == sku]
    return incident


async def test_a_small_oversell_is_resynced_exactly_once_across_diffs_and_a_restart(
    setup: Setup,
) -> None:
    config = policy_config(setup.demo)
    setup.shopify("MUG-STONE", "west", available=33)  # WMS: 30 pickable + 3 allocated

    first = await setup.job(config).run()
    assert {d.sku for d in first.run.drifts} == {"MUG-STONE", "TEE-BLK-M"}
    [write] = setup.demo.world.shopify.writes
    assert (write.sku, write.before, write.after) == ("MUG-STONE", 33, 30)
    assert setup.shopify("MUG-STONE", "west")["available"] == 30

    [resync] = await setup.ledger.list_resyncs()
    assert (resync.status, resync.before, resync.after) == ("applied", 33, 30)
    assert resync.requested_by == SYSTEM_ACTOR  # counted as automatic by the weekly report
    mug = await _incident(setup, "MUG-STONE")
    assert resync.incident_id == mug.id
    assert mug.details["policy"]["outcome"] == "applied"
    assert await setup.policy_audit(mug.id) == ["policy.applied"]

    setup.clock.advance(900)
    job = setup.job(config)
    await job.run()
    await job.run()
    setup.clock.advance(900)
    await setup.job(config).run()  # a restart: new connectors, service and job, same ledger

    assert len(setup.demo.world.shopify.writes) == 1
    assert setup.shopify("MUG-STONE", "west")["available"] == 30
    assert (await _incident(setup, "MUG-STONE")).status == "resolved"
    assert await setup.policy_audit(mug.id) == ["policy.applied"]


async def test_a_drift_still_seen_after_its_auto_resync_is_not_written_again(
    setup: Setup,
) -> None:
    config = policy_config(setup.demo)
    setup.shopify("MUG-STONE", "west", available=33)
    await setup.job(config).run()
    assert len(setup.demo.world.shopify.writes) == 1

    # The next diffs still see the drift (the storefront moved back before they read).
    setup.shopify("MUG-STONE", "west", available=33)
    setup.clock.advance(900)
    await setup.job(config).run()
    setup.clock.advance(900)
    await setup.job(config).run()  # after a restart, too

    assert len(setup.demo.world.shopify.writes) == 1
    assert setup.shopify("MUG-STONE", "west")["available"] == 33
    mug = await _incident(setup, "MUG-STONE")
    assert mug.status == "open"
    assert mug.details["policy"]["outcome"] == "applied"  # still shown after every diff
    assert await setup.policy_audit(mug.id) == ["policy.applied"]
    assert len(await setup.ledger.list_resyncs()) == 1


async def test_a_drift_that_returns_after_its_auto_resync_is_escalated_not_fought(
    setup: Setup,
) -> None:
    config = policy_config(setup.demo)
    setup.shopify("MUG-STONE", "west", available=33)
    await setup.job(config).run()
    setup.clock.advance(900)
    await setup.job(config).run()
    mug = await _incident(setup, "MUG-STONE")
    assert mug.status == "resolved"

    setup.shopify("MUG-STONE", "west", available=33)  # something pushes it back
    setup.clock.advance(900)
    await setup.job(config).run()

    mug = await _incident(setup, "MUG-STONE")
    assert (mug.status, mug.reopened_count) == ("open", 1)
    assert len(setup.demo.world.shopify.writes) == 1
    assert mug.details["policy"]["outcome"] == "escalated"
    assert mug.details["policy"]["reasons"] == [
        "it drifted again after Driftwatch auto-resynced it (not retried)"
    ]
    assert await setup.policy_audit(mug.id) == ["policy.applied", "policy.escalated"]


async def test_a_write_interrupted_by_a_restart_is_escalated_not_written_blindly(
    setup: Setup,
) -> None:
    config = policy_config(setup.demo, auto_resync=False)  # the "old process": no policy
    setup.shopify("MUG-STONE", "west", available=33)
    await setup.job(config).run()
    mug = await _incident(setup, "MUG-STONE")
    # The old process had decided and created its resync, then died before writing.
    await setup.ledger.create_resync(
        "dw-interrupted", "shopify", "MUG-STONE", "west", "available", 30, SYSTEM_ACTOR,
        setup.clock.now(), incident_id=mug.id, before=33,
    )  # fmt: skip

    setup.clock.advance(900)
    await setup.job(policy_config(setup.demo)).run()

    assert setup.demo.world.shopify.writes == []
    mug = await _incident(setup, "MUG-STONE")
    policy = mug.details["policy"]
    assert policy["outcome"] == "escalated"
    assert policy["oncall"] == ONCALL
    assert "did not finish" in policy["reasons"][0]


async def test_a_write_that_landed_before_a_crash_is_not_applied_twice(setup: Setup) -> None:
    setup.shopify("MUG-STONE", "west", available=33)
    await setup.job(policy_config(setup.demo, auto_resync=False)).run()
    mug = await _incident(setup, "MUG-STONE")
    # The old process wrote (through the one resync service) and died before its audit.
    systems = build_systems(
        setup.demo.config, client=setup.client, clock=setup.clock, environ=setup.demo.environ
    )
    service = ResyncService(
        systems, rules_from_config(setup.demo.config), setup.ledger, setup.clock
    )
    done = await service.resync(
        ResyncRequest("MUG-STONE", "west", "shopify", SYSTEM_ACTOR, incident_id=mug.id)
    )
    assert done.status == "applied"
    setup.shopify("MUG-STONE", "west", available=34)  # and a drift is seen again

    setup.clock.advance(900)
    await setup.job(policy_config(setup.demo)).run()

    assert len(setup.demo.world.shopify.writes) == 1
    mug = await _incident(setup, "MUG-STONE")
    assert mug.details["policy"]["outcome"] == "applied"
    assert await setup.policy_audit(mug.id) == ["policy.applied"]


async def test_a_failed_auto_resync_is_escalated_and_not_retried(setup: Setup) -> None:
    config = policy_config(setup.demo)
    setup.shopify("MUG-STONE", "west", available=33)

    async def shopify_goes_down(result: DiffResult) -> None:
        setup.demo.world.shopify.down = True

    await setup.job(config, shopify_goes_down).run()
    setup.demo.world.shopify.down = False
    mug = await _incident(setup, "MUG-STONE")
    policy = mug.details["policy"]
    assert policy["outcome"] == "escalated"
    assert policy["reasons"][0].startswith("the auto-resync did not go through")

    setup.clock.advance(900)
    await setup.job(config).run()  # Shopify is back: still no blind retry
    assert setup.demo.world.shopify.writes == []
    assert setup.shopify("MUG-STONE", "west")["available"] == 33
    assert await setup.policy_audit(mug.id) == ["policy.escalated"]


async def test_shadow_mode_writes_nothing_and_records_what_it_would_have_written(
    setup: Setup,
) -> None:
    config = policy_config(setup.demo, shadow_mode=True)
    setup.shopify("MUG-STONE", "west", available=33)

    await setup.job(config).run()
    setup.clock.advance(900)
    await setup.job(config).run()

    assert setup.demo.world.shopify.writes == []
    assert setup.shopify("MUG-STONE", "west")["available"] == 33
    mug = await _incident(setup, "MUG-STONE")
    policy = mug.details["policy"]
    assert (policy["outcome"], policy["before"], policy["target"]) == ("shadow", 33, 30)
    [row] = await setup.ledger.list_resyncs()
    assert (row.status, row.target, row.incident_id) == ("skipped", 30, mug.id)
    assert await setup.policy_audit(mug.id) == ["policy.shadow"]


async def test_a_hero_sku_is_escalated_and_never_written(setup: Setup) -> None:
    config = policy_config(setup.demo, auto_resync_max_units=50)

    await setup.job(config).run()
    setup.clock.advance(900)
    await setup.job(config).run()

    assert setup.demo.world.shopify.writes == []
    tee = await _incident(setup, "TEE-BLK-M")
    assert tee.details["policy"] == {
        "outcome": "escalated",
        "system": "shopify",
        "state": "available",
        "reasons": ["hero SKU"],
        "oncall": ONCALL,
        "gap": 12,  # the gap it was decided on
    }
    assert await setup.policy_audit(tee.id) == ["policy.escalated"]


async def test_muted_and_acknowledged_incidents_are_left_to_people(setup: Setup) -> None:
    setup.shopify("MUG-STONE", "west", available=33)
    await setup.job(policy_config(setup.demo, oncall=None, auto_resync=False)).run()
    mug = await _incident(setup, "MUG-STONE")
    tee = await _incident(setup, "TEE-BLK-M")
    now = setup.clock.now()
    await setup.ledger.snooze(mug.id, now + timedelta(hours=4), "U0OPS001", now)
    await setup.ledger.acknowledge(tee.id, "U0OPS001", now)

    setup.clock.advance(900)
    second = await setup.job(policy_config(setup.demo)).run()

    assert [c.sku for c in second.incidents.muted] == ["MUG-STONE"]
    assert setup.demo.world.shopify.writes == []
    assert await setup.policy_audit(mug.id) == []
    assert await setup.policy_audit(tee.id) == []
    assert "policy" not in (await _incident(setup, "TEE-BLK-M")).details


# -- a drift that comes back after being fixed is a new occurrence (issue 14) --------------


async def test_a_drift_a_person_fixed_that_comes_back_is_auto_resynced_for_real(
    setup: Setup,
) -> None:
    setup.shopify("MUG-STONE", "west", available=33)  # WMS: 30 pickable + 3 allocated
    await setup.job(policy_config(setup.demo, auto_resync=False)).run()
    mug = await _incident(setup, "MUG-STONE")
    # A person resyncs it from the alert: 33 -> 30.
    systems = build_systems(
        setup.demo.config, client=setup.client, clock=setup.clock, environ=setup.demo.environ
    )
    person = ResyncService(systems, rules_from_config(setup.demo.config), setup.ledger, setup.clock)
    done = await person.resync(
        ResyncRequest("MUG-STONE", "west", "shopify", "U0OPS001", incident_id=mug.id)
    )
    assert done.status == "applied"
    config = policy_config(setup.demo)
    setup.clock.advance(900)
    await setup.job(config).run()
    assert (await _incident(setup, "MUG-STONE")).status == "resolved"

    # Hours later the storefront is pushed back to 33: the same 33 -> 30 drift reopens
    # the incident, and this time the policy resyncs it.
    setup.shopify("MUG-STONE", "west", available=33)
    setup.clock.advance(3 * 3600)
    await setup.job(config).run()

    mug = await _incident(setup, "MUG-STONE")
    assert (mug.status, mug.reopened_count) == ("open", 1)
    assert setup.shopify("MUG-STONE", "west")["available"] == 30
    writes = setup.demo.world.shopify.writes
    assert [(w.before, w.after) for w in writes] == [(33, 30), (33, 30)]
    assert len({w.idempotency_key for w in writes}) == 2
    assert mug.details["policy"]["outcome"] == "applied"
    assert (mug.details["policy"]["before"], mug.details["policy"]["after"]) == (33, 30)


async def test_an_auto_resynced_drift_that_returns_a_day_later_is_resynced_again(
    setup: Setup,
) -> None:
    config = policy_config(setup.demo)
    setup.shopify("MUG-STONE", "west", available=33)
    await setup.job(config).run()
    setup.clock.advance(900)
    await setup.job(config).run()
    first = await _incident(setup, "MUG-STONE")
    assert first.status == "resolved"

    # Past the reopen window (24 h) the same drift is a new incident and a new decision.
    setup.shopify("MUG-STONE", "west", available=33)
    setup.clock.advance(25 * 3600)
    await setup.job(config).run()

    incidents = [i for i in await setup.ledger.list_incidents(limit=100) if i.sku == "MUG-STONE"]
    assert len(incidents) == 2
    second = next(i for i in incidents if i.id != first.id)
    assert setup.shopify("MUG-STONE", "west")["available"] == 30
    writes = setup.demo.world.shopify.writes
    assert [(w.before, w.after) for w in writes] == [(33, 30), (33, 30)]
    assert len({w.idempotency_key for w in writes}) == 2
    assert second.details["policy"]["outcome"] == "applied"
    resyncs = await setup.ledger.list_resyncs()
    assert {(r.incident_id, r.status) for r in resyncs} == {
        (first.id, "applied"),
        (second.id, "applied"),
    }
