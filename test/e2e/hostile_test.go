package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

type signer struct{ key, secret string }

// do sends a request signed by the AWS SDK's signer; tamper, if set, edits
// the request after signing.
func (s signer) do(t *testing.T, method, u string, body []byte, at time.Time, tamper func(*http.Request)) (int, string) {
	code, b, _ := s.doErr(t, method, u, body, at, tamper)
	return code, b
}

// doErr is do that also returns the x-amzn-ErrorType header.
func (s signer) doErr(t *testing.T, method, u string, body []byte, at time.Time, tamper func(*http.Request)) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
	}
	sum := sha256.Sum256(body)
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret},
		req, hex.EncodeToString(sum[:]), "aps", "us-east-1", at))
	if tamper != nil {
		tamper(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("X-Amzn-ErrorType")
}

func (s signer) createWorkspace(t *testing.T, o *apptest.Orrery) string {
	code, body := s.do(t, http.MethodPost, "http://"+o.Addr+"/workspaces", []byte(`{}`), time.Now(), func(r *http.Request) {})
	require.Equal(t, http.StatusAccepted, code, body)
	var w struct{ WorkspaceID string }
	require.NoError(t, json.Unmarshal([]byte(body), &w))
	return w.WorkspaceID
}

func (s signer) createKey(t *testing.T, o *apptest.Orrery, policy string) signer {
	body, err := json.Marshal(map[string]string{"policy": policy})
	require.NoError(t, err)
	code, resp := s.do(t, http.MethodPost, "http://"+o.Addr+"/orrery/v1/accesskeys", body, time.Now(), nil)
	require.Equal(t, http.StatusCreated, code, resp)
	var k struct{ AccessKeyID, SecretAccessKey string }
	require.NoError(t, json.Unmarshal([]byte(resp), &k))
	return signer{k.AccessKeyID, k.SecretAccessKey}
}

// writeBody is a remote write request of one sample of metric name, 5 s
// old: Cortex evaluates a query without a time at the current second, so a
// sample of this very second would not be seen yet.
func writeBody(t *testing.T, name string) []byte {
	b, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts(name, time.Now().Add(-5*time.Second).UnixMilli(), 1)}}).Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

// scraperBody is a CreateScraper request scraping 127.0.0.1:1 into the
// workspace of arn.
func scraperBody(arn string) []byte {
	blob := base64.StdEncoding.EncodeToString([]byte("scrape_configs:\n  - job_name: x\n    static_configs:\n      - targets: ['127.0.0.1:1']\n"))
	return []byte(`{"source":{"vpcConfiguration":{"subnetIds":["subnet-1"],"securityGroupIds":["sg-1"]}},` +
		`"scrapeConfiguration":{"configurationBlob":"` + blob + `"},"destination":{"ampConfiguration":{"workspaceArn":"` + arn + `"}}}`)
}

// TestHostileMatrix checks each way a request may try to read or write
// what it was not granted: every case gets its status code, and nothing is
// written or read.
func TestHostileMatrix(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	hostileMatrix(t, o, o)
	o.Stop()
}

