"""The evidence behind root-cause hints, from the ledger and the configuration.

:class:`LedgerEvidence` is the diff job's ``EvidenceSource``: given one diff and the
evidence the job assembled from it (levels, kinds, roles, health), it adds what the
rules of :mod:`monitors.hints` need beyond the diff itself:

* ``item_webhooks`` / ``system_webhooks`` — ``inventory_levels/update`` deliveries of
  each Shopify system that receives webhooks, in the last :data:`WEBHOOK_WINDOW`:
  accepted and ``stale`` counts per drifting level (matched by its inventory item and
  location gids) and for the system as a whole. ``missed`` is set for a level whose
  change (Shopify's ``updatedAt``, as the poll read it) no delivery explains, by the
  same rule as the webhook-health monitor (:data:`monitors.missed_webhooks.RULE`) —
  only when the system's inventory webhooks are flowing at all (a delivery in
  :data:`FLOWING_WINDOW`); when they are not, the system's zero count says so.
* ``recent_orders`` / ``recent_refunds`` — units per SKU from ``orders/create`` line
  items triggered in the last :data:`ORDER_WINDOW` and ``refunds/create`` lines with a
  restock in the last :data:`REFUND_WINDOW` (each topic read over its own window only).
  A drifting SKU with none counts 0 when
  that topic is flowing, and stays unknown (absent) when it is not.
* ``item_syncs`` — when a resync was last applied to each drifting level.
* ``movement`` — for a level observed at least ``BATCH_MIN_LAG`` before its truth's,
  the net change of the truth's compared value since that observation, from the
  ledger's level history (absent when the history does not reach back that far).
* ``bundles_of`` and ``pack_sizes`` — from the configuration.

Only the drifts a hint can explain are looked at (count drifts with both values), and
the queries are few per diff whatever its size: one per kind of fact, restricted to the
drifting SKUs (or levels) when there are at most :data:`FILTER_MAX` of them, else over
the window alone. If the ledger cannot be read, the diff's own evidence is returned.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from connectors.levels import Level
from connectors.shopify.webhooks import (
    INVENTORY_LEVELS_UPDATE,
    ORDERS_CREATE,
    REFUNDS_CREATE,
    level_key,
)
from ledger import Ledger, LedgerError
from ledger.evidence import ACCEPTED_OUTCOMES, DeliveryFact, HistoryPoint
from monitors.config import Config, ShopifySystem
from monitors.drift import COUNT_MISMATCH, NEGATIVE, OVERSELL_RISK, UNDERSELL, Drift
from monitors.hints import BATCH_MIN_LAG, RACE_MAX_AGE, Evidence, WebhookFacts
from monitors.hints import OVERRIDE_WINDOW as _DAY
from monitors.hints import WEBHOOK_WINDOW as _HOUR
from monitors.missed_webhooks import RULE as MISSED_RULE
from monitors.reconcile import DiffRun

log = logging.getLogger("driftwatch.evidence")

#: Deliveries counted for a level or a system (the webhook-gap rule's window).
WEBHOOK_WINDOW = _HOUR
#: A topic with an accepted delivery this recent is flowing (subscribed and delivered).
FLOWING_WINDOW = timedelta(days=7)
#: Orders counted as in flight: the race rule's window.
ORDER_WINDOW = RACE_MAX_AGE
#: Refunds counted: a return that did not flow back stays off for hours, not minutes.
REFUND_WINDOW = _DAY
#: Refund line restock types that put units back into stock.
RESTOCKED = frozenset({"return", "cancel", "legacy_restock"})
#: The topics whose flow the evidence asks about.
EVIDENCE_TOPICS = frozenset({INVENTORY_LEVELS_UPDATE, ORDERS_CREATE, REFUNDS_CREATE})
#: Up to this many SKUs or levels, queries are restricted to them.
FILTER_MAX = 1000

_EXPLAINED = frozenset({OVERSELL_RISK, UNDERSELL, COUNT_MISMATCH, NEGATIVE})

LevelKey = tuple[str, str, str]


@dataclass(frozen=True)
class _Scope:
    """The drifts one diff asks to explain, and the SKUs and levels they touch."""

    drifts: list[Drift]
    skus: frozenset[str]
    keys: frozenset[LevelKey]

    def sku_filter(self) -> frozenset[str] | None:
        return self.skus if len(self.skus) <= FILTER_MAX else None


class LedgerEvidence:
    """An ``EvidenceSource`` (``monitors.jobs``) backed by the ledger and the
    configuration (see the module docstring)."""

    def __init__(self, config: Config, ledger: Ledger) -> None:
        self._config = config
        self._ledger = ledger
        self._webhook_systems = tuple(
            s.name for s in config.systems if isinstance(s, ShopifySystem) and s.webhook_secret_env
        )

    async def __call__(self, run: DiffRun, base: Evidence) -> Evidence:
        drifts = [
            d
            for d in run.drifts
            if d.kind in _EXPLAINED and d.expected is not None and d.actual is not None
        ]
        if not drifts:
            return base
        scope = _Scope(
            drifts,
            frozenset(d.sku for d in drifts),
            frozenset((d.system, d.sku, d.location) for d in drifts),
        )
        evidence = replace(
            base,
            bundles_of=self._bundles_of(scope.skus),
            pack_sizes=self._pack_sizes(scope.skus),
        )
        try:
            return await self._from_ledger(scope, evidence)
        except LedgerError as exc:
            log.warning("root-cause evidence unavailable: %s", exc)
            return evidence

    async def _from_ledger(self, scope: _Scope, ev: Evidence) -> Evidence:
        item_webhooks: dict[LevelKey, WebhookFacts] = {}
        system_webhooks: dict[str, WebhookFacts] = {}
        orders: dict[str, int] = defaultdict(int)
        refunds: dict[str, int] = defaultdict(int)
        orders_flowing = refunds_flowing = False
        for system in self._webhook_systems:
            flowing = await self._ledger.topics_seen(
                system, ev.now - FLOWING_WINDOW, topics=EVIDENCE_TOPICS
            )
            orders_flowing |= ORDERS_CREATE in flowing
            refunds_flowing |= REFUNDS_CREATE in flowing
            if flowing & {ORDERS_CREATE, REFUNDS_CREATE}:
                await self._sales(system, ev.now, orders, refunds, flowing)
            if any(key[0] == system for key in scope.keys):
                facts, whole = await self._webhooks(
                    system, scope, ev, flowing=INVENTORY_LEVELS_UPDATE in flowing
                )
                item_webhooks.update(facts)
                system_webhooks[system] = whole
        for sku in scope.skus:
            if orders_flowing:
                orders.setdefault(sku, 0)
            if refunds_flowing:
                refunds.setdefault(sku, 0)
        syncs = await self._ledger.last_applied_resyncs(scope.sku_filter())
        return replace(
            ev,
            item_webhooks=item_webhooks,
            system_webhooks=system_webhooks,
            recent_orders=dict(orders),
            recent_refunds=dict(refunds),
            item_syncs={k: t for k, t in syncs.items() if k in scope.keys},
            movement=await self._movement(scope, ev),
        )

    # -- configuration -------------------------------------------------------------------
    def _bundles_of(self, skus: frozenset[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for bundle in self._config.bundles:
            name = self._config.normalize_sku(bundle.sku)
            for component, per in (self._config.bundle_components(bundle.sku) or {}).items():
                if component in skus:
                    out.setdefault(component, {})[name] = per
        return out

    def _pack_sizes(self, skus: frozenset[str]) -> dict[tuple[str, str], int]:
        return {
            (system, sku): size
            for system in self._config.pack_sizes
            for sku in sorted(skus)
            if (size := self._config.pack_size(system, sku)) != 1
        }

    # -- webhooks --------------------------------------------------------------------------
    async def _webhooks(
        self, system: str, scope: _Scope, ev: Evidence, *, flowing: bool
    ) -> tuple[dict[LevelKey, WebhookFacts], WebhookFacts]:
        since = ev.now - WEBHOOK_WINDOW
        resources: dict[str, LevelKey] = {}
        for key in scope.keys:
            level = ev.levels.get(key)
            if key[0] == system and level is not None:
                resource = _resource_key(level)
                if resource is not None:
                    resources[resource] = key
        wanted = resources.keys() if len(resources) <= FILTER_MAX else None
        rows = await self._ledger.recent_deliveries(
            system, since, topics={INVENTORY_LEVELS_UPDATE}, resource_keys=wanted
        )
        counts = await self._ledger.delivery_counts(system, since, topic=INVENTORY_LEVELS_UPDATE)
        whole = WebhookFacts(
            received=sum(n for outcome, n in counts.items() if outcome in ACCEPTED_OUTCOMES),
            stale=counts.get("stale", 0),
        )
        by_resource: dict[str, list[DeliveryFact]] = defaultdict(list)
        for row in rows:
            if row.resource_key in resources:
                by_resource[row.resource_key].append(row)
        facts: dict[LevelKey, WebhookFacts] = {}
        for resource, key in resources.items():
            seen = by_resource.get(resource, [])
            missed = flowing and _missed(ev.levels[key], seen, ev.now)
            if seen or missed:
                stale = sum(1 for d in seen if d.outcome == "stale")
                facts[key] = WebhookFacts(received=len(seen), stale=stale, missed=missed)
        return facts, whole

    async def _sales(
        self,
        system: str,
        now: datetime,
        orders: dict[str, int],
        refunds: dict[str, int],
        flowing: Set[str],
    ) -> None:
        """Units per SKU of orders and restocked refunds; each topic is read over its own
        window (a diff uses ten minutes of orders, not the day refunds need)."""
        norm = self._config.normalize_sku
        if ORDERS_CREATE in flowing:
            since = now - ORDER_WINDOW
            for row in await self._ledger.recent_deliveries(
                system, since, topics={ORDERS_CREATE}, with_detail=True
            ):
                if (row.triggered_at or row.received_at) >= since:
                    for sku, units in _lines(row.detail.get("line_items")):
                        orders[norm(sku)] += units
        if REFUNDS_CREATE in flowing:
            since = now - REFUND_WINDOW
            for row in await self._ledger.recent_deliveries(
                system, since, topics={REFUNDS_CREATE}, with_detail=True
            ):
                if (row.triggered_at or row.received_at) >= since:
                    for line in _dicts(row.detail.get("refund_line_items")):
                        if line.get("restock_type") in RESTOCKED:
                            for sku, units in _lines([line]):
                                refunds[norm(sku)] += units

    # -- the truth's movement ---------------------------------------------------------------
    async def _movement(self, scope: _Scope, ev: Evidence) -> dict[LevelKey, int]:
        lagging: dict[str, list[tuple[Drift, Level, Level]]] = defaultdict(list)
        for d in scope.drifts:
            truth = d.truth_system
            if truth is None or truth == d.system:
                continue
            level = ev.levels.get((d.system, d.sku, d.location))
            truth_level = ev.levels.get((truth, d.sku, d.location))
            if level is None or truth_level is None:
                continue
            if truth_level.observed_at - level.observed_at >= BATCH_MIN_LAG:
                lagging[truth].append((d, level, truth_level))
        out: dict[LevelKey, int] = {}
        for truth, cases in sorted(lagging.items()):
            states = self._compared(truth)
            since = min(level.observed_at for _, level, _ in cases)
            skus = {d.sku for d, _, _ in cases}
            changes = await self._ledger.level_changes_since(truth, skus, states, since)
            series: dict[tuple[str, str, str], list[HistoryPoint]] = defaultdict(list)
            for point in changes:
                series[(point.sku, point.location, point.state)].append(point)
            for d, level, truth_level in cases:
                now_value = truth_level.total(tuple(states))
                then = _value_at(series, d.sku, d.location, states, truth_level, level.observed_at)
                if now_value is not None and then is not None:
                    out[(d.system, d.sku, d.location)] = now_value - then
        return out

    def _compared(self, system: str) -> tuple[str, ...]:
        try:
            return tuple(self._config.system(system).compare_states)
        except KeyError:
            return ()


def _resource_key(level: Level) -> str | None:
    item, location = level.refs.get("inventory_item_id"), level.refs.get("location_id")
    return level_key(item, location) if item and location else None


def _missed(level: Level, seen: Sequence[DeliveryFact], now: datetime) -> bool:
    """Whether the poll found a change of ``level`` that no delivery announced: the
    webhook-health monitor's rule (:data:`monitors.missed_webhooks.RULE`), on the
    level's own ``changed_at``."""
    changed = level.changed_at
    if changed is None or not MISSED_RULE.judged(changed, now):
        return False
    return not any(MISSED_RULE.explains(d.triggered_at or d.received_at, changed) for d in seen)


def _dicts(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _lines(value: Any) -> Iterable[tuple[str, int]]:
    """(sku, quantity) of each line item with a SKU and a positive whole quantity."""
    for line in _dicts(value):
        sku, quantity = line.get("sku"), line.get("quantity")
        if isinstance(sku, str) and sku.strip() and type(quantity) is int and quantity > 0:
            yield sku, quantity


def _value_at(
    series: Mapping[tuple[str, str, str], list[HistoryPoint]],
    sku: str,
    location: str,
    states: Sequence[str],
    truth_level: Level,
    moment: datetime,
) -> int | None:
    """The truth's compared value at ``moment`` from its recorded changes; None when
    the history of a state it reports does not reach back to ``moment``."""
    total = 0
    for state in states:
        if state not in truth_level.quantities:
            continue
        before = [p for p in series.get((sku, location, state), []) if p.observed_at <= moment]
        if not before:
            return None
        total += before[-1].quantity
    return total
