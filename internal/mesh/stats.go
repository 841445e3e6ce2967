package mesh

import (
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Metric types, as in the exposition's TYPE lines.
const (
	counter   = "counter"
	gauge     = "gauge"
	histogram = "histogram"
)

// envoyBuckets are Envoy's default histogram bucket bounds, in
// milliseconds (the +Inf bucket is implied).
var envoyBuckets = [...]float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// stats is one sidecar's stat store: counters, gauges and histograms keyed
// by name and labels, written in Envoy's /stats/prometheus exposition.
// It is safe for concurrent use. Series exist from their first use (or
// declaration) on and are never removed, as in Envoy.
type stats struct {
	mu       sync.Mutex
	families map[string]*family
}

type family struct {
	typ    string
	series map[string]*series
}

// series is one labelled series. labels are name/value pairs in the order
// Envoy writes them (the specific tag first, the cluster or prefix last).
type series struct {
	labels  []string
	value   float64
	buckets [len(envoyBuckets)]uint64 // non-cumulative counts
	sum     float64
	count   uint64
}

func newStats() *stats { return &stats{families: map[string]*family{}} }

// get returns the series, creating it and its family. The caller holds mu.
func (s *stats) get(name, typ string, kv []string) *series {
	f := s.families[name]
	if f == nil {
		f = &family{typ: typ, series: map[string]*series{}}
		s.families[name] = f
	}
	key := strings.Join(kv, "\xff")
	se := f.series[key]
	if se == nil {
		se = &series{labels: slices.Clone(kv)}
		f.series[key] = se
	}
	return se
}

// declare makes counters exist at zero.
func (s *stats) declare(typ string, kv []string, names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		s.get(n, typ, kv)
	}
}

// add adds delta to a counter or gauge.
func (s *stats) add(name, typ string, delta float64, kv ...string) {
	s.mu.Lock()
	s.get(name, typ, kv).value += delta
	s.mu.Unlock()
}

func (s *stats) inc(name string, kv ...string) { s.add(name, counter, 1, kv...) }

// set sets a gauge.
func (s *stats) set(name string, v float64, kv ...string) {
	s.mu.Lock()
	s.get(name, gauge, kv).value = v
	s.mu.Unlock()
}

// observe records ms milliseconds in a histogram.
func (s *stats) observe(name string, ms float64, kv ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.get(name, histogram, kv)
	se.sum += ms
	se.count++
	if i, _ := slices.BinarySearch(envoyBuckets[:], ms); i < len(envoyBuckets) {
		se.buckets[i]++
	}
}

// value returns a counter's or gauge's value (tests, status).
func (s *stats) value(name string, kv ...string) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.families[name]
	if f == nil {
		return 0
	}
	if se := f.series[strings.Join(kv, "\xff")]; se != nil {
		return se.value
	}
	return 0
}

// write writes the exposition as Envoy's admin /stats/prometheus does:
// counters, then gauges, then histograms, each family once with its TYPE
// line, no HELP, `{}` for series without labels, histogram buckets in
// milliseconds.
func (s *stats) write(w io.Writer) error {
	s.mu.Lock()
	var b strings.Builder
	for _, typ := range []string{counter, gauge, histogram} {
		var names []string
		for n, f := range s.families {
			if f.typ == typ {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			f := s.families[n]
			b.WriteString("# TYPE " + n + " " + typ + "\n")
			keys := make([]string, 0, len(f.series))
			for k := range f.series {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				se := f.series[k]
				if typ != histogram {
					b.WriteString(n + labelString(se.labels, "") + " " + formatValue(se.value) + "\n")
					continue
				}
				var cum uint64
				for i, le := range envoyBuckets {
					cum += se.buckets[i]
					b.WriteString(n + "_bucket" + labelString(se.labels, formatValue(le)) + " " + strconv.FormatUint(cum, 10) + "\n")
				}
				b.WriteString(n + "_bucket" + labelString(se.labels, "+Inf") + " " + strconv.FormatUint(se.count, 10) + "\n")
				b.WriteString(n + "_sum" + labelString(se.labels, "") + " " + formatValue(se.sum) + "\n")
				b.WriteString(n + "_count" + labelString(se.labels, "") + " " + strconv.FormatUint(se.count, 10) + "\n")
			}
		}
	}
	s.mu.Unlock()
	_, err := io.WriteString(w, b.String())
	return err
}

func labelString(kv []string, le string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i] + `="` + escape(kv[i+1]) + `"`)
	}
	if le != "" {
		if len(kv) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`le="` + le + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

var escaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escape(v string) string { return escaper.Replace(v) }

func formatValue(v float64) string {
	if math.Abs(v) < 1e21 {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
