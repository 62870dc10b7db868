//go:build !wasip1

package host

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
)

// Off wasm there is no host: an in-memory map stands in for the state, and
// log lines go to stderr. The projectortest package drives it.

var (
	mu       sync.Mutex
	store    = map[string][]byte{}
	readOnly bool
)

// Trap is the panic value of what would trap on the host (a write during a
// query).
type Trap string

func (t Trap) Error() string { return string(t) }

func Get(key string) ([]byte, bool) {
	mu.Lock()
	defer mu.Unlock()
	v, ok := store[key]
	if !ok {
		return nil, false
	}
	return append(make([]byte, 0, len(v)), v...), true
}

func writable() {
	if readOnly {
		panic(Trap("state is read-only while a query runs"))
	}
}

func Put(key string, value []byte) {
	mu.Lock()
	defer mu.Unlock()
	writable()
	store[key] = append(make([]byte, 0, len(value)), value...)
}

func Delete(key string) {
	mu.Lock()
	defer mu.Unlock()
	writable()
	delete(store, key)
}

func Scan(prefix string, after *string, limit uint32) []Entry {
	mu.Lock()
	defer mu.Unlock()
	keys := make([]string, 0)
	for k := range store {
		if strings.HasPrefix(k, prefix) && (after == nil || k > *after) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if uint64(len(keys)) > uint64(limit) {
		keys = keys[:limit]
	}
	entries := make([]Entry, len(keys))
	for i, k := range keys {
		entries[i] = Entry{Key: k, Value: append([]byte(nil), store[k]...)}
	}
	return entries
}

var levels = [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}

func Log(level int32, message string) {
	if level < 0 || int(level) >= len(levels) {
		level = 4
	}
	fmt.Fprintf(os.Stderr, "[%s] %s\n", levels[level], message)
}

// Snapshot is a copy of the state.
func Snapshot() map[string][]byte {
	mu.Lock()
	defer mu.Unlock()
	out := make(map[string][]byte, len(store))
	for k, v := range store {
		out[k] = append([]byte(nil), v...)
	}
	return out
}

// Restore replaces the state with a snapshot.
func Restore(snapshot map[string][]byte) {
	mu.Lock()
	defer mu.Unlock()
	store = snapshot
	readOnly = false
}

// SetReadOnly makes writes panic with a Trap.
func SetReadOnly(on bool) {
	mu.Lock()
	defer mu.Unlock()
	readOnly = on
}
