"""The Slack face over HTTP: signed requests to the Service's /slack/events, with the
demo world (fake Shopify, WMS and Slack) behind; assertions on what people see."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier
from sql_testing import sent_statements, sku_lists

from bot.cli.demo import DemoWorld, demo_world
from bot.service import Service
from connectors import ManualClock
from ledger import Incident, Ledger, LevelObservation
from sandbox.slack import Call

SECRET = "test-signing-secret"
WRITER = "U0OPS001"
ONCALL = "U0ONCALL1"
GUEST = "U0GUEST01"


@dataclass
class Bot:
    demo: DemoWorld
    ledger: Ledger
    service: Service
    clock: ManualClock
    http: httpx.AsyncClient

    @property
    def slack(self) -> Any:
        return self.demo.world.slack

    @property
    def channel(self) -> str:
        return self.demo.world.alerts_channel

    def shopify(self, sku: str, location: str) -> dict[str, int]:
        gid = self.demo.world.locations[location][0]
        return dict(self.demo.world.shopify.quantities(sku, gid))

    async def post(self, body: str, *, secret: str = SECRET) -> httpx.Response:
        ts = str(int(time.time()))
        signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        }
        return await self.http.post(
            f"{self.service.url}/slack/events", content=body, headers=headers
        )

    async def click(
        self, action_id: str, value: str, user: str = WRITER, *, select: bool = False
    ) -> httpx.Response:
        incident = await self.incident()
        action: dict[str, Any] = {"action_id": action_id, "block_id": f"incident:{incident.id}"}
        if select:
            action |= {"type": "static_select", "selected_option": {"value": value}}
        else:
            action |= {"type": "button", "value": value}
        payload = {
            "type": "block_actions",
            "user": {"id": user, "team_id": "T0SANDBOX"},
            "team": {"id": "T0SANDBOX"},
            "api_app_id": "A0DRIFT",
            "container": {"type": "message", "channel_id": self.channel},
            "channel": {"id": self.channel, "name": "ops-inventory"},
            "message": {"ts": incident.slack_ts},
            "trigger_id": self.slack.new_trigger_id(user),
            "response_url": self.slack.new_response_url(self.channel, user, incident.slack_ts),
            "actions": [action],
        }
        return await self.post(urlencode({"payload": json.dumps(payload)}))

    async def command(self, command: str, text: str, user: str = WRITER) -> httpx.Response:
        form = {
            "command": command,
            "text": text,
            "user_id": user,
            "team_id": "T0SANDBOX",
            "channel_id": self.channel,
            "api_app_id": "A0DRIFT",
            "trigger_id": self.slack.new_trigger_id(user),
            "response_url": self.slack.new_response_url(self.channel, user),
        }
        return await self.post(urlencode(form))

    async def incident(self) -> Incident:
        [incident] = await self.ledger.list_incidents(sku="TEE-BLK-M")
        return incident

    def replies(self) -> list[str]:
        [alert] = self.slack.messages(self.channel)
        return [m.text for m in self.slack.thread(self.channel, alert.ts)[1:]]

    def alert_text(self) -> str:
        [alert] = self.slack.messages(self.channel)
        return json.dumps(alert.blocks, ensure_ascii=False)

    def private(self, user: str) -> list[str]:
        """What ``user`` was told privately (response_url answers and ephemerals)."""
        return [e.text for e in self.slack.ephemerals if e.user == user]

    def private_blocks(self, user: str) -> str:
        return json.dumps(
            [e.blocks for e in self.slack.ephemerals if e.user == user], ensure_ascii=False
        )


async def _wait(bot: Bot, predicate: Any) -> Call:
    async with asyncio.timeout(30):
        call: Call = await bot.slack.wait_for_call(predicate)
        return call


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'slack.db'}") as ledger,
        httpx.AsyncClient(timeout=30) as http,
    ):
        await ledger.upgrade()
        environ = {**demo.environ, "DEMO_SLACK_SIGNING_SECRET": SECRET}
        service = Service(demo.config, environ, ledger, clock=clock)
        await service.start(host="127.0.0.1", port=0)
        try:
            await _wait(
                Bot(demo, ledger, service, clock, http),
                lambda c: c.method == "files.completeUploadExternal",
            )
            await service.idle()
            yield Bot(demo, ledger, service, clock, http)
        finally:
            await service.stop()


async def test_the_alert_gets_its_chart_in_the_thread(bot: Bot) -> None:
    incident = await bot.incident()
    [png] = [f for f in bot.slack.files.values() if f.shared_to]
    assert png.mimetype == "image/png"
    assert png.shared_to == [(bot.channel, incident.slack_ts)]
    assert png.filename == f"incident-{incident.id}-TEE-BLK-M.png"


async def test_resync_over_http_writes_the_truth_once_and_updates_the_alert(bot: Bot) -> None:
    incident = await bot.incident()
    assert bot.shopify("TEE-BLK-M", "east")["available"] == 40

    response = await bot.click("resync", str(incident.id))
    assert response.status_code == 200
    await bot.service.idle()

    assert bot.shopify("TEE-BLK-M", "east")["available"] == 28
    assert len(bot.demo.world.shopify.writes) == 1
    [row] = await bot.ledger.list_resyncs()
    assert (row.status, row.before, row.after, row.requested_by, row.incident_id) == (
        "applied",
        40,
        28,
        WRITER,
        incident.id,
    )
    # the SKU is read again at once: every system agrees, so the alert is resolved
    after = await bot.incident()
    assert (after.status, after.resolved_by) == ("resolved", "driftwatch")
    assert "*Final counts*" in bot.alert_text()
    assert '"action_id": "resync"' not in bot.alert_text()
    assert bot.slack.calls("chat.update")
    assert (
        "Resynced shopify available for TEE-BLK-M at east: 40 → 28 — requested by <@U0OPS001>\n"
        "Recovered: every system agrees with the source of truth again "
        "(shopify 30, wms 30 (source of truth))."
    ) in bot.replies()
    actions = [(a.actor, a.action) for a in await bot.ledger.list_audit()]
    assert (WRITER, "slack.action") in actions
    assert (WRITER, "resync.applied") in actions


async def test_a_bad_signature_is_refused_with_401_and_changes_nothing(bot: Bot) -> None:
    incident = await bot.incident()
    audit_before = len(await bot.ledger.list_audit())
    payload = {
        "type": "block_actions",
        "user": {"id": WRITER},
        "channel": {"id": bot.channel},
        "actions": [{"action_id": "resync", "value": str(incident.id), "type": "button"}],
    }
    body = urlencode({"payload": json.dumps(payload)})

    response = await bot.post(body, secret="not-the-secret")
    await bot.service.idle()

    assert response.status_code == 401
    assert bot.shopify("TEE-BLK-M", "east")["available"] == 40
    assert await bot.ledger.list_resyncs() == []
    assert len(await bot.ledger.list_audit()) == audit_before


async def test_a_non_writer_clicking_resync_is_refused_politely_and_audited(bot: Bot) -> None:
    incident = await bot.incident()

    response = await bot.click("resync", str(incident.id), user=GUEST)
    await bot.service.idle()

    assert response.status_code == 200
    [told] = bot.private(GUEST)
    assert told.startswith("Sorry <@U0GUEST01>, only Driftwatch writers can resync.")
    assert bot.demo.world.shopify.writes == []
    assert await bot.ledger.list_resyncs() == []
    refusals = [a for a in await bot.ledger.list_audit() if a.action == "slack.refused"]
    assert [(a.actor, a.subject) for a in refusals] == [(GUEST, f"incident:{incident.id}")]


async def test_acknowledge_updates_the_alert_and_replies_in_the_thread(bot: Bot) -> None:
    incident = await bot.incident()

    await bot.click("acknowledge", str(incident.id), user=ONCALL)
    await bot.service.idle()

    assert (await bot.incident()).status == "acknowledged"
    assert "acknowledged by <@U0ONCALL1>" in bot.alert_text()
    assert "Acknowledged by <@U0ONCALL1>" in bot.replies()


async def test_resolve_by_a_writer_closes_the_incident_and_the_buttons(bot: Bot) -> None:
    incident = await bot.incident()

    await bot.click("resolve", str(incident.id))
    await bot.service.idle()

    after = await bot.incident()
    assert (after.status, after.resolved_by) == ("resolved", WRITER)
    assert "Resolved: Oversell risk" in bot.alert_text()
    assert '"action_id": "resync"' not in bot.alert_text()
    assert "Resolved by <@U0OPS001>" in bot.replies()


async def test_resolve_by_a_non_writer_is_refused(bot: Bot) -> None:
    incident = await bot.incident()

    await bot.click("resolve", str(incident.id), user=GUEST)
    await bot.service.idle()

    assert (await bot.incident()).status == "open"
    assert bot.private(GUEST)[0].startswith("Sorry <@U0GUEST01>, only Driftwatch writers")


async def test_snooze_sets_the_snooze_from_the_menu(bot: Bot) -> None:
    incident = await bot.incident()
    clicked = bot.clock.now()  # the outbox's pace may move the clock on after the click

    await bot.click("snooze", f"{incident.id}:4h", user=ONCALL, select=True)
    await bot.service.idle()

    after = await bot.incident()
    assert after.snoozed_until is not None
    assert (after.snoozed_until - clicked).total_seconds() == 4 * 3600
    assert any(r.startswith("Snoozed for 4 hours by <@U0ONCALL1>") for r in bot.replies())


async def test_root_cause_opens_a_modal_and_its_submission_is_saved(bot: Bot) -> None:
    incident = await bot.incident()

    await bot.click("root_cause", str(incident.id), user=ONCALL)
    await bot.service.idle()
    [view] = bot.slack.views.values()
    assert view.view["callback_id"] == "root_cause"
    options = json.dumps(view.view["blocks"])
    assert "Race with in-flight orders" in options
    assert "Rate-limit drops" in options

    submission = {
        "type": "view_submission",
        "user": {"id": ONCALL, "team_id": "T0SANDBOX"},
        "team": {"id": "T0SANDBOX"},
        "api_app_id": "A0DRIFT",
        "view": {
            "id": view.id,
            "type": "modal",
            "callback_id": "root_cause",
            "private_metadata": view.view["private_metadata"],
            "state": {
                "values": {
                    "cause": {"cause": {"selected_option": {"value": "webhook_gap"}}},
                    "remediation": {"remediation": {"value": "Replayed the webhooks"}},
                    "follow_up": {"follow_up": {"value": None}},
                }
            },
        },
    }
    response = await bot.post(urlencode({"payload": json.dumps(submission)}))
    await bot.service.idle()

    assert response.status_code == 200
    after = await bot.incident()
    assert (after.root_cause, after.remediation, after.follow_up) == (
        "Webhook gap",
        "Replayed the webhooks",
        None,
    )
    assert "root cause: Webhook gap" in bot.alert_text()
    assert any(r.startswith("Root cause logged by <@U0ONCALL1>") for r in bot.replies())


async def test_drift_sku_shows_each_system_the_truth_and_a_share_button(bot: Bot) -> None:
    response = await bot.command("/drift", "tee-blk-m")
    await bot.service.idle()

    assert response.status_code == 200
    [text] = bot.private(WRITER)
    assert text == "TEE-BLK-M: shopify is off by +12 at east"
    blocks = bot.private_blocks(WRITER)
    assert "shopify: *42*" in blocks
    assert "wms: *30* _(source of truth)_" in blocks
    assert "Open incidents" in blocks
    assert '"action_id": "share_drift"' in blocks


async def test_drift_for_an_unknown_sku_suggests_close_ones(bot: Bot) -> None:
    await bot.command("/drift", "TEE-BLK-X")
    await bot.service.idle()

    [text] = bot.private(WRITER)
    assert text.startswith("No SKU `TEE-BLK-X`. Did you mean `TEE-BLK-M`")


async def test_a_storm_of_unknown_skus_reads_the_catalog_once_a_minute(bot: Bot) -> None:
    """Typos come in bursts: twenty unknown SKUs at once each get their close matches,
    from one read of every SKU the ledger knows; a minute later the list is read again,
    and a SKU seen since is offered then."""
    with sent_statements(bot.ledger) as sent:
        typos = [f"TEE-BLK-{chr(ord('N') + n)}" for n in range(10)]
        users = [f"U0STORM{n:02d}" for n in range(20)]
        answered = await asyncio.gather(
            *(bot.command("/drift", typos[n % 10], user=u) for n, u in enumerate(users))
        )
        assert {r.status_code for r in answered} == {200}
        await bot.service.idle()
        for n, user in enumerate(users):
            [text] = bot.private(user)
            assert text.startswith(f"No SKU `{typos[n % 10]}`. Did you mean `TEE-BLK-M`"), text
        assert len(sku_lists(sent)) == 1

        await bot.ledger.record_levels(
            [LevelObservation("wms", "TEE-BLK-Q1", "east", "available", 3, bot.clock.now(), "poll")]
        )
        await bot.command("/drift", "TEE-BLK-Q2", user="U0LATER1")
        await bot.service.idle()
        [text] = bot.private("U0LATER1")
        assert "TEE-BLK-Q1" not in text  # not offered yet
        assert len(sku_lists(sent)) == 1

        bot.clock.advance(61)
        await bot.command("/drift", "TEE-BLK-Q2", user="U0LATER2")
        await bot.service.idle()
        [text] = bot.private("U0LATER2")
        assert text.startswith("No SKU `TEE-BLK-Q2`. Did you mean `TEE-BLK-Q1`"), text
        assert len(sku_lists(sent)) == 2


async def test_drift_alone_lists_the_worst_drifts(bot: Bot) -> None:
    await bot.command("/drift", "")
    await bot.service.idle()

    assert "`TEE-BLK-M` at east: shopify off by +12" in bot.private_blocks(WRITER)


async def test_share_in_channel_posts_the_report_with_a_chart(bot: Bot) -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": ONCALL, "team_id": "T0SANDBOX"},
        "team": {"id": "T0SANDBOX"},
        "channel": {"id": bot.channel},
        "response_url": bot.slack.new_response_url(bot.channel, ONCALL),
        "actions": [{"action_id": "share_drift", "value": "TEE-BLK-M", "type": "button"}],
    }
    await bot.post(urlencode({"payload": json.dumps(payload)}))
    await bot.service.idle()

    shared = bot.slack.messages(bot.channel)[-1]
    assert shared.text == "TEE-BLK-M: shopify is off by +12 at east (shared by <@U0ONCALL1>)"
    thread = bot.slack.thread(bot.channel, shared.ts)
    assert [
        f.filename for f in bot.slack.files.values() if (bot.channel, shared.ts) in f.shared_to
    ] == ["TEE-BLK-M-7d.png"]
    assert len(thread) == 2


async def test_slash_resync_asks_to_confirm_then_resyncs(bot: Bot) -> None:
    await bot.command("/resync", "TEE-BLK-M east")
    await bot.service.idle()
    blocks = bot.private_blocks(WRITER)
    assert "*shopify* at *east* says 42" in blocks
    assert bot.demo.world.shopify.writes == []

    payload = {
        "type": "block_actions",
        "user": {"id": WRITER, "team_id": "T0SANDBOX"},
        "team": {"id": "T0SANDBOX"},
        "channel": {"id": bot.channel},
        "response_url": bot.slack.new_response_url(bot.channel, WRITER),
        "actions": [
            {"action_id": "resync_sku", "value": "TEE-BLK-M|east|shopify", "type": "button"}
        ],
    }
    await bot.post(urlencode({"payload": json.dumps(payload)}))
    await bot.service.idle()

    assert bot.shopify("TEE-BLK-M", "east")["available"] == 28
    assert "Resync of `TEE-BLK-M` at east done; see the alert." in bot.private(WRITER)
    assert any("40 → 28" in r for r in bot.replies())


async def test_incidents_synchealth_and_help(bot: Bot) -> None:
    await bot.command("/incidents", "open")
    await bot.command("/synchealth", "")
    help_response = await bot.command("/driftwatch", "help")
    adjust = await bot.command("/adjust", "")
    await bot.service.idle()

    blocks = bot.private_blocks(WRITER)
    assert "Oversell risk: TEE-BLK-M at east" in blocks
    assert "*shopify* — last good read" in blocks
    assert "*wms* — last good read" in blocks
    assert "/drift SKU" in help_response.text
    assert adjust.status_code == 200
    assert adjust.text == ""  # /adjust acks empty and opens a modal
