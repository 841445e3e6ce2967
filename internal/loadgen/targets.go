package loadgen

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Targets serves n scrape targets on loopback, for agent benchmarks: each
// exposes perTarget of the Envoy-like series, in Prometheus' text format,
// with values that change at every scrape. Their instance and job labels
// are left to the scraper.
type Targets struct {
	Addrs []string
	srvs  []*http.Server
}

// ServeTargets starts the targets; they run until Close.
func ServeTargets(n, perTarget int) (*Targets, error) {
	if n <= 0 || perTarget <= 0 {
		return nil, errors.New("targets and series per target must be positive")
	}
	t := &Targets{}
	for k := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Close()
			return nil, err
		}
		lines := make([][]byte, perTarget)
		for j := range lines {
			i := k*perTarget + j
			var b []byte
			ls := seriesLabels(i)
			for _, l := range ls {
				if l[0] == "__name__" {
					b = append(b, l[1]...)
				}
			}
			b = append(b, '{')
			first := true
			for _, l := range ls {
				if l[0] == "__name__" || l[0] == "instance" || l[0] == "job" {
					continue
				}
				if !first {
					b = append(b, ',')
				}
				first = false
				b = append(b, l[0]...)
				b = append(b, '=')
				b = strconv.AppendQuote(b, l[1])
			}
			lines[j] = append(b, '}', ' ')
		}
		var round atomic.Int64
		base := k * perTarget
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			r := int(round.Add(1))
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			buf := make([]byte, 0, 64<<10)
			for j, l := range lines {
				buf = append(buf, l...)
				buf = strconv.AppendFloat(buf, value(base+j, r), 'f', -1, 64)
				buf = append(buf, '\n')
				if len(buf) > 60<<10 {
					_, _ = w.Write(buf)
					buf = buf[:0]
				}
			}
			_, _ = w.Write(buf)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.srvs = append(t.srvs, srv)
		t.Addrs = append(t.Addrs, ln.Addr().String())
	}
	return t, nil
}

// Close stops the targets.
func (t *Targets) Close() {
	for _, s := range t.srvs {
		_ = s.Shutdown(context.Background())
	}
}
