"""Text for people in Slack: untrusted strings as data, bounded, and times in each
reader's own zone.

Every string Driftwatch did not write itself — SKUs, titles, location and system names,
error texts from Shopify, the WMS or the ERP, and whatever a person typed (root-cause
notes, ``/adjust`` notes, modal input) — reaches a Slack message through
:func:`escape`, the one function for it. Slack reads ``&``, ``<`` and ``>`` as control
characters in mrkdwn and in a message's ``text``, so they "must be converted to HTML
entities if they're not going to be used for their parsing purpose" (Slack, *Formatting
text for app surfaces*, "Escaping text":
https://docs.slack.dev/messaging/formatting-message-text#escaping). Escaped, a SKU
``<@U0CFO0042>`` is shown, not a mention; ``<!channel>``, ``<!subteam^…>`` and
``<https://…|label>`` are shown, not obeyed. Nothing else is entity-encoded (Slack
decodes only these three).

:func:`escape` also makes the value one line (control characters become spaces, so a
SKU cannot start a new line that looks like Driftwatch's own) and, given a ``limit``,
cuts it to fit: the cut is made on the raw characters, so an escape is never broken
(``&amp;`` is all there or not at all). People's text, which may have several lines, is
quoted with :func:`quote` (each line through :func:`escape`), so it reads as a quote
rather than as the bot's words.

This module lives in ``monitors`` because the incident pipeline and the auto-resync
policy compose the thread replies they queue in the outbox; ``bot`` renders everything
else with the same functions. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

__all__ = [
    "ELLIPSIS",
    "SYSTEM_ACTOR_NAME",
    "clip",
    "escape",
    "person",
    "plain",
    "public_error",
    "quote",
    "usergroup",
    "when",
]

ELLIPSIS = "…"
#: how the system actor (``ledger.SYSTEM_ACTOR``) is shown: it is not a Slack user
SYSTEM_ACTOR_NAME = "Driftwatch (auto)"
_SYSTEM_ACTORS = frozenset({"driftwatch"})

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
#: bidirectional overrides and isolates: they reorder what a reader sees
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: a Slack user id (``U…``, or ``W…`` on Enterprise Grid) and a user group id (``S…``)
_USER_ID = re.compile(r"[UW][A-Z0-9]{1,30}")
_GROUP_ID = re.compile(r"S[A-Z0-9]{1,30}")
#: an address (scheme://…): internal endpoints, tokens in query strings
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{1,15}://[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]]")
#: where :func:`clip` may not cut an already escaped mrkdwn string
_ATOM = re.compile(r"&(?:amp|lt|gt);|<[^<>\n]*>")
URL_HIDDEN = "[address hidden]"


def _one_line(text: str) -> str:
    out = []
    for ch in text:
        if ch in _BIDI:
            out.append("\ufffd")
        elif unicodedata.category(ch) == "Cc":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def escape(value: object, limit: int | None = None) -> str:
    """``value`` as mrkdwn that shows it literally: one line, ``&``, ``<``, ``>`` as
    entities, and (with ``limit``) at most ``limit`` characters after escaping, ending
    in ``…`` when cut. The cut never splits an entity."""
    pieces = [_ENTITIES.get(ch, ch) for ch in _one_line(str(value))]
    if limit is None or sum(len(p) for p in pieces) <= limit:
        return "".join(pieces)
    if limit < 1:
        return ""
    room = limit - len(ELLIPSIS)
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > room:
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept).rstrip() + ELLIPSIS


def quote(text: object, limit: int | None = None) -> str:
    """A person's text, possibly several lines, as a mrkdwn block quote of escaped
    lines; at most ``limit`` characters in all (cut at a line, else within one)."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    quoted = "\n".join("> " + escape(line) for line in lines)
    return quoted if limit is None else clip(quoted, limit)


def plain(value: object, limit: int) -> str:
    """``value`` for a ``plain_text`` object (a header, a button, a confirm title):
    Slack shows it as typed, so nothing is escaped; one line, at most ``limit``
    characters, ending in ``…`` when cut."""
    text = _one_line(str(value)).strip() or "-"
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ELLIPSIS))].rstrip() + ELLIPSIS


def clip(mrkdwn: str, limit: int) -> str:
    """An already composed mrkdwn string within ``limit`` characters: cut at the last
    line break that fits if there is one in the last quarter, else at the last safe
    point — never inside an entity or a ``<…>`` control sequence — and end in ``…``."""
    if len(mrkdwn) <= limit:
        return mrkdwn
    room = max(0, limit - len(ELLIPSIS))
    cut = room
    for atom in _ATOM.finditer(mrkdwn):
        if atom.start() < room < atom.end():
            cut = atom.start()
            break
        if atom.start() >= room:
            break
    line = mrkdwn.rfind("\n", 0, cut)
    if line >= room * 3 // 4:
        cut = line
    return mrkdwn[:cut].rstrip() + ELLIPSIS


def person(user: object) -> str:
    """Who did something: a Slack user id as a mention (``<@U…>``), the system actor
    as ``Driftwatch (auto)``, anything else as escaped text."""
    text = str(user or "").strip()
    if text.lower() in _SYSTEM_ACTORS:
        return SYSTEM_ACTOR_NAME
    if _USER_ID.fullmatch(text):
        return f"<@{text}>"
    return escape(text or "someone", 60)


def usergroup(group: object) -> str | None:
    """A user group mention (``<!subteam^S…>``) for a well-formed group id, else None."""
    text = str(group or "").strip()
    return f"<!subteam^{text}>" if _GROUP_ID.fullmatch(text) else None


def when(value: datetime | str | None) -> str:
    """A moment as Slack date formatting, which each reader's client shows in their own
    zone (https://docs.slack.dev/messaging/formatting-message-text#date-formatting),
    with a UTC fallback; ``unknown`` for None or an unreadable value."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return "unknown"
    if value is None:
        return "unknown"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    at = value.astimezone(UTC)
    fallback = f"{at:%Y-%m-%d %H:%M} UTC"
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def public_error(text: object, limit: int = 500) -> str:
    """An error text that a person may read: addresses (the Slack API's, a WMS
    endpoint's with its query string) replaced by ``[address hidden]``, then escaped
    and bounded."""
    return escape(_URL.sub(URL_HIDDEN, str(text)), limit)
