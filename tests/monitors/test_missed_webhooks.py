"""The two "missed webhook" detectors are one rule: the drift evidence (a level's
``changed_at`` against the deliveries for it) and the webhook-health monitor (changes in
the level history against the announcements) say "missed" for the same change and the
same deliveries, or neither does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.levels import Level
from ledger.evidence import DeliveryFact
from ledger.webhooks import Announcement, LevelChange
from monitors.evidence import _missed as evidence_missed
from monitors.missed_webhooks import RULE
from monitors.webhook_health import Thresholds, missed_changes

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=2)
RESOURCE = "gid://shopify/InventoryItem/1@gid://shopify/Location/1"


def _resolve(resource_key: str) -> tuple[str, str] | None:
    return ("TEE", "east") if resource_key == RESOURCE else None


def _health_missed(changed: datetime, heard: list[datetime]) -> bool:
    """The webhook-health monitor's verdict: judged only in its window (the ledger query
    of :meth:`WebhookHealth._facts`), then :func:`missed_changes`."""
    t = Thresholds()
    if not (NOW - t.missed_lookback <= changed <= NOW - t.announce_after):
        return False
    change = LevelChange("shopify", "TEE", "east", "available", 5, 4, changed, "poll", LONG_AGO)
    announcements = [Announcement(RESOURCE, when, when + timedelta(seconds=2)) for when in heard]
    return bool(
        missed_changes(
            [change], announcements, _resolve, before=t.announce_before, after=t.announce_after
        )
    )


def _evidence_missed(changed: datetime, heard: list[datetime]) -> bool:
    level = Level("shopify", "TEE", "east", {"available": 4}, NOW, changed_at=changed)
    seen = [
        DeliveryFact(
            "inventory_levels/update", RESOURCE, "processed", when, when + timedelta(seconds=2), {}
        )
        for when in heard
    ]
    return evidence_missed(level, seen, NOW)


def test_the_health_monitor_defaults_are_the_rule() -> None:
    t = Thresholds()
    assert (t.missed_lookback, t.announce_before, t.announce_after) == (
        RULE.lookback,
        RULE.before,
        RULE.after,
    )


minutes = st.integers(min_value=-180, max_value=180)


@settings(max_examples=400, deadline=None)
@given(age=st.integers(min_value=0, max_value=150), offsets=st.lists(minutes, max_size=3))
def test_both_detectors_agree(age: int, offsets: list[int]) -> None:
    changed = NOW - timedelta(minutes=age)
    heard = [changed + timedelta(minutes=m) for m in offsets]
    assert _evidence_missed(changed, heard) == _health_missed(changed, heard)


def test_the_cases_they_used_to_disagree_on() -> None:
    changed = NOW - timedelta(minutes=7)
    # 7 minutes old: the evidence judged it (5 minute grace), the monitor did not yet.
    assert not _evidence_missed(changed, [])
    assert not _health_missed(changed, [])
    older = NOW - timedelta(minutes=40)
    # a delivery 20 minutes before the poll's change: the monitor's tolerance took it
    # as the announcement, the evidence's (1 minute) did not
    heard = [older - timedelta(minutes=20)]
    assert not _evidence_missed(older, heard)
    assert not _health_missed(older, heard)
    # a delivery 25 minutes after the change announces a later change, not this one
    late = [older + timedelta(minutes=25)]
    assert _evidence_missed(older, late)
    assert _health_missed(older, late)
    assert _evidence_missed(older, [])
    assert _health_missed(older, [])
