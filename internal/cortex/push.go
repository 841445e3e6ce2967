package cortex

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// Storage is the ingest handler's storage in the Cortex engine: what the
// handler validated and admitted is forwarded to Cortex's distributor as
// one remote write 1.0 request per handler request, on Commit. It keeps no
// series state: series limits (max_active_series, limits_per_label_set) are
// Cortex's per-tenant overrides, so ActiveSeries and CountLabelSets report
// none and HasSeries false. It is safe for concurrent use.
type Storage struct {
	c *Client

	mu       sync.Mutex
	metadata map[workspace.ID]map[string]metadata.Metadata // sent with the workspace's next push.
	bufs     sync.Pool                                     // *[]byte, marshal buffers.
}

// NewStorage returns the forwarding storage.
func NewStorage(c *Client) *Storage {
	return &Storage{c: c, metadata: map[workspace.ID]map[string]metadata.Metadata{}}
}

// Appender returns an appender whose Commit pushes to Cortex: it returns
// nil only once Cortex acknowledged the samples (the distributor answers
// after the ingesters have them), and an *Error otherwise, whose
// HTTPStatus is the status to answer the sender with.
func (s *Storage) Appender(ctx context.Context, id workspace.ID) (storage.AppenderV2, error) {
	return &appender{s: s, ctx: ctx, id: id}, nil
}

// ActiveSeries reports 0: Cortex enforces max_global_series_per_user.
func (s *Storage) ActiveSeries(workspace.ID) (int, error) { return 0, nil }

// HasSeries reports false; it is not called while ActiveSeries reports 0.
func (s *Storage) HasSeries(context.Context, workspace.ID, labels.Labels) (bool, error) {
	return false, nil
}

// CountLabelSets reports no series for any label set: Cortex enforces
// limits_per_label_set.
func (s *Storage) CountLabelSets(_ context.Context, _ workspace.ID, ls []workspace.LabelSetLimit) ([]int, error) {
	return make([]int, len(ls)), nil
}

// SetMetadata queues a metric family's metadata for the workspace's next
// push.
func (s *Storage) SetMetadata(id workspace.ID, family string, m metadata.Metadata) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mm := s.metadata[id]
	if mm == nil {
		mm = map[string]metadata.Metadata{}
		s.metadata[id] = mm
	}
	mm[family] = m
}

// takeMetadata removes and returns the workspace's queued metadata.
func (s *Storage) takeMetadata(id workspace.ID) map[string]metadata.Metadata {
	s.mu.Lock()
	defer s.mu.Unlock()
	mm := s.metadata[id]
	delete(s.metadata, id)
	return mm
}

// requeueMetadata puts metadata that could not be sent back in the queue,
// unless newer metadata of the family arrived meanwhile.
func (s *Storage) requeueMetadata(id workspace.ID, md map[string]metadata.Metadata) {
	if len(md) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mm := s.metadata[id]
	if mm == nil {
		mm = map[string]metadata.Metadata{}
		s.metadata[id] = mm
	}
	for fam, m := range md {
		if _, ok := mm[fam]; !ok {
			mm[fam] = m
		}
	}
}

// Push sends a remote write 1.0 request to the distributor as tenant id.
func (s *Storage) Push(ctx context.Context, id workspace.ID, wr *prompb.WriteRequest) error {
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer s.bufs.Put(bp)
	size := wr.Size()
	if cap(*bp) < size {
		*bp = make([]byte, size)
	}
	raw := (*bp)[:size]
	if _, err := wr.MarshalToSizedBuffer(raw); err != nil {
		return &Error{Op: "push", Code: http.StatusInternalServerError, Msg: "encode: " + err.Error()}
	}
	return s.c.push(ctx, id, snappy.Encode(nil, raw))
}

// push sends a snappy-compressed remote write 1.0 body to the distributor.
// Cortex's 202 (the samples of a non-elected HA replica were dropped) is
// returned as an *Error whose HTTPStatus is 202, so the sender gets it.
func (c *Client) push(ctx context.Context, id workspace.ID, body []byte) error {
	code, msg, err := c.doStatus(ctx, "push", id, http.MethodPost, "/api/v1/push", body, http.Header{
		"Content-Type":                      {"application/x-protobuf"},
		"Content-Encoding":                  {"snappy"},
		"X-Prometheus-Remote-Write-Version": {"0.1.0"},
	})
	if err == nil && code == http.StatusAccepted {
		return &Error{Op: "push", Code: code, Msg: strings.TrimSpace(string(msg))}
	}
	return err
}

