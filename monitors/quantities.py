"""Quantities people type and Driftwatch writes: whole numbers in ASCII digits within
Shopify's bounds, checked before anything is written.

Shopify refuses a total quantity above 1,000,000,000 or below -1,000,000,000
(``INVALID_QUANTITY_TOO_HIGH``: "The total quantity can't be higher than
1,000,000,000"; ``INVALID_QUANTITY_TOO_LOW``: "can't be lower than -1,000,000,000",
https://shopify.dev/docs/api/admin-graphql/latest/enums/InventorySetQuantitiesUserErrorCode).
Driftwatch holds every count it writes, to any system, to the same bounds: a count a
storefront cannot show is a typing error, not stock, and a count within them always fits
the ledger's integer columns (no overflow after a write has happened).

Digits are ASCII only: ``int()`` and ``\\d`` also accept other scripts' digits
(``'٣'`` is 3), which a person reading the audit log would not recognise as what was
typed.
"""

from __future__ import annotations

import re

MAX_QUANTITY = 1_000_000_000
MIN_QUANTITY = -1_000_000_000
#: an optional sign and ASCII digits; a typographic minus (U+2212) is read as "-"
_NUMBER = re.compile(r"[+-]?[0-9]+")
_MAX_DIGITS = len(str(MAX_QUANTITY))


class QuantityError(ValueError):
    """A quantity that is not a whole number in ASCII digits within the bounds; the
    message says so in words a person can act on."""


def bounds_text() -> str:
    return f"between {MIN_QUANTITY:,} and {MAX_QUANTITY:,}"


def parse_quantity(raw: str, what: str = "The quantity") -> int:
    """``raw`` (spaces and a leading ``+`` allowed) as an int within the bounds."""
    text = raw.strip().replace("\u2212", "-").replace(" ", "")
    if not _NUMBER.fullmatch(text):
        raise QuantityError(
            f"{what} must be a whole number in digits 0-9, like 5 or -3 (got {raw[:40]!r})."
        )
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > _MAX_DIGITS:
        raise QuantityError(f"{what} must be {bounds_text()}.")
    value = int(text)
    problem = out_of_bounds(value, what)
    if problem is not None:
        raise QuantityError(problem)
    return value


def out_of_bounds(value: int, what: str = "The quantity") -> str | None:
    """Why ``value`` cannot be written as a count, or None if it can."""
    if value > MAX_QUANTITY or value < MIN_QUANTITY:
        return f"{what} must be {bounds_text()}."
    return None


__all__ = [
    "MAX_QUANTITY",
    "MIN_QUANTITY",
    "QuantityError",
    "bounds_text",
    "out_of_bounds",
    "parse_quantity",
]
