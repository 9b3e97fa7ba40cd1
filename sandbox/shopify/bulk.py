"""Bulk query operations: ``bulkOperationRunQuery``, polling, and the JSONL download.

What the fake does, and where it follows Shopify (the 2026-07 schema, the recorded
``bulk-operation-run-query-*`` captures and the bulk operations guide):

* ``bulkOperationRunQuery(query:, groupObjects:)`` validates the inner query against the
  schema. A bad one is a userError ``{"field": ["query"], "code": "INVALID"}`` with the
  messages the captures show (``Invalid bulk query: syntax error, ...``, ``Bulk queries
  must contain at least one connection.``). At most five connections, nested at most two
  deep; every object with a nested connection must select ``id`` (its children's
  ``__parentId``). Too many operations at once is ``OPERATION_IN_PROGRESS`` (five bulk
  queries from 2026-01 on, one before; ``max_concurrent`` overrides).
* The operation is ``CREATED``, ``RUNNING`` after ``run_after`` seconds and ``COMPLETED``
  ``complete_after`` seconds after creation, on the injected clock. ``fail_next`` makes
  the next operations end ``FAILED`` with an ``errorCode`` instead. ``bulkOperationCancel``
  moves a live one to ``CANCELING`` and, a second later, ``CANCELED``. Seven days after
  completion it is ``EXPIRED`` and the URL stops working.
* The result is read when the operation completes (a page of roots at a time, through
  the same resolvers as ordinary queries) and written to a temporary file, one JSON
  object per line: objects of a nested connection get their own lines with
  ``__parentId`` (last key), and the connection field leaves its parent's line. With
  ``groupObjects: true`` children follow their parent; by default (false since 2026-01)
  Shopify promises no order, and the fake writes each page's children *before* their
  parents so readers cannot lean on order.
* ``url`` points at ``GET /bulk/{n}-{secret}.jsonl`` on the fake itself (no token needed,
  like the signed storage URL). It is streamed in ``chunk_size`` chunks; set
  ``download_gate`` to an unset :class:`asyncio.Event` to hold every download after its
  first chunk until the event is set. ``downloads`` records each one.
  ``spoil_downloads(*faults)`` spoils the next downloads, one fault each (any other name
  is refused): ``"503"`` answers as Google Cloud Storage does when it asks to be retried
  (https://cloud.google.com/storage/docs/retry-strategy: 408, 429 and 5xx are retried
  with backoff), ``"cut"`` closes the connection after the first chunk.
* Polling: ``bulkOperation(id:)`` (what a client uses), ``currentBulkOperation`` and
  ``node(id:)``; ``bulkOperations`` lists them newest first.

Gaps: no ``bulkOperationRunMutation``, no ``partialDataUrl`` data, nested connections
return at most 250 children per parent, the top-level field must be a connection, and
the wording of the depth/count/id messages is the fake's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

from aiohttp import web
from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLIncludeDirective,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    GraphQLSyntaxError,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    StringValueNode,
    get_named_type,
    is_leaf_type,
    parse,
)
from graphql.execution.values import get_argument_values, get_directive_values

from sandbox.shopify import search
from sandbox.shopify.clock import Clock, iso
from sandbox.shopify.errors import ShopifyError, syntax_error, validation_errors
from sandbox.shopify.paging import paginate
from sandbox.shopify.resolvers import RESOLVERS, TYPE_OF, Context, Info, attr
from sandbox.shopify.schema import ShopifySchema
from sandbox.shopify.state import GID_PREFIX, Store, parse_gid

LIVE = frozenset({"CREATED", "RUNNING", "CANCELING"})
ERROR_CODES = frozenset({"ACCESS_DENIED", "INTERNAL_SERVER_ERROR", "TIMEOUT"})
MAX_CONNECTIONS = 5
MAX_DEPTH = 2
NESTED_PAGE = 250
URL_LIFETIME = timedelta(days=7)
PAGING_ARGS = frozenset({"first", "last", "after", "before"})
PAGE_INFO_ALIAS = "bulkPageInfo_"
ACCESS_DENIED = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
    "<Message>Access denied.</Message></Error>"
)
EXPIRED = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
    "<Message>The provided token has expired.</Message></Error>"
)
#: what spoil_downloads can do to a download
DOWNLOAD_FAULTS = frozenset({"503", "cut"})
SLOW_DOWN = (
    "<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
    "<Message>Please reduce your request rate.</Message></Error>"
)


# -- the query plan: which response keys are connections --------------------------------
@dataclass
class _Plan:
    """Where, in one object's result, the connections and the objects around them are."""

    objects: dict[str, _Plan] = field(default_factory=dict)
    connections: dict[str, _Connection] = field(default_factory=dict)


