"""Pydantic's validation errors, said the way a person editing the file needs them.

A *finding* is ``(loc, message)``: ``loc`` is a tuple of keys and list indexes into
the file, without pydantic's union tags. :func:`render_path` turns it into
``systems[1].base_url``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from monitors.config.errors import Problem
from monitors.config.types import ERROR_TYPE

Loc = tuple[str | int, ...]
Finding = tuple[Loc, str]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "api_key",
        "apikey",
        "private_key",
        "access_token",
        "auth_token",
        "client_secret",
        "credentials",
        "credential",
    }
)
_SECRET_SUFFIXES = ("_token", "_secret", "_password", "_passwd", "_api_key", "_apikey")

_SIMPLE: dict[str, str] = {
    "missing": "required",
    "string_type": "must be a string",
    "string_unicode": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "dict_type": "must be a table",
    "mapping_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "path_type": "must be a string",
    "string_too_short": "must not be empty",
}


def render_path(loc: Loc) -> str:
    """``("systems", 1, "base_url")`` → ``systems[1].base_url``; odd keys are quoted."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = part if _BARE_KEY.fullmatch(part) else '"' + part.replace('"', '\\"') + '"'
        out += f".{key}" if out else key
    return out


def findings_from_error(error: ValidationError, root: type[BaseModel]) -> list[Finding]:
    """One finding per pydantic error, with tags stripped and messages rewritten."""
    findings = []
    details = error.errors(include_url=False, include_input=False)
    for detail in details:
        raw_loc = tuple(detail["loc"])
        if detail["type"] == "too_short" and _has_inner_error(raw_loc, details):
            continue  # pydantic counts only the valid items: not "empty", just broken
        loc, annotation = _resolve(root, raw_loc)
        if detail["type"] == "extra_forbidden":
            parent = _strip(_resolve(root, raw_loc[:-1])[1])
            allowed = list(parent.model_fields) if _is_model(parent) else []
            message = _unknown_key(str(loc[-1]) if loc else "", allowed)
        else:
            message = _message(detail, annotation)
        if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, _quoted(detail.get("ctx", {}).get("discriminator", "kind")))
        findings.append((loc, message))
    return findings


def _has_inner_error(loc: Loc, details: Sequence[ErrorDetails]) -> bool:
    return any(len(d["loc"]) > len(loc) and tuple(d["loc"][: len(loc)]) == loc for d in details)


def to_problems(findings: Iterable[Finding], data: object) -> list[Problem]:
    """Problems in the order their keys appear in the file, duplicates dropped."""
    unique = list(dict.fromkeys(findings))
    unique.sort(key=lambda finding: _order_key(data, finding[0]))
    return [Problem(render_path(loc), message) for loc, message in unique]


def _order_key(data: object, loc: Loc) -> tuple[int, ...]:
    key = []
    node = data
    for part in loc:
        if isinstance(node, Mapping):
            keys = list(node)
            key.append(keys.index(part) if part in keys else len(keys))
            node = node.get(part)
        elif isinstance(node, Sequence) and not isinstance(node, str) and isinstance(part, int):
            key.append(part)
            node = node[part] if 0 <= part < len(node) else None
        else:
            key.append(1 << 30)
            node = None
    return tuple(key)


def _message(detail: ErrorDetails, annotation: Any) -> str:
    kind = detail["type"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    if kind == ERROR_TYPE:
        return str(ctx.get("message", "is not valid"))
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind in ("literal_error", "union_tag_invalid"):
        expected = ctx.get("expected", ctx.get("expected_tags", ""))
        return "must be one of " + ", ".join(re.findall(r"'([^']*)'", str(expected)))
    if kind == "union_tag_not_found":
        tags = _union_tags(annotation)
        return f"required (one of {', '.join(tags)})" if tags else "required"
    bounds = {
        "greater_than_equal": ("must be at least", "ge"),
        "greater_than": ("must be more than", "gt"),
        "less_than_equal": ("must be at most", "le"),
        "less_than": ("must be less than", "lt"),
    }
    if kind in bounds:
        words, field = bounds[kind]
        return f"{words} {ctx.get(field)}"
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must have at least {minimum} entries"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} entries"
    return detail["msg"][:1].lower() + detail["msg"][1:]


def _unknown_key(key: str, allowed: Sequence[str]) -> str:
    env_keys = [name for name in allowed if name.endswith("_env")]
    lowered = key.lower()
    looks_secret = not lowered.endswith("_env") and (
        lowered in _SECRET_WORDS or lowered.endswith(_SECRET_SUFFIXES) or f"{key}_env" in allowed
    )
    if looks_secret:
        if f"{key}_env" in allowed:
            instead = f"`{key}_env`"
        else:
            close = difflib.get_close_matches(f"{key}_env", env_keys, n=1, cutoff=0.5)
            instead = f"`{close[0]}`" if close else "a `<name>_env` key"
        return (
            "unknown key — secrets never go in this file: put the secret in an "
            f"environment variable and name the variable with {instead}"
        )
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return f"unknown key (did you mean `{close[0]}`?)" if close else "unknown key"


def _quoted(text: str) -> str:
    return text.strip("'\"")


# --- walking the model's annotations alongside an error's loc -------------------------


def _strip(tp: Any) -> Any:
    """Annotated[X, ...] → X; X | None → X."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
            continue
        members = _union_members(tp)
        if members is not None and len(members) == 1:
            tp = members[0]
            continue
        return tp


def _union_members(tp: Any) -> list[Any] | None:
    if get_origin(tp) in (Union, types.UnionType):
        return [m for m in get_args(tp) if m is not type(None)]
    return None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tag_values(model: type[BaseModel]) -> list[str]:
    values: list[str] = []
    for name in ("kind", "type"):
        field = model.model_fields.get(name)
        if field is not None and get_origin(field.annotation) is Literal:
            values.extend(str(v) for v in get_args(field.annotation))
    return values


def _union_tags(tp: Any) -> list[str]:
    members = _union_members(_strip(tp)) or []
    return [tag for m in members if _is_model(m) for tag in _tag_values(m)]


def _resolve(root: type[BaseModel], loc: Loc) -> tuple[Loc, Any]:
    """The loc without union tags and ``[key]`` markers, and the annotation at its
    end (None where the walk leaves the model)."""
    clean: list[str | int] = []
    tp: Any = root
    for part in loc:
        if part == "[key]":
            continue
        tp = _strip(tp)
        members = _union_members(tp)
        if members is not None:
            matching = [m for m in members if _is_model(m) and part in _tag_values(m)]
            if matching:
                tp = matching[0]
                continue
            tp = None
        clean.append(part)
        if _is_model(tp) and isinstance(part, str):
            field = tp.model_fields.get(part)
            tp = field.annotation if field is not None else None
        elif get_origin(tp) in (list, tuple, Sequence):
            tp = get_args(tp)[0]
        elif get_origin(tp) in (dict, Mapping):
            tp = get_args(tp)[1]
        else:
            tp = None
    return tuple(clean), tp
