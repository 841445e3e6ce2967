package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestAuditNamesResources: every mutating call, of the APIs and of the web
// UI, leaves an audit line naming the resource it acted on.
func TestAuditNamesResources(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	t.Setenv("ORRERY_UI_ADMIN_PASSWORD", uiAdminPassword)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	admin := signer{adminKey, adminSecret}
	base := "http://" + o.Addr
	ws := admin.createWorkspace(t, o)
	def, err := json.Marshal(map[string][]byte{"data": []byte(uiAlertmanager)})
	require.NoError(t, err)
	code, body := admin.do(t, http.MethodPost, base+"/workspaces/"+ws+"/alertmanager/definition", def, time.Now(), nil)
	require.Equal(t, http.StatusAccepted, code, body)

	// The API: tokens, keys, users.
	policy := fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":"arn:aws:aps:us-east-1:000000000000:workspace/%s"}]}`, ws)
	token := admin.createToken(t, o, policy)
	tokenID := strings.Split(token, "_")[1]
	code, body = admin.do(t, http.MethodDelete, base+"/orrery/v1/tokens/"+tokenID, nil, time.Now(), nil)
	require.Equal(t, http.StatusNoContent, code, body)
	key := admin.createKey(t, o, policy)
	code, body = admin.do(t, http.MethodDelete, base+"/orrery/v1/accesskeys/"+key.key, nil, time.Now(), nil)
	require.Equal(t, http.StatusNoContent, code, body)
	user, err := json.Marshal(map[string]any{"name": "ana", "role": "viewer", "workspaces": []string{ws}, "password": "ana-password"})
	require.NoError(t, err)
	code, body = admin.do(t, http.MethodPost, base+"/orrery/v1/users", user, time.Now(), nil)
	require.Equal(t, http.StatusCreated, code, body)

	// The UI: users, dashboards, silences.
	c, csrf, _ := sessionClient(t, base, "admin", uiAdminPassword)
	ui := func(method, path, body string, want int) string {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", csrf)
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, path, b)
		return string(b)
	}
	ui("POST", "/ui/api/users", fmt.Sprintf(`{"name":"bo","role":"editor","workspaces":[%q]}`, ws), http.StatusCreated)
	ui("PUT", "/ui/api/users/bo", `{"role":"viewer"}`, http.StatusOK)
	ui("POST", "/ui/api/workspaces/"+ws+"/dashboards", `{"title":"Mesh","uid":"mesh","panels":[]}`, http.StatusOK)
	ui("PUT", "/ui/api/workspaces/"+ws+"/dashboards/mesh", `{"title":"Mesh 2","panels":[]}`, http.StatusOK)
	ui("DELETE", "/ui/api/workspaces/"+ws+"/dashboards/mesh", ``, http.StatusNoContent)
	now := time.Now().UTC()
	var silence struct{ SilenceID string }
	apptest.Eventually(t, 30*time.Second, func() error {
		req, _ := http.NewRequest("POST", base+"/ui/api/workspaces/"+ws+"/alertmanager/api/v2/silences", strings.NewReader(fmt.Sprintf(
			`{"matchers":[{"name":"alertname","value":"X","isRegex":false}],"startsAt":%q,"endsAt":%q,"createdBy":"admin","comment":"audit"}`,
			now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", csrf)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("create silence: %d %s", resp.StatusCode, b)
		}
		return json.Unmarshal(b, &silence)
	})
	ui("DELETE", "/ui/api/workspaces/"+ws+"/alertmanager/api/v2/silence/"+silence.SilenceID, ``, http.StatusOK)
	ui("DELETE", "/ui/api/users/bo", ``, http.StatusNoContent)
	o.Stop()

	type line struct{ principal, action, resource, result string }
	var lines []line
	re := regexp.MustCompile(`msg=audit (?:component=\S+ )?principal=(\S+) action=(\S+) resource=(\S+) result=("[^"]*"|\S+)`)
	for _, m := range re.FindAllStringSubmatch(o.Output(), -1) {
		lines = append(lines, line{m[1], m[2], m[3], m[4]})
	}
	arn := "arn:aws:aps:us-east-1:000000000000:workspace/" + ws
	for _, want := range []line{
		{adminKey, "orrery:CreateAPIToken", "token/" + tokenID, "ok"},
		{adminKey, "orrery:RevokeAPIToken", "token/" + tokenID, "ok"},
		{adminKey, "orrery:CreateAccessKey", "accesskey/" + key.key, "ok"},
		{adminKey, "orrery:RevokeAccessKey", "accesskey/" + key.key, "ok"},
		{adminKey, "orrery:CreateUser", "user/ana", "ok"},
		{adminKey, "aps:CreateAlertManagerDefinition", arn, "ok"},
		{"ui/admin", "ui:Login", "session", "ok"},
		{"ui/admin", "ui:CreateUser", "user/bo", "ok"},
		{"ui/admin", "ui:UpdateUser", "user/bo", "ok"},
		{"ui/admin", "ui:PutDashboard", "workspace/" + ws + "/dashboard/mesh", "ok"},
		{"ui/admin", "ui:DeleteDashboard", "workspace/" + ws + "/dashboard/mesh", "ok"},
		{"ui/admin", "ui:PutAlertManagerSilences", "workspace/" + ws + "/silences", "ok"},
		{"ui/admin", "ui:DeleteAlertManagerSilence", "workspace/" + ws + "/silence/" + silence.SilenceID, "ok"},
		{"ui/admin", "ui:DeleteUser", "user/bo", "ok"},
	} {
		require.Contains(t, lines, want)
	}
	for _, l := range lines {
		if strings.HasPrefix(l.action, "orrery:") && !strings.Contains(l.action, "List") {
			require.NotEqual(t, "*", l.resource, "%+v", l)
		}
	}
}
