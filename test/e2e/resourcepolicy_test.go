package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestResourcePolicyMatrix runs the real server with a resource policy on
// workspace A and checks, with signed requests, each way a grant can come
// or be refused: by the key's own policy, by A's resource policy, by both,
// denied by either; on the data plane (query, remote write) and the
// control plane; and that A's policy does nothing for workspace B. Deleting
// the policy takes its grants away at once.
func TestResourcePolicyMatrix(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	dir := t.TempDir()
	o := apptest.StartOrrery(t, dir, "--auth=sigv4")
	admin := signer{adminKey, adminSecret}
	a, b := admin.createWorkspace(t, o), admin.createWorkspace(t, o)
	arn := func(ws string) string { return "arn:aws:aps:us-east-1:000000000000:workspace/" + ws }
	user := func(s signer) string { return `"arn:aws:iam::000000000000:user/` + s.key + `"` }

	own := admin.createKey(t, o, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":["aps:QueryMetrics","aps:RemoteWrite"],"Resource":%q}]}`, arn(a)))
	guest := admin.createKey(t, o, `{"Statement":[{"Effect":"Allow","Action":"orrery:ListAccessKeys","Resource":"*"}]}`)
	both := admin.createKey(t, o, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":%q}]}`, arn(a)))
	deniedOwn := admin.createKey(t, o, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"aps:QueryMetrics","Resource":%q}]}`, arn(a)))
	deniedRes := admin.createKey(t, o, `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)

	for _, ws := range []string{a, b} {
		code, body := admin.do(t, http.MethodPost, o.RemoteWriteURL(ws), writeBody(t, "secret_metric"), time.Now(), nil)
		require.Equal(t, http.StatusNoContent, code, body)
	}
	doc := `{"Version":"2012-10-17","Statement":[
		{"Sid":"share","Effect":"Allow","Principal":{"AWS":[` + user(guest) + `,` + user(both) + `,` + user(deniedOwn) + `]},
		 "Action":["aps:QueryMetrics","aps:RemoteWrite","aps:DescribeWorkspace"],"Resource":"` + arn(a) + `"},
		{"Sid":"fence","Effect":"Deny","Principal":{"AWS":` + user(deniedRes) + `},"Action":["aps:QueryMetrics","aps:DescribeWorkspace"],"Resource":"*"}]}`
	body, err := json.Marshal(map[string]string{"policyDocument": doc, "revisionId": "NO_POLICY"})
	require.NoError(t, err)
	code, resp := admin.do(t, http.MethodPut, "http://"+o.Addr+"/workspaces/"+a+"/policy", body, time.Now(), nil)
	require.Equal(t, http.StatusAccepted, code, resp)
	require.Contains(t, resp, `"policyStatus":"CREATING"`)

	query := func(ws string) string {
		return o.URL(ws, "/api/v1/query?query="+url.QueryEscape("count(secret_metric)"))
	}
	describe := func(ws string) string { return "http://" + o.Addr + "/workspaces/" + ws }
	cases := []struct {
		name   string
		s      signer
		method string
		url    string
		body   []byte
		code   int
	}{
		{"identity only: query A", own, http.MethodGet, query(a), nil, 200},
		{"identity only: query B", own, http.MethodGet, query(b), nil, 403},
		{"resource only: query A", guest, http.MethodGet, query(a), nil, 200},
		{"resource only: write A", guest, http.MethodPost, o.RemoteWriteURL(a), writeBody(t, "guest_metric"), 204},
		{"resource only: nothing on B (query)", guest, http.MethodGet, query(b), nil, 403},
		{"resource only: nothing on B (write)", guest, http.MethodPost, o.RemoteWriteURL(b), writeBody(t, "intruder"), 403},
		{"resource only: the control plane is not shared", guest, http.MethodGet, describe(a), nil, 403},
		{"resource only: nor is the policy", guest, http.MethodGet, describe(a) + "/policy", nil, 403},
		{"both: query A", both, http.MethodGet, query(a), nil, 200},
		{"denied by identity, allowed by resource", deniedOwn, http.MethodGet, query(a), nil, 403},
		{"denied by resource, allowed by identity: query A", deniedRes, http.MethodGet, query(a), nil, 403},
		{"denied by resource, allowed by identity: describe A", deniedRes, http.MethodGet, describe(a), nil, 403},
		{"A's Deny does not reach B: query", deniedRes, http.MethodGet, query(b), nil, 200},
		{"A's Deny does not reach B: describe", deniedRes, http.MethodGet, describe(b), nil, 200},
		{"A's Deny leaves what it does not name", deniedRes, http.MethodPost, o.RemoteWriteURL(a), writeBody(t, "allowed_metric"), 204},
		{"wrong key: A's key puts B's policy", own, http.MethodPut, describe(b) + "/policy", body, 403},
		{"wrong key: a guest of A puts A's policy", guest, http.MethodPut, describe(a) + "/policy", body, 403},
		{"wrong key: A's key configures A's query logging", own, http.MethodPost, describe(a) + "/logging/query", []byte(`{}`), 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body, errType := c.s.doErr(t, c.method, c.url, c.body, time.Now(), nil)
			require.Equal(t, c.code, code, body)
			if c.code == 403 {
				require.Equal(t, "AccessDeniedException", errType, body)
				require.NotContains(t, body, `"1"`, "nothing is read")
			}
		})
	}
	// Nothing was written to B, and B has no policy.
	code, resp = admin.do(t, http.MethodGet, describe(b)+"/policy", nil, time.Now(), nil)
	require.Equal(t, http.StatusNotFound, code, resp)
	code, resp = admin.do(t, http.MethodGet, o.URL(b, "/api/v1/query?query=count(intruder)"), nil, time.Now(), nil)
	require.Equal(t, http.StatusOK, code, resp)
	require.Contains(t, resp, `"result":[]`)

	// Deleting the policy takes the guest's grant away at once.
	code, resp = admin.do(t, http.MethodDelete, describe(a)+"/policy", nil, time.Now(), nil)
	require.Equal(t, http.StatusAccepted, code, resp)
	code, resp = guest.do(t, http.MethodGet, query(a), nil, time.Now(), nil)
	require.Equal(t, http.StatusForbidden, code, resp)

	// The audit log has the policy's changes, and the refused ones.
	logged(t, o, `msg=audit principal=`+adminKey+` action=aps:PutResourcePolicy resource=\S+`+a+` result=ok`,
		`msg=audit principal=`+adminKey+` action=aps:DeleteResourcePolicy resource=\S+`+a+` result=ok`,
		`msg=audit principal=unauthenticated action=aps:PutResourcePolicy resource=\S+`+b+` result="error 403"`,
		`msg=audit principal=unauthenticated action=aps:CreateQueryLoggingConfiguration resource=\S+`+a+` result="error 403"`)

	t.Run("query logging", func(t *testing.T) { queryLogging(t, o, dir, admin, own, a, b) })
	o.Stop()
}

