"""Slack's rules the fake enforces: Block Kit's documented limits, message metadata and
the per-channel pace of ``chat.postMessage``.

Each rule names the page of Slack's documentation it comes from. What real Slack answers
when a rule is broken — ``invalid_blocks`` with a ``[json-pointer:…]`` message,
``msg_too_long``, ``no_text``, ``invalid_metadata_format``, HTTP 429 with
``Retry-After`` — is what the fake answers, so a client that passes here passes there.
The validation covers the blocks and elements a bot sends in messages and modals (section,
header, context, actions, divider, image, input; buttons, static selects, plain-text
inputs, images; text, confirm and option objects); other block types are accepted with
the general checks only.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

__all__ = [
    "BLOCK_TYPES",
    "ApiError",
    "TokenBucket",
    "blocks_arg",
    "check_message",
    "check_metadata",
]

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

#: "You can include up to 50 blocks in each message, and 100 blocks in modals or Home
#: tabs." — https://docs.slack.dev/reference/block-kit/blocks
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
#: chat.postMessage: "The text field ... truncated ... 40,000 characters"; longer
#: messages are refused with msg_too_long —
#: https://docs.slack.dev/reference/methods/chat.postMessage
MAX_TEXT = 40_000
#: Text object: "The text for the block. ... minimum of 1 and maximum of 3000
#: characters." — https://docs.slack.dev/reference/block-kit/composition-objects/text-object
MAX_TEXT_OBJECT = 3_000
#: Section block: "text ... Maximum length for the text in this field is 3000
#: characters"; "fields ... Maximum number of items is 10. Maximum length for the text
#: in each item is 2000 characters." —
#: https://docs.slack.dev/reference/block-kit/blocks/section-block
MAX_SECTION_TEXT = 3_000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2_000
#: Header block: "Maximum length for the text in this field is 150 characters." —
#: https://docs.slack.dev/reference/block-kit/blocks/header-block
MAX_HEADER_TEXT = 150
#: Actions block: "An array of interactive element objects ... There is a maximum of 25
#: elements in each action block." —
#: https://docs.slack.dev/reference/block-kit/blocks/actions-block
MAX_ACTION_ELEMENTS = 25
#: Context block: "elements ... Maximum number of items is 10." —
#: https://docs.slack.dev/reference/block-kit/blocks/context-block
MAX_CONTEXT_ELEMENTS = 10
#: Every block: "block_id ... Maximum length for this field is 255 characters. block_id
#: should be unique for each message" — https://docs.slack.dev/reference/block-kit/blocks
MAX_BLOCK_ID = 255
#: Confirmation dialog object: title (plain_text) max 100, text max 300, confirm and deny
#: (plain_text) max 30 characters; style primary or danger —
#: https://docs.slack.dev/reference/block-kit/composition-objects/confirmation-dialog-object
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
#: Button element: text (plain_text) max 75, action_id max 255, url max 3000, value max
#: 2000, accessibility_label max 75; style primary or danger —
#: https://docs.slack.dev/reference/block-kit/block-elements/button-element
MAX_BUTTON_TEXT = 75
MAX_ACTION_ID = 255
MAX_URL = 3_000
MAX_BUTTON_VALUE = 2_000
#: Select menus: placeholder (plain_text) max 150, options max 100 —
#: https://docs.slack.dev/reference/block-kit/block-elements/select-menu-element
MAX_PLACEHOLDER = 150
MAX_OPTIONS = 100
#: Option object: text max 75 characters, value max 150 characters —
#: https://docs.slack.dev/reference/block-kit/composition-objects/option-object
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
#: Input block: label (plain_text) max 2000, hint max 2000 —
#: https://docs.slack.dev/reference/block-kit/blocks/input-block
MAX_INPUT_LABEL = 2_000
#: Image block / element: alt_text max 2000, image_url max 3000 —
#: https://docs.slack.dev/reference/block-kit/blocks/image-block
MAX_ALT_TEXT = 2_000

STYLES = frozenset({"primary", "danger"})


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


def _refuse(detail: str, where: str) -> ApiError:
    return ApiError("invalid_blocks", f"{detail} [json-pointer:{where}]")


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
        raise _refuse(f"no more than {limit} items allowed", "/blocks")
    seen_ids: set[str] = set()
    for index, block in enumerate(value):
        _check_block(block, f"/blocks/{index}", seen_ids)
    return value


def _check_block(block: object, where: str, seen_ids: set[str]) -> None:
    if not isinstance(block, dict):
        raise _refuse("must be an object", where)
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        raise _refuse(f"unsupported type: {kind!r}", f"{where}/type")
    block_id = block.get("block_id")
    if block_id is not None:
        if (
            not isinstance(block_id, str)
            or not 0 < len(block_id) <= MAX_BLOCK_ID
            or block_id in seen_ids
        ):
            raise _refuse("invalid or duplicate block_id", f"{where}/block_id")
        seen_ids.add(block_id)
    if kind == "section":
        _check_section(block, where)
    elif kind == "header":
        _check_text(block.get("text"), f"{where}/text", MAX_HEADER_TEXT, plain_only=True)
    elif kind == "image":
        _check_image(block, where)
    elif kind == "context":
        _check_list(block.get("elements"), f"{where}/elements", MAX_CONTEXT_ELEMENTS)
        for index, element in enumerate(block["elements"]):
            at = f"{where}/elements/{index}"
            if isinstance(element, dict) and element.get("type") == "image":
                _check_image(element, at)
            else:
                _check_text(element, at, MAX_TEXT_OBJECT)
    elif kind == "actions":
        _check_list(block.get("elements"), f"{where}/elements", MAX_ACTION_ELEMENTS)
        action_ids: set[str] = set()
        for index, element in enumerate(block["elements"]):
            _check_element(element, f"{where}/elements/{index}", action_ids)
    elif kind == "input":
        _check_text(block.get("label"), f"{where}/label", MAX_INPUT_LABEL, plain_only=True)
        if block.get("hint") is not None:
            _check_text(block["hint"], f"{where}/hint", MAX_INPUT_LABEL, plain_only=True)
        _check_element(block.get("element"), f"{where}/element", set())


def _check_section(block: dict[str, Any], where: str) -> None:
    if "text" not in block and "fields" not in block:
        raise _refuse("section needs text or fields", where)
    if "text" in block:
        _check_text(block["text"], f"{where}/text", MAX_SECTION_TEXT)
    if "fields" in block:
        _check_list(block["fields"], f"{where}/fields", MAX_SECTION_FIELDS)
        for index, item in enumerate(block["fields"]):
            _check_text(item, f"{where}/fields/{index}", MAX_FIELD_TEXT)
    if block.get("accessory") is not None:
        _check_element(block["accessory"], f"{where}/accessory", set())


def _check_list(value: object, where: str, limit: int) -> None:
    if not isinstance(value, list) or not value:
        raise _refuse("must be a non-empty array", where)
    if len(value) > limit:
        raise _refuse(f"no more than {limit} items allowed", where)


def _check_string(value: object, where: str, limit: int, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise _refuse(f"must be a string of 1..{limit} characters", where)


def _check_element(element: object, where: str, action_ids: set[str]) -> None:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        raise _refuse("element needs a type", where)
    kind = element["type"]
    action_id = element.get("action_id")
    if action_id is not None:
        _check_string(action_id, f"{where}/action_id", MAX_ACTION_ID)
        # "Should be unique among all other action_ids in the containing block."
        if action_id in action_ids:
            raise _refuse("duplicate action_id", f"{where}/action_id")
        action_ids.add(action_id)
    if element.get("confirm") is not None:
        _check_confirm(element["confirm"], f"{where}/confirm")
    if kind == "button":
        _check_text(element.get("text"), f"{where}/text", MAX_BUTTON_TEXT, plain_only=True)
        _check_string(element.get("value"), f"{where}/value", MAX_BUTTON_VALUE)
        _check_string(element.get("url"), f"{where}/url", MAX_URL)
        _check_string(element.get("accessibility_label"), f"{where}/accessibility_label", 75)
        if element.get("style") is not None and element["style"] not in STYLES:
            raise _refuse("style must be primary or danger", f"{where}/style")
    elif kind == "static_select":
        if element.get("placeholder") is not None:
            _check_text(
                element["placeholder"], f"{where}/placeholder", MAX_PLACEHOLDER, plain_only=True
            )
        options = element.get("options")
        groups = element.get("option_groups")
        if options is None and groups is None:
            raise _refuse("static_select needs options or option_groups", where)
        if options is not None:
            _check_list(options, f"{where}/options", MAX_OPTIONS)
            for index, option in enumerate(options):
                _check_option(option, f"{where}/options/{index}")
    elif kind == "plain_text_input":
        if element.get("placeholder") is not None:
            _check_text(
                element["placeholder"], f"{where}/placeholder", MAX_PLACEHOLDER, plain_only=True
            )
    elif kind == "image":
        _check_image(element, where)


def _check_option(option: object, where: str) -> None:
    if not isinstance(option, dict):
        raise _refuse("option must be an object", where)
    _check_text(option.get("text"), f"{where}/text", MAX_OPTION_TEXT)
    _check_string(option.get("value"), f"{where}/value", MAX_OPTION_VALUE, required=True)


def _check_confirm(confirm: object, where: str) -> None:
    if not isinstance(confirm, dict):
        raise _refuse("confirm must be an object", where)
    _check_text(confirm.get("title"), f"{where}/title", MAX_CONFIRM_TITLE, plain_only=True)
    _check_text(confirm.get("text"), f"{where}/text", MAX_CONFIRM_TEXT)
    _check_text(confirm.get("confirm"), f"{where}/confirm", MAX_CONFIRM_BUTTON, plain_only=True)
    _check_text(confirm.get("deny"), f"{where}/deny", MAX_CONFIRM_BUTTON, plain_only=True)
    if confirm.get("style") is not None and confirm["style"] not in STYLES:
        raise _refuse("style must be primary or danger", f"{where}/style")


def _check_image(image: dict[str, Any], where: str) -> None:
    if not (image.get("image_url") or image.get("slack_file")) or not image.get("alt_text"):
        raise _refuse("image needs image_url and alt_text", where)
    _check_string(image.get("alt_text"), f"{where}/alt_text", MAX_ALT_TEXT)
    _check_string(image.get("image_url"), f"{where}/image_url", MAX_URL)


def _check_text(text: object, where: str, limit: int, *, plain_only: bool = False) -> None:
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(text, dict) or text.get("type") not in allowed:
        raise _refuse(f"must be a text object of type {allowed}", where)
    value = text.get("text")
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise _refuse(
            f"must be 1..{limit} characters (got {len(value) if isinstance(value, str) else 0})",
            f"{where}/text",
        )


def check_message(text: object, blocks: list[dict[str, Any]], attachments: object) -> str:
    """The message text, after Slack's ``no_text`` / ``msg_too_long`` checks."""
    text = "" if text is None else str(text)
    if not text.strip() and not blocks and not attachments:
        raise ApiError("no_text")
    if len(text) > MAX_TEXT:
        raise ApiError("msg_too_long")
    return text


