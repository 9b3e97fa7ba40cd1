"""Shopify's published Admin GraphQL schema, built once per process.

The SDL ships with the sandbox, xz-compressed and unpruned
(``sandbox/shopify/reference/admin-2026-07.schema.graphql.xz``; its source, licence and
checksum are in the README beside it). Set ``DRIFTWATCH_SHOPIFY_SCHEMA`` to an SDL file,
plain or ``.xz``, to use another version. Building takes a couple of seconds, so the
result is cached; call :func:`load_schema` early (e.g. in a session fixture) to pay once.
"""

from __future__ import annotations

import lzma
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from graphql import GraphQLSchema, build_schema

_DEFAULT = Path(__file__).resolve().parent / "reference" / "admin-2026-07.schema.graphql.xz"
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


def read_sdl(path: Path | None = None) -> str:
    """The schema's SDL text, decompressed when the file ends in ``.xz``."""
    path = path or schema_path()
    try:
        if path.suffix == ".xz":
            return lzma.decompress(path.read_bytes()).decode("utf-8")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Shopify's Admin GraphQL schema is missing at {path}. It ships with the "
            "sandbox package; reinstall Driftwatch, or point DRIFTWATCH_SHOPIFY_SCHEMA at "
            "an SDL file."
        ) from None


def load_schema(path: Path | None = None) -> ShopifySchema:
    """The schema (cached; thread-safe)."""
    path = (path or schema_path()).resolve()
    with _lock:
        if path not in _cache:
            schema = build_schema(read_sdl(path), assume_valid=True)
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
