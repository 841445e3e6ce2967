package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// A request is stored in two steps. Admission (admit) decides what the
// workspace lets in: valid label sets, within the series limits, not
// empty, not too far in the future, decodable histograms. It never
// touches the storage's appender, so a forwarding engine can send the
// sender's own bytes when everything is admitted. Writing (write) appends
// what was admitted; only the storage's own refusals (out of order, out
// of bounds, invalid histograms) are left to it.

// pass is what admission and writing made of one request.
type pass struct {
	// admitted is what admission let in: what the storage is asked to
	// write. wr is what it wrote.
	admitted, wr written
	rj           rejections
	rejected     map[string]int // samples by reason.
	// maxT is the latest sample timestamp admitted.
	maxT int64
}

// reject counts one sample refused for reason, and formats why only while
// the answer still reports messages: a request of many refused samples
// (a resent batch, out of order) must not format each.
func (p *pass) reject(reason, format string, args ...any) {
	p.rejected[reason]++
	if len(p.rj.msgs) >= maxReportedRejections {
		p.rj.count++
		return
	}
	p.rj.add(fmt.Sprintf(format, args...))
}

// msTime prints a millisecond timestamp in layout, when printed.
type msTime struct {
	ms     int64
	layout string
}

func (t msTime) String() string { return time.UnixMilli(t.ms).UTC().Format(t.layout) }

// admittedHistogram is a histogram sample of an admitted series, decoded
// once by admission; ok is false for one admission refused.
type admittedHistogram struct {
	t  int64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
	ok bool
}

// admit decides which of the request's series and samples the workspace
// lets in, filling b.admitted (each series' cache entry, nil for a refused
// series) and b.histograms. A non-zero code (with its message) is a
// storage failure that fails the whole request.
func (h *Handler) admit(ctx context.Context, id workspace.ID, lim *workspace.Limits, st *wsState, b *buffers) (p pass, code int, msg string) {
	var (
		req      = &b.req
		active   = -1  // Fetched on the first new series.
		setCount []int // Series per label set limit, fetched on the first new series.
		err      error
	)
	p.maxT = h.maxTimestamp()
	p.rejected = map[string]int{}
	b.admitted = slices.Grow(b.admitted[:0], len(req.Series))[:len(req.Series)]
	clear(b.admitted)
	b.histograms = b.histograms[:0]
	for i := range req.Series {
		s := &req.Series[i]
		var (
			hash uint64
			e    *cacheEntry
		)
		if !s.lset.IsEmpty() && !req.rewritten {
			// Translated from OTLP: the series is looked up by the
			// label set the translation built, without wire labels. The
			// cache keeps such series under the label set's own hash.
			hash = s.lset.Hash()
			e = st.cache.getLabels(hash, s.lset)
		} else {
			hash, b.hash = hashLabels(req.Labels(s), b.hash)
			e = st.cache.get(hash, req.Labels(s))
		}
		// Prometheus 3 refuses a 2.0 series without a sample or histogram
		// (with an exemplar or metadata only) once its labels are valid;
		// remote write 1.0 carries metadata apart from the series.
		empty := req.Version == 2 && len(req.Samples(s)) == 0 && req.NumHistograms(s) == 0
		if e != nil && empty {
			p.rj.add(noSamplesMsg(e.lset))
			continue
		}
		if e == nil {
			lset, serr := buildLabels(req.Labels(s), lim, &b.sb)
			if serr != nil {
				n := len(req.Samples(s)) + req.NumHistograms(s)
				p.rejected[serr.Reason] += n
				p.rj.add(serr.Msg)
				continue
			}
			if empty {
				p.rj.add(noSamplesMsg(lset))
				continue
			}
			if lim.MaxActiveSeries > 0 {
				if active < 0 {
					if active, err = h.store.ActiveSeries(id); err != nil {
						return p, http.StatusInternalServerError, fmt.Sprintf("count series of workspace %s: %v", id, err)
					}
				}
				if active >= lim.MaxActiveSeries {
					exists, err := h.store.HasSeries(ctx, id, lset)
					if err != nil {
						return p, http.StatusInternalServerError, fmt.Sprintf("look up series in workspace %s: %v", id, err)
					}
					if !exists {
						p.rejected["active_series_limit"] += len(req.Samples(s)) + req.NumHistograms(s)
						p.rj.add(fmt.Sprintf("series %s would exceed the workspace's limit of %d active series (max_active_series)", lset, lim.MaxActiveSeries))
						continue
					}
				}
				active++
			}
			if len(lim.LabelSetLimits) > 0 {
				if setCount == nil {
					if setCount, err = h.store.CountLabelSets(ctx, id, lim.LabelSetLimits); err != nil {
						return p, http.StatusInternalServerError, fmt.Sprintf("count label sets of workspace %s: %v", id, err)
					}
				}
				msg, err := h.checkLabelSets(ctx, id, lim.LabelSetLimits, setCount, lset, b)
				if err != nil {
					return p, http.StatusInternalServerError, fmt.Sprintf("look up series in workspace %s: %v", id, err)
				}
				if msg != "" {
					p.rejected["label_set_limit"] += len(req.Samples(s)) + req.NumHistograms(s)
					p.rj.add(msg)
					continue
				}
			}
			e = st.cache.add(hash, lset, 0)
		}
		b.admitted[i] = e
		for _, smp := range req.Samples(s) {
			if smp.Timestamp > p.maxT {
				p.reject("too_far_in_future", "sample at %s for series %s is more than %s in the future", msTime{smp.Timestamp, time.RFC3339}, e.lset, h.cfg.CreationGracePeriod)
				continue
			}
			p.admitted.samples++
		}
		for j := range req.NumHistograms(s) {
			t, hist, fh, err := req.Histogram(s, j)
			if err == nil && t > p.maxT {
				err = fmt.Errorf("timestamp is more than %s in the future", h.cfg.CreationGracePeriod)
			}
			if err != nil {
				p.reject(sampleReason(err), "histogram at %s for series %s: %v", msTime{t, time.RFC3339Nano}, e.lset, err)
				b.histograms = append(b.histograms, admittedHistogram{})
				continue
			}
			b.histograms = append(b.histograms, admittedHistogram{t: t, h: hist, fh: fh, ok: true})
			p.admitted.histograms++
		}
		p.admitted.exemplars += len(req.Exemplars(s))
	}
	return p, 0, ""
}

