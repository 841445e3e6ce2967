package scraper

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// sink is a scraper's storage: each scrape's samples, committed, are one
// remote write request handed to the server's remote write handler for
// the destination workspace, so that a scrape is admitted as a remote
// write is (the workspace's rate and burst, series and label limits), and
// samples are counted against the workspace's ingestion limits.
type sink struct {
	ingest http.Handler
	ws     workspace.ID
	// check refuses a write to a workspace deleted or being deleted: the
	// remote write route's authentication does so for clients, and the
	// sink bypasses it.
	check   func(ctx context.Context) error
	onWrite func(samples int, err error) // Called after every commit.
}

var _ storage.AppendableV2 = (*sink)(nil)

func (s *sink) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &appender{sink: s, ctx: ctx}
}

// appender gathers one scrape's samples. It is used by one goroutine, as
// storage.AppenderV2 requires.
type appender struct {
	sink   *sink
	ctx    context.Context
	series []prompb.TimeSeries
}

// Append adds one sample as its own series: within one scrape every label
// set is distinct, so nothing is merged. The reference returned is the
// labels' hash: the appender does not use it, but the scrape loop tracks
// series by it to write their staleness markers, so it must differ
// between series (0 for all would track one series only).
func (a *appender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	ts := prompb.TimeSeries{Labels: prompb.FromLabels(ls, nil)}
	switch {
	case h != nil:
		ts.Histograms = []prompb.Histogram{prompb.FromIntHistogram(t, h)}
	case fh != nil:
		ts.Histograms = []prompb.Histogram{prompb.FromFloatHistogram(t, fh)}
	default:
		ts.Samples = []prompb.Sample{{Value: v, Timestamp: t}}
	}
	a.series = append(a.series, ts)
	return storage.SeriesRef(max(ls.Hash(), 1)), nil
}

// Commit writes the scrape into the workspace. A refusal (a limit, a
// deleted workspace) is returned with the handler's message: the scrape
// loop logs it, and the runner shows it as the scraper's last error.
func (a *appender) Commit() error {
	n := len(a.series)
	if n == 0 {
		return nil
	}
	err := a.write()
	a.series = nil
	a.sink.onWrite(n, err)
	return err
}

func (a *appender) write() error {
	if err := a.sink.check(a.ctx); err != nil {
		return err
	}
	raw, err := (&prompb.WriteRequest{Timeseries: a.series}).Marshal()
	if err != nil {
		return fmt.Errorf("encode the scrape's %d samples: %w", len(a.series), err)
	}
	body := snappy.Encode(nil, raw)
	req, err := http.NewRequestWithContext(workspace.NewContext(a.ctx, a.sink.ws), http.MethodPost, "/api/v1/remote_write", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	rec := &recorder{header: http.Header{}}
	a.sink.ingest.ServeHTTP(rec, req)
	if rec.code/100 != 2 {
		return fmt.Errorf("workspace %s refused the scrape's %d samples (%d): %s", a.sink.ws, len(a.series), rec.code, strings.TrimSpace(rec.body.String()))
	}
	return nil
}

func (a *appender) Rollback() error {
	a.series = nil
	return nil
}

// recorder is the answer of the in-process remote write request.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if r.body.Len() < 4096 { // The message, not a flood.
		r.body.Write(b)
	}
	return len(b), nil
}
