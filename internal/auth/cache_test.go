package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/policy"
)

// store is a catalog of keys and tokens that counts its lookups.
type store struct {
	mu      sync.Mutex
	keys    map[string]Key
	tokens  map[string]Token
	lookups int
}

func (s *store) key(_ context.Context, id string) (Key, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	k, ok := s.keys[id]
	return k, ok, nil
}

func (s *store) token(_ context.Context, id string) (Token, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	t, ok := s.tokens[id]
	return t, ok, nil
}

func (s *store) revoke(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[id]; ok {
		k.Revoked = true
		s.keys[id] = k
	}
	if t, ok := s.tokens[id]; ok {
		t.Revoked = true
		s.tokens[id] = t
	}
}

// TestGuardCache checks the contract of the caches: repeated requests
// cost no lookup within the TTL; a revocation made through this process
// (Forget) holds for the next request; one made elsewhere (only in the
// store) holds once the TTL has passed; unknown names are never cached.
func TestGuardCache(t *testing.T) {
	p, err := policy.Parse([]byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`))
	require.NoError(t, err)
	tok, tokID, hash := NewToken()
	now := time.Now()
	clock := func() time.Time { return now }
	for _, tc := range []struct {
		name    string
		request func() *http.Request
		id      string
		forget  func(c *Caches)
	}{
		{name: "access key", id: keyID,
			request: func() *http.Request {
				return signed(t, http.MethodPost, "/workspaces/ws-1/api/v1/remote_write", "body", time.Now())
			},
			forget: func(c *Caches) { c.Keys.Forget(keyID) }},
		{name: "bearer token", id: tokID,
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/workspaces/ws-1/api/v1/labels", nil)
				r.Header.Set("Authorization", "Bearer "+tok)
				return r
			},
			forget: func(c *Caches) { c.Tokens.Forget(tokID) }},
	} {
		for _, here := range []bool{true, false} {
			name := tc.name + ", revoked elsewhere"
			if here {
				name = tc.name + ", revoked here"
			}
			t.Run(name, func(t *testing.T) {
				now = time.Now()
				s := &store{keys: map[string]Key{keyID: {Secret: secret, Policy: p}},
					tokens: map[string]Token{tokID: {SecretHash: hash, Policy: p}}}
				reg := prometheus.NewRegistry()
				caches := NewCaches(10*time.Second, clock, reg)
				g := NewGuard(GuardConfig{Service: "aps", Cache: caches}, s.key, s.token, nil)
				what := Request{Action: "aps:RemoteWrite", Resource: "*", MaxBodyBytes: 1 << 20}
				for range 3 {
					_, err := g.Check(tc.request(), what)
					require.NoError(t, err)
				}
				require.Equal(t, 1, s.lookups, "one lookup for three requests")
				require.Equal(t, 2.0, testutil.ToFloat64(caches.Keys.hits)+testutil.ToFloat64(caches.Tokens.hits))

				s.revoke(tc.id)
				if here {
					tc.forget(caches)
					_, err := g.Check(tc.request(), what)
					require.Error(t, err, "refused at once where revoked")
					return
				}
				now = now.Add(9 * time.Second)
				_, err := g.Check(tc.request(), what)
				require.NoError(t, err, "still remembered within the TTL")
				now = now.Add(2 * time.Second)
				_, err = g.Check(tc.request(), what)
				require.Error(t, err, "refused once the TTL has passed")
			})
		}
	}

	t.Run("unknown names are not cached", func(t *testing.T) {
		s := &store{keys: map[string]Key{}, tokens: map[string]Token{}}
		g := NewGuard(GuardConfig{Service: "aps", Cache: NewCaches(time.Minute, clock, prometheus.NewRegistry())}, s.key, s.token, nil)
		for range 2 {
			r := httptest.NewRequest(http.MethodPost, "/workspaces/ws-1/api/v1/remote_write", failingBody{t})
			r.Header.Set("Authorization", "Bearer "+tok)
			_, err := g.Check(r, Request{Action: "aps:RemoteWrite", Resource: "*"})
			require.Equal(t, "UnrecognizedClientException", code(err), "an unknown token is refused before the body is read")
		}
		require.Equal(t, 2, s.lookups)
	})
}

// TestCacheForgetDuringLookup checks that a lookup begun before a Forget
// does not cache what it read: it may predate the change.
func TestCacheForgetDuringLookup(t *testing.T) {
	c := NewCaches(time.Minute, nil, prometheus.NewRegistry()).Workspaces
	lookups := 0
	_, _, err := c.Get(context.Background(), "ws", func(context.Context, string) (string, bool, error) {
		lookups++
		c.Forget("ws") // The workspace is deleted while it is read.
		return "ACTIVE", true, nil
	})
	require.NoError(t, err)
	v, _, err := c.Get(context.Background(), "ws", func(context.Context, string) (string, bool, error) {
		lookups++
		return "DELETING", true, nil
	})
	require.NoError(t, err)
	require.Equal(t, "DELETING", v)
	require.Equal(t, 2, lookups)
}

// TestPooledBody: with PoolBody the verifier reads into a buffer that
// Release hands to the next request; without it, every body is its own.
func TestPooledBody(t *testing.T) {
	v := verifier()
	v.PoolBody = true
	read := func(body string) *Body {
		r := signed(t, http.MethodPost, "/workspaces/ws-1/api/v1/remote_write", body, t0)
		_, err := v.Verify(r)
		require.NoError(t, err)
		b, ok := r.Body.(*Body)
		require.True(t, ok)
		require.Equal(t, body, string(b.Bytes()))
		return b
	}
	first := read(strings.Repeat("a", 4096))
	p := &first.Bytes()[0]
	first.Release()
	require.Nil(t, first.Bytes(), "a released body has no bytes")
	second := read(strings.Repeat("b", 1000))
	require.Same(t, p, &second.Bytes()[0], "the released buffer is reused")
	second.Release()
	second.Release() // Twice is harmless.

	v.PoolBody = false
	third := read("c")
	third.Release()
	require.Equal(t, "c", string(third.Bytes()), "a body not pooled is not released")
}
