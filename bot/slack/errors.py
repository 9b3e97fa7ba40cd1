"""Slack delivery failures as typed reasons with a retry flag.

    SlackDeliveryError            a Web API call did not do what we asked
    ├── SlackRateLimited          429: retry after ``retry_after`` seconds
    ├── SlackUnavailable          5xx, timeouts, connection trouble: retry with backoff
    └── SlackRejected             an API error (ok: false) — retryable or not by its code,
                                  or a payload slack_sdk refused to build

The outbox reads ``retryable``, ``retry_after``, ``payload`` (the message itself was
refused: render it again in a reduced form) and ``maybe_sent`` (the call may have taken
effect before it failed: look for the post before posting again); nothing parses
messages.
"""

from __future__ import annotations

import asyncio

import aiohttp
from slack_sdk.errors import SlackApiError, SlackObjectFormationError

#: API errors that a person must fix (a token, a channel, an invite). The message is
#: kept and retried slowly, so it is delivered once they have: no incident is lost.
NEEDS_ATTENTION = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "missing_scope",
    }
)
#: API errors about the payload: the same message can never be accepted, a reduced one
#: may (chat.postMessage and chat.update list these).
PAYLOAD = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "msg_blocks_too_long",
        "no_text",
        "invalid_arguments",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
        "too_many_attachments",
        "invalid_attachments",
    }
)
#: API errors about the message's target: sending it again cannot succeed.
PERMANENT = PAYLOAD | {"message_not_found", "cant_update_message", "thread_not_found"}


class SlackDeliveryError(Exception):
    retryable: bool = True
    retry_after: float | None = None
    needs_attention: bool = False
    #: the message itself was refused (by Slack or by slack_sdk before sending)
    payload: bool = False
    #: the call may have taken effect before it failed (a timeout, a 5xx)
    maybe_sent: bool = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SlackRateLimited(SlackDeliveryError):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("ratelimited")
        self.retry_after = retry_after


class SlackUnavailable(SlackDeliveryError):
    def __init__(self, reason: str, *, maybe_sent: bool = True) -> None:
        super().__init__(reason)
        self.maybe_sent = maybe_sent


class SlackRejected(SlackDeliveryError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        code = reason.split(":", 1)[0]
        self.retryable = code not in PERMANENT
        self.payload = code in PAYLOAD
        self.needs_attention = code in NEEDS_ATTENTION


def classify(exc: BaseException) -> SlackDeliveryError:
    """The typed error for whatever a slack_sdk call (or building its payload) raised."""
    if isinstance(exc, SlackDeliveryError):
        return exc
    if isinstance(exc, SlackObjectFormationError):
        # slack_sdk's Block Kit models refuse what Slack would answer invalid_blocks to
        # (e.g. a confirm dialog's text over 300 characters), before anything is sent.
        return SlackRejected(f"invalid_blocks: {_first_line(exc)}")
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        if status == 429:
            header = exc.response.headers.get("Retry-After") or exc.response.headers.get(
                "retry-after"
            )
            try:
                wait = float(header) if header is not None else None
            except (TypeError, ValueError):
                wait = None
            return SlackRateLimited(wait)
        if status >= 500:
            return SlackUnavailable(f"HTTP {status}")
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        return SlackRejected(str(error or f"HTTP {status}"))
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return SlackUnavailable(type(exc).__name__, maybe_sent=False)  # never connected
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError):
        return SlackUnavailable(type(exc).__name__)
    return SlackRejected(f"unexpected {type(exc).__name__}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