def check_metadata(value: object) -> dict[str, Any] | None:
    """``metadata`` as sent (an object, or a JSON string when form-encoded), validated.

    "metadata: JSON object with event_type and event_payload fields" (chat.postMessage,
    https://docs.slack.dev/reference/methods/chat.postMessage); "event_type: A human
    readable alphanumeric string", "event_payload: A free-form object"
    (https://docs.slack.dev/messaging/message-metadata). Anything else is refused with
    ``invalid_metadata_format``.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ApiError("invalid_metadata_format", "metadata is not valid JSON") from exc
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("event_type"), str)
        or not value["event_type"].strip()
        or not isinstance(value.get("event_payload"), dict)
    ):
        raise ApiError(
            "invalid_metadata_format", "metadata needs event_type (text) and event_payload"
        )
    return {"event_type": value["event_type"], "event_payload": value["event_payload"]}


class TokenBucket:
    """``capacity`` posts at once, refilled at ``rate`` per second of the clock.

    chat.postMessage "generally allows posting one message per second per channel";
    past that Slack answers HTTP 429 with a ``Retry-After`` header ("Posting messages: 1
    per second ... If you attempt bursts, there is no guarantee ...") —
    https://docs.slack.dev/apis/web-api/rate-limits. The fake holds the bot to the
    documented rate (capacity 1 by default) and grants no burst it was not promised.
    """

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
