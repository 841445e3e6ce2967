package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// Fault is what is injected into one service at run time.
type Fault struct {
	Service string `json:"service"`
	// LatencyMS is added to every request the service answers.
	LatencyMS int `json:"latency_ms"`
	// ErrorRate is the fraction (0 to 1) of requests answered with 500.
	ErrorRate float64 `json:"error_rate"`
	// Down closes the service's port: its sidecar gets connection
	// failures.
	Down bool `json:"down"`
}

// Validate checks the fault's values.
func (f Fault) Validate() error {
	if f.LatencyMS < 0 || f.LatencyMS > 60_000 {
		return fmt.Errorf("latency_ms %d: use 0 to 60000", f.LatencyMS)
	}
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		return fmt.Errorf("error_rate %v: use 0 to 1", f.ErrorRate)
	}
	return nil
}

// service is one application of the mesh: a net/http server that calls
// its upstreams, in order, through its sidecar's egress listeners.
type service struct {
	name      string
	addr      string
	upstreams []string
	egress    map[string]string // upstream → URL of the sidecar's egress listener
	client    *http.Client
	logger    *slog.Logger

	mu    sync.Mutex // Guards the fields below.
	fault Fault
	srv   *http.Server
}

// handle answers a request: after the injected latency and errors, it
// calls every upstream and answers 200 if they all did, 503 otherwise.
func (s *service) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f := s.fault
	s.mu.Unlock()
	if f.LatencyMS > 0 {
		select {
		case <-time.After(time.Duration(f.LatencyMS) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
	if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate {
		http.Error(w, s.name+": injected error", http.StatusInternalServerError)
		return
	}
	// Upstreams are called concurrently, as a page's fan-out would.
	codes := make([]int, len(s.upstreams))
	var wg sync.WaitGroup
	for i, up := range s.upstreams {
		wg.Go(func() { codes[i] = s.call(r.Context(), up) })
	}
	wg.Wait()
	calls := map[string]int{}
	failed := ""
	for i, up := range s.upstreams {
		calls[up] = codes[i]
		if codes[i] == 0 || codes[i] >= 500 {
			failed = up
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if failed != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"service": s.name, "path": r.URL.Path, "upstreams": calls})
}

// call GETs an upstream through the sidecar and returns the status code,
// 0 if there was no answer.
func (s *service) call(ctx context.Context, up string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.egress[up]+"/"+up, nil)
	if err != nil {
		return 0
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// listen starts serving on the service's address.
func (s *service) listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen service %s on %s: %w", s.name, s.addr, err)
	}
	s.serve(ln)
	return nil
}

// serve serves on ln. The caller holds no lock.
func (s *service) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Warn("service stopped serving", "service", s.name, "err", err)
		}
	}()
}

// setFault applies a fault; Down closes the port, and clearing it opens
// the same port again.
func (s *service) setFault(f Fault) error {
	s.mu.Lock()
	wasDown := s.fault.Down
	s.fault = f
	srv := s.srv
	s.mu.Unlock()
	switch {
	case f.Down && !wasDown && srv != nil:
		return srv.Close()
	case !f.Down && wasDown:
		return s.listen()
	}
	return nil
}

func (s *service) currentFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	f.Service = s.name
	return f
}

func (s *service) close() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Shutdown(closedContext())
	}
	s.client.CloseIdleConnections()
}

// closedContext makes Shutdown close idle connections and return at once.
func closedContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
