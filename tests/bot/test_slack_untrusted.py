"""Hostile text through the whole product (issue 13, findings F, D and I): SKUs from
Shopify and the WMS, and what people type, reach the fake Slack escaped, bounded and
inert — through the production Service, its outbox and the real bolt app over HTTP.

The fake Slack is given a large posting burst here (pacing is not what these tests are
about); its strict rules (confirm text 300, section 3000) are being added by another
change, so the limits are asserted on the blocks it received.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from slack_scopes import ROOT, methods_in_code, scopes_for
from slack_sdk.signature import SignatureVerifier

from bot.cli.demo import DemoWorld, demo_world
from bot.service import Service
from connectors import ManualClock
from ledger import Incident, Ledger

SECRET = "test-signing-secret"
WRITER = "U0OPS001"
MENTION_SKU = "<@U0CFO0042>"
LINK_SKU = "<HTTPS://EVIL.EXAMPLE/|CLICK-ME>"  # SKUs are compared upper-cased
AMP_SKU = "CAP&GOWN"
LONG_SKU = "L" * 203
HOSTILE_SKUS = (MENTION_SKU, LINK_SKU, AMP_SKU, LONG_SKU)
NOTE = "<!channel> <!here> <!subteam^S0EVIL> see <https://evil.example/|the fix> & <@U0CFO0042>"
ENTITY = re.compile(r"&(?:amp|lt|gt);")


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

    async def settle(self) -> None:
        """Wait for the work after an ack, then deliver the whole outbox."""
        await self.service.idle()
        await self.service.outbox.drain()
        await self.service.idle()

    async def post(self, payload: dict[str, Any] | None = None, **form: str) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)} if payload is not None else form)
        ts = str(int(time.time()))
        signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": str(signature),
        }
        return await self.http.post(
            f"{self.service.url}/slack/events", content=body, headers=headers
        )

    async def incident(self, sku: str) -> Incident:
        [incident] = await self.ledger.list_incidents(sku=sku)
        return incident

    def alert(self, incident: Incident) -> Any:
        [message] = [m for m in self.slack.messages(self.channel) if m.ts == incident.slack_ts]
        return message

    def replies(self, incident: Incident) -> list[str]:
        return [m.text for m in self.slack.thread(self.channel, str(incident.slack_ts))[1:]]

    def sent(self) -> list[tuple[str, str]]:
        """What Slack parses as mrkdwn in everything the bot sent or edited: each
        message's ``text`` and each mrkdwn text object (``plain_text`` is shown as
        typed, not parsed: a header may show a SKU as it is)."""
        out = []
        for method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            for call in self.slack.calls(method):
                out += [
                    (method, t) for t in _parsed(call.args.get("text"), call.args.get("blocks"))
                ]
        for post in self.slack.response_url_posts:
            body = post.body or {}
            out += [("response_url", t) for t in _parsed(body.get("text"), body.get("blocks"))]
        return out

    async def click(self, action_id: str, value: str, incident: Incident) -> None:
        payload = {
            "type": "block_actions",
            "user": {"id": WRITER, "team_id": "T0SANDBOX"},
            "team": {"id": "T0SANDBOX"},
            "api_app_id": "A0DRIFT",
            "container": {"type": "message", "channel_id": self.channel},
            "channel": {"id": self.channel, "name": "ops-inventory"},
            "message": {"ts": incident.slack_ts},
            "trigger_id": self.slack.new_trigger_id(WRITER),
            "response_url": self.slack.new_response_url(self.channel, WRITER, incident.slack_ts),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": f"incident:{incident.id}",
                    "type": "button",
                    "value": value,
                }
            ],
        }
        assert (await self.post(payload)).status_code == 200
        await self.settle()


def _seed(demo: DemoWorld, sku: str) -> None:
    """A SKU Shopify shows 12 over the WMS at east, like the demo's TEE-BLK-M."""
    world = demo.world
    gid, warehouse = world.locations["east"]
    world.shopify.add_item(sku, title="Hostile", locations=[gid])
    world.shopify.set_quantities(sku, gid, available=40, committed=2)
    world.wms.set_level(sku, warehouse, pickable=28, allocated=2, on_hand=30, damaged=0)


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    clock = ManualClock()
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'untrusted.db'}") as ledger,
        httpx.AsyncClient(timeout=30) as http,
    ):
        for sku in HOSTILE_SKUS:
            _seed(demo, sku)
        demo.world.slack.post_burst = 1000  # pacing is tested elsewhere
        await ledger.upgrade()
        environ = {**demo.environ, "DEMO_SLACK_SIGNING_SECRET": SECRET}
        service = Service(demo.config, environ, ledger, clock=clock)
        await service.start(host="127.0.0.1", port=0)
        try:
            b = Bot(demo, ledger, service, clock, http)
            await service.diff_done.wait()
            await b.settle()
            yield b
        finally:
            await service.stop()


