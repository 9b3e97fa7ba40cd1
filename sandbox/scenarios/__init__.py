"""Eleven scripted drift scenarios from the field notes, deterministic with their seeds.

Each :class:`Scenario` plays one pattern on a :class:`Stage` (the sandbox world built
with ``SandboxWorld(scenarios=True)`` and a clock the script moves) and declares the
incidents it must lead to (:class:`Expected`): the kind, the system, the SKU and
location, and the root-cause key the alert should name. They play on SKUs of their
own, so they can be played one after another in one world in :data:`SCENARIOS` order
(the two webhook scenarios leave the shop's webhooks broken, so they come last).

The sandbox never imports the product: the causes and kinds are plain strings that
match ``monitors.hints.CAUSES`` and the webhook-health incident kinds.
"""

from __future__ import annotations

from sandbox.scenarios import sales, sync, webhooks
from sandbox.scenarios.model import (
    ERP_SETTLE_SECONDS,
    Expected,
    LocalStage,
    Scenario,
    Stage,
    SteppingClock,
)

__all__ = [
    "ERP_SETTLE_SECONDS",
    "SCENARIOS",
    "Expected",
    "LocalStage",
    "Scenario",
    "Stage",
    "SteppingClock",
    "by_name",
    "names",
]

SCENARIOS: tuple[Scenario, ...] = sales.SCENARIOS + sync.SCENARIOS + webhooks.SCENARIOS


def names() -> list[str]:
    """Every scenario's name, in playing order."""
    return [s.name for s in SCENARIOS]


def by_name(name: str) -> Scenario:
    """The scenario called ``name``; ``KeyError`` naming the valid ones otherwise."""
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    raise KeyError(f"no scenario {name!r}; choose one of: {', '.join(names())}")
