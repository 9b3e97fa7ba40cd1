"""The words of an incident's thread replies about how its drift ended or went on, from
the facts the pipeline stored (one read: ``details`` and ``details["resolution"]``).

Slack mrkdwn: names from the configuration and outside systems go through
:func:`monitors.mrkdwn.escape`; an action's text arrives escaped (its composer escapes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitors.incidents import TITLES
from monitors.mrkdwn import escape
from monitors.pipeline.model import Action


def counts(values: Mapping[str, Any] | None, truth: object = None) -> str:
    """``shopify 28, wms 28 (source of truth)``: every system's count, as read."""
    parts = []
    for system, value in (values or {}).items():
        shown = "not reported" if value is None else f"{value}"
        mark = " (source of truth)" if system == truth else ""
        parts.append(f"{escape(system, 60)} {shown}{mark}")
    return ", ".join(parts) or "no counts"


def _signed(n: object) -> str:
    return f"{n:+d}" if isinstance(n, int) else "?"


def kind_words(kind: str) -> str:
    return TITLES.get(kind, kind.replace("_", " ")).lower()


def resolved_reply(resolution: Mapping[str, Any], *, grouped: bool = False) -> str:
    """How an incident Driftwatch resolved ended: after what, how, and the final counts."""
    after = resolution.get("after")
    lead = f"{after['text']}\n" if isinstance(after, Mapping) and after.get("text") else ""
    how = str(resolution.get("how") or "every system agrees with the source of truth again")
    if grouped or not isinstance(resolution.get("values"), Mapping):
        return f"{lead}Recovered: {how}." if resolution.get("agrees") else f"{lead}Resolved: {how}."
    final = counts(resolution.get("values"), resolution.get("truth_system"))
    if resolution.get("agrees"):
        return f"{lead}Recovered: {how} ({final})."
    return f"{lead}Resolved: {how} ({final})."


def still_drifting(details: Mapping[str, Any], action: Action, cause: str | None) -> str:
    """The reply when a re-checked drift goes on: the action, the new numbers, the reason."""
    system = escape(details.get("system"), 60)
    if details.get("grouped"):
        numbers = f"{details.get('count')} SKUs still drift"
    else:
        every = counts(details.get("values"), details.get("truth_system"))
        numbers = (
            f"{system} {details.get('actual')}, expected {details.get('expected')} "
            f"({_signed(details.get('gap'))}; {every})"
        )
    reason = ""
    if action.status in ("applied", "in_sync", None) and cause:
        reason = f"\nLikely cause: {escape(cause, 1000)}"
    return f"{action.text}\nStill drifting: {numbers}.{reason}"


def not_rechecked(action: Action, failures: Mapping[str, str]) -> str:
    """The reply when the SKU could not be read again after the action."""
    if not failures:
        return f"{action.text}\nCould not check the result: it was not read again."
    systems = ", ".join(escape(s, 60) for s in sorted(failures))
    return f"{action.text}\nCould not read it again to check the result ({systems} did not answer)."


def already_resolved(action: Action, resolution: object) -> str:
    """The reply to an action on an incident another action already resolved (a second
    click on the same Resync)."""
    how = resolution.get("how") if isinstance(resolution, Mapping) else None
    ended = f": {escape(how, 300)}" if how else ""
    return f"{action.text}\nThe alert was already resolved{ended}."


__all__ = [
    "already_resolved",
    "counts",
    "kind_words",
    "not_rechecked",
    "resolved_reply",
    "still_drifting",
]
