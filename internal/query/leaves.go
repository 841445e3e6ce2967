package query

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/schema"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/kahansum"

	orstorage "github.com/orrery-dev/orrery/internal/storage"
)

// Leaves: the fast path for the innermost part of dashboard queries.
//
// Most of a dashboard query's time is spent in rate() and increase() over
// a selector of one metric: the engine walks every series' samples through
// several layers of buffered iterators, window by window, and re-scans
// each window for counter resets. Orrery computes those calls itself (a
// "leaf"): each series is decoded once, its windows slide by two indexes,
// resets are counted by prefix sums, and the series are spread over the
// free evaluation slots. The engine then evaluates the rest of the query
// (aggregations, histogram_quantile, binary operations), reading each
// leaf's answer as a synthetic selector whose series carry a sample at
// every step where the call had one and a stale marker at the first step
// where it had none, so that the engine's lookback sees exactly the call's
// answer.
//
// The answers are the plain engine's, bit for bit: the arithmetic is
// extrapolatedRate's (functions.go in Prometheus' promql, v0.316), in the
// same order of operations; series are read from the same Queryable over
// the same time range, in the order the engine would see them, and only
// series with an answer are passed on, as the engine drops the others;
// the engine's information annotation for a rate of a metric whose name
// is not a counter's is given with the same position. Whatever the leaf
// does not reproduce makes the whole query fall back to the plain engine:
// native histograms, series whose labels collide once the name is
// dropped, a sample limit the engine might have reached. The
// differential tests (engine_test.go) hold the claim.

// leafLabel is the label by which the rewritten query's synthetic
// selectors name their leaf. No stored series can carry it: label names
// starting with "__" are reserved.
const leafLabel = "__orrery_leaf__"

// leafInFlight is how many answers of a leaf worker may wait for the
// caller to fold them.
const leafInFlight = 256

// errFallback says that a leaf cannot reproduce the engine's answer and
// the query is to be evaluated by the plain engine.
var errFallback = errors.New("leaf cannot reproduce the engine")

// leaf is one rate() or increase() of a selector, replaced in the query by
// a synthetic selector.
type leaf struct {
	call   *parser.Call
	sel    *parser.VectorSelector
	rng    int64   // The range, ms.
	offset int64   // ms.
	secs   float64 // The range in seconds, as the engine divides by it.
	isRate bool
	// agg, when not nil, is a sum, count, min, max or group of the call
	// that the leaf computes too: the synthetic selector then stands for
	// the aggregation, and its series are the aggregation's groups.
	agg      *parser.AggregateExpr
	grouping []string // groupNames(agg).

	// The answer, filled by compute: at steps of step up to end.
	step, end int64
	series    []leafSeries
	annos     annotations.Annotations
	window    int // The most samples of one series in the range read.
	// samples counts the samples the plain engine would have processed
	// for the leaf, as its statistics count them: a range's samples at
	// every step, one sample per series and step of a selector.
	samples int64
	// answers counts the points of the leaf's answer, which the rewritten
	// query's statistics count as samples instead.
	answers int64
	sharded bool        // Whether the workers read shards of the series.
	chunks  chunkCounts // How the shards' chunks were read.
}

// chunkCounts counts the chunks of shards read by the decoder and by
// iterators.
type chunkCounts struct{ decoded, iterated int64 }

type leafSeries struct {
	lset labels.Labels
	pts  []promql.FPoint

	// Worked out by the worker that computed pts (leaf.name): the hash
	// of lset, whether the original name is not a counter's, and the
	// hash of the aggregation's group, so that the steps after the
	// workers only compare and add.
	h          uint64
	nonCounter bool
	gh         uint64
}

// name sets the series' label set as the engine names the call's answer
// (its original labels, without the name for a rate), and what the
// serial steps need of it; buf is the caller's scratch buffer, returned.
func (l *leaf) name(s *leafSeries, orig labels.Labels, buf []byte) []byte {
	s.lset = orig
	if l.call != nil {
		s.lset = orig.DropReserved(schema.IsMetadataLabel)
		s.h = s.lset.Hash()
		if name := orig.Get(labels.MetricName); name != "" && !counterName(name) {
			s.nonCounter = true
		}
	}
	if l.agg != nil {
		// The hash of the group's labels (groupLabels) without making
		// them: only a group's first series needs them.
		if l.agg.Without {
			s.gh, buf = s.lset.HashWithoutLabels(buf, l.grouping...)
		} else {
			s.gh, buf = s.lset.HashForLabels(buf, l.grouping...)
		}
	}
	return buf
}

