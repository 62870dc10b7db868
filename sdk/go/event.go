package projector

import (
	"fmt"
	"time"
	"unicode/utf8"

	"projector.dev/sdk/codec"
)

// Event is one record of a stream, the same for every source (embedded log
// or Kafka). Order is guaranteed within a partition only.
type Event struct {
	// Source is the stream name: the topic.
	Source string
	// Partition within the topic.
	Partition uint32
	// Offset is the position of this record within its partition.
	Offset uint64
	// Key is the record key: nil when the producer set none (HasKey
	// tells an absent key from an empty one).
	Key []byte
	// Payload is the record value: nil is a tombstone (a Kafka null
	// value), an empty payload is a non-nil empty slice. JSON by
	// convention.
	Payload []byte
	// TimestampMs is the producer or broker timestamp, milliseconds since
	// the Unix epoch; the same on replay as on the live run.
	TimestampMs int64
	// Headers in the order the producer set them.
	Headers []Header
}

// Header is one record header.
type Header struct {
	Name  string
	Value []byte
}

// IsTombstone reports whether the event has no payload (a Kafka null value).
func (e *Event) IsTombstone() bool { return e.Payload == nil }

// HasKey reports whether the producer set a key (possibly empty).
func (e *Event) HasKey() bool { return e.Key != nil }

// KeyString returns the key as text; ok is false when the event has no key
// or the key is not valid UTF-8 (the raw bytes are in Key).
func (e *Event) KeyString() (key string, ok bool) {
	if e.Key == nil || !utf8.Valid(e.Key) {
		return "", false
	}
	return string(e.Key), true
}

// Header returns the value of the first header called name.
func (e *Event) Header(name string) ([]byte, bool) {
	for _, h := range e.Headers {
		if h.Name == name {
			return h.Value, true
		}
	}
	return nil, false
}

// Time is the timestamp as a time.Time (UTC).
func (e *Event) Time() time.Time { return time.UnixMilli(e.TimestampMs).UTC() }

// Position is `source/partition@offset`, to name the event in messages.
func (e *Event) Position() string {
	return fmt.Sprintf("%s/%d@%d", e.Source, e.Partition, e.Offset)
}

// PayloadJSON decodes the payload from JSON into *v, by serde's rules (see
// package codec). Fails, naming the event and the type, when the event is a
// tombstone or the payload is not valid JSON for *v.
func (e *Event) PayloadJSON(v any) error {
	if e.Payload == nil {
		return fmt.Errorf("event %s has no payload (tombstone), expected JSON for %T", e.Position(), v)
	}
	if err := codec.Unmarshal(e.Payload, v); err != nil {
		return fmt.Errorf("event %s payload is not valid JSON for %T: %w", e.Position(), v, err)
	}
	return nil
}
