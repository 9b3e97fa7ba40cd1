"""JSON from outside, parsed within limits.

Python's ``json`` parses a body nested 100,000 levels deep by recursing until it raises
``RecursionError`` — not a ``ValueError``, so a handler that catches only the latter
answers 500 — and accepts ``NaN``, ``Infinity`` and ``1e999`` (a float no database's
JSON can store). :func:`loads_bounded` turns all of those into :class:`UnsafeJSON`, a
``ValueError``, so that every caller answers such a body as malformed (400).
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Nesting deeper than this is refused. Shopify's webhook payloads and Slack's
#: interaction payloads nest a handful of levels (a view's blocks about ten).
MAX_DEPTH = 64


class UnsafeJSON(ValueError):
    """The text is not JSON this program accepts: malformed, too deep, or with a number
    JSON cannot carry (NaN, Infinity, a float out of range)."""


def _constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(f"{text[:20]} is out of range")
    return value


def loads_bounded(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads(text)``, refusing (:class:`UnsafeJSON`) text that is not JSON, is
    nested more than ``max_depth`` levels, or holds a non-finite number. Bytes must be
    UTF-8 (as JSON on the wire is)."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text, parse_constant=_constant, parse_float=_float)
    except RecursionError as exc:  # the C parser stops at the interpreter's limit
        raise UnsafeJSON("nested too deeply") from exc
    except UnsafeJSON:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise UnsafeJSON(str(exc).splitlines()[0] if str(exc) else "not JSON") from exc
    if depth_exceeds(value, max_depth):
        raise UnsafeJSON(f"nested more than {max_depth} levels")
    return value


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether ``value`` (parsed JSON) nests more than ``max_depth`` containers deep;
    walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
