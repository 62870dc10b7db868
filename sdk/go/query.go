package projector

import (
	"fmt"

	"projector.dev/sdk/codec"
)

// ArgsJSON decodes query arguments from JSON into *v (see package codec for
// the rules, those of serde).
//
// Empty (or blank) arguments read as `{}`, so a query called without
// arguments can take a struct whose fields may all be missing. Anything
// that is not valid JSON for *v is a bad-args *QueryError.
func ArgsJSON(args []byte, v any) error {
	blank := true
	for _, b := range args {
		if b != ' ' && b != '\t' && b != '\n' && b != '\r' && b != '\f' {
			blank = false
			break
		}
	}
	if blank {
		args = []byte("{}")
	}
	if err := codec.Unmarshal(args, v); err != nil {
		return BadArgs(fmt.Sprintf("expected JSON for %T: %v", v, err))
	}
	return nil
}

// ReplyJSON encodes a query answer as JSON; an encoding failure is a failed
// *QueryError.
func ReplyJSON(v any) ([]byte, error) {
	out, err := codec.Marshal(v)
	if err != nil {
		return nil, Failed(fmt.Sprintf("cannot encode %T as JSON: %v", v, err))
	}
	return out, nil
}
