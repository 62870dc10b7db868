// Package codec reads and writes JSON by the rules of serde_json and
// `#[derive(Serialize, Deserialize)]`, so that a Go projection accepts and
// refuses the same payloads as its Rust twin and writes byte-identical state.
//
// Struct fields are named by their `json` tag (or the Go field name);
// unexported fields and fields tagged `json:"-"` are left out. Tag options:
// `omitempty` leaves a zero value out when writing (serde's
// skip_serializing_if), `default` lets the field be missing when reading
// (serde's `#[serde(default)]`). Embed [DenyUnknownFields] to refuse unknown
// fields (serde's `#[serde(deny_unknown_fields)]`).
//
// Reading, as serde does:
//   - a struct is a JSON object (field names match exactly, case included;
//     unknown fields are skipped; a known field twice is an error; a missing
//     field is an error unless it is a pointer, which reads as nil, or has
//     the `default` option), or a JSON array of its fields in order;
//   - unsigned and signed integers take JSON integers in their range only:
//     `5.0`, `5e0`, `-0`, `"5"` are refused; floats take any number;
//   - strings must be valid UTF-8 without lone surrogate escapes; a value
//     that is skipped is only checked for JSON syntax;
//   - pointers are Option: `null` is nil; slices and arrays are JSON arrays
//     ([]byte too, as serde's Vec<u8>); maps need string keys (a repeated
//     key: the last wins); `any` reads as nil, bool, uint64 (non-negative
//     integers), int64 (negative integers), float64, string, []any or
//     map[string]any, like serde_json::Value; [Raw] keeps the bytes;
//   - typed values nest at most 127 deep; skipped values at any depth;
//   - whitespace around the value is allowed, nothing else after it.
package codec

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// DenyUnknownFields, embedded in a struct, makes reading an object with a
// field the struct does not have an error.
type DenyUnknownFields struct{}

// Raw is JSON kept as it was read (checked for syntax), and written as is.
type Raw []byte

// maxDepth is serde_json's recursion limit: 127 nested arrays or objects.
const maxDepth = 128

// Unmarshal decodes the JSON in data into the value v points to.
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("codec.Unmarshal needs a non-nil pointer, got %T", v)
	}
	d := decoder{data: data}
	d.space()
	if err := d.value(rv.Elem()); err != nil {
		return err
	}
	d.space()
	if d.pos < len(d.data) {
		return d.errorf("trailing characters")
	}
	return nil
}

type decoder struct {
	data  []byte
	pos   int
	depth int
}

// Error is a decoding error with the position serde_json would name.
type Error struct {
	Msg          string
	Line, Column int
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%s at line %d column %d", e.Msg, e.Line, e.Column)
}

func (d *decoder) errorf(format string, args ...any) error {
	line, col := 1, 0
	end := d.pos
	if end > len(d.data) {
		end = len(d.data)
	}
	for _, b := range d.data[:end] {
		if b == '\n' {
			line++
			col = 0
		} else {
			col++
		}
	}
	return &Error{Msg: fmt.Sprintf(format, args...), Line: line, Column: col}
}

func (d *decoder) space() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) peek() (byte, bool) {
	d.space()
	if d.pos >= len(d.data) {
		return 0, false
	}
	return d.data[d.pos], true
}

func (d *decoder) eof() error { return d.errorf("EOF while parsing a value") }

var rawType = reflect.TypeFor[Raw]()

