"""Slack delivery failures as typed reasons with a retry flag.

    SlackDeliveryError            a Web API call did not do what we asked
    ├── SlackRateLimited          429: retry after ``retry_after`` seconds
    ├── SlackUnavailable          5xx, timeouts, connection refused: retry with backoff
    └── SlackRejected             an API error (ok: false) — retryable or not by its code

The outbox reads ``retryable`` and ``retry_after``; nothing parses messages.
"""

from __future__ import annotations

import asyncio

import aiohttp
from slack_sdk.errors import SlackApiError

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
#: API errors about the message itself: sending it again cannot succeed.
PERMANENT = frozenset(
    {"invalid_blocks", "msg_too_long", "no_text", "message_not_found", "cant_update_message"}
)


class SlackDeliveryError(Exception):
    retryable: bool = True
    retry_after: float | None = None
    needs_attention: bool = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SlackRateLimited(SlackDeliveryError):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("ratelimited")
        self.retry_after = retry_after


class SlackUnavailable(SlackDeliveryError):
    pass


class SlackRejected(SlackDeliveryError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.retryable = reason not in PERMANENT
        self.needs_attention = reason in NEEDS_ATTENTION


def classify(exc: BaseException) -> SlackDeliveryError:
    """The typed error for whatever a slack_sdk call raised."""
    if isinstance(exc, SlackDeliveryError):
        return exc
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
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError):
        return SlackUnavailable(type(exc).__name__)
    return SlackRejected(f"unexpected {type(exc).__name__}")