// write appends to app what admission admitted, counting what the storage
// wrote in p.wr and what it refused in p's rejections.
func (h *Handler) write(app storage.AppenderV2, id workspace.ID, b *buffers, p *pass) {
	req := &b.req
	ea, _ := app.(storage.ExemplarAppenderV2)
	hists := b.histograms
	for i := range req.Series {
		e := b.admitted[i]
		if e == nil {
			continue
		}
		s := &req.Series[i]
		ref := storage.SeriesRef(e.ref.Load())
		for _, smp := range req.Samples(s) {
			if smp.Timestamp > p.maxT {
				continue // Refused by admission.
			}
			nref, err := app.Append(ref, e.lset, smp.StartTimestamp, smp.Timestamp, smp.Value, nil, nil, storage.AOptions{})
			if err != nil {
				p.reject(sampleReason(err), "sample at %s for series %s: %v", msTime{smp.Timestamp, time.RFC3339Nano}, e.lset, err)
				continue
			}
			ref = nref
			p.wr.samples++
		}
		n := req.NumHistograms(s)
		for _, ah := range hists[:n] {
			if !ah.ok {
				continue // Refused by admission.
			}
			nref, err := app.Append(ref, e.lset, 0, ah.t, 0, ah.h, ah.fh, storage.AOptions{})
			if err != nil {
				p.reject(sampleReason(err), "histogram at %s for series %s: %v", msTime{ah.t, time.RFC3339Nano}, e.lset, err)
				continue
			}
			ref = nref
			p.wr.histograms++
		}
		hists = hists[n:]
		if ref != 0 && uint64(ref) != e.ref.Load() {
			e.ref.Store(uint64(ref))
		}
		if ex := req.Exemplars(s); len(ex) > 0 && ea != nil && ref != 0 {
			p.wr.exemplars += h.appendExemplars(ea, ref, e.lset, ex, b)
		}
		if s.HasMetadata && (s.Metadata.Type != "" || s.Metadata.Help != "" || s.Metadata.Unit != "") {
			if m := e.meta.Load(); m == nil || *m != s.Metadata {
				md := s.Metadata
				e.meta.Store(&md)
				h.store.SetMetadata(id, e.lset.Get("__name__"), md)
			}
		}
	}
}

// appendExemplars appends a series' exemplars, in time order as the
// storage wants them, and returns how many it stored.
func (h *Handler) appendExemplars(ea storage.ExemplarAppenderV2, ref storage.SeriesRef, lset labels.Labels, ex []Exemplar, b *buffers) int {
	b.exemplars = b.exemplars[:0]
	req := &b.req
	for k := range ex {
		var sb labels.ScratchBuilder
		for _, l := range req.ExemplarLabels(&ex[k]) {
			sb.Add(string(l.Name), string(l.Value))
		}
		sb.Sort()
		b.exemplars = append(b.exemplars, exemplar.Exemplar{Labels: sb.Labels(), Value: ex[k].Value, Ts: ex[k].Timestamp, HasTs: true})
	}
	slices.SortFunc(b.exemplars, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) })
	if _, err := ea.AppendExemplars(ref, lset, b.exemplars); err != nil {
		var perr *storage.AppendPartialError
		if errors.As(err, &perr) {
			return len(b.exemplars) - len(perr.ExemplarErrors)
		}
		return 0
	}
	return len(b.exemplars)
}
