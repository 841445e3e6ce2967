package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// cortexCluster is PostgreSQL, a real Cortex and two Orrery replicas of the
// Cortex engine sharing the catalog and the secrets key.
type cortexCluster struct {
	cortex *apptest.Cortex
	a, b   *apptest.Orrery
	admin  signer
}

func startCortexCluster(t *testing.T) *cortexCluster {
	t.Helper()
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	pg := apptest.StartPostgres(t)
	db := pg.NewDatabase(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	cx := apptest.StartCortex(t)
	flags := []string{"--auth=sigv4", "--db", db, "--secrets-key-file", key, "--engine=cortex", "--cortex.url", cx.URL(),
		"--rules.poll-interval=1s"}
	return &cortexCluster{
		cortex: cx,
		a:      apptest.StartOrrery(t, t.TempDir(), flags...),
		b:      apptest.StartOrrery(t, t.TempDir(), flags...),
		admin:  signer{adminKey, adminSecret},
	}
}

func ampAdmin(o *apptest.Orrery) *amp.Client {
	return amp.New(amp.Options{BaseEndpoint: aws.String("http://" + o.Addr), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(adminKey, adminSecret, "")})
}

// writeSigned sends a remote write 1.0 request signed with SigV4.
func (s signer) write(t *testing.T, u string, wr *prompb.WriteRequest) (int, string) {
	t.Helper()
	b, err := wr.Marshal()
	require.NoError(t, err)
	return s.do(t, http.MethodPost, u, snappy.Encode(nil, b), time.Now(), nil)
}

// postJSON sends a signed POST with a JSON body.
func (s signer) postJSON(t *testing.T, u string, body []byte) (int, string) {
	t.Helper()
	return s.post(t, u, "application/json", body)
}

// post sends a signed POST.
func (s signer) post(t *testing.T, u, contentType string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	sum := sha256.Sum256(body)
	require.NoError(t, v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret},
		req, hex.EncodeToString(sum[:]), "aps", "us-east-1", time.Now()))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// apiData returns the status, and the data of a Prometheus API answer
// (re-indented, vectors sorted), or its error.
func (s signer) apiData(t *testing.T, u string) (int, string) {
	t.Helper()
	code, body := s.do(t, http.MethodGet, u, nil, time.Now(), nil)
	return code, apiDataOf(t, []byte(body))
}

func apiDataOf(t *testing.T, body []byte) string {
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return string(body)
	}
	if env.Status != "success" {
		return "error: " + env.Error
	}
	// Series and label values are sets: Cortex merges them from its
	// ingesters in another order than one TSDB's.
	var list []json.RawMessage
	if json.Unmarshal(env.Data, &list) == nil {
		sort.Slice(list, func(i, j int) bool { return bytes.Compare(list[i], list[j]) < 0 })
		env.Data, _ = json.Marshal(list)
	}
	return normalize(t, fmt.Appendf(nil, `{"data":%s}`, env.Data), false)
}

// TestCortexEngineRefusesSQLite: without PostgreSQL, or without an admin
// key given to every replica, the mode would keep local state, so it does
// not start.
func TestCortexEngineRefusesSQLite(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", "")
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", "")
	out, err := exec.Command(apptest.OrreryBinary(t), "server", "--engine=cortex", "--cortex.url=http://127.0.0.1:1",
		"--data-dir", t.TempDir(), "--listen", apptest.FreeAddr(t)).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "--db postgres://")

	// Nor does it generate an admin key only one replica's disk would keep.
	out, err = exec.Command(apptest.OrreryBinary(t), "server", "--engine=cortex", "--cortex.url=http://127.0.0.1:1",
		"--db", "postgres://orrery@127.0.0.1:1/x", "--secrets-key-file", filepath.Join(t.TempDir(), "k"),
		"--data-dir", t.TempDir(), "--listen", apptest.FreeAddr(t)).CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "ORRERY_ADMIN_ACCESS_KEY_ID")
}