func (d *decoder) value(v reflect.Value) error {
	c, ok := d.peek()
	if !ok {
		return d.eof()
	}
	t := v.Type()
	if t == rawType {
		start := d.pos
		if err := d.skip(); err != nil {
			return err
		}
		v.SetBytes(append(Raw(nil), d.data[start:d.pos]...))
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if c == 'n' {
			if err := d.literal("null"); err != nil {
				return err
			}
			v.SetZero()
			return nil
		}
		elem := reflect.New(t.Elem())
		if err := d.value(elem.Elem()); err != nil {
			return err
		}
		v.Set(elem)
		return nil
	case reflect.Bool:
		switch c {
		case 't':
			if err := d.literal("true"); err != nil {
				return err
			}
			v.SetBool(true)
			return nil
		case 'f':
			if err := d.literal("false"); err != nil {
				return err
			}
			v.SetBool(false)
			return nil
		}
		return d.invalidType("a boolean")
	case reflect.String:
		if c != '"' {
			return d.invalidType("a string")
		}
		s, err := d.str()
		if err != nil {
			return err
		}
		v.SetString(s)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := d.numberFor(t)
		if err != nil {
			return err
		}
		bits := t.Bits()
		switch n.kind {
		case numU64:
			if bits < 64 && n.u >= 1<<bits {
				return d.errorf("invalid value: integer `%d`, expected %s", n.u, rustName(t))
			}
			v.SetUint(n.u)
			return nil
		case numI64:
			return d.errorf("invalid value: integer `%d`, expected %s", n.i, rustName(t))
		default:
			return d.errorf("invalid type: floating point `%s`, expected %s", formatFloat(n.f, 64), rustName(t))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := d.numberFor(t)
		if err != nil {
			return err
		}
		bits := t.Bits()
		switch n.kind {
		case numU64:
			if n.u > uint64(1)<<(bits-1)-1 {
				return d.errorf("invalid value: integer `%d`, expected %s", n.u, rustName(t))
			}
			v.SetInt(int64(n.u))
			return nil
		case numI64:
			if bits < 64 && n.i < -(int64(1)<<(bits-1)) {
				return d.errorf("invalid value: integer `%d`, expected %s", n.i, rustName(t))
			}
			v.SetInt(n.i)
			return nil
		default:
			return d.errorf("invalid type: floating point `%s`, expected %s", formatFloat(n.f, 64), rustName(t))
		}
	case reflect.Float32, reflect.Float64:
		n, err := d.numberFor(t)
		if err != nil {
			return err
		}
		switch n.kind {
		case numU64:
			v.SetFloat(float64(n.u))
		case numI64:
			v.SetFloat(float64(n.i))
		default:
			v.SetFloat(n.f)
		}
		return nil
	case reflect.Slice, reflect.Array:
		if c != '[' {
			return d.invalidType("a sequence")
		}
		return d.seq(v)
	case reflect.Map:
		if c != '{' {
			return d.invalidType("a map")
		}
		return d.mapValue(v)
	case reflect.Struct:
		switch c {
		case '{':
			return d.structObject(v)
		case '[':
			return d.structSeq(v)
		}
		return d.invalidType("struct " + t.Name())
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return d.errorf("cannot decode into interface %s", t)
		}
		x, err := d.anyValue()
		if err != nil {
			return err
		}
		if x == nil {
			v.SetZero()
		} else {
			v.Set(reflect.ValueOf(x))
		}
		return nil
	}
	return d.errorf("cannot decode into %s", t)
}

func rustName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Uint, reflect.Uintptr:
		return "u64"
	case reflect.Int:
		return "i64"
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "u" + strconv.Itoa(t.Bits())
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "i" + strconv.Itoa(t.Bits())
	case reflect.Float32, reflect.Float64:
		return "f" + strconv.Itoa(t.Bits())
	}
	return t.String()
}

// invalidType describes the value at the current position, as serde does.
func (d *decoder) invalidType(expected string) error {
	c, _ := d.peek()
	var got string
	switch c {
	case 'n':
		got = "null"
	case 't', 'f':
		got = "boolean"
		if c == 't' {
			got += " `true`"
		} else {
			got += " `false`"
		}
	case '"':
		got = "string"
	case '[':
		got = "sequence"
	case '{':
		got = "map"
	default:
		got = "number"
		start := d.pos
		if n, err := d.number(); err == nil {
			switch n.kind {
			case numU64:
				got = fmt.Sprintf("integer `%d`", n.u)
			case numI64:
				got = fmt.Sprintf("integer `%d`", n.i)
			default:
				got = fmt.Sprintf("floating point `%s`", formatFloat(n.f, 64))
			}
			d.pos = start
		} else {
			return err
		}
	}
	return d.errorf("invalid type: %s, expected %s", got, expected)
}

func (d *decoder) literal(word string) error {
	if len(d.data)-d.pos >= len(word) && string(d.data[d.pos:d.pos+len(word)]) == word {
		d.pos += len(word)
		return nil
	}
	for i := 0; i < len(word); i++ {
		if d.pos >= len(d.data) {
			return d.errorf("EOF while parsing a value")
		}
		if d.data[d.pos] != word[i] {
			return d.errorf("expected ident")
		}
		d.pos++
	}
	return nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth >= maxDepth {
		return d.errorf("recursion limit exceeded")
	}
	return nil
}

