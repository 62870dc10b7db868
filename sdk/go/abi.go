package projector

import (
	"encoding/binary"
	"errors"
)

// The encodings of the core-module ABI (wit/core-abi.md), shared by the
// wasip1 exports and the tests.

var errShort = errors.New("batch ends early")

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n uint64) []byte {
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errShort
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() byte {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (r *reader) bytes() []byte { return r.take(uint64(r.u32())) }

// DecodeBatch reads the Batch layout. Slices alias b.
func DecodeBatch(b []byte) ([]Event, error) {
	r := reader{b: b}
	count := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	if uint64(count) > uint64(len(b)) {
		return nil, errShort
	}
	events := make([]Event, count)
	for i := range events {
		e := &events[i]
		e.Source = string(r.bytes())
		e.Partition = r.u32()
		e.Offset = r.u64()
		if r.u8() == 1 {
			e.Key = r.bytes()
		}
		if r.u8() == 1 {
			e.Payload = r.bytes()
		}
		e.TimestampMs = int64(r.u64())
		n := r.u32()
		if r.err == nil && uint64(n) > uint64(len(r.b)) {
			r.err = errShort
		}
		if r.err != nil {
			return nil, r.err
		}
		if n > 0 {
			e.Headers = make([]Header, n)
			for j := range e.Headers {
				e.Headers[j] = Header{Name: string(r.bytes()), Value: r.bytes()}
			}
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	return events, nil
}

// EncodeBatch writes the Batch layout (for tests and tools).
func EncodeBatch(events []Event) []byte {
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(len(events)))
	put := func(x []byte) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(x)))
		b = append(b, x...)
	}
	for _, e := range events {
		put([]byte(e.Source))
		b = binary.LittleEndian.AppendUint32(b, e.Partition)
		b = binary.LittleEndian.AppendUint64(b, e.Offset)
		for _, x := range [][]byte{e.Key, e.Payload} {
			if x == nil {
				b = append(b, 0)
			} else {
				b = append(b, 1)
				put(x)
			}
		}
		b = binary.LittleEndian.AppendUint64(b, uint64(e.TimestampMs))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Headers)))
		for _, h := range e.Headers {
			put([]byte(h.Name))
			put(h.Value)
		}
	}
	return b
}

// encodeHandleError: u32 index, then the message.
func encodeHandleError(e *HandleError) []byte {
	b := binary.LittleEndian.AppendUint32(nil, e.Index)
	return append(b, e.Message...)
}

// encodeQueryResult: u8 tag (0 ok, 1 unknown-query, 2 bad-args, 3 failed),
// then the answer or the message.
func encodeQueryResult(answer []byte, err *QueryError) []byte {
	if err == nil {
		return append([]byte{0}, answer...)
	}
	switch err.Kind {
	case UnknownQuery:
		return []byte{1}
	case BadArgsKind:
		return append([]byte{2}, err.Message...)
	}
	return append([]byte{3}, err.Message...)
}
