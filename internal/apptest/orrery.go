package apptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Orrery is a running `orrery server` process.
type Orrery struct {
	t       testing.TB
	Addr    string
	DataDir string
	args    []string
	proc    *Process
}

// StartOrrery starts `orrery server` on a free port with dataDir and extra
// flags, and waits until it is ready.
func StartOrrery(t testing.TB, dataDir string, extra ...string) *Orrery {
	t.Helper()
	auth := false
	for _, a := range extra {
		auth = auth || strings.HasPrefix(a, "--auth")
	}
	if !auth { // Tests run without authentication unless they ask for it.
		extra = append([]string{"--auth=none"}, extra...)
	}
	o := &Orrery{t: t, Addr: FreeAddr(t), DataDir: dataDir, args: extra}
	o.start()
	return o
}

func (o *Orrery) start() {
	o.t.Helper()
	args := append([]string{"server", "--listen", o.Addr, "--data-dir", o.DataDir}, o.args...)
	o.proc = Start(o.t, "orrery "+Args(args), OrreryBinary(o.t), args...)
	Eventually(o.t, 60*time.Second, func() error {
		if o.proc.Exited() {
			o.t.Fatalf("orrery server exited at start:\n%s", o.proc.Output())
		}
		resp, err := http.Get("http://" + o.Addr + "/-/ready")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ready: %s", resp.Status)
		}
		return nil
	})
}

// Flags returns the flags the server was started with, beyond --listen and
// --data-dir.
func (o *Orrery) Flags() []string { return append([]string(nil), o.args...) }

// Restart starts the server again on the same address and data directory
// after Stop or Kill.
func (o *Orrery) Restart() { o.start() }

// Stop shuts the server down with SIGTERM.
func (o *Orrery) Stop() { o.proc.Stop() }

// Kill ends the server with SIGKILL, as a crash would.
func (o *Orrery) Kill() { o.proc.Kill() }

// Output returns the server's log so far.
func (o *Orrery) Output() string { return o.proc.Output() }

// URL returns the URL of a path below a workspace, e.g. "/api/v1/query".
func (o *Orrery) URL(ws, path string) string {
	return "http://" + o.Addr + "/workspaces/" + ws + path
}

// RemoteWriteURL returns a workspace's remote write endpoint.
func (o *Orrery) RemoteWriteURL(ws string) string { return o.URL(ws, "/api/v1/remote_write") }

// Write sends a remote write 1.0 request and returns the status and body.
func Write(t testing.TB, url string, wr *prompb.WriteRequest) (int, string) {
	t.Helper()
	b, err := wr.Marshal()
	if err != nil {
		t.Fatalf("marshal write request: %v", err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Get fetches url and returns the status and body.
func Get(t testing.TB, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp.StatusCode, b
}

// APIResponse is the Prometheus HTTP API envelope.
type APIResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

// Vector is an instant query result.
type Vector []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Matrix is a range query result.
type Matrix []struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

// API calls a Prometheus API endpoint (base is a server or workspace API
// URL prefix ending in /api/v1) and decodes the envelope.
func API(t testing.TB, base, endpoint string, params url.Values) (int, APIResponse) {
	t.Helper()
	code, b := Get(t, base+endpoint+"?"+params.Encode())
	var r APIResponse
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("GET %s%s: %d, not API JSON: %v: %s", base, endpoint, code, err, b)
	}
	return code, r
}

// QueryVector runs an instant query and decodes a vector result.
func QueryVector(t testing.TB, base, query string, at time.Time) (Vector, error) {
	t.Helper()
	code, r := API(t, base, "/query", url.Values{"query": {query}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}})
	if code != http.StatusOK || r.Status != "success" {
		return nil, fmt.Errorf("query %q: %d %s: %s", query, code, r.ErrorType, r.Error)
	}
	var env struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &env); err != nil {
		return nil, err
	}
	if env.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", query, env.ResultType)
	}
	var v Vector
	return v, json.Unmarshal(env.Result, &v)
}

// Signal sends sig to the server process.
func (o *Orrery) Signal(sig os.Signal) {
	o.t.Helper()
	if err := o.proc.cmd.Process.Signal(sig); err != nil {
		o.t.Fatalf("signal orrery: %v", err)
	}
}
