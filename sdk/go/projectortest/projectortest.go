//go:build !wasip1

// Package projectortest runs a projection natively, without a host, for
// unit tests with go test.
//
// State is one in-memory map for the test binary (tests that use it must not
// run in parallel). Handle and Query follow the host's rules: a failed batch
// leaves no trace, and state is read-only during a query (a write panics, as
// it traps on the host).
//
//	projectortest.Reset()
//	err := projectortest.Handle(Counter{}, projectortest.Events("orders", `{}`, `{}`))
//	// err == nil; projectortest.State() == map[string][]byte{"count": []byte("2")}
package projectortest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"

	projector "projector.dev/sdk"
	"projector.dev/sdk/codec"
	"projector.dev/sdk/internal/host"
)

// Event is an event on partition 0 with no key, no headers and timestamp 0.
func Event(source string, offset uint64, payload string) projector.Event {
	return projector.Event{Source: source, Offset: offset, Payload: append([]byte{}, payload...)}
}

// Tombstone is an event without payload.
func Tombstone(source string, offset uint64) projector.Event {
	return projector.Event{Source: source, Offset: offset}
}

// Events are payloads as events at offsets 0, 1, 2, ...
func Events(source string, payloads ...string) []projector.Event {
	out := make([]projector.Event, len(payloads))
	for i, p := range payloads {
		out[i] = Event(source, uint64(i), p)
	}
	return out
}

// JSONEvents encodes values with package codec (serde's output) and makes
// them events at offsets 0, 1, 2, ...
func JSONEvents(source string, values ...any) ([]projector.Event, error) {
	out := make([]projector.Event, len(values))
	for i, v := range values {
		payload, err := codec.Marshal(v)
		if err != nil {
			return nil, err
		}
		out[i] = projector.Event{Source: source, Offset: uint64(i), Payload: payload}
	}
	return out, nil
}

// EventsFile reads a JSON Lines file: one event per line (empty lines
// skipped), at offsets 0, 1, 2, ...
func EventsFile(source, path string) ([]projector.Event, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []projector.Event
	scanner := bufio.NewScanner(bytes.NewReader(data))
	scanner.Buffer(nil, len(data)+1)
	for scanner.Scan() {
		line := bytes.TrimSpace(scanner.Bytes())
		if len(line) == 0 {
			continue
		}
		out = append(out, Event(source, uint64(len(out)), string(line)))
	}
	return out, scanner.Err()
}

// Handle applies a batch as the host does: on failure every state change of
// the batch is undone and the error is a *projector.HandleError naming the
// failing event's index.
func Handle(p projector.Projection, events []projector.Event) error {
	before := host.Snapshot()
	if failed := projector.HandleBatch(p, events); failed != nil {
		host.Restore(before)
		return failed
	}
	return nil
}

// Query runs a custom query with state read-only, as the host does. The
// error, if any, is a *projector.QueryError.
func Query(p projector.Projection, name string, args string) ([]byte, error) {
	host.SetReadOnly(true)
	defer host.SetReadOnly(false)
	answer, err := projector.RunQuery(p, name, []byte(args))
	if err != nil {
		return nil, err
	}
	return answer, nil
}

// Describe returns p's descriptor after checking it as the host would.
func Describe(p projector.Projection) (projector.Descriptor, error) {
	d := p.Describe()
	return d, projector.Check(d)
}

// Reset empties the state.
func Reset() { host.Restore(map[string][]byte{}) }

// State is a copy of the state, raw.
func State() map[string][]byte { return host.Snapshot() }

// Put stores a raw value, to set up state before a test.
func Put(key string, value []byte) { host.Put(key, value) }

// StateJSON is the state as one JSON object mapping each key to its value,
// keys in ascending order. Fails when a key is not UTF-8 or a value is not
// JSON.
func StateJSON() ([]byte, error) {
	state := host.Snapshot()
	keys := make([]string, 0, len(state))
	for k := range state {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []byte{'{'}
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		var raw codec.Raw
		if err := codec.Unmarshal(state[k], &raw); err != nil {
			return nil, fmt.Errorf("state key `%s` is not JSON: %w", k, err)
		}
		key, err := codec.Marshal(k)
		if err != nil {
			return nil, fmt.Errorf("state key %q is not UTF-8", k)
		}
		out = append(out, key...)
		out = append(out, ':')
		out = append(out, bytes.TrimSpace(raw)...)
	}
	return append(out, '}'), nil
}

// SameJSON reports whether two JSON texts hold the same value (object key
// order and whitespace aside; numbers compared by their text).
func SameJSON(a, b []byte) (bool, error) {
	x, err := decodeLoose(a)
	if err != nil {
		return false, err
	}
	y, err := decodeLoose(b)
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(x, y), nil
}

func decodeLoose(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}
