"""What the auto-resync policy looks like in Slack: the alert posted to the fake Slack
says what Driftwatch resynced, what shadow mode would have written, and whom a
high-risk drift was escalated to and why — mentioning the on-call group once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli.demo import DemoWorld, demo_config, demo_world
from bot.slack.outbox import OutboxWorker
from connectors import ManualClock
from ledger import Ledger
from monitors.assemble import after_diff_hooks
from monitors.config import Config, config_from_dict
from monitors.jobs import DriftDiffJob
from monitors.resync import ResyncService
from monitors.wiring import build_systems, rules_from_config
from sandbox.slack import FakeSlack
from sandbox.slack.model import Message

ONCALL = "S0ONCALL"
MENTION = f"<!subteam^{ONCALL}>"


def _texts(blocks: list[dict[str, Any]]) -> str:
    """Every text a person reads in the blocks, one per line."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            out.append(block["text"]["text"])
        for part in block.get("fields") or []:
            out.append(part["text"])
        for part in block.get("elements") or []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])
    return "\n".join(out)


@dataclass
class Setup:
    demo: DemoWorld
    ledger: Ledger
    clock: ManualClock
    client: httpx.AsyncClient
    #: a fake Slack on the test's clock, so its pace (a post a second) follows it
    slack: FakeSlack

    def config(self, oncall: str | None = ONCALL, **policy: Any) -> Config:
        raw = demo_config(self.demo.world)
        raw["slack"]["api_url"] = self.slack.api_url
        raw["policy"] = {"auto_resync": True, "auto_resync_max_units": 5, **policy}
        if oncall is not None:
            raw["slack"]["oncall_usergroup"] = oncall
        return config_from_dict(raw)

    async def diff_and_deliver(self, config: Config) -> None:
        """One diff with the policy hook, then the outbox delivered to the fake Slack."""
        systems = build_systems(
            config, client=self.client, clock=self.clock, environ=self.demo.environ
        )
        rules = rules_from_config(config)
        resync = ResyncService(systems, rules, self.ledger, self.clock)
        job = DriftDiffJob(
            systems,
            rules,
            self.ledger,
            self.clock,
            channel=config.slack.alerts_channel,
            after=after_diff_hooks(config, self.ledger, resync, self.clock),
        )
        await job.run()
        slack = AsyncWebClient(token=self.slack.bot_token, base_url=self.slack.api_url)
        worker = OutboxWorker(self.ledger, slack, self.clock)
        for _ in range(10):  # Slack's pace (a message a second per channel) on our clock
            await worker.drain()
            if (await self.ledger.outbox_stats()).pending == 0:
                break
            self.clock.advance(1)
        assert (await self.ledger.outbox_stats()).pending == 0, await self.ledger.list_outbox()

    def alert(self, sku: str) -> Message:
        [message] = [
            m for m in self.slack.messages(self.demo.world.alerts_channel) if sku in m.text
        ]
        return message

    def thread(self, message: Message) -> list[Message]:
        return self.slack.thread(self.demo.world.alerts_channel, message.ts)[1:]

    def set_shopify(self, sku: str, location: str, **states: int) -> None:
        gid = self.demo.world.locations[location][0]
        self.demo.world.shopify.set_quantities(sku, gid, **states)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        FakeSlack(
            bot_token=demo.world.slack_token,
            clock=clock,
            channels={demo.world.alerts_channel: "ops-inventory"},
            usergroups={ONCALL: ["U0ONCALL1"]},
        ) as slack,
        Ledger.from_url(f"sqlite:///{tmp_path / 'alerts.db'}") as ledger,
        httpx.AsyncClient() as client,
    ):
        await ledger.upgrade()
        yield Setup(demo, ledger, clock, client, slack)


async def test_the_alert_says_driftwatch_resynced_it(setup: Setup) -> None:
    setup.set_shopify("MUG-STONE", "west", available=33)  # WMS: 30 + 3 allocated
    await setup.diff_and_deliver(setup.config())

    alert = setup.alert("MUG-STONE")
    assert "Auto-resynced by Driftwatch*: *shopify* available 33 → 30" in _texts(alert.blocks)
    [reply] = setup.thread(alert)
    assert reply.text == "Auto-resynced by Driftwatch: shopify available 33 → 30"

    setup.clock.advance(900)
    await setup.diff_and_deliver(setup.config())  # the next diff sees it fixed
    alert = setup.alert("MUG-STONE")
    assert alert.blocks[0]["text"]["text"].startswith("✅ Resolved")
    assert "Auto-resynced by Driftwatch" in _texts(alert.blocks)
    assert len(setup.demo.world.shopify.writes) == 1


