"""Cases where this suite first found a guarantee broken (gaps A-D in
docs/RELIABILITY.md), kept as regressions now that the product holds them:

A. an incident saved by a process that crashed before queueing its alert is announced
   by the next diff (monitors/pipeline/notify.py);
B. unsigned or malformed Slack bodies are 401/400, never 500 (bot/slack/app.py checks
   the signature on the raw body before bolt parses it);
C. any Shopify answer is levels or a connector error, never a KeyError
   (connectors/shopify/connector.py);
D. every one of 200 concurrent slash commands is acked within Slack's 3 s (audit
   entries are group-committed, bot/slack/middleware/audit.py): test_rel_load.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_testing import Bot, slack_headers
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text

from bot.cli.demo import demo_world
from bot.slack.outbox import OutboxWorker
from connectors import ManualClock
from connectors.errors import ConnectorError
from connectors.http import RetryPolicy
from connectors.levels import LevelWrite
from connectors.shopify import ShopifyConnector
from ledger import Ledger
from ledger.engine import create_engine
from monitors.jobs import DriftDiffJob
from monitors.wiring import build_systems, rules_from_config


async def test_a_crash_between_the_incident_and_its_alert_still_announces_it(
    tmp_path: Path,
) -> None:
    """Guarantees 3 and 9 (gap A). The incident is committed (dedupe stage) apart from
    its alert (notify stage); after a crash between the two, the next diff queues it."""
    url = f"sqlite:///{tmp_path / 'gap.db'}"
    clock = ManualClock()
    async with demo_world() as demo, Ledger.from_url(url) as ledger, httpx.AsyncClient() as http:
        await ledger.upgrade()
        systems = build_systems(demo.config, client=http, clock=clock, environ=demo.environ)

        def job() -> DriftDiffJob:  # a fresh process's job
            return DriftDiffJob(
                systems,
                rules_from_config(demo.config),
                ledger,
                clock,
                channel=demo.config.slack.alerts_channel,
            )

        engine = create_engine(url)
        try:
            async with engine.begin() as conn:  # the process dies as it queues the alert
                await conn.execute(
                    text(
                        "CREATE TRIGGER crash_at_enqueue BEFORE INSERT ON outbox "
                        "BEGIN SELECT RAISE(ABORT, 'killed'); END"
                    )
                )
            with pytest.raises(Exception, match="killed"):
                await job().run()
            async with engine.begin() as conn:
                await conn.execute(text("DROP TRIGGER crash_at_enqueue"))
        finally:
            await engine.dispose()
        clock.advance(900)
        await job().run()  # the restarted process's next diff
        slack = AsyncWebClient(token=demo.world.slack_token, base_url=demo.world.slack_api_url)
        await OutboxWorker(ledger, slack, clock).drain()
        assert len(await ledger.list_incidents()) == 1
        assert len(demo.world.slack.messages(demo.world.alerts_channel)) == 1, (
            "the incident was recorded but its alert was never queued"
        )


MALFORMED = [
    pytest.param("{not json", "application/x-www-form-urlencoded", id="unsigned-json-looking"),
    pytest.param("payload=%7Bnot", "application/x-www-form-urlencoded", id="unsigned-payload"),
    pytest.param("[1,2]", "application/json", id="unsigned-json-list"),
]


@pytest.mark.parametrize(("body", "content_type"), MALFORMED)
async def test_unsigned_malformed_slack_bodies_are_401_or_400(
    bot: Bot, body: str, content_type: str
) -> None:
    """Guarantee 4 (gap B). bolt parses a body before verifying its signature; the
    handler now verifies the raw body first."""
    headers = {**slack_headers(body, secret="forged"), "Content-Type": content_type}
    response = await bot.post_raw(body, headers)
    assert response.status_code in (400, 401), response.status_code


async def test_a_non_numeric_slack_timestamp_is_401(bot: Bot) -> None:
    body = bot.click_body(await bot.incident())
    headers = {**slack_headers(body), "X-Slack-Request-Timestamp": "yesterday"}
    response = await bot.post_raw(body, headers)
    assert response.status_code == 401, response.status_code


@pytest.mark.parametrize("payload", ["{not json", "[1, 2]", "42", '"text"'])
async def test_signed_malformed_payloads_are_400(bot: Bot, payload: str) -> None:
    body = urlencode({"payload": payload})
    response = await bot.post(body)
    assert response.status_code == 400, response.status_code


class _Mapping:
    def normalize_sku(self, raw: str) -> str:
        return raw.strip().upper()

    def location_key(self, system: str, system_location_id: str) -> str | None:
        return {"gid://shopify/Location/1": "east"}.get(system_location_id)

    def location_id(self, system: str, location_key: str) -> str | None:
        return "gid://shopify/Location/1"

    def pack_size(self, system: str, sku: str) -> int:
        return 1


START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


SHOPIFY_ANSWERS = st.one_of(
    JSON,
    st.fixed_dictionaries({"data": JSON}),
    st.fixed_dictionaries({"errors": JSON}),
    st.fixed_dictionaries({"data": st.fixed_dictionaries({"inventoryItems": JSON})}),
    st.fixed_dictionaries({"data": st.fixed_dictionaries({"locations": JSON})}),
    st.fixed_dictionaries({"data": st.fixed_dictionaries({"inventorySetQuantities": JSON})}),
)


@settings(max_examples=200, deadline=None, database=None)
@given(answer=SHOPIFY_ANSWERS, status=st.sampled_from([200, 200, 200, 400, 404, 422]))
async def test_any_shopify_answer_is_levels_or_a_connector_error(answer: Any, status: int) -> None:
    """Guarantee 6 (gap C). A GraphQL answer lacking the field asked for (e.g.
    ``{"data": {}}``) is a ResponseError, not a KeyError."""
    body = json.dumps(answer).encode()

    def shopify(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(shopify)) as client:
        connector = ShopifyConnector(
            client,
            name="shopify",
            shop_url="https://example.myshopify.com",
            token="shpat_test",
            mapping=_Mapping(),
            clock=ManualClock(START),
            policy=RetryPolicy(attempts=2),
            use_bulk=False,
        )
        try:
            levels = await connector.read_levels(["TEE-BLK-M"])
        except ConnectorError as exc:
            levels, refusal = [], str(exc)
        else:
            refusal = "none"
        assert refusal
        assert all(lv.system == "shopify" for lv in levels)
        write = LevelWrite(
            sku="TEE-BLK-M",
            location="east",
            state="available",
            quantity=5,
            expected=4,
            key="dw-test",
            reason="correction",
            reference=None,
        )
        try:
            statuses = [o.status for o in await connector.write_levels([write])]
        except ConnectorError as exc:
            statuses, refusal = ["refused"], str(exc)
        assert refusal
        assert statuses in (["applied"], ["stale"], ["failed"], ["refused"])
