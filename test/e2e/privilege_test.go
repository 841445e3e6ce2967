package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// bearerDo sends a request with a bearer token and returns status and body.
func bearerDo(t *testing.T, token, method, u string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// createToken makes a bearer token with policy through s.
func (s signer) createToken(t *testing.T, o *apptest.Orrery, policy string) string {
	t.Helper()
	body, err := json.Marshal(map[string]string{"policy": policy})
	require.NoError(t, err)
	code, resp := s.do(t, http.MethodPost, "http://"+o.Addr+"/orrery/v1/tokens", body, time.Now(), nil)
	require.Equal(t, http.StatusCreated, code, resp)
	var tok struct{ Token string }
	require.NoError(t, json.Unmarshal([]byte(resp), &tok))
	return tok.Token
}

// TestMintingWithinOwnPermissions: a credential allowed to create tokens
// or keys hands out no more than its own policy allows.
func TestMintingWithinOwnPermissions(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	admin := signer{adminKey, adminSecret}
	a, b := admin.createWorkspace(t, o), admin.createWorkspace(t, o)
	arn := func(ws string) string { return "arn:aws:aps:us-east-1:000000000000:workspace/" + ws }
	minter := admin.createToken(t, o, `{"Statement":[{"Effect":"Allow","Action":["orrery:CreateAPIToken","orrery:CreateAccessKey"],"Resource":"*"}]}`)
	tenantA := admin.createToken(t, o, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"aps:*","Resource":%q},{"Effect":"Allow","Action":"orrery:CreateAPIToken","Resource":"*"}]}`, arn(a)))
	everything := `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`
	for _, c := range []struct {
		name, token, path, policy string
		code                      int
	}{
		{"token-only minter mints Action:*", minter, "/orrery/v1/tokens", everything, http.StatusForbidden},
		{"token-only minter mints an Action:* key", minter, "/orrery/v1/accesskeys", everything, http.StatusForbidden},
		{"token-only minter mints a reader of B", minter, "/orrery/v1/tokens", fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":%q}]}`, arn(b)), http.StatusForbidden},
		{"tenant A mints for B", tenantA, "/orrery/v1/tokens", fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":%q}]}`, arn(b)), http.StatusForbidden},
		{"tenant A mints a reader of A", tenantA, "/orrery/v1/tokens", fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":%q}]}`, arn(a)), http.StatusCreated},
		{"a minter mints another minter", minter, "/orrery/v1/tokens", `{"Statement":[{"Effect":"Allow","Action":"orrery:CreateAPIToken","Resource":"*"}]}`, http.StatusCreated},
	} {
		t.Run(c.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]string{"policy": c.policy})
			require.NoError(t, err)
			code, resp := bearerDo(t, c.token, http.MethodPost, "http://"+o.Addr+c.path, body)
			require.Equal(t, c.code, code, resp)
			if c.code == http.StatusForbidden {
				require.Contains(t, resp, "does not allow")
			}
		})
	}
	o.Stop()
}

