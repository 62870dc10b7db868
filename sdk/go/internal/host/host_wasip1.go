//go:build wasip1

package host

import (
	"encoding/binary"
	"unsafe"
)

//go:wasmimport projector state_get
func stateGet(keyPtr unsafe.Pointer, keyLen int32, outPtr unsafe.Pointer, outCap int32) int64

//go:wasmimport projector state_put
func statePut(keyPtr unsafe.Pointer, keyLen int32, valuePtr unsafe.Pointer, valueLen int32)

//go:wasmimport projector state_delete
func stateDelete(keyPtr unsafe.Pointer, keyLen int32)

//go:wasmimport projector state_scan
func stateScan(prefixPtr unsafe.Pointer, prefixLen int32, afterPtr unsafe.Pointer, afterLen int32, limit int32, outPtr unsafe.Pointer, outCap int32) int64

//go:wasmimport projector log
func hostLog(level int32, ptr unsafe.Pointer, n int32)

// scratch receives what the host writes; grown when a value does not fit.
var scratch = make([]byte, 16<<10)

func str(s string) (unsafe.Pointer, int32) {
	return unsafe.Pointer(unsafe.StringData(s)), int32(len(s))
}

func bytes(b []byte) (unsafe.Pointer, int32) {
	return unsafe.Pointer(unsafe.SliceData(b)), int32(len(b))
}

func grow(n int64) {
	if n > int64(len(scratch)) {
		scratch = make([]byte, n)
	}
}

// Get reads key; the host answers into scratch, or says how big a buffer
// it needs and keeps the value for the second call.
func Get(key string) ([]byte, bool) {
	kp, kl := str(key)
	op, oc := bytes(scratch)
	n := stateGet(kp, kl, op, oc)
	if n < 0 {
		return nil, false
	}
	if n > int64(len(scratch)) {
		grow(n)
		op, oc = bytes(scratch)
		n = stateGet(kp, kl, op, oc)
		if n < 0 {
			return nil, false
		}
	}
	return append(make([]byte, 0, n), scratch[:n]...), true
}

func Put(key string, value []byte) {
	kp, kl := str(key)
	vp, vl := bytes(value)
	statePut(kp, kl, vp, vl)
}

func Delete(key string) {
	kp, kl := str(key)
	stateDelete(kp, kl)
}

func Scan(prefix string, after *string, limit uint32) []Entry {
	pp, pl := str(prefix)
	var ap unsafe.Pointer
	al := int32(-1)
	if after != nil {
		ap, al = str(*after)
	}
	lim := int32(limit)
	if limit > 1<<31-1 {
		lim = 1<<31 - 1
	}
	op, oc := bytes(scratch)
	n := stateScan(pp, pl, ap, al, lim, op, oc)
	if n > int64(len(scratch)) {
		grow(n)
		op, oc = bytes(scratch)
		n = stateScan(pp, pl, ap, al, lim, op, oc)
	}
	return decodeEntries(scratch[:n])
}

func decodeEntries(b []byte) []Entry {
	if len(b) < 4 {
		return nil
	}
	count := binary.LittleEndian.Uint32(b)
	b = b[4:]
	// One copy of everything, which the entries then share.
	own := append([]byte(nil), b...)
	entries := make([]Entry, 0, count)
	for range count {
		kl := binary.LittleEndian.Uint32(own)
		key := own[4 : 4+kl]
		own = own[4+kl:]
		vl := binary.LittleEndian.Uint32(own)
		value := own[4 : 4+vl : 4+vl]
		own = own[4+vl:]
		entries = append(entries, Entry{Key: unsafe.String(unsafe.SliceData(key), len(key)), Value: value})
	}
	return entries
}

func Log(level int32, message string) {
	p, l := str(message)
	hostLog(level, p, l)
}
