"""Slack's rules the fake enforces: light Block Kit validation and per-channel pacing.

The validation is deliberately light — it catches what would make real Slack answer
``no_text``, ``invalid_blocks`` or ``msg_too_long`` for the messages a bot sends, not
every constraint of Block Kit.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

__all__ = ["BLOCK_TYPES", "ApiError", "TokenBucket", "blocks_arg", "check_message"]

BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
    }
)
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 40_000
MAX_SECTION_TEXT = 3_000
MAX_HEADER_TEXT = 150
MAX_ACTION_ELEMENTS = 25


class ApiError(Exception):
    """An API error answered as ``{"ok": false, "error": code}`` with HTTP 200."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.code}
        if self.detail:
            body["response_metadata"] = {"messages": [f"[ERROR] {self.detail}"]}
        return body


def blocks_arg(value: object, *, limit: int = MAX_MESSAGE_BLOCKS) -> list[dict[str, Any]]:
    """``blocks`` as sent (a list, or a JSON string when form-encoded), validated."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ApiError("invalid_blocks_format", "blocks is not valid JSON") from exc
    if not isinstance(value, list):
        raise ApiError("invalid_blocks_format", "must provide an array of blocks")
    if len(value) > limit:
        raise ApiError(
            "invalid_blocks", f"no more than {limit} items allowed [json-pointer:/blocks]"
        )
    seen_ids: set[str] = set()
    for index, block in enumerate(value):
        _check_block(block, f"/blocks/{index}", seen_ids)
    return value


def _check_block(block: object, where: str, seen_ids: set[str]) -> None:
    if not isinstance(block, dict):
        raise ApiError("invalid_blocks", f"must be an object [json-pointer:{where}]")
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        raise ApiError("invalid_blocks", f"unsupported type: {kind!r} [json-pointer:{where}/type]")
    block_id = block.get("block_id")
    if block_id is not None:
        if not isinstance(block_id, str) or not 0 < len(block_id) <= 255 or block_id in seen_ids:
            raise ApiError(
                "invalid_blocks", f"invalid or duplicate block_id [json-pointer:{where}]"
            )
        seen_ids.add(block_id)
    if kind == "section":
        if "text" not in block and "fields" not in block:
            raise ApiError("invalid_blocks", f"section needs text or fields [json-pointer:{where}]")
        if "text" in block:
            _check_text(block["text"], f"{where}/text", MAX_SECTION_TEXT)
    elif kind == "header":
        _check_text(block.get("text"), f"{where}/text", MAX_HEADER_TEXT, plain_only=True)
    elif kind == "image":
        if not (block.get("image_url") or block.get("slack_file")) or not block.get("alt_text"):
            raise ApiError("invalid_blocks", f"image needs image_url and alt_text [{where}]")
    elif kind in ("actions", "context"):
        elements = block.get("elements")
        if not isinstance(elements, list) or not 0 < len(elements) <= MAX_ACTION_ELEMENTS:
            raise ApiError("invalid_blocks", f"elements must be a non-empty list [{where}]")
        for index, element in enumerate(elements):
            if not isinstance(element, dict) or not isinstance(element.get("type"), str):
                raise ApiError("invalid_blocks", f"element needs a type [{where}/elements/{index}]")


def _check_text(text: object, where: str, limit: int, *, plain_only: bool = False) -> None:
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(text, dict) or text.get("type") not in allowed:
        raise ApiError("invalid_blocks", f"must be a text object of type {allowed} [{where}]")
    value = text.get("text")
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ApiError("invalid_blocks", f"text must be 1..{limit} characters [{where}/text]")


def check_message(text: object, blocks: list[dict[str, Any]], attachments: object) -> str:
    """The message text, after Slack's ``no_text`` / ``msg_too_long`` checks."""
    text = "" if text is None else str(text)
    if not text.strip() and not blocks and not attachments:
        raise ApiError("no_text")
    if len(text) > MAX_TEXT:
        raise ApiError("msg_too_long")
    return text


class TokenBucket:
    """``capacity`` posts at once, refilled at ``rate`` per second of the clock."""

    def __init__(self, capacity: float, rate: float, now: datetime) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = now

    def take(self, now: datetime) -> float:
        """Take a token: 0.0 when allowed, else the whole seconds to wait (>= 1)."""
        elapsed = max(0.0, (now - self.updated).total_seconds())
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return float(max(1, math.ceil((1 - self.tokens) / self.rate)))
