package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/orrery-dev/orrery/internal/failure"
	"github.com/orrery-dev/orrery/internal/policy"
)

// Bearer tokens are Orrery's answer for clients that cannot sign requests
// (promtool, amtool, Grafana with a plain token). A token reads
// "orrt_<id>_<secret>": the id (16 base32 characters) names the stored
// record, the secret (40 base64url characters, 240 random bits) is kept
// only as a SHA-256 hash. A plain hash is enough for a secret of that
// entropy; a slow KDF protects low-entropy passwords, not random keys.
const tokenPrefix = "orrt_"

// Token is what authorization needs of a bearer token.
type Token struct {
	SecretHash string // hex SHA-256 of the secret part.
	Policy     *policy.Policy
	Revoked    bool
}

// TokenLookup finds a bearer token by its id; ok is false for unknown ids.
// It must be safe for concurrent use.
type TokenLookup func(ctx context.Context, id string) (t Token, ok bool, err error)

// NewToken returns a fresh token, its id, and the hash of its secret to
// store.
func NewToken() (token, id, secretHash string) {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	id = strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	s := make([]byte, 30)
	_, _ = rand.Read(s)
	secret := base64.RawURLEncoding.EncodeToString(s)
	return tokenPrefix + id + "_" + secret, id, HashTokenSecret(secret)
}

// HashTokenSecret returns the stored form of a token secret.
func HashTokenSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// parseToken splits a token into its id and secret.
func parseToken(tok string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(tok, tokenPrefix)
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, "_")
	if !found || len(id) != 16 || len(secret) != 40 {
		return "", "", false
	}
	return id, secret, true
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(h[7:]), true
}

// checkToken authenticates a bearer token and returns its id and policy.
func (g *Guard) checkToken(ctx context.Context, tok string) (string, *policy.Policy, error) {
	if g.tokens == nil {
		return "", nil, denied("UnrecognizedClientException", "bearer tokens are not accepted by this server; sign the request with AWS Signature Version 4")
	}
	id, secret, ok := parseToken(tok)
	if !ok {
		return "", nil, failure.WithCode(failure.Unauthorized, "UnrecognizedClientException", "%s", "the bearer token is malformed: Orrery tokens look like orrt_<id>_<secret>, as printed by `orrery tokens create`")
	}
	t, found, err := g.token(ctx, id)
	if err != nil {
		return "", nil, failure.E(failure.Internal, "look up bearer token", err)
	}
	// Compare the hash even for unknown ids, so timing does not tell
	// which ids exist.
	want := t.SecretHash
	if !found {
		want = strings.Repeat("0", 64)
	}
	match := subtle.ConstantTimeCompare([]byte(HashTokenSecret(secret)), []byte(want)) == 1
	if !found || !match || t.Revoked {
		return "", nil, failure.WithCode(failure.Unauthorized, "UnrecognizedClientException", "%s", "the bearer token "+id+" is not valid (unknown, revoked or wrong secret)")
	}
	return "token/" + id, t.Policy, nil
}
