"""A fake Slack Web API on loopback, for tests and ``driftwatch demo``.

Point the real client at it::

    async with FakeSlack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        await client.chat_postMessage(channel="C0DRIFT01", text="hi")
        assert slack.messages("C0DRIFT01")[0].text == "hi"

:mod:`sandbox.slack.server` lists the routes and fault knobs, :mod:`.methods` the
implemented Web API methods, :mod:`.model` the state a page can render, :mod:`.rules`
the Block Kit checks and the per-channel pacing.
"""

from __future__ import annotations

from sandbox.slack.model import (
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    Call,
    Channel,
    Ephemeral,
    Message,
    ResponseUrlPost,
    StoredFile,
    StoredView,
    User,
)
from sandbox.slack.server import FakeSlack

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "TEAM_ID",
    "Call",
    "Channel",
    "Ephemeral",
    "FakeSlack",
    "Message",
    "ResponseUrlPost",
    "StoredFile",
    "StoredView",
    "User",
]
