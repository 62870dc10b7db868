// Package projector writes Projector projections in Go.
//
// A projection is a deterministic fold of events into key/value state. You
// implement Projection on a type: describe the projection (name, topics,
// state version, queries), handle one Event at a time, and answer custom
// queries. Register it with Export from an init function of package main,
// and build a WebAssembly core module with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o name.wasm .
//
// The module follows the core-module ABI (wit/core-abi.md), the lower-level
// encoding of wit/projection.wit for languages that cannot build a
// component: the host hands over events in batches, the SDK calls Handle
// once per event and reports the first failure with its index in the batch,
// after which the host discards every state change of that batch. State
// lives in the host: read and write it through package state. Package log
// writes log lines; package codec reads and writes JSON as serde_json does.
//
// Off wasm, state is an in-memory map and log lines go to stderr, so a
// projection is unit-tested with plain go test (see package projectortest).
package projector

import (
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
)

// Descriptor is what a projection says about itself; the host reads it once
// when the module is loaded.
type Descriptor struct {
	// Name in URLs and on the CLI: lowercase ASCII letters, digits and `-`,
	// 1 to 64 characters.
	Name string `json:"name"`
	// Free-form version label shown in status.
	Version string `json:"version"`
	// Topics this projection consumes, at least one.
	Sources []string `json:"sources"`
	// Version of the state layout. Bump it when the new code needs its
	// state rebuilt by replaying the streams from the start; keep it when
	// only queries or logging changed.
	StateVersion uint32 `json:"state_version"`
	// Names of the custom queries Query answers.
	Queries []string `json:"queries"`
}

// Projection is an event-sourcing projection: a deterministic fold of events
// into state.
//
// Everything a projection knows between events lives in package state; the
// type implementing this interface should carry no data that changes.
// Replaying the same events into empty state must rebuild the same state, so
// Handle must depend on nothing but the event and the state.
type Projection interface {
	// Describe names the projection and what it reads and answers. It
	// must not touch state.
	Describe() Descriptor

	// Handle applies one event. An error fails the event: the host
	// discards the state changes of the whole batch and applies the
	// projection's error policy. A panic fails the event too, with the
	// panic value and the stack as message.
	Handle(event *Event) error

	// Query answers the custom query name with args (JSON by convention,
	// see ArgsJSON). State is read-only here: writing traps. Return
	// ErrUnknownQuery for a name it does not know, BadArgs(...) when the
	// arguments are not understood; any other error is a failed query.
	Query(name string, args []byte) ([]byte, error)
}

// NoQueries, embedded in a projection type, answers every query with
// ErrUnknownQuery.
type NoQueries struct{}

// Query knows no query.
func (NoQueries) Query(string, []byte) ([]byte, error) { return nil, ErrUnknownQuery }

// HandleError says why a batch failed: the index of the failing event in the
// batch and the message.
type HandleError struct {
	Index   uint32
	Message string
}

func (e *HandleError) Error() string {
	return fmt.Sprintf("event %d of the batch failed: %s", e.Index, e.Message)
}

var exported Projection

var namePattern = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// Export makes p the projection this module exports. Call it once, from an
// init function of package main:
//
//	func init() { projector.Export(OrderTotals{}) }
//
// It panics (the module then fails to load, naming the problem) when p's
// descriptor is invalid.
func Export(p Projection) {
	if err := Check(p.Describe()); err != nil {
		panic("projector.Export: " + err.Error())
	}
	exported = p
}

// Check reports what is wrong with a descriptor, as the host would.
func Check(d Descriptor) error {
	if !namePattern.MatchString(d.Name) {
		return fmt.Errorf("name %q must be 1 to 64 lowercase ASCII letters, digits or '-'", d.Name)
	}
	if len(d.Sources) == 0 {
		return fmt.Errorf("projection %s names no sources", d.Name)
	}
	return nil
}

// HandleBatch runs a batch event by event, stopping at the first failure,
// which it reports with the event's index. It does not undo the writes of
// the events before (the host discards the batch's writes; projectortest
// does too).
func HandleBatch(p Projection, events []Event) *HandleError {
	for i := range events {
		if err := handleOne(p, &events[i]); err != nil {
			return &HandleError{Index: uint32(i), Message: err.Error()}
		}
	}
	return nil
}

func handleOne(p Projection, event *Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if isTrap(r) {
				panic(r)
			}
			err = fmt.Errorf("event %s: panic: %v\n%s", event.Position(), r, debug.Stack())
		}
	}()
	return p.Handle(event)
}

// RunQuery runs p.Query and sorts its error into a *QueryError: a panic or
// an error that is not a *QueryError is a failed query.
func RunQuery(p Projection, name string, args []byte) (answer []byte, err *QueryError) {
	defer func() {
		if r := recover(); r != nil {
			if isTrap(r) {
				panic(r)
			}
			err = Failed(fmt.Sprintf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	answer, e := p.Query(name, args)
	if e == nil {
		if answer == nil {
			answer = []byte{}
		}
		return answer, nil
	}
	var qe *QueryError
	if errors.As(e, &qe) {
		return nil, qe
	}
	return nil, Failed(e.Error())
}

// isTrap recognises the testing stand-in's panic for a host trap (a write
// during a query), which must not be turned into an error.
func isTrap(r any) bool {
	type trap interface{ Error() string }
	t, ok := r.(trap)
	if !ok {
		return false
	}
	return fmt.Sprintf("%T", t) == "host.Trap"
}
