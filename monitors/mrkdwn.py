"""Untrusted strings (SKUs, locations, system errors, what people typed) as mrkdwn that
shows them literally: ``&``, ``<`` and ``>`` as the entities Slack decodes (Slack,
*Formatting text for app surfaces*, "Escaping text":
https://docs.slack.dev/messaging/formatting-message-text#escaping), one line, bounded.

A subset of the module of the same name on ``h13-render`` (the one escape function of
issue 13, item 5), with the same signature, so the texts this branch adds use it
already; at merge, that module replaces this one.
"""

from __future__ import annotations

import unicodedata

ELLIPSIS = "…"
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


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


__all__ = ["ELLIPSIS", "escape"]
