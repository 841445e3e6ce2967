package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/klauspost/compress/snappy"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// maxAttackGrowth bounds how much the server's resident memory may grow
// above its idle size while it is under one of the attacks below.
const maxAttackGrowth = 256 << 20

// zeros is an endless reader of zero bytes, for large bodies the test does
// not hold in memory.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// letters is an endless reader of the letter x.
type letters struct{}

func (letters) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// underAttack runs attack n times in parallel against o and returns how far
// the server's peak resident memory rose above its idle size meanwhile.
func underAttack(t *testing.T, o *apptest.Orrery, n int, attack func(i int)) int64 {
	t.Helper()
	idle := o.Memory().RSS
	o.ResetPeak()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { attack(i) })
	}
	wg.Wait()
	growth := o.Memory().Peak - idle
	t.Logf("idle RSS %d MiB, peak growth under attack %d MiB", idle>>20, growth>>20)
	return growth
}

// sendLarge POSTs size zero bytes to u with the given headers and returns
// the status code, or 0 when the server closed the connection before
// answering (a refusal too: it did not read the body).
func sendLarge(t *testing.T, u string, size int64, hdr http.Header) int {
	req, err := http.NewRequest(http.MethodPost, u, io.LimitReader(zeros{}, size))
	require.NoError(t, err)
	req.ContentLength = size
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// forgedSigV4 is the Authorization header of a SigV4 signature made with an
// access key the server does not know.
func forgedSigV4(now time.Time) http.Header {
	return http.Header{
		"Authorization": {fmt.Sprintf("AWS4-HMAC-SHA256 Credential=AKIANOSUCHKEY0000000/%s/us-east-1/aps/aws4_request, "+
			"SignedHeaders=host;x-amz-date, Signature=%064d", now.UTC().Format("20060102"), 0)},
		"X-Amz-Date":       {now.UTC().Format("20060102T150405Z")},
		"Content-Encoding": {"snappy"},
		"Content-Type":     {"application/x-protobuf"},
	}
}

// TestAnonymousLargeBodies: 16 parallel 60 MB POSTs signed with a key that
// does not exist, to remote write and to the control plane, are refused
// without the server reading their bodies; an admin's 60 MB body to the
// control plane is refused at the control plane's own limit.
func TestAnonymousLargeBodies(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	ws := signer{adminKey, adminSecret}.createWorkspace(t, o)
	growth := underAttack(t, o, 16, func(i int) {
		u := o.RemoteWriteURL(ws)
		if i%2 == 1 {
			u = "http://" + o.Addr + "/workspaces"
		}
		code := sendLarge(t, u, 60<<20, forgedSigV4(time.Now()))
		require.NotEqual(t, http.StatusOK, code)
		require.NotEqual(t, http.StatusNoContent, code)
		require.NotEqual(t, http.StatusAccepted, code)
	})
	require.LessOrEqual(t, growth, int64(maxAttackGrowth), "memory growth under 16 anonymous 60 MB bodies")
	o.Stop()
}

// TestSnappyBomb: 64 parallel 6-byte remote write bodies, each claiming to
// decompress to 64 MiB, are refused before anything of that size is
// allocated, and nothing of the sort is kept.
func TestSnappyBomb(t *testing.T) {
	o := apptest.StartOrrery(t, t.TempDir())
	// The length varint of 64 MiB, then one literal byte.
	bomb := append(binary.AppendUvarint(nil, 64<<20), 0x00, 'x')
	require.Len(t, bomb, 6)
	u := o.RemoteWriteURL("ws-00000000-0000-4000-8000-000000000001")
	growth := underAttack(t, o, 64, func(int) {
		for range 4 {
			req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(bomb))
			require.NoError(t, err)
			req.Header.Set("Content-Encoding", "snappy")
			req.Header.Set("Content-Type", "application/x-protobuf")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
		}
	})
	require.LessOrEqual(t, growth, int64(maxAttackGrowth), "memory growth under 64 parallel snappy bombs")
	rss := o.Memory().RSS
	t.Logf("RSS after the attack: %d MiB", rss>>20)
	o.Stop()
}

