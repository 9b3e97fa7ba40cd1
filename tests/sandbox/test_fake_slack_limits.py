"""The fake Slack refuses what real Slack refuses (Block Kit's documented limits, the
pace of chat.postMessage, malformed metadata), stores message metadata and returns it
from conversations.history and conversations.replies as Slack does, and can be slow on
the test's own clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from connectors.clock import ManualClock
from sandbox.slack import Call, FakeSlack

CHANNEL = "C0DRIFT01"


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


def _text(kind: str, text: str) -> dict[str, Any]:
    return {"type": kind, "text": text}


def _button(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "text": _text("plain_text", "Resync"),
        "action_id": "resync",
        "value": "1",
        **overrides,
    }


def _confirm(**overrides: Any) -> dict[str, Any]:
    return {
        "title": _text("plain_text", "Resync?"),
        "text": _text("mrkdwn", "Set *shopify* to 12"),
        "confirm": _text("plain_text", "Resync"),
        "deny": _text("plain_text", "Cancel"),
        **overrides,
    }


def _actions(*elements: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "actions", "elements": list(elements)}]


OPTION = {"text": _text("plain_text", "1 hour"), "value": "1:1h"}
SELECT = {
    "type": "static_select",
    "action_id": "snooze",
    "placeholder": _text("plain_text", "Snooze"),
    "options": [OPTION],
}

#: (what is wrong, blocks): each is one character (or item) past a documented limit
OVER_THE_LIMIT: list[tuple[str, list[dict[str, Any]]]] = [
    ("confirm text 301", _actions(_button(confirm=_confirm(text=_text("mrkdwn", "x" * 301))))),
    (
        "confirm title 101",
        _actions(_button(confirm=_confirm(title=_text("plain_text", "x" * 101)))),
    ),
    (
        "confirm button 31",
        _actions(_button(confirm=_confirm(confirm=_text("plain_text", "x" * 31)))),
    ),
    ("confirm deny 31", _actions(_button(confirm=_confirm(deny=_text("plain_text", "x" * 31))))),
    ("section text 3001", [{"type": "section", "text": _text("mrkdwn", "x" * 3001)}]),
    ("section 11 fields", [{"type": "section", "fields": [_text("mrkdwn", "f")] * 11}]),
    ("section field 2001", [{"type": "section", "fields": [_text("mrkdwn", "x" * 2001)]}]),
    ("51 blocks", [{"type": "divider"}] * 51),
    ("header 151", [{"type": "header", "text": _text("plain_text", "x" * 151)}]),
    ("header mrkdwn", [{"type": "header", "text": _text("mrkdwn", "x")}]),
    ("button text 76", _actions(_button(text=_text("plain_text", "x" * 76)))),
    ("button mrkdwn", _actions(_button(text=_text("mrkdwn", "Resync")))),
    ("action_id 256", _actions(_button(action_id="a" * 256))),
    ("button value 2001", _actions(_button(value="v" * 2001))),
    ("button url 3001", _actions(_button(url="https://x.example/" + "p" * 2990))),
    ("button style", _actions(_button(style="loud"))),
    ("two action_ids alike", _actions(_button(), _button())),
    ("26 actions", _actions(*[_button(action_id=f"a{i}") for i in range(26)])),
    (
        "option text 76",
        _actions({**SELECT, "options": [{**OPTION, "text": _text("plain_text", "x" * 76)}]}),
    ),
    ("option value 151", _actions({**SELECT, "options": [{**OPTION, "value": "v" * 151}]})),
    ("101 options", _actions({**SELECT, "options": [OPTION] * 101})),
    ("placeholder 151", _actions({**SELECT, "placeholder": _text("plain_text", "x" * 151)})),
    ("11 context elements", [{"type": "context", "elements": [_text("mrkdwn", "c")] * 11}]),
    ("empty text", [{"type": "section", "text": _text("mrkdwn", "")}]),
    ("block_id 256", [{"type": "divider", "block_id": "b" * 256}]),
    (
        "accessory button 76",
        [
            {
                "type": "section",
                "text": _text("mrkdwn", "s"),
                "accessory": _button(text=_text("plain_text", "x" * 76)),
            }
        ],
    ),
]


@pytest.mark.parametrize(("what", "blocks"), OVER_THE_LIMIT, ids=[w for w, _ in OVER_THE_LIMIT])
async def test_what_slack_refuses_is_refused_with_invalid_blocks(
    what: str, blocks: list[dict[str, Any]], slack: FakeSlack, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel=CHANNEL, text="alert", blocks=blocks)
    assert refused.value.response["error"] == "invalid_blocks", what
    assert "[json-pointer:/blocks" in str(refused.value.response["response_metadata"])
    assert slack.messages(CHANNEL) == []


async def test_the_same_shapes_at_the_limit_are_accepted(
    slack: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    at_the_limit: list[list[dict[str, Any]]] = [
        _actions(_button(confirm=_confirm(text=_text("mrkdwn", "x" * 300)))),
        [{"type": "section", "text": _text("mrkdwn", "x" * 3000)}],
        [{"type": "section", "fields": [_text("mrkdwn", "x" * 2000)] * 10}],
        [{"type": "divider"}] * 50,
        [{"type": "header", "text": _text("plain_text", "x" * 150)}],
        _actions(
            _button(text=_text("plain_text", "x" * 75), action_id="a" * 255, value="v" * 2000)
        ),
        _actions(
            {
                **SELECT,
                "options": [{"text": _text("plain_text", "x" * 75), "value": "v" * 150}] * 100,
            }
        ),
        [{"type": "context", "elements": [_text("mrkdwn", "c")] * 10}],
    ]
    for blocks in at_the_limit:
        await client.chat_postMessage(channel=CHANNEL, text="alert", blocks=blocks)
        clock.advance(1)
    assert len(slack.messages(CHANNEL)) == len(at_the_limit)


async def test_an_update_is_held_to_the_same_limits(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="alert")
    with pytest.raises(SlackApiError) as refused:
        await client.chat_update(
            channel=CHANNEL,
            ts=posted["ts"],
            text="alert",
            blocks=_actions(_button(confirm=_confirm(text=_text("mrkdwn", "x" * 301)))),
        )
    assert refused.value.response["error"] == "invalid_blocks"
    assert slack.messages(CHANNEL)[0].edits == []


async def test_one_post_per_second_per_channel_threads_included_else_429(
    slack: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="alert")
    for post in (
        client.chat_postMessage(channel=CHANNEL, text="reply", thread_ts=parent["ts"]),
        client.chat_postMessage(channel="#ops-inventory", text="same channel by name"),
    ):
        with pytest.raises(SlackApiError) as limited:
            await post
        assert limited.value.response.status_code == 429
        assert limited.value.response.headers["Retry-After"] == "1"
    clock.advance(0.5)
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel=CHANNEL, text="half a second later")
    clock.advance(0.5)
    await client.chat_postMessage(channel=CHANNEL, text="a second later", thread_ts=parent["ts"])
    assert [m.text for m in slack.thread(CHANNEL, parent["ts"])] == ["alert", "a second later"]


async def test_metadata_is_stored_and_returned_only_when_asked_for(
    slack: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    metadata = {
        "event_type": "driftwatch_outbox",
        "event_payload": {"outbox_id": 7, "part": "alert"},
    }
    parent = await client.chat_postMessage(channel=CHANNEL, text="alert", metadata=metadata)
    clock.advance(1)
    await client.chat_postMessage(
        channel=CHANNEL,
        text="reply",
        thread_ts=parent["ts"],
        metadata={"event_type": "driftwatch_outbox", "event_payload": {"outbox_id": 8}},
    )
    clock.advance(1)
    await client.chat_postMessage(channel=CHANNEL, text="plain")
    assert slack.messages(CHANNEL)[0].metadata == metadata

    history = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert [m["text"] for m in history["messages"]] == ["plain", "alert"]  # newest first
    assert [m.get("metadata") for m in history["messages"]] == [None, metadata]
    bare = await client.conversations_history(channel=CHANNEL)
    assert all("metadata" not in m for m in bare["messages"])

    thread = await client.conversations_replies(
        channel=CHANNEL, ts=parent["ts"], include_all_metadata=True
    )
    assert [m["text"] for m in thread["messages"]] == ["alert", "reply"]
    assert thread["messages"][1]["metadata"]["event_payload"] == {"outbox_id": 8}


@pytest.mark.parametrize(
    "metadata",
    [
        {"event_type": "x"},
        {"event_payload": {}},
        {"event_type": "", "event_payload": {}},
        {"event_type": "x", "event_payload": "not an object"},
        "not json",
    ],
)
async def test_malformed_metadata_is_refused(
    metadata: object, slack: FakeSlack, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as refused:
        await client.api_call(
            "chat.postMessage", json={"channel": CHANNEL, "text": "x", "metadata": metadata}
        )
    assert refused.value.response["error"] == "invalid_metadata_format"
    assert slack.messages(CHANNEL) == []


async def test_history_pages_and_windows(
    slack: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    stamps = []
    for n in range(5):
        posted = await client.chat_postMessage(channel=CHANNEL, text=f"m{n}")
        stamps.append(posted["ts"])
        clock.advance(1)
    first = await client.conversations_history(channel=CHANNEL, limit=2)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3"]
    assert first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    second = await client.conversations_history(channel=CHANNEL, limit=2, cursor=cursor)
    assert [m["text"] for m in second["messages"]] == ["m2", "m1"]
    after = await client.conversations_history(channel=CHANNEL, oldest=stamps[2])
    assert [m["text"] for m in after["messages"]] == ["m4", "m3"]
    inclusive = await client.conversations_history(
        channel=CHANNEL, oldest=stamps[2], inclusive=True
    )
    assert [m["text"] for m in inclusive["messages"]] == ["m4", "m3", "m2"]
    with pytest.raises(SlackApiError) as by_name:  # an id is required, as in Slack
        await client.conversations_history(channel="#ops-inventory")
    assert by_name.value.response["error"] == "channel_not_found"


async def test_calls_can_take_time_on_the_tests_clock(
    slack: FakeSlack, client: AsyncWebClient, clock: ManualClock
) -> None:
    start = clock.now()
    slack.calls_take(5)
    await client.chat_postMessage(channel=CHANNEL, text="slow")
    await client.auth_test()
    assert (clock.now() - start).total_seconds() == 10
    slack.calls_take(0)
    await client.auth_test()
    assert (clock.now() - start).total_seconds() == 10


async def test_an_answer_can_be_held_after_the_call_took_effect(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    release = asyncio.Event()
    held: list[Call] = []

    async def hold(call: Call) -> None:
        held.append(call)
        await release.wait()

    slack.latency = hold
    post = asyncio.create_task(client.chat_postMessage(channel=CHANNEL, text="in flight"))
    async with asyncio.timeout(10):
        await slack.wait_for_call(lambda c: c.method == "chat.postMessage")
    assert [m.text for m in slack.messages(CHANNEL)] == ["in flight"]  # stored already
    assert not post.done()
    release.set()
    async with asyncio.timeout(10):
        assert (await post)["ok"] is True
    assert [c.method for c in held] == ["chat.postMessage"]
