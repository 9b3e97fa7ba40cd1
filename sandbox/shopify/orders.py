"""Orders, fulfillments and refunds in the fake shop, with the webhooks Shopify sends.

Shopify's inventory moves with its orders: placing an order moves each line's quantity
from ``available`` to ``committed`` at the fulfilling location (one
``inventory_levels/update`` per level touched) and sends ``orders/create``; fulfilling
moves it out of ``committed`` (and so out of ``on_hand``); a refund sends
``refunds/create`` and, when its lines are restocked by Shopify itself, moves them back
into ``available``. The payloads are the REST-style JSON bodies Shopify delivers for
those topics (the fields a consumer reads: ids, ``name``, ``line_items`` with ``sku``,
``variant_id`` and ``quantity``; ``refund_line_items`` with ``quantity``,
``restock_type``, ``location_id`` and the ``line_item``).

An order is all or nothing: with the item's ``inventory_policy`` ``DENY`` a line whose
quantity exceeds ``available`` refuses the whole order (:class:`OutOfStock`), as the
checkout does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.shopify.state import GID_PREFIX, Item, Level, Location, Store

#: Restock types under which Shopify puts refunded units back into ``available``.
RESTOCKING = frozenset({"return", "cancel", "legacy_restock"})
RESTOCK_TYPES = frozenset({"no_restock", *RESTOCKING})


class OutOfStock(ValueError):
    """A ``DENY`` item without enough ``available`` units for an order line."""


@dataclass(eq=False)
class OrderLine:
    num: int
    item: Item
    quantity: int
    fulfilled: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.num,
            "variant_id": self.item.variant.num,
            "product_id": self.item.variant.product.num,
            "sku": self.item.sku,
            "title": self.item.variant.product.title,
            "quantity": self.quantity,
            "fulfillable_quantity": self.quantity - self.fulfilled,
            "requires_shipping": True,
        }


@dataclass(eq=False)
class Order:
    num: int
    number: int
    location: Location
    created_at: datetime
    lines: list[OrderLine] = field(default_factory=list)

    @property
    def gid(self) -> str:
        return f"{GID_PREFIX}Order/{self.num}"

    @property
    def name(self) -> str:
        return f"#{self.number}"

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.num,
            "admin_graphql_api_id": self.gid,
            "name": self.name,
            "order_number": self.number,
            "created_at": _iso(self.created_at),
            "financial_status": "paid",
            "fulfillment_status": None,
            "location_id": self.location.num,
            "line_items": [line.to_wire() for line in self.lines],
        }


@dataclass(eq=False)
class Refund:
    num: int
    order: Order
    created_at: datetime
    #: (order line, quantity, restock type)
    lines: list[tuple[OrderLine, int, str]]

    @property
    def gid(self) -> str:
        return f"{GID_PREFIX}Refund/{self.num}"

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.num,
            "admin_graphql_api_id": self.gid,
            "order_id": self.order.num,
            "created_at": _iso(self.created_at),
            "restock": any(kind in RESTOCKING for _, _, kind in self.lines),
            "refund_line_items": [
                {
                    "id": self.num * 10 + i,
                    "line_item_id": line.num,
                    "quantity": qty,
                    "restock_type": kind,
                    "location_id": self.order.location.num,
                    "line_item": line.to_wire(),
                }
                for i, (line, qty, kind) in enumerate(self.lines)
            ],
        }


class OrderBook:
    """The fake shop's orders and refunds (``FakeShopify.orders``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.orders: list[Order] = []
        self.refunds: list[Refund] = []
        self._next_order = 5_310_000_000_001
        self._next_line = 13_700_000_000_001
        self._next_refund = 9_830_000_000_001
        self._number = 1001

    def place(self, location: str, lines: dict[str, int]) -> Order:
        """An order at ``location`` for ``{item (gid or SKU): quantity}``."""
        loc = self.store.location(location)
        levels: list[tuple[Level, int]] = []
        for ref, qty in lines.items():
            if qty <= 0:
                raise ValueError(f"order quantity must be positive, not {qty}")
            level = self.store.level(ref, loc.gid)
            if level.item.variant.inventory_policy == "DENY" and level.get("available") < qty:
                raise OutOfStock(f"{level.item.sku}: {qty} ordered, {level.get('available')} left")
            levels.append((level, qty))
        order = Order(self._next_order, self._number, loc, self.store.clock.now())
        self._next_order += 1
        self._number += 1
        for level, qty in levels:
            self.store.simulate_order(level, qty)
            order.lines.append(OrderLine(self._next_line, level.item, qty))
            self._next_line += 1
        self.orders.append(order)
        return order

    def fulfill(self, order: Order) -> None:
        """Ship every unfulfilled unit of ``order`` (committed and on_hand drop)."""
        for line in order.lines:
            left = line.quantity - line.fulfilled
            if left > 0:
                level = line.item.levels[order.location.num]
                self.store.simulate_fulfillment(level, left)
                line.fulfilled = line.quantity

    def refund(
        self,
        order: Order,
        lines: dict[str, int],
        restock_type: str = "return",
        restock: bool | None = None,
    ) -> Refund:
        """Refund ``{SKU or item gid: quantity}`` of ``order``. With a restocking type
        (``return``, ``cancel``, ``legacy_restock``) Shopify puts the units back into
        ``available`` at the order's location; ``no_restock`` leaves inventory alone.
        ``restock=False`` keeps inventory as it is whatever the type: a location stocked
        by a fulfillment service (a 3PL's WMS) is restocked by that service, not Shopify."""
        if restock_type not in RESTOCK_TYPES:
            raise ValueError(f"unknown restock_type {restock_type!r}")
        chosen: list[tuple[OrderLine, int, str]] = []
        for ref, qty in lines.items():
            item = self.store.item(ref)
            line = next((x for x in order.lines if x.item is item), None)
            if line is None or not 0 < qty <= line.quantity:
                raise ValueError(f"{order.name} has no {qty} of {ref} to refund")
            chosen.append((line, qty, restock_type))
        refund = Refund(self._next_refund, order, self.store.clock.now(), chosen)
        self._next_refund += 1
        if restock_type in RESTOCKING if restock is None else restock:
            for line, qty, _ in chosen:
                self.store.change(line.item.levels[order.location.num], "available", qty)
        self.refunds.append(refund)
        return refund


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
