package main

import (
	"errors"
	"os"
	"testing"

	projector "projector.dev/sdk"
	"projector.dev/sdk/projectortest"
)

func TestSampleEventsGiveTheExpectedState(t *testing.T) {
	projectortest.Reset()
	events, err := projectortest.EventsFile("events", "events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if err := projectortest.Handle(Projection{}, events); err != nil {
		t.Fatal(err)
	}
	got, err := projectortest.StateJSON()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("expected.json")
	if err != nil {
		t.Fatal(err)
	}
	if same, err := projectortest.SameJSON(got, want); err != nil || !same {
		t.Fatalf("state %s\nwant %s (%v)", got, want, err)
	}
}

func TestCountQuery(t *testing.T) {
	projectortest.Reset()
	if err := projectortest.Handle(Projection{}, projectortest.Events("events",
		`{"type": "signed-up", "user": "ann"}`,
		`{"type": "signed-up", "user": "bob"}`,
	)); err != nil {
		t.Fatal(err)
	}
	for args, want := range map[string]string{
		`{"type": "signed-up"}`: `{"count":2}`,
		`{"type": "never"}`:     `null`,
	} {
		got, err := projectortest.Query(Projection{}, "count", args)
		if err != nil || string(got) != want {
			t.Fatalf("count %s = %s (%v), want %s", args, got, err, want)
		}
	}
	_, err := projectortest.Query(Projection{}, "count", `{"type": 5}`)
	var qe *projector.QueryError
	if !errors.As(err, &qe) || qe.Kind != projector.BadArgsKind {
		t.Fatalf("bad args: %v", err)
	}
	if _, err := projectortest.Query(Projection{}, "other", ""); !errors.Is(err, projector.ErrUnknownQuery) {
		t.Fatalf("unknown query: %v", err)
	}
}

func TestAnEventWithoutATypeFailsAndLeavesNoTrace(t *testing.T) {
	projectortest.Reset()
	err := projectortest.Handle(Projection{}, projectortest.Events("events",
		`{"type": "a"}`, `{"kind": "b"}`))
	var failed *projector.HandleError
	if !errors.As(err, &failed) || failed.Index != 1 {
		t.Fatalf("got %v", err)
	}
	if len(projectortest.State()) != 0 {
		t.Fatal("the failed batch left state behind")
	}
}
