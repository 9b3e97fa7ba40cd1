"""The thread replies and private answers the Slack listeners send, as mrkdwn.

People's words (a root cause's remediation and follow-up, an ``/adjust`` note) are
quoted, never interpreted: :func:`monitors.mrkdwn.quote`. A service's message (a resync
or an adjustment, which may carry an error from a system) is shown without addresses:
:func:`monitors.mrkdwn.public_error`. Who did it is :func:`monitors.mrkdwn.person`.
"""

from __future__ import annotations

from datetime import datetime

from monitors.mrkdwn import escape, person, public_error, quote, when

#: how much of a person's note a reply quotes
NOTE_LIMIT = 1500
#: how much of a service's message a reply shows
MESSAGE_LIMIT = 1500


def acknowledged(user: str) -> str:
    return f"Acknowledged by {person(user)}"


def already_acknowledged(incident_id: int, user: str | None) -> str:
    return f"Incident #{incident_id} was already acknowledged by {person(user)}."


def resolved(user: str) -> str:
    return f"Resolved by {person(user)}"


def snoozed(hours: int, user: str, until: datetime) -> str:
    plural = "s" if hours != 1 else ""
    return f"Snoozed for {hours} hour{plural} by {person(user)} (until {when(until)})"


def unknown_snooze(value: str) -> str:
    return f"Sorry, I do not understand the snooze choice `{escape(value, 60)}`."


def root_cause_logged(user: str, label: str, remediation: str | None, follow_up: str | None) -> str:
    reply = f"Root cause logged by {person(user)}: *{escape(label, 100)}*"
    if remediation:
        reply += f"\nRemediation:\n{quote(remediation, NOTE_LIMIT)}"
    if follow_up:
        reply += f"\nFollow-up:\n{quote(follow_up, NOTE_LIMIT)}"
    return reply


def service_message(message: str) -> str:
    """A resync's or an adjustment's message as a person reads it."""
    return public_error(message, MESSAGE_LIMIT)


def resync_requested(message: str, user: str) -> str:
    return f"{service_message(message)} — requested by {person(user)}"


def resync_failed(message: str) -> str:
    return f"The resync did not go through: {service_message(message)}"


def resync_done(sku: str, location: str) -> str:
    return f"Resync of `{escape(sku, 100)}` at {escape(location, 60)} done; see the alert."


def adjusted(message: str, user: str, note: str | None) -> str:
    reply = f"{service_message(message)}\nAdjusted by {person(user)}"
    if note:
        reply += f", noting:\n{quote(note, NOTE_LIMIT)}"
    return reply


def shared(text: str, user: str) -> str:
    """A ``/drift`` report shared in the channel: its text (already mrkdwn) and who."""
    return f"{text} (shared by {person(user)})"
