// Package state is the projection's own key/value state, kept by the host.
//
// Keys are ordered bytewise (a Go string may hold any bytes). Writes become
// durable when the batch commits; a failed batch leaves no trace. Reads see
// the writes of earlier events in the same batch. During a query state is
// read-only: a write traps.
//
// The JSON helpers store values as serde_json would (see package codec), so
// that state is readable over HTTP whatever language wrote it, and a Go
// projection writes the same bytes as its Rust twin. Get, Put, Delete, Scan
// and Iter work on raw bytes.
package state

import (
	"fmt"
	"iter"

	"projector.dev/sdk/codec"
	"projector.dev/sdk/internal/host"
)

// Page is the number of entries Iter and IterJSON fetch per host call.
const Page = 256

// Entry is a key and its raw value.
type Entry = host.Entry

// JSONEntry is a key and its value decoded from JSON.
type JSONEntry[T any] struct {
	Key   string
	Value T
}

// Get returns the value stored under key, and whether there was one.
func Get(key string) ([]byte, bool) { return host.Get(key) }

// Put stores value under key. Traps during a query, and when the key or
// value exceeds the host's size limits.
func Put(key string, value []byte) { host.Put(key, value) }

// Delete removes key if present. Traps during a query.
func Delete(key string) { host.Delete(key) }

// Scan returns up to limit entries whose key starts with prefix, in
// ascending key order, strictly after *startAfter when it is not nil.
//
// The host may return fewer than limit entries even when more exist: page
// by passing the last key returned as the next startAfter until a page comes
// back empty, or use Iter.
func Scan(prefix string, startAfter *string, limit uint32) []Entry {
	return host.Scan(prefix, startAfter, limit)
}

// Iter yields every entry whose key starts with prefix, in ascending key
// order, fetched from the host a page at a time.
func Iter(prefix string) iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		var after *string
		for {
			page := host.Scan(prefix, after, Page)
			if len(page) == 0 {
				return
			}
			for _, e := range page {
				if !yield(e.Key, e.Value) {
					return
				}
			}
			last := page[len(page)-1].Key
			after = &last
		}
	}
}

// GetJSON decodes the JSON value stored under key into *v. found is false
// (and *v untouched) when the key is absent; err is set when the stored
// bytes are not valid JSON for *v.
func GetJSON(key string, v any) (found bool, err error) {
	raw, ok := host.Get(key)
	if !ok {
		return false, nil
	}
	return true, decode(key, raw, v)
}

// PutJSON stores v as JSON under key. Fails when v cannot be encoded (for
// example a string that is not UTF-8); traps as Put does.
func PutJSON(key string, v any) error {
	raw, err := codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode %T as JSON for state key `%s`: %w", v, key, err)
	}
	host.Put(key, raw)
	return nil
}

// ScanJSON is Scan with values decoded from JSON into T.
func ScanJSON[T any](prefix string, startAfter *string, limit uint32) ([]JSONEntry[T], error) {
	page := host.Scan(prefix, startAfter, limit)
	out := make([]JSONEntry[T], 0, len(page))
	for _, e := range page {
		var v T
		if err := decode(e.Key, e.Value, &v); err != nil {
			return nil, err
		}
		out = append(out, JSONEntry[T]{Key: e.Key, Value: v})
	}
	return out, nil
}

// IterJSON is Iter with values decoded from JSON into T. A value that does
// not decode is yielded as an error (and iteration may go on):
//
//	for entry, err := range state.IterJSON[Customer]("customer/") {
//		if err != nil {
//			return err
//		}
//		use(entry.Key, entry.Value)
//	}
func IterJSON[T any](prefix string) iter.Seq2[JSONEntry[T], error] {
	return func(yield func(JSONEntry[T], error) bool) {
		for key, raw := range Iter(prefix) {
			var v T
			if err := decode(key, raw, &v); err != nil {
				if !yield(JSONEntry[T]{Key: key}, err) {
					return
				}
				continue
			}
			if !yield(JSONEntry[T]{Key: key, Value: v}, nil) {
				return
			}
		}
	}
}

func decode(key string, raw []byte, v any) error {
	if err := codec.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("state key `%s` does not hold valid JSON for %T: %w", key, v, err)
	}
	return nil
}
