"""``/adjust`` over HTTP: signed requests to the Service's /slack/events with the demo
world behind; the modal, its field errors, the write to the WMS and then Shopify."""

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

from bot.cli.demo import DemoWorld, demo_world
from bot.service import Service
from connectors import ManualClock
from ledger import Ledger

SECRET = "test-signing-secret"
WRITER = "U0OPS001"
GUEST = "U0GUEST01"


@dataclass
class Bot:
    demo: DemoWorld
    ledger: Ledger
    service: Service
    http: httpx.AsyncClient

    @property
    def slack(self) -> Any:
        return self.demo.world.slack

    @property
    def channel(self) -> str:
        return self.demo.world.alerts_channel

    def pickable(self) -> int:
        return self.demo.world.wms.level("TEE-BLK-M", self.demo.world.locations["east"][1]).pickable

    def shopify_available(self) -> int:
        gid = self.demo.world.locations["east"][0]
        return self.demo.world.shopify.quantities("TEE-BLK-M", gid)["available"]

    async def post(self, payload: dict[str, Any] | None = None, **form: str) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)} if payload is not None else form)
        ts = str(int(time.time()))
        signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
        assert signature is not None
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": signature,
        }
        return await self.http.post(
            f"{self.service.url}/slack/events", content=body, headers=headers
        )

    async def adjust_command(self, text: str = "", user: str = WRITER) -> httpx.Response:
        response = await self.post(
            command="/adjust",
            text=text,
            user_id=user,
            team_id="T0SANDBOX",
            channel_id=self.channel,
            api_app_id="A0DRIFT",
            trigger_id=self.slack.new_trigger_id(user),
            response_url=self.slack.new_response_url(self.channel, user),
        )
        await self.service.idle()
        return response

    async def open_modal(self, text: str = "TEE-BLK-M east") -> Any:
        await self.adjust_command(text)
        [view] = [v for v in self.slack.views.values() if v.view["callback_id"] == "adjust"]
        return view

    def submission(
        self,
        view: Any,
        *,
        user: str = WRITER,
        sku: str = "TEE-BLK-M",
        location: str = "east",
        delta: str | None = None,
        count: str | None = None,
        reason: str = "cycle_count",
        note: str | None = "Counted the bin",
    ) -> dict[str, Any]:
        def text(value: str | None) -> dict[str, Any]:
            return {"type": "plain_text_input", "value": value}

        def select(value: str) -> dict[str, Any]:
            return {"type": "static_select", "selected_option": {"value": value}}

        return {
            "type": "view_submission",
            "user": {"id": user, "team_id": "T0SANDBOX"},
            "team": {"id": "T0SANDBOX"},
            "api_app_id": "A0DRIFT",
            "view": {
                "id": view.id,
                "type": "modal",
                "callback_id": "adjust",
                "private_metadata": view.view["private_metadata"],
                "state": {
                    "values": {
                        "sku": {"sku": text(sku)},
                        "location": {"location": select(location)},
                        "delta": {"delta": text(delta)},
                        "count": {"count": text(count)},
                        "reason": {"reason": select(reason)},
                        "note": {"note": text(note)},
                    }
                },
            },
        }

    def private(self, user: str) -> list[str]:
        return [e.text for e in self.slack.ephemerals if e.user == user]

    def alert_thread(self) -> list[str]:
        [alert] = self.slack.messages(self.channel)
        return [m.text for m in self.slack.thread(self.channel, alert.ts)[1:]]


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with (
        demo_world() as demo,
        Ledger.from_url(f"sqlite:///{tmp_path / 'adjust.db'}") as ledger,
        httpx.AsyncClient(timeout=30) as http,
    ):
        await ledger.upgrade()
        environ = {**demo.environ, "DEMO_SLACK_SIGNING_SECRET": SECRET}
        service = Service(demo.config, environ, ledger, clock=ManualClock())
        await service.start(host="127.0.0.1", port=0)
        try:
            async with asyncio.timeout(30):
                await demo.world.slack.wait_for_call(
                    lambda c: c.method == "files.completeUploadExternal"
                )
            await service.idle()
            yield Bot(demo, ledger, service, http)
        finally:
            await service.stop()


async def test_adjust_opens_a_modal_with_the_locations_and_reasons(bot: Bot) -> None:
    view = await bot.open_modal()

    blocks = json.dumps(view.view["blocks"])
    for label in ("Cycle count", "Return restock", "Shrinkage", "Promotion", "Change (+/- units)"):
        assert label in blocks
    assert '"initial_value": "TEE-BLK-M"' in blocks
    [location] = [b for b in view.view["blocks"] if b["block_id"] == "location"]
    assert location["element"]["initial_option"]["value"] == "east"
    assert [o["value"] for o in location["element"]["options"]] == sorted(bot.demo.config.locations)


