#!/usr/bin/env python3
"""Reference fold of the sample events, to cross-check the *.expected.json files.

A second, independent implementation of the example projections' rules (see
examples/order-totals and examples/account-balances). Run from anywhere:

    python3 examples/events/fold.py          # check the expected files
    python3 examples/events/fold.py --write  # rewrite them
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def events(name):
    with open(HERE / name) as f:
        return [json.loads(line) for line in f if line.strip()]


def order_totals(evs):
    state = {}
    for e in evs:
        if e["type"] == "OrderPlaced":
            order_key = "order/" + e["order_id"]
            if order_key in state:
                continue  # duplicate: the first OrderPlaced wins
            customer = state.setdefault("customer/" + e["customer"], {"orders": 0, "total_cents": 0})
            customer["orders"] += 1
            customer["total_cents"] += e["amount_cents"]
            state[order_key] = {"customer": e["customer"], "amount_cents": e["amount_cents"], "cancelled": False}
        elif e["type"] == "OrderCancelled":
            order = state.get("order/" + e["order_id"])
            if order is None or order["cancelled"]:
                continue
            customer = state["customer/" + order["customer"]]
            customer["orders"] -= 1
            customer["total_cents"] -= order["amount_cents"]
            order["cancelled"] = True
    return state


def account_balances(evs):
    state = {}

    def account(e):
        return state.setdefault("account/" + e["account"], {
            "owner": None,
            "balance_cents": 0,
            "deposits": 0,
            "withdrawals": 0,
            "overdraft_attempts": 0,
            "overdraft_attempted_cents": 0,
        })

    for e in evs:
        if e["type"] == "AccountOpened":
            acc = account(e)
            if acc["owner"] is None:
                acc["owner"] = e["owner"]
        elif e["type"] == "Deposited":
            acc = account(e)
            acc["balance_cents"] += e["amount_cents"]
            acc["deposits"] += 1
        elif e["type"] == "Withdrawn":
            acc = account(e)
            if e["amount_cents"] > acc["balance_cents"]:
                acc["overdraft_attempts"] += 1
                acc["overdraft_attempted_cents"] += e["amount_cents"]
            else:
                acc["balance_cents"] -= e["amount_cents"]
                acc["withdrawals"] += 1
    return state


def main():
    write = "--write" in sys.argv[1:]
    ok = True
    for fold, source, expected in [
        (order_totals, "orders.jsonl", "orders.expected.json"),
        (account_balances, "accounts.jsonl", "accounts.expected.json"),
    ]:
        state = dict(sorted(fold(events(source)).items()))
        path = HERE / expected
        if write:
            path.write_text(json.dumps(state, indent=2) + "\n")
        elif json.loads(path.read_text()) != state:
            print(f"{expected} differs from the fold of {source}", file=sys.stderr)
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
