"""Errors in Shopify's wire shapes.

Top-level GraphQL errors are ``{"message", "locations", "path", "extensions": {"code"}}``.
Static validation errors are phrased as Shopify's GraphQL Ruby server phrases them, with
its camelCase codes (``undefinedField``, ``argumentLiteralsIncompatible`` ...) and a path
that starts with the operation (``"query Name"``); they carry no cost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    Visitor,
    print_ast,
    specified_rules,
    validate,
    visit,
)


class ShopifyError(GraphQLError):
    """An error a resolver raises; rendered as a top-level error with ``extensions.code``."""

    def __init__(
        self,
        message: str,
        code: str,
        *,
        nodes: Collection[Node] | None = None,
        path: Collection[str | int] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(message, nodes, path=path, extensions={"code": code, **extensions})


def format_error(error: GraphQLError) -> dict[str, Any]:
    out: dict[str, Any] = {"message": error.message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path is not None:
        out["path"] = list(error.path)
    if error.extensions:
        out["extensions"] = dict(error.extensions)
    else:
        out["extensions"] = {"code": "INTERNAL_SERVER_ERROR"}
    return out


def syntax_error(error: GraphQLSyntaxError, source: str) -> dict[str, Any]:
    """A parse error as Shopify words it (no code, just where)."""
    pos = next(iter(error.positions or ()), len(source))
    rest = source[pos:].lstrip()
    if not rest:
        message = "syntax error, unexpected end of file"
    else:
        token = re.match(r"[_A-Za-z][_0-9A-Za-z]*|\S", rest)
        message = f"syntax error, unexpected {token.group(0) if token else rest[0]!r}"
    out: dict[str, Any] = {"message": message}
    if error.locations:
        loc = error.locations[0]
        out["locations"] = [{"line": loc.line, "column": loc.column}]
    return out


class _Ancestry(Visitor):
    """Remembers, for every node, the path Shopify puts on a validation error."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[int, list[str]] = {}
        self.arguments: list[tuple[ArgumentNode, list[str], Node]] = []

    def enter(self, node: Node, key: Any, parent: Any, path: Any, ancestors: Any) -> None:
        labels: list[str] = []
        chain = [*ancestors, parent, node] if isinstance(parent, Node) else [*ancestors, node]
        for anc in chain:
            if isinstance(anc, OperationDefinitionNode):
                name = f" {anc.name.value}" if anc.name else ""
                labels.append(f"{anc.operation.value}{name}")
            elif isinstance(anc, FragmentDefinitionNode):
                labels.append(f"fragment {anc.name.value}")
            elif isinstance(anc, InlineFragmentNode):
                cond = anc.type_condition
                labels.append(f"... on {cond.name.value}" if cond else "...")
            elif isinstance(anc, FieldNode):
                labels.append((anc.alias or anc.name).value)
            elif isinstance(anc, ArgumentNode):
                labels.append(anc.name.value)
        self.paths[id(node)] = labels
        if isinstance(node, ArgumentNode):
            owner = next((a for a in reversed(chain) if isinstance(a, FieldNode)), node)
            self.arguments.append((node, labels, owner))

    def argument_around(self, node: Node) -> tuple[ArgumentNode, list[str], Node] | None:
        if node.loc is None:
            return None
        for arg, labels, owner in self.arguments:
            if arg.loc and arg.loc.start <= node.loc.start and node.loc.end <= arg.loc.end:
                return arg, labels, owner
        return None


def _q(pattern: str, message: str) -> list[str] | None:
    m = re.match(pattern, message)
    return list(m.groups()) if m else None


