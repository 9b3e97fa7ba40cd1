"""``inventorySetQuantities`` and ``inventoryAdjustQuantities``, with idempotency.

Semantics follow the recorded captures and the 2026-07 schema's descriptions:

* ``@idempotent(key:)`` is required (2026-04 and later); without it the field is null
  and a top-level ``BAD_REQUEST`` error says so ("Making idempotency mandatory for
  inventory adjustments and refund mutations",
  https://shopify.dev/changelog/making-idempotency-mandatory-for-inventory-adjustments-and-refund-mutations,
  and the ``missingSetIdempotency`` capture).
* The same key with the same input replays the *original* result, whatever happened to
  the level since, and applies nothing: "If you retry the same request with the same
  idempotency key [...] It will return the result of the original operation instead of
  creating a new one" (https://shopify.dev/changelog/adding-idempotency-for-inventory-adjustments-and-refund-mutations).
  That holds for an original result with userErrors too (a ``CHANGE_FROM_QUANTITY_STALE``
  is replayed as stale): a new operation needs a new key ("Distinct requests need
  different idempotency keys", https://shopify.dev/docs/api/usage/implementing-idempotency).
* The same key with other input (other variables, or another mutation) is refused with
  the userError ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH``, "The same idempotency key cannot
  be used with different operation parameters." (the schema's
  ``InventorySetQuantitiesUserErrorCode``), and nothing is applied.
* Keys are forgotten after 24 hours on the injected clock. Shopify's implementing page
  speaks of a retention window; the stored excerpts we could read do not give its
  length, so 24 hours is this fake's assumption (Driftwatch never relies on it: a key
  replayed after it executes anew under compare-and-set).
* ``IDEMPOTENCY_CONCURRENT_REQUEST`` ("This request is currently in progress") never
  arises here: the fake runs each request to its end before the next.
* every quantity/change must carry ``changeFromQuantity`` (``null`` skips the check);
  omitting it is a top-level ``INVALID_FIELD_ARGUMENTS`` error. A stale value fails the
  whole call with ``CHANGE_FROM_QUANTITY_STALE`` and nothing is applied.
* validation failures are userErrors with ``field`` paths like
  ``["input", "quantities", "0", "locationId"]``; nothing is applied when any exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from graphql import VariableNode, get_directive_values, get_named_type

from sandbox.shopify.adjustments import Adjuster, Write
from sandbox.shopify.errors import ShopifyError
from sandbox.shopify.resolvers import RESOLVERS, Context, Info
from sandbox.shopify.state import Store

MAX_INPUT = 250
KEY_TTL = timedelta(hours=24)


@dataclass
class _Remembered:
    fingerprint: str
    payload: dict[str, Any]
    at: datetime


class Mutations:
    """The write side of the fake: validation, compare-and-set, idempotency, the log."""

    def __init__(self, store: Store, idempotency_required: frozenset[str]) -> None:
        self.store = store
        self.required = idempotency_required
        self.adjuster = Adjuster(store)
        self._keys: dict[str, _Remembered] = {}

    @property
    def writes(self) -> list[Write]:
        return self.adjuster.writes

    # -- the shared frame ---------------------------------------------------------------
    def run(
        self, ctx: Context, args: dict[str, Any], info: Info, list_field: str
    ) -> dict[str, Any]:
        name = info.field_name
        key = self._key(info, ctx)
        entries = args["input"][list_field]
        field_node = info.field_nodes[0]
        if len(entries) > MAX_INPUT:
            raise ShopifyError(
                f"The input array size of {len(entries)} is greater than the maximum allowed "
                f"of {MAX_INPUT}.",
                "MAX_INPUT_SIZE_EXCEEDED",
                nodes=[field_node],
                path=[*info.path.as_list(), "input", list_field],
            )
        if any("changeFromQuantity" not in e for e in entries):
            arg_type = info.parent_type.fields[name].args["input"].type
            item_type = get_named_type(get_named_type(arg_type).fields[list_field].type)
            raise ShopifyError(
                f"{item_type.name} must include the following argument: changeFromQuantity.",
                "INVALID_FIELD_ARGUMENTS",
                nodes=[field_node, self._input_node(info)],
            )
        now = ctx.now
        fingerprint = json.dumps({"mutation": name, "input": args["input"]}, sort_keys=True)
        if key is not None:
            self._keys = {k: r for k, r in self._keys.items() if now - r.at < KEY_TTL}
            seen = self._keys.get(key)
            if seen is not None:
                if seen.fingerprint == fingerprint:
                    return seen.payload
                return {
                    "inventoryAdjustmentGroup": None,
                    "userErrors": [
                        {
                            "field": None,
                            "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                            "message": "The same idempotency key cannot be used with different "
                            "operation parameters.",
                        }
                    ],
                }
        if name == "inventorySetQuantities":
            payload = self.adjuster.set_quantities(args["input"], key, now)
        else:
            payload = self.adjuster.adjust_quantities(args["input"], key, now)
        if key is not None:
            self._keys[key] = _Remembered(fingerprint, payload, now)
        return payload

    def _key(self, info: Info, ctx: Context) -> str | None:
        directive = info.schema.get_directive("idempotent")
        values = (
            get_directive_values(directive, info.field_nodes[0], info.variable_values)
            if directive
            else None
        )
        if values is None:
            if info.field_name in self.required and ctx.api_version >= "2026-04":
                raise ShopifyError(
                    "The @idempotent directive is required for this mutation but was not provided.",
                    "BAD_REQUEST",
                )
            return None
        key = str(values["key"])
        if not key.strip():
            raise ShopifyError(
                "The idempotency key cannot be an empty string or whitespace only.", "BAD_REQUEST"
            )
        return key

    @staticmethod
    def _input_node(info: Info) -> Any:
        arg = next(a for a in info.field_nodes[0].arguments or () if a.name.value == "input")
        if isinstance(arg.value, VariableNode):
            var = arg.value.name.value
            for definition in info.operation.variable_definitions or ():
                if definition.variable.name.value == var:
                    return definition
        return arg.value


RESOLVERS[("Mutation", "inventorySetQuantities")] = lambda o, ctx, args, info: ctx.services.run(
    ctx, args, info, "quantities"
)
RESOLVERS[("Mutation", "inventoryAdjustQuantities")] = lambda o, ctx, args, info: ctx.services.run(
    ctx, args, info, "changes"
)