@dataclass
class _Connection:
    plan: _Plan
    edges: str | None = None
    node: str | None = None
    nodes: str | None = None

    def children(self, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, dict):
            return []
        if self.edges and self.node and isinstance(value.get(self.edges), list):
            return [e[self.node] for e in value[self.edges] if e and e.get(self.node)]
        if self.nodes and isinstance(value.get(self.nodes), list):
            return [n for n in value[self.nodes] if n]
        return []


def _is_connection(type_: Any) -> bool:
    return (
        isinstance(type_, GraphQLObjectType)
        and type_.name.endswith("Connection")
        and "pageInfo" in type_.fields
        and ("edges" in type_.fields or "nodes" in type_.fields)
    )


def _int(value: int) -> IntValueNode:
    return IntValueNode(value=str(value))


def _arg(name: str, value: Any) -> ArgumentNode:
    return ArgumentNode(name=NameNode(value=name), value=value)


class _Analysis:
    """Walks the inner query once: checks the bulk rules, builds the plan, and rewrites
    the document so every connection pages (bulk queries may omit ``first``)."""

    def __init__(self, schema: ShopifySchema, document: DocumentNode) -> None:
        self.schema = schema.schema
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.connections = 0
        self.problems: list[str] = []

    def selection_set(
        self, sel: SelectionSetNode, parent: Any, depth: int, plan: _Plan, in_list: bool
    ) -> SelectionSetNode:
        out: list[SelectionNode] = []
        for s in sel.selections:
            if isinstance(s, FieldNode):
                out.append(self.field(s, parent, depth, plan, in_list))
            elif isinstance(s, InlineFragmentNode):
                cond = s.type_condition
                inner = self.schema.get_type(cond.name.value) if cond else parent
                out.append(
                    InlineFragmentNode(
                        type_condition=cond,
                        directives=s.directives,
                        selection_set=self.selection_set(
                            s.selection_set, inner, depth, plan, in_list
                        ),
                    )
                )
            elif isinstance(s, FragmentSpreadNode):
                frag = self.fragments[s.name.value]
                inner = self.schema.get_type(frag.type_condition.name.value)
                out.append(
                    InlineFragmentNode(
                        type_condition=frag.type_condition,
                        directives=s.directives,
                        selection_set=self.selection_set(
                            frag.selection_set, inner, depth, plan, in_list
                        ),
                    )
                )
        return SelectionSetNode(selections=tuple(out))

    def field(
        self, node: FieldNode, parent: Any, depth: int, plan: _Plan, in_list: bool
    ) -> FieldNode:
        if node.selection_set is None or node.name.value.startswith("__"):
            return node
        fdef = parent.fields[node.name.value]
        named = get_named_type(fdef.type)
        key = (node.alias or node.name).value
        if not _is_connection(named):
            inner_type = fdef.type.of_type if isinstance(fdef.type, GraphQLNonNull) else fdef.type
            listed = in_list or isinstance(inner_type, GraphQLList)
            sub = plan.objects.setdefault(key, _Plan())
            inner = self.selection_set(node.selection_set, named, depth, sub, listed)
            return self._copy(node, node.arguments, inner)
        self.connections += 1
        if in_list:
            self.problems.append(
                "Queries that contain a connection field within a list field are not "
                "currently supported."
            )
        if depth + 1 > MAX_DEPTH:
            self.problems.append(
                f"Bulk queries cannot contain connections nested more than {MAX_DEPTH} deep."
            )
        node_type = get_named_type(named.fields["nodes"].type)
        conn = plan.connections.setdefault(key, _Connection(_Plan()))
        kept: list[SelectionNode] = []
        for s in node.selection_set.selections:
            if not isinstance(s, FieldNode):
                continue
            name, skey = s.name.value, (s.alias or s.name).value
            if name == "edges" and s.selection_set is not None:
                conn.edges = skey
                edge_sel: list[SelectionNode] = []
                for e in s.selection_set.selections:
                    if isinstance(e, FieldNode) and e.name.value == "node" and e.selection_set:
                        conn.node = (e.alias or e.name).value
                        edge_sel.append(self._node(e, node_type, depth + 1, conn.plan))
                edges = SelectionSetNode(selections=tuple(edge_sel))
                kept.append(self._copy(s, s.arguments, edges))
            elif name == "nodes" and s.selection_set is not None:
                conn.nodes = skey
                kept.append(self._node(s, node_type, depth + 1, conn.plan))
        if depth > 0:
            args = [a for a in node.arguments or () if a.name.value not in PAGING_ARGS]
            args.append(_arg("first", _int(NESTED_PAGE)))
            return self._copy(node, tuple(args), SelectionSetNode(selections=tuple(kept)))
        return self._copy(node, node.arguments, SelectionSetNode(selections=tuple(kept)))

    def _node(self, node: FieldNode, node_type: Any, depth: int, plan: _Plan) -> FieldNode:
        assert node.selection_set is not None
        rewritten = self.selection_set(node.selection_set, node_type, depth, plan, False)
        if _nests(plan) and not self._selects_id(node.selection_set):
            self.problems.append(
                f"Bulk queries must select `id` on {node_type.name} to nest a connection in it."
            )
        return self._copy(node, node.arguments, rewritten)

    def _selects_id(self, sel: SelectionSetNode) -> bool:
        for s in sel.selections:
            if isinstance(s, FieldNode) and (s.alias or s.name).value == "id":
                return s.name.value == "id"
            inner = (
                s.selection_set
                if isinstance(s, InlineFragmentNode) and s.type_condition is None
                else self.fragments[s.name.value].selection_set
                if isinstance(s, FragmentSpreadNode) and s.name.value in self.fragments
                else None
            )
            if inner is not None and self._selects_id(inner):
                return True
        return False

    @staticmethod
    def _copy(node: FieldNode, arguments: Any, selection_set: SelectionSetNode) -> FieldNode:
        return FieldNode(
            alias=node.alias,
            name=node.name,
            arguments=tuple(arguments or ()),
            directives=node.directives,
            selection_set=selection_set,
        )


