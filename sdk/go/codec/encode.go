package codec

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Marshal encodes v as serde_json writes the same Rust value: compact, struct
// fields in declaration order, strings with only `"`, `\` and control
// characters escaped (UTF-8, `<>&` and U+2028/U+2029 as they are), floats
// as Rust prints them (`1.0`, `1e20`), non-finite floats as null, nil
// pointers and interfaces as null, nil slices as `[]`, nil maps as `{}`,
// map keys in ascending byte order (as a BTreeMap), []byte as an array of
// numbers (as Vec<u8>).
//
// A string that is not valid UTF-8 cannot be written (Rust strings are
// always UTF-8), nor can maps whose keys are not strings, channels or
// functions.
func Marshal(v any) ([]byte, error) {
	return Append(nil, v)
}

// Append is Marshal appending to buf.
func Append(buf []byte, v any) ([]byte, error) {
	e := encoder{buf: buf}
	if err := e.value(reflect.ValueOf(v)); err != nil {
		return nil, err
	}
	return e.buf, nil
}

type encoder struct {
	buf   []byte
	depth int
}

func (e *encoder) value(v reflect.Value) error {
	if !v.IsValid() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	t := v.Type()
	if t == rawType {
		if v.Len() == 0 {
			e.buf = append(e.buf, "null"...)
		} else {
			e.buf = append(e.buf, v.Bytes()...)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		e.depth++
		if e.depth > 1000 {
			return fmt.Errorf("cannot encode as JSON: nesting over 1000 levels (a cycle?)")
		}
		err := e.value(v.Elem())
		e.depth--
		return err
	case reflect.Bool:
		e.buf = strconv.AppendBool(e.buf, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
	case reflect.Float32:
		e.buf = appendFloat(e.buf, v.Float(), 32)
	case reflect.Float64:
		e.buf = appendFloat(e.buf, v.Float(), 64)
	case reflect.String:
		return e.str(v.String())
	case reflect.Slice, reflect.Array:
		e.buf = append(e.buf, '[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return fmt.Errorf("cannot encode %s as JSON: key must be a string", t)
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int {
			x, y := a.String(), b.String()
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		})
		e.buf = append(e.buf, '{')
		for i, k := range keys {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.str(k.String()); err != nil {
				return err
			}
			e.buf = append(e.buf, ':')
			if err := e.value(v.MapIndex(k)); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, '}')
	case reflect.Struct:
		info := infoOf(t)
		if info.err != nil {
			return info.err
		}
		e.buf = append(e.buf, '{')
		first := true
		for _, f := range info.fields {
			fv := v.Field(f.index)
			if f.omitEmpty && isEmpty(fv) {
				continue
			}
			if !first {
				e.buf = append(e.buf, ',')
			}
			first = false
			if err := e.str(f.name); err != nil {
				return err
			}
			e.buf = append(e.buf, ':')
			if err := e.value(fv); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, '}')
	default:
		return fmt.Errorf("cannot encode %s as JSON", t)
	}
	return nil
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.String, reflect.Array:
		return v.Len() == 0
	}
	return v.IsZero()
}

const hex = "0123456789abcdef"

// str writes s as serde_json does.
func (e *encoder) str(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("cannot encode %q as JSON: not valid UTF-8", s)
	}
	e.buf = AppendString(e.buf, s)
	return nil
}

// AppendString appends s (assumed valid UTF-8) as a JSON string, escaped as
// serde_json escapes it.
func AppendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"':
			buf = append(buf, '\\', '"')
		case '\\':
			buf = append(buf, '\\', '\\')
		case '\b':
			buf = append(buf, '\\', 'b')
		case '\f':
			buf = append(buf, '\\', 'f')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

func formatFloat(f float64, bits int) string {
	return string(appendFloat(nil, f, bits))
}

// appendFloat writes f as Rust's ryu does (what serde_json writes): the
// shortest digits that read back, `1.0` for whole numbers, scientific
// notation (`1e20`, `1.5e-7`) outside a fixed range; null when not finite.
func appendFloat(buf []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(buf, "null"...)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(buf, "-0.0"...)
		}
		return append(buf, "0.0"...)
	}
	if f < 0 {
		buf = append(buf, '-')
		f = -f
	}
	// d.ddddde±XX: the shortest digits and the decimal exponent.
	sci := strconv.FormatFloat(f, 'e', -1, bits)
	mant, exp, _ := cut(sci, 'e')
	digits := make([]byte, 0, len(mant))
	for i := 0; i < len(mant); i++ {
		if mant[i] != '.' {
			digits = append(digits, mant[i])
		}
	}
	e10, _ := strconv.Atoi(exp)
	length := len(digits)
	k := e10 - (length - 1) // value = digits × 10^k
	kk := length + k        // 10^(kk-1) <= value < 10^kk
	maxFixed, minFixed := 16, -5
	if bits == 32 {
		maxFixed, minFixed = 13, -6
	}
	switch {
	case 0 <= k && kk <= maxFixed:
		buf = append(buf, digits...)
		for i := 0; i < k; i++ {
			buf = append(buf, '0')
		}
		buf = append(buf, '.', '0')
	case 0 < kk && kk <= maxFixed:
		buf = append(buf, digits[:kk]...)
		buf = append(buf, '.')
		buf = append(buf, digits[kk:]...)
	case minFixed < kk && kk <= 0:
		buf = append(buf, '0', '.')
		for i := 0; i < -kk; i++ {
			buf = append(buf, '0')
		}
		buf = append(buf, digits...)
	case length == 1:
		buf = append(buf, digits[0], 'e')
		buf = strconv.AppendInt(buf, int64(kk-1), 10)
	default:
		buf = append(buf, digits[0], '.')
		buf = append(buf, digits[1:]...)
		buf = append(buf, 'e')
		buf = strconv.AppendInt(buf, int64(kk-1), 10)
	}
	return buf
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
