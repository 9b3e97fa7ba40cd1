"""Block Kit text objects within Slack's limits, for every render path.

Values from outside are escaped (:func:`monitors.mrkdwn.escape`) where a message is
composed; these helpers bound the composed text to the field it goes into, so a long
SKU never makes Slack (or slack_sdk, before sending) refuse the whole message. The
limits are Block Kit's (https://docs.slack.dev/reference/block-kit/blocks,
https://docs.slack.dev/reference/block-kit/composition-objects).

mrkdwn objects are ``verbatim``: Slack then does not turn bare URLs or channel names in
the data into links (https://docs.slack.dev/reference/block-kit/composition-objects/text-object),
while our own ``<!date^…>``, ``<@U…>`` and ``<!subteam^…>`` are still processed.
"""

from __future__ import annotations

from slack_sdk.models.blocks import ConfirmObject, HeaderBlock, MarkdownTextObject

from monitors.mrkdwn import clip, plain

#: a section's text; a context element's text
SECTION_TEXT = 3000
#: one of a section's fields
FIELD_TEXT = 2000
HEADER_TEXT = 150
BUTTON_TEXT = 75
OPTION_TEXT = 75
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
#: a message's top-level ``text``: Slack truncates at 40,000; a notification shows far
#: less, so it is kept short
MESSAGE_TEXT = 3000


def md(text: str, limit: int = SECTION_TEXT) -> MarkdownTextObject:
    """A verbatim mrkdwn object with ``text`` (already escaped) cut to ``limit``."""
    return MarkdownTextObject(text=clip(text or " ", limit), verbatim=True)


def field(text: str) -> MarkdownTextObject:
    """A section field (at most :data:`FIELD_TEXT` characters)."""
    return md(text, FIELD_TEXT)


def header(text: str) -> HeaderBlock:
    """A header block: plain text, one line, at most :data:`HEADER_TEXT` characters."""
    return HeaderBlock(text=plain(text, HEADER_TEXT))


def confirm(
    title: str, text: str, yes: str, no: str = "Cancel", *, style: str | None = None
) -> ConfirmObject:
    """A confirm dialog within its limits (title 100, text 300, buttons 30); ``style``
    ``danger`` makes its confirm button red."""
    return ConfirmObject(
        title=plain(title, CONFIRM_TITLE),
        text=md(text, CONFIRM_TEXT),
        confirm=plain(yes, CONFIRM_BUTTON),
        deny=plain(no, CONFIRM_BUTTON),
        style=style,
    )


def message_text(text: str) -> str:
    """A message's notification ``text`` (already escaped), bounded."""
    return clip(text, MESSAGE_TEXT)
