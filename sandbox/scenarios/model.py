"""What a scenario is, the stage it plays on, and the moves the outside world makes.

A scenario scripts one drift pattern from the field notes through the fakes' own APIs
(orders, refunds and admin edits in the fake Shopify, counts and shipments in the fake
WMS, exports of the fake ERP, webhook and rate-limit knobs), in accelerated time: the
script moves the stage's clock itself, so the same seed always plays the same events
at the same instants. It knows nothing of Driftwatch; when the script wants the
monitor to look (a poll), it says so with :meth:`Stage.checkpoint` and whoever
directs the play decides what that means (the demo runs a diff; the sandbox's own
tests only let the webhooks out).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sandbox.world import World

#: Seconds the ERP's drop needs before a reader takes it as settled (past the reader's
#: quiet period): the scripts wait this long after each export.
ERP_SETTLE_SECONDS = 90.0


class SteppingClock(Protocol):
    """A clock the script moves: ``now()`` and ``advance(seconds)``."""

    def now(self) -> datetime: ...

    def advance(self, seconds: float) -> None: ...


class Stage(Protocol):
    """Where a scenario plays: the world, its clock, and the director's hooks."""

    @property
    def world(self) -> World: ...

    @property
    def clock(self) -> SteppingClock: ...

    async def settle(self) -> None:
        """Let every webhook emitted so far reach its subscribers and be answered."""
        ...

    async def checkpoint(self, label: str) -> None:
        """The monitor looks now (``label`` says at what, for the log)."""
        ...


@dataclass(frozen=True)
class Expected:
    """An incident the scenario must lead to.

    ``cause`` is the root-cause key of ``monitors.hints.CAUSES`` the alert should name
    (None for the webhook incidents, whose ``kind`` is the finding); ``sku`` and
    ``location`` are None for an incident about a whole system.
    ``auto_resync`` marks a drift a monitor's auto-resync policy should fix by itself.
    """

    kind: str
    system: str
    sku: str | None = None
    location: str | None = None
    cause: str | None = None
    #: the drift is small and safe to lower: an auto-resync policy should fix it on its
    #: own, without a person
    auto_resync: bool = False


Script = Callable[["Stage", random.Random], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """One scripted drift pattern with its seed and what it must produce.

    ``expected[0]`` is the incident the scenario is about; any others follow from it.
    """

    name: str
    title: str
    story: str
    seed: int
    skus: tuple[str, ...]
    expected: tuple[Expected, ...]
    script: Script

    async def play(self, stage: Stage) -> None:
        """Play the script on ``stage`` with this scenario's seed."""
        await self.script(stage, random.Random(self.seed))


class LocalStage:
    """A stage without a monitor: checkpoints only let the webhooks out and are
    recorded (``checkpoints``), for tests of the scenarios themselves."""

    def __init__(self, world: World, clock: SteppingClock) -> None:
        self._world = world
        self._clock = clock
        self.checkpoints: list[tuple[datetime, str]] = []

    @property
    def world(self) -> World:
        return self._world

    @property
    def clock(self) -> SteppingClock:
        return self._clock

    async def settle(self) -> None:
        await self._world.shopify.webhooks.idle()

    async def checkpoint(self, label: str) -> None:
        await self.settle()
        self.checkpoints.append((self._clock.now(), label))


# -- moves of the outside world -------------------------------------------------------------
def flush(world: World) -> None:
    """Shopify sends the ``inventory_levels/update`` of the changes made so far."""
    world.shopify.webhooks.flush()


def wms_allocate(world: World, sku: str, location: str, qty: int) -> int:
    """The WMS commits ``qty`` units to orders (pickable → allocated), as far as it has
    pickable stock; returns how many it could allocate."""
    level = world.wms.level(sku, world.warehouse(location))
    take = max(0, min(qty, level.pickable))
    if take:
        world.wms.set_level(sku, level.warehouse, allocated=level.allocated + take)
    return take


def wms_ship(world: World, sku: str, location: str, qty: int) -> None:
    """Allocated units leave the warehouse (allocated and on_hand drop)."""
    level = world.wms.level(sku, world.warehouse(location))
    world.wms.set_level(
        sku,
        level.warehouse,
        on_hand=level.on_hand - qty,
        pickable=level.pickable,
        allocated=level.allocated - qty,
    )


def wms_receive(world: World, sku: str, location: str, qty: int) -> None:
    """Units put away into pickable stock (a delivery, a restocked return)."""
    level = world.wms.level(sku, world.warehouse(location))
    world.wms.set_level(
        sku,
        level.warehouse,
        on_hand=level.on_hand + qty,
        pickable=level.pickable + qty,
        allocated=level.allocated,
    )


def wms_count(world: World, sku: str, location: str, pickable: int) -> None:
    """A cycle count sets the pickable units (on_hand follows)."""
    level = world.wms.level(sku, world.warehouse(location))
    world.wms.set_level(
        sku,
        level.warehouse,
        on_hand=pickable + level.allocated + level.damaged,
        pickable=pickable,
        allocated=level.allocated,
    )


def push_available(world: World, sku: str, location: str, available: int | None = None) -> None:
    """The WMS integration overwrites Shopify's available with the WMS's pickable (or a
    given count)."""
    count = world.wms.level(sku, world.warehouse(location)).pickable
    world.shopify.set_quantities(
        sku, world.gid(location), available=count if available is None else available
    )


def sell_in_step(world: World, sku: str, location: str, qty: int) -> None:
    """An order both systems hear of at once: Shopify commits it, the WMS allocates it,
    both ship it."""
    order = world.shopify.place_order(world.gid(location), {sku: qty})
    wms_allocate(world, sku, location, qty)
    world.shopify.fulfill_order(order)
    wms_ship(world, sku, location, qty)


async def later(stage: Stage, seconds: float) -> None:
    """What happened so far reaches its subscribers, then ``seconds`` pass."""
    await stage.settle()
    stage.clock.advance(seconds)


async def erp_catches_up(stage: Stage) -> None:
    """The ERP's periodic import has run: a fresh export of the warehouse's counts is
    dropped and has settled."""
    if stage.world.erp is not None:
        stage.world.export_erp()
        await later(stage, ERP_SETTLE_SECONDS)
