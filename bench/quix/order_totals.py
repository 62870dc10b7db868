"""order-totals in Quix Streams: the peer of scenario B of projector-bench.

The same fold as examples/order-totals, written the Kafka Streams way, with
Quix's RocksDB state (and its changelog topics, on by default):

1. Keyed by the message key (the order id): the state holds the order. An
   OrderPlaced for an unknown order records it and sends the customer
   (+1 order, +amount); a duplicate OrderPlaced is ignored. An OrderCancelled
   of a known, not yet cancelled order marks it cancelled and sends its
   customer (-1 order, -amount); any other cancel, and unknown event types,
   are ignored.
2. group_by customer (a repartition topic), then keyed by customer: the
   state holds {"orders", "total_cents"}.

Ignored events still travel to step 2 (without a customer) so that step 2
sees every event and knows when all N have been processed; it then stops
the application, which commits its last checkpoint, and writes a JSON file:
the wall-clock times of process start, first message and last message, and
every customer's final totals as last written to the state.

Usage: order_totals.py --broker HOST:PORT --topic orders --events N
       --state-dir DIR --out FILE [--group GROUP]
"""

import time

STARTED = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import uuid  # noqa: E402

from quixstreams import Application, State  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--group", default=f"bench-quix-{uuid.uuid4().hex[:12]}")
    args = parser.parse_args()

    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel=logging.WARNING,
    )
    orders = app.topic(args.topic, key_deserializer="str", value_deserializer="json")
    sdf = app.dataframe(orders)

    first = None
    last = None
    seen = 0
    customers = {}

    def per_order(event: dict, state: State) -> dict:
        nonlocal first
        if first is None:
            first = time.time()
        ignored = {"customer": "", "orders": 0, "cents": 0}
        kind = event.get("type")
        if kind == "OrderPlaced":
            if state.get("order") is not None:
                return ignored
            amount = int(event["amount_cents"])
            if amount < 0:
                raise ValueError(f"negative amount in {event}")
            state.set(
                "order",
                {"customer": event["customer"], "amount_cents": amount, "cancelled": False},
            )
            return {"customer": event["customer"], "orders": 1, "cents": amount}
        if kind == "OrderCancelled":
            order = state.get("order")
            if order is None or order["cancelled"]:
                return ignored
            order["cancelled"] = True
            state.set("order", order)
            return {"customer": order["customer"], "orders": -1, "cents": -order["amount_cents"]}
        return ignored

    def per_customer(delta: dict, state: State) -> None:
        nonlocal last, seen
        seen += 1
        customer = delta["customer"]
        if customer:
            totals = state.get("totals") or {"orders": 0, "total_cents": 0}
            totals = {
                "orders": totals["orders"] + delta["orders"],
                "total_cents": totals["total_cents"] + delta["cents"],
            }
            state.set("totals", totals)
            customers[customer] = totals
        if seen == args.events:
            last = time.time()
            app.stop()

    sdf = sdf.apply(per_order, stateful=True)
    sdf = sdf.group_by(lambda delta: delta["customer"], name="customer")
    sdf = sdf.update(per_customer, stateful=True)

    app.run()
    if last is None:
        raise SystemExit(f"stopped after {seen} of {args.events} events")
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(
            {
                "started": STARTED,
                "first_message": first,
                "last_message": last,
                "events": seen,
                "customers": customers,
            },
            out,
        )


if __name__ == "__main__":
    main()
