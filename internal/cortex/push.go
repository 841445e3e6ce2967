package cortex

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery-dev/orrery/internal/failure"
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
	bufs     sync.Pool                                     // *[]byte, marshal and compression buffers.
	arenas   sync.Pool                                     // *arena, appenders' series and samples.
}

// NewStorage returns the forwarding storage.
func NewStorage(c *Client) *Storage {
	return &Storage{c: c, metadata: map[workspace.ID]map[string]metadata.Metadata{}}
}

// Appender returns an appender whose Commit pushes to Cortex: it returns
// nil only once Cortex acknowledged the samples (the distributor answers
// after the ingesters have them), ingest.ErrDropped for the samples of a
// non-elected HA replica, and otherwise an *Error wrapped in the failure
// kind of Cortex's answer, whose status the sender gets.
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
	bp := s.buffer()
	defer s.bufs.Put(bp)
	size := wr.Size()
	if cap(*bp) < size {
		*bp = make([]byte, size)
	}
	raw := (*bp)[:size]
	if _, err := wr.MarshalToSizedBuffer(raw); err != nil {
		return failure.E(failure.Internal, "", &Error{Op: "push", Code: http.StatusInternalServerError, Msg: "encode: " + err.Error()})
	}
	return s.c.push(ctx, id, s2.EncodeSnappy(nil, raw))
}

// buffer returns a marshal buffer from the pool; put it back when done.
func (s *Storage) buffer() *[]byte {
	if bp, _ := s.bufs.Get().(*[]byte); bp != nil {
		return bp
	}
	return new([]byte)
}

// push sends a snappy-compressed remote write 1.0 body to the distributor.
// Cortex's 202 (the samples of a non-elected HA replica were dropped) is
// returned as ingest.ErrDropped, so the sender gets a 202 too.
func (c *Client) push(ctx context.Context, id workspace.ID, body []byte) error {
	code, msg, err := c.doStatus(ctx, "push", id, http.MethodPost, "/api/v1/push", body, http.Header{
		"Content-Type":                      {"application/x-protobuf"},
		"Content-Encoding":                  {"snappy"},
		"X-Prometheus-Remote-Write-Version": {"0.1.0"},
	})
	if err == nil && code == http.StatusAccepted {
		return fmt.Errorf("cortex push: %s: %w", strings.TrimSpace(string(msg)), ingest.ErrDropped)
	}
	return err
}

// appender collects one request's series. Float samples are kept with
// the series' labels and encoded only if Commit must re-encode: when the
// handler handed over the sender's own body (ForwardRaw), that is sent
// instead. Not safe for concurrent use.
type appender struct {
	s   *Storage
	ctx context.Context
	id  workspace.ID
	*arena
	raw []byte
}

// arena holds an appender's series and samples; arenas are pooled so
// that a request's appends allocate nothing once warm.
type arena struct {
	series  []pendingSeries
	samples []prompb.Sample // all series' float samples, each series' together.
}

// getArena returns an empty arena from the pool.
func (s *Storage) getArena() *arena {
	if a, _ := s.arenas.Get().(*arena); a != nil {
		return a
	}
	return &arena{}
}

// release returns the appender's arena to the pool, emptied (its series'
// labels are dropped so the pool holds no label memory).
func (a *appender) release() {
	if a.arena == nil {
		return
	}
	clear(a.series)
	a.series, a.samples = a.series[:0], a.samples[:0]
	a.s.arenas.Put(a.arena)
	a.arena = nil
}

// pendingSeries is one series' appended data; its float samples are
// samples[lo:hi] of the appender's.
type pendingSeries struct {
	ls         labels.Labels
	lo, hi     int
	histograms []prompb.Histogram
	exemplars  []prompb.Exemplar
}

var (
	_ storage.ExemplarAppenderV2 = (*appender)(nil)
	_ ingest.ForwardingAppender  = (*appender)(nil)
	_ ingest.Forwarder           = (*Storage)(nil)
)