// groupNames returns the label names the aggregation's group hashes
// take (name): for by, its labels, sorted; for without, its labels and
// the type and unit, sorted (HashWithoutLabels drops the name itself).
func groupNames(agg *parser.AggregateExpr) []string {
	names := slices.Clone(agg.Grouping)
	if agg.Without {
		names = append(names, model.MetricTypeLabel, model.MetricUnitLabel)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// groupLabels returns the labels of the aggregation's group of a series
// named lset; lb is a scratch builder.
func (l *leaf) groupLabels(lset labels.Labels, lb *labels.Builder) labels.Labels {
	lb.Reset(lset)
	if l.agg.Without {
		lb.Del(l.agg.Grouping...)
		schema.Metadata{}.SetToLabels(lb) // Drops the name, type and unit.
	} else {
		lb.Keep(l.agg.Grouping...)
	}
	return lb.Labels()
}

// leafCall reports whether call is a rate() or increase() the leaf path
// reproduces: of a plain selector of one metric name, without @, anchored,
// smoothed or computed durations.
func leafCall(call *parser.Call) (*leaf, bool) {
	if call.Func.Name != "rate" && call.Func.Name != "increase" || len(call.Args) != 1 {
		return nil, false
	}
	ms, ok := call.Args[0].(*parser.MatrixSelector)
	if !ok || ms.RangeExpr != nil {
		return nil, false
	}
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	if !ok || !plainSelector(vs) {
		return nil, false
	}
	named := false
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual && m.Value != "" {
			named = true
		}
	}
	if !named {
		return nil, false // Several names could give two series one label set once names are dropped.
	}
	return &leaf{call: call, sel: vs, rng: ms.Range.Milliseconds(), offset: vs.OriginalOffset.Milliseconds(),
		secs: ms.Range.Seconds(), isRate: call.Func.Name == "rate"}, true
}

// plantLeaves replaces in expr, in place, the calls a leaf computes (and
// the aggregations of them it computes too) by synthetic selectors, and
// returns the expression (expr, or the selector that replaced it) and the
// leaves. Calls inside subqueries are
// left alone (they are evaluated at the subquery's steps), and so are the
// direct arguments of the functions that look at their argument's form
// rather than its value: timestamp() and absent() treat a selector
// differently from a call.
func plantLeaves(expr parser.Expr) (parser.Expr, []*leaf) {
	var leaves []*leaf
	plant := func(l *leaf, pos posrange.PositionRange) parser.Expr {
		id := strconv.Itoa(len(leaves))
		leaves = append(leaves, l)
		return &parser.VectorSelector{
			LabelMatchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, leafLabel, id)},
			PosRange:      pos,
		}
	}
	var walk func(e parser.Expr, replaceable bool) parser.Expr
	walk = func(e parser.Expr, replaceable bool) parser.Expr {
		switch n := e.(type) {
		case *parser.AggregateExpr:
			if n.Param == nil && replaceable && leafAggregation(n.Op) {
				var l *leaf
				ok := false
				switch in := unparen(n.Expr).(type) {
				case *parser.Call:
					l, ok = leafCall(in)
				case *parser.VectorSelector:
					l, ok = &leaf{sel: in, offset: in.OriginalOffset.Milliseconds()}, plainSelector(in)
				}
				if ok {
					l.agg, l.grouping = n, groupNames(n)
					return plant(l, n.PosRange)
				}
			}
			n.Expr = walk(n.Expr, true)
			if n.Param != nil {
				n.Param = walk(n.Param, true)
			}
		case *parser.BinaryExpr:
			n.LHS = walk(n.LHS, true)
			n.RHS = walk(n.RHS, true)
		case *parser.ParenExpr:
			n.Expr = walk(n.Expr, replaceable)
		case *parser.UnaryExpr:
			n.Expr = walk(n.Expr, true)
		case *parser.Call:
			if l, ok := leafCall(n); ok && replaceable {
				return plant(l, n.PosRange)
			}
			argsReplaceable := n.Func.Name != "timestamp" && n.Func.Name != "absent" && n.Func.Name != "absent_over_time" && n.Func.Name != "info"
			for i, a := range n.Args {
				n.Args[i] = walk(a, argsReplaceable)
			}
		}
		return e
	}
	expr = walk(expr, true)
	return expr, leaves
}

