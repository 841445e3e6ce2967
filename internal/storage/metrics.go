package storage

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// Gatherer returns the metrics of every open workspace's TSDB
// (prometheus_tsdb_* and the others Prometheus exports for its TSDB), each
// with a workspace label, for the server's /metrics. A workspace's series
// go away when its TSDB closes (idle, deleted, or at shutdown).
func (s *Store) Gatherer() prometheus.Gatherer { return tsdbGatherer{s} }

type tsdbGatherer struct{ s *Store }

// Gather implements prometheus.Gatherer. A TSDB is gathered under its
// tenant's lock, so that it cannot close meanwhile.
func (g tsdbGatherer) Gather() ([]*dto.MetricFamily, error) {
	g.s.mu.Lock()
	ts := make([]*tenant, 0, len(g.s.tenants))
	for _, t := range g.s.tenants {
		ts = append(ts, t)
	}
	g.s.mu.Unlock()
	byName := map[string]*dto.MetricFamily{}
	var errs prometheus.MultiError
	for _, t := range ts {
		t.mu.Lock()
		var mfs []*dto.MetricFamily
		var err error
		if t.db != nil && t.reg != nil {
			mfs, err = t.reg.Gather()
		}
		t.mu.Unlock()
		errs.Append(err)
		ws := t.id.String()
		for _, mf := range mfs {
			merged, ok := byName[mf.GetName()]
			if !ok {
				merged = &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Unit: mf.Unit}
				byName[mf.GetName()] = merged
			}
			for _, m := range mf.Metric {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String("workspace"), Value: proto.String(ws)})
				slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
				merged.Metric = append(merged.Metric, m)
			}
		}
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		out = append(out, mf)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, errs.MaybeUnwrap()
}