// current returns the series of ls, starting a new one unless ls is the
// series of the previous append (the handler appends a series' samples
// together).
func (a *appender) current(ls labels.Labels) *pendingSeries {
	if a.arena == nil {
		a.arena = a.s.getArena()
	}
	if n := len(a.series); n > 0 && labels.Equal(a.series[n-1].ls, ls) {
		return &a.series[n-1]
	}
	a.series = append(a.series, pendingSeries{ls: ls, lo: len(a.samples), hi: len(a.samples)})
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
		// The current series is the last: its samples stay together.
		a.samples = append(a.samples, prompb.Sample{Timestamp: t, Value: v})
		ps.hi = len(a.samples)
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

// ForwardRaw implements ingest.ForwardingAppender.
func (a *appender) ForwardRaw(body []byte) { a.raw = body }

// Commit pushes the request: the sender's body if the handler handed it
// over (it carries its own metadata, so queued metadata waits for the next
// re-encoded push), else the collected series and the workspace's queued
// metadata.
func (a *appender) Commit() error {
	defer func() {
		a.release()
		a.raw = nil
	}()
	if a.raw != nil {
		return a.s.c.push(a.ctx, a.id, a.raw)
	}
	md := a.s.takeMetadata(a.id)
	if a.arena == nil && len(md) == 0 {
		return nil
	}
	var series []pendingSeries
	var samples []prompb.Sample
	if a.arena != nil {
		series, samples = a.series, a.samples
	}
	bp, cp := a.s.buffer(), a.s.buffer()
	defer a.s.bufs.Put(bp)
	defer a.s.bufs.Put(cp)
	*bp = appendWriteRequest((*bp)[:0], series, samples, md)
	*cp = s2.EncodeSnappy((*cp)[:cap(*cp)], *bp)
	err := a.s.c.push(a.ctx, a.id, *cp)
	if err != nil {
		a.s.requeueMetadata(a.id, md)
	}
	return err
}

// appendWriteRequest appends the remote write 1.0 WriteRequest of the
// series and metadata to b, encoding it directly rather than through
// prompb's structures: labels straight from labels.Labels, samples from
// the shared arena.
func appendWriteRequest(b []byte, series []pendingSeries, samples []prompb.Sample, md map[string]metadata.Metadata) []byte {
	const (
		timeseriesField = 1<<3 | 2
		metadataField   = 3<<3 | 2
		labelField      = 1<<3 | 2
		sampleField     = 2<<3 | 2
		exemplarField   = 3<<3 | 2
		histogramField  = 4<<3 | 2
		nameField       = 1<<3 | 2
		valueField      = 2<<3 | 2
		sampleValue     = 1<<3 | 1
		sampleTimestamp = 2<<3 | 0
	)
	for i := range series {
		ps := &series[i]
		size := 0
		ps.ls.Range(func(l labels.Label) {
			size += fieldSize(labelSize(l))
		})
		for _, smp := range samples[ps.lo:ps.hi] {
			size += fieldSize(sampleSize(smp))
		}
		for j := range ps.exemplars {
			size += fieldSize(ps.exemplars[j].Size())
		}
		for j := range ps.histograms {
			size += fieldSize(ps.histograms[j].Size())
		}
		b = append(b, timeseriesField)
		b = binary.AppendUvarint(b, uint64(size))
		ps.ls.Range(func(l labels.Label) {
			b = append(b, labelField)
			b = binary.AppendUvarint(b, uint64(labelSize(l)))
			b = append(b, nameField)
			b = binary.AppendUvarint(b, uint64(len(l.Name)))
			b = append(b, l.Name...)
			b = append(b, valueField)
			b = binary.AppendUvarint(b, uint64(len(l.Value)))
			b = append(b, l.Value...)
		})
		for _, smp := range samples[ps.lo:ps.hi] {
			b = append(b, sampleField)
			b = binary.AppendUvarint(b, uint64(sampleSize(smp)))
			b = append(b, sampleValue)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(smp.Value))
			b = append(b, sampleTimestamp)
			b = binary.AppendUvarint(b, uint64(smp.Timestamp))
		}
		for j := range ps.exemplars {
			b = appendMessage(b, exemplarField, &ps.exemplars[j])
		}
		for j := range ps.histograms {
			b = appendMessage(b, histogramField, &ps.histograms[j])
		}
	}
	for fam, m := range md {
		mm := prompb.MetricMetadata{Type: prompb.FromMetadataType(m.Type), MetricFamilyName: fam, Help: m.Help, Unit: m.Unit}
		b = appendMessage(b, metadataField, &mm)
	}
	return b
}

// message is a gogo-protobuf generated message.
type message interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
}

// appendMessage appends m as a length-delimited field with the given key.
func appendMessage(b []byte, key byte, m message) []byte {
	n := m.Size()
	b = append(b, key)
	b = binary.AppendUvarint(b, uint64(n))
	b = slices.Grow(b, n)
	// MarshalToSizedBuffer fails only if the buffer is too small.
	_, _ = m.MarshalToSizedBuffer(b[len(b) : len(b)+n])
	return b[:len(b)+n]
}

// fieldSize is the size of a length-delimited field with a one-byte key
// and n bytes of content.
func fieldSize(n int) int { return 1 + uvarintSize(uint64(n)) + n }

func labelSize(l labels.Label) int { return fieldSize(len(l.Name)) + fieldSize(len(l.Value)) }

// sampleSize is the size of a Sample written with both fields.
func sampleSize(s prompb.Sample) int { return 1 + 8 + 1 + uvarintSize(uint64(s.Timestamp)) }

func uvarintSize(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// Rollback drops the collected series.
func (a *appender) Rollback() error {
	a.release()
	a.raw = nil
	return nil
}

// ForwardingAppender implements ingest.Forwarder: every appender forwards
// the sender's body when the handler admits a request whole, and series
// limits are Cortex's.
func (s *Storage) ForwardingAppender(ctx context.Context, id workspace.ID) (ingest.ForwardingAppender, error) {
	return &appender{s: s, ctx: ctx, id: id}, nil
}