// queryLogging configures workspace A's query logs with a threshold of one
// sample and checks which queries reach its file and the server log.
func queryLogging(t *testing.T, o *apptest.Orrery, dir string, admin, reader signer, a, b string) {
	cfg := `{"destinations":[{"cloudWatchLogs":{"logGroupArn":"arn:aws:logs:us-east-1:000000000000:log-group:q:*"},"filters":{"qspThreshold":1}}]}`
	code, resp := admin.do(t, http.MethodPost, "http://"+o.Addr+"/workspaces/"+a+"/logging/query", []byte(cfg), time.Now(), nil)
	require.Equal(t, http.StatusAccepted, code, resp)
	logged(t, o, `msg=audit principal=`+admin.key+` action=aps:CreateQueryLoggingConfiguration resource=\S+`+a+` result=ok`)

	for _, q := range []struct{ ws, expr string }{
		{a, "vector(1)"},            // No sample processed: under the threshold.
		{a, "count(secret_metric)"}, // Logged.
		{b, "count(secret_metric)"}, // B logs nothing.
	} {
		s := reader
		if q.ws == b {
			s = admin
		}
		code, resp := s.do(t, http.MethodGet, o.URL(q.ws, "/api/v1/query?query="+url.QueryEscape(q.expr)), nil, time.Now(), nil)
		require.Equal(t, http.StatusOK, code, resp)
	}
	end := time.Now().Add(-time.Second).Truncate(time.Second)
	rq := fmt.Sprintf("/api/v1/query_range?query=%s&start=%d&end=%d&step=15", url.QueryEscape("sum(secret_metric)"), end.Add(-time.Minute).Unix(), end.Unix())
	code, resp = reader.do(t, http.MethodGet, o.URL(a, rq), nil, time.Now(), nil)
	require.Equal(t, http.StatusOK, code, resp)

	f, err := os.Open(filepath.Join(dir, "querylogs", a+".jsonl"))
	require.NoError(t, err)
	defer f.Close()
	type line struct {
		Workspace, Principal, Query, Status string
		Start, End                          time.Time
		StepSeconds                         float64
		SamplesProcessed                    int64
		DurationSeconds                     float64
	}
	var got []line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		got = append(got, l)
	}
	require.Len(t, got, 2, "the instant query over the threshold and the range query")
	for _, l := range got {
		require.Equal(t, a, l.Workspace)
		require.Equal(t, reader.key, l.Principal)
		require.Equal(t, "success", l.Status)
		require.GreaterOrEqual(t, l.SamplesProcessed, int64(1))
	}
	require.Equal(t, "count(secret_metric)", got[0].Query)
	require.Equal(t, "sum(secret_metric)", got[1].Query)
	require.Equal(t, 15.0, got[1].StepSeconds)
	require.Equal(t, end.UTC(), got[1].End)
	_, err = os.Stat(filepath.Join(dir, "querylogs", b+".jsonl"))
	require.True(t, os.IsNotExist(err), "B logs nothing")
	logged(t, o, `msg=query component=querylog workspace=`+a+` principal=`+reader.key+` query=count\(secret_metric\) .* samples=1 status=success`)
}

// logged waits for the server's output to match each pattern: it reaches
// the test through a pipe, a moment after the answers.
func logged(t *testing.T, o *apptest.Orrery, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		require.Eventually(t, func() bool { return re.MatchString(o.Output()) }, 10*time.Second, 50*time.Millisecond, p)
	}
}
