package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// OTLP points carry their clients' timestamps, and Prometheus' remote write
// queues send only samples newer than their own start (backfill.go). A point
// timestamped at or before that start (collected before the agent started
// and sent after, or an exporter's retry across the agent's restart) would
// go into the WAL, be answered 200 and never be sent. Such late points are
// therefore sent by the OTLP request itself, to every remote_write
// destination, before the WAL takes them and before the agent answers:
//
//   - sent: they go into the WAL too (a later restart may send them again: a
//     sample sent twice is a no-op at the receivers) and the answer is 200;
//   - a receiver unreachable or failing for lateSendTimeout: the WAL does not
//     take the request's points and the answer is 503 with Retry-After, so the
//     exporter's retry finds them new (the WAL refuses a point it holds as
//     out of order, which the OTLP handler answers 400);
//   - a receiver refusing them for good: 400 with its answer.
//
// Exemplars and metadata of late points are not sent (the queues send those
// of the other points).
const (
	// lateSendTimeout bounds a request's wait for its late points to be
	// sent, below the OpenTelemetry SDKs' 10 s export timeout.
	lateSendTimeout = 5 * time.Second
	// watcherStartSlack covers the queues' start: each one's WAL watcher
	// takes its start time in its own goroutine after ApplyConfig returns
	// (in microseconds; the slack allows for a stalled machine). A point
	// in the slack is sent twice, a no-op at the receivers.
	watcherStartSlack = time.Second
)

// lateCutoff decides which OTLP points are late: at or before the
// cutoff (ms). Appenders hold the read lock from creation to Commit or
// Rollback, so no point is between its check and the WAL while remote
// write's queues (re)start and the cutoff moves. Before the queues first
// run, the cutoff is the watermark when the WAL is sent again at start
// (backfill.go sends the newer points), else math.MaxInt64.
type lateCutoff struct {
	mu sync.RWMutex
	at int64 // Guarded by mu.
}

// restart runs apply, which starts or restarts remote write's queues,
// with every point late meanwhile; then only those up to the slack past
// its end are. It returns when apply ended (ms).
func (c *lateCutoff) restart(apply func() error) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.at = math.MaxInt64
	if err := apply(); err != nil {
		return c.at, err
	}
	applied := time.Now()
	c.at = applied.Add(watcherStartSlack).UnixMilli()
	return applied.UnixMilli(), nil
}

// lateAppendable wraps the OTLP handler's appendable (see above).
type lateAppendable struct {
	a    *Agent
	next storage.AppendableV2
}

func (l lateAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	l.a.late.mu.RLock()
	return &lateAppender{AppenderV2: l.next.AppenderV2(ctx), a: l.a, ctx: ctx, cutoff: l.a.late.at}
}

type lateAppender struct {
	storage.AppenderV2
	a      *Agent
	ctx    context.Context
	cutoff int64
	b      *batch // The late points; nil without any.
	done   bool
}

func (l *lateAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	ref, err := l.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	var partial *storage.AppendPartialError // The sample is in; an exemplar is not.
	if t > l.cutoff || (err != nil && !errors.As(err, &partial)) {
		return ref, err
	}
	if l.b == nil {
		l.b = newBatch()
	}
	switch {
	case fh != nil:
		p := prompb.FromFloatHistogram(t, fh)
		l.b.add(ls.Copy(), chunks.HeadSeriesRef(ref), prompb.Sample{}, &p)
	case h != nil:
		p := prompb.FromIntHistogram(t, h)
		l.b.add(ls.Copy(), chunks.HeadSeriesRef(ref), prompb.Sample{}, &p)
	default:
		l.b.add(ls.Copy(), chunks.HeadSeriesRef(ref), prompb.Sample{Timestamp: t, Value: v}, nil)
	}
	return ref, err
}

func (l *lateAppender) Commit() error {
	defer l.release()
	if l.b != nil {
		if err := l.a.sendLate(l.ctx, l.b); err != nil {
			_ = l.AppenderV2.Rollback()
			return err
		}
	}
	if err := l.AppenderV2.Commit(); err != nil {
		failRequest(l.ctx, http.StatusServiceUnavailable, fmt.Errorf("write the points to the WAL: %w", err))
		return err
	}
	return nil
}

func (l *lateAppender) Rollback() error {
	defer l.release()
	return l.AppenderV2.Rollback()
}

func (l *lateAppender) release() {
	if !l.done {
		l.done = true
		l.a.late.mu.RUnlock()
	}
}

// sendLate sends late points to every destination of the configuration
// in force, and fails the request (failRequest) when it cannot.
func (a *Agent) sendLate(ctx context.Context, b *batch) error {
	dests, err := a.lateDestinations()
	if err != nil {
		failRequest(ctx, http.StatusServiceUnavailable, err)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, lateSendTimeout)
	defer cancel()
	for _, d := range dests {
		err := a.send(ctx, d, b)
		switch {
		case errors.Is(err, errRefused):
			err = fmt.Errorf("points older than the agent's remote write start, sent by the agent itself: %w", err)
			failRequest(ctx, http.StatusBadRequest, err)
			return err
		case err != nil:
			err = fmt.Errorf("points older than the agent's remote write start could not be sent to %s within %s (they are not kept; retry): %w",
				d.client.Endpoint(), lateSendTimeout, err)
			failRequest(ctx, http.StatusServiceUnavailable, err)
			return err
		}
	}
	if len(dests) > 0 {
		a.lateSent.Add(float64(b.samples))
	}
	return nil
}

// lateDestinations returns the remote_write destinations of the
// configuration in force, built once per configuration.
func (a *Agent) lateDestinations() ([]destination, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lateDests.cfg != a.current || a.current == nil {
		if a.current == nil {
			return nil, errors.New("the agent has no configuration yet")
		}
		dests, err := destinations(a.current)
		if err != nil {
			return nil, err
		}
		a.lateDests.cfg, a.lateDests.dests = a.current, dests
	}
	return a.lateDests.dests, nil
}

// Prometheus' OTLP handler answers 200 whatever its appender's Commit
// returns, so the agent's appender leaves its failure in the request's
// context, and withRequestFailure answers it instead.
type requestFailure struct {
	status int
	err    error
}

type requestFailureKey struct{}

func failRequest(ctx context.Context, status int, err error) {
	if f, ok := ctx.Value(requestFailureKey{}).(*requestFailure); ok && f.err == nil {
		f.status, f.err = status, err
	}
}

func withRequestFailure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := &requestFailure{}
		next.ServeHTTP(&failureWriter{ResponseWriter: w, f: f}, r.WithContext(context.WithValue(r.Context(), requestFailureKey{}, f)))
	})
}

// failureWriter answers the request's failure, if any, in place of
// the handler's answer.
type failureWriter struct {
	http.ResponseWriter
	f        *requestFailure
	replaced bool
}

func (w *failureWriter) WriteHeader(code int) {
	if w.f.err == nil {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = true
	h := w.ResponseWriter.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if w.f.status == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(int(lateSendTimeout/time.Second)))
	}
	w.ResponseWriter.WriteHeader(w.f.status)
	_, _ = fmt.Fprintln(w.ResponseWriter, w.f.err.Error())
}

func (w *failureWriter) Write(p []byte) (int, error) {
	if w.replaced {
		return len(p), nil // The handler's answer, replaced.
	}
	if w.f.err != nil {
		w.WriteHeader(http.StatusOK)
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}
