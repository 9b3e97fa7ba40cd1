"""How a REST inventory API is read and written, as plain data the factory fills in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from connectors.normalize import is_whole_number

Pagination = Literal["page", "offset", "cursor", "link"]


@dataclass(frozen=True)
class ListSpec:
    """The list endpoint and how it pages."""

    path: str
    pagination: Pagination = "page"
    page_param: str = "page"
    size_param: str = "per_page"
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    next_cursor_path: str = "next_cursor"
    items_path: str = "items"
    page_size: int = 500
    sku_filter_param: str | None = None
    first_page: int = 1


@dataclass(frozen=True)
class FieldSpec:
    """Dotted paths into one item of the list."""

    sku: str
    location: str
    quantities: Mapping[str, str]
    updated_at: str | None = None


@dataclass(frozen=True)
class WriteSpec:
    """An endpoint that sets one level, e.g. ``PUT /inventory/{sku}/{location}``."""

    path: str
    method: str = "PUT"
    #: state -> JSON body field carrying the new quantity
    quantity_fields: Mapping[str, str] = field(default_factory=dict)
    expected_field: str | None = "expected"
    idempotency_header: str = "Idempotency-Key"


def dig(item: Any, path: str) -> Any:
    """The value at a dotted path (``qty.on_hand``, ``lines.0.sku``), or None."""
    current = item
    if "." not in path:  # the common case: a top-level field of a JSON object
        return current.get(path) if type(current) is dict else _dig(current, path)
    return _dig(current, path)


def _dig(item: Any, path: str) -> Any:
    current = item
    for part in path.split("."):
        # a parsed JSON object is a plain dict: skip the slower ABC check for it
        if type(current) is dict or isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and is_whole_number(part) and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
        if current is None:
            return None
    return current
