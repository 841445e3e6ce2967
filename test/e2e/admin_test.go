package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// orreryCLI runs an admin verb of the real binary with the given
// credentials in its environment.
func orreryCLI(t *testing.T, o *apptest.Orrery, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(apptest.OrreryBinary(t), append(args, "--url", "http://"+o.Addr)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// envValue returns the value of NAME=value in the CLI's output.
func envValue(t *testing.T, out, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `=(\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, m, "no %s in %q", name, out)
	return m[1]
}

// getBearer sends a GET with a bearer token.
func getBearer(t *testing.T, token, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, "")
	buf := make([]byte, 1<<16)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

// TestAdminCLIAndBearerTokens drives the orrery admin verbs against a server
// with --auth=sigv4: workspaces, least-privilege keys and bearer tokens.
// Debian's Prometheus 2.42 (which cannot sign) writes with a bearer token,
// promtool queries with another, and each token can do only what its
// policy says until it is revoked.
func TestAdminCLIAndBearerTokens(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	admin := []string{"AWS_ACCESS_KEY_ID=" + adminKey, "AWS_SECRET_ACCESS_KEY=" + adminSecret}

	out, err := orreryCLI(t, o, nil, "workspaces", "list")
	require.Error(t, err, "no credentials: refused")
	require.Contains(t, out, "MissingAuthenticationTokenException")

	out, err = orreryCLI(t, o, admin, "workspaces", "create", "--alias", "mesh")
	require.NoError(t, err, out)
	ws := strings.TrimSpace(out)
	require.Regexp(t, `^ws-[0-9a-f-]{36}$`, ws)
	out, err = orreryCLI(t, o, admin, "workspaces", "create", "--alias", "other")
	require.NoError(t, err, out)
	other := strings.TrimSpace(out)
	out, err = orreryCLI(t, o, admin, "workspaces", "list")
	require.NoError(t, err, out)
	require.Regexp(t, ws+`\s+mesh\s+ACTIVE`, out)
	out, err = orreryCLI(t, o, admin, "workspaces", "describe", ws)
	require.NoError(t, err, out)
	require.Contains(t, out, "http://"+o.Addr+"/workspaces/"+ws+"/")

	// A writer token for Debian's Prometheus, a query token for promtool.
	out, err = orreryCLI(t, o, admin, "tokens", "create", "--workspace", ws, "--access", "remote-write", "--description", "prometheus 2.42")
	require.NoError(t, err, out)
	writer := envValue(t, out, "ORRERY_TOKEN")
	out, err = orreryCLI(t, o, admin, "tokens", "create", "--workspace", ws, "--access", "query")
	require.NoError(t, err, out)
	reader := envValue(t, out, "ORRERY_TOKEN")
	out, err = orreryCLI(t, o, admin, "tokens", "list")
	require.NoError(t, err, out)
	require.Contains(t, out, "prometheus 2.42")
	require.NotContains(t, out, writer, "secrets are shown only once")

	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(writer), 0o600))
	node := startNodeExporter(t)
	cfg := writeSenderConfig(t, node, o.RemoteWriteURL(ws), fmt.Sprintf("    authorization:\n      credentials_file: %s\n", tokenFile))
	prom := apptest.LookPath(t, "prometheus", "prometheus")
	apptest.Start(t, "prometheus 2.42 agent (bearer)", prom, "--enable-feature=agent", "--config.file="+cfg,
		"--storage.agent.path="+t.TempDir(), "--web.listen-address="+apptest.FreeAddr(t))

	query := o.URL(ws, "/api/v1/query?query="+url.QueryEscape(`up{job="node"}`))
	apptest.Eventually(t, 60*time.Second, func() error {
		code, body := getBearer(t, reader, query)
		if code != http.StatusOK || !strings.Contains(body, `"job":"node"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	// promtool, which cannot sign, queries with the reader token (Debian's
	// 2.42 promtool has no --http.config.file; the reference 3.x has).
	httpCfg := filepath.Join(t.TempDir(), "http.yml")
	require.NoError(t, os.WriteFile(httpCfg, []byte("authorization:\n  credentials: "+reader+"\n"), 0o600))
	promtool := apptest.ReferencePromtool(t)
	pout, err := exec.Command(promtool, "query", "instant", "--http.config.file="+httpCfg, "http://"+o.Addr+"/workspaces/"+ws, `up{job="node"}`).CombinedOutput()
	require.NoError(t, err, "%s", pout)
	require.Contains(t, string(pout), `job="node"`)

	// Each token does only what its policy allows.
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("intruder", time.Now().UnixMilli(), 1)}}
	b, err := wr.Marshal()
	require.NoError(t, err)
	for name, c := range map[string]struct {
		token, method, url string
		body               []byte
		code               int
		errType            string
	}{
		"reader writes":        {reader, http.MethodPost, o.RemoteWriteURL(ws), b, http.StatusForbidden, "AccessDeniedException"},
		"reader reads other":   {reader, http.MethodGet, o.URL(other, "/api/v1/query?query=up"), nil, http.StatusForbidden, "AccessDeniedException"},
		"writer reads":         {writer, http.MethodGet, query, nil, http.StatusForbidden, "AccessDeniedException"},
		"reader control plane": {reader, http.MethodGet, "http://" + o.Addr + "/workspaces", nil, http.StatusForbidden, "AccessDeniedException"},
		"malformed token":      {"abc", http.MethodGet, query, nil, http.StatusUnauthorized, "UnrecognizedClientException"},
		"forged secret":        {reader[:len(reader)-4] + "AAAA", http.MethodGet, query, nil, http.StatusUnauthorized, "UnrecognizedClientException"},
	} {
		req, err := http.NewRequest(c.method, c.url, strings.NewReader(string(c.body)))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, c.code, resp.StatusCode, name)
		require.Equal(t, c.errType, resp.Header.Get("X-Amzn-ErrorType"), name)
	}
	v, err := queryVectorBearer(t, reader, o.URL(ws, "/api/v1"), "intruder")
	require.NoError(t, err)
	require.Empty(t, v, "a refused write stores nothing")

	// Revocation takes effect at once.
	out, err = orreryCLI(t, o, admin, "tokens", "list")
	require.NoError(t, err, out)
	readerID := strings.SplitN(strings.TrimPrefix(reader, "orrt_"), "_", 2)[0]
	out, err = orreryCLI(t, o, admin, "tokens", "revoke", readerID)
	require.NoError(t, err, out)
	code, _ := getBearer(t, reader, query)
	require.Equal(t, http.StatusUnauthorized, code)
	out, err = orreryCLI(t, o, admin, "tokens", "list")
	require.NoError(t, err, out)
	require.Regexp(t, readerID+`\s+revoked`, out)

	// Keys: a least-privilege key, listed and revoked.
	out, err = orreryCLI(t, o, admin, "keys", "create", "--workspace", ws, "--access", "query")
	require.NoError(t, err, out)
	key, secret := envValue(t, out, "AWS_ACCESS_KEY_ID"), envValue(t, out, "AWS_SECRET_ACCESS_KEY")
	code, body := curlSigV4(t, key, secret, query)
	require.Equal(t, http.StatusOK, code, body)
	out, err = orreryCLI(t, o, []string{"AWS_ACCESS_KEY_ID=" + key, "AWS_SECRET_ACCESS_KEY=" + secret}, "workspaces", "create")
	require.Error(t, err, "a query key cannot create workspaces")
	require.Contains(t, out, "AccessDeniedException")
	out, err = orreryCLI(t, o, admin, "keys", "list")
	require.NoError(t, err, out)
	require.Contains(t, out, key)
	require.Contains(t, out, adminKey)
	out, err = orreryCLI(t, o, admin, "keys", "revoke", key)
	require.NoError(t, err, out)
	code, _ = curlSigV4(t, key, secret, query)
	require.Equal(t, http.StatusForbidden, code)

	out, err = orreryCLI(t, o, admin, "workspaces", "delete", other)
	require.NoError(t, err, out)

	// Every mutating call left an audit line naming who did what.
	log := o.Output()
	require.Regexp(t, `msg=audit principal=`+adminKey+` action=aps:CreateWorkspace resource=\S+ result=ok`, log)
	require.Regexp(t, `msg=audit principal=`+adminKey+` action=orrery:RevokeAPIToken resource=\S+ result=ok`, log)
	require.Regexp(t, `msg=audit principal=`+adminKey+` action=aps:DeleteWorkspace resource=\S+`+other+` result=ok`, log)
	require.Regexp(t, `msg=audit principal=unauthenticated action=aps:CreateWorkspace resource=\S+ result="error 403"`, log)
	o.Stop()
}