// plainSelector reports whether vs reads samples at the step (or at a
// fixed offset before it): without @, anchored, smoothed or a computed
// offset.
func plainSelector(vs *parser.VectorSelector) bool {
	return vs.Timestamp == nil && vs.StartOrEnd == 0 && vs.OriginalOffsetExpr == nil && !vs.Anchored && !vs.Smoothed && !vs.BypassEmptyMatcherCheck
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// leafAggregation reports whether a leaf computes aggregation op of its
// call or selector: the aggregations whose arithmetic over floats is
// simple enough to restate exactly.
func leafAggregation(op parser.ItemType) bool {
	switch op {
	case parser.SUM, parser.AVG, parser.COUNT, parser.MIN, parser.MAX, parser.GROUP:
		return true
	}
	return false
}

// leafSource is where a leaf reads its series: a querier over the range
// the plain engine would open, more of them, and, where the storage can,
// shards of the series in the engine's order.
type leafSource struct {
	q    storage.Querier
	open func() (storage.Querier, error)
	// shards, if not nil, opens n shards of the series (internal/storage:
	// a workspace's head), or answers nil where it cannot.
	shards func(n int) ([]*orstorage.HeadShard, error)
}

// compute evaluates the leaf at the steps start, start+step, …, end over
// src, spreading the series over workers goroutines.
//
// A querier's series are not to be read from several goroutines (the
// head's chunk reader keeps unguarded state), so each worker has a
// querier of its own: one over a shard of the series, whose answers are
// merged in the engine's order, where the storage has shards; otherwise
// each further worker opens a querier and selects the same series as the
// first (see below).
func (l *leaf) compute(ctx context.Context, src leafSource, start, end, step, lookback int64, workers int) error {
	l.step, l.end = step, end
	// readFloats keeps only the samples in (first, last]: the querier's
	// trimming to its range (a deletion interval on each chunk crossing a
	// bound, read through one more iterator) would be work for nothing.
	hints := &storage.SelectHints{Step: step, DisableTrimming: true}
	if l.call == nil {
		l.rng = lookback
		hints.Start = start - l.offset - lookback + 1
	} else {
		hints.Func, hints.Range = l.call.Func.Name, l.rng
		hints.Start = start - l.offset - l.rng
	}
	first := start - l.offset - l.rng // Exclusive.
	last := end - l.offset
	hints.End = last

	// Where the storage has shards, each worker reads one, and names each
	// series by its place in the engine's order (its reference). Otherwise
	// every worker selects all the series with a querier of its own and
	// walks them, in the order the engine sees them, computing every
	// workers-th: no worker waits for another's walk of the index, as it
	// would to be handed a share. Each such worker digests the label sets
	// it walked; the walks must agree (a series created between two
	// Selects would shift the shares), or the engine evaluates the query.
	// This goroutine takes the workers' answers in the engine's order as
	// they come, and folds them into the aggregation at once (an
	// aggregated leaf keeps no series' answers).
	workers = max(1, workers)
	var shards []*orstorage.HeadShard
	if src.shards != nil && workers > 1 {
		var err error
		if shards, err = src.shards(workers); err != nil {
			return err
		}
		defer func() {
			for _, sh := range shards {
				_ = sh.Close() // Read-only: nothing is lost.
			}
		}()
	}
	type result struct {
		ref    uint64 // The series' place in the engine's order, in a shard.
		s      leafSeries
		window int
	}
	type walk struct {
		n       int
		digest  uint64
		results chan result
	}
	// An aggregated leaf's answers are folded and dropped at once: their
	// buffers go back to the workers (most of a cold query's allocation
	// was these answers, and the garbage collections they caused mark the
	// whole head).
	var free chan []promql.FPoint
	if l.agg != nil {
		free = make(chan []promql.FPoint, (leafInFlight+2)*workers) // Room for every buffer in flight.
	}
	walks := make([]walk, workers)
	for w := range walks {
		walks[w].results = make(chan result, leafInFlight)
	}
	var failed atomic.Pointer[error]
	var samples, decoded, iterated atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			fail := func(err error) { failed.CompareAndSwap(nil, &err) }
			mine := &walks[w]
			defer close(mine.results)
			var (
				set  storage.SeriesSet
				refs *orstorage.RefSeriesSet
			)
			switch {
			case shards != nil:
				refs = shards[w].Select(ctx, hints, l.sel.LabelMatchers...)
				set = refs
			case w == 0:
				set = src.q.Select(ctx, false, hints, l.sel.LabelMatchers...)
			default:
				wq, err := src.open()
				if err != nil {
					fail(err)
					return
				}
				defer wq.Close()
				set = wq.Select(ctx, false, hints, l.sel.LabelMatchers...)
			}
			var (
				buf    []promql.FPoint
				resets []int32
				hbuf   []byte
				it     chunkenc.Iterator
				xd     xorDecoder
				counts chunkCounts
				n      int64 // Samples processed, added once the worker is done.
				digest = uint64(14695981039346656037)
			)
			defer func() {
				samples.Add(n)
				decoded.Add(counts.decoded)
				iterated.Add(counts.iterated)
			}()
			i := 0
			for ; set.Next(); i++ {
				if i%256 == 0 && (ctx.Err() != nil || failed.Load() != nil) {
					return
				}
				s := set.At()
				lset := s.Labels()
				if refs == nil {
					digest = (digest ^ lset.Hash()) * 1099511628211
					if i%workers != w {
						continue
					}
				}
				var err error
				buf, it, err = readSeries(s, refs, &xd, &counts, it, first, last, l.call == nil, buf[:0])
				if err != nil {
					fail(err)
					return
				}
				r := result{window: len(buf)}
				if refs != nil {
					r.ref = uint64(refs.Ref())
				}
				var out []promql.FPoint
				select {
				case out = <-free:
				default:
				}
				if l.call == nil {
					r.s.pts = l.values(buf, start, end, step, out)
					n += int64(len(r.s.pts))
				} else {
					resets = countResets(buf, resets[:0])
					var read int64
					r.s.pts, read = l.rates(buf, resets, start, end, step, out)
					n += read
				}
				if len(r.s.pts) > 0 {
					hbuf = l.name(&r.s, lset, hbuf)
				}
				mine.results <- r
			}
			if err := set.Err(); err != nil {
				fail(err)
				return
			}
			if ws := set.Warnings(); len(ws) > 0 {
				fail(errFallback) // Storage warnings: leave their wording to the engine.
				return
			}
			mine.n, mine.digest = i, digest
		})
	}
	// The series with an answer, in order, named as the engine names a
	// rate's answer; two of one label set would be merged (or refused) by
	// the engine.
	var (
		seen           = map[uint64]struct{}{}
		kept           []leafSeries
		agg            *aggregator
		warnNonCounter bool
	)
	if l.agg != nil {
		agg = l.newAggregator(start, end, step)
	}
	answers := make([]chan result, len(walks))
	for w := range walks {
		answers[w] = walks[w].results
	}
	next := roundRobin(answers)
	if shards != nil {
		next = mergeByRef(answers, func(r result) uint64 { return r.ref })
	}
	for {
		r, ok := next()
		if !ok {
			break
		}
		l.window = max(l.window, r.window)
		s := r.s
		if len(s.pts) == 0 {
			if agg != nil && s.pts != nil {
				select {
				case free <- s.pts:
				default:
				}
			}
			continue
		}
		if l.call != nil {
			if _, dup := seen[s.h]; dup {
				failed.CompareAndSwap(nil, &errFallback)
				break
			}
			seen[s.h] = struct{}{}
			warnNonCounter = warnNonCounter || s.nonCounter
		}
		if agg != nil {
			agg.add(s)
			select {
			case free <- s.pts[:0]:
			default:
			}
		} else {
			kept = append(kept, s) // A selector's series are distinct, and keep their names.
		}
	}
	for w := range walks {
		for range walks[w].results { // Let every worker finish.
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if p := failed.Load(); p != nil {
		return *p
	}
	for _, w := range walks[1:] {
		if shards == nil && (w.n != walks[0].n || w.digest != walks[0].digest) {
			return errFallback
		}
	}
	l.samples = samples.Load()
	l.sharded = shards != nil
	l.chunks = chunkCounts{decoded: decoded.Load(), iterated: iterated.Load()}
	l.series = kept
	if agg != nil {
		l.series = agg.result()
	}
	for _, s := range l.series {
		l.answers += int64(len(s.pts))
	}
	if warnNonCounter {
		var name string
		for _, m := range l.sel.LabelMatchers {
			if m.Name == labels.MetricName {
				name = m.Value
			}
		}
		l.annos.Add(annotations.NewPossibleNonCounterInfo(name, l.call.Args[0].PositionRange()))
	}
	return nil
}

// roundRobin takes the workers' answers from chans in turn, the first
// worker's first: the order of walks that each computed every
// len(chans)-th series. It ends where a worker's answers end; the others'
// end there too, or their walks disagree.
func roundRobin[R any](chans []chan R) func() (R, bool) {
	i := 0
	return func() (R, bool) {
		r, ok := <-chans[i%len(chans)]
		i++
		return r, ok
	}
}

// mergeByRef takes the workers' answers from chans in the order of key,
// each worker's answers being in that order already: the order of shards
// of the series. It ends when every worker's answers have ended.
func mergeByRef[R any](chans []chan R, key func(R) uint64) func() (R, bool) {
	heads := make([]R, len(chans))
	have := make([]bool, len(chans))
	done := make([]bool, len(chans))
	return func() (R, bool) {
		best := -1
		for w, ch := range chans {
			if !have[w] && !done[w] {
				r, ok := <-ch
				if !ok {
					done[w] = true
					continue
				}
				heads[w], have[w] = r, true
			}
			if have[w] && (best < 0 || key(heads[w]) < key(heads[best])) {
				best = w
			}
		}
		if best < 0 {
			var zero R
			return zero, false
		}
		have[best] = false
		return heads[best], true
	}
}

// aggregator folds the call's answers of series into the aggregation's
// groups at steps of step from start to end, as the engine computes them
// (rangeEvalAgg and aggregation in Prometheus' promql): groups in the
// order their first series comes, each step's value folded over the
// group's series in their order, sums with the engine's Kahan summation.
type aggregator struct {
	leaf             *leaf
	lb               *labels.Builder // Scratch, for groups' labels.
	op               parser.ItemType
	start, end, step int64
	steps            int
	groups           []*aggGroup
	index            map[uint64]int
}

type aggGroup struct {
	lset        labels.Labels
	seen        []bool
	value, kc   []float64
	count       []float64
	mean        []float64 // avg, once its sum would overflow.
	incremental []bool
}

func (l *leaf) newAggregator(start, end, step int64) *aggregator {
	return &aggregator{leaf: l, lb: labels.NewBuilder(labels.EmptyLabels()), op: l.agg.Op, start: start, end: end, step: step,
		steps: int((end-start)/step) + 1, index: map[uint64]int{}}
}

// add folds s, the next series in the engine's order, named by leaf.name.
func (a *aggregator) add(s leafSeries) {
	start, step, steps, op := a.start, a.step, a.steps, a.op
	gi, ok := a.index[s.gh]
	if !ok {
		gi = len(a.groups)
		a.index[s.gh] = gi
		g := &aggGroup{lset: a.leaf.groupLabels(s.lset, a.lb), seen: make([]bool, steps), value: make([]float64, steps),
			kc: make([]float64, steps), count: make([]float64, steps)}
		if op == parser.AVG {
			g.mean, g.incremental = make([]float64, steps), make([]bool, steps)
		}
		a.groups = append(a.groups, g)
	}
	g := a.groups[gi]
	for _, p := range s.pts {
		k := int((p.T - start) / step)
		f := p.F
		if !g.seen[k] {
			g.seen[k], g.value[k], g.count[k] = true, f, 1
			continue
		}
		g.count[k]++
		switch op {
		case parser.SUM:
			g.value[k], g.kc[k] = kahansum.Inc(f, g.value[k], g.kc[k])
		case parser.AVG:
			// A sum while it does not overflow, then a mean kept
			// incrementally, as the engine does.
			if !g.incremental[k] {
				v, c := kahansum.Inc(f, g.value[k], g.kc[k])
				if !math.IsInf(v, 0) {
					g.value[k], g.kc[k] = v, c
					break
				}
				g.incremental[k] = true
				g.mean[k] = g.value[k] / (g.count[k] - 1)
				g.kc[k] /= g.count[k] - 1
			}
			q := (g.count[k] - 1) / g.count[k]
			g.mean[k], g.kc[k] = kahansum.Inc(f/g.count[k], q*g.mean[k], q*g.kc[k])
		case parser.MAX:
			if g.value[k] < f || math.IsNaN(g.value[k]) {
				g.value[k] = f
			}
		case parser.MIN:
			if g.value[k] > f || math.IsNaN(g.value[k]) {
				g.value[k] = f
			}
		}
	}
}

// result returns the groups' answers.
func (a *aggregator) result() []leafSeries {
	start, step, steps, op := a.start, a.step, a.steps, a.op
	out := make([]leafSeries, 0, len(a.groups))
	for _, g := range a.groups {
		pts := make([]promql.FPoint, 0, steps)
		for k := range steps {
			if !g.seen[k] {
				continue
			}
			f := g.value[k]
			switch op {
			case parser.SUM:
				f += g.kc[k]
			case parser.AVG:
				if g.incremental[k] {
					f = g.mean[k] + g.kc[k]
				} else {
					f = g.value[k]/g.count[k] + g.kc[k]/g.count[k]
				}
			case parser.COUNT:
				f = g.count[k]
			case parser.GROUP:
				f = 1
			}
			pts = append(pts, promql.FPoint{T: start + int64(k)*step, F: f})
		}
		out = append(out, leafSeries{lset: g.lset, pts: pts})
	}
	return out
}

// counterName reports whether a metric name is a counter's by its suffix,
// as the engine judges it before warning about rate() of a non-counter.
func counterName(name string) bool {
	return strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_sum") ||
		strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_bucket")
}

// readFloats appends to buf the float samples of it in (first, last],
// without stale markers as the engine's range selector reads them, or
// with them (stale) as its instant selector does. A native histogram
// sample is errFallback.
func readFloats(it chunkenc.Iterator, first, last int64, stale bool, buf []promql.FPoint) ([]promql.FPoint, error) {
	for vt := it.Seek(first + 1); vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValFloat {
			return buf, errFallback
		}
		t, f := it.At()
		if t > last {
			break
		}
		if !stale && value.IsStaleNaN(f) {
			continue
		}
		buf = append(buf, promql.FPoint{T: t, F: f})
	}
	return buf, it.Err()
}

