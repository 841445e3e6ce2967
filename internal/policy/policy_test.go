package policy

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

const arnA = "arn:aws:aps:us-east-1:123456789012:workspace/ws-aaaaaaaa-0000-4000-8000-000000000000"
const arnB = "arn:aws:aps:us-east-1:123456789012:workspace/ws-bbbbbbbb-0000-4000-8000-000000000000"

func mustParse(t *testing.T, doc string) *Policy {
	t.Helper()
	p, err := Parse([]byte(doc))
	require.NoError(t, err)
	return p
}

func TestEvaluate(t *testing.T) {
	writerA := mustParse(t, `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["aps:RemoteWrite","aps:Query*"],"Resource":"`+arnA+`"}]}`)
	admin := mustParse(t, `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`)
	noDelete := mustParse(t, `{"Statement":[{"Effect":"Deny","Action":"aps:Delete*","Resource":"arn:aws:aps:*:*:workspace/*"}]}`)

	cases := []struct {
		name             string
		action, resource string
		policies         []*Policy
		want             Decision
	}{
		{"allowed action on its workspace", "aps:RemoteWrite", arnA, []*Policy{writerA}, Allowed},
		{"wildcard action", "aps:QueryMetrics", arnA, []*Policy{writerA}, Allowed},
		{"actions are case-insensitive", "APS:remotewrite", arnA, []*Policy{writerA}, Allowed},
		{"other workspace", "aps:RemoteWrite", arnB, []*Policy{writerA}, ImplicitDeny},
		{"action not in policy", "aps:CreateWorkspace", arnA, []*Policy{writerA}, ImplicitDeny},
		{"resources are case-sensitive", "aps:RemoteWrite", "ARN:aws:aps:us-east-1:123456789012:workspace/ws-aaaaaaaa-0000-4000-8000-000000000000", []*Policy{writerA}, ImplicitDeny},
		{"explicit deny beats allow", "aps:DeleteWorkspace", arnA, []*Policy{admin, noDelete}, ExplicitDeny},
		{"deny order does not matter", "aps:DeleteWorkspace", arnA, []*Policy{noDelete, admin}, ExplicitDeny},
		{"admin", "aps:CreateWorkspace", "*", []*Policy{admin, noDelete}, Allowed},
		{"no policy", "aps:RemoteWrite", arnA, nil, ImplicitDeny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, Evaluate(c.action, c.resource, c.policies...))
		})
	}
}

func TestParseRejects(t *testing.T) {
	for doc, msg := range map[string]string{
		`{}`: "no Statement",
		`{"Statement":[{"Effect":"Maybe","Action":"aps:X","Resource":"*"}]}`:                        `Effect "Maybe"`,
		`{"Statement":[{"Effect":"Allow","Action":"RemoteWrite","Resource":"*"}]}`:                  "service:Operation",
		`{"Statement":[{"Effect":"Allow","Action":"aps:X","Resource":"ws-1"}]}`:                     "must be an ARN",
		`{"Statement":[{"Effect":"Allow","NotAction":"aps:X","Resource":"*"}]}`:                     "Statement 0",
		`{"Statement":[{"Effect":"Allow","Action":"aps:X","Resource":"*","Condition":{}}]}`:         "Statement 0",
		`{"Statement":[{"Effect":"Allow","Action":7,"Resource":"*"}]}`:                              "string or a list",
		`{"Version":"2099-01-01","Statement":[{"Effect":"Allow","Action":"aps:X","Resource":"*"}]}`: "Version",
		`not json`: "policy document",
	} {
		_, err := Parse([]byte(doc))
		require.ErrorContains(t, err, msg, doc)
	}
}