// hostileMatrix runs the matrix with workspaces, keys and writes made
// through w and reads (and the key revocation) through r: one server, or
// two replicas sharing a catalog.
func hostileMatrix(t *testing.T, w, r *apptest.Orrery) {
	admin := signer{adminKey, adminSecret}
	a, b := admin.createWorkspace(t, w), admin.createWorkspace(t, w)
	arn := func(ws string) string { return "arn:aws:aps:us-east-1:000000000000:workspace/" + ws }
	keyA := admin.createKey(t, w, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"aps:*","Resource":%q}]}`, arn(a)))
	reader := admin.createKey(t, w, `{"Statement":[{"Effect":"Allow","Action":["aps:QueryMetrics","aps:GetLabels"],"Resource":"*"}]}`)
	denied := admin.createKey(t, w, fmt.Sprintf(`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"aps:QueryMetrics","Resource":%q}]}`, arn(a)))
	revoked := admin.createKey(t, w, `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)
	code, body := admin.do(t, http.MethodDelete, "http://"+r.Addr+"/orrery/v1/accesskeys/"+revoked.key, nil, time.Now(), nil)
	require.Equal(t, http.StatusNoContent, code, body)

	// Seed both workspaces through the admin key.
	for _, ws := range []string{a, b} {
		code, body := admin.do(t, http.MethodPost, w.RemoteWriteURL(ws), writeBody(t, "secret_metric"), time.Now(), nil)
		require.Equal(t, http.StatusNoContent, code, body)
	}
	q := func(ws, metric string) string {
		return r.URL(ws, "/api/v1/query?query="+url.QueryEscape("count("+metric+")"))
	}
	count := func(ws, metric string) string {
		code, body := admin.do(t, http.MethodGet, q(ws, metric), nil, time.Now(), nil)
		require.Equal(t, http.StatusOK, code, body)
		return body
	}

	code, body = keyA.do(t, http.MethodGet, q(a, "secret_metric"), nil, time.Now(), nil)
	require.Equal(t, http.StatusOK, code, "key A reads workspace A: %s", body)
	require.Contains(t, body, `"1"`)

	cases := []struct {
		name   string
		s      signer
		method string
		url    string
		body   []byte
		at     time.Time
		tamper func(*http.Request)
		code   int
		errTyp string
	}{
		{"key for A reads B", keyA, http.MethodGet, q(b, "secret_metric"), nil, time.Now(), nil, 403, "AccessDeniedException"},
		{"key for A writes B", keyA, http.MethodPost, w.RemoteWriteURL(b), writeBody(t, "intruder"), time.Now(), nil, 403, "AccessDeniedException"},
		{"action not in policy", reader, http.MethodPost, w.RemoteWriteURL(a), writeBody(t, "intruder"), time.Now(), nil, 403, "AccessDeniedException"},
		{"explicit deny beats allow", denied, http.MethodGet, q(a, "secret_metric"), nil, time.Now(), nil, 403, "AccessDeniedException"},
		{"revoked key", revoked, http.MethodGet, q(a, "secret_metric"), nil, time.Now(), nil, 403, "UnrecognizedClientException"},
		{"wrong secret", signer{keyA.key, "wrong"}, http.MethodGet, q(a, "secret_metric"), nil, time.Now(), nil, 403, "SignatureDoesNotMatch"},
		{"date older than 5 minutes", keyA, http.MethodGet, q(a, "secret_metric"), nil, time.Now().Add(-6 * time.Minute), nil, 403, "InvalidSignatureException"},
		{"tampered body", keyA, http.MethodPost, w.RemoteWriteURL(a), writeBody(t, "legit"), time.Now(), func(r *http.Request) {
			tampered := writeBody(t, "intruder")
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(tampered)), int64(len(tampered))
		}, 403, "SignatureDoesNotMatch"},
		{"tampered signed header", keyA, http.MethodPost, w.RemoteWriteURL(a), writeBody(t, "intruder"), time.Now(), func(r *http.Request) {
			r.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		}, 403, "SignatureDoesNotMatch"},
		// A scraper writes into its destination as the server: creating
		// one needs aps:CreateScraper on the scraper resources, which a
		// key for workspace A does not have.
		{"key for A creates a scraper into B", keyA, http.MethodPost, "http://" + w.Addr + "/scrapers", scraperBody(arn(b)), time.Now(), nil, 403, "AccessDeniedException"},
		{"reader deletes a scraper", reader, http.MethodDelete, "http://" + w.Addr + "/scrapers/s-00000000-0000-4000-8000-000000000000", nil, time.Now(), nil, 403, "AccessDeniedException"},
		{"no auth", signer{}, http.MethodGet, q(a, "secret_metric"), nil, time.Now(), func(r *http.Request) {
			r.Header.Del("Authorization")
		}, 403, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body, errTyp := c.s.doErr(t, c.method, c.url, c.body, c.at, c.tamper)
			require.Equal(t, c.code, code, body)
			require.NotContains(t, body, `"1"`, "nothing is read")
			if c.errTyp != "" {
				require.Equal(t, c.errTyp, errTyp, body)
			}
		})
	}
	// A workspace that was never created, or was deleted, takes nothing.
	code, body = admin.do(t, http.MethodPost, w.RemoteWriteURL("ws-00000000-0000-4000-8000-000000000000"), writeBody(t, "x"), time.Now(), nil)
	require.Equal(t, http.StatusNotFound, code, body)

	// Nothing was written by any of them.
	for _, ws := range []string{a, b} {
		require.Contains(t, count(ws, "intruder"), `"result":[]`, ws)
		require.Contains(t, count(ws, "legit"), `"result":[]`, ws)
	}

}
