"""Read resolvers: how the supported part of the schema is answered from the store.

Every supported ``(Type, field)`` pair has a function ``(obj, ctx, args, info) -> value``.
Plain dicts (connections, page info, payloads, quantities) resolve by key. Anything else
is answered with a ``NOT_IMPLEMENTED_IN_FAKE`` error, so a gap in the fake is loud.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from graphql import GraphQLResolveInfo

from sandbox.shopify import search
from sandbox.shopify.clock import iso
from sandbox.shopify.errors import ShopifyError
from sandbox.shopify.paging import SortKey, paginate
from sandbox.shopify.state import (
    QUANTITY_NAMES,
    Item,
    Level,
    Location,
    Product,
    Store,
    Variant,
    gid,
    parse_gid,
)


@dataclass
class Context:
    """What one request's resolvers share."""

    store: Store
    now: datetime
    api_version: str
    services: Any = None  # the mutation service (sandbox.shopify.mutations.Mutations)
    search_warnings: list[dict[str, Any]] = field(default_factory=list)
    bulk: Any = None  # the bulk operations service (sandbox.shopify.bulk.BulkOperations)


Info = GraphQLResolveInfo[Context]
Resolver = Callable[[Any, Context, dict[str, Any], Info], Any]
RESOLVERS: dict[tuple[str, str], Resolver] = {}

TYPE_OF: dict[type, str] = {
    Location: "Location",
    Item: "InventoryItem",
    Level: "InventoryLevel",
    Variant: "ProductVariant",
    Product: "Product",
}


def resolver(type_name: str, *fields: str) -> Callable[[Resolver], Resolver]:
    def register(fn: Resolver) -> Resolver:
        for name in fields:
            RESOLVERS[(type_name, name)] = fn
        return fn

    return register


def attr(type_name: str, **mapping: Callable[[Any], Any]) -> None:
    """Register simple resolvers that only read the object."""

    def reader(getter: Callable[[Any], Any]) -> Resolver:
        return lambda obj, ctx, args, info: getter(obj)

    for name, getter in mapping.items():
        RESOLVERS[(type_name, name)] = reader(getter)


def _path(info: Info) -> list[str | int]:
    return list(info.path.as_list())


def _by_num(obj: Any) -> SortKey:
    return obj.num, obj.num


# -- QueryRoot ---------------------------------------------------------------------------
def _item_matchers() -> dict[str | None, search.Matcher]:
    return {
        "sku": lambda o, t: search.text_match(o.sku, t),
        None: lambda o, t: search.text_match(o.sku, t),
        "id": lambda o, t: search.id_match(o.num, t),
        "created_at": lambda o, t: search.date_match(o.created_at, t),
        "updated_at": lambda o, t: search.date_match(o.updated_at, t),
    }