// seq reads a JSON array into a slice or an array.
func (d *decoder) seq(v reflect.Value) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer func() { d.depth-- }()
	d.pos++ // '['
	t := v.Type()
	if t.Kind() == reflect.Slice {
		out := reflect.MakeSlice(t, 0, 0)
		for i := 0; ; i++ {
			more, err := d.seqNext(i)
			if err != nil {
				return err
			}
			if !more {
				break
			}
			elem := reflect.New(t.Elem()).Elem()
			if err := d.value(elem); err != nil {
				return err
			}
			out = reflect.Append(out, elem)
		}
		v.Set(out)
		return nil
	}
	n := t.Len()
	for i := 0; i < n; i++ {
		more, err := d.seqNext(i)
		if err != nil {
			return err
		}
		if !more {
			return d.errorf("invalid length %d, expected an array of length %d", i, n)
		}
		if err := d.value(v.Index(i)); err != nil {
			return err
		}
	}
	return d.seqEnd()
}

// seqNext is at the start of element i (or the closing bracket): it eats
// the comma before an element after the first and reports whether an
// element follows.
func (d *decoder) seqNext(i int) (bool, error) {
	c, ok := d.peek()
	if !ok {
		return false, d.errorf("EOF while parsing a list")
	}
	if c == ']' {
		d.pos++
		return false, nil
	}
	if i > 0 {
		if c != ',' {
			return false, d.errorf("expected `,` or `]`")
		}
		d.pos++
		c, ok = d.peek()
		if !ok {
			return false, d.errorf("EOF while parsing a value")
		}
		if c == ']' {
			return false, d.errorf("trailing comma")
		}
	}
	return true, nil
}

// seqEnd expects the closing bracket after a fixed number of elements.
func (d *decoder) seqEnd() error {
	c, ok := d.peek()
	switch {
	case !ok:
		return d.errorf("EOF while parsing a list")
	case c == ']':
		d.pos++
		return nil
	case c == ',':
		d.pos++
		if c, ok := d.peek(); ok && c == ']' {
			return d.errorf("trailing comma")
		}
	}
	return d.errorf("trailing characters")
}

// objectNext eats what comes before key i of an object and reports whether
// a key follows; then the caller reads the key with str and calls colon.
func (d *decoder) objectNext(i int) (bool, error) {
	c, ok := d.peek()
	if !ok {
		return false, d.errorf("EOF while parsing an object")
	}
	if c == '}' {
		d.pos++
		return false, nil
	}
	if i > 0 {
		if c != ',' {
			return false, d.errorf("expected `,` or `}`")
		}
		d.pos++
		c, ok = d.peek()
		if !ok {
			return false, d.errorf("EOF while parsing a value")
		}
		if c == '}' {
			return false, d.errorf("trailing comma")
		}
	}
	if c != '"' {
		return false, d.errorf("key must be a string")
	}
	return true, nil
}

func (d *decoder) colon() error {
	c, ok := d.peek()
	if !ok {
		return d.errorf("EOF while parsing an object")
	}
	if c != ':' {
		return d.errorf("expected `:`")
	}
	d.pos++
	return nil
}

func (d *decoder) mapValue(v reflect.Value) error {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		return d.errorf("cannot decode a map with %s keys", t.Key())
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer func() { d.depth-- }()
	d.pos++ // '{'
	out := reflect.MakeMap(t)
	for i := 0; ; i++ {
		more, err := d.objectNext(i)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		if err := d.colon(); err != nil {
			return err
		}
		elem := reflect.New(t.Elem()).Elem()
		if err := d.value(elem); err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), elem)
	}
	v.Set(out)
	return nil
}

// field is one serialized struct field.
type field struct {
	name      string
	index     int
	omitEmpty bool
	optional  bool // may be missing from an object (a pointer, or `default`)
	dflt      bool // may be missing from an array too (`default`)
}

type structInfo struct {
	fields []field
	byName map[string]int // name -> position in fields
	deny   bool
	err    error
}

var structCache sync.Map // reflect.Type -> *structInfo

var denyType = reflect.TypeFor[DenyUnknownFields]()

