"""Query cost and the leaky bucket that meters it.

Shopify prices every query before running it ("Cost calculation",
https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits): scalars and enums
cost 0, an object 1, a mutation field 10, and a connection 2 plus the objects it may
return, sized by its ``first``/``last`` argument. Here a connection costs
``2 + n * max(1, cost of a node's children)``, with ``n`` the ``first``/``last`` when
requesting and the number of nodes returned when counting the actual cost; a list of
objects costs its children once. Nested connections therefore multiply, as they do on
Shopify. The requested cost comes back in every answer (``extensions.cost``:
``requestedQueryCost``, ``actualQueryCost``, ``throttleStatus``); a query whose
requested cost is above the single-query maximum of 1,000 points is refused with
``MAX_COST_EXCEEDED`` before it runs (sandbox.shopify.executor).

The recorded captures agree on the mutation figures (13 requested; 10 when the payload
is empty) and come within a few points on reads: Shopify prices some fields its own way,
which no published rule describes.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)

from sandbox.shopify.clock import Clock

MUTATION_COST = 10
_STATIC: Any = object()


class Cost:
    """Requested and actual cost of one operation."""

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.fragments = fragments
        self.variables = variables
        root = (
            schema.mutation_type
            if operation.operation == OperationType.MUTATION
            else schema.query_type
        )
        assert root is not None
        self.root = root

    def requested(self) -> int:
        return self._selection(self.operation.selection_set, self.root, _STATIC, top=True)

    def actual(self, data: dict[str, Any] | None) -> int:
        if data is None:
            return 0
        return self._selection(self.operation.selection_set, self.root, data, top=True)

    # -- walking ------------------------------------------------------------------------
    def _fields(
        self, selection_set: SelectionSetNode | None, parent: Any
    ) -> list[tuple[FieldNode, Any]]:
        out: list[tuple[FieldNode, Any]] = []
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                out.append((sel, parent))
            elif isinstance(sel, InlineFragmentNode):
                cond = sel.type_condition
                out += self._fields(
                    sel.selection_set, self.schema.get_type(cond.name.value) if cond else parent
                )
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in self.fragments:
                frag = self.fragments[sel.name.value]
                out += self._fields(
                    frag.selection_set, self.schema.get_type(frag.type_condition.name.value)
                )
        return out

    def _selection(
        self, selection_set: SelectionSetNode | None, parent: Any, data: Any, top: bool = False
    ) -> int:
        total = 0
        for node, ptype in self._fields(selection_set, parent):
            fdef = getattr(ptype, "fields", {}).get(node.name.value)
            if fdef is None:
                continue
            key = (node.alias or node.name).value
            if data is _STATIC:
                value = _STATIC
            elif isinstance(data, dict) and key in data:
                value = data[key]
            else:
                continue
            base = MUTATION_COST if top and self.root is self.schema.mutation_type else 0
            total += base + self._field(node, fdef.type, value, payload=base > 0)
        return total

    def _field(self, node: FieldNode, type_: Any, value: Any, *, payload: bool) -> int:
        named = get_named_type(type_)
        if is_leaf_type(named) or value is None:
            return 0
        if _is_connection(named):
            return self._connection(node, named, value)
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if isinstance(inner, GraphQLList):
            if value is _STATIC:
                return self._selection(node.selection_set, named, _STATIC)
            return max(
                (self._selection(node.selection_set, named, v) for v in value if v is not None),
                default=0,
            )
        return (0 if payload else 1) + self._selection(node.selection_set, named, value)

    def _connection(self, node: FieldNode, conn: Any, value: Any) -> int:
        if "nodes" in conn.fields:
            node_type = get_named_type(conn.fields["nodes"].type)
        else:
            edge = get_named_type(conn.fields["edges"].type)
            node_type = get_named_type(edge.fields["node"].type)
        parts: list[tuple[str, SelectionSetNode | None, str | None]] = []
        for sub, _ in self._fields(node.selection_set, conn):
            key = (sub.alias or sub.name).value
            if sub.name.value == "nodes":
                parts.append((key, sub.selection_set, None))
            elif sub.name.value == "edges":
                edge_type = get_named_type(conn.fields["edges"].type)
                for inner, _ in self._fields(sub.selection_set, edge_type):
                    if inner.name.value == "node":
                        parts.append((key, inner.selection_set, (inner.alias or inner.name).value))
        if value is _STATIC:
            n = self._arg(node, "first") or self._arg(node, "last") or 0
            child = max((self._selection(s, node_type, _STATIC) for _, s, _ in parts), default=0)
            return 2 + int(n) * max(1, child)
        best = 0
        for key, sel, node_key in parts:
            items = value.get(key) or []
            if node_key is not None:
                items = [e.get(node_key) for e in items if isinstance(e, dict)]
            best = max(
                best,
                sum(max(1, self._selection(sel, node_type, i)) for i in items if i is not None),
            )
        return 2 + best

    def _arg(self, node: FieldNode, name: str) -> Any:
        for arg in node.arguments or ():
            if arg.name.value == name:
                value = value_from_ast_untyped(arg.value, self.variables)
                return value if isinstance(value, int) else None
        return None


def _is_connection(named: Any) -> bool:
    fields = getattr(named, "fields", None)
    return bool(named.name.endswith("Connection") and fields and "pageInfo" in fields)


class LeakyBucket:
    """Shopify's cost bucket: ``size`` points, refilled at ``restore_rate`` per second."""

    def __init__(self, size: int, restore_rate: int, clock: Clock) -> None:
        self.size = size
        self.restore_rate = restore_rate
        self.clock = clock
        self._available = float(size)
        self._at = clock.now()

    @property
    def available(self) -> float:
        now = self.clock.now()
        elapsed = max(0.0, (now - self._at).total_seconds())
        self._available = min(float(self.size), self._available + elapsed * self.restore_rate)
        self._at = now
        return self._available

    def take(self, points: int) -> bool:
        if points > self.available:
            return False
        self._available -= points
        return True

    def give(self, points: int) -> None:
        self._available = min(float(self.size), self.available + max(0, points))

    def set_available(self, points: float) -> None:
        """Tests: pretend other clients have used the bucket."""
        _ = self.available
        self._available = max(0.0, min(float(self.size), points))

    def status(self) -> dict[str, int]:
        return {
            "maximumAvailable": self.size,
            "currentlyAvailable": int(self.available),
            "restoreRate": self.restore_rate,
        }