// TestCortexEngineReplicas runs the AMP flow against two replicas over one
// PostgreSQL catalog and one Cortex: a workspace made on A takes signed
// remote write on A and answers on B exactly as the embedded engine does
// with the same data; rules made on B evaluate in Cortex and their output
// reads on A; an alert manager definition round-trips; workspaces stay
// isolated.
func TestCortexEngineReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, Cortex and three servers")
	}
	ctx := context.Background()
	c := startCortexCluster(t)
	created, err := ampAdmin(c.a).CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("mesh")})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)

	// The same Envoy data (counters, classic and native histograms, a
	// stale series) through replica A into Cortex, and into an embedded
	// server as the reference.
	ref := apptest.StartOrrery(t, t.TempDir(), "--limits.ingestion-rate=0")
	refWS := workspace.NewID().String()
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	data := envoyDataset(end)
	for i := 0; i < len(data); i += 20 {
		batch := &prompb.WriteRequest{Timeseries: data[i:min(i+20, len(data))]}
		code, body := c.admin.write(t, c.a.RemoteWriteURL(ws), batch)
		require.Equal(t, http.StatusNoContent, code, body)
		code, body = apptest.Write(t, ref.RemoteWriteURL(refWS), batch)
		require.Equal(t, http.StatusNoContent, code, body)
	}

	t.Run("queries on B answer as the embedded engine", func(t *testing.T) {
		queries := differentialQueries
		at := []time.Time{end, end.Add(-15 * time.Minute), end.Add(-37*time.Minute - 7*time.Second)}
		compare := func(endpoint string, params url.Values) {
			t.Helper()
			q := params.Encode()
			codeR, bodyR := apptest.Get(t, ref.URL(refWS, "/api/v1"+endpoint+"?"+q))
			codeB, dataB := c.admin.apiData(t, c.b.URL(ws, "/api/v1"+endpoint+"?"+q))
			require.Equal(t, codeR, codeB, "%s?%s: status (%s)", endpoint, q, dataB)
			dataR := apiDataOf(t, bodyR)
			if strings.HasPrefix(dataR, "error: ") {
				// Cortex's Prometheus API names the parameter less:
				// "1:6: parse error: …" for "invalid parameter \"query\": 1:6: parse error: …".
				require.True(t, strings.HasPrefix(dataB, "error: "), "%s?%s: %s", endpoint, q, dataB)
				require.Contains(t, dataR, strings.TrimPrefix(dataB, "error: "), "%s?%s", endpoint, q)
				return
			}
			require.Equal(t, dataR, dataB, "%s?%s", endpoint, q)
		}
		for _, query := range queries {
			for _, ts := range at {
				compare("/query", url.Values{"query": {query}, "time": {fmt.Sprint(ts.Unix())}})
			}
			compare("/query_range", url.Values{"query": {query}, "start": {fmt.Sprint(end.Add(-time.Hour).Unix())},
				"end": {fmt.Sprint(end.Unix())}, "step": {"30"}})
		}
		// A signed POST of a form reaches Cortex with its body.
		form := url.Values{"query": {`sum(envoy_server_live)`}, "time": {fmt.Sprint(end.Unix())}}
		code, body := c.admin.post(t, c.b.URL(ws, "/api/v1/query"), "application/x-www-form-urlencoded", []byte(form.Encode()))
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"6"`)
		compare("/series", url.Values{"match[]": {`{__name__=~"envoy_.*", pod="frontend-1"}`},
			"start": {fmt.Sprint(end.Add(-time.Hour).Unix())}, "end": {fmt.Sprint(end.Unix())}})
		compare("/label/envoy_cluster_name/values", url.Values{"start": {fmt.Sprint(end.Add(-time.Hour).Unix())}, "end": {fmt.Sprint(end.Unix())}})
	})

	t.Run("rules created on B evaluate in Cortex and read on A", func(t *testing.T) {
		_, err := ampAdmin(c.b).CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws),
			Name: aws.String("envoy"), Data: []byte(`groups:
  - name: totals
    interval: 1s
    rules:
      - record: envoy:rq:sum
        expr: sum(envoy_cluster_upstream_rq_total)
`)})
		require.NoError(t, err)
		want := func() string {
			_, body := apptest.Get(t, ref.URL(refWS, "/api/v1/query?query="+url.QueryEscape("sum(envoy_cluster_upstream_rq_total)")))
			var v struct {
				Data struct{ Result []struct{ Value []any } }
			}
			require.NoError(t, json.Unmarshal(body, &v))
			require.Len(t, v.Data.Result, 1)
			return v.Data.Result[0].Value[1].(string)
		}()
		apptest.Eventually(t, 60*time.Second, func() error {
			_, got := c.admin.apiData(t, c.a.URL(ws, "/api/v1/query?query="+url.QueryEscape("envoy:rq:sum")))
			if !strings.Contains(got, `"`+want+`"`) {
				return fmt.Errorf("envoy:rq:sum on A is %s, want %s", got, want)
			}
			return nil
		})
		code, body := c.admin.do(t, http.MethodGet, c.a.URL(ws, "/api/v1/rules"), nil, time.Now(), nil)
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"name":"totals"`)

		// A group lost by Cortex (as if a push had failed) is pushed
		// again by the replicas' resync.
		cortexRules := func(method string) (int, string) {
			req, _ := http.NewRequest(method, c.cortex.URL()+"/api/v1/rules"+map[bool]string{true: "/envoy"}[method == http.MethodDelete], nil)
			req.Header.Set("X-Scope-OrgID", ws)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		code, body = cortexRules(http.MethodDelete)
		require.Equal(t, http.StatusAccepted, code, body)
		apptest.Eventually(t, 30*time.Second, func() error {
			if _, body := cortexRules(http.MethodGet); !strings.Contains(body, "name: totals") {
				return fmt.Errorf("cortex rules: %s", body)
			}
			return nil
		})

		// Deleting on A removes the group from Cortex.
		_, err = ampAdmin(c.a).DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws), Name: aws.String("envoy")})
		require.NoError(t, err)
		apptest.Eventually(t, 30*time.Second, func() error {
			_, body := c.admin.do(t, http.MethodGet, c.b.URL(ws, "/api/v1/rules"), nil, time.Now(), nil)
			if strings.Contains(body, `"name":"totals"`) {
				return fmt.Errorf("group still listed: %s", body)
			}
			return nil
		})
	})

	t.Run("alert manager definition round-trips", func(t *testing.T) {
		base := func(o *apptest.Orrery) string { return o.URL(ws, "/alertmanager/api/v2") }
		_, err := ampAdmin(c.a).CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(ws),
			Data: []byte("alertmanager_config: |\n  route:\n    receiver: orrery-null\n    group_by: [alertname]\n  receivers:\n    - name: orrery-null\n")})
		require.NoError(t, err)
		apptest.Eventually(t, 30*time.Second, func() error {
			code, body := c.admin.do(t, http.MethodGet, base(c.b)+"/status", nil, time.Now(), nil)
			if code != http.StatusOK || !strings.Contains(body, "orrery-null") {
				return fmt.Errorf("status on B: %d %.200s", code, body)
			}
			return nil
		})
		alert := fmt.Appendf(nil, `[{"labels":{"alertname":"EnvoyDown","cluster":"payments"},"startsAt":%q}]`, time.Now().Format(time.RFC3339))
		code, body := c.admin.postJSON(t, base(c.b)+"/alerts", alert)
		require.Equal(t, http.StatusOK, code, body)
		apptest.Eventually(t, 30*time.Second, func() error {
			_, body := c.admin.do(t, http.MethodGet, base(c.a)+"/alerts", nil, time.Now(), nil)
			if !strings.Contains(body, "EnvoyDown") {
				return fmt.Errorf("alerts on A: %.300s", body)
			}
			return nil
		})
		def, err := ampAdmin(c.b).DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: aws.String(ws)})
		require.NoError(t, err)
		require.Contains(t, string(def.AlertManagerDefinition.Data), "orrery-null")
		_, err = ampAdmin(c.b).DeleteAlertManagerDefinition(ctx, &amp.DeleteAlertManagerDefinitionInput{WorkspaceId: aws.String(ws)})
		require.NoError(t, err)
		apptest.Eventually(t, 30*time.Second, func() error {
			if code, body := c.admin.do(t, http.MethodGet, base(c.a)+"/status", nil, time.Now(), nil); code/100 == 2 {
				return fmt.Errorf("status on A after delete: %d %.200s", code, body)
			}
			return nil
		})
	})

	t.Run("UTF-8 names are accepted as in the embedded engine", func(t *testing.T) {
		now := time.Now().UnixMilli()
		wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "envoy.cluster.upstream_rq"}, {Name: "service.name", Value: "cart"}},
			Samples: []prompb.Sample{{Timestamp: now, Value: 42}},
		}}}
		code, body := c.admin.write(t, c.a.RemoteWriteURL(ws), wr)
		require.Equal(t, http.StatusNoContent, code, body)
		q := "/api/v1/query?query=" + url.QueryEscape(`{"envoy.cluster.upstream_rq", "service.name"="cart"}`)
		apptest.Eventually(t, 20*time.Second, func() error {
			code, data := c.admin.apiData(t, c.b.URL(ws, q))
			if code != http.StatusOK || !strings.Contains(data, `"42"`) {
				return fmt.Errorf("%d: %s", code, data)
			}
			return nil
		})
	})

	t.Run("workspaces are isolated", func(t *testing.T) {
		other, err := ampAdmin(c.b).CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("other")})
		require.NoError(t, err)
		ws2 := aws.ToString(other.WorkspaceId)
		k2 := c.admin.createKey(t, c.a, fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"aps:*","Resource":"arn:aws:aps:us-east-1:000000000000:workspace/%s"}]}`, ws2))
		q := "/api/v1/query?query=" + url.QueryEscape("count(envoy_server_live)")
		// B's key cannot read A's workspace, on either replica.
		for _, o := range []*apptest.Orrery{c.a, c.b} {
			code, body := k2.do(t, http.MethodGet, o.URL(ws, q), nil, time.Now(), nil)
			require.Equal(t, http.StatusForbidden, code, body)
		}
		// Its own workspace shows none of A's data, even when it names A's
		// tenant itself.
		code, data := k2.apiData(t, c.b.URL(ws2, q))
		require.Equal(t, http.StatusOK, code, data)
		require.Contains(t, data, `"result": []`)
		code, body := k2.do(t, http.MethodGet, c.b.URL(ws2, q), nil, time.Now(), func(r *http.Request) { r.Header.Set("X-Scope-OrgID", ws) })
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"result":[]`)
		code, data = c.admin.apiData(t, c.a.URL(ws, q))
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, data, `"6"`)
		// Deleting a workspace on one replica: neither serves it any more,
		// and Cortex no longer has its rules.
		_, err = ampAdmin(c.b).CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(ws2),
			Name: aws.String("doomed"), Data: []byte("groups:\n  - name: g\n    rules:\n      - record: x\n        expr: vector(1)\n")})
		require.NoError(t, err)
		_, err = ampAdmin(c.a).DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(ws2)})
		require.NoError(t, err)
		apptest.Eventually(t, 30*time.Second, func() error {
			for _, o := range []*apptest.Orrery{c.a, c.b} {
				if code, _ := c.admin.do(t, http.MethodGet, o.URL(ws2, q), nil, time.Now(), nil); code != http.StatusNotFound {
					return errStatus(code)
				}
			}
			req, _ := http.NewRequest(http.MethodGet, c.cortex.URL()+"/api/v1/rules", nil)
			req.Header.Set("X-Scope-OrgID", ws2)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				return fmt.Errorf("cortex still has rules of the deleted workspace: %s", resp.Status)
			}
			return nil
		})
		// A forged signature writes nothing.
		code, body = k2.do(t, http.MethodPost, c.a.RemoteWriteURL(ws2), writeBody(t, "forged"), time.Now(), func(r *http.Request) {
			r.Header.Set("X-Amz-Date", time.Now().Add(-time.Hour).UTC().Format("20060102T150405Z"))
		})
		require.Equal(t, http.StatusForbidden, code, body)
	})
}

