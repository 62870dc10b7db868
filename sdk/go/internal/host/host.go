// Package host is the SDK's access to the Projector host: the core-module
// ABI imports on wasip1, an in-memory stand-in elsewhere (for go test).
package host

// Entry is one key/value pair returned by Scan.
type Entry struct {
	Key   string
	Value []byte
}
