package mesh

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Traffic sends GET requests to a URL at a configurable rate, as users of
// the frontend would. Requests beyond MaxInFlight concurrent ones are
// skipped, not queued. Its methods are safe for concurrent use.
type Traffic struct {
	url         string
	client      *http.Client
	maxInFlight int64

	rps                   atomic.Int64 // Requests per second; 0 pauses.
	inFlight              atomic.Int64
	sent, ok, failed, skp atomic.Int64
}

// TrafficStats counts the requests sent so far.
type TrafficStats struct {
	Sent, OK, Failed, Skipped int64
	RequestsPerSecond         int
}

func newTraffic(url string, rps int) *Traffic {
	t := &Traffic{url: url, maxInFlight: 256,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	t.rps.Store(int64(rps))
	return t
}

// SetRate changes the rate, in requests per second (0 pauses).
func (t *Traffic) SetRate(rps int) { t.rps.Store(int64(max(rps, 0))) }

// Stats returns the counts so far.
func (t *Traffic) Stats() TrafficStats {
	return TrafficStats{Sent: t.sent.Load(), OK: t.ok.Load(), Failed: t.failed.Load(), Skipped: t.skp.Load(),
		RequestsPerSecond: int(t.rps.Load())}
}

// run sends requests until ctx ends, then waits for those in flight.
func (t *Traffic) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	defer t.client.CloseIdleConnections()
	next := time.Now()
	for {
		rps := t.rps.Load()
		if rps <= 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
				next = time.Now()
				continue
			}
		}
		next = next.Add(time.Second / time.Duration(rps))
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		} else if d < -time.Second {
			next = time.Now() // Far behind (a paused machine): do not burst.
		}
		if ctx.Err() != nil {
			return
		}
		if t.inFlight.Load() >= t.maxInFlight {
			t.skp.Add(1)
			continue
		}
		t.inFlight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer t.inFlight.Add(-1)
			t.one(ctx)
		}()
	}
}

func (t *Traffic) one(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"/", nil)
	if err != nil {
		return
	}
	t.sent.Add(1)
	resp, err := t.client.Do(req)
	if err != nil {
		t.failed.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode < 400 {
		t.ok.Add(1)
	} else {
		t.failed.Add(1)
	}
}