func TestWildcard(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"*", "", true}, {"a*", "abc", true}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"*b*", "abc", true}, {"a*c*e", "abcde", true}, {"a*c*e", "abcd", false}, {"", "", true}, {"", "a", false},
	} {
		require.Equal(t, c.ok, wildcard(c.p, c.s), "%q ~ %q", c.p, c.s)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"Statement":[{"Effect":"Allow","Action":["aps:*"],"Resource":"arn:aws:aps:*:*:workspace/*"}]}`))
	f.Add([]byte(`{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}`))
	f.Add([]byte(`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/AKIA1"},"Action":"aps:*","Resource":"*",` +
		`"Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8"]},"Bool":{"aws:SecureTransport":"true"}}}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if p, err := ParseResource(doc); err == nil {
			for _, st := range p.Statement {
				if st.Principal == nil || len(st.Principal.AWS) == 0 {
					t.Fatalf("accepted a resource policy statement without a principal: %+v", st)
				}
			}
			_ = EvaluateFor("aps:RemoteWrite", "arn:aws:aps:us-east-1:1:workspace/ws-x", "arn:aws:iam::1:user/AKIA1",
				Context{SourceIP: netip.MustParseAddr("10.1.2.3")}, p)
		}
		p, err := Parse(doc)
		if err != nil {
			return
		}
		for _, st := range p.Statement {
			if st.Effect != Allow && st.Effect != Deny || len(st.Action) == 0 || len(st.Resource) == 0 {
				t.Fatalf("accepted an invalid statement: %+v", st)
			}
		}
		_ = Evaluate("aps:RemoteWrite", "arn:aws:aps:us-east-1:1:workspace/ws-x", p)
	})
}

func TestEvaluateFor(t *testing.T) {
	const (
		key   = "arn:aws:iam::123456789012:user/AKIAKEY1"
		other = "arn:aws:iam::123456789012:user/AKIAKEY2"
		token = "arn:aws:iam::123456789012:user/token/abc"
	)
	p, err := ParseResource([]byte(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Principal":{"AWS":"` + key + `"},"Action":"aps:QueryMetrics","Resource":"` + arnA + `"},
		{"Effect":"Allow","Principal":{"AWS":["` + token + `"]},"Action":"aps:RemoteWrite","Resource":"*"},
		{"Effect":"Deny","Principal":"*","Action":"aps:DeleteSeries","Resource":"*"},
		{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"aps:GetLabels","Resource":"*"},
		{"Effect":"Allow","Principal":{"AWS":"999999999999"},"Action":"aps:GetSeries","Resource":"*"}]}`))
	require.NoError(t, err)
	for _, c := range []struct {
		name, action, resource, caller string
		want                           Decision
	}{
		{"named key", "aps:QueryMetrics", arnA, key, Allowed},
		{"another key is not named", "aps:QueryMetrics", arnA, other, ImplicitDeny},
		{"named key, other resource", "aps:QueryMetrics", arnB, key, ImplicitDeny},
		{"named token", "aps:RemoteWrite", arnA, token, Allowed},
		{"a key is not the token", "aps:RemoteWrite", arnA, key, ImplicitDeny},
		{"deny for everyone", "aps:DeleteSeries", arnA, other, ExplicitDeny},
		{"the account names every key", "aps:GetLabels", arnA, other, Allowed},
		{"another account names none", "aps:GetSeries", arnA, other, ImplicitDeny},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, EvaluateFor(c.action, c.resource, c.caller, Context{}, p))
		})
	}
	require.Equal(t, ImplicitDeny, EvaluateFor("aps:QueryMetrics", arnA, key, Context{}, nil))
}

