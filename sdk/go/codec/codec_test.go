package codec

import (
	"math"
	"strings"
	"testing"
)

type placed struct {
	OrderID     string `json:"order_id"`
	Customer    string `json:"customer"`
	AmountCents uint64 `json:"amount_cents"`
}

type withOption struct {
	Owner *string `json:"owner"`
	N     uint32  `json:"n"`
}

type strict struct {
	DenyUnknownFields
	A int32 `json:"a,default"`
}

func TestStructsFollowSerde(t *testing.T) {
	ok := map[string]placed{
		`{"order_id":"1","customer":"a","amount_cents":5}`:                           {"1", "a", 5},
		` {"amount_cents":5,"customer":"a","order_id":"1","x":[1e400,-0,"\ud800"]} `: {"1", "a", 5},
		`["1","a",18446744073709551615]`:                                             {"1", "a", math.MaxUint64},
		`{"order_id":"1","customer":"\ud83d\ude00\u00e9","amount_cents":0}`:          {"1", "😀é", 0},
	}
	for in, want := range ok {
		var got placed
		if err := Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	bad := []string{
		`{"order_id":"1","customer":"a"}`,                    // missing
		`{"order_id":"1","customer":"a","amount_cents":-5}`,  // negative
		`{"order_id":"1","customer":"a","amount_cents":-0}`,  // -0 is a float
		`{"order_id":"1","customer":"a","amount_cents":5.0}`, // float
		`{"order_id":"1","customer":"a","amount_cents":5e0}`, // float
		`{"order_id":"1","customer":"a","amount_cents":"5"}`, // string
		`{"order_id":"1","customer":"a","amount_cents":18446744073709551616}`,
		`{"order_id":"1","customer":"a","customer":"b","amount_cents":1}`, // duplicate
		`{"order_id":"1","Customer":"a","amount_cents":1}`,                // case matters
		`{"order_id":"\ud800","customer":"a","amount_cents":1}`,           // lone surrogate
		"{\"order_id\":\"\xff\",\"customer\":\"a\",\"amount_cents\":1}",   // not UTF-8
		`{"order_id":"1","customer":"a","amount_cents":1,}`,               // trailing comma
		`{"order_id":"1","customer":"a","amount_cents":1} x`,              // trailing characters
		`["1","a"]`, `["1","a",1,2]`, `[]`, `null`, `5`, ``, `{`,
		"\xef\xbb\xbf{}",
		`{"order_id":"1","customer":"a","amount_cents":01}`,
	}
	for _, in := range bad {
		var got placed
		if err := Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("%s: accepted as %+v", in, got)
		}
	}
	// Skipped values are checked for syntax only, at any depth.
	deep := `{"order_id":"1","customer":"a","amount_cents":1,"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`
	var p placed
	if err := Unmarshal([]byte(deep), &p); err != nil {
		t.Error(err)
	}
	if err := Unmarshal([]byte("{\"order_id\":\"1\",\"customer\":\"a\",\"amount_cents\":1,\"x\":\"\xff\"}"), &p); err != nil {
		t.Error(err)
	}
	if err := Unmarshal([]byte(`{"order_id":"1","customer":"a","amount_cents":1,"x":[1,]}`), &p); err == nil {
		t.Error("trailing comma in a skipped value accepted")
	}
}

func TestOptionsDefaultsAndUnknownFields(t *testing.T) {
	var o withOption
	if err := Unmarshal([]byte(`{"n":4294967295}`), &o); err != nil || o.Owner != nil || o.N != math.MaxUint32 {
		t.Fatal(o, err)
	}
	if err := Unmarshal([]byte(`{"n":4294967296}`), &o); err == nil {
		t.Fatal("u32 overflow accepted")
	}
	if err := Unmarshal([]byte(`{"owner":"x","n":1}`), &o); err != nil || *o.Owner != "x" {
		t.Fatal(err)
	}
	var s strict
	for in, fine := range map[string]bool{`{}`: true, `[]`: true, `{"a":-3}`: true, `[1]`: true, `[1,2]`: false, `{"b":1}`: false, `null`: false} {
		if err := Unmarshal([]byte(in), &s); (err == nil) != fine {
			t.Errorf("%s: %v", in, err)
		}
	}
	var m map[string]any
	if err := Unmarshal([]byte(`{"a":1,"a":-2,"b":[1.5,null,true,"x"]}`), &m); err != nil {
		t.Fatal(err)
	}
	out, _ := Marshal(m)
	if string(out) != `{"a":-2,"b":[1.5,null,true,"x"]}` {
		t.Fatal(string(out))
	}
	var tooDeep any
	if err := Unmarshal([]byte(strings.Repeat("[", 128)+strings.Repeat("]", 128)), &tooDeep); err == nil {
		t.Fatal("128 levels accepted")
	}
	if err := Unmarshal([]byte(strings.Repeat("[", 127)+strings.Repeat("]", 127)), &tooDeep); err != nil {
		t.Fatal(err)
	}
}

func TestWritingMatchesSerdeJSON(t *testing.T) {
	owner := "ann"
	cases := []struct {
		in   any
		want string
	}{
		{placed{"o-1", "alice", 2599}, `{"order_id":"o-1","customer":"alice","amount_cents":2599}`},
		{withOption{N: 1}, `{"owner":null,"n":1}`},
		{withOption{Owner: &owner}, `{"owner":"ann","n":0}`},
		{"q\"b\\c\n\x01\x7f\u2028/<&>\b\f\r\t\x1f😀", "\"q\\\"b\\\\c\\n\\u0001\x7f\u2028/<&>\\b\\f\\r\\t\\u001f😀\""},
		{[]placed(nil), `[]`},
		{[]byte{1, 2}, `[1,2]`},
		{map[string]int{"b": 1, "a": 2}, `{"a":2,"b":1}`},
		{nil, `null`},
		{1.0, `1.0`}, {1.5, `1.5`}, {-0.0, `0.0`}, {1e20, `1e20`}, {1.5e-7, `1.5e-7`},
		{123456789012345680000.0, `1.2345678901234568e20`}, {0.001, `0.001`}, {1e16, `1e16`},
		{1e15, `1000000000000000.0`}, {0.0001, `0.0001`}, {0.00001, `0.00001`}, {0.000001, `1e-6`}, {math.NaN(), `null`},
		{Raw(`{"x": 1}`), `{"x": 1}`},
	}
	for _, c := range cases {
		got, err := Marshal(c.in)
		if err != nil || string(got) != c.want {
			t.Errorf("%#v: got %s (%v), want %s", c.in, got, err, c.want)
		}
	}
	if _, err := Marshal("\xff"); err == nil {
		t.Error("invalid UTF-8 written")
	}
	if _, err := Marshal(map[int]int{1: 1}); err == nil {
		t.Error("int keys written")
	}
}