def _translate(rule: str, err: GraphQLError, anc: _Ancestry) -> dict[str, Any]:
    msg = err.message
    node: Node | None = err.nodes[0] if err.nodes else None
    path = anc.paths.get(id(node)) if node is not None else None
    ext: dict[str, Any] = {"code": rule[0].lower() + rule[1:].removesuffix("Rule")}
    where: Node | None = None
    text = msg
    if g := _q(r"Cannot query field '(\w+)' on type '(\w+)'", msg):
        text = f"Field '{g[0]}' doesn't exist on type '{g[1]}'"
        ext = {"code": "undefinedField", "typeName": g[1], "fieldName": g[0]}
    elif g := _q(r"Unknown argument '(\w+)' on field '\w+\.(\w+)'", msg):
        text = f"Field '{g[1]}' doesn't accept argument '{g[0]}'"
        ext = {
            "code": "argumentNotAccepted",
            "name": g[1],
            "typeName": "Field",
            "argumentName": g[0],
        }
    elif g := _q(r"Unknown argument '(\w+)' on directive '@(\w+)'", msg):
        text = f"Directive '{g[1]}' doesn't accept argument '{g[0]}'"
        ext = {
            "code": "argumentNotAccepted",
            "name": g[1],
            "typeName": "Directive",
            "argumentName": g[0],
        }
    elif g := _q(r"Argument '\w+\.(\w+)\((\w+):\)' of type .* is required", msg):
        text = f"Field '{g[0]}' is missing required arguments: {g[1]}"
        ext = {
            "code": "missingRequiredArguments",
            "className": "Field",
            "name": g[0],
            "arguments": g[1],
        }
    elif g := _q(r"Field '(\w+)' must not have a selection since type '(.+)' has no", msg):
        g[1] = g[1].rstrip("!")
        text = f"Selections can't be made on scalars (field '{g[0]}' returns {g[1]})"
        ext = {"code": "selectionMismatch", "nodeName": f"field '{g[0]}'", "typeName": g[1]}
    elif g := _q(r"Field '(\w+)' of type '(.+)' must have a selection", msg):
        text = (
            f"Field must have selections (field '{g[0]}' returns {g[1]} but has no "
            f"selections. Did you mean '{g[0]} {{ ... }}'?)"
        )
        ext = {"code": "selectionMismatch", "nodeName": f"field '{g[0]}'", "typeName": g[1]}
    elif g := _q(r"Variable '\$(\w+)' is not defined(?: by operation '(\w+)')?", msg):
        text = f"Variable ${g[0]} is used by {g[1] or 'anonymous query'} but not declared"
        ext = {"code": "variableNotDefined", "variableName": g[0]}
    elif g := _q(r"Variable '\$(\w+)' is never used(?: in operation '(\w+)')?", msg):
        text = f"Variable ${g[0]} is declared by {g[1] or 'anonymous query'} but not used"
        ext = {"code": "variableNotUsed", "variableName": g[0]}
    elif g := _q(r"Variable '\$(\w+)' of type '(.+)' used in position expecting type '(.+)'", msg):
        found = anc.argument_around(err.nodes[-1]) if err.nodes else None
        arg_name = found[0].name.value if found else "?"
        kind = "Nullability" if g[1].rstrip("!") == g[2].rstrip("!") else "Type"
        text = f"{kind} mismatch on variable ${g[0]} and argument {arg_name} ({g[1]} / {g[2]})"
        ext = {
            "code": "variableMismatch",
            "variableName": g[0],
            "typeName": g[1],
            "argumentName": arg_name,
            "errorMessage": f"{kind} mismatch",
        }
    elif g := _q(r"Unknown type '(\w+)'", msg):
        text = f"No such type {g[0]}, so it can't be a fragment condition"
        ext = {"code": "undefinedType", "typeName": g[0]}
    elif g := _q(r"Unknown directive '@(\w+)'", msg):
        text = f"Directive @{g[0]} is not defined"
        ext = {"code": "undefinedDirective", "directiveName": g[0]}
    elif rule == "ValuesOfCorrectTypeRule" and node is not None:
        found = anc.argument_around(node)
        if found is not None:
            arg, path, owner = found
            where = owner
            field = path[-2] if len(path) > 1 else "?"
            m = (
                re.search(r"in '(\w+)' enum", msg)
                or re.search(r"type '(.+?)'", msg)
                or re.search(r"^(\w+) cannot represent", msg)
            )
            expected = m.group(1) if m else "?"
            text = (
                f"Argument '{arg.name.value}' on Field '{field}' has an invalid value "
                f"({print_ast(arg.value)}). Expected type '{expected}'."
            )
            ext = {
                "code": "argumentLiteralsIncompatible",
                "typeName": "Field",
                "argumentName": arg.name.value,
            }
    out: dict[str, Any] = {"message": text}
    if where is not None and where.loc is not None:
        loc = where.loc.source.get_location(where.loc.start)
        out["locations"] = [{"line": loc.line, "column": loc.column}]
    elif err.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in err.locations[:1]]
    if path:
        out["path"] = path
    out["extensions"] = ext
    return out


def validation_errors(schema: GraphQLSchema, document: DocumentNode) -> list[dict[str, Any]]:
    """Validate ``document`` against the real schema; Shopify-shaped errors, or []."""
    if not validate(schema, document):
        return []
    found: list[tuple[str, GraphQLError]] = []
    for rule in specified_rules:
        found.extend((rule.__name__, e) for e in validate(schema, document, [rule]))
    if not found:
        return []
    ancestry = _Ancestry()
    visit(document, ancestry)
    return [_translate(rule, err, ancestry) for rule, err in found]


def value_problems(
    value: Any, type_: Any, path: list[str | int], describe: Callable[[Any], str]
) -> list[dict[str, Any]]:
    """Why ``value`` does not fit input type ``type_``, as GraphQL Ruby reports problems."""
    from graphql import (
        GraphQLEnumType,
        GraphQLInputObjectType,
        GraphQLList,
        GraphQLNonNull,
        GraphQLScalarType,
    )

    if isinstance(type_, GraphQLNonNull):
        if value is None:
            return [{"path": path, "explanation": "Expected value to not be null"}]
        return value_problems(value, type_.of_type, path, describe)
    if value is None:
        return []
    if isinstance(type_, GraphQLList):
        items = value if isinstance(value, list) else [value]
        out: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            out.extend(value_problems(item, type_.of_type, [*path, i], describe))
        return out
    if isinstance(type_, GraphQLInputObjectType):
        if not isinstance(value, dict):
            return [
                {
                    "path": path,
                    "explanation": f"Expected {describe(value)} to be a key-value object.",
                }
            ]
        out = []
        for key in value:
            if key not in type_.fields:
                out.append(
                    {"path": [*path, key], "explanation": f"Field is not defined on {type_.name}"}
                )
        for name, fdef in type_.fields.items():
            out.extend(value_problems(value.get(name), fdef.type, [*path, name], describe))
        return out
    if isinstance(type_, GraphQLEnumType):
        if value not in type_.values:
            return [
                {
                    "path": path,
                    "explanation": f"Expected {describe(value)} to be one of: "
                    + ", ".join(type_.values),
                }
            ]
        return []
    if isinstance(type_, GraphQLScalarType):
        try:
            type_.parse_value(value)
        except (GraphQLError, TypeError, ValueError):
            return [
                {
                    "path": path,
                    "explanation": f"Could not coerce value {describe(value)} to {type_.name}",
                }
            ]
    return []
