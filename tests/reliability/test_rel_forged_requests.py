"""Guarantee 4: forged and replayed requests are refused with no side effect; a valid
request delivered twice has its effect once.

Hypothesis generates Slack requests (button clicks and slash commands that would write)
with bad signatures, tampered bodies, timestamps outside Slack's five-minute window and
replays of once-valid requests, and Shopify webhooks with bad HMACs, malformed JSON and
no topic. Each goes over HTTP to the running Service. After every example: nothing was
written to Shopify, no resync row, no audit entry, no Slack call, no targeted diff.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_testing import GUEST, SECRET, WRITER, Bot, slack_headers

from connectors.shopify.webhooks import sign
from ledger import REFUSAL_OUTCOMES

EXAMPLES = 1_000  # per test: 2,000 generated requests in all, each checked for effects
FAST = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WINDOW = 300  # Slack's replay window, seconds


async def _effects(bot: Bot) -> tuple[Any, ...]:
    """Everything a forged request could change, in one comparable value."""
    incident = await bot.incident()
    return (
        len(bot.demo.world.shopify.writes),
        bot.shopify("TEE-BLK-M", "east"),
        len(await bot.ledger.list_resyncs()),
        len(await bot.ledger.list_audit(limit=100_000)),
        len(bot.slack.requests),
        len(bot.slack.ephemerals),
        len(bot.slack.response_url_posts),
        (incident.status, incident.acknowledged_by, incident.resolved_by),
    )


SLACK_USERS = st.sampled_from([WRITER, "U0ONCALL1", GUEST])
SECRETS = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "" and s != SECRET)


@st.composite
def forged_slack(draw: st.DrawFn, bodies: list[str]) -> tuple[str, dict[str, str], str]:
    """(body, headers, how it was forged) for a request that must be refused with 401."""
    body = draw(st.sampled_from(bodies))
    now = int(time.time())
    how = draw(
        st.sampled_from(
            ["wrong_secret", "random_signature", "missing_header", "tampered", "old", "future"]
        )
    )
    if how == "wrong_secret":
        return body, slack_headers(body, secret=draw(SECRETS)), how
    if how == "random_signature":
        headers = slack_headers(body)
        headers["X-Slack-Signature"] = draw(
            st.one_of(
                st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(
                    lambda h: "v0=" + h
                ),
                st.text(
                    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80
                ),
            )
        )
        if headers["X-Slack-Signature"] == slack_headers(body)["X-Slack-Signature"]:
            headers["X-Slack-Signature"] = "v0=0"
        return body, headers, how
    if how == "missing_header":
        headers = slack_headers(body)
        del headers[draw(st.sampled_from(["X-Slack-Signature", "X-Slack-Request-Timestamp"]))]
        return body, headers, how
    if how == "tampered":
        # Signed as one request, delivered as another (a guest's click made a writer's).
        other = draw(st.sampled_from([b for b in bodies if b != body]))
        return other, slack_headers(body), how
    if how == "old":  # a valid request replayed after the window, or a stale clock
        return body, slack_headers(body, ts=now - draw(st.integers(WINDOW + 5, 10**9))), how
    return body, slack_headers(body, ts=now + draw(st.integers(WINDOW + 5, 10**6))), how


def _slack_bodies(bot: Bot, incident: Any) -> list[str]:
    bodies = []
    for user in (WRITER, "U0ONCALL1", GUEST):
        for action in ("resync", "resolve", "acknowledge"):
            bodies.append(bot.click_body(incident, action, user))
        bodies.append(bot.command_body("/resync", "TEE-BLK-M east", user))
        bodies.append(bot.command_body("/adjust", "", user))
        bodies.append(bot.command_body("/drift", "TEE-BLK-M", user))
    return bodies


@FAST
@given(data=st.data())
async def test_forged_and_replayed_slack_requests_are_401_with_no_effect(
    bot: Bot, data: st.DataObject
) -> None:
    before = await _effects(bot)
    body, headers, how = data.draw(forged_slack(_slack_bodies(bot, await bot.incident())))
    response = await bot.post_raw(body, headers)
    assert response.status_code == 401, (how, response.status_code, response.text)
    await bot.settle()
    assert await _effects(bot) == before


async def test_an_oversized_slack_request_is_refused_with_no_effect(bot: Bot) -> None:
    before = await _effects(bot)
    huge = bot.click_body(await bot.incident()) + "&pad=" + "x" * (2 << 20)
    for secret in (SECRET, "forged"):
        response = await bot.post(huge, secret=secret)
        assert response.status_code == 413
    await bot.settle()
    assert await _effects(bot) == before


async def test_a_click_delivered_twice_resyncs_once(bot: Bot) -> None:
    """Slack retries a request it got no answer for (X-Slack-Retry-Num): same body,
    same signature, inside the window."""
    incident = await bot.incident()
    body = bot.click_body(incident, "resync", WRITER)
    headers = slack_headers(body)
    first = await bot.post_raw(body, headers)
    retry = await bot.post_raw(
        body, {**headers, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    await bot.settle()

    assert (first.status_code, retry.status_code) == (200, 200)
    assert bot.shopify("TEE-BLK-M", "east")["available"] == 28
    assert len(bot.demo.world.shopify.writes) == 1
    assert [r.status for r in await bot.ledger.list_resyncs()] == ["applied"]


# -- Shopify webhooks -----------------------------------------------------------------------

REFUSED = {"rejected_signature", "malformed", "too_large", "wrong_shop"}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


def _level_body(bot: Bot, available: int, updated_at: str = "2026-11-02T09:00:00Z") -> bytes:
    item = bot.demo.world.shopify.store.item("TEE-BLK-M").gid.rsplit("/", 1)[1]
    location = bot.demo.world.locations["west"][0].rsplit("/", 1)[1]
    return json.dumps(
        {
            "inventory_item_id": int(item),
            "location_id": int(location),
            "available": available,
            "updated_at": updated_at,
        }
    ).encode()


@st.composite
def forged_webhook(draw: st.DrawFn, valid: bytes) -> tuple[bytes, dict[str, str], int]:
    """(body, headers, the status it must get): forged ones 401, malformed ones 400."""
    how = draw(st.sampled_from(["wrong_secret", "random_hmac", "no_hmac", "tampered", "malformed"]))
    body = draw(
        st.one_of(
            st.just(valid),
            st.binary(max_size=300),
            JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        )
    )
    headers = {"X-Shopify-Event-Id": draw(st.uuids()).hex}
    if how == "wrong_secret":
        secret = draw(st.text(min_size=1, max_size=30))
        headers["X-Shopify-Hmac-Sha256"] = sign(body, secret)
        return body, headers, 401
    if how == "random_hmac":
        raw = draw(st.binary(min_size=32, max_size=32))
        headers["X-Shopify-Hmac-Sha256"] = base64.b64encode(raw).decode()
        return body, headers, 401
    if how == "no_hmac":
        headers["X-Shopify-Hmac-Sha256"] = ""
        return body, headers, 401
    if how == "tampered":
        headers["X-Shopify-Hmac-Sha256"] = "<valid>"  # signed valid, then the body changed
        changed = body if body != valid else valid + b" "
        return changed, headers, 401
    # Correctly signed, but not a JSON object (or no topic): 400.
    malformed = draw(
        st.one_of(
            st.binary(max_size=200).filter(lambda b: not _is_json_object(b)),
            JSON_VALUES.filter(lambda v: not isinstance(v, dict)).map(
                lambda v: json.dumps(v).encode()
            ),
        )
    )
    headers["X-Shopify-Hmac-Sha256"] = "<sign>"
    return malformed, headers, 400


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, UnicodeDecodeError):
        return False


@FAST
@given(data=st.data())
async def test_forged_and_malformed_webhooks_are_refused_with_no_effect(
    bot: Bot, data: st.DataObject
) -> None:
    shopify = bot.demo.world.shopify
    secret = shopify.webhooks.secret
    valid = _level_body(bot, 99)
    reads_before = len(shopify.requests)
    before = await _effects(bot)
    body, headers, status = data.draw(forged_webhook(valid))
    if headers["X-Shopify-Hmac-Sha256"] == "<valid>":
        headers["X-Shopify-Hmac-Sha256"] = sign(valid, secret)
    elif headers["X-Shopify-Hmac-Sha256"] == "<sign>":
        headers["X-Shopify-Hmac-Sha256"] = sign(body, secret)
    response = await bot.webhook(body, secret=secret, headers=headers)
    assert response.status_code == status, (headers, body[:80], response.text)
    await bot.settle()
    assert await _effects(bot) == before
    assert len(shopify.requests) == reads_before, "a refused webhook triggered a read"
    assert not bot.service.targeted_done.is_set()
    outcomes = {d.outcome for d in await bot.ledger.list_deliveries(limit=100_000)}
    assert outcomes == set(), "refusals are counted, not kept one row each"
    assert {r.outcome for r in await bot.ledger.list_refusals()} <= REFUSED


async def test_webhooks_without_a_topic_or_too_large_are_refused(bot: Bot) -> None:
    shopify = bot.demo.world.shopify
    secret = shopify.webhooks.secret
    valid = _level_body(bot, 99)
    reads_before = len(shopify.requests)
    before = await _effects(bot)
    # No topic header on a correctly signed, well-formed delivery: 400 too.
    no_topic = await bot.http.post(
        f"{bot.url}/webhooks/shopify",
        content=valid,
        headers={
            "X-Shopify-Hmac-Sha256": sign(valid, secret),
            "X-Shopify-Shop-Domain": shopify.webhooks.shop_domain,
        },
    )
    assert no_topic.status_code == 400
    huge = b'{"pad": "' + b"x" * (2 << 20) + b'"}'
    assert (await bot.webhook(huge)).status_code == 413
    await bot.settle()

    assert await _effects(bot) == before
    assert len(shopify.requests) == reads_before, "a refused webhook triggered a read"
    assert not bot.service.targeted_done.is_set()
    assert await bot.ledger.list_deliveries(limit=100_000) == []
    counted = {(r.outcome, r.reason): r.count for r in await bot.ledger.list_refusals()}
    assert counted == {("malformed", "no_topic"): 1, ("too_large", ""): 1}
    assert set(REFUSAL_OUTCOMES) >= REFUSED


async def test_a_webhook_replayed_or_delivered_late_is_applied_once(bot: Bot) -> None:
    shopify = bot.demo.world.shopify
    baseline = len(shopify.requests)
    bot.clock.advance(3600)  # both changes happened a while ago
    newer = _level_body(bot, 15, "2026-11-02T09:05:00Z")
    headers = {"X-Shopify-Event-Id": "evt-2", "X-Shopify-Triggered-At": "2026-11-02T09:05:00Z"}
    for _ in range(5):  # Shopify retries, or an attacker replays a captured delivery
        assert (await bot.webhook(newer, headers=headers)).status_code == 200
    older = _level_body(bot, 14, "2026-11-02T09:01:00Z")
    late = {"X-Shopify-Event-Id": "evt-1", "X-Shopify-Triggered-At": "2026-11-02T09:01:00Z"}
    assert (await bot.webhook(older, headers=late)).status_code == 200
    await bot.settle()

    deliveries = await bot.ledger.list_deliveries(limit=1000)
    assert sorted(d.outcome for d in deliveries) == ["duplicate"] * 4 + ["processed", "stale"]
    assert bot.service.targeted_done.is_set()
    queries = {r.variables.get("query") for r in shopify.requests[baseline:]}
    assert queries == {"sku:TEE-BLK-M"}, "the one processed delivery caused a targeted read"
    runs = bot.service.registry.get_sample_value(
        "driftwatch_job_runs_total", {"job": "targeted-diff", "outcome": "ok"}
    )
    assert runs == 1, "one targeted diff for one event, however often it was delivered"
