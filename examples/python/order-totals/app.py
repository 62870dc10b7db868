"""Orders and spend per customer, from the `orders` topic.

The Python twin of examples/order-totals (Rust): the same name, topic, state
version, query, and byte-identical state and answers.

Events are JSON objects
`{"type": "OrderPlaced" | "OrderCancelled", "order_id", "customer", "amount_cents"}`.

State:
- `customer/<id>`: `{"orders": int, "total_cents": int}`, the customer's
  orders that are not cancelled. A customer whose orders are all cancelled
  keeps a record with zeros.
- `order/<id>`: `{"customer": str, "amount_cents": int, "cancelled": bool}`,
  what a later cancel needs.

Query `top-customers` with `{"n": int}`: the `n` customers with the highest
`total_cents`, ties by customer id ascending.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from projector_sdk import (
    Event,
    Projection,
    ProjectionError,
    export,
    log,
    query,
    rename,
    state,
    u64,
    usize,
)

U64_MAX = 2**64 - 1


@dataclass
class EventType:
    kind: str = rename("type")


@dataclass
class OrderPlaced:
    """Amounts are unsigned: a negative amount fails the event rather than
    silently lowering a customer's total."""

    order_id: str
    customer: str
    amount_cents: u64


@dataclass
class OrderCancelled:
    """Only the order id is read: the customer and amount come from the
    `OrderPlaced` the projection remembered, so a cancel cannot move money
    between customers or take back a different amount."""

    order_id: str


@dataclass
class Customer:
    orders: u64
    total_cents: u64


@dataclass
class Order:
    customer: str
    amount_cents: u64
    cancelled: bool


@dataclass
class TopArgs:
    n: usize


@dataclass
class TopCustomer:
    customer: str
    total_cents: u64


class OrderTotals(Projection):
    NAME = "order-totals"
    VERSION = "0.1.0"
    SOURCES = ["orders"]
    STATE_VERSION = 1

    def handle(self, event: Event) -> None:
        # Read the type first so that event types added later are skipped
        # whatever their other fields look like: old projections must keep
        # running when producers learn new events.
        kind = event.payload_json(EventType).kind
        if kind == "OrderPlaced":
            placed(event.payload_json(OrderPlaced))
        elif kind == "OrderCancelled":
            cancelled(event.payload_json(OrderCancelled))

    @query("top-customers", args=TopArgs)
    def top_customers(self, args: TopArgs) -> list[TopCustomer]:
        # Pages through every customer, keeping only the best `n` in memory;
        # a higher total first, then the lower id.
        customers = (
            TopCustomer(key.removeprefix("customer/"), customer.total_cents)
            for key, customer in state.iter_json("customer/", Customer)
        )
        return heapq.nsmallest(args.n, customers, key=lambda c: (-c.total_cents, c.customer))


def placed(event: OrderPlaced) -> None:
    order_key = f"order/{event.order_id}"
    # A second OrderPlaced for a known id is a redelivery or a producer bug;
    # counting it again would inflate the total, so the first one wins.
    if state.get(order_key) is not None:
        log.warn(f"ignoring duplicate OrderPlaced for order {event.order_id}")
        return
    customer_key = f"customer/{event.customer}"
    customer = state.get_json(customer_key, Customer) or Customer(orders=0, total_cents=0)
    customer.orders += 1
    customer.total_cents += event.amount_cents
    if customer.total_cents > U64_MAX:
        raise ProjectionError(f"total of customer {event.customer} overflows")
    state.put_json(customer_key, customer)
    state.put_json(order_key, Order(event.customer, event.amount_cents, cancelled=False))


def cancelled(event: OrderCancelled) -> None:
    order_key = f"order/{event.order_id}"
    order = state.get_json(order_key, Order)
    if order is None:
        log.warn(f"ignoring cancel of unknown order {event.order_id}")
        return
    if order.cancelled:
        return
    customer_key = f"customer/{order.customer}"
    customer = state.get_json(customer_key, Customer)
    if customer is None:
        raise ProjectionError(
            f"order {event.order_id} names customer {order.customer} with no record"
        )
    customer.orders -= 1
    customer.total_cents -= order.amount_cents
    state.put_json(customer_key, customer)
    order.cancelled = True
    state.put_json(order_key, order)


Handler = export(OrderTotals)