// appender collects one request's series. Float samples are kept with
// the series' labels and encoded only if Commit must re-encode: when the
// handler handed over the sender's own body (ForwardRaw), that is sent
// instead. Not safe for concurrent use.
type appender struct {
	s      *Storage
	ctx    context.Context
	id     workspace.ID
	series []pendingSeries
	raw    []byte
}

// pendingSeries is one series' appended data.
type pendingSeries struct {
	ls         labels.Labels
	samples    []prompb.Sample
	histograms []prompb.Histogram
	exemplars  []prompb.Exemplar
}

var (
	_ storage.ExemplarAppenderV2 = (*appender)(nil)
	_ ingest.RawForwarder        = (*appender)(nil)
)

// current returns the series of ls, starting a new one unless ls is the
// series of the previous append (the handler appends a series' samples
// together).
func (a *appender) current(ls labels.Labels) *pendingSeries {
	if n := len(a.series); n > 0 && labels.Equal(a.series[n-1].ls, ls) {
		return &a.series[n-1]
	}
	a.series = append(a.series, pendingSeries{ls: ls})
	return &a.series[len(a.series)-1]
}

// Append implements storage.AppenderV2. The start timestamp is not
// forwarded: remote write 1.0 has no field for it.
func (a *appender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	ps := a.current(ls)
	switch {
	case fh != nil:
		ps.histograms = append(ps.histograms, prompb.FromFloatHistogram(t, fh))
	case h != nil:
		ps.histograms = append(ps.histograms, prompb.FromIntHistogram(t, h))
	default:
		ps.samples = append(ps.samples, prompb.Sample{Timestamp: t, Value: v})
	}
	return storage.SeriesRef(ls.Hash() | 1), nil
}

// AppendExemplars implements storage.ExemplarAppenderV2.
func (a *appender) AppendExemplars(_ storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	ps := a.current(ls)
	for _, e := range es {
		ps.exemplars = append(ps.exemplars, prompb.Exemplar{Labels: prompb.FromLabels(e.Labels, nil), Value: e.Value, Timestamp: e.Ts})
	}
	return storage.SeriesRef(ls.Hash() | 1), nil
}

// ForwardRaw implements ingest.RawForwarder.
func (a *appender) ForwardRaw(body []byte) { a.raw = body }

// Commit pushes the request: the sender's body if the handler handed it
// over (it carries its own metadata, so queued metadata waits for the next
// re-encoded push), else the collected series and the workspace's queued
// metadata.
func (a *appender) Commit() error {
	defer func() { a.series, a.raw = nil, nil }()
	if a.raw != nil {
		return a.s.c.push(a.ctx, a.id, a.raw)
	}
	md := a.s.takeMetadata(a.id)
	if len(a.series) == 0 && len(md) == 0 {
		return nil
	}
	wr := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(a.series))}
	for i, ps := range a.series {
		wr.Timeseries[i] = prompb.TimeSeries{Labels: prompb.FromLabels(ps.ls, nil), Samples: ps.samples, Histograms: ps.histograms, Exemplars: ps.exemplars}
	}
	for fam, m := range md {
		wr.Metadata = append(wr.Metadata, prompb.MetricMetadata{Type: prompb.FromMetadataType(m.Type), MetricFamilyName: fam, Help: m.Help, Unit: m.Unit})
	}
	err := a.s.Push(a.ctx, a.id, wr)
	if err != nil {
		a.s.requeueMetadata(a.id, md)
	}
	return err
}

// Rollback drops the collected series.
func (a *appender) Rollback() error {
	a.series, a.raw = nil, nil
	return nil
}

// ForwardsRaw implements ingest.RawStorage: every appender forwards the
// sender's body when the handler admits a request whole, and series limits
// are Cortex's.
func (s *Storage) ForwardsRaw() bool { return true }
