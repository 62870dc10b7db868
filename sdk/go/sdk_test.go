package projector_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	projector "projector.dev/sdk"
	"projector.dev/sdk/projectortest"
	"projector.dev/sdk/state"
)

type thing struct {
	N uint32 `json:"n"`
}

func TestPayloadJSONNamesTheEventAndTheProblem(t *testing.T) {
	e := projectortest.Event("t", 4, `{"n": 1}`)
	var x thing
	if err := e.PayloadJSON(&x); err != nil || x.N != 1 {
		t.Fatal(x, err)
	}
	e = projectortest.Event("t", 5, "nope")
	if err := e.PayloadJSON(&x); err == nil || !strings.HasPrefix(err.Error(), "event t/0@5 payload is not valid JSON for *projector_test.thing") {
		t.Fatal(err)
	}
	tomb := projectortest.Tombstone("t", 6)
	if err := tomb.PayloadJSON(&x); err == nil || !strings.Contains(err.Error(), "t/0@6 has no payload (tombstone)") {
		t.Fatal(err)
	}
	empty := projectortest.Event("t", 7, "")
	if empty.IsTombstone() || !tomb.IsTombstone() || empty.PayloadJSON(&x) == nil {
		t.Fatal("empty payload vs tombstone")
	}
}

func TestKeyHeadersAndTheBatchLayout(t *testing.T) {
	e := projectortest.Event("t", 0, "")
	if _, ok := e.KeyString(); ok || e.HasKey() {
		t.Fatal("key")
	}
	e.Key = []byte("k-1")
	if k, ok := e.KeyString(); !ok || k != "k-1" {
		t.Fatal(k)
	}
	e.Key = []byte{0xff}
	if _, ok := e.KeyString(); ok {
		t.Fatal("invalid UTF-8 key as text")
	}
	e.Headers = []projector.Header{{"a", []byte("1")}, {"a", []byte("2")}}
	if v, ok := e.Header("a"); !ok || string(v) != "1" {
		t.Fatal(v)
	}
	if _, ok := e.Header("b"); ok {
		t.Fatal("header b")
	}
	e.Key = []byte{}
	e.TimestampMs = -5
	e.Partition = 3
	tomb := projectortest.Tombstone("s", 1<<40)
	events, err := projector.DecodeBatch(projector.EncodeBatch([]projector.Event{e, tomb}))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%+v", events)
	want := fmt.Sprintf("%+v", []projector.Event{e, tomb})
	if got != want || events[0].Key == nil || events[0].Payload == nil || events[1].Payload != nil || events[1].Key != nil {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	if _, err := projector.DecodeBatch([]byte{1, 0, 0, 0, 9}); err == nil {
		t.Fatal("short batch read")
	}
}

func TestJSONStateRoundTripsAndScansPage(t *testing.T) {
	projectortest.Reset()
	var x thing
	if found, err := state.GetJSON("x", &x); found || err != nil {
		t.Fatal(found, err)
	}
	if err := state.PutJSON("x", thing{3}); err != nil {
		t.Fatal(err)
	}
	if found, err := state.GetJSON("x", &x); !found || err != nil || x.N != 3 {
		t.Fatal(x, err)
	}
	state.Put("y", []byte("not json"))
	if _, err := state.GetJSON("y", &x); err == nil || !strings.HasPrefix(err.Error(), "state key `y` does not hold valid JSON") {
		t.Fatal(err)
	}
	state.Delete("x")
	if _, ok := state.Get("x"); ok {
		t.Fatal("deleted")
	}
	for _, k := range []string{"a/1", "a/2", "a/3", "b/1", "a"} {
		if err := state.PutJSON(k, k); err != nil {
			t.Fatal(err)
		}
	}
	page, err := state.ScanJSON[string]("a/", nil, 2)
	if err != nil || len(page) != 2 || page[0].Key != "a/1" || page[1].Value != "a/2" {
		t.Fatal(page, err)
	}
	after := "a/2"
	if page := state.Scan("a/", &after, 2); len(page) != 1 || page[0].Key != "a/3" {
		t.Fatal(page)
	}
	for i := 0; i < 600; i++ {
		state.Put(fmt.Sprintf("c/%04d", i), []byte("1"))
	}
	n, last := 0, ""
	for entry, err := range state.IterJSON[uint8]("c/") {
		if err != nil || entry.Key <= last {
			t.Fatal(entry, err)
		}
		last = entry.Key
		n++
	}
	if n != 600 {
		t.Fatal(n)
	}
}

type failsOnThird struct{ projector.NoQueries }

func (failsOnThird) Describe() projector.Descriptor {
	return projector.Descriptor{Name: "fails-on-third", Version: "1", Sources: []string{"t"}, StateVersion: 1}
}

func (failsOnThird) Handle(e *projector.Event) error {
	if e.Offset == 2 {
		return errors.New("third")
	}
	if e.Offset == 5 {
		var m map[string]int
		m["x"] = 1 // panics
	}
	state.Put(fmt.Sprint(e.Offset), []byte("1"))
	return nil
}

func TestAFailedBatchNamesTheEventAndLeavesNoTrace(t *testing.T) {
	projectortest.Reset()
	events := projectortest.Events("t", "", "", "", "")
	err := projectortest.Handle(failsOnThird{}, events)
	var failed *projector.HandleError
	if !errors.As(err, &failed) || failed.Index != 2 || failed.Message != "third" {
		t.Fatal(err)
	}
	if len(projectortest.State()) != 0 {
		t.Fatal("trace left")
	}
	if err := projectortest.Handle(failsOnThird{}, events[:2]); err != nil || len(projectortest.State()) != 2 {
		t.Fatal(err)
	}
	// A panic fails the event too.
	err = projectortest.Handle(failsOnThird{}, []projector.Event{projectortest.Event("t", 5, "")})
	if !errors.As(err, &failed) || failed.Index != 0 || !strings.Contains(failed.Message, "panic: assignment to entry in nil map") {
		t.Fatal(err)
	}
	if _, err := projectortest.Query(failsOnThird{}, "anything", ""); !errors.Is(err, projector.ErrUnknownQuery) {
		t.Fatal(err)
	}
}

type writesInQuery struct{ failsOnThird }

func (writesInQuery) Query(string, []byte) ([]byte, error) {
	state.Put("k", []byte("v"))
	return nil, nil
}

func TestStateIsReadOnlyInQueries(t *testing.T) {
	projectortest.Reset()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("a write in a query did not trap")
			}
		}()
		projectortest.Query(writesInQuery{}, "q", "")
	}()
	state.Put("k", []byte("v")) // writable again
}

func TestQueryArgsAndReplies(t *testing.T) {
	type optional struct {
		N uint32 `json:"n,default"`
	}
	var o optional
	for _, in := range []string{"", " \n", `{"n": 2}`} {
		if err := projector.ArgsJSON([]byte(in), &o); err != nil {
			t.Fatal(in, err)
		}
	}
	if o.N != 2 {
		t.Fatal(o)
	}
	var x thing
	err := projector.ArgsJSON(nil, &x)
	var qe *projector.QueryError
	if !errors.As(err, &qe) || qe.Kind != projector.BadArgsKind || !strings.Contains(qe.Message, "missing field `n`") {
		t.Fatal(err)
	}
	if out, err := projector.ReplyJSON([]int{1}); err != nil || string(out) != "[1]" {
		t.Fatal(out, err)
	}
	if err := projector.Check(projector.Descriptor{Name: "Bad", Sources: []string{"t"}}); err == nil {
		t.Fatal("bad name accepted")
	}
}
