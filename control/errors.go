package control

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels an *APIError matches by its HTTP status, so that callers ask
// errors.Is(err, control.ErrNotFound) rather than read status codes.
var (
	ErrInvalid     = errors.New("invalid request")
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("exists or busy")
	ErrNoSpace     = errors.New("out of space")
	ErrUnavailable = errors.New("pool unavailable")
	ErrForbidden   = errors.New("forbidden")
	// ErrUnreachable is a daemon that does not answer on its socket.
	ErrUnreachable = errors.New("cannot reach thind")
)

// APIError is an error answer of the daemon.
type APIError struct {
	Method, Path string
	Status       int
	Message      string // the daemon's own words
}

func (e *APIError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
}

// Is maps the status to a sentinel.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Status == http.StatusBadRequest
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrNoSpace:
		return e.Status == http.StatusInsufficientStorage
	case ErrUnavailable:
		return e.Status == http.StatusServiceUnavailable
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	}
	return false
}
