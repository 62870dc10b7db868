"""Native tests of the projection: python3 -m unittest discover -s examples/python/order-totals -t ."""

from __future__ import annotations

import json
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(HERE), str(ROOT / "sdk" / "python")]

from projector_sdk import BadArgs, UnknownQuery, testing  # noqa: E402

from app import OrderTotals  # noqa: E402


def handle(payloads: list) -> None:
    testing.handle(OrderTotals, testing.events("orders", payloads))


def top(n: int) -> bytes:
    return testing.query(OrderTotals, "top-customers", json.dumps({"n": n}))


class OrderTotalsTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_sample_events_fold_to_the_expected_state(self) -> None:
        lines = (ROOT / "examples/events/orders.jsonl").read_text().splitlines()
        handle([line for line in lines if line.strip()])
        expected = json.loads((ROOT / "examples/events/orders.expected.json").read_text())
        self.assertEqual(testing.state_json(), expected)
        self.assertEqual(
            top(3),
            b'[{"customer":"carol","total_cents":32472},{"customer":"bob","total_cents":18490},'
            b'{"customer":"dave","total_cents":18349}]',
        )
        # The bytes the Rust example writes: compact, fields in struct order.
        self.assertEqual(testing.state()[b"customer/alice"], b'{"orders":8,"total_cents":14482}')

    def test_cancel_uses_the_remembered_order(self) -> None:
        handle([
            {"type": "OrderPlaced", "order_id": "1", "customer": "ann", "amount_cents": 500},
            {"type": "OrderPlaced", "order_id": "2", "customer": "ann", "amount_cents": 700},
            {"type": "OrderCancelled", "order_id": "1", "customer": "bea", "amount_cents": 1},
            {"type": "OrderCancelled", "order_id": "1"},
            {"type": "OrderCancelled", "order_id": "404"},
            {"type": "OrderPlaced", "order_id": "2", "customer": "bea", "amount_cents": 9},
        ])
        self.assertEqual(
            testing.state(),
            {
                b"customer/ann": b'{"orders":1,"total_cents":700}',
                b"order/1": b'{"customer":"ann","amount_cents":500,"cancelled":true}',
                b"order/2": b'{"customer":"ann","amount_cents":700,"cancelled":false}',
            },
        )

    def test_unknown_types_are_skipped_and_bad_payloads_fail(self) -> None:
        handle([{"type": "OrderShipped", "order_id": 7, "carrier": ["x"]}])
        self.assertEqual(testing.state(), {})
        ok = {"type": "OrderPlaced", "order_id": "ok", "customer": "a", "amount_cents": 1}
        for payload, needle in [
            ({"type": "OrderPlaced", "order_id": "1", "amount_cents": 5}, "missing field `customer`"),
            ({"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": -5}, "integer `-5`, expected u64"),
            ({"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": 5.0}, "floating point `5.0`"),
            ('{"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": -0}', "floating point `-0.0`"),
            ('{"type": "OrderPlaced", "order_id": "1", "order_id": "2", "customer": "a", "amount_cents": 1}', "duplicate field `order_id`"),
            ({"type": "OrderCancelled"}, "missing field `order_id`"),
            ({"order_id": "1"}, "missing field `type`"),
            ([1, 2], "invalid type"),
        ]:
            with self.assertRaises(testing.BatchFailed, msg=payload) as caught:
                handle([ok, payload])
            self.assertEqual(caught.exception.index, 1, payload)
            self.assertIn(needle, caught.exception.message, payload)
            # The failed batch left no trace.
            self.assertEqual(testing.state(), {})
        with self.assertRaises(testing.BatchFailed) as caught:
            testing.handle(OrderTotals, [testing.event("orders", 0, None)])
        self.assertIn("tombstone", caught.exception.message)

    def test_overflow_fails_the_event(self) -> None:
        big = {"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": 2**64 - 1}
        handle([big])
        with self.assertRaises(testing.BatchFailed) as caught:
            handle([dict(big, order_id="2", amount_cents=1)])
        self.assertEqual(caught.exception.message, "total of customer a overflows")

    def test_top_customers_ranks_by_total_then_id(self) -> None:
        handle([
            {"type": "OrderPlaced", "order_id": "1", "customer": "cy", "amount_cents": 300},
            {"type": "OrderPlaced", "order_id": "2", "customer": "al", "amount_cents": 100},
            {"type": "OrderPlaced", "order_id": "3", "customer": "bo", "amount_cents": 300},
            {"type": "OrderPlaced", "order_id": "4", "customer": "di", "amount_cents": 50},
        ])
        self.assertEqual(
            json.loads(top(10)),
            [
                {"customer": "bo", "total_cents": 300},
                {"customer": "cy", "total_cents": 300},
                {"customer": "al", "total_cents": 100},
                {"customer": "di", "total_cents": 50},
            ],
        )
        self.assertEqual(
            json.loads(top(2)),
            [{"customer": "bo", "total_cents": 300}, {"customer": "cy", "total_cents": 300}],
        )
        self.assertEqual(top(0), b"[]")
        self.assertEqual(len(json.loads(top(2**32 - 1))), 4)
        for args in ['{"n": -1}', "", '{"n": 4294967296}', '{"n": 1.0}']:
            with self.assertRaises(BadArgs, msg=args):
                testing.query(OrderTotals, "top-customers", args)
        with self.assertRaises(UnknownQuery):
            testing.query(OrderTotals, "nope", "{}")

    def test_top_customers_pages_through_many_customers(self) -> None:
        handle([
            {"type": "OrderPlaced", "order_id": str(i), "customer": f"c{i:04}", "amount_cents": i % 7}
            for i in range(1000)
        ])
        self.assertEqual(
            json.loads(top(2)),
            [{"customer": "c0006", "total_cents": 6}, {"customer": "c0013", "total_cents": 6}],
        )


if __name__ == "__main__":
    unittest.main()
