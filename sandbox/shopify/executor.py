"""One GraphQL request, start to finish: parse, validate, check variables, cost, meter,
execute against the store, and shape the response body as Shopify does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    get_variable_values,
    parse,
    print_ast,
    type_from_ast,
)

from sandbox.shopify.clock import Clock
from sandbox.shopify.cost import Cost, LeakyBucket
from sandbox.shopify.errors import (
    ShopifyError,
    format_error,
    syntax_error,
    validation_errors,
    value_problems,
)
from sandbox.shopify.mutations import Mutations
from sandbox.shopify.resolvers import RESOLVERS, TYPE_OF, Context, Info
from sandbox.shopify.schema import ShopifySchema
from sandbox.shopify.state import Store

RATE_LIMIT_DOCS = "https://shopify.dev/api/usage/rate-limits"


@dataclass
class Outcome:
    body: dict[str, Any]
    operation_name: str | None = None
    operation_type: str | None = None
    throttled: bool = False
    requested_cost: int | None = None
    actual_cost: int | None = None
    error_codes: list[str] = field(default_factory=list)


def _resolve(source: Any, info: Info, **args: Any) -> Any:
    if isinstance(source, dict):
        return source.get(info.field_name)
    fn = RESOLVERS.get((info.parent_type.name, info.field_name))
    if fn is None:
        raise ShopifyError(
            f"The sandbox's fake Shopify does not implement "
            f"{info.parent_type.name}.{info.field_name}.",
            "NOT_IMPLEMENTED_IN_FAKE",
        )
    return fn(source, info.context, args, info)


def _max_cost_message(cost: int, limit: int) -> str:
    return (
        f"Query cost is {cost}, which exceeds the single query max cost limit ({limit}).\n\n"
        f"See {RATE_LIMIT_DOCS} for more information on how the\ncost of a query is "
        "calculated.\n\nTo query larger amounts of data with fewer limits, bulk operations "
        "should be used instead.\n"
    )


def _type_of(value: Any, info: Info, abstract_type: Any) -> str | None:
    return TYPE_OF.get(type(value))


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | str:
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        found = [op for op in ops if op.name and op.name.value == name]
        return found[0] if found else f'No operation named "{name}"'
    if len(ops) == 1:
        return ops[0]
    return "An operation name is required"


class Executor:
    def __init__(
        self,
        schema: ShopifySchema,
        store: Store,
        mutations: Mutations,
        bucket: LeakyBucket,
        clock: Clock,
        max_query_cost: int = 1000,
    ) -> None:
        self.schema = schema
        self.store = store
        self.mutations = mutations
        self.bucket = bucket
        self.clock = clock
        self.max_query_cost = max_query_cost
        self.bulk: Any = None  # sandbox.shopify.bulk.BulkOperations, set by the server

    def run(
        self,
        query: str,
        variables: dict[str, Any],
        operation_name: str | None,
        api_version: str,
        *,
        force_throttle: bool = False,
    ) -> Outcome:
        try:
            document = parse(query)
        except GraphQLSyntaxError as exc:
            return Outcome({"errors": [syntax_error(exc, query)]})
        errors = validation_errors(self.schema.schema, document)
        if errors:
            return self._failed(errors)
        op = _operation(document, operation_name)
        if isinstance(op, str):
            return self._failed([{"message": op, "extensions": {"code": "BAD_REQUEST"}}])
        out = Outcome({}, op.name.value if op.name else None, op.operation.value)
        bad_variables = self._variable_errors(op, variables)
        if bad_variables:
            out.body = {"errors": bad_variables}
            out.error_codes = ["INVALID_VARIABLE"]
            return out
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        cost = Cost(self.schema.schema, op, fragments, variables)
        requested = cost.requested()
        out.requested_cost = requested
        if requested > self.max_query_cost:
            # Shopify's single-query maximum is 1,000 points whatever the plan: a query
            # that requests more is refused before it runs, its requested cost in the
            # error and in extensions.cost (MAX_COST_EXCEEDED;
            # https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits).
            return self._refuse(
                out,
                {
                    "message": _max_cost_message(requested, self.max_query_cost),
                    "extensions": {
                        "code": "MAX_COST_EXCEEDED",
                        "cost": requested,
                        "maxCost": self.max_query_cost,
                    },
                },
            )
        if force_throttle or not self.bucket.take(requested):
            out.throttled = True
            return self._refuse(
                out,
                {
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": RATE_LIMIT_DOCS},
                },
            )
        ctx = Context(self.store, self.clock.now(), api_version, self.mutations, bulk=self.bulk)
        result = _execute(self.schema, document, ctx, variables, operation_name)
        actual = cost.actual(result.data)
        self.bucket.give(requested - actual)
        out.actual_cost = actual
        body: dict[str, Any] = {}
        if result.errors:
            body["errors"] = [format_error(e) for e in result.errors]
            out.error_codes = [
                str(e.extensions.get("code"))
                for e in result.errors
                if e.extensions and e.extensions.get("code")
            ]
        body["data"] = result.data
        extensions: dict[str, Any] = {"cost": self._cost(requested, actual)}
        if ctx.search_warnings:
            extensions["search"] = ctx.search_warnings
        body["extensions"] = extensions
        out.body = body
        return out

    def _cost(self, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": self.bucket.status(),
        }

    def _refuse(self, out: Outcome, error: dict[str, Any]) -> Outcome:
        out.body = {
            "errors": [error],
            "extensions": {"cost": self._cost(out.requested_cost or 0, None)},
        }
        out.error_codes = [error["extensions"]["code"]]
        return out

    @staticmethod
    def _failed(errors: list[dict[str, Any]]) -> Outcome:
        codes = [str(e["extensions"]["code"]) for e in errors if "extensions" in e]
        return Outcome({"errors": errors}, error_codes=codes)

    def _variable_errors(
        self, op: OperationDefinitionNode, variables: dict[str, Any]
    ) -> list[dict[str, Any]]:
        schema = self.schema.schema
        out = []
        for definition in op.variable_definitions or ():
            name = definition.variable.name.value
            if name not in variables and definition.default_value is not None:
                continue
            type_ = type_from_ast(schema, definition.type)
            value = variables.get(name)
            problems = value_problems(value, type_, [], lambda v: json.dumps(v))
            if not problems:
                continue
            where = [
                f"{'.'.join(str(p) for p in pr['path'])} ({pr['explanation']})"
                for pr in problems
                if pr["path"]
            ]
            message = (
                f"Variable ${name} of type {print_ast(definition.type)} was provided "
                "invalid value" + (f" for {', '.join(where)}" if where else "")
            )
            loc = (
                definition.loc.source.get_location(definition.loc.start) if definition.loc else None
            )
            error: dict[str, Any] = {"message": message}
            if loc:
                error["locations"] = [{"line": loc.line, "column": loc.column}]
            error["extensions"] = {"code": "INVALID_VARIABLE", "value": value, "problems": problems}
            out.append(error)
        if out:
            return out
        coerced = get_variable_values(schema, op.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return [
                {**format_error(e), "extensions": {"code": "INVALID_VARIABLE"}} for e in coerced
            ]
        return []


def _execute(
    schema: ShopifySchema,
    document: DocumentNode,
    ctx: Context,
    variables: dict[str, Any],
    operation_name: str | None,
) -> Any:
    from graphql import ExecutionResult, execute

    result = execute(
        schema.schema,
        document,
        context_value=ctx,
        variable_values=variables,
        operation_name=operation_name,
        field_resolver=_resolve,
        type_resolver=_type_of,
    )
    if not isinstance(result, ExecutionResult):  # pragma: no cover - resolvers are sync
        raise GraphQLError("asynchronous execution is not supported by the fake")
    return result
