"""Shopify Admin GraphQL connector."""

from connectors.shopify.connector import REASONS, ShopifyConnector
from connectors.shopify.documents import all_documents, document

__all__ = ["REASONS", "ShopifyConnector", "all_documents", "document"]
