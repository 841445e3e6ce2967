package policy

import (
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
	f.Fuzz(func(t *testing.T, doc []byte) {
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