@resolver("QueryRoot", "inventoryItems")
def _inventory_items(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    items = search.filter_objects(
        list(ctx.store.items.values()),
        args.get("query"),
        _item_matchers(),
        _path(info),
        ctx.search_warnings,
    )
    return paginate(items, _by_num, args)


@resolver("QueryRoot", "productVariants")
def _product_variants(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    matchers: dict[str | None, search.Matcher] = {
        "sku": lambda v, t: search.text_match(v.sku, t),
        None: lambda v, t: search.text_match(v.sku, t),
        "id": lambda v, t: search.id_match(v.num, t),
        "product_id": lambda v, t: search.id_match(v.product.num, t),
        "updated_at": lambda v, t: search.date_match(v.updated_at, t),
    }
    variants = search.filter_objects(
        list(ctx.store.variants.values()),
        args.get("query"),
        matchers,
        _path(info),
        ctx.search_warnings,
    )
    return paginate(variants, _by_num, args)


@resolver("QueryRoot", "products")
def _products(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    matchers: dict[str | None, search.Matcher] = {
        "title": lambda p, t: search.text_match(p.title, t),
        None: lambda p, t: search.text_match(p.title, t),
        "id": lambda p, t: search.id_match(p.num, t),
    }
    products = search.filter_objects(
        list(ctx.store.products.values()),
        args.get("query"),
        matchers,
        _path(info),
        ctx.search_warnings,
    )
    return paginate(products, _by_num, args)


@resolver("QueryRoot", "productVariantsCount")
def _product_variants_count(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    total, limit = len(ctx.store.variants), args.get("limit")
    if limit is not None and total > limit:
        return {"count": limit, "precision": "AT_LEAST"}
    return {"count": total, "precision": "EXACT"}


@resolver("QueryRoot", "locations")
def _locations(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    """Active locations by default; deactivated ones with ``includeInactive``, and the
    legacy locations of fulfillment services only with ``includeLegacy`` (both default
    false: "Use the includeLegacy argument to include locations that FulfillmentService
    apps manage", https://shopify.dev/docs/api/admin-graphql/latest/queries/locations)."""
    matchers: dict[str | None, search.Matcher] = {
        "name": lambda loc, t: search.text_match(loc.name, t),
        None: lambda loc, t: search.text_match(loc.name, t),
        "id": lambda loc, t: search.id_match(loc.num, t),
        "active": lambda loc, t: str(loc.active).lower() == t.value.lower(),
    }
    locs = [
        loc
        for loc in ctx.store.locations.values()
        if (loc.active or args.get("includeInactive"))
        and (loc.fulfillment_service is None or args.get("includeLegacy"))
    ]
    locs = search.filter_objects(
        locs, args.get("query"), matchers, _path(info), ctx.search_warnings
    )
    if args.get("sortKey") in (None, "NAME"):
        return paginate(locs, lambda loc: (loc.name, loc.num), args, parse_value=str)
    return paginate(locs, _by_num, args)


@resolver("QueryRoot", "location")
def _location(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    if args.get("id") is None:
        return next(iter(ctx.store.locations.values()), None)
    num = parse_gid(args["id"], "Location")
    return ctx.store.locations.get(num) if num is not None else None


def _lookup(kind: str) -> Resolver:
    def fn(o: Any, ctx: Context, args: dict[str, Any], info: Info) -> Any:
        found = ctx.store.node(args["id"])
        return found if found is not None and TYPE_OF.get(type(found)) == kind else None

    return fn


for _field, _kind in (
    ("inventoryItem", "InventoryItem"),
    ("inventoryLevel", "InventoryLevel"),
    ("productVariant", "ProductVariant"),
    ("product", "Product"),
):
    RESOLVERS[("QueryRoot", _field)] = _lookup(_kind)
RESOLVERS[("QueryRoot", "node")] = lambda o, ctx, args, info: ctx.store.node(args["id"])
RESOLVERS[("QueryRoot", "nodes")] = lambda o, ctx, args, info: [
    ctx.store.node(i) for i in args["ids"]
]
RESOLVERS[("QueryRoot", "shop")] = lambda o, ctx, args, info: {
    "id": gid("Shop", 1),
    "name": "Driftwatch Sandbox",
    "myshopifyDomain": ctx.store.shop_domain,
    "currencyCode": "USD",
    "ianaTimezone": "UTC",
}


# -- Location ----------------------------------------------------------------------------
attr(
    "Location",
    id=lambda o: o.gid,
    name=lambda o: o.name,
    isActive=lambda o: o.active,
    legacyResourceId=lambda o: str(o.num),
    createdAt=lambda o: iso(o.created_at),
    updatedAt=lambda o: iso(o.updated_at),
    activatable=lambda o: not o.active,
    deactivatable=lambda o: o.active,
    deletable=lambda o: not o.active,
    deactivatedAt=lambda o: None,
    fulfillsOnlineOrders=lambda o: True,
    shipsInventory=lambda o: True,
    isFulfillmentService=lambda o: o.fulfillment_service is not None,
    hasUnfulfilledOrders=lambda o: False,
    fulfillmentService=lambda o: _fulfillment_service(o),
)


def _fulfillment_service(loc: Location) -> dict[str, Any] | None:
    """The fulfillment service a legacy location belongs to (a FulfillmentService)."""
    if loc.fulfillment_service is None:
        return None
    handle = loc.fulfillment_service.lower().replace(" ", "-")
    return {
        "id": gid("FulfillmentService", loc.num),
        "serviceName": loc.fulfillment_service,
        "handle": handle,
        "callbackUrl": None,
        "fulfillmentOrdersOptIn": True,
        "inventoryManagement": True,
        "location": loc,
        "requiresShippingMethod": True,
        "trackingSupport": False,
        "type": "THIRD_PARTY",
    }


RESOLVERS[("Location", "isPrimary")] = lambda o, ctx, a, i: (
    next(iter(ctx.store.locations.values())) is o
)
RESOLVERS[("Location", "hasActiveInventory")] = lambda o, ctx, a, i: any(
    lv.active for it in ctx.store.items.values() for lv in it.levels.values() if lv.location is o
)


def _levels(levels: list[Level], ctx: Context, args: dict[str, Any], info: Info) -> Any:
    matchers: dict[str | None, search.Matcher] = {
        "inventory_item_id": lambda lv, t: search.id_match(lv.item.num, t),
        "updated_at": lambda lv, t: search.date_match(lv.updated_at, t),
    }
    chosen = [lv for lv in levels if lv.active or args.get("includeInactive")]
    chosen = search.filter_objects(
        chosen, args.get("query"), matchers, _path(info), ctx.search_warnings
    )
    return paginate(chosen, lambda lv: (lv.row, lv.row), args)


@resolver("Location", "inventoryLevels")
def _location_levels(loc: Location, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    levels = [it.levels[loc.num] for it in ctx.store.items.values() if loc.num in it.levels]
    return _levels(levels, ctx, args, info)


@resolver("Location", "inventoryLevel")
def _location_level(loc: Location, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    num = parse_gid(args["inventoryItemId"], "InventoryItem")
    item = ctx.store.items.get(num) if num is not None else None
    level = item.levels.get(loc.num) if item else None
    return level if level and (level.active or args.get("includeInactive")) else None


# -- InventoryItem -----------------------------------------------------------------------
attr(
    "InventoryItem",
    id=lambda o: o.gid,
    sku=lambda o: o.sku,
    tracked=lambda o: o.tracked,
    legacyResourceId=lambda o: str(o.num),
    createdAt=lambda o: iso(o.created_at),
    updatedAt=lambda o: iso(o.updated_at),
    requiresShipping=lambda o: True,
    variant=lambda o: o.variant,
    harmonizedSystemCode=lambda o: None,
    countryCodeOfOrigin=lambda o: None,
    provinceCodeOfOrigin=lambda o: None,
    inventoryHistoryUrl=lambda o: None,
    unitCost=lambda o: None,
    locationsCount=lambda o: {
        "count": sum(lv.active for lv in o.levels.values()),
        "precision": "EXACT",
    },
)
RESOLVERS[("InventoryItem", "duplicateSkuCount")] = lambda o, ctx, a, i: sum(
    1 for it in ctx.store.items.values() if it is not o and it.sku and it.sku == o.sku
)
RESOLVERS[("InventoryItem", "inventoryLevels")] = lambda o, ctx, args, info: _levels(
    sorted(o.levels.values(), key=lambda lv: lv.row), ctx, args, info
)


@resolver("InventoryItem", "inventoryLevel")
def _item_level(item: Item, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    num = parse_gid(args["locationId"], "Location")
    level = item.levels.get(num) if num is not None else None
    return level if level and (level.active or args.get("includeInactive")) else None


# -- InventoryLevel ----------------------------------------------------------------------
attr(
    "InventoryLevel",
    id=lambda o: o.gid,
    isActive=lambda o: o.active,
    item=lambda o: o.item,
    location=lambda o: o.location,
    createdAt=lambda o: iso(o.created_at),
    updatedAt=lambda o: iso(o.updated_at),
    canDeactivate=lambda o: True,
    deactivationAlert=lambda o: None,
)


@resolver("InventoryLevel", "quantities")
def _quantities(level: Level, ctx: Context, args: dict[str, Any], info: Info) -> Any:
    out = []
    for name in args["names"]:
        if name not in QUANTITY_NAMES:
            raise ShopifyError(
                f"The quantity name '{name}' is not valid. Valid values are: "
                + ", ".join(QUANTITY_NAMES)
                + ".",
                "BAD_REQUEST",
            )
        changed = None if name == "on_hand" else level.changed_at[name]
        out.append(
            {
                "id": f"gid://shopify/InventoryQuantity/{level.location.level_num}"
                f"?inventory_item_id={level.item.num}&name={name}",
                "name": name,
                "quantity": level.get(name),
                "updatedAt": iso(changed) if changed else None,
            }
        )
    return out


# -- ProductVariant / Product ------------------------------------------------------------
attr(
    "ProductVariant",
    id=lambda o: o.gid,
    sku=lambda o: o.sku,
    title=lambda o: "Default Title",
    displayName=lambda o: f"{o.product.title} - Default Title",
    inventoryPolicy=lambda o: o.inventory_policy,
    inventoryItem=lambda o: o.item,
    product=lambda o: o.product,
    legacyResourceId=lambda o: str(o.num),
    createdAt=lambda o: iso(o.created_at),
    updatedAt=lambda o: iso(o.updated_at),
    barcode=lambda o: None,
    price=lambda o: "10.00",
    position=lambda o: 1,
    selectedOptions=lambda o: [{"name": "Title", "value": "Default Title"}],
    inventoryQuantity=lambda o: _total(o),
)
attr(
    "Product",
    id=lambda o: o.gid,
    title=lambda o: o.title,
    handle=lambda o: o.title.lower().replace(" ", "-"),
    status=lambda o: "ACTIVE",
    legacyResourceId=lambda o: str(o.num),
    createdAt=lambda o: iso(o.created_at),
    updatedAt=lambda o: iso(o.created_at),
    tracksInventory=lambda o: any(v.item and v.item.tracked for v in o.variants),
    totalInventory=lambda o: sum(_total(v) for v in o.variants),
)
RESOLVERS[("Product", "variants")] = lambda o, ctx, args, info: paginate(o.variants, _by_num, args)


def _total(variant: Variant) -> int:
    item = variant.item
    return sum(lv.get("available") for lv in item.levels.values() if lv.active) if item else 0
