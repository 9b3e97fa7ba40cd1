"""Are Shopify's webhook subscriptions pointing at us? Check, and create what is missing.

:func:`check_subscriptions` pages ``webhookSubscriptions`` and reports, for the topics
Driftwatch needs, which have no subscription to our callback URL (``missing``) and
which subscriptions for those topics point somewhere else (``wrong_address`` — e.g. a
tunnel URL left over from a test, or the address before a move). :func:`create_missing`
subscribes the missing topics. Subscriptions at other addresses are reported, never
deleted: they may belong to another environment.

Topics are named the REST way (``inventory_levels/update``, as in ``X-Shopify-Topic``);
GraphQL's enum (``INVENTORY_LEVELS_UPDATE``) is converted at the edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.shopify.documents import document


class GraphQLExecutor(Protocol):
    """What the check needs from a transport (``GraphQLTransport`` fits)."""

    async def execute(self, name: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one document; return its ``data``."""
        ...


def topic_enum(topic: str) -> str:
    """``inventory_levels/update`` → ``INVENTORY_LEVELS_UPDATE`` (enums pass through)."""
    return topic.replace("/", "_").upper()


def topic_name(enum: str) -> str:
    """``INVENTORY_LEVELS_UPDATE`` → ``inventory_levels/update``.

    Splits at the last underscore, which is right for Driftwatch's topics (and most of
    Shopify's); a few (``orders/partially_fulfilled``) would need a table.
    """
    if "/" in enum:
        return enum.lower()
    head, _, tail = enum.lower().rpartition("_")
    return f"{head}/{tail}" if head else tail


@dataclass(frozen=True, slots=True)
class Subscription:
    """One webhook subscription as Shopify lists it."""

    id: str
    topic: str
    uri: str
    format: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionReport:
    """The subscriptions for the expected topics, against ``callback_url``."""

    callback_url: str
    expected: tuple[str, ...]
    subscriptions: tuple[Subscription, ...]
    #: Expected topics with no subscription to ``callback_url``.
    missing: tuple[str, ...]
    #: Subscriptions for expected topics that point at another address.
    wrong_address: tuple[Subscription, ...]

    @property
    def healthy(self) -> bool:
        return not self.missing and not self.wrong_address


@dataclass(frozen=True, slots=True)
class Created:
    """What became of one subscription create: its id, or Shopify's userErrors."""

    topic: str
    subscription: Subscription | None
    errors: tuple[str, ...] = ()


async def list_subscriptions(
    transport: GraphQLExecutor, topics: Iterable[str] | None = None, page_size: int = 100
) -> list[Subscription]:
    """Every webhook subscription of this app on this shop (of ``topics``, if given)."""
    found: list[Subscription] = []
    after: str | None = None
    enums = sorted({topic_enum(t) for t in topics}) if topics is not None else None
    while True:
        data = await transport.execute(
            "webhook_subscriptions",
            document("webhook_subscriptions"),
            {"first": page_size, "after": after, "topics": enums},
        )
        conn = data["webhookSubscriptions"]
        found.extend(
            Subscription(
                id=node["id"],
                topic=topic_name(node["topic"]),
                uri=node["uri"],
                format=node.get("format"),
            )
            for node in conn["nodes"]
        )
        if not conn["pageInfo"]["hasNextPage"]:
            return found
        after = conn["pageInfo"]["endCursor"]


async def check_subscriptions(
    transport: GraphQLExecutor, expected_topics: Iterable[str], callback_url: str
) -> SubscriptionReport:
    """Which expected topics lack a subscription to ``callback_url``, and which
    subscriptions for them point elsewhere."""
    expected = tuple(dict.fromkeys(topic_name(topic_enum(t)) for t in expected_topics))
    subscriptions = await list_subscriptions(transport, expected)
    wanted = set(expected)
    relevant = [s for s in subscriptions if s.topic in wanted]
    ok = {s.topic for s in relevant if _same_address(s.uri, callback_url)}
    return SubscriptionReport(
        callback_url=callback_url,
        expected=expected,
        subscriptions=tuple(subscriptions),
        missing=tuple(t for t in expected if t not in ok),
        wrong_address=tuple(s for s in relevant if not _same_address(s.uri, callback_url)),
    )


async def create_missing(transport: GraphQLExecutor, report: SubscriptionReport) -> list[Created]:
    """Subscribe ``report.callback_url`` to each of ``report.missing`` (JSON format)."""
    results: list[Created] = []
    for topic in report.missing:
        data = await transport.execute(
            "webhook_subscription_create",
            document("webhook_subscription_create"),
            {
                "topic": topic_enum(topic),
                "webhookSubscription": {"uri": report.callback_url, "format": "JSON"},
            },
        )
        payload = data["webhookSubscriptionCreate"] or {}
        errors = tuple(
            f"{'.'.join(e.get('field') or [])}: {e.get('message')}".lstrip(": ")
            for e in payload.get("userErrors") or []
        )
        node = payload.get("webhookSubscription")
        created = (
            Subscription(node["id"], topic_name(node["topic"]), node["uri"], node.get("format"))
            if node
            else None
        )
        results.append(Created(topic, created, errors))
    return results


def _same_address(uri: str, callback_url: str) -> bool:
    return uri.rstrip("/") == callback_url.rstrip("/")
