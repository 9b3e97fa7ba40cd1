"""A chart's upload into a message's thread.

``files_upload_v2`` returns no message ts, so the message is posted first and its chart
goes into its thread."""

from __future__ import annotations

import re

from slack_sdk.web.async_client import AsyncWebClient

from monitors.mrkdwn import plain

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


async def upload_chart(
    client: AsyncWebClient,
    channel: str,
    thread_ts: str,
    png: bytes,
    filename: str,
    title: str,
) -> None:
    """Upload ``png`` into the thread; the file name keeps only safe characters and the
    title (from a SKU, a system name) is one bounded line."""
    stem, _, ext = filename.rpartition(".")
    safe = (_UNSAFE_NAME.sub("_", stem).strip("._") or "chart")[:100] + "." + (ext or "png")
    await client.files_upload_v2(
        channel=channel,
        thread_ts=thread_ts,
        file=png,
        filename=safe,
        title=plain(title, 250),
        alt_txt=plain(title, 1000),
    )
