"""Shopify's published Admin GraphQL schema, built once per process.

The SDL lives in the shared reference folder beside the project
(``../shared/reference/shopify/admin-2026-07.schema.graphql``); set
``DRIFTWATCH_SHOPIFY_SCHEMA`` to point elsewhere. Building takes a couple of seconds, so
the result is cached; call :func:`load_schema` early (e.g. in a session fixture) to pay
once.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from graphql import GraphQLSchema, build_schema

_DEFAULT = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "reference"
    / "shopify"
    / ("admin-2026-07.schema.graphql")
)
_lock = threading.Lock()
_cache: dict[Path, ShopifySchema] = {}


@dataclass(frozen=True)
class ShopifySchema:
    schema: GraphQLSchema
    #: Mutations whose description says the ``@idempotent`` key is required (2026-04 on).
    idempotency_required: frozenset[str]
    #: Mutations that accept ``@idempotent`` at all.
    idempotency_supported: frozenset[str]


def schema_path() -> Path:
    return Path(os.environ.get("DRIFTWATCH_SHOPIFY_SCHEMA", _DEFAULT))


def load_schema(path: Path | None = None) -> ShopifySchema:
    """The schema (cached; thread-safe)."""
    path = (path or schema_path()).resolve()
    with _lock:
        if path not in _cache:
            schema = build_schema(path.read_text(encoding="utf-8"), assume_valid=True)
            mutation = schema.mutation_type
            required: set[str] = set()
            supported: set[str] = set()
            for name, field in mutation.fields.items() if mutation else []:
                text = field.description or ""
                if "@idempotent" in text:
                    supported.add(name)
                if re.search(r"idempotency key is required", text):
                    required.add(name)
            _cache[path] = ShopifySchema(schema, frozenset(required), frozenset(supported))
        return _cache[path]
