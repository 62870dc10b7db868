// {{name}}: counts the events of the `events` topic by their JSON `type`.
//
// State: `count/<type>` -> `{"count": N}`.
// Query `count` with `{"type": str}`: that object, or `null` for a type
// never seen.
package main

import (
	"fmt"

	projector "projector.dev/sdk"
	"projector.dev/sdk/state"
)

type Projection struct{}

func init() { projector.Export(Projection{}) }

// main is not run: the host calls the module's exports.
func main() {}

func (Projection) Describe() projector.Descriptor {
	return projector.Descriptor{
		Name:    "{{name}}",
		Version: "0.1.0",
		Sources: []string{"events"},
		// Bump when the state layout changes: the host then rebuilds the
		// state by replaying the events.
		StateVersion: 1,
		Queries:      []string{"count"},
	}
}

// typed is an event (or query arguments): only `type` is read, other fields
// are ignored.
type typed struct {
	Type string `json:"type"`
}

type count struct {
	Count uint64 `json:"count"`
}

func (Projection) Handle(event *projector.Event) error {
	var e typed
	if err := event.PayloadJSON(&e); err != nil {
		return err
	}
	key := "count/" + e.Type
	var c count
	if _, err := state.GetJSON(key, &c); err != nil {
		return err
	}
	if c.Count+1 == 0 {
		return fmt.Errorf("count of %s overflows", e.Type)
	}
	c.Count++
	return state.PutJSON(key, c)
}

func (Projection) Query(name string, args []byte) ([]byte, error) {
	if name != "count" {
		return nil, projector.ErrUnknownQuery
	}
	var a typed
	if err := projector.ArgsJSON(args, &a); err != nil {
		return nil, err
	}
	var c count
	found, err := state.GetJSON("count/"+a.Type, &c)
	if err != nil {
		return nil, err
	}
	if !found {
		return projector.ReplyJSON(nil)
	}
	return projector.ReplyJSON(c)
}
