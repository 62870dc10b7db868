package projector

import "fmt"

// QueryErrorKind says why a query failed.
type QueryErrorKind uint8

const (
	// UnknownQuery: the projection knows no query of that name.
	UnknownQuery QueryErrorKind = 1
	// BadArgsKind: the arguments could not be understood.
	BadArgsKind QueryErrorKind = 2
	// FailedKind: the query failed while running.
	FailedKind QueryErrorKind = 3
)

// QueryError is why a custom query failed: unknown-query, bad-args or
// failed, as in the WIT contract. The host answers HTTP 404, 400 and 500.
type QueryError struct {
	Kind    QueryErrorKind
	Message string
}

func (e *QueryError) Error() string {
	switch e.Kind {
	case UnknownQuery:
		return "unknown query"
	case BadArgsKind:
		return "bad query arguments: " + e.Message
	default:
		return "query failed: " + e.Message
	}
}

// Is makes errors.Is(err, ErrUnknownQuery) work for any unknown-query error.
func (e *QueryError) Is(target error) bool {
	t, ok := target.(*QueryError)
	return ok && t.Kind == e.Kind && (t.Message == "" || t.Message == e.Message)
}

// ErrUnknownQuery is the answer to a query name the projection does not know.
var ErrUnknownQuery = &QueryError{Kind: UnknownQuery}

// BadArgs is a bad-args query error with the given message.
func BadArgs(message string) *QueryError { return &QueryError{Kind: BadArgsKind, Message: message} }

// BadArgsf is BadArgs with a formatted message.
func BadArgsf(format string, args ...any) *QueryError {
	return BadArgs(fmt.Sprintf(format, args...))
}

// Failed is a failed query error with the given message.
func Failed(message string) *QueryError { return &QueryError{Kind: FailedKind, Message: message} }