// TestOperatorEndpoints: with authentication on, /metrics (which names
// every workspace) and /debug/pprof/ need a credential allowing
// orrery:GetMetrics or orrery:GetProfile; the probes stay open.
func TestOperatorEndpoints(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	admin := signer{adminKey, adminSecret}
	ws := admin.createWorkspace(t, o)
	scraper := admin.createToken(t, o, `{"Statement":[{"Effect":"Allow","Action":"orrery:GetMetrics","Resource":"*"}]}`)
	tenant := admin.createToken(t, o, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"aps:*","Resource":"arn:aws:aps:us-east-1:000000000000:workspace/%s"}]}`, ws))
	base := "http://" + o.Addr
	for _, path := range []string{"/-/ready", "/-/healthy"} {
		code, _ := apptest.Get(t, base+path)
		require.Equal(t, http.StatusOK, code, path)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/symbol", "/debug/pprof/heap"} {
		code, body := apptest.Get(t, base+path)
		require.Equal(t, http.StatusForbidden, code, "anonymous %s", path)
		require.NotContains(t, string(body), ws)
		code, _ = bearerDo(t, tenant, http.MethodGet, base+path, nil)
		require.Equal(t, http.StatusForbidden, code, "a tenant's token on %s", path)
	}
	code, body := bearerDo(t, scraper, http.MethodGet, base+"/metrics", nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "orrery_http_requests_refused_total")
	code, _ = bearerDo(t, scraper, http.MethodGet, base+"/debug/pprof/", nil)
	require.Equal(t, http.StatusForbidden, code, "the scraper does not profile")
	code, body = admin.do(t, http.MethodGet, base+"/debug/pprof/heap?debug=1", nil, time.Now(), nil)
	require.Equal(t, http.StatusOK, code, body)
	o.Stop()
}

// TestSigV4ForeignRegion: with --region us-east-1, requests signed for
// eu-west-1 (curl --aws-sigv4 and awscli) are refused naming the region.
func TestSigV4ForeignRegion(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4", "--region", "us-east-1")
	ws := signer{adminKey, adminSecret}.createWorkspace(t, o)
	out, err := exec.Command("curl", "-s", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:eu-west-1:aps", "--user", adminKey+":"+adminSecret,
		o.URL(ws, "/api/v1/query?query=up")).Output()
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(string(out), "\n403"), string(out))
	require.Contains(t, string(out), "this server's region is 'us-east-1'")
	bin := "/usr/bin/aws"
	if _, err := os.Stat(bin); err != nil {
		bin = apptest.LookPath(t, "aws", "awscli")
	}
	cmd := exec.Command(bin, "amp", "list-workspaces", "--region", "eu-west-1", "--endpoint-url", "http://"+o.Addr)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+adminKey, "AWS_SECRET_ACCESS_KEY="+adminSecret, "HOME="+t.TempDir(), "AWS_EC2_METADATA_DISABLED=true")
	b, err := cmd.CombinedOutput()
	require.Error(t, err, string(b))
	require.Contains(t, string(b), "region", string(b))
	code, _ := curlSigV4(t, adminKey, adminSecret, o.URL(ws, "/api/v1/query?query=up"))
	require.Equal(t, http.StatusOK, code, "us-east-1 still works")
	o.Stop()
}

// TestCredentialsForMissingWorkspaces: keys, tokens and users for a
// workspace id that does not exist are refused with NotFound.
func TestCredentialsForMissingWorkspaces(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	ws := signer{adminKey, adminSecret}.createWorkspace(t, o)
	env := []string{"ORRERY_ADMIN_ACCESS_KEY_ID=" + adminKey, "ORRERY_ADMIN_SECRET_ACCESS_KEY=" + adminSecret, "ORRERY_USER_PASSWORD=a-long-password"}
	const missing = "ws-00000000-0000-4000-8000-000000000000"
	for _, args := range [][]string{
		{"tokens", "create", "--workspace", missing, "--access", "query"},
		{"keys", "create", "--workspace", missing, "--access", "read-write"},
		{"users", "create", "--name", "ghost", "--role", "viewer", "--workspaces", ws + "," + missing},
	} {
		out, err := orreryCLI(t, o, env, args...)
		require.Error(t, err, "%v: %s", args, out)
		require.Contains(t, out, "does not exist", "%v", args)
		require.Contains(t, out, "404", "%v", args)
	}
	for _, args := range [][]string{
		{"tokens", "create", "--workspace", ws, "--access", "query"},
		{"keys", "create", "--workspace", ws, "--access", "read-write"},
		{"users", "create", "--name", "ana", "--role", "viewer", "--workspaces", ws},
	} {
		out, err := orreryCLI(t, o, env, args...)
		require.NoError(t, err, "%v: %s", args, out)
	}
	o.Stop()
}

// TestUnsignedPayloads: writes signed with UNSIGNED-PAYLOAD or through a
// presigned URL are refused; presigned queries are capped at
// --auth.max-presigned-lifetime.
func TestUnsignedPayloads(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	admin := signer{adminKey, adminSecret}
	ws := admin.createWorkspace(t, o)
	creds := aws.Credentials{AccessKeyID: adminKey, SecretAccessKey: adminSecret}
	ctx := context.Background()

	req, err := http.NewRequest(http.MethodPost, o.RemoteWriteURL(ws), bytes.NewReader(writeBody(t, "unsigned_body")))
	require.NoError(t, err)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	require.NoError(t, v4.NewSigner().SignHTTP(ctx, creds, req, "UNSIGNED-PAYLOAD", "aps", "us-east-1", time.Now()))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, string(b))
	require.Contains(t, string(b), "writes must sign their body")

	presign := func(method, u string, expires time.Duration) string {
		r, err := http.NewRequest(method, fmt.Sprintf("%s%sX-Amz-Expires=%d", u, map[bool]string{true: "&", false: "?"}[strings.Contains(u, "?")], int(expires.Seconds())), nil)
		require.NoError(t, err)
		signed, _, err := v4.NewSigner().PresignHTTP(ctx, creds, r, "UNSIGNED-PAYLOAD", "aps", "us-east-1", time.Now())
		require.NoError(t, err)
		return signed
	}
	resp, err = http.Post(presign(http.MethodPost, o.RemoteWriteURL(ws), 5*time.Minute), "application/x-protobuf", bytes.NewReader(writeBody(t, "presigned_body")))
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, string(b))

	query := o.URL(ws, "/api/v1/query?query=up")
	code, body := apptest.Get(t, presign(http.MethodGet, query, 15*time.Minute))
	require.Equal(t, http.StatusOK, code, "a presigned query within the cap: %s", body)
	code, body = apptest.Get(t, presign(http.MethodGet, query, 7*24*time.Hour))
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, string(body), "caps presigned URLs at 15m0s")

	for _, name := range []string{"unsigned_body", "presigned_body"} {
		code, body := admin.do(t, http.MethodGet, o.URL(ws, "/api/v1/query?query=count("+name+")"), nil, time.Now(), nil)
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"result":[]`, "nothing was written")
	}
	o.Stop()
}

