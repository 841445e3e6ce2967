package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// sampleRecorder is a remote write 1.0 receiver that counts how often it
// received each sample of orrery_test_scrapes_total (by timestamp), stale
// markers aside.
type sampleRecorder struct {
	mu   sync.Mutex
	seen map[int64]int
	down bool // Answer 503, as a receiver in an outage.
}

func (r *sampleRecorder) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

func startSampleRecorder(t *testing.T) (*sampleRecorder, string) {
	r := &sampleRecorder{seen: map[int64]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err == nil {
			body, err = snappy.Decode(nil, body)
		}
		var wr prompb.WriteRequest
		if err == nil {
			err = wr.Unmarshal(body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		for _, ts := range wr.Timeseries {
			for _, l := range ts.Labels {
				if l.Name == "__name__" && l.Value == "orrery_test_scrapes_total" {
					for _, s := range ts.Samples {
						// Not the stale marker the scrape loop writes when
						// a scrape of the paused target fails: no served
						// sample.
						if !value.IsStaleNaN(s.Value) {
							r.seen[s.Timestamp]++
						}
					}
				}
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// counts returns how many distinct samples arrived and how many of the
// arrivals repeated one.
func (r *sampleRecorder) counts() (distinct, repeated int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.seen {
		distinct++
		repeated += n - 1
	}
	return distinct, repeated
}

// TestAgentRestartResendsLittle restarts the agent, after an orderly stop
// and after SIGKILL, while its receiver is up: every sample the target
// served arrives, and of those already delivered only the last second's (a
// crash: the last seconds') are sent again. Before the agent read the WAL
// from the position its first pass ended, it sent the first pass' samples
// of the last minute again, and the watermark could be 15 s old at a crash.
func TestAgentRestartResendsLittle(t *testing.T) {
	t.Parallel()
	target := startCounterTarget(t)
	rec, url := startSampleRecorder(t)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: counter
    static_configs: [{targets: [%q]}]
remote_write:
  - url: %q
    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 2s}
`, target.addr, url+"/api/v1/write")
	wal := t.TempDir()
	waitFor := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool { d, _ := rec.counts(); return d >= n }, 30*time.Second, 100*time.Millisecond)
	}
	// "outage": the receiver is down from before the stop until after the
	// restart, so the restarted agent first sends a backlog from its WAL.
	for _, restart := range []string{"stop", "kill", "outage"} {
		agent, _ := startAgent(t, config, wal, "--flush-deadline=2s")
		d, _ := rec.counts()
		waitFor(d + 10)
		_, before := rec.counts()
		switch restart {
		case "stop":
			agent.Stop()
		case "kill":
			agent.Kill()
		case "outage":
			rec.setDown(true)
			time.Sleep(5 * time.Second)
			agent.Stop()
		}
		agent, _ = startAgent(t, config, wal, "--flush-deadline=2s")
		if restart == "outage" {
			time.Sleep(5 * time.Second)
			rec.setDown(false)
		}
		d, _ = rec.counts()
		waitFor(d + 5)
		served := target.pause(true)
		// A sample scraped just before the stop may still be in the WAL,
		// not yet read by the queue: it is sent at the next start, not
		// flushed. Give the last scrape time to arrive; a sample lost
		// across the restarts above never does.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if d, _ := rec.counts(); d >= served {
				break
			}
		}
		agent.Stop()
		target.pause(false)
		d, repeated := rec.counts()
		t.Logf("after %s: %d samples resent (%d served, %d distinct received)", restart, repeated-before, served, d)
		require.Equal(t, served, d, "every sample served arrives")
		// The queues report what they sent in whole seconds: the samples
		// of the last second are sent again, and after a crash those sent
		// since the watermark was last written (every second).
		if restart == "kill" {
			require.LessOrEqual(t, repeated-before, 3, "a crash resends the last seconds at most")
		} else {
			require.LessOrEqual(t, repeated-before, 1, "an orderly stop resends the last second at most")
		}
	}
}
