"""The fake Slack Web API, driven by the real slack_sdk AsyncWebClient over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from connectors.clock import ManualClock
from sandbox.slack import BOT_USER_ID, FakeSlack

CHANNEL = "C0DRIFT01"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*SKU-1* drifted by 4"}}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def slack(clock: ManualClock) -> AsyncIterator[FakeSlack]:
    async with FakeSlack(clock=clock) as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-sandbox", base_url=slack.api_url)


async def _error_of(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


async def test_auth_test_names_the_bot(slack: FakeSlack, client: AsyncWebClient) -> None:
    response = await client.auth_test()
    assert response["ok"] is True
    assert response["user_id"] == BOT_USER_ID
    assert slack.requests[0].method == "auth.test"
    assert slack.requests[0].token == "xoxb-sandbox"


async def test_post_then_update_keeps_the_edit_history(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="drift on SKU-1", blocks=[SECTION])
    assert posted["channel"] == CHANNEL
    assert posted["message"]["blocks"] == [SECTION]
    ts = posted["ts"]
    updated = await client.chat_update(channel=CHANNEL, ts=ts, text="resynced by olivia")
    assert updated["ts"] == ts
    [message] = slack.messages(CHANNEL)
    assert (message.ts, message.text, message.blocks) == (ts, "resynced by olivia", [])
    assert message.edited
    assert [(e.text, e.blocks) for e in message.edits] == [("drift on SKU-1", [SECTION])]
    assert slack.calls("chat.postMessage")[0].args["blocks"] == [SECTION]


async def test_thread_reply_and_channel_by_name(
    slack: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    parent = await client.chat_postMessage(channel="#ops-inventory", text="incident")
    assert parent["channel"] == CHANNEL
    clock.advance(1)  # a reply is a message in the channel too: one per second
    reply = await client.chat_postMessage(channel=CHANNEL, text="details", thread_ts=parent["ts"])
    assert reply["message"]["thread_ts"] == parent["ts"]
    assert [m.text for m in slack.thread(CHANNEL, parent["ts"])] == ["incident", "details"]
    assert [m.text for m in slack.messages(CHANNEL)] == ["incident"]
    assert float(reply["ts"]) > float(parent["ts"])
    clock.advance(1)
    missing = await _error_of(
        client.chat_postMessage(channel=CHANNEL, text="x", thread_ts="1.000001")
    )
    assert missing.response["error"] == "thread_not_found"


async def test_post_ephemeral_returns_message_ts(slack: FakeSlack, client: AsyncWebClient) -> None:
    response = await client.chat_postEphemeral(channel=CHANNEL, user="U0OPS001", text="only you")
    [ephemeral] = slack.ephemerals
    assert response["message_ts"] == ephemeral.message_ts
    assert (ephemeral.user, ephemeral.text) == ("U0OPS001", "only you")
    assert slack.messages(CHANNEL) == []


async def test_files_upload_v2_into_a_thread_serves_the_bytes(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="drift alert")
    result = await client.files_upload_v2(
        channel=CHANNEL,
        thread_ts=parent["ts"],
        content=PNG,
        filename="drift.png",
        title="SKU-1, 7 days",
    )
    assert result["file"]["mimetype"] == "image/png"
    thread = slack.thread(CHANNEL, parent["ts"])
    assert len(thread) == 2
    [shared] = thread[1].files
    assert shared["title"] == "SKU-1, 7 days"
    assert shared["url_private"].startswith(slack.base_url)
    async with httpx.AsyncClient() as http:
        image = await http.get(
            shared["url_private"], headers={"Authorization": "Bearer xoxb-sandbox"}
        )
        anonymous = await http.get(shared["url_private"])
    assert image.status_code == 200
    assert image.content == PNG
    assert image.headers["Content-Type"] == "image/png"
    assert anonymous.status_code == 403
    assert [c.method for c in slack.requests][-2:] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


async def test_views_open_update_push_and_trigger_rules(
    slack: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    modal = {
        "type": "modal",
        "callback_id": "root_cause",
        "title": {"type": "plain_text", "text": "Log root cause"},
        "blocks": [SECTION],
    }
    opened = await client.views_open(trigger_id=slack.new_trigger_id(), view=modal)
    view = opened["view"]
    assert view["id"].startswith("V")
    assert view["callback_id"] == "root_cause"
    assert slack.views[view["id"]].user == "U0OPS001"
    changed = {**modal, "blocks": [SECTION, {"type": "divider"}]}
    updated = await client.views_update(view_id=view["id"], view=changed, hash=view["hash"])
    assert len(updated["view"]["blocks"]) == 2
    conflict = await _error_of(
        client.views_update(view_id=view["id"], view=modal, hash=view["hash"])
    )
    assert conflict.response["error"] == "hash_conflict"
    pushed = await client.views_push(trigger_id=slack.new_trigger_id(), view=modal)
    assert pushed["view"]["previous_view_id"] == view["id"]
    stale = slack.new_trigger_id()
    clock.advance(4)
    expired = await _error_of(client.views_open(trigger_id=stale, view=modal))
    assert expired.response["error"] == "expired_trigger_id"
    unknown = await _error_of(client.views_open(trigger_id="123.456.abc", view=modal))
    assert unknown.response["error"] == "invalid_trigger_id"


async def test_errors_are_slack_shaped(slack: FakeSlack, client: AsyncWebClient) -> None:
    unknown = await _error_of(client.api_call("chat.teleport"))
    assert (unknown.response.status_code, unknown.response["error"]) == (200, "unknown_method")
    bad = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)
    assert (await _error_of(bad.auth_test())).response["error"] == "invalid_auth"
    anonymous = AsyncWebClient(base_url=slack.api_url)
    assert (await _error_of(anonymous.auth_test())).response["error"] == "not_authed"
    lost = await _error_of(client.chat_postMessage(channel="C0NOPE", text="hi"))
    assert lost.response["error"] == "channel_not_found"
    gone = await _error_of(client.chat_update(channel=CHANNEL, ts="1.000001", text="x"))
    assert gone.response["error"] == "message_not_found"
    assert [c.error for c in slack.requests] == [
        "unknown_method",
        "invalid_auth",
        "not_authed",
        "channel_not_found",
        "message_not_found",
    ]
    assert not any(c.ok for c in slack.requests)


async def test_message_validation_over_raw_http(slack: FakeSlack, clock: ManualClock) -> None:
    headers = {"Authorization": "Bearer xoxb-sandbox"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": CHANNEL}, "no_text"),
        ({"channel": CHANNEL, "text": "x", "blocks": [{"type": "banner"}]}, "invalid_blocks"),
        ({"channel": CHANNEL, "text": "x", "blocks": ["section"]}, "invalid_blocks"),
        ({"channel": CHANNEL, "text": "x", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        ({"channel": CHANNEL, "text": "x", "blocks": {"type": "divider"}}, "invalid_blocks_format"),
    ]
    async with httpx.AsyncClient(base_url=slack.api_url, headers=headers) as http:
        for body, error in cases:
            clock.advance(1)
            response = await http.post("chat.postMessage", json=body)
            assert (response.status_code, response.json()["error"]) == (200, error), body
        broken = await http.post(
            "chat.postMessage", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert broken.json() == {"ok": False, "error": "invalid_json"}
        fifty = [{"type": "divider"}] * 50
        clock.advance(1)
        ok = await http.post("chat.postMessage", json={"channel": CHANNEL, "blocks": fifty})
        assert ok.json()["ok"] is True
        clock.advance(1)
        form = await http.post(
            "chat.postMessage",
            data={"channel": CHANNEL, "text": "form", "blocks": '[{"type":"divider"}]'},
        )
        assert form.json()["message"]["blocks"] == [{"type": "divider"}]
    assert [m.text for m in slack.messages(CHANNEL)] == ["", "form"]


async def test_more_than_one_post_per_second_per_channel_is_refused_with_429(
    slack: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    await client.chat_postMessage(channel=CHANNEL, text="first")
    limited = await _error_of(client.chat_postMessage(channel=CHANNEL, text="one too many"))
    assert limited.response.status_code == 429
    assert limited.response.headers["Retry-After"] == "1"
    assert limited.response["error"] == "ratelimited"
    await client.chat_postMessage(channel="U0OPS001", text="a DM is another channel")
    clock.advance(1)
    await client.chat_postMessage(channel=CHANNEL, text="after a second")
    assert [m.text for m in slack.messages(CHANNEL)] == ["first", "after a second"]
    assert [c.status for c in slack.calls("chat.postMessage")] == [200, 429, 200, 200]


async def test_retry_handler_gets_through_once_the_clock_moves(
    slack: FakeSlack, clock: ManualClock
) -> None:
    client = AsyncWebClient(
        token="xoxb-sandbox",
        base_url=slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    await client.chat_postMessage(channel=CHANNEL, text="first")
    post = asyncio.create_task(client.chat_postMessage(channel=CHANNEL, text="patient"))
    async with asyncio.timeout(10):
        await slack.wait_for_call(lambda call: call.status == 429)
    clock.advance(1)  # the handler really sleeps Retry-After (1 s + jitter) meanwhile
    response = await post
    assert response["ok"] is True
    assert [c.status for c in slack.calls("chat.postMessage")][-2:] == [429, 200]


async def test_response_url_posts(slack: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="alert", blocks=[SECTION])
    url = slack.new_response_url(CHANNEL, "U0OPS001", message_ts=posted["ts"])
    async with httpx.AsyncClient() as http:
        assert (await http.post(url, json={"text": "just you"})).json() == {"ok": True}
        await http.post(url, json={"response_type": "in_channel", "text": "everyone"})
        await http.post(url, json={"replace_original": True, "text": "acknowledged"})
        bad = await http.post(url, json={"replace_original": True, "blocks": [{"type": "x"}]})
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid_blocks")
        await http.post(url, json={"delete_original": True})
        used = await http.post(url, json={"text": "sixth"})
        assert (used.status_code, used.json()["error"]) == (404, "expired_url")
    assert [(e.user, e.text) for e in slack.ephemerals] == [("U0OPS001", "just you")]
    assert [m.text for m in slack.messages(CHANNEL)] == ["everyone"]
    original = slack.channels[CHANNEL].messages[0]
    assert original.deleted
    assert [e.text for e in original.edits] == ["alert"]
    assert [p.status for p in slack.response_url_posts] == [200, 200, 200, 400, 200, 404]


async def test_directory_methods_and_reactions(slack: FakeSlack, client: AsyncWebClient) -> None:
    channel = await client.conversations_info(channel=CHANNEL)
    assert channel["channel"]["name"] == "ops-inventory"
    user = await client.users_info(user="U0ONCALL1")
    assert user["user"]["id"] == "U0ONCALL1"
    group = await client.usergroups_users_list(usergroup="S0ONCALL")
    assert "U0ONCALL1" in group["users"]
    missing_user = await _error_of(client.users_info(user="U0NOBODY"))
    assert missing_user.response["error"] == "user_not_found"
    posted = await client.chat_postMessage(channel=CHANNEL, text="alert")
    await client.reactions_add(channel=CHANNEL, timestamp=posted["ts"], name="eyes")
    again = await _error_of(
        client.reactions_add(channel=CHANNEL, timestamp=posted["ts"], name="eyes")
    )
    assert again.response["error"] == "already_reacted"
    assert slack.messages(CHANNEL)[0].reactions == {"eyes": [BOT_USER_ID]}
    await client.chat_delete(channel=CHANNEL, ts=posted["ts"])
    assert slack.messages(CHANNEL) == []


async def test_fault_knobs(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.force_error("chat.postMessage", "fatal_error")
    forced = await _error_of(client.chat_postMessage(channel=CHANNEL, text="x"))
    assert forced.response["error"] == "fatal_error"
    slack.force_5xx(1, status=503)
    failed = await _error_of(client.auth_test())
    assert failed.response.status_code == 503
    slack.down = True
    down = await _error_of(client.auth_test())
    assert down.response.status_code == 503
    slack.down = False
    assert (await client.auth_test())["ok"] is True
    assert [c.status for c in slack.calls("auth.test")] == [503, 503, 200]
    assert slack.messages(CHANNEL) == []
