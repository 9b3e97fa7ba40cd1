"""Every GraphQL document the Shopify connector sends validates against Shopify's schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import GraphQLSchema, parse, validate

from connectors.shopify import all_documents
from sandbox.shopify import load_schema


def schema() -> GraphQLSchema:
    """Shopify's published 2026-07 schema, unpruned (vendored in sandbox/shopify/reference)."""
    return load_schema().schema


@pytest.mark.parametrize("name", sorted(all_documents()))
def test_document_is_valid_against_the_real_schema(name: str) -> None:
    errors = validate(schema(), parse(all_documents()[name]))
    assert [e.message for e in errors] == []


def test_every_graphql_file_is_loaded() -> None:
    folder = Path(__file__).resolve().parents[2] / "connectors/shopify/graphql"
    on_disk = {p.stem for p in folder.glob("*.graphql")}
    assert on_disk == set(all_documents())


def test_an_invalid_document_would_be_caught() -> None:
    errors = validate(schema(), parse("query { inventoryItems(first: 1) { nodes { nope } } }"))
    assert errors
