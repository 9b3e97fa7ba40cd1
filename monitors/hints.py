"""Root-cause hints: why a drift is most likely there, in one plain sentence.

Pure functions, no I/O, no clock reads: the job assembles an :class:`Evidence` per diff
(``now`` is the time of that diff) and :func:`explain` names the likely cause of one
:class:`~monitors.drift.Drift` from it. :func:`hint_for` adapts that to the pipeline's
``Hint`` (``monitors.pipeline.evaluate``).

Only count drifts get a hint (``oversell_risk``, ``undersell``, ``count_mismatch``,
``negative``) and only when both the expected and the actual value are known; the
state classes (``stale``, ``untracked``, ``missing``, ``oversell_policy``) already say
what is wrong. Below, ``S`` is the drifting system, ``T`` the truth system,
``g = actual − expected`` (``Drift.gap``), ``L``/``TL`` their levels at the SKU ×
location in ``Evidence.levels``.

Rules, most specific first (arithmetic on this item, then records about this item,
then timing on this item, then conditions of a whole system). The first that matches
is the hint; the second, if any, is added to its evidence as ``runner-up: …``.

1. ``pack_size_transformation`` — the engine named a pack multiple (an evidence line
   starting ``pack size``), or a configured pack size ``p > 1`` (``Evidence.pack_sizes``)
   of this SKU in any system gives ``actual = expected × p`` or ``actual × p = expected``.
2. ``bundle_math`` — the drift is a storefront bundle whose engine evidence says its own
   components imply another value (a ``bundle:`` line), or the SKU is a component of a
   bundle ``B`` (``q`` per bundle) and ``|g|`` is a non-zero multiple of ``q`` no larger
   than ``q ×`` the recent orders of ``B`` (sales deducted at the wrong level).
3. ``out_of_sequence_retry`` — at least one ``stale`` (out-of-order) webhook delivery is
   recorded for ``S`` at this SKU × location (``Evidence.item_webhooks``).
4. ``race_in_flight_orders`` — ``S`` is a storefront, ``g > 0``, ``Drift.age`` at most
   :data:`RACE_MAX_AGE` (10 minutes: commits land in seconds to a few minutes, and the
   seeds' polling lag is three minutes), and ``g`` is at most the in-flight quantity:
   the larger of ``L.committed − TL.committed`` and the SKU's recent order units.
   (It comes before 6: a race ages out of this window, a mapping gap does not, so a
   persisting drift falls through to 6.)
5. ``returns_damages_not_flowing`` — ``S`` is not the truth and either ``|g|`` is at
   most the SKU's recent refunded-with-restock units (``g > 0``: restocked at ``S``, e.g.
   a return processed in the storefront, not at the truth; ``g < 0``: the reverse), or
   ``L`` and ``TL`` disagree on ``damaged`` and ``|g|`` is at most the larger
   ``damaged`` of the two. (It comes before 6: moving units to ``damaged`` keeps
   ``on_hand``, which 6 would otherwise read as a mapping gap.)
6. ``partial_state_update`` — ``L`` and ``TL`` report the same ``on_hand`` while the
   compared values differ; or exactly one of them reports ``committed`` and the other's
   ``committed`` is not 0 (on-hand synced without the committed allocations).
7. ``manual_storefront_override`` — ``S`` is a storefront whose ``L.changed_at`` is within
   :data:`OVERRIDE_WINDOW` (24 hours) of ``now`` and after the last sync from the truth
   (the latest known of ``Evidence.item_syncs`` for this SKU × location,
   ``Evidence.last_sync[S]`` and ``TL.changed_at``), and no order or refund of the SKU is
   recorded (an unknown count counts as none). Shopify sends ``inventory_levels/update``
   for edits in its admin too, so a change no webhook announced is not taken for one
   (the item's facts say ``missed``, or, without item facts, the system's facts count
   no delivery): that is rule 10's.
8. ``batch_window`` — ``S`` is of kind ``csv`` or role ``erp``, observed at least
   :data:`BATCH_MIN_LAG` (15 minutes) before ``TL``, and the truth moved since: with
   ``Evidence.movement`` known, ``g = −movement`` exactly (non-zero); without it,
   ``TL.changed_at`` is after ``S``'s observation.
9. ``rate_limit_drops`` — ``S``'s :class:`~connectors.health.Health` counts throttles and,
   within :data:`RATE_LIMIT_NEAR` (15 minutes) of the drift's ``since``: its last error
   names a 429 / rate limit / throttling, or a Retry-After was recorded, or its bucket was at least
   :data:`THROTTLE_PRESSURE` (90 %) drained.
10. ``webhook_gap`` — the caller set ``missed`` for ``S`` at this SKU × location (or for
    ``S`` as a whole); or ``S`` has webhook facts, received no delivery in the window
    (the item's facts, else the system's), and ``L.changed_at`` is within
    :data:`WEBHOOK_WINDOW` (1 hour) of ``now``.

"Recent" order, refund and delivery counts are over a window the caller chooses; the
race rule assumes one about as long as :data:`RACE_MAX_AGE`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connectors.health import Health
from connectors.levels import Level
from monitors.drift import COUNT_MISMATCH, NEGATIVE, OVERSELL_RISK, UNDERSELL, Drift
from monitors.pipeline.evaluate import Explained, Hint

RACE_IN_FLIGHT_ORDERS = "race_in_flight_orders"
RETURNS_DAMAGES_NOT_FLOWING = "returns_damages_not_flowing"
BUNDLE_MATH = "bundle_math"
MANUAL_STOREFRONT_OVERRIDE = "manual_storefront_override"
BATCH_WINDOW = "batch_window"
PACK_SIZE_TRANSFORMATION = "pack_size_transformation"
PARTIAL_STATE_UPDATE = "partial_state_update"
OUT_OF_SEQUENCE_RETRY = "out_of_sequence_retry"
WEBHOOK_GAP = "webhook_gap"
RATE_LIMIT_DROPS = "rate_limit_drops"
#: The taxonomy, in the order the rules are tried (most specific first).
CAUSES: tuple[str, ...] = (
    PACK_SIZE_TRANSFORMATION,
    BUNDLE_MATH,
    OUT_OF_SEQUENCE_RETRY,
    RACE_IN_FLIGHT_ORDERS,
    RETURNS_DAMAGES_NOT_FLOWING,
    PARTIAL_STATE_UPDATE,
    MANUAL_STOREFRONT_OVERRIDE,
    BATCH_WINDOW,
    RATE_LIMIT_DROPS,
    WEBHOOK_GAP,
)

RACE_MAX_AGE = timedelta(minutes=10)
OVERRIDE_WINDOW = timedelta(hours=24)
BATCH_MIN_LAG = timedelta(minutes=15)
WEBHOOK_WINDOW = timedelta(hours=1)
THROTTLE_PRESSURE = 0.9
#: How close to the drift's start a throttle must be to explain it (a dropped update
#: shows at the next read; a storm long after the drift began explains nothing).
RATE_LIMIT_NEAR = timedelta(minutes=15)

_HINTABLE = frozenset({OVERSELL_RISK, UNDERSELL, COUNT_MISMATCH, NEGATIVE})
_RATE_LIMIT_WORDS = ("429", "rate limit", "throttl")


@dataclass(frozen=True)
class WebhookFacts:
    """Webhook deliveries for one system (or one system's SKU × location) in the window.

    ``received``: deliveries accepted (processed, stale or duplicate). ``stale``: those
    recorded ``stale`` (triggered before the newest processed one). ``missed``: set by
    the caller when the last poll found a change no webhook announced.
    """

    received: int = 0
    stale: int = 0
    missed: bool = False


@dataclass(frozen=True)
class Evidence:
    """What the job knows around one diff, for explaining its drifts.

    ``levels``: (system, SKU, location) → the level with all its states. ``kinds`` and
    ``roles``: system → ``shopify``/``rest``/``csv`` and ``storefront``/``warehouse``/
    ``erp``. ``health``: system → a snapshot (a copy) of its connector's health.
    ``item_webhooks``: (system, SKU, location) → facts; ``system_webhooks``: system →
    facts. ``bundles_of``: component SKU → bundle SKU → quantity per bundle.
    ``pack_sizes``: (system, SKU) → units per counted item (only sizes other than 1).
    ``recent_orders`` / ``recent_refunds``: SKU → units ordered / refunded with restock
    in the window (absent: unknown). ``last_sync``: system → when the truth was last
    pushed to it (as a whole); ``item_syncs``: (system, SKU, location) → when the truth
    was last written to that level (an applied resync). ``movement``: (system, SKU,
    location) → net change of the truth's compared value since that system's
    observation.
    """

    now: datetime
    levels: Mapping[tuple[str, str, str], Level] = field(default_factory=dict)
    kinds: Mapping[str, str] = field(default_factory=dict)
    roles: Mapping[str, str] = field(default_factory=dict)
    health: Mapping[str, Health] = field(default_factory=dict)
    item_webhooks: Mapping[tuple[str, str, str], WebhookFacts] = field(default_factory=dict)
    system_webhooks: Mapping[str, WebhookFacts] = field(default_factory=dict)
    bundles_of: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    pack_sizes: Mapping[tuple[str, str], int] = field(default_factory=dict)
    recent_orders: Mapping[str, int] = field(default_factory=dict)
    recent_refunds: Mapping[str, int] = field(default_factory=dict)
    last_sync: Mapping[str, datetime] = field(default_factory=dict)
    item_syncs: Mapping[tuple[str, str, str], datetime] = field(default_factory=dict)
    movement: Mapping[tuple[str, str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class RootCauseHint:
    """The likely cause (a key of :data:`CAUSES`), one sentence for the alert, and the
    facts behind it."""

    cause: str
    summary: str
    evidence: list[str]


_NAMES = {"shopify": "Shopify", "wms": "the WMS", "erp": "the ERP"}


def _name(system: str) -> str:
    return _NAMES.get(system.lower(), system)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ago(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h"


def _states(quantities: Mapping[str, int]) -> str:
    return ", ".join(f"{state} {n}" for state, n in quantities.items())


def _units(n: int) -> str:
    return f"{n} unit" if n == 1 else f"{n} units"


@dataclass(frozen=True)
class _Case:
    drift: Drift
    ev: Evidence
    expected: int
    actual: int

    @property
    def gap(self) -> int:
        return self.actual - self.expected

    @property
    def system(self) -> str:
        return self.drift.system

    @property
    def truth(self) -> str | None:
        return self.drift.truth_system

    @property
    def level(self) -> Level | None:
        return self.ev.levels.get((self.system, self.drift.sku, self.drift.location))

    @property
    def truth_level(self) -> Level | None:
        if self.truth is None:
            return None
        return self.ev.levels.get((self.truth, self.drift.sku, self.drift.location))

    @property
    def storefront(self) -> bool:
        return self.ev.roles.get(self.system) == "storefront"

    @property
    def s(self) -> str:
        return _name(self.system)

    @property
    def t(self) -> str:
        return _name(self.truth) if self.truth else "the truth"

    @property
    def where(self) -> str:
        return f"{self.drift.sku} at {self.drift.location}"

    @property
    def item_facts(self) -> WebhookFacts | None:
        return self.ev.item_webhooks.get((self.system, self.drift.sku, self.drift.location))


_Match = tuple[str, str, list[str]]
_Rule = Callable[[_Case], _Match | None]


def _pack_size(c: _Case) -> _Match | None:
    engine = [e for e in c.drift.evidence if e.startswith("pack size")]
    packs = {(sys, p) for (sys, sku), p in c.ev.pack_sizes.items() if sku == c.drift.sku and p > 1}
    facts = list(engine)
    for system, pack in sorted(packs):
        if c.actual == c.expected * pack and c.expected:
            sentence = (
                f"{c.s} shows {c.actual} = {c.expected} × {pack}, as if a pack size of {pack} "
                f"were applied to a count already in units"
            )
        elif c.actual and c.actual * pack == c.expected:
            sentence = (
                f"{c.s} shows {c.actual} and {c.actual} × {pack} = {c.expected}, as if it "
                f"counted packs of {pack} as units"
            )
        else:
            continue
        facts.append(f"{_name(system)} packs {c.drift.sku} in {pack}s")
        return PACK_SIZE_TRANSFORMATION, f"Likely a pack-size transformation: {sentence}", facts
    if engine:
        summary = f"Likely a pack-size transformation: {engine[0].split(': ', 1)[1]}"
        return PACK_SIZE_TRANSFORMATION, summary, facts
    return None


def _bundle(c: _Case) -> _Match | None:
    engine = [e for e in c.drift.evidence if e.startswith("bundle:")]
    if c.drift.components is not None and engine:
        parts = ", ".join(f"{sku} {n}" for sku, n in sorted(c.drift.components.items()))
        summary = (
            f"Likely bundle math: {c.s} shows {c.actual} of bundle {c.drift.sku}, but the "
            f"components at {c.t} allow {c.expected}"
        )
        return BUNDLE_MATH, summary, [*engine, f"components at {c.t}: {parts}"]
    size = abs(c.gap)
    for bundle, per in sorted(c.ev.bundles_of.get(c.drift.sku, {}).items()):
        sold = c.ev.recent_orders.get(bundle, 0)
        if per > 0 and size and size % per == 0 and size <= sold * per:
            side = "over" if c.gap > 0 else "under"
            summary = (
                f"Likely bundle math: {c.s} is {size} {side} on {c.drift.sku}, which fits "
                f"recent sales of bundle {bundle} deducted at the wrong level"
            )
            facts = [
                f"{c.drift.sku} is a component of {bundle} ({per} per bundle)",
                f"{sold} of {bundle} ordered recently: {sold * per} units of {c.drift.sku}",
                f"gap {c.gap:+d} ({c.s} {c.actual}, expected {c.expected})",
            ]
            return BUNDLE_MATH, summary, facts
    return None


def _out_of_sequence(c: _Case) -> _Match | None:
    facts = c.item_facts
    if facts is None or facts.stale < 1:
        return None
    n = facts.stale
    summary = (
        f"Likely an out-of-sequence retry: {n} {c.s} update{'s' if n > 1 else ''} for "
        f"{c.where} arrived after a newer one, so an old level may have overwritten it"
    )
    return OUT_OF_SEQUENCE_RETRY, summary, [f"{n} stale webhook deliveries for {c.where}"]


def _race(c: _Case) -> _Match | None:
    if not c.storefront or c.gap <= 0 or c.drift.age > RACE_MAX_AGE:
        return None
    level, truth = c.level, c.truth_level
    committed = 0
    if level is not None:
        theirs = truth.quantities.get("committed", 0) if truth else 0
        committed = level.quantities.get("committed", 0) - theirs
    ordered = c.ev.recent_orders.get(c.drift.sku, 0)
    if c.gap > max(committed, ordered):
        return None
    facts = [f"gap {c.gap:+d}, the drift is {_ago(c.drift.age)} old"]
    if committed > 0:
        facts.append(f"{c.s} has {committed} more committed than {c.t}")
    if ordered:
        facts.append(f"{_units(ordered)} of {c.drift.sku} ordered recently")
    if committed >= c.gap:
        sentence = f"{c.s} has {_units(committed)} committed to orders {c.t} has not allocated yet"
    else:
        sentence = (
            f"{c.s} is {c.gap} over {c.t}, within the {_units(ordered)} ordered in the "
            f"last few minutes"
        )
    return RACE_IN_FLIGHT_ORDERS, f"Likely a race with in-flight orders: {sentence}", facts


def _partial(c: _Case) -> _Match | None:
    level, truth = c.level, c.truth_level
    if level is None or truth is None:
        return None
    mine, theirs = level.quantities, truth.quantities
    both = f"{c.s}: {_states(mine)}; {c.t}: {_states(theirs)}"
    if "on_hand" in mine and mine.get("on_hand") == theirs.get("on_hand"):
        summary = (
            f"Likely a partial state update: {c.s} and {c.t} agree on on-hand "
            f"({mine['on_hand']}) but not on the compared states ({c.actual} vs {c.expected})"
        )
        facts = [f"on_hand {mine['on_hand']} in both", both]
        return PARTIAL_STATE_UPDATE, summary, facts
    for without, lacking, with_, having in ((c.s, mine, c.t, theirs), (c.t, theirs, c.s, mine)):
        committed = having.get("committed", 0)
        if "committed" not in lacking and committed:
            summary = (
                f"Likely a partial state update: {without} reports no committed quantity "
                f"while {with_} has {committed} committed"
            )
            return PARTIAL_STATE_UPDATE, summary, [both]
    return None


def _returns(c: _Case) -> _Match | None:
    if c.system == c.truth:
        return None
    refunded = c.ev.recent_refunds.get(c.drift.sku, 0)
    if c.gap and refunded and abs(c.gap) <= refunded:
        side = "under" if c.gap < 0 else "over"
        summary = (
            f"Likely returns not flowing: {c.s} is {abs(c.gap)} {side} {c.t}, within the "
            f"{_units(refunded)} refunded and restocked recently"
        )
        return RETURNS_DAMAGES_NOT_FLOWING, summary, [f"{_units(refunded)} of {c.where} refunded"]
    level, truth = c.level, c.truth_level
    if level is None or truth is None:
        return None
    mine, theirs = level.quantities.get("damaged", 0), truth.quantities.get("damaged", 0)
    if mine != theirs and abs(c.gap) <= max(mine, theirs):
        summary = (
            f"Likely damages not flowing: {c.t} records {theirs} damaged and {c.s} {mine}, "
            f"and the {abs(c.gap)}-unit gap fits damaged stock not written off or restocked "
            f"in step"
        )
        facts = [f"damaged: {c.t} {theirs}, {c.s} {mine}", f"gap {c.gap:+d}"]
        return RETURNS_DAMAGES_NOT_FLOWING, summary, facts
    return None


def _manual(c: _Case) -> _Match | None:
    level, truth = c.level, c.truth_level
    if not c.storefront or level is None or level.changed_at is None:
        return None
    key = (c.system, c.drift.sku, c.drift.location)
    syncs = (
        c.ev.item_syncs.get(key),
        c.ev.last_sync.get(c.system),
        truth.changed_at if truth else None,
    )
    synced = max((t for t in syncs if t is not None), default=None)
    changed = level.changed_at
    if synced is None or changed <= synced or c.ev.now - changed > OVERRIDE_WINDOW:
        return None
    if _unannounced(c) is not None:
        return None
    sku = c.drift.sku
    if c.ev.recent_orders.get(sku, 0) or c.ev.recent_refunds.get(sku, 0):
        return None
    summary = (
        f"Likely a manual change in {c.s}: its level changed {_ago(c.ev.now - changed)} ago, "
        f"after the last sync from {c.t}, with no order or refund to explain it"
    )
    known = sku in c.ev.recent_orders or sku in c.ev.recent_refunds
    facts = [
        f"{c.s} changed {_ago(c.ev.now - changed)} ago, last sync {_ago(c.ev.now - synced)} ago",
        f"no orders or refunds of {sku} recorded" if known else f"order activity of {sku} unknown",
    ]
    return MANUAL_STOREFRONT_OVERRIDE, summary, facts


def _batch(c: _Case) -> _Match | None:
    level, truth = c.level, c.truth_level
    batchy = c.ev.kinds.get(c.system) == "csv" or c.ev.roles.get(c.system) == "erp"
    if not batchy or level is None or truth is None:
        return None
    lag = truth.observed_at - level.observed_at
    if lag < BATCH_MIN_LAG:
        return None
    moved = c.ev.movement.get((c.system, c.drift.sku, c.drift.location))
    if moved is not None:
        if not moved or c.gap != -moved:
            return None
        detail = f"{c.t} moved {moved:+d} since, exactly the gap"
    elif truth.changed_at is not None and truth.changed_at > level.observed_at:
        detail = f"{c.t} changed since (by how much is not known)"
    else:
        return None
    summary = f"Likely a batch window: {c.s}'s data is {_ago(lag)} older than {c.t}'s and {detail}"
    return BATCH_WINDOW, summary, [f"{c.s} observed {_ago(lag)} before {c.t}", detail]


def _rate_limit(c: _Case) -> _Match | None:
    health = c.ev.health.get(c.system)
    if health is None or health.throttles <= 0:
        return None
    since = c.drift.since or c.ev.now - c.drift.age
    error = (health.last_error or "").lower()
    at = health.throttle.at
    facts = [f"{c.s}: {health.throttles} throttles, {health.retries} retries"]
    error_at = health.last_error_at
    if (
        error_at is not None
        and abs(error_at - since) <= RATE_LIMIT_NEAR
        and any(w in error for w in _RATE_LIMIT_WORDS)
    ):
        facts.append(f"last error {_ago(c.ev.now - error_at)} ago: {health.last_error}")
    if at is not None and abs(at - since) <= RATE_LIMIT_NEAR:
        if health.throttle.retry_after is not None:
            facts.append(
                f"Retry-After {health.throttle.retry_after:g} s, {_ago(c.ev.now - at)} ago"
            )
        pressure = health.throttle.pressure
        if pressure is not None and pressure >= THROTTLE_PRESSURE:
            facts.append(f"bucket {pressure:.0%} drained {_ago(c.ev.now - at)} ago")
    if len(facts) == 1:
        return None
    summary = (
        f"Likely updates dropped under rate limiting: {c.s} was throttled around when the "
        f"drift began {_ago(c.ev.now - since)} ago"
    )
    return RATE_LIMIT_DROPS, summary, facts


def _unannounced(c: _Case) -> str | None:
    """How the webhook facts say no webhook announced this level's change: ``missed``
    (the caller saw it), ``silent`` (no delivery in the window, the level changed within
    :data:`WEBHOOK_WINDOW`), or None."""
    item, whole = c.item_facts, c.ev.system_webhooks.get(c.system)
    if (item and item.missed) or (whole and whole.missed):
        return "missed"
    facts = item or whole
    level = c.level
    if facts is None or facts.received or level is None or level.changed_at is None:
        return None
    if c.ev.now - level.changed_at > WEBHOOK_WINDOW:
        return None
    return "silent"


def _webhook_gap(c: _Case) -> _Match | None:
    how = _unannounced(c)
    if how == "missed":
        summary = (
            f"Likely a webhook gap: the last poll of {c.s} found a change to {c.where} that "
            f"no webhook announced"
        )
        return WEBHOOK_GAP, summary, [f"poll found an unannounced change ({c.s})"]
    level = c.level
    if how is None or level is None or level.changed_at is None:
        return None
    changed = _ago(c.ev.now - level.changed_at)
    summary = (
        f"Likely a webhook gap: {c.s}'s level of {c.where} changed {changed} ago but no "
        f"webhook delivery arrived"
    )
    return WEBHOOK_GAP, summary, [f"{c.s} changed {changed} ago", "0 webhook deliveries"]


_RULES: tuple[_Rule, ...] = (
    _pack_size,
    _bundle,
    _out_of_sequence,
    _race,
    _returns,
    _partial,
    _manual,
    _batch,
    _rate_limit,
    _webhook_gap,
)


def explain(drift: Drift, evidence: Evidence) -> RootCauseHint | None:
    """The likely root cause of ``drift``, or None when no rule matches (see the module
    docstring for the rules and their order)."""
    if drift.kind not in _HINTABLE or drift.expected is None or drift.actual is None:
        return None
    case = _Case(drift, evidence, drift.expected, drift.actual)
    matches = [m for rule in _RULES if (m := rule(case)) is not None]
    if not matches:
        return None
    (cause, summary, facts), *rest = matches
    if rest:
        facts = [*facts, f"runner-up: {rest[0][0]}: {rest[0][1]}"]
    return RootCauseHint(cause=cause, summary=summary, evidence=facts)


def hint_for(evidence: Evidence) -> Hint:
    """The pipeline's ``Hint``: the cause and summary of :func:`explain` against
    ``evidence``."""

    def hint(drift: Drift) -> Explained | None:
        found = explain(drift, evidence)
        return Explained(found.cause, found.summary) if found else None

    return hint
