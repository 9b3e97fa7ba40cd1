"""Webhook health: is Shopify telling us about changes, and are we hearing it right?

Pure evaluation (:func:`evaluate_webhooks`) of facts per system — its deliveries over
the last window (:class:`ledger.webhooks.DeliveryWindow`), the latest subscription check
(:class:`~connectors.shopify.subscriptions.SubscriptionReport`) and the level changes a
poll found that no webhook announced (:func:`missed_changes`) — into pipeline
candidates in the ``webhook:`` family, at most one per system and kind:

=====================================  ===================================================
``webhook_signatures_rejected``        deliveries refused for a bad HMAC signature
``webhook_wrong_shop``                 deliveries naming a shop this address does not
                                       serve (a store installed but not configured?)
``webhook_processing_errors``          accepted deliveries that failed to process
``webhook_delayed``                    deliveries arriving long after their change
``webhook_duplicates``                 the same event delivered again and again
``webhook_out_of_order``               deliveries older than one already applied (stale)
``webhook_missed``                     changes a poll found that no webhook announced
``webhook_subscription_missing``       a needed topic is not subscribed to our address
``webhook_subscription_misaddressed``  a subscription for a needed topic points elsewhere
=====================================  ===================================================

:class:`WebhookHealthJob` gathers those facts (ledger queries; a subscription check, which
costs an API call, at most every :attr:`Thresholds.subscription_every`) and runs them
through the incident pipeline, so a kind no longer found is resolved.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.clock import Clock
from connectors.normalize import Mapping
from connectors.shopify import ShopifyConnector
from connectors.shopify.subscriptions import SubscriptionReport
from connectors.shopify.webhooks import INVENTORY_LEVELS_UPDATE, UNKNOWN_SHOP
from ledger import Ledger
from ledger.webhooks import REFUSED, Announcement, DeliveryWindow, LevelChange
from monitors.incidents import SEVERITY
from monitors.missed_webhooks import RULE, MissedRule
from monitors.pipeline import Candidate, Context, Pipeline, Scope, build_pipeline

log = logging.getLogger("driftwatch.webhook_health")

FAMILY = "webhook:"

#: A Shopify resource key (``<item gid>@<location gid>``) → (SKU, Driftwatch location).
Resolve = Callable[[str], tuple[str, str] | None]
#: One subscription check (an API call): what Shopify's subscriptions look like now.
SubscriptionCheck = Callable[[], Awaitable[SubscriptionReport]]


@dataclass(frozen=True)
class Thresholds:
    """When webhook trouble becomes an incident (counts are within ``window``).

    A ratio-based kind needs both its count and its share, so one odd delivery in a
    quiet hour pages nobody.
    """

    window: timedelta = timedelta(minutes=15)
    rejected: int = 3
    rejected_share: float = 0.2
    errors: int = 3
    late_after: timedelta = timedelta(minutes=5)
    late: int = 3
    late_share: float = 0.2
    #: a delivery this late makes ``webhook_delayed`` critical
    very_late: timedelta = timedelta(hours=1)
    duplicates: int = 10
    duplicate_share: float = 0.25
    out_of_order: int = 5
    out_of_order_share: float = 0.1
    #: changes judged for missed webhooks: those first seen in the last ``missed_lookback``
    missed: int = 3
    missed_lookback: timedelta = RULE.lookback
    #: a webhook triggered this long before a change was seen (the poll interval and the
    #: debounce), or this long after it (a late delivery), announced it
    announce_before: timedelta = RULE.before
    announce_after: timedelta = RULE.after
    #: subscription checks cost an API call: at most this often
    subscription_every: timedelta = timedelta(minutes=15)
    #: how many missed changes an incident lists
    listed: int = 10


@dataclass(frozen=True)
class WebhookFacts:
    """What is known about one system's webhooks now."""

    system: str
    deliveries: DeliveryWindow | None = None
    subscriptions: SubscriptionReport | None = None
    #: changes found by a poll that no webhook announced, and how many changes were judged
    missed: Sequence[LevelChange] = ()
    judged: int = 0


