package ingest

import (
	"fmt"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Label is one name/value pair. Both slices alias the decoded request body
// (or, for a request translated from OTLP, the strings of the label sets
// the translation built, which stay valid): they are valid only until the
// Request is reset or returned to its pool.
type Label struct {
	Name, Value []byte
}

// Sample is one float sample.
type Sample struct {
	Value          float64
	Timestamp      int64
	StartTimestamp int64 // 0 when unknown (always for remote write 1.0).
}

// Exemplar is one exemplar; its labels are Request.ExemplarLabels(e).
type Exemplar struct {
	Value     float64
	Timestamp int64
	labels    span
}

// span is a half-open index range into one of a Request's arenas.
type span struct{ lo, hi int32 }

// Series is one decoded time series. Its parts live in the Request's arenas
// and are read through the Request's accessor methods.
type Series struct {
	labels     span
	samples    span
	exemplars  span
	histograms span
	// Metadata sent with the series (remote write 2.0 only).
	Metadata    metadata.Metadata
	HasMetadata bool
	// lset is the label set of a series translated from OTLP: the
	// translation builds it, sorted and without empty values, and
	// admission looks the series up by it. Its wire labels are made from
	// it on first use when lazyLabels is set (see Request.Labels).
	lset       labels.Labels
	lazyLabels bool
}

// FamilyMetadata is remote write 1.0's per-metric-family metadata.
type FamilyMetadata struct {
	Family string
	metadata.Metadata
}

// Request is a decoded remote write request. Decoding reuses the Request's
// arenas, so a Request taken from a pool allocates little once warm. A
// Request is not safe for concurrent use.
type Request struct {
	Version  int // 1 or 2.
	Series   []Series
	Metadata []FamilyMetadata

	labels     []Label
	samples    []Sample
	exemplars  []Exemplar
	histograms [][]byte // undecoded Histogram messages, see Histogram.
	symbols    [][]byte
	// Remote write 2.0 decoding scratch: the series messages of the
	// request, and one series' label references.
	seriesMsgs [][]byte
	refs       []uint32
	// rewritten is set when a series' labels were changed after decoding
	// (HA deduplication dropped the replica label).
	rewritten bool
}

// Reset empties r, keeping its arenas for reuse.
func (r *Request) Reset() {
	r.Version = 0
	r.Series = r.Series[:0]
	r.Metadata = r.Metadata[:0]
	r.labels = r.labels[:0]
	r.samples = r.samples[:0]
	r.exemplars = r.exemplars[:0]
	r.histograms = r.histograms[:0]
	r.symbols = r.symbols[:0]
	r.rewritten = false
}

// Labels returns the labels of s in the order the sender sent them (sorted,
// for a series translated from OTLP). The slice may be modified in place
// (see filterLabel).
func (r *Request) Labels(s *Series) []Label {
	if s.lazyLabels {
		lo := len(r.labels)
		r.labels = appendWireLabels(r.labels, s.lset)
		s.labels, s.lazyLabels = r.spanLabels(lo), false
	}
	return r.labels[s.labels.lo:s.labels.hi]
}

// Samples returns the float samples of s.
func (r *Request) Samples(s *Series) []Sample { return r.samples[s.samples.lo:s.samples.hi] }

// Exemplars returns the exemplars of s.
func (r *Request) Exemplars(s *Series) []Exemplar { return r.exemplars[s.exemplars.lo:s.exemplars.hi] }

// ExemplarLabels returns the labels of an exemplar of this request.
func (r *Request) ExemplarLabels(e *Exemplar) []Label { return r.labels[e.labels.lo:e.labels.hi] }

// NumHistograms returns how many histogram samples s has.
func (r *Request) NumHistograms(s *Series) int { return int(s.histograms.hi - s.histograms.lo) }

// Histogram decodes the i-th histogram sample of s. Exactly one of h and fh
// is non-nil when err is nil. Histograms are rare next to float samples, so
// they are decoded on demand with the generated (reflection-free) code.
func (r *Request) Histogram(s *Series, i int) (t int64, h *histogram.Histogram, fh *histogram.FloatHistogram, err error) {
	raw := r.histograms[int(s.histograms.lo)+i]
	if r.Version == 2 {
		var m writev2.Histogram
		if err := m.Unmarshal(raw); err != nil {
			return 0, nil, nil, fmt.Errorf("decode histogram: %w", err)
		}
		if m.IsFloatHistogram() {
			return m.Timestamp, nil, m.ToFloatHistogram(), nil
		}
		return m.Timestamp, m.ToIntHistogram(), nil, nil
	}
	var m prompb.Histogram
	if err := m.Unmarshal(raw); err != nil {
		return 0, nil, nil, fmt.Errorf("decode histogram: %w", err)
	}
	if m.IsFloatHistogram() {
		return m.Timestamp, nil, m.ToFloatHistogram(), nil
	}
	return m.Timestamp, m.ToIntHistogram(), nil, nil
}

// Counts returns the number of float samples, histogram samples and
// exemplars in the request.
func (r *Request) Counts() (samples, histograms, exemplars int) {
	return len(r.samples), len(r.histograms), len(r.exemplars)
}

func (r *Request) spanLabels(lo int) span   { return span{int32(lo), int32(len(r.labels))} }
func (r *Request) spanSamples(lo int) span  { return span{int32(lo), int32(len(r.samples))} }
func (r *Request) spanExemplar(lo int) span { return span{int32(lo), int32(len(r.exemplars))} }
func (r *Request) spanHist(lo int) span     { return span{int32(lo), int32(len(r.histograms))} }

// filterLabel removes the label called name from s, in place.
func (r *Request) filterLabel(s *Series, name string) {
	ls := r.Labels(s)
	for i := range ls {
		if string(ls[i].Name) == name {
			copy(ls[i:], ls[i+1:])
			s.labels.hi--
			r.rewritten = true
			return
		}
	}
}

// metricTypeV1 maps remote write 1.0's MetricType enum to Prometheus' type.
func metricTypeV1(t uint64) string {
	switch prompb.MetricMetadata_MetricType(t) {
	case prompb.MetricMetadata_COUNTER:
		return "counter"
	case prompb.MetricMetadata_GAUGE:
		return "gauge"
	case prompb.MetricMetadata_HISTOGRAM:
		return "histogram"
	case prompb.MetricMetadata_GAUGEHISTOGRAM:
		return "gaugehistogram"
	case prompb.MetricMetadata_SUMMARY:
		return "summary"
	case prompb.MetricMetadata_INFO:
		return "info"
	case prompb.MetricMetadata_STATESET:
		return "stateset"
	default:
		return "unknown"
	}
}

// metricTypeV2 maps remote write 2.0's MetricType enum to Prometheus' type.
func metricTypeV2(t uint64) string {
	switch writev2.Metadata_MetricType(t) {
	case writev2.Metadata_METRIC_TYPE_COUNTER:
		return "counter"
	case writev2.Metadata_METRIC_TYPE_GAUGE:
		return "gauge"
	case writev2.Metadata_METRIC_TYPE_HISTOGRAM:
		return "histogram"
	case writev2.Metadata_METRIC_TYPE_GAUGEHISTOGRAM:
		return "gaugehistogram"
	case writev2.Metadata_METRIC_TYPE_SUMMARY:
		return "summary"
	case writev2.Metadata_METRIC_TYPE_INFO:
		return "info"
	case writev2.Metadata_METRIC_TYPE_STATESET:
		return "stateset"
	default:
		return "unknown"
	}
}
