"""Account balances, from the `accounts` topic.

The Python twin of examples/account-balances (Rust): the same name, topic,
state version, queries, and byte-identical state and answers.

Events are JSON objects:
- `{"type": "AccountOpened", "account": str, "owner": str}`
- `{"type": "Deposited", "account": str, "amount_cents": int}`
- `{"type": "Withdrawn", "account": str, "amount_cents": int}`

A withdrawal larger than the balance is an overdraft attempt: it is counted,
with the amount attempted, but not applied. Amounts must be non-negative
integers; anything else fails the event.

State `account/<id>`: `{"owner": str|null, "balance_cents": int,
"deposits": int, "withdrawals": int, "overdraft_attempts": int,
"overdraft_attempted_cents": int}`. `withdrawals` counts applied withdrawals
only.

Queries: `balance` with `{"account": str}` answers the account object or
`null`; `overdrawn-attempts` (no arguments) answers
`[{"account": str, "overdraft_attempts": int}]` for every account with at
least one attempt, by account id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from projector_sdk import (
    Event,
    Projection,
    ProjectionError,
    deny_unknown_fields,
    export,
    log,
    query,
    rename,
    state,
    u64,
)

U64_MAX = 2**64 - 1


@dataclass
class EventType:
    kind: str = rename("type")


@dataclass
class AccountOpened:
    account: str
    owner: str


@dataclass
class Movement:
    """`Deposited` and `Withdrawn`. Unsigned, so that a negative amount fails
    the event instead of turning a deposit into a withdrawal."""

    account: str
    amount_cents: u64


@dataclass
class Account:
    owner: Optional[str]
    balance_cents: u64
    deposits: u64
    withdrawals: u64
    overdraft_attempts: u64
    overdraft_attempted_cents: u64


@dataclass
class BalanceArgs:
    account: str


@deny_unknown_fields
@dataclass
class NoArgs:
    pass


@dataclass
class OverdraftAttempts:
    account: str
    overdraft_attempts: u64


class AccountBalances(Projection):
    NAME = "account-balances"
    VERSION = "0.1.0"
    SOURCES = ["accounts"]
    STATE_VERSION = 1

    def handle(self, event: Event) -> None:
        # Read the type first so that event types added later are skipped
        # whatever their other fields look like.
        kind = event.payload_json(EventType).kind
        if kind == "AccountOpened":
            opened(event.payload_json(AccountOpened))
        elif kind == "Deposited":
            deposited(event.payload_json(Movement))
        elif kind == "Withdrawn":
            withdrawn(event.payload_json(Movement))

    @query("balance", args=BalanceArgs)
    def balance(self, args: BalanceArgs) -> Optional[Account]:
        return state.get_json(account_key(args.account), Account)

    @query("overdrawn-attempts", args=NoArgs)
    def overdrawn_attempts(self, args: NoArgs) -> list[OverdraftAttempts]:
        # Keys come back in ascending order, which is account id order.
        return [
            OverdraftAttempts(key.removeprefix("account/"), account.overdraft_attempts)
            for key, account in state.iter_json("account/", Account)
            if account.overdraft_attempts > 0
        ]


def account_key(account: str) -> str:
    return f"account/{account}"


def load(account: str) -> Account:
    """Money can arrive for an account before its AccountOpened (partitions
    interleave, or the producer never sent one): the movement is still
    recorded, under an account whose owner stays `null` until it is opened."""
    return state.get_json(account_key(account), Account) or Account(
        owner=None,
        balance_cents=0,
        deposits=0,
        withdrawals=0,
        overdraft_attempts=0,
        overdraft_attempted_cents=0,
    )


def store(account: str, value: Account) -> None:
    state.put_json(account_key(account), value)


def opened(event: AccountOpened) -> None:
    account = load(event.account)
    if account.owner is not None:
        # A repeated open must not hand the account to someone else.
        log.warn(
            f"ignoring AccountOpened for {event.account} by {event.owner}: "
            f"already opened by {account.owner}"
        )
        return
    account.owner = event.owner
    store(event.account, account)


def deposited(event: Movement) -> None:
    account = load(event.account)
    account.balance_cents += event.amount_cents
    if account.balance_cents > U64_MAX:
        raise ProjectionError(f"balance of account {event.account} overflows")
    account.deposits += 1
    store(event.account, account)


def withdrawn(event: Movement) -> None:
    account = load(event.account)
    if event.amount_cents > account.balance_cents:
        account.overdraft_attempts += 1
        account.overdraft_attempted_cents += event.amount_cents
        if account.overdraft_attempted_cents > U64_MAX:
            raise ProjectionError(f"overdraft total of account {event.account} overflows")
    else:
        account.balance_cents -= event.amount_cents
        account.withdrawals += 1
    store(event.account, account)


Handler = export(AccountBalances)