// readSeries reads series s of set refs (nil: of a plain querier) as
// readFloats reads its iterator: a shard's chunks that XOR bytes hold
// whole are decoded by xd. It returns the points and the iterator to
// reuse.
func readSeries(s storage.Series, refs *orstorage.RefSeriesSet, xd *xorDecoder, counts *chunkCounts, it chunkenc.Iterator, first, last int64, stale bool, buf []promql.FPoint) ([]promql.FPoint, chunkenc.Iterator, error) {
	if refs != nil {
		xd.last = math.MinInt64
		read, err := refs.Chunks(first+1, last, func(xor []byte, cit chunkenc.Iterator) error {
			var err error
			if xor != nil {
				counts.decoded++
				buf, err = xd.appendFloats(buf, xor, first, last, stale)
				return err
			}
			counts.iterated++
			xd.last = math.MaxInt64 // The iterator's samples are not checked.
			buf, err = readFloats(cit, first, last, stale, buf)
			return err
		})
		if err != nil {
			// The engine reads the series again, and answers as it does.
			return buf, it, errFallback
		}
		if read {
			return buf, it, nil
		}
	}
	it = s.Iterator(it)
	buf, err := readFloats(it, first, last, stale, buf)
	return buf, it, err
}

// countResets returns, for each sample, how many counter resets (a value
// below the previous one) lie at or before it.
func countResets(pts []promql.FPoint, out []int32) []int32 {
	var n int32
	for i := range pts {
		if i > 0 && pts[i].F < pts[i-1].F {
			n++
		}
		out = append(out, n)
	}
	return out
}