def missed_changes(
    changes: Iterable[LevelChange],
    announcements: Iterable[Announcement],
    resolve: Resolve,
    *,
    before: timedelta = RULE.before,
    after: timedelta = RULE.after,
) -> list[LevelChange]:
    """The ``changes`` no announcement explains.

    An announcement (a webhook for one level, at its ``triggered_at``, else when it was
    received) explains a change of the same SKU × location if it came after the value
    before the change was seen (``previous_at``), at most ``before`` ahead of the change
    being seen and at most ``after`` behind it (a late delivery). Each explains one
    change, oldest first; repeated deliveries of one event count once; announcements
    ``resolve`` cannot map (an item not read yet) explain nothing. The rule is
    :class:`monitors.missed_webhooks.MissedRule`, shared with the drift evidence.
    """
    rule = MissedRule(before=before, after=after)
    heard: dict[tuple[str, str], list[datetime]] = {}
    seen: set[tuple[str, datetime]] = set()
    for a in announcements:
        when = a.triggered_at or a.received_at
        if (a.resource_key, when) in seen:
            continue
        seen.add((a.resource_key, when))
        key = resolve(a.resource_key)
        if key is not None:
            heard.setdefault(key, []).append(when)
    for times in heard.values():
        times.sort()
    missed: list[LevelChange] = []
    for change in sorted(changes, key=lambda c: c.observed_at):
        times = heard.get((change.sku, change.location), [])
        match = next(
            (
                i
                for i, t in enumerate(times)
                if rule.explains(t, change.observed_at, change.previous_at)
            ),
            None,
        )
        if match is None:
            missed.append(change)
        else:
            del times[match]
    return missed


def level_resolver(connector: ShopifyConnector, mapping: Mapping) -> Resolve:
    """Resource keys of ``inventory_levels/update`` deliveries → (SKU, location), as the
    connector's reads name them (items it has not read yet map to None)."""

    def resolve(resource_key: str) -> tuple[str, str] | None:
        item, sep, location = resource_key.partition("@")
        sku = connector.sku_for_item(item) if sep else None
        if sku is None:
            return None
        return sku, mapping.location_key(connector.name, location) or location

    return resolve


def evaluate_webhooks(
    facts: Iterable[WebhookFacts], *, thresholds: Thresholds | None = None
) -> list[Candidate]:
    """Webhook candidates for every system whose webhooks need attention now."""
    t = thresholds or Thresholds()
    out: list[Candidate] = []
    for f in facts:
        out += _subscription_candidates(f, t)
        if f.deliveries is not None:
            out += _delivery_candidates(f.system, f.deliveries, t)
        levels_unsubscribed = f.subscriptions is not None and (
            INVENTORY_LEVELS_UPDATE in f.subscriptions.missing
        )
        if len(f.missed) >= t.missed and not levels_unsubscribed:
            out.append(_missed(f, t))
    return out


# -- the kinds ------------------------------------------------------------------------------
def _candidate(
    system: str,
    kind: str,
    title: str,
    evidence: list[str],
    *,
    severity: str | None = None,
    **facts: Any,
) -> Candidate:
    return Candidate(
        fingerprint=f"{FAMILY}{kind}:{system}",
        kind=kind,
        severity=severity or SEVERITY.get(kind, "warning"),
        title=title,
        details={"system": system, "evidence": evidence, **facts},
        system=system,
    )


