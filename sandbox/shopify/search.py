"""A small part of Shopify's search syntax, for the ``query:`` argument of connections.

Supported: ``field:value`` terms joined by whitespace (AND) or ``OR``, negation with a
leading ``-`` or ``NOT``, quoted values, a trailing ``*`` for prefix matches, and the
range forms ``field:>v``, ``field:>=v``, ``field:<v``, ``field:<=v``. A field the
connection does not know is ignored, and a warning goes to ``extensions.search`` as the
real API does (``{"field", "message": "Invalid search field for this query.",
"code": "invalid_field"}``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")
Matcher = Callable[[Any, "Term"], bool]


@dataclass(frozen=True)
class Term:
    field: str | None
    op: str  # ":" or one of > >= < <=
    value: str
    negated: bool = False


def parse(query: str) -> list[list[Term]]:
    """The query as alternatives (OR) of conjunctions (AND) of terms."""
    try:
        words = shlex.split(query.replace("(", " ").replace(")", " "))
    except ValueError:
        words = query.split()
    groups: list[list[Term]] = [[]]
    negate = False
    for word in words:
        if word == "OR":
            groups.append([])
            continue
        if word == "AND":
            continue
        if word == "NOT":
            negate = True
            continue
        neg = negate or word.startswith("-")
        negate = False
        word = word.lstrip("-") if word.startswith("-") else word
        m = re.match(r"^([A-Za-z_][\w.]*):(>=|<=|>|<)?(.*)$", word)
        if m:
            value = m.group(3).strip("'\"")
            groups[-1].append(Term(m.group(1), m.group(2) or ":", value, neg))
        else:
            groups[-1].append(Term(None, ":", word, neg))
    return [g for g in groups if g]


def filter_objects(
    objects: Sequence[T],
    query: str | None,
    matchers: dict[str | None, Matcher],
    path: list[str | int],
    warnings: list[dict[str, Any]],
) -> list[T]:
    """The objects matching ``query``; unknown fields are skipped with a warning."""
    if not query or not query.strip():
        return list(objects)
    groups = parse(query)
    unknown = sorted({t.field for g in groups for t in g if t.field not in matchers and t.field})
    if unknown:
        warnings.append(
            {
                "path": path,
                "query": query,
                "parsed": _parsed(groups),
                "warnings": [
                    {
                        "field": f,
                        "message": "Invalid search field for this query.",
                        "code": "invalid_field",
                    }
                    for f in unknown
                ],
            }
        )
    usable = [[t for t in g if t.field in matchers] for g in groups]
    if any(not g for g in usable):
        return list(objects)  # an alternative with no usable term matches everything

    def hit(obj: T) -> bool:
        return any(all(matchers[t.field](obj, t) != t.negated for t in g) for g in usable)

    return [o for o in objects if hit(o)]


def _parsed(groups: list[list[Term]]) -> dict[str, Any]:
    def one(t: Term) -> dict[str, Any]:
        key = {
            ":": "match_all",
            ">": "range_gt",
            ">=": "range_gte",
            "<": "range_lt",
            "<=": "range_lte",
        }[t.op]
        body: dict[str, Any] = {"field": t.field or "default", key: t.value}
        return {"not": body} if t.negated else body

    ands = [one(g[0]) if len(g) == 1 else {"and": [one(t) for t in g]} for g in groups]
    return ands[0] if len(ands) == 1 else {"or": ands}


# -- value comparisons used by the connections' matchers ---------------------------------
def text_match(actual: str | None, term: Term) -> bool:
    if actual is None:
        return False
    want = term.value.lower()
    have = actual.lower()
    if want.endswith("*"):
        return have.startswith(want[:-1])
    return have == want


def id_match(actual: int, term: Term) -> bool:
    raw = term.value.rsplit("/", 1)[-1]
    if not raw.isdigit():
        return False
    return compare(actual, int(raw), term.op)


def date_match(actual: datetime, term: Term) -> bool:
    try:
        wanted = datetime.fromisoformat(term.value.replace("Z", "+00:00"))
    except ValueError:
        return False
    if wanted.tzinfo is None:
        wanted = wanted.replace(tzinfo=actual.tzinfo)
    if term.op == ":":
        return actual.date() == wanted.date()
    return compare(actual, wanted, term.op)


def compare(actual: Any, wanted: Any, op: str) -> bool:
    if op == ">":
        return bool(actual > wanted)
    if op == ">=":
        return bool(actual >= wanted)
    if op == "<":
        return bool(actual < wanted)
    if op == "<=":
        return bool(actual <= wanted)
    return bool(actual == wanted)