def _nests(plan: _Plan) -> bool:
    return bool(plan.connections) or any(_nests(p) for p in plan.objects.values())


def _split(value: dict[str, Any], plan: _Plan, children: list[tuple[Any, _Plan]]) -> dict[str, Any]:
    """``value`` without its connection fields; their nodes are appended to ``children``."""
    clean: dict[str, Any] = {}
    for key, v in value.items():
        conn = plan.connections.get(key)
        if conn is not None:
            children.extend((child, conn.plan) for child in conn.children(v))
        elif key in plan.objects and isinstance(v, dict):
            clean[key] = _split(v, plan.objects[key], children)
        else:
            clean[key] = v
    return clean


def _lines(
    value: dict[str, Any], plan: _Plan, parent_id: Any, depth: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """One object and everything under it, depth-first (the grouped order)."""
    children: list[tuple[Any, _Plan]] = []
    line = _split(value, plan, children)
    if parent_id is not None:
        line["__parentId"] = parent_id
    yield depth, line
    for child, child_plan in children:
        yield from _lines(child, child_plan, line.get("id"), depth + 1)


# -- answering a page -------------------------------------------------------------------
class _Path:
    """The response path, built only if a resolver asks (for search warnings)."""

    __slots__ = ("key", "prev")

    def __init__(self, prev: _Path | None, key: str | int) -> None:
        self.prev, self.key = prev, key

    def as_list(self) -> list[str | int]:
        out: list[str | int] = []
        at: _Path | None = self
        while at is not None:
            out.append(at.key)
            at = at.prev
        return out[::-1]


@dataclass
class _Info:
    """The part of GraphQLResolveInfo the read resolvers use."""

    field_name: str
    parent_type: GraphQLObjectType
    path: _Path
    field_nodes: list[FieldNode]
    schema: GraphQLSchema


def _included(node: SelectionNode) -> bool:
    if not node.directives:
        return True
    skip = get_directive_values(GraphQLSkipDirective, node)
    if skip and skip["if"]:
        return False
    include = get_directive_values(GraphQLIncludeDirective, node)
    return not (include and not include["if"])


class _Reader:
    """Answers one rewritten page of a bulk query with the fake's own resolvers.

    A bulk result runs to tens of thousands of objects; graphql-core's general executor
    spends most of its time on bookkeeping a validated, variable-free query does not
    need, so this walks the selections directly (several times faster). Fragment
    spreads were inlined by the rewrite; inline fragments, ``@skip``/``@include`` and
    ``__typename`` are honoured."""

    def __init__(self, schema: GraphQLSchema, ctx: Context) -> None:
        self.schema = schema
        self.ctx = ctx
        # The same selections meet thousands of objects: collect and coerce them once.
        self._fields: dict[tuple[tuple[int, ...], str], dict[str, list[FieldNode]]] = {}
        self._args: dict[int, dict[str, Any]] = {}

    def run(self, document: DocumentNode) -> dict[str, Any]:
        op = document.definitions[0]
        assert isinstance(op, OperationDefinitionNode)
        root = self.schema.query_type
        assert root is not None
        return self._object(None, root, [op.selection_set], None)

    def _collect(
        self, sets: list[SelectionSetNode], type_: GraphQLObjectType
    ) -> dict[str, list[FieldNode]]:
        memo = (tuple(map(id, sets)), type_.name)
        if memo in self._fields:
            return self._fields[memo]
        fields: dict[str, list[FieldNode]] = {}

        def walk(sel: SelectionSetNode) -> None:
            for s in sel.selections:
                if not _included(s):
                    continue
                if isinstance(s, FieldNode):
                    fields.setdefault((s.alias or s.name).value, []).append(s)
                elif isinstance(s, InlineFragmentNode):
                    cond = s.type_condition
                    if cond is None or self._applies(cond.name.value, type_):
                        walk(s.selection_set)

        for sel in sets:
            walk(sel)
        self._fields[memo] = fields
        return fields

    def _applies(self, name: str, type_: GraphQLObjectType) -> bool:
        condition = self.schema.get_type(name)
        if condition is type_:
            return True
        return isinstance(condition, GraphQLInterfaceType | GraphQLUnionType) and (
            self.schema.is_sub_type(condition, type_)
        )

    def _object(
        self,
        obj: Any,
        type_: GraphQLObjectType,
        sets: list[SelectionSetNode],
        path: _Path | None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, nodes in self._collect(sets, type_).items():
            node, name = nodes[0], nodes[0].name.value
            if name == "__typename":
                out[key] = type_.name
                continue
            fdef = type_.fields[name]
            here = _Path(path, key)
            if isinstance(obj, dict):
                value = obj.get(name)
            else:
                resolve = RESOLVERS.get((type_.name, name))
                if resolve is None:
                    raise ShopifyError(
                        f"The sandbox's fake Shopify does not implement {type_.name}.{name}.",
                        "NOT_IMPLEMENTED_IN_FAKE",
                    )
                args = self._args.get(id(node))
                if args is None:
                    args = self._args[id(node)] = get_argument_values(fdef, node)
                info = _Info(name, type_, here, nodes, self.schema)
                value = resolve(obj, self.ctx, args, cast(Info, info))
            out[key] = self._complete(fdef.type, nodes, value, here)
        return out

    def _complete(self, type_: Any, nodes: list[FieldNode], value: Any, path: _Path) -> Any:
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if value is None:
            return None
        if isinstance(type_, GraphQLList):
            return [
                self._complete(type_.of_type, nodes, v, _Path(path, i)) for i, v in enumerate(value)
            ]
        if is_leaf_type(type_):
            return type_.serialize(value)
        runtime = (
            type_
            if isinstance(type_, GraphQLObjectType)
            else self.schema.get_type(TYPE_OF.get(type(value), ""))
        )
        if not isinstance(runtime, GraphQLObjectType):
            raise ShopifyError(f"Cannot tell the type of a {type_.name}.", "INTERNAL_SERVER_ERROR")
        sets = [n.selection_set for n in nodes if n.selection_set is not None]
        return self._object(value, runtime, sets, path)


# -- operations -------------------------------------------------------------------------
@dataclass(eq=False)
class BulkOperation:
    num: int
    query: str
    api_version: str
    created_at: datetime
    group_objects: bool
    secret: str
    root: FieldNode | None = None
    root_connection: _Connection | None = None
    type: str = "QUERY"
    status: str = "CREATED"
    error_code: str | None = None
    completed_at: datetime | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    url: str | None = None
    path: Path | None = None
    fail_with: str | None = None
    failure: str | None = None  # why generation failed (for tests; not on the wire)
    canceled_at: datetime | None = None
    generated: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def gid(self) -> str:
        return f"{GID_PREFIX}BulkOperation/{self.num}"

    def page_document(self, after: str | None, first: int) -> DocumentNode:
        assert self.root is not None
        args = [a for a in self.root.arguments or () if a.name.value not in PAGING_ARGS]
        args.append(_arg("first", _int(first)))
        if after is not None:
            args.append(_arg("after", StringValueNode(value=after)))
        page_info = FieldNode(
            alias=NameNode(value=PAGE_INFO_ALIAS),
            name=NameNode(value="pageInfo"),
            arguments=(),
            directives=(),
            selection_set=SelectionSetNode(
                selections=(
                    FieldNode(name=NameNode(value="hasNextPage"), arguments=(), directives=()),
                    FieldNode(name=NameNode(value="endCursor"), arguments=(), directives=()),
                )
            ),
        )
        assert self.root.selection_set is not None
        root = FieldNode(
            alias=self.root.alias,
            name=self.root.name,
            arguments=tuple(args),
            directives=self.root.directives,
            selection_set=SelectionSetNode(
                selections=(*self.root.selection_set.selections, page_info)
            ),
        )
        op = OperationDefinitionNode(
            operation=OperationType.QUERY,
            name=None,
            variable_definitions=(),
            directives=(),
            selection_set=SelectionSetNode(selections=(root,)),
        )
        return DocumentNode(definitions=(op,))


@dataclass
class Download:
    """One GET of a result file."""

    operation_id: str
    sent_token: bool
    finished: bool = False


class BulkOperations:
    """The shop's bulk operations and their result files. Reached as ``FakeShopify.bulk``."""

    def __init__(
        self,
        schema: ShopifySchema,
        store: Store,
        clock: Clock,
        base_url: Callable[[], str | None],
    ) -> None:
        self.schema = schema
        self.store = store
        self.clock = clock
        self.base_url = base_url
        #: Seconds of clock time from creation to RUNNING, and to COMPLETED (or FAILED).
        self.run_after = 1.0
        self.complete_after = 3.0
        #: Seconds from bulkOperationCancel to CANCELED.
        self.cancel_after = 1.0
        #: Concurrent bulk queries allowed; None = Shopify's (5 from 2026-01, else 1).
        self.max_concurrent: int | None = None
        #: Roots read per page while writing the result; bytes per download chunk.
        self.page_size = 250
        self.chunk_size = 64 * 1024
        #: When set to an unset event, every download pauses after its first chunk.
        self.download_gate: asyncio.Event | None = None
        #: Faults for the next downloads, one each (spoil_downloads).
        self._download_faults: list[str] = []
        self.operations: list[BulkOperation] = []
        self.downloads: list[Download] = []
        self._failures: list[str] = []
        self._next = 8_001_977_000_001
        self._dir: Path | None = None

    # -- control ------------------------------------------------------------------------
    def fail_next(self, error_code: str = "INTERNAL_SERVER_ERROR", count: int = 1) -> None:
        """The next ``count`` operations end FAILED with ``error_code`` when due."""
        if error_code not in ERROR_CODES:
            raise ValueError(f"{error_code} is not a BulkOperationErrorCode")
        self._failures.extend([error_code] * count)

    def spoil_downloads(self, *faults: str) -> None:
        """The next downloads, one fault each: "503" (storage asks for a retry) or "cut"
        (the connection closes after the first chunk)."""
        unknown = set(faults) - DOWNLOAD_FAULTS
        if unknown:
            raise ValueError(f"no such download fault: {sorted(unknown)}")
        self._download_faults.extend(faults)

    def get(self, ref: str) -> BulkOperation | None:
        num = parse_gid(ref, "BulkOperation")
        return next((op for op in self.operations if op.num == num), None)

    async def close(self) -> None:
        for op in self.operations:
            if op.task is not None and not op.task.done():
                op.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await op.task
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- time ---------------------------------------------------------------------------
    def refresh(self, op: BulkOperation, now: datetime) -> BulkOperation:
        """Move ``op`` along its lifecycle as far as the clock (and its file) allow."""
        if op.status == "CANCELING":
            if op.canceled_at is not None and now >= op.canceled_at + timedelta(
                seconds=self.cancel_after
            ):
                op.status = "CANCELED"
            return op
        if op.status == "COMPLETED":
            if op.completed_at is not None and now >= op.completed_at + URL_LIFETIME:
                op.status, op.url = "EXPIRED", None
            return op
        if op.status not in LIVE:
            return op
        due = op.created_at + timedelta(seconds=self.complete_after)
        if now >= due and op.fail_with is not None:
            op.status, op.error_code = "FAILED", op.fail_with
        elif now >= due and op.generated and op.failure is not None:
            op.status, op.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
        elif now >= due and op.generated:
            op.status, op.completed_at = "COMPLETED", due
            if op.object_count and op.path is not None:
                op.url = f"{self.base_url() or 'http://fake-shopify.invalid'}/bulk/{op.path.name}"
            else:
                op.file_size = None
        elif now >= op.created_at + timedelta(seconds=self.run_after):
            op.status = "RUNNING"
        return op

    async def settle(self) -> None:
        """Write the result of every operation that is due (before a request is answered,
        so what the request sees depends on the clock only)."""
        now = self.clock.now()
        due = timedelta(seconds=self.complete_after)
        for op in self.operations:
            waiting = op.status in ("CREATED", "RUNNING") and now >= op.created_at + due
            if waiting and op.fail_with is None and not op.generated:
                if op.task is None:
                    op.task = asyncio.create_task(self._generate(op))
                await asyncio.shield(op.task)
            self.refresh(op, now)

    # -- GraphQL ------------------------------------------------------------------------
    def run_query(self, query: str, group_objects: bool, ctx: Context) -> dict[str, Any]:
        op_or_errors = self._prepare(query)
        if isinstance(op_or_errors, list):
            return {"bulkOperation": None, "userErrors": op_or_errors}
        root, conn = op_or_errors
        for op in self.operations:
            self.refresh(op, ctx.now)
        live = [op for op in self.operations if op.type == "QUERY" and op.status in LIVE]
        limit = self.max_concurrent or (5 if ctx.api_version >= "2026-01" else 1)
        if len(live) >= limit:
            return {
                "bulkOperation": None,
                "userErrors": [
                    {
                        "field": None,
                        "message": "A bulk query operation for this app and shop is already "
                        f"in progress: {live[-1].gid}.",
                        "code": "OPERATION_IN_PROGRESS",
                    }
                ],
            }
        op = BulkOperation(
            num=self._next,
            query=query,
            api_version=ctx.api_version,
            created_at=ctx.now,
            group_objects=group_objects,
            secret=secrets.token_hex(16),
            root=root,
            root_connection=conn,
            fail_with=self._failures.pop(0) if self._failures else None,
        )
        self._next += 1
        self.operations.append(op)
        return {"bulkOperation": op, "userErrors": []}

    def cancel(self, ref: str, now: datetime) -> dict[str, Any]:
        op = self.get(ref)
        if op is None:
            return {
                "bulkOperation": None,
                "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
            }
        self.refresh(op, now)
        if op.status not in LIVE:
            return {
                "bulkOperation": op,
                "userErrors": [
                    {
                        "field": None,
                        "message": "A bulk operation cannot be canceled when it is "
                        f"{op.status.lower()}",
                    }
                ],
            }
        if op.status != "CANCELING":
            op.status, op.canceled_at = "CANCELING", now
            if op.task is not None and not op.task.done():
                op.task.cancel()
        return {"bulkOperation": op, "userErrors": []}

    def _prepare(self, query: str) -> tuple[FieldNode, _Connection] | list[dict[str, Any]]:
        def invalid(message: str) -> list[dict[str, Any]]:
            return [{"field": ["query"], "message": message, "code": "INVALID"}]

        try:
            document = parse(query)
        except GraphQLSyntaxError as exc:
            return invalid(f"Invalid bulk query: {syntax_error(exc, query)['message']}")
        errors = validation_errors(self.schema.schema, document)
        if errors:
            return invalid(f"Invalid bulk query: {errors[0]['message']}")
        ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(ops) != 1 or ops[0].operation != OperationType.QUERY:
            return invalid("Invalid bulk query: a bulk query must be exactly one query operation.")
        if ops[0].variable_definitions:
            return invalid("Invalid bulk query: bulk queries cannot declare variables.")
        analysis = _Analysis(self.schema, document)
        root_type = self.schema.schema.query_type
        plan = _Plan()
        rewritten = analysis.selection_set(ops[0].selection_set, root_type, 0, plan, False)
        if analysis.connections == 0:
            return invalid("Bulk queries must contain at least one connection.")
        if analysis.connections > MAX_CONNECTIONS:
            return invalid(f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections.")
        if analysis.problems:
            return invalid(analysis.problems[0])
        roots = [s for s in rewritten.selections if isinstance(s, FieldNode)]
        if len(roots) != 1 or len(rewritten.selections) != 1 or not plan.connections:
            return invalid(
                "The sandbox's fake Shopify runs only bulk queries with a single top-level "
                "field that is a connection."
            )
        root = roots[0]
        return root, plan.connections[(root.alias or root.name).value]

    # -- the result file ----------------------------------------------------------------
    def _directory(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="fake-shopify-bulk-"))
        return self._dir

    async def _generate(self, op: BulkOperation) -> None:
        assert op.root is not None
        assert op.root_connection is not None
        path = self._directory() / f"{op.num}-{op.secret}.jsonl"
        key = (op.root.alias or op.root.name).value
        after: str | None = None
        try:
            with _open_write(path) as fh:
                while True:
                    ctx = Context(self.store, self.clock.now(), op.api_version, None)
                    page = op.page_document(after, self.page_size)
                    connection = _Reader(self.schema.schema, ctx).run(page)[key]
                    roots = op.root_connection.children(connection)
                    lines = [
                        line
                        for root in roots
                        for line in _lines(root, op.root_connection.plan, None, 0)
                    ]
                    if not op.group_objects:  # children before their parents
                        lines.sort(key=lambda pair: -pair[0])
                    text = "".join(
                        json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n"
                        for _, line in lines
                    )
                    fh.write(text.encode("utf-8"))
                    op.object_count += len(lines)
                    op.root_object_count += len(roots)
                    op.file_size = (op.file_size or 0) + len(text.encode("utf-8"))
                    page_info = connection[PAGE_INFO_ALIAS]
                    if not page_info["hasNextPage"]:
                        break
                    after = page_info["endCursor"]
                    await asyncio.sleep(0)  # let the loop breathe between pages
            op.path = path
        except asyncio.CancelledError:
            path.unlink(missing_ok=True)
            raise
        except Exception as exc:  # a gap in the fake: fail the operation, say why
            op.failure = f"{type(exc).__name__}: {exc}"
        finally:
            op.generated = True

    async def download(self, request: web.Request) -> web.StreamResponse:
        """``GET /bulk/{n}-{secret}.jsonl``: the result file, streamed in chunks."""
        match = re.fullmatch(r"(\d+)-([0-9a-f]+)\.jsonl", request.match_info["name"])
        op = next(
            (o for o in self.operations if match and o.num == int(match[1])),
            None,
        )
        if op is None or match is None or op.secret != match[2] or op.path is None:
            return web.Response(status=403, text=ACCESS_DENIED, content_type="application/xml")
        self.refresh(op, self.clock.now())
        if op.status == "EXPIRED":
            return web.Response(status=400, text=EXPIRED, content_type="application/xml")
        record = Download(op.gid, "X-Shopify-Access-Token" in request.headers)
        self.downloads.append(record)
        fault = self._download_faults.pop(0) if self._download_faults else None
        if fault == "503":
            return web.Response(status=503, text=SLOW_DOWN, content_type="application/xml")
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "application/jsonl",
                "Content-Length": str(op.file_size or 0),
            },
        )
        await response.prepare(request)
        with _open_read(op.path) as fh:
            first = True
            while chunk := fh.read(self.chunk_size):
                await response.write(chunk)
                if fault == "cut" and request.transport is not None:
                    request.transport.close()  # mid-file: the client sees the connection end
                    return response
                if first and self.download_gate is not None:
                    await self.download_gate.wait()
                first = False
        await response.write_eof()
        record.finished = True
        return response