def _delivery_candidates(system: str, w: DeliveryWindow, t: Thresholds) -> list[Candidate]:
    out: list[Candidate] = []
    span = _span(t.window)
    total = w.total
    accepted = total - w.count(*REFUSED)
    first = accepted - w.count("duplicate")
    counts: dict[str, Any] = {"deliveries": total, "window_seconds": int(t.window.total_seconds())}

    rejected = w.count("rejected_signature")
    if rejected >= t.rejected and rejected >= t.rejected_share * total:
        unsigned = rejected - w.signature_mismatches
        how = f"{w.signature_mismatches} signed with another secret"
        if unsigned:
            how += f", {unsigned} not signed at all"
        out.append(
            _candidate(
                system,
                "webhook_signatures_rejected",
                f"{system}: {rejected} of {total} webhooks refused (bad signature)",
                [
                    f"{rejected} of {total} deliveries in the last {span} were refused: bad "
                    f"HMAC signature ({how}) — was the webhook secret rotated?",
                    "Refused deliveries are answered 401: Shopify retries them, then gives up; "
                    "until then only the poll sees changes.",
                ],
                severity="critical" if accepted == 0 else "warning",
                rejected=rejected,
                signature_mismatches=w.signature_mismatches,
                **counts,
            )
        )

    wrong = w.count("wrong_shop")
    if wrong >= t.rejected and wrong >= t.rejected_share * total:
        unknown = system == UNKNOWN_SHOP
        out.append(
            _candidate(
                system,
                "webhook_wrong_shop",
                f"{wrong} webhooks named a shop no configured store serves"
                if unknown
                else f"{system}: {wrong} webhooks named another shop",
                [
                    f"{wrong} of {total} deliveries in the last {span} named a shop "
                    "(X-Shopify-Shop-Domain) "
                    + (
                        "that no store in the configuration has as its shop_domain."
                        if unknown
                        else f"other than {system}'s shop_domain."
                    ),
                    "They were refused (403) and not recorded one by one: if a store was "
                    "added to the app, add it to the configuration with its shop_domain; "
                    "`driftwatch webhooks` shows what each store is subscribed to.",
                ],
                wrong_shop=wrong,
                **counts,
            )
        )

    errors = w.count("error", "malformed")
    if errors >= t.errors:
        evidence = [
            f"{errors} of {total} deliveries in the last {span} could not be processed "
            f"({w.count('error')} failed after they were accepted, "
            f"{w.count('malformed')} were not a JSON object)."
        ]
        if w.last_error:
            evidence.append(f"The newest error: {w.last_error}")
        out.append(
            _candidate(
                system,
                "webhook_processing_errors",
                f"{system}: {errors} webhooks failed to process",
                evidence,
                severity="critical" if accepted and errors >= accepted / 2 else None,
                errors=errors,
                last_error=w.last_error,
                **counts,
            )
        )

    if w.late >= t.late and w.late >= t.late_share * max(w.timed, 1):
        worst = timedelta(seconds=w.max_delay_seconds or 0)
        out.append(
            _candidate(
                system,
                "webhook_delayed",
                f"{system}: {w.late} webhooks arrived over {_span(t.late_after)} late",
                [
                    f"{w.late} of {w.timed} deliveries in the last {span} arrived more than "
                    f"{_span(t.late_after)} after the change (the worst {_span(worst)}).",
                    "Targeted diffs run that much later; the scheduled poll still catches "
                    "every change.",
                ],
                severity="critical" if worst >= t.very_late else None,
                late=w.late,
                timed=w.timed,
                max_delay_seconds=w.max_delay_seconds,
                **counts,
            )
        )

    duplicates = w.count("duplicate")
    if duplicates >= t.duplicates and duplicates >= t.duplicate_share * max(accepted, 1):
        out.append(
            _candidate(
                system,
                "webhook_duplicates",
                f"{system}: {duplicates} duplicate webhook deliveries",
                [
                    f"{duplicates} of {accepted} accepted deliveries in the last {span} repeated "
                    "an event already received; each was recorded and not processed again.",
                    "Shopify resends a delivery it thinks failed: slow answers (over 5 s) or "
                    "errors on our side cause this.",
                ],
                duplicates=duplicates,
                **counts,
            )
        )

    stale = w.count("stale")
    if stale >= t.out_of_order and stale >= t.out_of_order_share * max(first, 1):
        out.append(
            _candidate(
                system,
                "webhook_out_of_order",
                f"{system}: {stale} webhooks arrived out of order",
                [
                    f"{stale} of {first} deliveries in the last {span} were older than one "
                    "already applied for the same level; they were recorded and not applied.",
                    "Out-of-sequence deliveries are harmless here, but a tool that applies "
                    "them blindly would move stock back in time.",
                ],
                stale=stale,
                **counts,
            )
        )
    return out


def _subscription_candidates(f: WebhookFacts, t: Thresholds) -> list[Candidate]:
    report = f.subscriptions
    if report is None:
        return []
    out: list[Candidate] = []
    if report.missing:
        topics = ", ".join(report.missing)
        evidence = [
            f"Shopify has no subscription to {report.callback_url} for: {topics}.",
        ]
        if INVENTORY_LEVELS_UPDATE in report.missing:
            evidence.append(
                "Without inventory_levels/update no change triggers a targeted diff: drift "
                "is seen only at the next scheduled poll."
            )
        if f.missed:
            evidence.append(
                f"{_count(len(f.missed), 'change')} found by polling in the last "
                f"{_span(t.missed_lookback)} arrived with no webhook."
            )
        out.append(
            _candidate(
                f.system,
                "webhook_subscription_missing",
                f"{f.system}: no webhook subscription for {topics}",
                evidence,
                severity="critical" if INVENTORY_LEVELS_UPDATE in report.missing else "warning",
                callback_url=report.callback_url,
                missing=list(report.missing),
            )
        )
    if report.wrong_address:
        elsewhere = [{"id": s.id, "topic": s.topic, "uri": s.uri} for s in report.wrong_address]
        out.append(
            _candidate(
                f.system,
                "webhook_subscription_misaddressed",
                f"{f.system}: {_count(len(elsewhere), 'webhook subscription')} "
                + ("points" if len(elsewhere) == 1 else "point")
                + " at another address",
                [
                    f"{s.topic} is also delivered to {s.uri}, not {report.callback_url}."
                    for s in report.wrong_address
                ],
                callback_url=report.callback_url,
                elsewhere=elsewhere,
            )
        )
    return out