def _mrkdwn(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" else []
        return found + [t for value in node.values() for t in _mrkdwn(value)]
    if isinstance(node, list):
        return [t for value in node for t in _mrkdwn(value)]
    return []


def _parsed(text: object, blocks: object) -> list[str]:
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return ([str(text)] if text else []) + _mrkdwn(blocks)


def _inert(sent: str) -> None:
    """No hostile control sequence, and every ``&`` an entity (in the JSON of a call)."""
    i = sent.find("<@U0CFO0042>")
    assert i < 0, sent[max(0, i - 300) : i + 100]
    assert "<@U0CFO0042>" not in sent
    assert "<HTTPS://EVIL" not in sent.upper()
    assert "<!channel>" not in sent
    assert "<!here>" not in sent
    assert "<!subteam^S0EVIL>" not in sent
    assert ENTITY.sub("", sent).count("&") == 0, sent


async def test_hostile_skus_from_shopify_and_the_wms_are_shown_escaped_never_obeyed(
    bot: Bot,
) -> None:
    for sku in HOSTILE_SKUS:
        incident = await bot.incident(sku)
        assert incident.slack_ts is not None, f"{sku[:20]}: the alert was never posted"
        alert = bot.alert(incident)
        blocks = json.dumps(alert.blocks)
        for _, sent in bot.sent():
            _inert(sent)
        if sku == MENTION_SKU:
            assert "&lt;@U0CFO0042&gt;" in alert.text  # the notification shows it as text
        if sku == LINK_SKU:
            assert "&lt;HTTPS://EVIL.EXAMPLE/|CLICK-ME&gt;" in blocks
        if sku == AMP_SKU:
            assert "CAP&amp;GOWN" in alert.text
    assert (await bot.ledger.outbox_stats()).dead == 0


async def test_a_203_character_sku_still_alerts_with_bounded_fields(bot: Bot) -> None:
    """Finding D: its Resync confirm went over Slack's 300 characters, slack_sdk refused
    it, and the incident's alert never reached the channel."""
    incident = await bot.incident(LONG_SKU)
    alert = bot.alert(incident)
    actions = next(b for b in alert.blocks if b["type"] == "actions")
    buttons = {e["action_id"]: e for e in actions["elements"]}
    confirm = buttons["resync"]["confirm"]["text"]["text"]
    assert len(confirm) <= 300
    assert "…" in confirm
    assert len(alert.blocks[0]["text"]["text"]) <= 150
    for block in alert.blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for part in block.get("fields") or []:
            assert len(part["text"]) <= 2000
    assert any(LONG_SKU in json.dumps(f) for b in alert.blocks for f in b.get("fields") or [])


async def test_resolve_asks_for_confirmation_in_red(bot: Bot) -> None:
    """Finding I: Resolve, a red destructive button, had no confirmation."""
    incident = await bot.incident("TEE-BLK-M")
    actions = next(b for b in bot.alert(incident).blocks if b["type"] == "actions")
    resolve = next(e for e in actions["elements"] if e["action_id"] == "resolve")
    assert resolve["style"] == "danger"
    assert resolve["confirm"]["style"] == "danger"
    assert resolve["confirm"]["confirm"]["text"] == "Resolve"
    assert f"#{incident.id}" in resolve["confirm"]["title"]["text"]


async def test_a_root_cause_note_is_quoted_in_the_thread_not_obeyed(bot: Bot) -> None:
    """Finding F: "Log root cause" (any channel member can open it) re-posted its text
    verbatim, mentions and links included."""
    incident = await bot.incident("TEE-BLK-M")
    await bot.click("root_cause", str(incident.id), incident)
    [view] = [v for v in bot.slack.views.values() if v.view["callback_id"] == "root_cause"]
    submission = {
        "type": "view_submission",
        "user": {"id": WRITER, "team_id": "T0SANDBOX"},
        "team": {"id": "T0SANDBOX"},
        "api_app_id": "A0DRIFT",
        "view": {
            "id": view.id,
            "type": "modal",
            "callback_id": "root_cause",
            "private_metadata": view.view["private_metadata"],
            "state": {
                "values": {
                    "cause": {"cause": {"selected_option": {"value": "other"}}},
                    "remediation": {"remediation": {"value": NOTE + "\n<!everyone> second line"}},
                    "follow_up": {"follow_up": {"value": NOTE}},
                }
            },
        },
    }
    assert (await bot.post(submission)).status_code == 200
    await bot.settle()

    [reply] = [r for r in bot.replies(incident) if r.startswith("Root cause logged")]
    assert reply.startswith(f"Root cause logged by <@{WRITER}>: *Other*\nRemediation:\n> ")
    assert "> &lt;!channel&gt; &lt;!here&gt; &lt;!subteam^S0EVIL&gt;" in reply
    assert "\n> &lt;!everyone&gt; second line" in reply
    for _, sent in bot.sent():
        _inert(sent)


async def test_an_adjust_note_is_quoted_in_the_thread_not_obeyed(bot: Bot) -> None:
    """Finding F: /adjust notes were re-posted verbatim."""
    incident = await bot.incident("TEE-BLK-M")
    form = {
        "command": "/adjust",
        "text": "TEE-BLK-M east",
        "user_id": WRITER,
        "team_id": "T0SANDBOX",
        "channel_id": bot.channel,
        "api_app_id": "A0DRIFT",
        "trigger_id": bot.slack.new_trigger_id(WRITER),
        "response_url": bot.slack.new_response_url(bot.channel, WRITER),
    }
    assert (await bot.post(**form)).status_code == 200
    await bot.settle()
    [view] = [v for v in bot.slack.views.values() if v.view["callback_id"] == "adjust"]

    def text(value: str | None) -> dict[str, Any]:
        return {"type": "plain_text_input", "value": value}

    def select(value: str) -> dict[str, Any]:
        return {"type": "static_select", "selected_option": {"value": value}}

    submission = {
        "type": "view_submission",
        "user": {"id": WRITER, "team_id": "T0SANDBOX"},
        "team": {"id": "T0SANDBOX"},
        "api_app_id": "A0DRIFT",
        "view": {
            "id": view.id,
            "type": "modal",
            "callback_id": "adjust",
            "private_metadata": view.view["private_metadata"],
            "state": {
                "values": {
                    "sku": {"sku": text("TEE-BLK-M")},
                    "location": {"location": select("east")},
                    "delta": {"delta": text("-1")},
                    "count": {"count": text(None)},
                    "reason": {"reason": select("cycle_count")},
                    "note": {"note": text(NOTE)},
                }
            },
        },
    }
    assert (await bot.post(submission)).status_code == 200
    await bot.settle()

    [reply] = [r for r in bot.replies(incident) if "Adjusted by" in r]
    assert f"Adjusted by <@{WRITER}>, noting:\n> &lt;!channel&gt; &lt;!here&gt;" in reply
    assert "&lt;https://evil.example/|the fix&gt; &amp; &lt;@U0CFO0042&gt;" in reply
    for _, sent in bot.sent():
        _inert(sent)


async def test_a_failure_shown_to_a_person_names_no_internal_address(bot: Bot) -> None:
    """Finding I: errors shown to people included the internal Slack API URL."""
    incident = await bot.incident("TEE-BLK-M")
    bot.slack.force_error("views.open", "expired_trigger_id")
    await bot.click("root_cause", str(incident.id), incident)

    told = [json.dumps(p.body) for p in bot.slack.response_url_posts]
    told += [e.text for e in bot.slack.ephemerals]
    assert any("Slack refused that (expired_trigger_id)" in t for t in told), told
    for t in told:
        assert "http" not in t
        assert bot.slack.base_url not in t


async def test_every_slack_method_the_bot_calls_is_covered_by_the_manifests_scopes(
    bot: Bot,
) -> None:
    """Issue 13, J, from the other side: what the fake Slack recorded while the bot
    alerted, charted, opened modals and answered is what the code scan finds, and the
    manifest's scopes cover it."""
    incident = await bot.incident("TEE-BLK-M")
    await bot.click("root_cause", str(incident.id), incident)
    await bot.click("share_drift", "TEE-BLK-M", incident)
    await bot.click("acknowledge", str(incident.id), incident)
    recorded = {c.method for c in bot.slack.requests if c.ok}
    assert {"chat.postMessage", "chat.update", "views.open"} <= recorded
    assert {"files.getUploadURLExternal", "files.completeUploadExternal"} <= recorded
    assert recorded - {"auth.test"} <= set(methods_in_code())
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text("utf-8"))
    assert scopes_for(recorded) <= set(manifest["oauth_config"]["scopes"]["bot"])
