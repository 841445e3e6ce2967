package auth

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
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
	// Workspace is the workspace whose resource policy is evaluated with
	// the caller's own policy (Route.PolicyWorkspace); empty for none.
	Workspace string
	// Shared says that an Allow of the resource policy grants the action:
	// as in AMP, only the Prometheus-compatible APIs (the data plane) can
	// be shared; for the other actions only its Deny counts.
	Shared bool
}

// PolicyLookup finds a workspace's resource policy: nil when it has none.
// ok is false for a workspace that does not exist (not cached). It must be
// safe for concurrent use.
type PolicyLookup func(ctx context.Context, workspace string) (p *policy.Policy, ok bool, err error)

// Guard authenticates requests with SigV4 and authorizes them with the
// key's policy. It is safe for concurrent use.
type Guard struct {
	verifier *Verifier
	keys     KeyLookup
	tokens   TokenLookup
	policies PolicyLookup // nil: no resource policies.
	account  string
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
	// AccountID is the account of every key and token, in the principal
	// ARNs resource policies name (arn:aws:iam::ACCOUNT:user/KEY_ID).
	AccountID string
	// ResourcePolicies finds workspaces' resource policies; nil: none.
	ResourcePolicies PolicyLookup
}

// NewGuard returns a Guard. A nil tokens refuses bearer tokens.
func NewGuard(cfg GuardConfig, keys KeyLookup, tokens TokenLookup, logger *slog.Logger) *Guard {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{keys: keys, tokens: tokens, policies: cfg.ResourcePolicies, account: cfg.AccountID, cache: cfg.Cache, logger: logger.With("component", "auth")}
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
		if err := g.authorize(r, who, p, what); err != nil {
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
	if err := g.authorize(r, id.AccessKeyID, key.Policy, what); err != nil {
		return Principal{}, err
	}
	return Principal{ID: id.AccessKeyID, Policy: key.Policy}, nil
}

// authorize evaluates a principal's policy for a request, with the
// resource policy of the request's workspace, IAM's way for a caller in the
// resource's account: an explicit Deny in either wins, otherwise an Allow
// in either grants. id is the principal's id (an access key id or
// token/<id>).
func (g *Guard) authorize(r *http.Request, id string, p *policy.Policy, what Request) error {
	who := "access key " + id
	if strings.HasPrefix(id, "token/") {
		who = "bearer " + id
	}
	d := policy.Evaluate(what.Action, what.Resource, p)
	by := ""
	if d != policy.ExplicitDeny && what.Workspace != "" && g.policies != nil {
		rp, err := g.resourcePolicy(r.Context(), what.Workspace)
		if err != nil {
			// Fail closed: the policy may deny what the key allows.
			return failure.E(failure.Internal, "look up resource policy of workspace "+what.Workspace, err)
		}
		if rp != nil { // Most workspaces have none: no principal ARN to build.
			switch policy.EvaluateFor(what.Action, what.Resource, g.PrincipalARN(id), conditionContext(r), rp) {
			case policy.ExplicitDeny:
				d, by = policy.ExplicitDeny, " by the workspace's resource policy"
			case policy.Allowed:
				if what.Shared {
					d = policy.Allowed
				}
			}
		}
	}
	switch d {
	case policy.Allowed:
		return nil
	case policy.ExplicitDeny:
		return failure.WithCode(failure.Forbidden, "AccessDeniedException", "%s", who+" is explicitly denied "+what.Action+" on "+what.Resource+by)
	default:
		return failure.WithCode(failure.Forbidden, "AccessDeniedException", "%s", who+" is not allowed "+what.Action+" on "+what.Resource)
	}
}

// conditionContext returns what resource policies' conditions see of r.
func conditionContext(r *http.Request) policy.Context {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr) // The zero Addr if it does not parse: no IpAddress matches.
	return policy.Context{SourceIP: ap.Addr().Unmap(), SecureTransport: r.TLS != nil}
}

// PrincipalARN returns the ARN resource policies name a principal by: an
// IAM user ARN whose name is the access key id, or token/<id>.
func (g *Guard) PrincipalARN(id string) string {
	return "arn:aws:iam::" + g.account + ":user/" + id
}

// resourcePolicy looks up a workspace's resource policy, through the cache
// if there is one.
func (g *Guard) resourcePolicy(ctx context.Context, ws string) (*policy.Policy, error) {
	var p *policy.Policy
	var err error
	if g.cache == nil {
		p, _, err = g.policies(ctx, ws)
	} else {
		p, _, err = g.cache.Policies.Get(ctx, ws, g.policies)
	}
	return p, err
}

// WriteError answers an authentication or authorization failure the way
// AWS does: x-amzn-ErrorType header and a JSON message.
func WriteError(w http.ResponseWriter, err error) {
	failure.WriteAWS(w, err, "")
}
