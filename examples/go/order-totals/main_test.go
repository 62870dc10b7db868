package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	projector "projector.dev/sdk"
	"projector.dev/sdk/projectortest"
)

func events(t *testing.T, lines ...string) []projector.Event {
	t.Helper()
	return projectortest.Events("orders", lines...)
}

func handle(t *testing.T, lines ...string) {
	t.Helper()
	if err := projectortest.Handle(OrderTotals{}, events(t, lines...)); err != nil {
		t.Fatal(err)
	}
}

func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	same, err := projectortest.SameJSON(got, []byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if !same {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func stateJSON(t *testing.T) []byte {
	t.Helper()
	out, err := projectortest.StateJSON()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func top(t *testing.T, n int) []byte {
	t.Helper()
	answer, err := projectortest.Query(OrderTotals{}, "top-customers", fmt.Sprintf(`{"n": %d}`, n))
	if err != nil {
		t.Fatal(err)
	}
	return answer
}

func TestSampleEventsFoldToTheExpectedState(t *testing.T) {
	projectortest.Reset()
	sample, err := projectortest.EventsFile("orders", "../../events/orders.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if err := projectortest.Handle(OrderTotals{}, sample); err != nil {
		t.Fatal(err)
	}
	expected, err := os.ReadFile("../../events/orders.expected.json")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, stateJSON(t), string(expected))
	// Byte for byte as serde writes it.
	if got := string(projectortest.State()["order/o-1001"]); got != `{"customer":"alice","amount_cents":2599,"cancelled":false}` {
		t.Fatalf("order/o-1001 = %s", got)
	}
	if got := string(top(t, 3)); got != `[{"customer":"carol","total_cents":32472},{"customer":"bob","total_cents":18490},{"customer":"dave","total_cents":18349}]` {
		t.Fatalf("top 3 = %s", got)
	}
}

func TestCancelUsesTheRememberedOrder(t *testing.T) {
	projectortest.Reset()
	handle(t,
		`{"type": "OrderPlaced", "order_id": "1", "customer": "ann", "amount_cents": 500}`,
		`{"type": "OrderPlaced", "order_id": "2", "customer": "ann", "amount_cents": 700}`,
		`{"type": "OrderCancelled", "order_id": "1", "customer": "bea", "amount_cents": 1}`,
		`{"type": "OrderCancelled", "order_id": "1"}`,
		`{"type": "OrderCancelled", "order_id": "404"}`,
		`{"type": "OrderPlaced", "order_id": "2", "customer": "bea", "amount_cents": 9}`,
	)
	sameJSON(t, stateJSON(t), `{
		"customer/ann": {"orders": 1, "total_cents": 700},
		"order/1": {"customer": "ann", "amount_cents": 500, "cancelled": true},
		"order/2": {"customer": "ann", "amount_cents": 700, "cancelled": false}
	}`)
}

func TestUnknownTypesAreSkippedAndBadPayloadsFail(t *testing.T) {
	projectortest.Reset()
	handle(t, `{"type": "OrderShipped", "order_id": 7, "carrier": ["x"]}`)
	sameJSON(t, stateJSON(t), `{}`)

	ok := `{"type": "OrderPlaced", "order_id": "ok", "customer": "a", "amount_cents": 1}`
	for _, payload := range []string{
		`{"type": "OrderPlaced", "order_id": "1", "amount_cents": 5}`,
		`{"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": -5}`,
		`{"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": 5.0}`,
		`{"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": 18446744073709551616}`,
		`{"type": "OrderPlaced", "order_id": "1", "customer": "a", "customer": "b", "amount_cents": 1}`,
		`{"type": "OrderPlaced", "order_id": "1", "customer": "\ud800", "amount_cents": 1}`,
		`{"type": "OrderCancelled"}`,
		`{"order_id": "1"}`,
		`[1, 2]`,
		`["OrderPlaced"]`,
	} {
		err := projectortest.Handle(OrderTotals{}, events(t, ok, payload))
		var failed *projector.HandleError
		if !errors.As(err, &failed) || failed.Index != 1 {
			t.Fatalf("%s: %v", payload, err)
		}
		// The failed batch left no trace.
		sameJSON(t, stateJSON(t), `{}`)
	}

	err := projectortest.Handle(OrderTotals{}, []projector.Event{projectortest.Tombstone("orders", 0)})
	var failed *projector.HandleError
	if !errors.As(err, &failed) || !strings.Contains(failed.Message, "tombstone") {
		t.Fatalf("tombstone: %v", err)
	}
}

func TestStringsAreStoredAsSerdeWritesThem(t *testing.T) {
	projectortest.Reset()
	handle(t, `{"type": "OrderPlaced", "order_id": "c7", "customer": "q\"b\\c\n\u0001\u007f\u2028/<&>\ud83d\ude00", "amount_cents": 300}`)
	want := "{\"customer\":\"q\\\"b\\\\c\\n\\u0001\x7f\u2028/<&>\U0001F600\",\"amount_cents\":300,\"cancelled\":false}"
	if got := string(projectortest.State()["order/c7"]); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestTopCustomersRanksByTotalThenID(t *testing.T) {
	projectortest.Reset()
	handle(t,
		`{"type": "OrderPlaced", "order_id": "1", "customer": "cy", "amount_cents": 300}`,
		`{"type": "OrderPlaced", "order_id": "2", "customer": "al", "amount_cents": 100}`,
		`{"type": "OrderPlaced", "order_id": "3", "customer": "bo", "amount_cents": 300}`,
		`{"type": "OrderPlaced", "order_id": "4", "customer": "di", "amount_cents": 50}`,
	)
	sameJSON(t, top(t, 10), `[
		{"customer": "bo", "total_cents": 300},
		{"customer": "cy", "total_cents": 300},
		{"customer": "al", "total_cents": 100},
		{"customer": "di", "total_cents": 50}]`)
	sameJSON(t, top(t, 2), `[{"customer": "bo", "total_cents": 300}, {"customer": "cy", "total_cents": 300}]`)
	if got := string(top(t, 0)); got != "[]" {
		t.Fatalf("top 0 = %s", got)
	}
	for _, args := range []string{`{"n": -1}`, ``, `{"n": 4294967296}`, `{"n": 1.0}`, `null`} {
		_, err := projectortest.Query(OrderTotals{}, "top-customers", args)
		var qe *projector.QueryError
		if !errors.As(err, &qe) || qe.Kind != projector.BadArgsKind {
			t.Fatalf("%q: %v", args, err)
		}
	}
	if _, err := projectortest.Query(OrderTotals{}, "top-customers", `[1]`); err != nil {
		t.Fatalf("[1]: %v", err)
	}
	if _, err := projectortest.Query(OrderTotals{}, "nope", `{}`); !errors.Is(err, projector.ErrUnknownQuery) {
		t.Fatalf("nope: %v", err)
	}
}

func TestTopCustomersPagesThroughManyCustomers(t *testing.T) {
	projectortest.Reset()
	lines := make([]string, 1000)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"type": "OrderPlaced", "order_id": "%d", "customer": "c%04d", "amount_cents": %d}`, i, i, i%7)
	}
	handle(t, lines...)
	sameJSON(t, top(t, 2), `[{"customer": "c0006", "total_cents": 6}, {"customer": "c0013", "total_cents": 6}]`)
}
