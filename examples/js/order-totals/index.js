// Orders and spend per customer, from the `orders` topic: the JavaScript twin
// of examples/order-totals (Rust), writing byte-identical state and answers.
//
// Events are JSON objects
// `{"type": "OrderPlaced" | "OrderCancelled", "order_id", "customer", "amount_cents"}`.
//
// State:
// - `customer/<id>`: `{"orders": int, "total_cents": int}`, the customer's
//   orders that are not cancelled. A customer whose orders are all cancelled
//   keeps a record with zeros.
// - `order/<id>`: `{"customer": str, "amount_cents": int, "cancelled": bool}`,
//   what a later cancel needs.
//
// Query `top-customers` with `{"n": int}`: the `n` customers with the highest
// `total_cents`, ties by customer id ascending.

import { ProjectionError, QueryError, defineProjection, log, query, state, t, u64 } from '@projector/sdk';

// Read the type first so that event types added later are skipped whatever
// their other fields look like: old projections must keep running when
// producers learn new events.
const EventType = t.struct('EventType', { type: t.string });

// Amounts are unsigned: a negative amount fails the event rather than
// silently lowering a customer's total.
const OrderPlaced = t.struct('OrderPlaced', {
  order_id: t.string,
  customer: t.string,
  amount_cents: t.u64,
});

// Only the order id is read: the customer and amount come from the
// OrderPlaced the projection remembered, so a cancel cannot move money
// between customers or take back a different amount.
const OrderCancelled = t.struct('OrderCancelled', { order_id: t.string });

const Customer = t.struct('Customer', { orders: t.u64, total_cents: t.u64 });

const Order = t.struct('Order', {
  customer: t.string,
  amount_cents: t.u64,
  cancelled: t.bool,
});

// `usize` in the Rust twin, 32 bits on wasm32.
const TopArgs = t.struct('TopArgs', { n: t.u32 });

const TopCustomer = t.struct('TopCustomer', { customer: t.string, total_cents: t.u64 });

function placed(event) {
  const orderKey = `order/${event.order_id}`;
  // A second OrderPlaced for a known id is a redelivery or a producer bug;
  // counting it again would inflate the total, so the first one wins.
  if (state.get(orderKey) !== undefined) {
    log.warn(`ignoring duplicate OrderPlaced for order ${event.order_id}`);
    return;
  }
  const customerKey = `customer/${event.customer}`;
  const customer = state.getJson(customerKey, Customer) ?? Customer.default();
  customer.orders = u64.add(customer.orders, 1);
  customer.total_cents = u64.checkedAdd(customer.total_cents, event.amount_cents);
  if (customer.total_cents === undefined) {
    throw new ProjectionError(`total of customer ${event.customer} overflows`);
  }
  state.putJson(customerKey, customer, Customer);
  state.putJson(orderKey, { customer: event.customer, amount_cents: event.amount_cents, cancelled: false }, Order);
}

function cancelled(event) {
  const orderKey = `order/${event.order_id}`;
  const order = state.getJson(orderKey, Order);
  if (order === undefined) {
    log.warn(`ignoring cancel of unknown order ${event.order_id}`);
    return;
  }
  if (order.cancelled) return;
  const customerKey = `customer/${order.customer}`;
  const customer = state.getJson(customerKey, Customer);
  if (customer === undefined) {
    throw new ProjectionError(`order ${event.order_id} names customer ${order.customer} with no record`);
  }
  customer.orders = u64.sub(customer.orders, 1);
  customer.total_cents = u64.sub(customer.total_cents, order.amount_cents);
  state.putJson(customerKey, customer, Customer);
  order.cancelled = true;
  state.putJson(orderKey, order, Order);
}

// Higher total first. Totals may be Number or BigInt (beyond 2^53 - 1): `<`
// and `>` compare them across both. Ties keep their order, and customers
// arrive in key order (bytewise, as Rust compares ids), so a stable sort
// ranks ties by id ascending.
function byTotal(a, b) {
  if (a.total_cents > b.total_cents) return -1;
  return a.total_cents < b.total_cents ? 1 : 0;
}

// Pages through every customer, keeping only the best `n` (and at most a
// page of others) in memory.
function topCustomers(n) {
  const keep = Math.max(2 * n, 1024);
  const best = [];
  for (const [key, customer] of state.iterJson('customer/', Customer)) {
    best.push({ customer: key.slice('customer/'.length), total_cents: customer.total_cents });
    if (best.length > keep) {
      best.sort(byTotal);
      best.length = n;
    }
  }
  best.sort(byTotal);
  if (best.length > n) best.length = n;
  return best;
}

export const handler = defineProjection({
  name: 'order-totals',
  version: '0.1.0',
  sources: ['orders'],
  stateVersion: 1,
  queries: ['top-customers'],

  handle(event) {
    const { type } = event.decode(EventType);
    switch (type) {
      case 'OrderPlaced':
        return placed(event.decode(OrderPlaced));
      case 'OrderCancelled':
        return cancelled(event.decode(OrderCancelled));
      default:
        return undefined;
    }
  },

  query(name, args) {
    switch (name) {
      case 'top-customers': {
        const { n } = query.argsJson(args, TopArgs);
        return query.replyJson(topCustomers(n), t.array(TopCustomer));
      }
      default:
        throw QueryError.unknownQuery();
    }
  },
});
