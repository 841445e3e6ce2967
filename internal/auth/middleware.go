package auth

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/orrery-dev/orrery/internal/failure"
	"github.com/orrery-dev/orrery/internal/policy"
)

// Key is what authorization needs of an access key.
type Key struct {
	Secret  string
	Policy  *policy.Policy
	Revoked bool
}

// KeyLookup finds an access key; ok is false for unknown keys.
type KeyLookup func(ctx context.Context, id string) (k Key, ok bool, err error)

// Request says what a request does: its action (e.g. aps:RemoteWrite) and
// the ARN of the resource it acts on.
type Request struct {
	Action   string
	Resource string
	// MaxBodyBytes bounds the body read to check a signature over it: the
	// route's own limit (DefaultMaxBodyBytes when 0).
	MaxBodyBytes int64
	// SignedBody refuses a signature that does not cover the body
	// (UNSIGNED-PAYLOAD, presigned URLs): set for writes, whose body is
	// what matters.
	SignedBody bool
	// PoolBody reads the body to hash it into a pooled buffer: the caller
	// calls Release on the request's *Body once the handler has returned,
	// and the handler keeps no reference to the body's bytes after.
	PoolBody bool
}

// Guard authenticates requests with SigV4 and authorizes them with the
// key's policy. It is safe for concurrent use.
type Guard struct {
	verifier *Verifier
	keys     KeyLookup
	tokens   TokenLookup
	cache    *Caches // nil: no caching.
	logger   *slog.Logger
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Service is the SigV4 service name ("aps").
	Service string
	// Region is the region signatures must be scoped to; empty accepts any.
	Region string
	// MaxPresignedLifetime caps X-Amz-Expires of presigned URLs;
	// 0 means DefaultMaxPresignedLifetime.
	MaxPresignedLifetime time.Duration
	// Cache, if not nil, remembers found keys and tokens (NewCaches).
	Cache *Caches
}

// NewGuard returns a Guard. A nil tokens refuses bearer tokens.
func NewGuard(cfg GuardConfig, keys KeyLookup, tokens TokenLookup, logger *slog.Logger) *Guard {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{keys: keys, tokens: tokens, cache: cfg.Cache, logger: logger.With("component", "auth")}
	g.verifier = &Verifier{Service: cfg.Service, Region: cfg.Region, MaxPresignedLifetime: cfg.MaxPresignedLifetime, Secrets: func(string) (string, bool, error) { return "", false, nil }}
	return g
}

// key looks up an access key, through the cache if there is one.
func (g *Guard) key(ctx context.Context, id string) (Key, bool, error) {
	if g.cache == nil {
		return g.keys(ctx, id)
	}
	return g.cache.Keys.Get(ctx, id, g.keys)
}

// token looks up a bearer token, through the cache if there is one.
func (g *Guard) token(ctx context.Context, id string) (Token, bool, error) {
	if g.cache == nil {
		return g.tokens(ctx, id)
	}
	return g.cache.Tokens.Get(ctx, id, g.tokens)
}

// Principal is who an authenticated request comes from.
type Principal struct {
	// ID is the access key id, or "token/<id>".
	ID string
	// Policy is the key's or token's policy.
	Policy *policy.Policy
}

type principalKey struct{}

// NewContext returns ctx carrying the request's principal.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of an authenticated request; ok is
// false when the server authenticates nothing (--auth=none).
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Check authenticates r (a SigV4 signature, or a bearer token) and decides
// whether it may do what the request says. It returns the principal (the
// access key id, or "token/<id>"), or an error to send back with WriteError.
func (g *Guard) Check(r *http.Request, what Request) (string, error) {
	p, err := g.Authorize(r, what)
	return p.ID, err
}

// Authorize is Check returning the principal with its policy.
func (g *Guard) Authorize(r *http.Request, what Request) (Principal, error) {
	if tok, ok := bearer(r); ok {
		who, p, err := g.checkToken(r.Context(), tok)
		if err != nil {
			return Principal{}, err
		}
		if err := authorize("bearer "+who, p, what); err != nil {
			return Principal{}, err
		}
		return Principal{ID: who, Policy: p}, nil
	}
	var key Key
	v := *g.verifier
	v.MaxBodyBytes = what.MaxBodyBytes
	v.SignedBody = what.SignedBody
	v.PoolBody = what.PoolBody
	v.Secrets = func(id string) (string, bool, error) {
		k, ok, err := g.key(r.Context(), id)
		if err != nil || !ok || k.Revoked {
			return "", false, err
		}
		key = k
		return k.Secret, true, nil
	}
	id, err := v.Verify(r)
	if err != nil {
		return Principal{}, err
	}
	if err := authorize("access key "+id.AccessKeyID, key.Policy, what); err != nil {
		return Principal{}, err
	}
	return Principal{ID: id.AccessKeyID, Policy: key.Policy}, nil
}

// authorize evaluates a principal's policy for a request.
func authorize(who string, p *policy.Policy, what Request) error {
	switch policy.Evaluate(what.Action, what.Resource, p) {
	case policy.Allowed:
		return nil
	case policy.ExplicitDeny:
		return failure.WithCode(failure.Forbidden, "AccessDeniedException", "%s", who+" is explicitly denied "+what.Action+" on "+what.Resource)
	default:
		return failure.WithCode(failure.Forbidden, "AccessDeniedException", "%s", who+" is not allowed "+what.Action+" on "+what.Resource)
	}
}

// WriteError answers an authentication or authorization failure the way
// AWS does: x-amzn-ErrorType header and a JSON message.
func WriteError(w http.ResponseWriter, err error) {
	failure.WriteAWS(w, err, "")
}