// TestSlowClients: connections sending a request body one byte a second
// are closed at --web.read-timeout, and beyond --web.max-concurrent-requests
// requests get 503 with Retry-After while probes still answer.
func TestSlowClients(t *testing.T) {
	o := apptest.StartOrrery(t, t.TempDir(), "--web.read-timeout=3s", "--web.max-concurrent-requests=10")
	const n = 20
	head := "POST /workspaces/ws-00000000-0000-4000-8000-000000000001/api/v1/remote_write HTTP/1.1\r\n" +
		"Host: " + o.Addr + "\r\nContent-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n"
	closed := make(chan time.Duration, n)
	start := time.Now()
	for range n {
		c, err := net.Dial("tcp", o.Addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		_, err = io.WriteString(c, head)
		require.NoError(t, err)
		go func() { // One byte a second, until the server closes.
			for {
				if _, err := c.Write([]byte{0}); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
		go func() { // Read the answer and wait for the server to close.
			_, _ = io.Copy(io.Discard, c)
			closed <- time.Since(start)
		}()
	}
	time.Sleep(500 * time.Millisecond)
	resp, err := http.Get(o.URL("ws-00000000-0000-4000-8000-000000000001", "/api/v1/query?query=1"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "10 slow uploads hold every slot")
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	code, _ := apptest.Get(t, "http://"+o.Addr+"/-/ready")
	require.Equal(t, http.StatusOK, code, "probes are always answered")

	timeout := time.After(30 * time.Second)
	for i := range n {
		select {
		case d := <-closed:
			require.Less(t, d, 10*time.Second, "connection %d closed after %s", i, d)
		case <-timeout:
			t.Fatalf("%d of %d slow connections still open after 30 s", n-i, n)
		}
	}
	code, _ = apptest.Get(t, o.URL("ws-00000000-0000-4000-8000-000000000001", "/api/v1/query?query=1"))
	require.Equal(t, http.StatusOK, code, "served again once the slow clients are gone")
	o.Stop()
}

// TestLoginFlood: 48 parallel logins with distinct unknown user names cost
// at most a few password hashes' memory: hashing is bounded and logins are
// limited per address.
func TestLoginFlood(t *testing.T) {
	o := apptest.StartOrrery(t, t.TempDir())
	codes := make([]int, 48)
	growth := underAttack(t, o, 48, func(i int) {
		body := fmt.Sprintf(`{"name":"nobody%d","password":"guess"}`, i)
		resp, err := http.Post("http://"+o.Addr+"/ui/api/login", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		codes[i] = resp.StatusCode
	})
	limited := 0
	for _, c := range codes {
		require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusServiceUnavailable}, c)
		if c != http.StatusUnauthorized {
			limited++
		}
	}
	t.Logf("%d of 48 logins limited", limited)
	require.Positive(t, limited, "logins from one address are limited whatever the names")
	require.LessOrEqual(t, growth, int64(maxAttackGrowth), "memory growth under 48 parallel logins")
	o.Stop()
}

// TestLargeAPIBodies: 150 MB bodies to a workspace's Alertmanager API, with
// and without a length, directly and through the UI's proxy, are refused at
// the API's limit rather than read whole.
func TestLargeAPIBodies(t *testing.T) {
	t.Setenv("ORRERY_UI_ADMIN_PASSWORD", uiAdminPassword)
	o := apptest.StartOrrery(t, t.TempDir())
	ctx := context.Background()
	client := ampClient(o)
	created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)
	_, err = client.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(ws), Data: []byte(uiAlertmanager)})
	require.NoError(t, err)
	ui, csrf, _ := sessionClient(t, "http://"+o.Addr, "admin", uiAdminPassword)
	urls := []string{o.URL(ws, "/alertmanager/api/v2/alerts"), "http://" + o.Addr + "/ui/api/workspaces/" + ws + "/alertmanager/api/v2/silences",
		o.URL(ws, "/alertmanager/api/v2/silences"), "http://" + o.Addr + "/ui/api/workspaces/" + ws + "/dashboards"}
	growth := underAttack(t, o, 8, func(i int) {
		// Valid JSON, so that nothing refuses it at its first bytes.
		head, tail := `[{"labels":{"alertname":"`, `"}}]`
		size := int64(150 << 20)
		body := io.MultiReader(strings.NewReader(head), io.LimitReader(letters{}, size-int64(len(head)+len(tail))), strings.NewReader(tail))
		req, err := http.NewRequest(http.MethodPost, urls[i%len(urls)], body)
		require.NoError(t, err)
		if i < 4 {
			req.ContentLength = size
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", csrf)
		resp, err := ui.Do(req)
		if err != nil {
			return // Closed before the body was sent: refused.
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		require.GreaterOrEqual(t, resp.StatusCode, 400, urls[i%len(urls)])
	})
	require.LessOrEqual(t, growth, int64(maxAttackGrowth), "memory growth under 150 MB API bodies")
	o.Stop()
}

// TestDenseSnappyBodies: 32 parallel bodies of 3 MB that do decode to
// 64 MiB each (snappy's densest, within the ratio a real body can reach)
// are held to --ingest.max-inflight-bytes together: the others get 503.
func TestDenseSnappyBodies(t *testing.T) {
	o := apptest.StartOrrery(t, t.TempDir())
	dense := snappy.Encode(nil, make([]byte, 64<<20))
	t.Logf("%d bytes decode to 64 MiB", len(dense))
	u := o.RemoteWriteURL("ws-00000000-0000-4000-8000-000000000002")
	var refused, refusedOther sync.Map
	growth := underAttack(t, o, 32, func(i int) {
		req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(dense))
		require.NoError(t, err)
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusServiceUnavailable:
			require.Equal(t, "1", resp.Header.Get("Retry-After"))
			refused.Store(i, true)
		case http.StatusBadRequest: // Decoded: zeros are no protobuf.
		default:
			refusedOther.Store(i, resp.StatusCode)
		}
	})
	n := 0
	refused.Range(func(any, any) bool { n++; return true })
	t.Logf("%d of 32 refused with 503", n)
	refusedOther.Range(func(k, v any) bool { t.Errorf("request %v: %v", k, v); return true })
	require.Positive(t, n)
	require.LessOrEqual(t, growth, int64(maxAttackGrowth), "memory growth under 32 parallel 64 MiB bodies")
	o.Stop()
}