def _open_write(path: Path) -> IO[bytes]:
    return path.open("wb")


def _open_read(path: Path) -> IO[bytes]:
    return path.open("rb")


# -- resolvers --------------------------------------------------------------------------
def _service(ctx: Context) -> BulkOperations:
    bulk = ctx.bulk
    if not isinstance(bulk, BulkOperations):
        raise ShopifyError("The sandbox's fake Shopify has no bulk operations here.", "BAD_REQUEST")
    return bulk


TYPE_OF[BulkOperation] = "BulkOperation"
attr(
    "BulkOperation",
    id=lambda o: o.gid,
    status=lambda o: o.status,
    type=lambda o: o.type,
    errorCode=lambda o: o.error_code,
    createdAt=lambda o: iso(o.created_at),
    completedAt=lambda o: iso(o.completed_at) if o.completed_at else None,
    objectCount=lambda o: str(o.object_count if o.status == "COMPLETED" else 0),
    rootObjectCount=lambda o: str(o.root_object_count if o.status == "COMPLETED" else 0),
    fileSize=lambda o: str(o.file_size) if o.status == "COMPLETED" and o.file_size else None,
    url=lambda o: o.url if o.status == "COMPLETED" else None,
    partialDataUrl=lambda o: None,
    query=lambda o: o.query,
)