// rates returns the leaf's answer for one series at each step, appended
// to out (empty; nil allocates when there is an answer), and the samples
// of its ranges, counted at every step as the engine counts them.
func (l *leaf) rates(pts []promql.FPoint, resets []int32, start, end, step int64, out []promql.FPoint) (_ []promql.FPoint, samples int64) {
	lo, hi := 0, 0
	var ex extrapolation
	for ts := start; ts <= end; ts += step {
		rangeEnd := ts - l.offset
		rangeStart := rangeEnd - l.rng
		for lo < len(pts) && pts[lo].T <= rangeStart {
			lo++
		}
		for hi < len(pts) && pts[hi].T <= rangeEnd {
			hi++
		}
		samples += int64(hi - lo)
		if hi-lo < 2 {
			continue // One sample, and no start timestamps: no answer.
		}
		w := pts[lo:hi]
		f := ex.rate(w, resets[hi-1] != resets[lo], rangeStart, rangeEnd, l.secs, l.isRate)
		if out == nil {
			out = make([]promql.FPoint, 0, (end-ts)/step+1)
		}
		out = append(out, promql.FPoint{T: ts, F: f})
	}
	return out, samples
}

// values returns an instant selector's values for one series at each
// step, as the engine's vectorSelectorSingle finds them: the last sample
// at or before the step (less the offset), if it is later than the
// lookback delta before it and not a stale marker; appended to out as
// rates appends.
func (l *leaf) values(pts []promql.FPoint, start, end, step int64, out []promql.FPoint) []promql.FPoint {
	i := -1 // The last sample at or before the step.
	for ts := start; ts <= end; ts += step {
		ref := ts - l.offset
		for i+1 < len(pts) && pts[i+1].T <= ref {
			i++
		}
		if i < 0 || pts[i].T <= ref-l.rng || value.IsStaleNaN(pts[i].F) {
			continue
		}
		if out == nil {
			out = make([]promql.FPoint, 0, (end-ts)/step+1)
		}
		out = append(out, promql.FPoint{T: ts, F: pts[i].F})
	}
	return out
}

