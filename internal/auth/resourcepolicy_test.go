package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/policy"
)

// policies is a catalog of workspaces' resource policies that counts its
// lookups.
type policies struct {
	mu      sync.Mutex
	byWS    map[string]*policy.Policy
	lookups int
}

func (s *policies) lookup(_ context.Context, ws string) (*policy.Policy, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lookups++
	p, ok := s.byWS[ws]
	return p, ok, nil
}

func (s *policies) set(ws string, p *policy.Policy) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byWS[ws] = p
}

// TestResourcePolicyMatrix checks a workspace's resource policy evaluated
// with the caller's own, IAM's way: granted by either, denied by either,
// the resource policy of one workspace granting nothing on another, and
// its Allow granting only the data plane.
func TestResourcePolicyMatrix(t *testing.T) {
	const (
		account = "123456789012"
		wsA     = "ws-aaaaaaaa-0000-4000-8000-000000000000"
		wsB     = "ws-bbbbbbbb-0000-4000-8000-000000000000"
		arn     = "arn:aws:aps:us-east-1:" + account + ":workspace/"
	)
	parse := func(doc string, resource bool) *policy.Policy {
		p, err := policy.Parse([]byte(doc))
		if resource {
			p, err = policy.ParseResource([]byte(doc))
		}
		require.NoError(t, err, doc)
		return p
	}
	// The caller's own policy.
	identity := map[string]*policy.Policy{
		"nothing":      parse(`{"Statement":[{"Effect":"Deny","Action":"orrery:None","Resource":"*"}]}`, false),
		"query A":      parse(`{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":"`+arn+wsA+`"}]}`, false),
		"everything":   parse(`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`, false),
		"deny query A": parse(`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"aps:QueryMetrics","Resource":"`+arn+wsA+`"}]}`, false),
	}
	me := "arn:aws:iam::" + account + ":user/" + keyID
	// Workspace A's resource policy.
	resource := map[string]*policy.Policy{
		"none": nil,
		"allows me query and write": parse(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"`+me+`"},
			"Action":["aps:QueryMetrics","aps:RemoteWrite","aps:DescribeWorkspace"],"Resource":"`+arn+wsA+`"}]}`, true),
		"allows another key": parse(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::`+account+`:user/AKIAOTHER"},
			"Action":"*","Resource":"*"}]}`, true),
		"allows me from the test's address": parse(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"`+me+`"},
			"Action":"aps:QueryMetrics","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"192.0.2.0/24"}}}]}`, true),
		"allows me over TLS only": parse(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"`+me+`"},
			"Action":"aps:QueryMetrics","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}`, true),
		"denies everyone query": parse(`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"aps:QueryMetrics","Resource":"*"},
			{"Effect":"Deny","Principal":"*","Action":"aps:DescribeWorkspace","Resource":"*"}]}`, true),
	}
	query := func(ws string) Request {
		return Request{Action: "aps:QueryMetrics", Resource: arn + ws, Workspace: ws, Shared: true}
	}
	write := func(ws string) Request {
		return Request{Action: "aps:RemoteWrite", Resource: arn + ws, Workspace: ws, Shared: true, MaxBodyBytes: 1 << 20}
	}
	describe := func(ws string) Request { // The control plane: not shared.
		return Request{Action: "aps:DescribeWorkspace", Resource: arn + ws, Workspace: ws}
	}
	for _, c := range []struct {
		name, identity, resource string
		what                     Request
		allowed                  bool
	}{
		{"granted by identity only", "query A", "none", query(wsA), true},
		{"granted by resource only: query", "nothing", "allows me query and write", query(wsA), true},
		{"granted by resource only: write", "nothing", "allows me query and write", write(wsA), true},
		{"granted by both", "query A", "allows me query and write", query(wsA), true},
		{"granted by neither", "nothing", "none", query(wsA), false},
		{"the resource policy names another key", "nothing", "allows another key", query(wsA), false},
		{"denied by identity, allowed by resource", "deny query A", "allows me query and write", query(wsA), false},
		{"denied by resource, allowed by identity", "everything", "denies everyone query", query(wsA), false},
		{"A's policy grants nothing on B", "nothing", "allows me query and write", query(wsB), false},
		{"A's policy denies nothing on B", "everything", "denies everyone query", query(wsB), true},
		{"condition holds: the request's address (httptest's 192.0.2.1)", "nothing", "allows me from the test's address", query(wsA), true},
		{"condition fails: plain HTTP", "nothing", "allows me over TLS only", query(wsA), false},
		{"control plane: resource Allow is not shared", "nothing", "allows me query and write", describe(wsA), false},
		{"control plane: resource Deny holds", "everything", "denies everyone query", describe(wsA), false},
		{"control plane: identity grants", "everything", "allows me query and write", describe(wsA), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &store{keys: map[string]Key{keyID: {Secret: secret, Policy: identity[c.identity]}}}
			ps := &policies{byWS: map[string]*policy.Policy{wsA: resource[c.resource], wsB: nil}}
			g := NewGuard(GuardConfig{Service: "aps", AccountID: account, ResourcePolicies: ps.lookup}, s.key, nil, nil)
			_, err := g.Check(signed(t, http.MethodPost, "/workspaces/"+c.what.Workspace+"/api/v1/query", "", time.Now()), c.what)
			if c.allowed {
				require.NoError(t, err)
				return
			}
			require.Equal(t, "AccessDeniedException", code(err), "%v", err)
		})
	}

	t.Run("a policy change revokes cached decisions", func(t *testing.T) {
		s := &store{keys: map[string]Key{keyID: {Secret: secret, Policy: identity["nothing"]}}}
		ps := &policies{byWS: map[string]*policy.Policy{wsA: resource["allows me query and write"]}}
		caches := NewCaches(time.Minute, nil, prometheus.NewRegistry())
		g := NewGuard(GuardConfig{Service: "aps", AccountID: account, ResourcePolicies: ps.lookup, Cache: caches}, s.key, nil, nil)
		check := func() error {
			_, err := g.Check(signed(t, http.MethodGet, "/workspaces/"+wsA+"/api/v1/query", "", time.Now()), query(wsA))
			return err
		}
		for range 3 {
			require.NoError(t, check())
		}
		require.Equal(t, 1, ps.lookups, "the policy is looked up once")
		ps.set(wsA, nil) // The grant is deleted…
		require.NoError(t, check(), "…elsewhere: remembered within the TTL")
		caches.Policies.Forget(wsA) // …here: Catalog.OnChange forgets it.
		require.Equal(t, "AccessDeniedException", code(check()))
	})
}