// TestCortexEngineReplicaKilledUnderLoad kills replica A with SIGKILL while
// senders write to both replicas, each retrying a failed request on the
// other: every sample a replica acknowledged is in Cortex afterwards.
func TestCortexEngineReplicaKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, Cortex and two servers")
	}
	ctx := context.Background()
	c := startCortexCluster(t)
	created, err := ampAdmin(c.a).CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("load")})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)

	const senders = 4
	start := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	stop := make(chan struct{})
	acked := make([][]int64, senders)
	retried := make([]int, senders)
	done := make(chan int, senders)
	for i := range senders {
		go func() {
			defer func() { done <- i }()
			urls := []string{c.a.RemoteWriteURL(ws), c.b.RemoteWriteURL(ws)}
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				at := start.UnixMilli() + int64(seq)*5
				wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("load_total", at, float64(seq), "sender", fmt.Sprint(i))}}
				body, _ := wr.Marshal()
				body = snappy.Encode(nil, body)
				for try := 0; ; try++ {
					u := urls[(seq+i+try)%2]
					code, ok := c.admin.tryDo(u, body)
					if ok && code == http.StatusNoContent {
						acked[i] = append(acked[i], at)
						break
					}
					retried[i]++
					if try > 50 {
						t.Errorf("sender %d: sample %d not acknowledged by either replica", i, seq)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(3 * time.Second)
	c.a.Kill()
	time.Sleep(3 * time.Second)
	close(stop)
	for range senders {
		<-done
	}

	total, retries := 0, 0
	for i := range senders {
		total += len(acked[i])
		retries += retried[i]
		q := fmt.Sprintf(`load_total{sender="%d"}[5m]`, i)
		code, body := c.admin.do(t, http.MethodGet, c.b.URL(ws, "/api/v1/query?query="+url.QueryEscape(q)), nil, time.Now(), nil)
		require.Equal(t, http.StatusOK, code, body)
		var res struct {
			Data struct {
				Result []struct{ Values [][]any }
			}
		}
		require.NoError(t, json.Unmarshal([]byte(body), &res))
		require.Len(t, res.Data.Result, 1)
		stored := map[int64]bool{}
		for _, v := range res.Data.Result[0].Values {
			stored[int64(v[0].(float64)*1000+0.5)] = true
		}
		lost := 0
		for _, ts := range acked[i] {
			if !stored[ts] {
				lost++
			}
		}
		require.Zero(t, lost, "sender %d: %d of %d acknowledged samples are not in Cortex", i, lost, len(acked[i]))
	}
	require.Positive(t, retries, "no request failed over: the kill did not hit the load")
	t.Logf("%d samples acknowledged by the replicas, all in Cortex; %d requests retried on the other replica after A was killed", total, retries)
}

// tryDo sends a signed remote write and reports the status, or ok false if
// the server did not answer.
func (s signer) tryDo(u string, body []byte) (int, bool) {
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret},
		req, hex.EncodeToString(sum[:]), "aps", "us-east-1", time.Now()); err != nil {
		return 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, true
}