// withStale returns pts, answers at steps of step ending at end, with a
// stale marker at the step after each answer not followed by one: it
// ends the engine's lookback there.
func withStale(pts []promql.FPoint, step, end int64) []promql.FPoint {
	gaps := 0
	for i, p := range pts {
		if (i+1 == len(pts) || pts[i+1].T != p.T+step) && p.T+step <= end {
			gaps++
		}
	}
	if gaps == 0 {
		return pts
	}
	out := make([]promql.FPoint, 0, len(pts)+gaps)
	for i, p := range pts {
		out = append(out, p)
		if (i+1 == len(pts) || pts[i+1].T != p.T+step) && p.T+step <= end {
			out = append(out, promql.FPoint{T: p.T + step, F: staleNaN})
		}
	}
	return out
}

// staleNaN is the stale marker.
var staleNaN = math.Float64frombits(value.StaleNaN)

// extrapolation is extrapolatedRate's arithmetic on the times of a
// window, kept from one step to the next: a series scraped at a steady
// interval has the same distances to the window's bounds and the same
// number of samples at every step, and the four divisions they take were
// most of a rate's time. rate answers what extrapolatedRate answers, with
// the same operations on the same operands where they are done again.
type extrapolation struct {
	valid      bool
	toStart    int64 // firstT - rangeStart, ms.
	toEnd      int64 // rangeEnd - lastT, ms.
	n          int   // Samples minus one.
	durToStart float64
	durToEnd   float64
	sampled    float64
	factor     float64 // With durToStart, for a window not extrapolated to zero.
}

