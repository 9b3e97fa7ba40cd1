"""Words and numbers shared by the KPI renderings (the weekly review, the Home tab, the
signal chain): durations, week labels, decisions, and the escaping of text that comes
from outside (SKUs, titles, people's notes) before it goes into mrkdwn.

``esc`` is this package's local stand-in for the one escape function the alerts are
moving to; every outside or person string in the KPI renderings goes through it, so
swapping it is one edit here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo

from ledger import Verdict

DECISIONS = {"pass": "Pass: trend down", "escalate": "Not yet: escalate"}
DECISION_ICONS = {"pass": ":white_check_mark:", "escalate": ":sos:"}
#: the longest outside string shown inline (a SKU, a title, a note)
MAX_INLINE = 300


def esc(text: object, limit: int = MAX_INLINE) -> str:
    """``text`` safe inside mrkdwn: ``&``, ``<`` and ``>`` escaped as Slack asks (so no
    ``<!channel>``, link or mention can be smuggled in), no line breaks, cut at
    ``limit`` characters."""
    value = " ".join(str(text).split())
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int = 3000) -> str:
    """A section's text within Slack's limit, cut at a line."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit - 2)
    return text[: cut if cut > 0 else limit - 2] + "\n…"


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