// BenchmarkAuthorize measures what a workspace's resource policy adds to
// authorizing a request, once it is cached: without resource policies,
// with a workspace that has none, and with one whose policy is evaluated.
func BenchmarkAuthorize(b *testing.B) {
	const ws = "ws-aaaaaaaa-0000-4000-8000-000000000000"
	own, err := policy.Parse([]byte(`{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":"arn:aws:aps:us-east-1:123456789012:workspace/` + ws + `"}]}`))
	require.NoError(b, err)
	rp, err := policy.ParseResource([]byte(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/AKIAOTHER"},"Action":"aps:*","Resource":"*"},
		{"Effect":"Deny","Principal":"*","Action":"aps:DeleteSeries","Resource":"*"}]}`))
	require.NoError(b, err)
	what := Request{Action: "aps:QueryMetrics", Resource: "arn:aws:aps:us-east-1:123456789012:workspace/" + ws, Workspace: ws, Shared: true}
	for _, c := range []struct {
		name   string
		lookup PolicyLookup
	}{
		{"no resource policies", nil},
		{"workspace without a policy", (&policies{byWS: map[string]*policy.Policy{ws: nil}}).lookup},
		{"workspace with a policy", (&policies{byWS: map[string]*policy.Policy{ws: rp}}).lookup},
	} {
		b.Run(c.name, func(b *testing.B) {
			g := NewGuard(GuardConfig{Service: "aps", AccountID: "123456789012", ResourcePolicies: c.lookup,
				Cache: NewCaches(time.Hour, nil, prometheus.NewRegistry())}, nil, nil, nil)
			r := signed(b, http.MethodGet, "/workspaces/"+ws+"/api/v1/query", "", time.Now())
			for b.Loop() {
				if err := g.authorize(r, keyID, own, what); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPolicyWorkspace pins which workspace's resource policy a request
// to a route is evaluated with.
func TestPolicyWorkspace(t *testing.T) {
	const prefix = "arn:aws:aps:us-east-1:123456789012:workspace/"
	for _, c := range []struct {
		rt   Route
		path string
		want string
	}{
		{Route{Pattern: "GET /workspaces/{id}/api/v1/query", Action: "aps:QueryMetrics", Resource: Workspace}, "/workspaces/ws-1/api/v1/query", "ws-1"},
		{Route{Pattern: "PUT /workspaces/{id}/rulegroupsnamespaces/{name}", Action: "aps:PutRuleGroupsNamespace", Resource: RuleGroupsNamespace}, "/workspaces/ws-1/rulegroupsnamespaces/n", "ws-1"},
		{Route{Pattern: "POST /tags/{arn...}", Action: "aps:TagResource", Resource: TaggedResource}, "/tags/" + prefix + "ws-1", "ws-1"},
		{Route{Pattern: "POST /tags/{arn...}", Action: "aps:TagResource", Resource: TaggedResource}, "/tags/arn:aws:aps:eu-west-1:1:workspace/ws-1", ""},
		{Route{Pattern: "PUT /workspaces/{id}/policy", Action: "aps:PutResourcePolicy", Resource: Workspace}, "/workspaces/ws-1/policy", ""},
		{Route{Pattern: "GET /workspaces", Action: "aps:ListWorkspaces", Resource: AllWorkspaces}, "/workspaces", ""},
	} {
		var got string
		mux := http.NewServeMux()
		mux.HandleFunc(c.rt.Pattern, func(_ http.ResponseWriter, r *http.Request) { got = c.rt.PolicyWorkspace(r, prefix) })
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.rt.Method(), c.path, nil))
		require.Equal(t, c.want, got, c.rt.Pattern+" "+c.path)
	}
}
