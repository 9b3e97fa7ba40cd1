"""No malformed request gets a 500 (issue 13, finding G; issue 14, finding 8).

Requests to ``/slack/events`` whose body is not UTF-8, whose charset is unknown, whose
signature header is not ASCII or whose timestamp has 5,000 digits were answered 500
with a traceback; so were signed bodies nested 100,000 levels deep. Each now gets 400,
401 or 413 from the running Service, and changes nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from reliability_testing import SECRET, WRITER, Bot, slack_headers
from slack_sdk.signature import SignatureVerifier

DEEP = 100_000


def _signed(body: bytes, content_type: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(
        timestamp=stamp, body=body.decode("utf-8")
    )
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }


async def _effects(bot: Bot) -> tuple[Any, ...]:
    return (
        len(await bot.ledger.list_audit(limit=100_000)),
        len(bot.slack.requests),
        len(bot.slack.ephemerals),
        len(bot.demo.world.shopify.writes),
    )


def _unsigned(body: str) -> dict[str, str]:
    return slack_headers(body, secret="not-the-signing-secret")


@pytest.mark.parametrize(
    "case",
    ["not_utf8", "unknown_charset", "non_ascii_signature", "huge_timestamp", "deep_unsigned"],
)
async def test_unsigned_malformed_slack_requests_are_refused_not_crashed(
    bot: Bot, case: str
) -> None:
    before = await _effects(bot)
    body: bytes | str = bot.command_body("/drift", "TEE-BLK-M", WRITER)
    headers: dict[str, Any] = _unsigned(str(body))
    if case == "not_utf8":
        body = b"command=%2Fdrift&text=\xff\xfe\xfd"
    elif case == "unknown_charset":
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=no-such-charset"
    elif case == "non_ascii_signature":
        headers["X-Slack-Signature"] = "v0=\u00e9\u00e9".encode()
    elif case == "huge_timestamp":
        headers["X-Slack-Request-Timestamp"] = "9" * 5_000
    else:
        body = "payload=" + quote("[" * DEEP + "]" * DEEP)
    response = await bot.post_raw(body, headers)
    assert response.status_code in (400, 401), (case, response.status_code, response.text)
    assert "Traceback" not in response.text
    await bot.settle()
    assert await _effects(bot) == before


@pytest.mark.parametrize("form", ["payload", "encoded_key", "json"])
async def test_a_signed_body_nested_100000_levels_is_400(bot: Bot, form: str) -> None:
    before = await _effects(bot)
    deep = "[" * DEEP + "]" * DEEP  # under 1 MiB even URL-encoded
    if form in ("payload", "encoded_key"):
        # "p%61yload" is "payload" once decoded, as bolt decodes it
        key = "payload" if form == "payload" else "command=%2Fdrift&p%61yload"
        body = (key + "=" + quote(deep)).encode()
        headers = _signed(body, "application/x-www-form-urlencoded")
    else:
        body = deep.encode()
        headers = _signed(body, "application/json")
    response = await bot.post_raw(body, headers)
    assert response.status_code == 400, response.text
    await bot.settle()
    assert await _effects(bot) == before
    # and the next, ordinary request is served as usual
    ok = await bot.post(bot.command_body("/drift", "TEE-BLK-M", WRITER))
    assert ok.status_code == 200


async def test_a_signed_request_with_an_unknown_charset_is_read_as_utf8(bot: Bot) -> None:
    body = bot.command_body("/drift", "TEE-BLK-M", WRITER)
    headers = slack_headers(body)
    headers["Content-Type"] = "application/x-www-form-urlencoded; charset=no-such-charset"
    response = await bot.post_raw(body, headers)
    assert response.status_code == 200
    await bot.settle()
    assert any(e.text.startswith("TEE-BLK-M:") for e in bot.slack.ephemerals)


async def test_a_signed_webhook_nested_deeply_is_400_with_no_effect(bot: Bot) -> None:
    reads = len(bot.demo.world.shopify.requests)
    deep = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    response = await bot.webhook(deep, headers={"X-Shopify-Event-Id": "deep"})
    assert response.status_code == 400
    await bot.settle()
    assert await bot.ledger.list_deliveries() == []
    assert len(bot.demo.world.shopify.requests) == reads
    assert json.dumps([(r.outcome, r.reason) for r in await bot.ledger.list_refusals()]) == (
        '[["malformed", "not_json"]]'
    )
