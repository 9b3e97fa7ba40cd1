"""Finding a post again: every message the outbox posts carries message metadata naming
its outbox entry, so an attempt that may have posted without recording it can look the
post up instead of posting twice.

Metadata is "a JSON object with event_type and event_payload fields" on
``chat.postMessage`` (https://docs.slack.dev/messaging/message-metadata);
``conversations.history`` and ``conversations.replies`` return it with
``include_all_metadata`` (they need the ``channels:history`` / ``groups:history`` scopes
and a channel *id*; Tier 3, 50+ calls a minute for internal apps).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger("driftwatch.outbox")

#: the metadata event type that marks Driftwatch's outbox posts
EVENT_TYPE = "driftwatch_outbox"
#: at most this many pages of history are searched for an earlier post
LOOKUP_PAGES = 10
LOOKUP_PAGE_SIZE = 200
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


def post_metadata(entry_id: int, part: str) -> dict[str, Any]:
    """The metadata of the ``part`` (``alert``, ``reply``, ``message``) an entry posts."""
    return {"event_type": EVENT_TYPE, "event_payload": {"outbox_id": entry_id, "part": part}}


def marks(message: Mapping[str, Any], entry_id: int, part: str) -> bool:
    """Whether ``message`` (as the Web API returns it) is ``part`` of entry ``entry_id``."""
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != EVENT_TYPE:
        return False
    payload = metadata.get("event_payload")
    return (
        isinstance(payload, Mapping)
        and str(payload.get("outbox_id")) == str(entry_id)
        and payload.get("part") == part
    )


class PostFinder:
    """Looks up an entry's earlier post in a channel's history or a thread."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def find(
        self,
        channel_id: str,
        entry_id: int,
        part: str,
        *,
        oldest: datetime,
        thread_ts: str | None = None,
        before_each_call: Callable[[], Awaitable[None]] | None = None,
    ) -> str | None:
        """The ts of entry ``entry_id``'s ``part`` post since ``oldest`` (in the thread
        ``thread_ts`` if given), or None. Without the history scopes nothing can be found:
        that is logged and None returned (posting again risks a duplicate, which beats
        never posting); other errors propagate."""
        cursor: str | None = None
        for _ in range(LOOKUP_PAGES):
            if before_each_call is not None:
                await before_each_call()
            try:
                page = await self._page(channel_id, thread_ts, oldest, cursor)
            except SlackApiError as exc:
                if exc.response.get("error") == "missing_scope":
                    log.error("cannot look for outbox entry %s's post: missing_scope", entry_id)
                    return None
                raise
            for message in page.get("messages") or []:
                if marks(message, entry_id, part):
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None

    async def thread_has_file(self, channel_id: str, thread_ts: str) -> bool:
        """Whether a reply in the thread carries a file (a chart uploaded before)."""
        page = await self._page(channel_id, thread_ts, None, None)
        messages = page.get("messages") or []
        return any(m.get("files") and m.get("ts") != thread_ts for m in messages)

    async def _page(
        self, channel: str, thread_ts: str | None, oldest: datetime | None, cursor: str | None
    ) -> Mapping[str, Any]:
        if thread_ts is not None:
            response = await self._client.conversations_replies(
                channel=channel,
                ts=thread_ts,
                include_all_metadata=True,
                limit=LOOKUP_PAGE_SIZE,
                cursor=cursor,
            )
        else:
            response = await self._client.conversations_history(
                channel=channel,
                oldest=f"{oldest.timestamp():.6f}" if oldest is not None else None,
                include_all_metadata=True,
                limit=LOOKUP_PAGE_SIZE,
                cursor=cursor,
            )
        data = response.data
        return data if isinstance(data, dict) else {}