def _missed(f: WebhookFacts, t: Thresholds) -> Candidate:
    listed = [
        {
            "sku": c.sku,
            "location": c.location,
            "from": c.previous,
            "to": c.quantity,
            "seen_at": c.observed_at.isoformat(),
        }
        for c in f.missed[: t.listed]
    ]
    lines = [
        f"{len(f.missed)} of {f.judged} changes of Shopify levels found by polling in the "
        f"last {_span(t.missed_lookback)} had no inventory_levels/update webhook.",
        *(
            f"`{c['sku']}` at {c['location']}: {c['from']} → {c['to']}, seen {c['seen_at']}"
            for c in listed
        ),
    ]
    return _candidate(
        f.system,
        "webhook_missed",
        f"{f.system}: {_count(len(f.missed), 'change')} no webhook announced",
        lines,
        missed=len(f.missed),
        judged=f.judged,
        changes=listed,
        lookback_seconds=int(t.missed_lookback.total_seconds()),
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


# -- the job --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookWatch:
    """One system whose webhooks are watched.

    :param check: the subscription check (None: no callback URL configured, not checked).
    :param resolve: maps webhook resource keys to SKU × location (None: missed webhooks
        are not looked for, e.g. when this process receives no webhooks).
    :param state: the level state a webhook announces (Shopify: ``available``).
    """

    system: str
    check: SubscriptionCheck | None = None
    resolve: Resolve | None = None
    state: str = "available"
    topic: str = INVENTORY_LEVELS_UPDATE


@dataclass
class _Checked:
    at: datetime
    report: SubscriptionReport | None = None


class WebhookHealthJob:
    """Webhook failures of every watched system, through the incident pipeline."""

    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        watches: Sequence[WebhookWatch],
        *,
        channel: str,
        thresholds: Thresholds | None = None,
        pipeline: Pipeline | None = None,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        self._watches = tuple(watches)
        self._channel = channel
        self.thresholds = thresholds or Thresholds()
        self._pipeline = pipeline or build_pipeline()
        self._checked: dict[str, _Checked] = {}
        self._lock = asyncio.Lock()
        #: the facts of the last run, per system (for callers and tests)
        self.last: dict[str, WebhookFacts] = {}

    @property
    def systems(self) -> tuple[str, ...]:
        return tuple(w.system for w in self._watches)

    async def run(self) -> Context:
        """Gather the facts, evaluate, and push the findings through the pipeline."""
        async with self._lock:
            now = self._clock.now()
            facts = [await self._facts(w, now) for w in self._watches]
            self.last = {f.system: f for f in facts}
            return await self._pipeline.run(
                self._ledger,
                (),
                scope=Scope(systems=frozenset(self.systems)),
                now=now,
                channel=self._channel,
                given=evaluate_webhooks(facts, thresholds=self.thresholds),
                families=(FAMILY,),
            )

    async def _facts(self, watch: WebhookWatch, now: datetime) -> WebhookFacts:
        t = self.thresholds
        deliveries = await self._ledger.delivery_window(
            watch.system, now - t.window, late_after_seconds=t.late_after.total_seconds()
        )
        missed: list[LevelChange] = []
        judged = 0
        if watch.resolve is not None:
            since, until = now - t.missed_lookback, now - t.announce_after
            changes = await self._ledger.level_changes(
                watch.system, since, until, state=watch.state
            )
            heard = await self._ledger.announcements(
                watch.system, watch.topic, since - t.announce_before, now
            )
            judged = len(changes)
            missed = missed_changes(
                changes, heard, watch.resolve, before=t.announce_before, after=t.announce_after
            )
        return WebhookFacts(
            system=watch.system,
            deliveries=deliveries,
            subscriptions=await self._subscriptions(watch, now),
            missed=missed,
            judged=judged,
        )

    async def _subscriptions(self, watch: WebhookWatch, now: datetime) -> SubscriptionReport | None:
        """The latest subscription report; a new check only once ``subscription_every``
        has passed since the last attempt. A failed check keeps the report before it."""
        if watch.check is None:
            return None
        last = self._checked.get(watch.system)
        if last is not None and now - last.at < self.thresholds.subscription_every:
            return last.report
        previous = last.report if last is not None else None
        try:
            report: SubscriptionReport | None = await watch.check()
        except Exception as exc:  # one shop's outage must not stop the others
            log.warning("%s: could not check webhook subscriptions: %s", watch.system, exc)
            report = previous
        self._checked[watch.system] = _Checked(now, report)
        return report
