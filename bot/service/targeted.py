"""Targeted diffs: the SKUs Shopify's inventory webhooks say changed, diffed again soon.

Every SKU touched within ``debounce_seconds`` goes into one targeted diff, run by the
scheduled diff job of the touched store's unit (its store, or every system), so a
targeted diff judges with the same drift debounce as that unit's full diffs (continued
from what the previous lease holder kept, after a takeover): the two never disagree
about how long a drift has lasted. An item not seen yet (no SKU known
for it) makes the unit's next targeted diff a full one.

One process (SQLite): the process that received the webhook runs the diff. Replicas on
PostgreSQL: a delivery lands on whichever replica the balancer picked, but the drift
debounce state belongs to the holder of the unit's diff lease (``job_state``, issue 15),
so only the holder runs targeted diffs. At every heartbeat it picks up, from the
ledger, the inventory-level deliveries processed since it last looked, by any replica
(:meth:`TargetedDiffs.pick_up`). A replica that takes a lease (at start, after a
rebalance or a takeover) starts with the deliveries of the last
:data:`PICK_UP_MARGIN_SECONDS`: the previous holder may not have picked those up before
it let go or died, and diffing a SKU twice costs a read, missing one costs a drift left
unseen until the next full diff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta

from bot.slack.deps import Work
from connectors.clock import Clock
from connectors.shopify.webhooks import INVENTORY_LEVELS_UPDATE
from ledger import Ledger

log = logging.getLogger("driftwatch.service")

#: deliveries read per query when picking up what other replicas received
PAGE = 500
#: how far back a replica that just took a store's diff lease picks up deliveries:
#: longer than a dead holder's silence before its lease is taken (TTL + heartbeat)
PICK_UP_MARGIN_SECONDS = 30.0


class TargetedDiffs:
    """Touched SKUs per unit, the debounced diff of each, and the pick-up of what other
    replicas received (see the module docstring).

    :param unit_of: the diff unit a store's levels are diffed in
    :param run: diffs a unit (its SKUs only, if given) with the unit's debounce state
    :param sku_for: the SKU of a store's inventory item id (None: not seen yet)
    :param spawn: runs work in the background, tracked (:meth:`Service.spawn`)
    :param after: run after each targeted diff (deliver the outbox)
    """

    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        *,
        debounce_seconds: float,
        unit_of: Callable[[str], str],
        run: Callable[[str, list[str] | None], Awaitable[None]],
        sku_for: Callable[[str, str], str | None],
        spawn: Callable[[str, Work], None],
        after: Callable[[], Awaitable[object]],
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._debounce = debounce_seconds
        self._unit_of = unit_of
        self._diff = run
        self._sku_for = sku_for
        self._spawn = spawn
        self._after = after
        self._skus: dict[str, set[str]] = {}
        self._everything: set[str] = set()
        self._pending: set[str] = set()
        #: per store: the id of the last delivery picked up (while this replica holds
        #: the store's unit)
        self._seen_up_to: dict[str, int] = {}
        #: set after every targeted diff (tests and the demo wait on it)
        self.done = asyncio.Event()
        #: targeted diffs run, by unit (for tests and /metrics-style checks)
        self.runs: dict[str, int] = {}

    def touch(self, system: str, inventory_item_id: str) -> None:
        """``system`` says the level of ``inventory_item_id`` changed: diff its SKU soon."""
        unit = self._unit_of(system)
        sku = self._sku_for(system, inventory_item_id)
        if sku is None:
            self._everything.add(unit)  # an item not seen yet: a full diff finds it
        else:
            self._skus.setdefault(unit, set()).add(sku)
        if unit not in self._pending:
            self._pending.add(unit)
            self._spawn("targeted-diff", lambda: self._run(unit))

    async def _run(self, unit: str) -> None:
        await self._clock.sleep(self._debounce)
        skus = None if unit in self._everything else sorted(self._skus.get(unit, ()))
        self._skus.pop(unit, None)
        self._everything.discard(unit)
        self._pending.discard(unit)
        await self._diff(unit, skus)
        self.runs[unit] = self.runs.get(unit, 0) + 1
        await self._after()
        self.done.set()

    async def pick_up(self, stores: Iterable[str], holds: Callable[[str], bool]) -> int:
        """Touch what every replica received for the ``stores`` whose unit this replica
        holds (``holds(unit)``), since the last pick-up; how many deliveries."""
        picked = 0
        for store in stores:
            if not holds(self._unit_of(store)):
                self._seen_up_to.pop(store, None)  # re-read from the newest when held again
                continue
            after = self._seen_up_to.get(store)
            if after is None:  # newly held: from shortly before now
                since = self._clock.now() - timedelta(seconds=PICK_UP_MARGIN_SECONDS)
                after = await self._ledger.latest_delivery_id(store, before=since)
                self._seen_up_to[store] = after
            while True:
                rows = await self._ledger.deliveries_after(
                    store, "processed", after_id=after, topic=INVENTORY_LEVELS_UPDATE, limit=PAGE
                )
                for row in rows:
                    item, sep, _ = (row.resource_key or "").partition("@")
                    if sep:
                        self.touch(store, item)
                        picked += 1
                if rows:
                    after = rows[-1].id
                    self._seen_up_to[store] = after
                if len(rows) < PAGE:
                    break
        return picked
