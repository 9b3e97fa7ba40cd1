"""A part of Shopify's search syntax, for the ``query:`` argument of connections.

It follows https://shopify.dev/docs/api/usage/search-syntax:

* A query is terms separated by whitespace, joined by ``AND`` (also implied by
  whitespace) or ``OR``; parentheses group terms (here they only delimit: the terms
  inside are joined into the query as written, without precedence).
* A term is ``[modifier] [field comparator] value``. Modifiers: a leading ``-`` or
  ``NOT``. Comparators: ``:`` (equality) and the ranges ``:>``, ``:>=``, ``:<``, ``:<=``,
  which are read only directly after a field's colon.
* A value is a *name* (any run of characters that are neither whitespace nor special)
  or a *quoted string*, in single or double quotes. A quoted string is taken as written:
  the comparator characters ``<`` and ``>``, spaces, parentheses and colons inside it
  are part of the value.
* Special characters (``:`` ``\\`` ``(`` ``)``) are escaped with a backslash; a
  backslash also escapes the quote character inside a quoted string. An escaped
  character is part of the value and has no meaning of its own.
* A trailing ``*`` on an unquoted name makes a prefix query (``sku:ABC*``).

A field the connection does not know is ignored, and a warning goes to
``extensions.search`` as the real API does (``{"field", "message": "Invalid search field
for this query.", "code": "invalid_field"}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

T = TypeVar("T")
Matcher = Callable[[Any, "Term"], bool]

_FIELD = re.compile(r"([A-Za-z_][\w.]*):(>=|<=|>|<)?")
_QUOTES = "\"'"
#: Characters that end an unquoted name when not escaped.
_NAME_STOP = "()"


@dataclass(frozen=True)
class Term:
    field: str | None
    op: str  # ":" or one of > >= < <=
    value: str
    negated: bool = False
    #: an unquoted name with a trailing ``*``: match values starting with ``value``
    prefix: bool = False


@dataclass(frozen=True)
class _Word:
    """One term as written: its field and comparator, its value with escapes resolved,
    whether it ended with an unescaped ``*``, and its raw text (to tell the connectives
    ``AND``/``OR``/``NOT`` from values that merely spell them, such as ``"OR"``)."""

    field: str | None
    op: str
    value: str
    negated: bool
    prefix: bool
    raw: str


def _value(query: str, i: int) -> tuple[str, bool, int]:
    """The value starting at ``query[i]``: (text, prefix, index after it)."""
    n = len(query)
    if i < n and query[i] in _QUOTES:
        quote, out, i = query[i], [], i + 1
        while i < n and query[i] != quote:
            if query[i] == "\\" and i + 1 < n:
                i += 1
            out.append(query[i])
            i += 1
        return "".join(out), False, min(i + 1, n)
    out, star = [], False
    while i < n and not query[i].isspace() and query[i] not in _NAME_STOP:
        if query[i] == "\\" and i + 1 < n:
            out.append(query[i + 1])
            star = False
            i += 2
            continue
        star = query[i] == "*"
        out.append(query[i])
        i += 1
    text = "".join(out)
    if star:
        return text[:-1], True, i
    return text, False, i


def _words(query: str) -> list[_Word]:
    words: list[_Word] = []
    i, n = 0, len(query)
    while i < n:
        if query[i].isspace() or query[i] in "()":
            i += 1
            continue
        start = i
        negated = query[i] == "-" and i + 1 < n and not query[i + 1].isspace()
        if negated:
            i += 1
        field, op = None, ":"
        m = _FIELD.match(query, i)
        if m:
            field, op = m.group(1), m.group(2) or ":"
            i = m.end()
        value, prefix, i = _value(query, i)
        words.append(_Word(field, op, value, negated, prefix, query[start:i]))
    return words


def parse(query: str) -> list[list[Term]]:
    """The query as alternatives (OR) of conjunctions (AND) of terms."""
    groups: list[list[Term]] = [[]]
    negate = False
    for word in _words(query):
        if word.raw == "OR":
            groups.append([])
            continue
        if word.raw == "AND":
            continue
        if word.raw == "NOT":
            negate = True
            continue
        neg = negate or word.negated
        negate = False
        groups[-1].append(Term(word.field, word.op, word.value, neg, word.prefix))
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
        value = t.value + ("*" if t.prefix else "")
        body: dict[str, Any] = {"field": t.field or "default", key: value}
        return {"not": body} if t.negated else body

    ands = [one(g[0]) if len(g) == 1 else {"and": [one(t) for t in g]} for g in groups]
    return ands[0] if len(ands) == 1 else {"or": ands}


# -- value comparisons used by the connections' matchers ---------------------------------
def text_match(actual: str | None, term: Term) -> bool:
    if actual is None:
        return False
    want = term.value.lower()
    have = actual.lower()
    if term.prefix:
        return have.startswith(want)
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