// rate is extrapolatedRate(pts, reset, rangeStart, rangeEnd, rangeSeconds, isRate).
func (e *extrapolation) rate(pts []promql.FPoint, reset bool, rangeStart, rangeEnd int64, rangeSeconds float64, isRate bool) float64 {
	n := len(pts) - 1
	firstT, lastT := pts[0].T, pts[n].T
	resultFloat := pts[n].F - pts[0].F
	if reset {
		for i, currPoint := range pts[1:] {
			if prevPoint := pts[i]; currPoint.F < prevPoint.F {
				resultFloat += prevPoint.F
			}
		}
	}
	if toStart, toEnd := firstT-rangeStart, rangeEnd-lastT; !e.valid || toStart != e.toStart || toEnd != e.toEnd || n != e.n {
		durationToStart := float64(toStart) / 1000
		durationToEnd := float64(toEnd) / 1000
		sampledInterval := float64(lastT-firstT) / 1000
		averageDurationBetweenSamples := sampledInterval / float64(n)
		extrapolationThreshold := averageDurationBetweenSamples * 1.1
		if durationToStart >= extrapolationThreshold {
			durationToStart = averageDurationBetweenSamples / 2
		}
		if durationToEnd >= extrapolationThreshold {
			durationToEnd = averageDurationBetweenSamples / 2
		}
		*e = extrapolation{valid: true, toStart: toStart, toEnd: toEnd, n: n, durToStart: durationToStart, durToEnd: durationToEnd,
			sampled: sampledInterval, factor: rateFactor(sampledInterval, durationToStart, durationToEnd, rangeSeconds, isRate)}
	}
	factor := e.factor
	if resultFloat > 0 && pts[0].F >= 0 {
		if durationToZero := e.sampled * (pts[0].F / resultFloat); durationToZero < e.durToStart {
			factor = rateFactor(e.sampled, durationToZero, e.durToEnd, rangeSeconds, isRate)
		}
	}
	return resultFloat * factor
}

