package failure

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind is the class of a failure. The zero Kind is Internal.
type Kind uint8

// The kinds, with the HTTP status every surface answers them with.
const (
	Internal     Kind = iota // 500: a bug or a broken dependency; the message stays in the log.
	Invalid                  // 400: the request cannot be served as sent.
	Unauthorized             // 401: no valid credentials (bearer tokens).
	Forbidden                // 403: the credentials do not allow it, or cannot be verified (SigV4).
	NotFound                 // 404: what the request names does not exist.
	Conflict                 // 409: the request contradicts the current state.
	TooLarge                 // 413: a body over its limit.
	Limited                  // 429: a rate, quota or concurrency limit was reached.
	Unavailable              // 503: a dependency is down or the server is stopping; retry.
)

var kindNames = [...]string{"internal", "invalid", "unauthorized", "forbidden", "not found", "conflict", "too large", "limited", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Status is the HTTP status of a kind.
func (k Kind) Status() int {
	switch k {
	case Invalid:
		return http.StatusBadRequest
	case Unauthorized:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case NotFound:
		return http.StatusNotFound
	case Conflict:
		return http.StatusConflict
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case Limited:
		return http.StatusTooManyRequests
	case Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error is a failure of a kind. Op names the operation that failed ("push",
// "create workspace"); Code, if set, is the AWS error type a client expects
// (x-amzn-ErrorType), when it is more precise than the kind's default; Err
// is the cause, whose message is the error's.
type Error struct {
	Kind Kind
	Op   string
	Code string
	Err  error
}

func (e *Error) Error() string {
	if e.Op == "" {
		return e.Err.Error()
	}
	return e.Op + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, kind) true for an error of that kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// Error makes a Kind usable as errors.Is's target: errors.Is(err, failure.NotFound).
func (k Kind) Error() string { return k.String() }

// E returns an error of kind k for operation op, caused by err.
func E(k Kind, op string, err error) error {
	return &Error{Kind: k, Op: op, Err: err}
}

// Errorf returns an error of kind k with a formatted message; %w wraps.
func Errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Err: fmt.Errorf(format, args...)}
}

// WithCode returns an error of kind k whose AWS error type is code.
func WithCode(k Kind, code, format string, args ...any) error {
	return &Error{Kind: k, Code: code, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of the outermost *Error in err's chain, or
// Internal if there is none (nil is Internal too: ask only about errors).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
