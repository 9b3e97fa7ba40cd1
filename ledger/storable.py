"""Values from outside made storable on every backend.

Text that came from a webhook, a Slack request or an outside system may hold what one
backend refuses although Python accepts it: a NUL (PostgreSQL refuses ``\\u0000`` in
``text`` and ``jsonb``), a lone surrogate (neither backend can encode it as UTF-8;
PostgreSQL's ``jsonb`` refuses the escape ``\\ud800``), or a float that JSON has no
number for (``NaN``, ``Infinity``: PostgreSQL's ``jsonb`` refuses them). One such value
used to fail the whole transaction it shared with others. These functions replace each
with something every backend stores: U+FFFD for the characters, a string for the
floats. Everything else passes unchanged (integers of any size are valid JSON numbers
on both backends).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, overload

from ledger.errors import InvalidArgument

#: What replaces a character no backend can store.
REPLACEMENT = "\ufffd"
#: JSON nested deeper than this is refused (the receivers refuse far shallower bodies).
MAX_DEPTH = 100

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@overload
def storable_text(value: str) -> str: ...
@overload
def storable_text(value: None) -> None: ...
def storable_text(value: str | None) -> str | None:
    """``value`` with NULs and lone surrogates replaced by U+FFFD."""
    if value is None or not _UNSTORABLE.search(value):
        return value
    return _UNSTORABLE.sub(REPLACEMENT, value)


def require_storable(name: str, values: Sequence[object], items: Sequence[object]) -> None:
    """Refuse ``values`` (the ``name`` field of each of ``items``, in order) unless each
    is a str every backend stores: no NUL, no lone surrogate (PostgreSQL refuses both,
    where SQLite would keep what a PostgreSQL ledger cannot). Checked over all of them
    joined, at C speed; the first item refused is named."""
    try:
        joined = "".join(values)  # type: ignore[arg-type]  # a non-string: named below
    except TypeError:
        joined = None
    if joined is not None and (
        (joined.isascii() and "\x00" not in joined) or not _UNSTORABLE.search(joined)
    ):
        return  # the ASCII test and the NUL search are C loops; the pattern is slower
    for value, item in zip(values, items, strict=True):
        refuse_unstorable(name, value, f" in {item!r}")


def refuse_unstorable(name: str, value: object, where: str = "") -> None:
    """Refuse ``value`` unless it is a str every backend stores (see
    :func:`require_storable`); ``where`` ends the message (what held it)."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be text{where}")
    if _UNSTORABLE.search(value):
        raise InvalidArgument(
            f"{name} {value!r} holds a NUL or a lone surrogate, which the ledger cannot "
            f"store on every backend{where}"
        )


def refusal_reason(error: BaseException, limit: int = 200) -> str:
    """Why the database refused a value, in one storable line: the driver's own message
    (not SQLAlchemy's, which carries the statement and its parameters)."""
    text = str(getattr(error, "orig", None) or error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return storable_text(line)[:limit]


def storable_json(value: Any) -> Any:
    """A copy of the JSON-like ``value`` whose strings (keys too) are
    :func:`storable_text` and whose non-finite floats are strings. Values that are not
    JSON at all are left for :func:`ledger.types.require_json` to refuse."""
    return _storable(value, 0)


def _storable(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidArgument(f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {
            storable_text(k) if isinstance(k, str) else k: _storable(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_storable(v, depth + 1) for v in value]
    return value