async def test_in_shadow_mode_the_alert_says_what_would_have_been_written(setup: Setup) -> None:
    setup.set_shopify("MUG-STONE", "west", available=33)
    await setup.diff_and_deliver(setup.config(shadow_mode=True))

    alert = setup.alert("MUG-STONE")
    text = _texts(alert.blocks)
    assert "Shadow mode*: would have set *shopify* available 33 → 30 (nothing was written)" in text
    assert "Auto-resynced" not in text
    assert setup.demo.world.shopify.writes == []
    gid = setup.demo.world.locations["west"][0]
    assert setup.demo.world.shopify.quantities("MUG-STONE", gid)["available"] == 33


def _mentioning(setup: Setup) -> list[str]:
    """Every message sent or edited (chat.postMessage, chat.update) whose text or blocks
    name the on-call group: what its members are pinged by."""
    found = []
    for method in ("chat.postMessage", "chat.update"):
        for call in setup.slack.calls(method):
            if not call.ok:
                continue
            text = str(call.args.get("text") or "")
            blocks = json.dumps(call.args.get("blocks") or [])
            if MENTION in text or MENTION in blocks:
                found.append(f"{method}: {text}")
    return found


async def test_a_hero_drift_is_escalated_to_on_call_with_the_reasons_once(setup: Setup) -> None:
    config = setup.config()
    await setup.diff_and_deliver(config)  # TEE-BLK-M at east: a hero SKU, 12 units over

    alert = setup.alert("TEE-BLK-M")
    assert (
        "Escalated to on-call (paged in the thread)*: hero SKU; 12 units is over the "
        "auto-resync limit of 5" in _texts(alert.blocks)
    )
    assert "escalated to on-call" in alert.text
    [reply] = setup.thread(alert)
    assert reply.text.startswith(f"{MENTION} escalated, not auto-resynced: hero SKU")
    assert _mentioning(setup) == [f"chat.postMessage: {reply.text}"]  # once: the reply

    setup.clock.advance(900)
    await setup.diff_and_deliver(config)  # still drifting: no second ping
    setup.clock.advance(900)
    await setup.diff_and_deliver(config)
    alert = setup.alert("TEE-BLK-M")
    assert "Escalated to on-call" in _texts(alert.blocks)
    thread = setup.thread(alert)
    assert len(thread) == 1
    assert _mentioning(setup) == [f"chat.postMessage: {reply.text}"]
    assert setup.demo.world.shopify.writes == []


async def test_an_alert_posted_before_the_escalation_pings_on_call_once_in_its_thread(
    setup: Setup,
) -> None:
    """The alert was posted before the policy escalated: the thread reply pings on-call,
    and the edited alert says so without naming the group again (issue 13, H: the group
    was mentioned in the edited alert's text and blocks and again in the reply)."""
    await setup.diff_and_deliver(setup.config(oncall=None, auto_resync=False))
    alert = setup.alert("TEE-BLK-M")
    assert MENTION not in alert.text

    setup.clock.advance(900)
    await setup.diff_and_deliver(setup.config())  # the policy turned on, on-call set

    alert = setup.alert("TEE-BLK-M")
    [reply] = setup.thread(alert)
    assert _mentioning(setup) == [f"chat.postMessage: {reply.text}"]
    assert reply.text.startswith(f"{MENTION} escalated, not auto-resynced: hero SKU")
    assert alert.edited
    assert "Escalated to on-call (paged in the thread)*: hero SKU" in _texts(alert.blocks)
    assert MENTION not in alert.text
    assert MENTION not in json.dumps(alert.blocks)


async def test_without_an_on_call_group_the_alert_says_a_person_must_decide(
    setup: Setup,
) -> None:
    await setup.diff_and_deliver(setup.config(oncall=None))
    alert = setup.alert("TEE-BLK-M")
    assert "Escalated to a person*: hero SKU" in _texts(alert.blocks)
    assert "subteam" not in alert.text
