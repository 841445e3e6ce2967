package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

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
