//go:build wasip1

package projector

import (
	"fmt"
	"unsafe"

	"projector.dev/sdk/codec"
)

// The exports of the core-module ABI, version 1.

// inputs are the buffers the host asked for with projector_alloc, kept alive
// until the entry point that reads them returns.
var inputs [][]byte

// result is the last answer handed to the host; it must outlive the call
// that returned it.
var result []byte

func pack(b []byte) int64 {
	result = b
	ptr := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	return int64(ptr<<32 | uint64(uint32(len(b))))
}

// input finds the buffer the host filled at ptr.
func input(ptr, n int32) []byte {
	for _, b := range inputs {
		if int32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) == ptr && int32(len(b)) >= n {
			return b[:n:n]
		}
	}
	panic(fmt.Sprintf("projector: the host passed %d bytes at %d, not a buffer from projector_alloc", n, ptr))
}

func projection() Projection {
	if exported == nil {
		panic("projector: no projection exported: call projector.Export from an init function of package main")
	}
	return exported
}

//go:wasmexport projector_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport projector_alloc
func alloc(n int32) int32 {
	b := make([]byte, max(n, 1))[:n]
	inputs = append(inputs, b)
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

//go:wasmexport projector_describe
func describe() int64 {
	defer func() { inputs = nil }()
	d := projection().Describe()
	if d.Queries == nil {
		d.Queries = []string{}
	}
	out, err := codec.Marshal(d)
	if err != nil {
		panic("projector: cannot encode the descriptor: " + err.Error())
	}
	return pack(out)
}

//go:wasmexport projector_handle
func handle(ptr, n int32) int64 {
	defer func() { inputs = nil }()
	events, err := DecodeBatch(input(ptr, n))
	if err != nil {
		panic("projector: cannot read the batch: " + err.Error())
	}
	if failed := HandleBatch(projection(), events); failed != nil {
		return pack(encodeHandleError(failed))
	}
	result = nil
	return 0
}

//go:wasmexport projector_query
func query(namePtr, nameLen, argsPtr, argsLen int32) int64 {
	defer func() { inputs = nil }()
	name := string(input(namePtr, nameLen))
	args := input(argsPtr, argsLen)
	answer, err := RunQuery(projection(), name, args)
	return pack(encodeQueryResult(answer, err))
}
