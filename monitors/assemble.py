"""What the drift diff job is assembled with beyond its connectors and rules: the
evidence source behind root-cause hints and the work that follows each diff (the
auto-resync policy). The bot calls these once when it builds its service."""

from __future__ import annotations

from connectors.clock import Clock
from ledger import Ledger
from monitors.config import Config
from monitors.jobs import AfterDiff, EvidenceSource
from monitors.resync import ResyncService


def evidence_source(config: Config, ledger: Ledger, clock: Clock) -> EvidenceSource | None:
    """The ledger- and config-backed evidence for root-cause hints (None: the diff's own)."""
    return None


def after_diff_hooks(
    config: Config, ledger: Ledger, resync: ResyncService, clock: Clock
) -> list[AfterDiff]:
    """Hooks run after every diff, in order."""
    return []
