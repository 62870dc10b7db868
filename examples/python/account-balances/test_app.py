"""Native tests of the projection: python3 -m unittest discover -s examples/python/account-balances -t ."""

from __future__ import annotations

import json
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path[:0] = [str(HERE), str(ROOT / "sdk" / "python")]

from projector_sdk import BadArgs, UnknownQuery, testing  # noqa: E402

from app import AccountBalances  # noqa: E402


def handle(payloads: list) -> None:
    testing.handle(AccountBalances, testing.events("accounts", payloads))


def ask(name: str, args: str) -> bytes:
    return testing.query(AccountBalances, name, args)


class AccountBalancesTest(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_sample_events_fold_to_the_expected_state(self) -> None:
        lines = (ROOT / "examples/events/accounts.jsonl").read_text().splitlines()
        handle([line for line in lines if line.strip()])
        expected = json.loads((ROOT / "examples/events/accounts.expected.json").read_text())
        self.assertEqual(testing.state_json(), expected)
        self.assertEqual(ask("balance", '{"account": "acc-300"}'), testing.state()[b"account/acc-300"])
        self.assertEqual(
            testing.state()[b"account/acc-600"],
            b'{"owner":null,"balance_cents":0,"deposits":0,"withdrawals":0,'
            b'"overdraft_attempts":1,"overdraft_attempted_cents":500}',
        )
        self.assertEqual(ask("balance", '{"account": "acc-999"}'), b"null")
        attempts = (
            b'[{"account":"acc-200","overdraft_attempts":2},{"account":"acc-300","overdraft_attempts":1},'
            b'{"account":"acc-400","overdraft_attempts":1},{"account":"acc-500","overdraft_attempts":1},'
            b'{"account":"acc-600","overdraft_attempts":1}]'
        )
        self.assertEqual(ask("overdrawn-attempts", ""), attempts)
        self.assertEqual(ask("overdrawn-attempts", "{}"), attempts)
        self.assertEqual(ask("overdrawn-attempts", "[]"), attempts)

    def test_overdrafts_are_counted_not_applied(self) -> None:
        handle([
            {"type": "Deposited", "account": "a", "amount_cents": 100},
            {"type": "Withdrawn", "account": "a", "amount_cents": 101},
            {"type": "Withdrawn", "account": "a", "amount_cents": 100},
            {"type": "AccountOpened", "account": "a", "owner": "ann"},
            {"type": "AccountOpened", "account": "a", "owner": "bea"},
        ])
        self.assertEqual(
            testing.state(),
            {
                b"account/a": b'{"owner":"ann","balance_cents":0,"deposits":1,"withdrawals":1,'
                b'"overdraft_attempts":1,"overdraft_attempted_cents":101}'
            },
        )

    def test_bad_amounts_fail_and_unknown_types_are_skipped(self) -> None:
        handle([{"type": "InterestAccrued", "account": 1, "rate": "high"}])
        self.assertEqual(testing.state(), {})
        for payload in [
            {"type": "Deposited", "account": "a", "amount_cents": -1},
            {"type": "Withdrawn", "account": "a", "amount_cents": 1.5},
            {"type": "Deposited", "account": "a", "amount_cents": "10"},
            {"type": "Deposited", "account": "a"},
            {"type": "AccountOpened", "account": "a"},
            "Deposited",
        ]:
            with self.assertRaises(testing.BatchFailed, msg=payload) as caught:
                handle([payload])
            self.assertEqual(caught.exception.index, 0)
            self.assertEqual(testing.state(), {})

    def test_overflow_fails_the_event(self) -> None:
        handle([{"type": "Deposited", "account": "a", "amount_cents": 2**64 - 1}])
        with self.assertRaises(testing.BatchFailed) as caught:
            handle([{"type": "Deposited", "account": "a", "amount_cents": 1}])
        self.assertEqual(caught.exception.message, "balance of account a overflows")

    def test_queries_check_their_arguments(self) -> None:
        for name, args in [
            ("balance", ""),
            ("balance", '{"account": 5}'),
            ("overdrawn-attempts", '{"limit": 5}'),
            ("overdrawn-attempts", "nonsense"),
            ("overdrawn-attempts", "null"),
        ]:
            with self.assertRaises(BadArgs, msg=(name, args)):
                ask(name, args)
        with self.assertRaises(UnknownQuery):
            ask("balances", "{}")


if __name__ == "__main__":
    unittest.main()