func TestParseResourceRejects(t *testing.T) {
	stmt := func(principal string) string {
		return `{"Statement":[{"Effect":"Allow","Principal":` + principal + `,"Action":"aps:QueryMetrics","Resource":"*"}]}`
	}
	cond := func(condition string) string {
		return `{"Statement":[{"Effect":"Allow","Principal":"*","Action":"aps:QueryMetrics","Resource":"*","Condition":` + condition + `}]}`
	}
	for doc, msg := range map[string]string{
		`{"Statement":[{"Effect":"Allow","Action":"aps:X","Resource":"*"}]}`: "needs a Principal",
		stmt(`"someone"`): `must be "*"`,
		stmt(`{"Service":"grafana.amazonaws.com"}`):        `Principal "Service" is not supported`,
		stmt(`{"AWS":"arn:aws:iam::123456789012:user/*"}`): "wildcards are not allowed",
		stmt(`{"AWS":"AKIAKEY"}`):                          "name an access key or token",
		stmt(`{"AWS":[]}`):                                 "names no one",
		stmt(`7`):                                          `Principal must be "*"`,
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"aps:X","Resource":"*","NotAction":"aps:Y"}]}`: "supported: Sid, Effect, Principal, Action, Resource, Condition",
		cond(`{"StringEquals":{"aws:PrincipalTag/team":"mesh"}}`):                                                "Condition StringEquals on aws:PrincipalTag/team is not supported",
		cond(`{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}`):                                                     `"10.0.0.0/33" is neither an address nor a CIDR block`,
		cond(`{"Bool":{"aws:SecureTransport":"yes"}}`):                                                           `want "true" or "false"`,
		cond(`{"IpAddress":{}}`):                  "Condition IpAddress names no key",
		cond(`{"IpAddress":{"aws:SourceIp":[]}}`): "has no value",
		cond(`[]`): "Condition must be",
	} {
		_, err := ParseResource([]byte(doc))
		require.ErrorContains(t, err, msg, doc)
	}
	_, err := Parse([]byte(stmt(`"*"`)))
	require.ErrorContains(t, err, "Principal belongs in a workspace's resource policy")
	_, err = Parse([]byte(`{"Statement":[{"Effect":"Allow","Action":"aps:X","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}`))
	require.ErrorContains(t, err, "Condition is evaluated in a workspace's resource policy only")
}

// TestConditions checks the condition keys a resource policy may use.
func TestConditions(t *testing.T) {
	const key = "arn:aws:iam::123456789012:user/AKIAKEY1"
	p, err := ParseResource([]byte(`{"Statement":[
		{"Effect":"Allow","Principal":"*","Action":"aps:QueryMetrics","Resource":"*",
		 "Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.7"]},"Bool":{"aws:SecureTransport":"true"}}},
		{"Effect":"Deny","Principal":"*","Action":"aps:RemoteWrite","Resource":"*","Condition":{"NotIpAddress":{"aws:sourceip":"10.1.0.0/16"}}},
		{"Effect":"Allow","Principal":"*","Action":"aps:RemoteWrite","Resource":"*"}]}`))
	require.NoError(t, err)
	ip := netip.MustParseAddr
	for _, c := range []struct {
		name, action string
		ctx          Context
		want         Decision
	}{
		{"in the block, over TLS", "aps:QueryMetrics", Context{SourceIP: ip("10.2.3.4"), SecureTransport: true}, Allowed},
		{"the one address", "aps:QueryMetrics", Context{SourceIP: ip("192.0.2.7"), SecureTransport: true}, Allowed},
		{"an IPv4-mapped IPv6 address", "aps:QueryMetrics", Context{SourceIP: ip("::ffff:10.2.3.4"), SecureTransport: true}, Allowed},
		{"in the block, plain HTTP", "aps:QueryMetrics", Context{SourceIP: ip("10.2.3.4")}, ImplicitDeny},
		{"outside the block", "aps:QueryMetrics", Context{SourceIP: ip("192.0.2.8"), SecureTransport: true}, ImplicitDeny},
		{"unknown address", "aps:QueryMetrics", Context{SecureTransport: true}, ImplicitDeny},
		{"NotIpAddress: inside, not denied", "aps:RemoteWrite", Context{SourceIP: ip("10.1.2.3")}, Allowed},
		{"NotIpAddress: outside, denied", "aps:RemoteWrite", Context{SourceIP: ip("10.2.2.3")}, ExplicitDeny},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, EvaluateFor(c.action, arnA, key, c.ctx, p))
		})
	}
}
