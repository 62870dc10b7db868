// Account balances, from the `accounts` topic: the Go twin of
// examples/account-balances (Rust), writing the same state byte for byte.
//
// Events are JSON objects:
//   - `{"type": "AccountOpened", "account": str, "owner": str}`
//   - `{"type": "Deposited", "account": str, "amount_cents": int}`
//   - `{"type": "Withdrawn", "account": str, "amount_cents": int}`
//
// A withdrawal larger than the balance is an overdraft attempt: it is
// counted, with the amount attempted, but not applied. Amounts must be
// non-negative integers; anything else fails the event.
//
// State `account/<id>`: `{"owner": str|null, "balance_cents": int,
// "deposits": int, "withdrawals": int, "overdraft_attempts": int,
// "overdraft_attempted_cents": int}`. `withdrawals` counts applied
// withdrawals only.
//
// Queries: `balance` with `{"account": str}` answers the account object or
// `null`; `overdrawn-attempts` (no arguments) answers
// `[{"account": str, "overdraft_attempts": int}]` for every account with at
// least one attempt, by account id.
package main

import (
	"fmt"
	"strings"

	projector "projector.dev/sdk"
	"projector.dev/sdk/codec"
	"projector.dev/sdk/log"
	"projector.dev/sdk/state"
)

type AccountBalances struct{}

func init() { projector.Export(AccountBalances{}) }

// main is not run: the module is a library the host calls into.
func main() {}

func (AccountBalances) Describe() projector.Descriptor {
	return projector.Descriptor{
		Name:         "account-balances",
		Version:      "0.1.0",
		Sources:      []string{"accounts"},
		StateVersion: 1,
		Queries:      []string{"balance", "overdrawn-attempts"},
	}
}

func (AccountBalances) Handle(event *projector.Event) error {
	// Read the type first so that event types added later are skipped
	// whatever their other fields look like.
	var kind eventType
	if err := event.PayloadJSON(&kind); err != nil {
		return err
	}
	switch kind.Type {
	case "AccountOpened":
		var e accountOpened
		if err := event.PayloadJSON(&e); err != nil {
			return err
		}
		return opened(e)
	case "Deposited", "Withdrawn":
		var e movement
		if err := event.PayloadJSON(&e); err != nil {
			return err
		}
		if kind.Type == "Deposited" {
			return deposited(e)
		}
		return withdrawn(e)
	}
	return nil
}

func (AccountBalances) Query(name string, args []byte) ([]byte, error) {
	switch name {
	case "balance":
		var a balanceArgs
		if err := projector.ArgsJSON(args, &a); err != nil {
			return nil, err
		}
		var acc account
		found, err := state.GetJSON(accountKey(a.Account), &acc)
		if err != nil {
			return nil, err
		}
		if !found {
			return projector.ReplyJSON(nil)
		}
		return projector.ReplyJSON(acc)
	case "overdrawn-attempts":
		var a noArgs
		if err := projector.ArgsJSON(args, &a); err != nil {
			return nil, err
		}
		found, err := overdrawnAttempts()
		if err != nil {
			return nil, err
		}
		return projector.ReplyJSON(found)
	}
	return nil, projector.ErrUnknownQuery
}

type eventType struct {
	Type string `json:"type"`
}

type accountOpened struct {
	Account string `json:"account"`
	Owner   string `json:"owner"`
}

// movement is Deposited and Withdrawn. Unsigned, so that a negative amount
// fails the event instead of turning a deposit into a withdrawal.
type movement struct {
	Account     string `json:"account"`
	AmountCents uint64 `json:"amount_cents"`
}

type account struct {
	Owner                   *string `json:"owner"`
	BalanceCents            uint64  `json:"balance_cents"`
	Deposits                uint64  `json:"deposits"`
	Withdrawals             uint64  `json:"withdrawals"`
	OverdraftAttempts       uint64  `json:"overdraft_attempts"`
	OverdraftAttemptedCents uint64  `json:"overdraft_attempted_cents"`
}

type balanceArgs struct {
	Account string `json:"account"`
}

type noArgs struct {
	codec.DenyUnknownFields
}

type overdraftAttempts struct {
	Account           string `json:"account"`
	OverdraftAttempts uint64 `json:"overdraft_attempts"`
}

func accountKey(account string) string { return "account/" + account }

// load reads an account, or a new one. Money can arrive for an account
// before its AccountOpened (partitions interleave, or the producer never
// sent one): the movement is still recorded, under an account whose owner
// stays null until it is opened.
func load(id string) (account, error) {
	var acc account
	_, err := state.GetJSON(accountKey(id), &acc)
	return acc, err
}

func store(id string, acc account) error { return state.PutJSON(accountKey(id), acc) }

func opened(e accountOpened) error {
	acc, err := load(e.Account)
	if err != nil {
		return err
	}
	// A repeated open must not hand the account to someone else.
	if acc.Owner != nil {
		log.Warnf("ignoring AccountOpened for %s by %s: already opened by %s", e.Account, e.Owner, *acc.Owner)
		return nil
	}
	acc.Owner = &e.Owner
	return store(e.Account, acc)
}

func deposited(e movement) error {
	acc, err := load(e.Account)
	if err != nil {
		return err
	}
	if acc.BalanceCents+e.AmountCents < acc.BalanceCents {
		return fmt.Errorf("balance of account %s overflows", e.Account)
	}
	acc.BalanceCents += e.AmountCents
	acc.Deposits++
	return store(e.Account, acc)
}

func withdrawn(e movement) error {
	acc, err := load(e.Account)
	if err != nil {
		return err
	}
	if e.AmountCents > acc.BalanceCents {
		acc.OverdraftAttempts++
		if acc.OverdraftAttemptedCents+e.AmountCents < acc.OverdraftAttemptedCents {
			return fmt.Errorf("overdraft total of account %s overflows", e.Account)
		}
		acc.OverdraftAttemptedCents += e.AmountCents
	} else {
		acc.BalanceCents -= e.AmountCents
		acc.Withdrawals++
	}
	return store(e.Account, acc)
}

func overdrawnAttempts() ([]overdraftAttempts, error) {
	// Keys come back in ascending order, which is account id order.
	found := []overdraftAttempts{}
	for entry, err := range state.IterJSON[account]("account/") {
		if err != nil {
			return nil, err
		}
		if entry.Value.OverdraftAttempts > 0 {
			found = append(found, overdraftAttempts{
				Account:           strings.TrimPrefix(entry.Key, "account/"),
				OverdraftAttempts: entry.Value.OverdraftAttempts,
			})
		}
	}
	return found, nil
}
