"""The GraphQL documents the Shopify connector sends, loaded from the .graphql files."""

from __future__ import annotations

from functools import cache
from importlib import resources

DOCUMENT_NAMES = (
    "locations",
    "inventory_items",
    "inventory_item_levels",
    "set_quantities",
    "webhook_subscriptions",
    "webhook_subscription_create",
    "bulk_inventory_items",
    "bulk_run_query",
    "bulk_operation",
    "bulk_variant_count",
)


@cache
def document(name: str) -> str:
    """The text of ``graphql/<name>.graphql``."""
    if name not in DOCUMENT_NAMES:
        raise KeyError(name)
    return (resources.files(__package__) / "graphql" / f"{name}.graphql").read_text("utf-8")


def all_documents() -> dict[str, str]:
    return {name: document(name) for name in DOCUMENT_NAMES}