// TestStateFileModes: every file the server leaves in its data directory
// is readable by its user only, and every directory is 0700.
func TestStateFileModes(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", "")
	dir := filepath.Join(t.TempDir(), "data")
	o := apptest.StartOrrery(t, dir, "--auth=sigv4")
	b, err := os.ReadFile(filepath.Join(dir, "admin-key"))
	require.NoError(t, err)
	var admin signer
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ORRERY_ADMIN_ACCESS_KEY_ID="); ok {
			admin.key = v
		}
		if v, ok := strings.CutPrefix(line, "ORRERY_ADMIN_SECRET_ACCESS_KEY="); ok {
			admin.secret = v
		}
	}
	ws := admin.createWorkspace(t, o)
	code, body := admin.do(t, http.MethodPost, o.RemoteWriteURL(ws), writeBody(t, "mode_test"), time.Now(), nil)
	require.Equal(t, http.StatusNoContent, code, body)
	o.Stop()
	files := 0
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), p)
			return nil
		}
		files++
		require.Zero(t, fi.Mode().Perm()&0o077, "%s is %v", p, fi.Mode().Perm())
		return nil
	}))
	require.Greater(t, files, 5, "catalog, keys, the workspace's WAL")
	_, err = os.Stat(filepath.Join(dir, "catalog.db"))
	require.NoError(t, err)
}

// TestAdminAccessCoversTheWorkspace: a key made with --access admin
// manages its workspace's rule groups namespaces, and nothing of another
// workspace.
func TestAdminAccessCoversTheWorkspace(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	root := signer{adminKey, adminSecret}
	ws, other := root.createWorkspace(t, o), root.createWorkspace(t, o)
	env := []string{"ORRERY_ADMIN_ACCESS_KEY_ID=" + adminKey, "ORRERY_ADMIN_SECRET_ACCESS_KEY=" + adminSecret}
	out, err := orreryCLI(t, o, env, "keys", "create", "--workspace", ws, "--access", "admin")
	require.NoError(t, err, out)
	key := signer{envValue(t, out, "AWS_ACCESS_KEY_ID"), envValue(t, out, "AWS_SECRET_ACCESS_KEY")}
	rules, err := json.Marshal(map[string]any{"name": "envoy", "data": []byte("groups:\n- name: a\n  rules:\n  - record: x\n    expr: up\n")})
	require.NoError(t, err)
	base := "http://" + o.Addr + "/workspaces/"
	for _, c := range []struct {
		method, url string
		body        []byte
		code        int
	}{
		{http.MethodPost, base + ws + "/rulegroupsnamespaces", rules, http.StatusAccepted},
		{http.MethodGet, base + ws + "/rulegroupsnamespaces/envoy", nil, http.StatusOK},
		{http.MethodGet, base + ws + "/rulegroupsnamespaces", nil, http.StatusOK},
		{http.MethodDelete, base + ws + "/rulegroupsnamespaces/envoy", nil, http.StatusAccepted},
		{http.MethodPost, base + other + "/rulegroupsnamespaces", rules, http.StatusForbidden},
		{http.MethodGet, base + other, nil, http.StatusForbidden},
	} {
		code, body := key.do(t, c.method, c.url, c.body, time.Now(), nil)
		require.Equal(t, c.code, code, "%s %s: %s", c.method, c.url, body)
	}
	o.Stop()
}