func infoOf(t reflect.Type) *structInfo {
	if cached, ok := structCache.Load(t); ok {
		return cached.(*structInfo)
	}
	info := &structInfo{byName: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type == denyType && f.Anonymous {
			info.deny = true
			continue
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		if f.Anonymous {
			info.err = fmt.Errorf("embedded field %s of %s is not supported: name it", f.Name, t)
		}
		fl := field{name: name, index: i, optional: f.Type.Kind() == reflect.Pointer}
		for _, opt := range strings.Split(opts, ",") {
			switch opt {
			case "omitempty":
				fl.omitEmpty = true
			case "default":
				fl.optional = true
				fl.dflt = true
			}
		}
		if _, dup := info.byName[name]; dup {
			info.err = fmt.Errorf("%s has two fields named %q", t, name)
		}
		info.byName[name] = len(info.fields)
		info.fields = append(info.fields, fl)
	}
	actual, _ := structCache.LoadOrStore(t, info)
	return actual.(*structInfo)
}

func (d *decoder) structObject(v reflect.Value) error {
	t := v.Type()
	info := infoOf(t)
	if info.err != nil {
		return info.err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer func() { d.depth-- }()
	d.pos++ // '{'
	var seenSmall [8]bool
	seen := seenSmall[:0]
	if len(info.fields) <= len(seenSmall) {
		seen = seenSmall[:len(info.fields)]
	} else {
		seen = make([]bool, len(info.fields))
	}
	out := reflect.New(t).Elem()
	for i := 0; ; i++ {
		more, err := d.objectNext(i)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		if err := d.colon(); err != nil {
			return err
		}
		at, known := info.byName[key]
		if !known {
			if info.deny {
				return d.errorf("unknown field `%s`, %s", key, expectedFields(info))
			}
			if _, ok := d.peek(); !ok {
				return d.eof()
			}
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		if seen[at] {
			return d.errorf("duplicate field `%s`", key)
		}
		seen[at] = true
		if err := d.value(out.Field(info.fields[at].index)); err != nil {
			return err
		}
	}
	for at, f := range info.fields {
		if !seen[at] && !f.optional {
			return d.errorf("missing field `%s`", f.name)
		}
	}
	v.Set(out)
	return nil
}

func expectedFields(info *structInfo) string {
	if len(info.fields) == 0 {
		return "there are no fields"
	}
	names := make([]string, len(info.fields))
	for i, f := range info.fields {
		names[i] = "`" + f.name + "`"
	}
	if len(names) == 1 {
		return "expected " + names[0]
	}
	return "expected one of " + strings.Join(names, ", ")
}

// structSeq reads a struct from a JSON array of its fields in order, which
// serde accepts too.
func (d *decoder) structSeq(v reflect.Value) error {
	t := v.Type()
	info := infoOf(t)
	if info.err != nil {
		return info.err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer func() { d.depth-- }()
	d.pos++ // '['
	out := reflect.New(t).Elem()
	ended := false
	for i, f := range info.fields {
		if !ended {
			more, err := d.seqNext(i)
			if err != nil {
				return err
			}
			ended = !more
		}
		if ended {
			if f.dflt {
				continue
			}
			return d.errorf("invalid length %d, expected struct %s with %d elements", i, t.Name(), len(info.fields))
		}
		if err := d.value(out.Field(f.index)); err != nil {
			return err
		}
	}
	if !ended {
		if err := d.seqEnd(); err != nil {
			return err
		}
	}
	v.Set(out)
	return nil
}

// anyValue reads a value as serde_json::Value would.
func (d *decoder) anyValue() (any, error) {
	c, ok := d.peek()
	if !ok {
		return nil, d.eof()
	}
	switch c {
	case 'n':
		return nil, d.literal("null")
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case '"':
		return d.str()
	case '[':
		if err := d.enter(); err != nil {
			return nil, err
		}
		defer func() { d.depth-- }()
		d.pos++
		out := []any{}
		for i := 0; ; i++ {
			more, err := d.seqNext(i)
			if err != nil {
				return nil, err
			}
			if !more {
				return out, nil
			}
			x, err := d.anyValue()
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
	case '{':
		if err := d.enter(); err != nil {
			return nil, err
		}
		defer func() { d.depth-- }()
		d.pos++
		out := map[string]any{}
		for i := 0; ; i++ {
			more, err := d.objectNext(i)
			if err != nil {
				return nil, err
			}
			if !more {
				return out, nil
			}
			key, err := d.str()
			if err != nil {
				return nil, err
			}
			if err := d.colon(); err != nil {
				return nil, err
			}
			x, err := d.anyValue()
			if err != nil {
				return nil, err
			}
			out[key] = x
		}
	}
	n, err := d.numberFor(nil)
	if err != nil {
		return nil, err
	}
	switch n.kind {
	case numU64:
		return n.u, nil
	case numI64:
		return n.i, nil
	}
	return n.f, nil
}

type numKind int

const (
	numU64 numKind = iota
	numI64
	numF64
)

type num struct {
	kind numKind
	u    uint64
	i    int64
	f    float64
}

// numberFor reads a number where a value of type t (nil: any) is expected.
func (d *decoder) numberFor(t reflect.Type) (num, error) {
	c, _ := d.peek()
	if c != '-' && (c < '0' || c > '9') {
		if t == nil {
			return num{}, d.errorf("expected value")
		}
		if c == 'n' || c == 't' || c == 'f' || c == '"' || c == '[' || c == '{' {
			return num{}, d.invalidType(rustName(t))
		}
		return num{}, d.errorf("expected value")
	}
	return d.number()
}

// number parses a JSON number as serde_json does: an integer that fits u64
// (or, negative, i64) stays an integer; anything else is a float, and a
// float out of range is an error. "-0" is a float.
func (d *decoder) number() (num, error) {
	start := d.pos
	neg := false
	if d.data[d.pos] == '-' {
		neg = true
		d.pos++
	}
	if d.pos >= len(d.data) {
		return num{}, d.errorf("EOF while parsing a value")
	}
	c := d.data[d.pos]
	if c < '0' || c > '9' {
		return num{}, d.errorf("invalid number")
	}
	d.pos++
	if c == '0' {
		if d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			return num{}, d.errorf("invalid number")
		}
	} else {
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
	}
	intEnd := d.pos
	float := false
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		float = true
		d.pos++
		digits := d.pos
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
		if d.pos == digits {
			if d.pos >= len(d.data) {
				return num{}, d.errorf("EOF while parsing a value")
			}
			return num{}, d.errorf("invalid number")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		float = true
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		digits := d.pos
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
		if d.pos == digits {
			if d.pos >= len(d.data) {
				return num{}, d.errorf("EOF while parsing a value")
			}
			return num{}, d.errorf("invalid number")
		}
	}
	text := string(d.data[start:d.pos])
	if !float {
		digits := string(d.data[start:intEnd])
		if neg {
			if i, err := strconv.ParseInt(digits, 10, 64); err == nil && i != 0 {
				return num{kind: numI64, i: i}, nil
			}
		} else if u, err := strconv.ParseUint(digits, 10, 64); err == nil {
			return num{kind: numU64, u: u}, nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) {
		return num{}, d.errorf("number out of range")
	}
	return num{kind: numF64, f: f}, nil
}

// str reads a JSON string strictly: valid UTF-8, valid escapes, no lone
// surrogates, no control characters.
func (d *decoder) str() (string, error) {
	d.pos++ // '"'
	start := d.pos
	// Fast path: no escapes.
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		if c == '"' {
			raw := d.data[start:d.pos]
			if !utf8.Valid(raw) {
				return "", d.errorf("invalid unicode code point")
			}
			d.pos++
			return string(raw), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", d.errorf("control character (\\u0000-\\u001F) found while parsing a string")
		}
		d.pos++
	}
	buf := append([]byte(nil), d.data[start:d.pos]...)
	for {
		if d.pos >= len(d.data) {
			return "", d.errorf("EOF while parsing a string")
		}
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			if !utf8.Valid(buf) {
				return "", d.errorf("invalid unicode code point")
			}
			return string(buf), nil
		case c < 0x20:
			return "", d.errorf("control character (\\u0000-\\u001F) found while parsing a string")
		case c != '\\':
			buf = append(buf, c)
			d.pos++
			continue
		}
		d.pos++
		if d.pos >= len(d.data) {
			return "", d.errorf("EOF while parsing a string")
		}
		e := d.data[d.pos]
		d.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := d.hex4()
			if err != nil {
				return "", err
			}
			switch {
			case utf16.IsSurrogate(rune(r)) && r < 0xdc00:
				if d.pos+1 >= len(d.data) || d.data[d.pos] != '\\' || d.data[d.pos+1] != 'u' {
					return "", d.errorf("lone leading surrogate in hex escape")
				}
				d.pos += 2
				low, err := d.hex4()
				if err != nil {
					return "", err
				}
				if low < 0xdc00 || low > 0xdfff {
					return "", d.errorf("lone leading surrogate in hex escape")
				}
				buf = utf8.AppendRune(buf, utf16.DecodeRune(rune(r), rune(low)))
			case utf16.IsSurrogate(rune(r)):
				return "", d.errorf("lone trailing surrogate in hex escape")
			default:
				buf = utf8.AppendRune(buf, rune(r))
			}
		default:
			return "", d.errorf("invalid escape")
		}
	}
}

func (d *decoder) hex4() (uint16, error) {
	if len(d.data)-d.pos < 4 {
		d.pos = len(d.data)
		return 0, d.errorf("EOF while parsing a string")
	}
	var r uint16
	for i := 0; i < 4; i++ {
		c := d.data[d.pos]
		var n byte
		switch {
		case c >= '0' && c <= '9':
			n = c - '0'
		case c >= 'a' && c <= 'f':
			n = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			n = c - 'A' + 10
		default:
			return 0, d.errorf("invalid escape")
		}
		r = r<<4 | uint16(n)
		d.pos++
	}
	return r, nil
}

// skip passes over one value without building it, without recursion, as
// serde_json ignores a field: syntax is checked, UTF-8 and surrogates in
// strings are not.
func (d *decoder) skip() error {
	var stack []byte // enclosing '[' or '{'
	for {
		c, ok := d.peek()
		if !ok {
			return d.eof()
		}
		switch c {
		case 'n':
			if err := d.literal("null"); err != nil {
				return err
			}
		case 't':
			if err := d.literal("true"); err != nil {
				return err
			}
		case 'f':
			if err := d.literal("false"); err != nil {
				return err
			}
		case '"':
			if err := d.skipStr(); err != nil {
				return err
			}
		case '[', '{':
			d.pos++
			c2, ok := d.peek()
			if !ok {
				return d.eof()
			}
			if c == '[' && c2 == ']' || c == '{' && c2 == '}' {
				d.pos++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if err := d.skipKey(); err != nil {
					return err
				}
			}
			continue
		default:
			if c != '-' && (c < '0' || c > '9') {
				return d.errorf("expected value")
			}
			if _, err := d.skipNumber(); err != nil {
				return err
			}
		}
		// After a value: close enclosing containers or move to the next
		// element.
		for {
			if len(stack) == 0 {
				return nil
			}
			top := stack[len(stack)-1]
			c, ok := d.peek()
			if !ok {
				if top == '[' {
					return d.errorf("EOF while parsing a list")
				}
				return d.errorf("EOF while parsing an object")
			}
			if c == ',' {
				d.pos++
				c2, ok := d.peek()
				if ok && (c2 == ']' && top == '[' || c2 == '}' && top == '{') {
					return d.errorf("trailing comma")
				}
				if top == '{' {
					if err := d.skipKey(); err != nil {
						return err
					}
				}
				break
			}
			if top == '[' && c == ']' || top == '{' && c == '}' {
				d.pos++
				stack = stack[:len(stack)-1]
				continue
			}
			if top == '[' {
				return d.errorf("expected `,` or `]`")
			}
			return d.errorf("expected `,` or `}`")
		}
	}
}

func (d *decoder) skipKey() error {
	c, ok := d.peek()
	if !ok {
		return d.errorf("EOF while parsing an object")
	}
	if c != '"' {
		return d.errorf("key must be a string")
	}
	if err := d.skipStr(); err != nil {
		return err
	}
	return d.colon()
}

func (d *decoder) skipStr() error {
	d.pos++
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			return nil
		case c == '\\':
			d.pos++
			if d.pos >= len(d.data) {
				return d.errorf("EOF while parsing a string")
			}
			e := d.data[d.pos]
			d.pos++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if _, err := d.hex4(); err != nil {
					return err
				}
			default:
				return d.errorf("invalid escape")
			}
		case c < 0x20:
			return d.errorf("control character (\\u0000-\\u001F) found while parsing a string")
		default:
			d.pos++
		}
	}
	return d.errorf("EOF while parsing a string")
}

// skipNumber checks a number's syntax without converting it.
func (d *decoder) skipNumber() (bool, error) {
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos >= len(d.data) {
		return false, d.errorf("EOF while parsing a value")
	}
	c := d.data[d.pos]
	if c < '0' || c > '9' {
		return false, d.errorf("invalid number")
	}
	d.pos++
	if c == '0' {
		if d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			return false, d.errorf("invalid number")
		}
	} else {
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		digits := d.pos
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
		if d.pos == digits {
			return false, d.errorf("invalid number")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		digits := d.pos
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
		if d.pos == digits {
			return false, d.errorf("invalid number")
		}
	}
	return true, nil
}
