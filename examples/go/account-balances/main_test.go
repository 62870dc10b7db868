package main

import (
	"errors"
	"os"
	"testing"

	projector "projector.dev/sdk"
	"projector.dev/sdk/projectortest"
)

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

func ask(t *testing.T, name, args string) []byte {
	t.Helper()
	answer, err := projectortest.Query(AccountBalances{}, name, args)
	if err != nil {
		t.Fatalf("%s %s: %v", name, args, err)
	}
	return answer
}

func TestSampleEventsFoldToTheExpectedState(t *testing.T) {
	projectortest.Reset()
	sample, err := projectortest.EventsFile("accounts", "../../events/accounts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if err := projectortest.Handle(AccountBalances{}, sample); err != nil {
		t.Fatal(err)
	}
	expected, err := os.ReadFile("../../events/accounts.expected.json")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, stateJSON(t), string(expected))

	if got, want := string(ask(t, "balance", `{"account": "acc-300"}`)), string(projectortest.State()["account/acc-300"]); got != want {
		t.Fatalf("balance acc-300 = %s, stored %s", got, want)
	}
	if got := string(ask(t, "balance", `{"account": "acc-999"}`)); got != "null" {
		t.Fatalf("balance acc-999 = %s", got)
	}
	attempts := `[{"account":"acc-200","overdraft_attempts":2},{"account":"acc-300","overdraft_attempts":1},{"account":"acc-400","overdraft_attempts":1},{"account":"acc-500","overdraft_attempts":1},{"account":"acc-600","overdraft_attempts":1}]`
	for _, args := range []string{"", "{}", " \n", "[]"} {
		if got := string(ask(t, "overdrawn-attempts", args)); got != attempts {
			t.Fatalf("overdrawn-attempts %q = %s", args, got)
		}
	}
}

func TestOverdraftsAreCountedNotApplied(t *testing.T) {
	projectortest.Reset()
	err := projectortest.Handle(AccountBalances{}, projectortest.Events("accounts",
		`{"type": "Deposited", "account": "a", "amount_cents": 100}`,
		`{"type": "Withdrawn", "account": "a", "amount_cents": 101}`,
		`{"type": "Withdrawn", "account": "a", "amount_cents": 100}`,
		`{"type": "AccountOpened", "account": "a", "owner": "ann"}`,
		`{"type": "AccountOpened", "account": "a", "owner": "bea"}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"owner":"ann","balance_cents":0,"deposits":1,"withdrawals":1,"overdraft_attempts":1,"overdraft_attempted_cents":101}`
	if got := string(projectortest.State()["account/a"]); got != want {
		t.Fatalf("got %s", got)
	}
	// Money before the account is opened: owner null.
	projectortest.Reset()
	if err := projectortest.Handle(AccountBalances{}, projectortest.Events("accounts",
		`{"type": "Deposited", "account": "b", "amount_cents": 18446744073709551615}`)); err != nil {
		t.Fatal(err)
	}
	want = `{"owner":null,"balance_cents":18446744073709551615,"deposits":1,"withdrawals":0,"overdraft_attempts":0,"overdraft_attempted_cents":0}`
	if got := string(projectortest.State()["account/b"]); got != want {
		t.Fatalf("got %s", got)
	}
	err = projectortest.Handle(AccountBalances{}, projectortest.Events("accounts",
		`{"type": "Deposited", "account": "b", "amount_cents": 1}`))
	if err == nil {
		t.Fatal("overflow accepted")
	}
}

func TestBadAmountsFailAndUnknownTypesAreSkipped(t *testing.T) {
	projectortest.Reset()
	if err := projectortest.Handle(AccountBalances{}, projectortest.Events("accounts",
		`{"type": "InterestAccrued", "account": 1, "rate": "high"}`)); err != nil {
		t.Fatal(err)
	}
	sameJSON(t, stateJSON(t), `{}`)
	for _, payload := range []string{
		`{"type": "Deposited", "account": "a", "amount_cents": -1}`,
		`{"type": "Withdrawn", "account": "a", "amount_cents": 1.5}`,
		`{"type": "Deposited", "account": "a", "amount_cents": "10"}`,
		`{"type": "Deposited", "account": "a", "amount_cents": 1e1}`,
		`{"type": "Deposited", "account": "a"}`,
		`{"type": "AccountOpened", "account": "a"}`,
		`{"type": "AccountOpened", "account": "a", "owner": null}`,
		`["Deposited"]`,
		`"Deposited"`,
	} {
		err := projectortest.Handle(AccountBalances{}, projectortest.Events("accounts", payload))
		var failed *projector.HandleError
		if !errors.As(err, &failed) || failed.Index != 0 {
			t.Fatalf("%s: %v", payload, err)
		}
		sameJSON(t, stateJSON(t), `{}`)
	}
}

func TestQueriesCheckTheirArguments(t *testing.T) {
	projectortest.Reset()
	for _, c := range [][2]string{
		{"balance", ""},
		{"balance", `{"account": 5}`},
		{"overdrawn-attempts", `{"limit": 5}`},
		{"overdrawn-attempts", "nonsense"},
		{"overdrawn-attempts", "[1]"},
		{"overdrawn-attempts", "null"},
	} {
		_, err := projectortest.Query(AccountBalances{}, c[0], c[1])
		var qe *projector.QueryError
		if !errors.As(err, &qe) || qe.Kind != projector.BadArgsKind {
			t.Fatalf("%s %s: %v", c[0], c[1], err)
		}
	}
	if got := string(ask(t, "balance", `["a"]`)); got != "null" {
		t.Fatalf(`balance ["a"] = %s`, got)
	}
	if _, err := projectortest.Query(AccountBalances{}, "balances", "{}"); !errors.Is(err, projector.ErrUnknownQuery) {
		t.Fatalf("balances: %v", err)
	}
}