// TestCortexEngineOverrides: `orrery server --cortex.print-overrides`
// renders every workspace's limits as Cortex's runtime configuration; once
// Cortex has loaded it, Cortex enforces what a replica cannot decide alone:
// the HA pair election shared by all replicas, a workspace's active series.
func TestCortexEngineOverrides(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, Cortex and two servers")
	}
	ctx := context.Background()
	c := startCortexCluster(t)
	created, err := ampAdmin(c.a).CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("small")})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)
	limits := writeFile(t, fmt.Sprintf("overrides:\n  %s:\n    max_active_series: 2\n    retention_period: 30d\n"+
		"    limits_per_label_set:\n    - {label_set: {job: payments}, max_series: 1000}\n", ws))
	// A configuration set through the API that sets no label sets keeps
	// the limits file's: they reach Cortex (a bug once dropped them).
	_, err = ampAdmin(c.a).UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(ws),
		RetentionPeriodInDays: aws.Int32(30)})
	require.NoError(t, err)

	args := append([]string{"server", "--cortex.print-overrides", "--limits-file", limits, "--data-dir", t.TempDir()}, c.a.Flags()...)
	cmd := exec.Command(apptest.OrreryBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	require.Contains(t, string(out), "max_global_series_per_user: 2")
	require.Contains(t, string(out), "compactor_blocks_retention_period: 720h0m0s")
	require.Regexp(t, `limits_per_label_set:\n\s+- label_set:\n\s+job: payments\n\s+limits:\n\s+max_series: 1000\n`, string(out))
	require.NoError(t, os.WriteFile(c.cortex.RuntimeConfig, out, 0o600))
	apptest.Eventually(t, 30*time.Second, func() error {
		_, body := apptest.Get(t, c.cortex.URL()+"/runtime_config")
		if !strings.Contains(string(body), ws) {
			return fmt.Errorf("cortex has not loaded the overrides yet")
		}
		return nil
	})

	// HA pairs: Cortex's tracker elects one replica for all Orrery
	// replicas; the other's samples are answered 202 and dropped.
	other, err := ampAdmin(c.a).CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("ha")})
	require.NoError(t, err)
	haWS := aws.ToString(other.WorkspaceId)
	out, err = exec.Command(apptest.OrreryBinary(t), args...).Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "accept_ha_samples: true")
	require.NoError(t, os.WriteFile(c.cortex.RuntimeConfig, out, 0o600))
	apptest.Eventually(t, 30*time.Second, func() error {
		_, body := apptest.Get(t, c.cortex.URL()+"/runtime_config")
		if !strings.Contains(string(body), haWS) {
			return fmt.Errorf("cortex has not loaded the overrides yet")
		}
		return nil
	})
	at := time.Now().Add(-10 * time.Second).UnixMilli()
	for i, w := range []struct {
		o       *apptest.Orrery
		replica string
		code    int
	}{{c.a, "r1", http.StatusNoContent}, {c.b, "r2", http.StatusAccepted}, {c.b, "r1", http.StatusNoContent}, {c.a, "r2", http.StatusAccepted}} {
		code, body := c.admin.write(t, w.o.RemoteWriteURL(haWS), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			ts("envoy_server_live", at+int64(i)*1000, float64(i), "cluster", "east", "__replica__", w.replica)}})
		require.Equal(t, w.code, code, "write %d from %s: %s", i, w.replica, body)
	}
	code, body := c.admin.do(t, http.MethodGet, c.b.URL(haWS, "/api/v1/query?query="+url.QueryEscape("envoy_server_live[1m]")), nil, time.Now(), nil)
	require.Equal(t, http.StatusOK, code, body)
	var res struct {
		Data struct {
			Result []struct {
				Metric map[string]string
				Values [][]any
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &res))
	require.Len(t, res.Data.Result, 1, body)
	require.Equal(t, map[string]string{"__name__": "envoy_server_live", "cluster": "east"}, res.Data.Result[0].Metric, "the replica label is dropped")
	var values []string
	for _, v := range res.Data.Result[0].Values {
		values = append(values, v[1].(string))
	}
	require.Equal(t, []string{"0", "2"}, values, "only the elected replica's samples are stored")

	now := time.Now().UnixMilli()
	for i, want := range []int{http.StatusNoContent, http.StatusNoContent, http.StatusBadRequest} {
		code, body := c.admin.write(t, c.b.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			ts("envoy_server_live", now, 1, "pod", fmt.Sprint(i))}})
		require.Equal(t, want, code, "series %d: %s", i, body)
		if want == http.StatusBadRequest {
			require.Contains(t, body, "per-user series limit")
		}
	}

	// With --cortex.overrides-file a replica keeps Cortex's runtime
	// configuration itself, from the catalog: a retention set through
	// another replica reaches Cortex without anyone printing anything.
	flags := append(c.a.Flags(), "--cortex.overrides-file", c.cortex.RuntimeConfig, "--limits-file", limits)
	apptest.StartOrrery(t, t.TempDir(), flags...)
	_, err = ampAdmin(c.b).UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(haWS),
		RetentionPeriodInDays: aws.Int32(7)})
	require.NoError(t, err)
	apptest.Eventually(t, 30*time.Second, func() error {
		_, body := apptest.Get(t, c.cortex.URL()+"/runtime_config")
		if !regexp.MustCompile(haWS + `:\n(\s+.*\n)*?\s+compactor_blocks_retention_period: (1w|168h0m0s)\n`).Match(body) {
			return fmt.Errorf("cortex has not loaded the new retention of %s yet:\n%s", haWS, body)
		}
		if !strings.Contains(string(body), "max_global_series_per_user: 2") {
			return fmt.Errorf("the limits file's overrides are missing:\n%s", body)
		}
		return nil
	})
}