func rateFactor(sampledInterval, durationToStart, durationToEnd, rangeSeconds float64, isRate bool) float64 {
	factor := 1.0
	if sampledInterval != 0 {
		factor = (sampledInterval + durationToStart + durationToEnd) / sampledInterval
	}
	if isRate {
		factor /= rangeSeconds
	}
	return factor
}

// leafParser is the engine's parser: it answers a token registered by
// prepare with the rewritten expression, and parses anything else.
type leafParser struct {
	parser.Parser
	mu      sync.Mutex
	next    uint64
	pending map[string]parser.Expr
}

const tokenPrefix = "\x00orrery-leaves:"

func (p *leafParser) register(expr parser.Expr) (token string, forget func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending == nil {
		p.pending = map[string]parser.Expr{}
	}
	p.next++
	token = tokenPrefix + strconv.FormatUint(p.next, 10)
	p.pending[token] = expr
	return token, func() {
		p.mu.Lock()
		delete(p.pending, token)
		p.mu.Unlock()
	}
}

// ParseExpr implements parser.Parser.
func (p *leafParser) ParseExpr(input string) (parser.Expr, error) {
	if strings.HasPrefix(input, tokenPrefix) {
		p.mu.Lock()
		expr, ok := p.pending[input]
		delete(p.pending, input)
		p.mu.Unlock()
		if ok {
			return expr, nil
		}
	}
	return p.Parser.ParseExpr(input)
}

// leafQueryable serves the leaves' answers to the synthetic selectors and
// everything else from the workspace's storage. A leaf series holds the
// call's answers at the steps where it has one, and a stale marker at the
// step after each answer not followed by another.
type leafQueryable struct {
	storage.Queryable
	leaves []*leaf
}

func (q *leafQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	inner, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &leafQuerier{Querier: inner, q: q}, nil
}

type leafQuerier struct {
	storage.Querier
	q *leafQueryable
}

func (lq *leafQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	for _, m := range ms {
		if m.Name != leafLabel {
			continue
		}
		i, err := strconv.Atoi(m.Value)
		if err != nil || i < 0 || i >= len(lq.q.leaves) {
			return storage.ErrSeriesSet(errors.New("unknown leaf " + m.Value))
		}
		l := lq.q.leaves[i]
		return &leafSet{series: l.series, step: l.step, end: l.end, i: -1}
	}
	return lq.Querier.Select(ctx, sortSeries, hints, ms...)
}

type leafSet struct {
	series    []leafSeries
	step, end int64
	i         int
}

func (s *leafSet) Next() bool { s.i++; return s.i < len(s.series) }
func (s *leafSet) At() storage.Series {
	return promql.NewStorageSeries(promql.Series{Metric: s.series[s.i].lset, Floats: withStale(s.series[s.i].pts, s.step, s.end)})
}
func (s *leafSet) Err() error                        { return nil }
func (s *leafSet) Warnings() annotations.Annotations { return nil }