// queryVectorBearer runs an instant query with a bearer token.
func queryVectorBearer(t *testing.T, token, api, q string) ([]any, error) {
	t.Helper()
	code, body := getBearer(t, token, api+"/query?query="+url.QueryEscape(q))
	if code != http.StatusOK {
		return nil, fmt.Errorf("%d %s", code, body)
	}
	var r struct {
		Data struct {
			Result []any `json:"result"`
		} `json:"data"`
	}
	if err := jsonUnmarshal([]byte(body), &r); err != nil {
		return nil, err
	}
	return r.Data.Result, nil
}

// TestHelp: every subcommand and admin verb answers --help with its usage
// and exit code 0.
func TestHelp(t *testing.T) {
	bin := apptest.OrreryBinary(t)
	for _, args := range [][]string{
		{"--help"}, {"help"},
		{"server", "--help"}, {"agent", "--help"}, {"loadgen", "--help"}, {"demo", "--help"}, {"mesh", "--help"}, {"migrate-to-cortex", "--help"},
		{"workspaces", "--help"}, {"keys", "--help"}, {"tokens", "--help"}, {"users", "--help"},
		{"tokens", "create", "--help"}, {"keys", "list", "-h"}, {"workspaces", "help"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		require.NoError(t, err, "orrery %s: %s", strings.Join(args, " "), out)
		require.NotContains(t, string(out), "unknown command", strings.Join(args, " "))
		require.Regexp(t, `(?i)usage|admin verbs`, string(out), strings.Join(args, " "))
	}
}