// TestCortexEnginePrometheusSigV4Sender has the reference Prometheus 3, in
// agent mode, scrape node_exporter and send SigV4-signed remote write 2.0
// to replica A; the data and its metadata read on replica B from Cortex.
func TestCortexEnginePrometheusSigV4Sender(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, Cortex, two servers and Prometheus")
	}
	prom := apptest.ReferencePrometheus(t)
	ctx := context.Background()
	c := startCortexCluster(t)
	created, err := ampAdmin(c.a).CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("node")})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)
	node := startNodeExporter(t)
	cfg := writeSenderConfig(t, node, c.a.RemoteWriteURL(ws), fmt.Sprintf(
		"    protobuf_message: io.prometheus.write.v2.Request\n    sigv4:\n      region: us-east-1\n      access_key: %s\n      secret_key: %s\n",
		adminKey, adminSecret))
	p := apptest.Start(t, "prometheus 3 agent", prom, "--agent", "--enable-feature=metadata-wal-records", "--config.file="+cfg,
		"--storage.agent.path="+t.TempDir(), "--web.listen-address="+apptest.FreeAddr(t))
	query := func(q string) string {
		_, data := c.admin.apiData(t, c.b.URL(ws, "/api/v1/query?query="+url.QueryEscape(q)))
		return data
	}
	apptest.Eventually(t, 60*time.Second, func() error {
		if got := query(`up{job="node"}`); !strings.Contains(got, `"1"`) {
			return fmt.Errorf("up on B: %s", got)
		}
		if got := query(`count(rate(node_cpu_seconds_total[10s]))`); strings.Contains(got, `"result": []`) {
			return fmt.Errorf("no rate of node_cpu_seconds_total yet")
		}
		return nil
	})
	apptest.Eventually(t, 30*time.Second, func() error {
		_, data := c.admin.apiData(t, c.b.URL(ws, "/api/v1/metadata?metric=node_cpu_seconds_total"))
		if !strings.Contains(data, `"counter"`) {
			return fmt.Errorf("metadata of node_cpu_seconds_total on B: %s", data)
		}
		return nil
	})
	_, m := c.admin.do(t, http.MethodGet, "http://"+c.a.Addr+"/metrics", nil, time.Now(), nil)
	require.Contains(t, m, `orrery_ingest_requests_total{code="204",version="2"}`)
	require.NotContains(t, p.Output(), "level=ERROR", "the sender logged no error")
}

// TestCortexEngineHostileMatrix runs the hostile-auth matrix against two
// Cortex-engine replicas: workspaces, keys and writes through A, reads and
// the key revocation through B.
func TestCortexEngineHostileMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, Cortex and two servers")
	}
	c := startCortexCluster(t)
	hostileMatrix(t, c.a, c.b)
}
