// Orders and spend per customer, from the `orders` topic: the Go twin of
// examples/order-totals (Rust), writing the same state byte for byte.
//
// Events are JSON objects
// `{"type": "OrderPlaced" | "OrderCancelled", "order_id", "customer", "amount_cents"}`.
//
// State:
//   - `customer/<id>`: `{"orders": int, "total_cents": int}`, the customer's
//     orders that are not cancelled. A customer whose orders are all
//     cancelled keeps a record with zeros.
//   - `order/<id>`: `{"customer": str, "amount_cents": int, "cancelled": bool}`,
//     what a later cancel needs.
//
// Query `top-customers` with `{"n": int}`: the `n` customers with the highest
// `total_cents`, ties by customer id ascending.
package main

import (
	"container/heap"
	"fmt"
	"sort"
	"strings"

	projector "projector.dev/sdk"
	"projector.dev/sdk/log"
	"projector.dev/sdk/state"
)

type OrderTotals struct{}

func init() { projector.Export(OrderTotals{}) }

// main is not run: the module is a library the host calls into.
func main() {}

func (OrderTotals) Describe() projector.Descriptor {
	return projector.Descriptor{
		Name:         "order-totals",
		Version:      "0.1.0",
		Sources:      []string{"orders"},
		StateVersion: 1,
		Queries:      []string{"top-customers"},
	}
}

func (OrderTotals) Handle(event *projector.Event) error {
	// Read the type first so that event types added later are skipped
	// whatever their other fields look like: old projections must keep
	// running when producers learn new events.
	var kind eventType
	if err := event.PayloadJSON(&kind); err != nil {
		return err
	}
	switch kind.Type {
	case "OrderPlaced":
		var e orderPlaced
		if err := event.PayloadJSON(&e); err != nil {
			return err
		}
		return placed(e)
	case "OrderCancelled":
		var e orderCancelled
		if err := event.PayloadJSON(&e); err != nil {
			return err
		}
		return cancelled(e)
	}
	return nil
}

func (OrderTotals) Query(name string, args []byte) ([]byte, error) {
	switch name {
	case "top-customers":
		var a topArgs
		if err := projector.ArgsJSON(args, &a); err != nil {
			return nil, err
		}
		top, err := topCustomers(a.N)
		if err != nil {
			return nil, err
		}
		return projector.ReplyJSON(top)
	}
	return nil, projector.ErrUnknownQuery
}

type eventType struct {
	Type string `json:"type"`
}

// Amounts are unsigned: a negative amount fails the event rather than
// silently lowering a customer's total.
type orderPlaced struct {
	OrderID     string `json:"order_id"`
	Customer    string `json:"customer"`
	AmountCents uint64 `json:"amount_cents"`
}

// Only the order id is read: the customer and amount come from the
// OrderPlaced the projection remembered, so a cancel cannot move money
// between customers or take back a different amount.
type orderCancelled struct {
	OrderID string `json:"order_id"`
}

type customer struct {
	Orders     uint64 `json:"orders"`
	TotalCents uint64 `json:"total_cents"`
}

type order struct {
	Customer    string `json:"customer"`
	AmountCents uint64 `json:"amount_cents"`
	Cancelled   bool   `json:"cancelled"`
}

// N is a Rust usize, 32 bits on wasm32: larger values are bad arguments.
type topArgs struct {
	N uint32 `json:"n"`
}

type topCustomer struct {
	Customer   string `json:"customer"`
	TotalCents uint64 `json:"total_cents"`
}

func placed(e orderPlaced) error {
	orderKey := "order/" + e.OrderID
	// A second OrderPlaced for a known id is a redelivery or a producer
	// bug; counting it again would inflate the total, so the first one
	// wins.
	if _, known := state.Get(orderKey); known {
		log.Warnf("ignoring duplicate OrderPlaced for order %s", e.OrderID)
		return nil
	}
	customerKey := "customer/" + e.Customer
	var c customer
	if _, err := state.GetJSON(customerKey, &c); err != nil {
		return err
	}
	c.Orders++
	if c.TotalCents+e.AmountCents < c.TotalCents {
		return fmt.Errorf("total of customer %s overflows", e.Customer)
	}
	c.TotalCents += e.AmountCents
	if err := state.PutJSON(customerKey, c); err != nil {
		return err
	}
	return state.PutJSON(orderKey, order{Customer: e.Customer, AmountCents: e.AmountCents})
}

func cancelled(e orderCancelled) error {
	orderKey := "order/" + e.OrderID
	var o order
	found, err := state.GetJSON(orderKey, &o)
	if err != nil {
		return err
	}
	if !found {
		log.Warnf("ignoring cancel of unknown order %s", e.OrderID)
		return nil
	}
	if o.Cancelled {
		return nil
	}
	customerKey := "customer/" + o.Customer
	var c customer
	found, err = state.GetJSON(customerKey, &c)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("order %s names customer %s with no record", e.OrderID, o.Customer)
	}
	// Wrapping like Rust's release build; the totals cannot go below zero
	// while the state was written by this projection.
	c.Orders--
	c.TotalCents -= o.AmountCents
	if err := state.PutJSON(customerKey, c); err != nil {
		return err
	}
	o.Cancelled = true
	return state.PutJSON(orderKey, o)
}

// better ranks customers: a higher total first, then the lower id.
func better(a, b topCustomer) bool {
	if a.TotalCents != b.TotalCents {
		return a.TotalCents > b.TotalCents
	}
	return a.Customer < b.Customer
}

// worstFirst is a heap of the best customers seen so far, the worst on top.
type worstFirst []topCustomer

func (h worstFirst) Len() int           { return len(h) }
func (h worstFirst) Less(i, j int) bool { return better(h[j], h[i]) }
func (h worstFirst) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *worstFirst) Push(x any)        { *h = append(*h, x.(topCustomer)) }
func (h *worstFirst) Pop() any {
	old := *h
	last := old[len(old)-1]
	*h = old[:len(old)-1]
	return last
}

// topCustomers pages through every customer, keeping only the best n in
// memory.
func topCustomers(n uint32) ([]topCustomer, error) {
	best := &worstFirst{}
	for entry, err := range state.IterJSON[customer]("customer/") {
		if err != nil {
			return nil, err
		}
		heap.Push(best, topCustomer{
			Customer:   strings.TrimPrefix(entry.Key, "customer/"),
			TotalCents: entry.Value.TotalCents,
		})
		if uint64(best.Len()) > uint64(n) {
			heap.Pop(best)
		}
	}
	top := []topCustomer(*best)
	sort.Slice(top, func(i, j int) bool { return better(top[i], top[j]) })
	return top, nil
}