async def test_a_new_count_changes_the_wms_then_shopify_and_is_in_the_ledger(bot: Bot) -> None:
    assert (bot.pickable(), bot.shopify_available()) == (28, 40)
    view = await bot.open_modal()

    response = await bot.post(bot.submission(view, count="25"))
    await bot.service.idle()

    assert response.status_code == 200
    assert response.text == ""  # the modal closes
    assert bot.pickable() == 25
    assert bot.shopify_available() == 25
    [shop_write] = bot.demo.world.shopify.writes
    assert shop_write.reason == "cycle_count_available"
    [row] = await bot.ledger.list_adjustments(sku="TEE-BLK-M")
    assert (row.operator, row.reason_code, row.system, row.new_quantity, row.note) == (
        WRITER,
        "cycle_count",
        "wms",
        25,
        "Counted the bin",
    )
    [told] = bot.private(WRITER)
    assert told.startswith("Adjusted TEE-BLK-M at east in wms (source of truth): available 28 → 25")
    assert "40 → 25" in told
    assert any(
        r.startswith("Adjusted TEE-BLK-M at east")
        and "Adjusted by <@U0OPS001>, noting:\n> Counted the bin" in r  # quoted, not parsed
        for r in bot.alert_thread()
    ), bot.alert_thread()
    actions = {(a.actor, a.action) for a in await bot.ledger.list_audit()}
    assert {(WRITER, "adjustment.recorded"), (WRITER, "adjustment.applied")} <= actions


async def test_a_bad_quantity_is_an_error_on_the_field(bot: Bot) -> None:
    view = await bot.open_modal()

    bad = await bot.post(bot.submission(view, delta="three"))
    both = await bot.post(bot.submission(view, delta="-3", count="25"))
    await bot.service.idle()

    assert bad.json()["response_action"] == "errors"
    assert set(bad.json()["errors"]) == {"delta"}
    assert "whole number" in bad.json()["errors"]["delta"]
    assert set(both.json()["errors"]) == {"count"}
    assert await bot.ledger.list_adjustments() == []
    assert bot.demo.world.wms.writes == []


async def test_an_unknown_sku_is_an_error_on_the_field_with_close_matches(bot: Bot) -> None:
    view = await bot.open_modal()

    response = await bot.post(bot.submission(view, sku="TEE-BLK-X", count="25"))
    await bot.service.idle()

    errors = response.json()["errors"]
    assert set(errors) == {"sku"}
    assert errors["sku"].startswith("No SKU TEE-BLK-X. Did you mean TEE-BLK-M")
    assert await bot.ledger.list_adjustments() == []


async def test_a_non_writer_is_refused(bot: Bot) -> None:
    await bot.adjust_command("TEE-BLK-M east", user=GUEST)
    assert [v for v in bot.slack.views.values() if v.view["callback_id"] == "adjust"] == []
    [told] = bot.private(GUEST)
    assert told.startswith("Sorry <@U0GUEST01>, only Driftwatch writers can adjust inventory.")

    view = await bot.open_modal()  # a writer's modal, submitted by someone else
    await bot.post(bot.submission(view, user=GUEST, count="25"))
    await bot.service.idle()

    assert await bot.ledger.list_adjustments() == []
    assert bot.pickable() == 28
    refusals = [a.actor for a in await bot.ledger.list_audit() if a.action == "slack.refused"]
    assert refusals == [GUEST, GUEST]


async def test_a_double_submit_records_and_writes_once(bot: Bot) -> None:
    view = await bot.open_modal()
    submission = bot.submission(view, delta="-3", reason="damaged")

    responses = await asyncio.gather(bot.post(submission), bot.post(submission))
    await bot.service.idle()
    again = await bot.post(submission)
    await bot.service.idle()

    assert [r.status_code for r in (*responses, again)] == [200, 200, 200]
    assert len(await bot.ledger.list_adjustments()) == 1
    assert len(bot.demo.world.wms.writes) == 1
    assert (bot.pickable(), bot.shopify_available()) == (25, 25)
    told = bot.private(WRITER)
    assert sum(t.startswith("Adjusted TEE-BLK-M") for t in told) == 1
    assert sum("already recorded" in t for t in told) == 2
