"""The one rule for "a poll found a change that no webhook announced".

Two detectors ask it: the webhook-health monitor (changes in the ledger's level history
against the announcements received, :func:`monitors.webhook_health.missed_changes`) and
the root-cause evidence of a drift (a level's ``changed_at`` against the deliveries for
that level, :mod:`monitors.evidence`). Both judge with :data:`RULE`, so one change is
missed for both or for neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class MissedRule:
    """When an announcement explains a change, and which changes are judged at all.

    A change seen at ``seen_at`` is judged once it is at least ``after`` old (its webhook
    may still be in flight before that) and at most ``lookback`` old. An announcement at
    ``heard_at`` (the webhook's ``triggered_at``, else when it arrived) explains it when it
    came after the value before the change was seen (``previous_at``, where known), at
    most ``before`` ahead of ``seen_at`` (a poll sees a change late) and at most
    ``after`` behind it (a late delivery, or clocks that differ a little).
    """

    lookback: timedelta = timedelta(hours=1)
    before: timedelta = timedelta(minutes=30)
    after: timedelta = timedelta(minutes=10)

    def judged(self, seen_at: datetime, now: datetime) -> bool:
        """Whether a change seen at ``seen_at`` is old enough, and young enough, to judge."""
        return now - self.lookback <= seen_at <= now - self.after

    def explains(
        self, heard_at: datetime, seen_at: datetime, previous_at: datetime | None = None
    ) -> bool:
        """Whether an announcement at ``heard_at`` explains a change seen at ``seen_at``."""
        if previous_at is not None and heard_at <= previous_at:
            return False
        return seen_at - self.before <= heard_at <= seen_at + self.after


#: The rule both detectors use.
RULE = MissedRule()
