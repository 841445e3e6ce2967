package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

const (
	adminKey    = "AKIAORRERYADMIN00001"
	adminSecret = "admin/secret/for/tests+0123456789abcdef"
)

// curlSigV4 queries url with curl's own SigV4 signing and returns status and body.
func curlSigV4(t *testing.T, key, secret, url string) (int, string) {
	t.Helper()
	out, err := exec.Command("curl", "-s", "-g", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:aps",
		"--user", key+":"+secret, url).Output()
	require.NoError(t, err)
	s := string(out)
	i := strings.LastIndex(s, "\n")
	var code int
	_, _ = fmt.Sscan(s[i+1:], &code)
	return code, s[:i]
}

// TestSigV4Enforced runs the server with --auth=sigv4: awscli (signing with
// the admin key) creates a workspace, the reference Prometheus 3 remote-
// writes to it with a sigv4 block, curl --aws-sigv4 queries it, and
// unsigned or badly signed requests are refused with nothing read.
func TestSigV4Enforced(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	dir := t.TempDir()
	o := apptest.StartOrrery(t, dir, "--auth=sigv4")
	b, err := os.ReadFile(filepath.Join(dir, "admin-key"))
	require.NoError(t, err)
	require.Contains(t, string(b), adminKey)
	require.NotContains(t, string(b), adminSecret, "a configured secret is not written to disk")

	var created struct {
		WorkspaceID string `json:"workspaceId"`
	}
	bin := "/usr/bin/aws"
	if _, err := os.Stat(bin); err != nil {
		bin = apptest.LookPath(t, "aws", "awscli")
	}
	cmd := exec.Command(bin, "amp", "create-workspace", "--alias", "signed", "--endpoint-url", "http://"+o.Addr, "--output", "json")
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+adminKey, "AWS_SECRET_ACCESS_KEY="+adminSecret, "AWS_DEFAULT_REGION=us-east-1",
		"HOME="+home, "AWS_CONFIG_FILE="+filepath.Join(home, "c"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "k"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, jsonUnmarshal(out, &created))
	ws := created.WorkspaceID

	// Unsigned awscli-like control-plane call is refused.
	resp, err := http.Get("http://" + o.Addr + "/workspaces")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, "MissingAuthenticationTokenException", resp.Header.Get("X-Amzn-ErrorType"))

	// Prometheus 3 remote-writes with SigV4.
	prom := apptest.ReferencePrometheus(t)
	node := startNodeExporter(t)
	cfg := writeSenderConfig(t, node, o.RemoteWriteURL(ws), fmt.Sprintf(`    sigv4:
      region: us-east-1
      access_key: %s
      secret_key: %s
`, adminKey, adminSecret))
	apptest.Start(t, "prometheus 3 agent (sigv4)", prom, "--agent", "--config.file="+cfg,
		"--storage.agent.path="+t.TempDir(), "--web.listen-address="+apptest.FreeAddr(t))
	// Encoded as every HTTP client library encodes it (curl signs raw
	// reserved characters in a query differently from AWS).
	query := o.URL(ws, "/api/v1/query?query="+url.QueryEscape(`up{job="node"}`))
	apptest.Eventually(t, 60*time.Second, func() error {
		code, body := curlSigV4(t, adminKey, adminSecret, query)
		if code != http.StatusOK || !strings.Contains(body, `"job":"node"`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	// Hostile requests: refused, and nothing is read.
	for name, c := range map[string]func() (int, string){
		"unsigned":     func() (int, string) { c, b := apptest.Get(t, query); return c, string(b) },
		"wrong secret": func() (int, string) { return curlSigV4(t, adminKey, "wrong", query) },
		"unknown key":  func() (int, string) { return curlSigV4(t, "AKIAUNKNOWN000000000", adminSecret, query) },
	} {
		code, body := c()
		require.Equal(t, http.StatusForbidden, code, name)
		require.NotContains(t, body, `"job":"node"`, name)
	}
	o.Stop()
}
