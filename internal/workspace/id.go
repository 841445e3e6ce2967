package workspace

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// ID identifies a workspace. Valid IDs look like Amazon Managed Service for
// Prometheus workspace IDs: "ws-" followed by a lowercase RFC 4122 UUID.
type ID string

// idPrefix starts every workspace ID.
const idPrefix = "ws-"

// NewID returns a fresh random workspace ID.
func NewID() ID {
	return ID(idPrefix + uuid.NewString())
}

// ParseID validates s as a workspace ID. The error names what is wrong with it.
func ParseID(s string) (ID, error) {
	rest, ok := strings.CutPrefix(s, idPrefix)
	if !ok {
		return "", fmt.Errorf("workspace id %q: must start with %q", s, idPrefix)
	}
	u, err := uuid.Parse(rest)
	if err != nil || len(rest) != 36 || u.String() != rest {
		return "", fmt.Errorf("workspace id %q: must be %q followed by a lowercase UUID like 01234567-89ab-cdef-0123-456789abcdef", s, idPrefix)
	}
	return ID(s), nil
}

// String returns the ID as it appears in URLs.
func (id ID) String() string { return string(id) }

type contextKey struct{}

// NewContext returns a context that carries id. Only the server's route
// middleware (for data-plane requests it has authorized) and the web UI
// (for the requests of its users it has authorized) call it; everything
// else reads the ID with FromContext.
func NewContext(ctx context.Context, id ID) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the workspace ID the request was authorised for.
func FromContext(ctx context.Context) (ID, bool) {
	id, ok := ctx.Value(contextKey{}).(ID)
	return id, ok && id != ""
}