def _refreshed(ctx: Context, op: BulkOperation | None) -> BulkOperation | None:
    return _service(ctx).refresh(op, ctx.now) if op is not None else None


def _bulk_operation(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    return _refreshed(ctx, _service(ctx).get(args["id"]))


def _current(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    kind = args.get("type") or "QUERY"
    ops = [op for op in _service(ctx).operations if op.type == kind]
    return _refreshed(ctx, ops[-1] if ops else None)


def _list(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    bulk = _service(ctx)
    ops = [bulk.refresh(op, ctx.now) for op in bulk.operations]
    matchers: dict[str | None, search.Matcher] = {
        "status": lambda op, t: op.status.lower() == t.value.lower(),
        "operation_type": lambda op, t: op.type.lower() == t.value.lower(),
        "id": lambda op, t: search.id_match(op.num, t),
        "created_at": lambda op, t: search.date_match(op.created_at, t),
    }
    chosen = search.filter_objects(
        ops, args.get("query"), matchers, list(info.path.as_list()), ctx.search_warnings
    )
    return paginate(chosen, lambda op: (-op.num, op.num), args)


_plain_node = RESOLVERS[("QueryRoot", "node")]


def _node(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    if isinstance(ctx.bulk, BulkOperations) and parse_gid(args["id"], "BulkOperation"):
        return _refreshed(ctx, ctx.bulk.get(args["id"]))
    return _plain_node(o, ctx, args, info)


RESOLVERS[("QueryRoot", "bulkOperation")] = _bulk_operation
RESOLVERS[("QueryRoot", "currentBulkOperation")] = _current
RESOLVERS[("QueryRoot", "bulkOperations")] = _list
RESOLVERS[("QueryRoot", "node")] = _node
RESOLVERS[("Mutation", "bulkOperationRunQuery")] = lambda o, ctx, args, info: _service(
    ctx
).run_query(args["query"], bool(args.get("groupObjects")), ctx)
RESOLVERS[("Mutation", "bulkOperationCancel")] = lambda o, ctx, args, info: _service(ctx).cancel(
    args["id"], ctx.now
)
