"""Words and numbers shared by the KPI renderings (the weekly review, the Home tab, the
signal chain): durations, week labels, decisions, and the escaping of text that comes
from outside (SKUs, titles, people's notes) before it goes into mrkdwn — the same
:func:`monitors.mrkdwn.escape` every render path uses.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

from ledger import Verdict
from monitors.mrkdwn import clip, escape

DECISIONS = {"pass": "Pass: trend down", "escalate": "Not yet: escalate"}
DECISION_ICONS = {"pass": ":white_check_mark:", "escalate": ":sos:"}
#: the longest outside string shown inline (a SKU, a title, a note)
MAX_INLINE = 300


def esc(text: object, limit: int = MAX_INLINE) -> str:
    """``text`` safe inside mrkdwn, on one line, at most ``limit`` characters
    (:func:`monitors.mrkdwn.escape`: no mention, link or ``<!channel>`` can be smuggled
    in, and a cut never splits an entity)."""
    return escape(text, limit)


def fit(text: str, limit: int = 3000) -> str:
    """A section's text within Slack's limit, cut at a line, never inside an entity."""
    return clip(text, limit)


def span(value: timedelta | float | None) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``; ``n/a``."""
    if value is None:
        return "n/a"
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min" if minutes % 60 else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h" if hours % 24 else f"{hours // 24} d"


def week_label(week_start: date) -> str:
    """``Nov 2 – Nov 8, 2026``."""
    end = week_start + timedelta(days=6)
    return f"{week_start:%b} {week_start.day} – {end:%b} {end.day}, {end.year}"


def when(value: datetime, tz: tzinfo) -> str:
    """A moment people read, in the configuration's zone: ``Mon Nov 9, 09:12``."""
    local = value.astimezone(tz)
    return f"{local:%a %b} {local.day}, {local:%H:%M}"


def decision_line(verdict: Verdict, tz: tzinfo) -> str:
    """``✅ *Pass: trend down* — by @olivia, Mon Nov 9, 09:12: “note”``."""
    icon = DECISION_ICONS.get(verdict.decision, "")
    label = DECISIONS.get(verdict.decision, esc(verdict.decision))
    line = f"{icon} *{label}* — by <@{esc(verdict.decided_by, 40)}>, {when(verdict.decided_at, tz)}"
    if verdict.note:
        line += f": “{esc(verdict.note, 1000)}”"
    return line


def percent(value: float | None, places: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{places}%}"
