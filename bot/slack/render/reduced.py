"""Reduced forms of a message Slack (or slack_sdk, before sending) refused.

When the full alert cannot be sent — a 203-character SKU pushes the Resync confirm past
Slack's 300 characters, a section past 3,000 — the outbox sends the same facts in a
smaller shape instead of retrying what can never pass:

1. :func:`reduced_alert`: the essential facts as plain text (no mrkdwn, so nothing in
   them is interpreted), every outside string clipped to a safe length, and the same
   buttons with a confirm whose text fits;
2. :func:`bare_alert`: the facts as text alone, no blocks.

Only if Slack refuses even that is the message given up (dead-lettered, and a health
incident raised by the outbox).
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ConfirmObject,
    ContextBlock,
    PlainTextObject,
    SectionBlock,
)

from bot.slack.render.actions import incident_actions
from ledger import Incident
from monitors.mrkdwn import escape

#: Slack's limits the reduced forms stay inside (cited where the fake enforces them:
#: sandbox/slack/rules.py)
SECTION_TEXT = 3000
CONFIRM_TEXT = 300
#: how much of one outside string (a SKU, a location, a system name) a reduced form keeps
FIELD = 60
#: the notification text of a reduced alert
NOTIFICATION = 500


def clip(value: object, limit: int, *, one_line: bool = True) -> str:
    """``value`` as text of at most ``limit`` characters, cut with an ellipsis
    (``one_line``: runs of whitespace, newlines included, become one space)."""
    text = " ".join(str(value).split()) if one_line else str(value)
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


def _signed(value: object) -> str:
    return f"{value:+d}" if isinstance(value, int) else "n/a"


def facts(incident: Incident) -> list[str]:
    """The essential facts of an incident, one per line, every outside string clipped."""
    d: dict[str, Any] = dict(incident.details or {})
    lines = [clip(incident.title, 150)]
    if incident.sku is not None:
        lines.append(f"SKU: {clip(incident.sku, FIELD)}")
    if incident.location is not None:
        lines.append(f"Location: {clip(incident.location, FIELD)}")
    system = d.get("system")
    if system is not None:
        lines.append(f"Drifting system: {clip(system, FIELD)}")
    if "gap" in d:
        lines.append(
            f"Gap: {_signed(d.get('gap'))} units vs expected {clip(d.get('expected'), 20)}"
        )
    values = d.get("values")
    if isinstance(values, dict) and values:
        shown = ", ".join(
            f"{clip(name, 30)} {clip('not reported' if v is None else v, 20)}"
            for name, v in list(values.items())[:10]
        )
        lines.append(f"Counts: {shown}")
    if d.get("last_error"):
        lines.append(f"Last error: {clip(d['last_error'], 300)}")
    status = incident.status + (" (acknowledged)" if incident.acknowledged_by else "")
    lines.append(
        f"Incident #{incident.id} · {clip(incident.kind, 40)} · {incident.severity} · {status}"
    )
    return lines


def _resync_confirm(incident: Incident) -> ConfirmObject:
    d: dict[str, Any] = dict(incident.details or {})
    text = (
        f"Set {clip(d.get('system'), 30)} to {clip(d.get('expected'), 20)} for "
        f"{clip(incident.sku, 40)} at {clip(incident.location, 30)}, the value "
        f"{clip(d.get('truth_system'), 30)} holds. The write is compare-and-set."
    )
    return ConfirmObject(
        title="Resync from the source of truth?",
        text=PlainTextObject(text=clip(text, CONFIRM_TEXT)),
        confirm="Resync",
        deny="Cancel",
    )


def _actions(incident: Incident) -> ActionsBlock | None:
    if incident.status == "resolved":
        return None
    if incident.fingerprint.startswith(("health:", "webhook:")) or incident.sku is None:
        return incident_actions(incident.id)
    return incident_actions(incident.id, resync=_resync_confirm(incident))


def reduced_alert(incident: Incident) -> tuple[str, list[dict[str, Any]]]:
    """The alert's facts in plain text with its buttons: text and blocks as JSON."""
    lines = facts(incident)
    blocks: list[Block] = [
        SectionBlock(
            text=PlainTextObject(text=clip("\n".join(lines[:-1]), SECTION_TEXT, one_line=False))
        ),
        ContextBlock(
            elements=[
                PlainTextObject(
                    text=clip(
                        lines[-1] + " · shown in short: the full alert was refused", SECTION_TEXT
                    )
                )
            ]
        ),
    ]
    actions = _actions(incident)
    if actions is not None:
        blocks.append(actions)
    return bare_alert(incident), [b.to_dict() for b in blocks]


def bare_alert(incident: Incident) -> str:
    """The alert as text alone: the title and the figures, escaped and clipped."""
    lines = facts(incident)
    return escape(" · ".join(lines[:4]), NOTIFICATION)


def bare_text(text: object, limit: int = SECTION_TEXT) -> str:
    """Any message's text, clipped to what Slack always accepts."""
    return clip(text, limit, one_line=False).strip() or "(empty message)"
