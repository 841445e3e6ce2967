package query

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"

	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// EvalConfig configures query evaluation server-wide: how many cores it
// may use at once, how many queries may run at once, and the results cache.
type EvalConfig struct {
	// Parallelism is how many parts of queries are evaluated at once,
	// server-wide (0: GOMAXPROCS). A range query is split into at most
	// this many step-aligned time ranges, as many as there are free slots.
	Parallelism int
	// MinStepsPerPart is the fewest steps a part of a split range query
	// has: below it, splitting costs more (each part selects its series
	// anew) than it saves.
	MinStepsPerPart int
	// MaxConcurrent is how many queries are evaluated or wait for a slot
	// at once, server-wide; more wait for their turn (Prometheus'
	// --query.max-concurrency).
	MaxConcurrent int
	// CacheBytes bounds the results cache (0: no cache).
	CacheBytes int64
	// CacheFreshness: steps later than now minus this are not cached. The
	// default, 0, caches every step up to now: a write reports its oldest
	// sample and cuts the cached steps at or after it (Cache.Written), so
	// a step whose samples are still arriving is evaluated again once they
	// land, and not before. A positive value spares the cache those cuts
	// (each write of current samples takes the cache's lock once after a
	// query stored steps up to now) at the price of evaluating the newest
	// steps on every request.
	CacheFreshness time.Duration
}

// RegisterFlags registers the flags of query evaluation on fs.
func (c *EvalConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Parallelism, "query.parallelism", 0, "parts of queries evaluated at once, server-wide; a range query is split by time into as many parts as there are free slots (0: the number of cores)")
	fs.IntVar(&c.MinStepsPerPart, "query.min-steps-per-part", 20, "fewest evaluation steps in one part of a split range query")
	fs.IntVar(&c.MaxConcurrent, "query.max-concurrency", 20, "queries evaluated at once, server-wide, waiting ones included; more wait for their turn")
	fs.Int64Var(&c.CacheBytes, "query.cache-size", 256<<20, "memory for the range query results cache, in bytes (0: no cache)")
	fs.DurationVar(&c.CacheFreshness, "query.cache-freshness", 0, "range query steps later than now minus this are evaluated on every request, not cached (0: cache steps up to now; a write of samples at or before a cached step drops it either way)")
}

// Validate checks the configuration and fills defaults.
func (c *EvalConfig) Validate() error {
	if c.Parallelism < 0 || c.MinStepsPerPart < 0 || c.MaxConcurrent < 0 || c.CacheBytes < 0 || c.CacheFreshness < 0 {
		return errors.New("query evaluation flags must not be negative")
	}
	if c.Parallelism == 0 {
		c.Parallelism = runtime.GOMAXPROCS(0)
	}
	if c.MinStepsPerPart == 0 {
		c.MinStepsPerPart = 1
	}
	return nil
}

// Evaluator is the server-wide part of query evaluation, shared by every
// workspace's Engine: the evaluation slots, the active query tracker, the
// results cache and the per-workspace metrics.
type Evaluator struct {
	cfg     EvalConfig
	slots   chan struct{}
	tracker promql.QueryTracker // nil: no log of active queries.
	cache   *Cache              // nil: no cache.
	now     func() time.Time
	logger  *slog.Logger

	active   prometheus.Gauge
	duration *prometheus.HistogramVec
	samples  *prometheus.CounterVec
	parts    *prometheus.CounterVec
	leaves   *prometheus.CounterVec
	reads    *prometheus.CounterVec
	chunks   *prometheus.CounterVec
}

// NewEvaluator returns an evaluator. tracker, if not nil, records active
// queries (Prometheus' queries.active file) and bounds them by its
// GetMaxConcurrent.
func NewEvaluator(cfg EvalConfig, tracker promql.QueryTracker, logger *slog.Logger, reg prometheus.Registerer) (*Evaluator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	ev := &Evaluator{cfg: cfg, slots: make(chan struct{}, cfg.Parallelism), tracker: tracker, now: time.Now,
		logger: logger.With("component", "query"),
		active: f.NewGauge(prometheus.GaugeOpts{Name: "orrery_query_active",
			Help: "Queries being evaluated or waiting for an evaluation slot."}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "orrery_query_duration_seconds",
			Help:    "Time to evaluate a query, waiting for a slot included, by workspace and kind (instant, range).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"workspace", "kind"}),
		samples: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_query_samples_total",
			Help: "Samples queries loaded (the engine's totalQueryableSamples), by workspace."}, []string{"workspace"}),
		parts: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_query_parts_total",
			Help: "Evaluations of range queries, by workspace and how the steps were answered: plain (one evaluation, as Prometheus), split (one of several step-aligned parts) or cached (from the results cache)."},
			[]string{"workspace", "path"}),
		leaves: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_query_leaf_evaluations_total",
			Help: "Evaluations with rate() or increase() calls computed by Orrery's leaf path, by workspace and outcome: used, or fallback (evaluated by the plain engine, which the leaves could not reproduce)."},
			[]string{"workspace", "outcome"}),
		reads: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_query_leaf_reads_total",
			Help: "Leaves computed over several workers, by workspace and how the workers read the series: shards (of the head, each worker its own) or walks (each worker walks every series and computes its share: blocks or out-of-order data in the range)."},
			[]string{"workspace", "read"}),
		chunks: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_query_leaf_chunks_total",
			Help: "Chunks of the head that leaf workers reading shards read, by workspace and how: decoded (an immutable float chunk, all of it visible, decoded whole) or iterated (through the TSDB's iterator: the open chunk, or one that isolation hides part of)."},
			[]string{"workspace", "read"}),
	}
	if cfg.CacheBytes > 0 {
		ev.cache = NewCache(cfg.CacheBytes, reg)
	}
	return ev, nil
}

// Cache returns the results cache, nil when there is none.
func (ev *Evaluator) Cache() *Cache {
	if ev == nil {
		return nil
	}
	return ev.cache
}

// Forget drops a workspace's cached answers and metrics.
func (ev *Evaluator) Forget(id workspace.ID) {
	ev.cache.Drop(id)
	ev.duration.DeletePartialMatch(prometheus.Labels{"workspace": id.String()})
	ev.samples.DeleteLabelValues(id.String())
	ev.parts.DeletePartialMatch(prometheus.Labels{"workspace": id.String()})
	ev.leaves.DeletePartialMatch(prometheus.Labels{"workspace": id.String()})
	ev.reads.DeletePartialMatch(prometheus.Labels{"workspace": id.String()})
}

// acquire takes one evaluation slot, waiting for it, and then up to
// extra more that are free at once. It returns how many it took.
func (ev *Evaluator) acquire(ctx context.Context, extra int) (int, error) {
	select {
	case ev.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	n := 1
	for ; n <= extra; n++ {
		select {
		case ev.slots <- struct{}{}:
		default:
			return n, nil
		}
	}
	return n, nil
}

func (ev *Evaluator) release(n int) {
	for range n {
		<-ev.slots
	}
}

// track records a query as active until the returned function is called.
func (ev *Evaluator) track(ctx context.Context, qs string) (func(), error) {
	ev.active.Inc()
	if ev.tracker == nil {
		return ev.active.Dec, nil
	}
	i, err := ev.tracker.Insert(ctx, qs)
	if err != nil {
		ev.active.Dec()
		return nil, err
	}
	return func() { ev.tracker.Delete(i); ev.active.Dec() }, nil
}

// Engine evaluates one workspace's queries: the Prometheus engine's
// answers, with range queries split by time over free evaluation slots and
// answered from the results cache where they can be. It implements
// promql.QueryEngine. Every answer equals the plain engine's: a range
// query's step is evaluated alone (steps do not see each other), so its
// answer does not depend on which other steps are evaluated with it.
type Engine struct {
	inner      *promql.Engine
	parser     parser.Parser
	leaves     *leafParser // The inner engine's parser.
	ev         *Evaluator
	id         workspace.ID
	lim        workspace.Limits
	lookback   time.Duration // The default lookback delta.
	maxSamples int
}

var _ promql.QueryEngine = (*Engine)(nil)

// NewEngine returns the engine of workspace id, whose Prometheus engine
// has opts (EngineOpts(lim, …), perhaps amended).
func (ev *Evaluator) NewEngine(id workspace.ID, lim workspace.Limits, opts promql.EngineOpts) *Engine {
	p := opts.Parser
	if p == nil {
		p = parser.NewParser(parser.Options{})
	}
	lp := &leafParser{Parser: p}
	opts.Parser = lp
	lookback := opts.LookbackDelta
	if lookback <= 0 {
		lookback = 5 * time.Minute // The engine's default.
	}
	e := &Engine{inner: promql.NewEngine(opts), parser: p, ev: ev, id: id, lim: lim,
		lookback: lookback, maxSamples: opts.MaxSamples}
	// The leaves reproduce the engine's rate() as it is by default: with
	// the metric name dropped at once, without type labels or start
	// timestamps.
	if !opts.EnableDelayedNameRemoval && !opts.EnableTypeAndUnitLabels && !opts.UseStartTimestamps {
		e.leaves = lp
	}
	return e
}

// Close releases the Prometheus engine.
func (e *Engine) Close() error { return e.inner.Close() }

type ctxKey int

const (
	plainKey ctxKey = iota
	noStoreKey
)

// WithPlain returns a context whose queries are evaluated by the plain
// engine alone, in one piece: for requests that ask for statistics, which
// describe one evaluation.
func WithPlain(ctx context.Context) context.Context { return context.WithValue(ctx, plainKey, true) }

// WithNoStore returns a context whose queries neither read nor fill the
// results cache (Cache-Control: no-store).
func WithNoStore(ctx context.Context) context.Context {
	return context.WithValue(ctx, noStoreKey, true)
}

// NewInstantQuery implements promql.QueryEngine.
func (e *Engine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	qry, err := e.inner.NewInstantQuery(ctx, q, opts, qs, ts)
	if err != nil {
		return nil, err
	}
	p := &plainQuery{Query: qry, e: e, kind: "instant", q: q, opts: opts, qs: qs, start: ts.UnixMilli(), end: ts.UnixMilli()}
	p.leaves = ctx.Value(plainKey) == nil && (opts == nil || !opts.EnablePerStepStats()) && e.hasLeaves(qs)
	return p, nil
}

// NewRangeQuery implements promql.QueryEngine.
func (e *Engine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	qry, err := e.inner.NewRangeQuery(ctx, q, opts, qs, start, end, step)
	if err != nil {
		return nil, err
	}
	plain := &plainQuery{Query: qry, e: e, kind: "range", q: q, opts: opts, qs: qs}
	stmt, ok := qry.Statement().(*parser.EvalStmt)
	if !ok || ctx.Value(plainKey) != nil || (opts != nil && opts.EnablePerStepStats()) {
		return plain, nil
	}
	plain.start, plain.end, plain.step = stmt.Start.UnixMilli(), stmt.End.UnixMilli(), stmt.Interval.Milliseconds()
	plain.leaves = plain.step > 0 && e.hasLeaves(qs)
	// The expression as written: the statement's is preprocessed, with
	// start(), end() and range() already replaced by this range's values.
	expr, err := e.parser.ParseExpr(qs)
	if err != nil {
		return plain, nil
	}
	splittable, cacheable := analyze(expr)
	ranked, checkable := rankings(expr)
	if !splittable || (len(ranked) > 0 && (!checkable || !cacheable || e.ev.cache == nil || ctx.Value(noStoreKey) != nil)) {
		// A ranking's answer over part of the range is checked against
		// its ties (rangeQuery.tied), which costs a second evaluation of its
		// argument: worth it only to use and fill the cache.
		return plain, nil
	}
	rq := &rangeQuery{plain: plain, q: q, opts: opts, qs: qs,
		start: stmt.Start.UnixMilli(), end: stmt.End.UnixMilli(), step: stmt.Interval.Milliseconds()}
	if rq.step <= 0 {
		return plain, nil
	}
	rq.end = rq.start + (rq.end-rq.start)/rq.step*rq.step // the last step
	rq.leaves = plain.leaves
	rq.ranked = ranked
	if cacheable && e.ev.cache != nil && ctx.Value(noStoreKey) == nil {
		mint, _ := promql.FindMinMaxTime(stmt)
		rq.window = rq.start - mint
		var lookback int64
		if opts != nil {
			lookback = opts.LookbackDelta().Milliseconds()
		}
		rq.key = &cacheKey{ws: e.id, query: qs, step: rq.step, phase: mod(rq.start, rq.step), lookback: lookback}
	}
	return rq, nil
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// analyze reports whether a range query's answer at a step is independent
// of the query's other steps (splittable), and whether moreover it depends
// on no sample after the step, so that later writes leave it valid
// (cacheable).
func analyze(expr parser.Expr) (splittable, cacheable bool) {
	splittable, cacheable = true, true
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			if n.StartOrEnd != 0 || n.OriginalOffsetExpr != nil {
				splittable = false // @ start(), @ end(), or an offset computed from the query's range.
			}
			if n.Timestamp != nil || n.OriginalOffset < 0 {
				cacheable = false // Reads samples after the step.
			}
		case *parser.MatrixSelector:
			if n.RangeExpr != nil {
				splittable = false
			}
		case *parser.SubqueryExpr:
			if n.StartOrEnd != 0 || n.RangeExpr != nil || n.StepExpr != nil || n.OriginalOffsetExpr != nil {
				splittable = false
			}
			if n.Timestamp != nil || n.OriginalOffset < 0 {
				cacheable = false
			}
		case *parser.DurationExpr:
			splittable = false
		case *parser.Call:
			switch n.Func.Name {
			case "start", "end", "range":
				splittable = false // The query's range, not the step's.
			case "step":
				splittable = false // Kept whole: a one-step part's step() is no step at all.
			case "sort", "sort_desc", "sort_by_label", "sort_by_label_desc":
				splittable = false // Warns about sorting in a range query only over several steps.
			}
		case *parser.AggregateExpr:
			switch n.Op {
			case parser.LIMITK, parser.LIMIT_RATIO:
				// Which series are chosen at a step depends on the order
				// of the input series, which depends on which series have
				// samples anywhere in the query's range. topk and bottomk
				// choose by value, and by that order only among ties: see
				// rankings.
				splittable = false
			}
		}
		return nil
	})
	return splittable, splittable && cacheable
}

// rankings returns the topk and bottomk aggregations of expr, and whether
// the ties of each can be checked (rangeQuery.tied): its k is a number, and it
// is evaluated at the query's steps (not inside a subquery).
//
// Which of tied series topk chooses at a step depends on the order of its
// input series, which depends on which series have samples anywhere in the
// query's range; without a tie at the k-th value of any group, the chosen
// series are those of the k highest values, whatever the order, so the
// step's answer is the same in any range that holds it.
func rankings(expr parser.Expr) (ranked []*parser.AggregateExpr, checkable bool) {
	checkable = true
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		n, ok := node.(*parser.AggregateExpr)
		if !ok || (n.Op != parser.TOPK && n.Op != parser.BOTTOMK) {
			return nil
		}
		ranked = append(ranked, n)
		if _, ok := unparen(n.Param).(*parser.NumberLiteral); !ok {
			checkable = false
		}
		for _, a := range path {
			if _, ok := a.(*parser.SubqueryExpr); ok {
				checkable = false
			}
		}
		return nil
	})
	return ranked, checkable
}

// plainQuery is a query evaluated in one piece, tracked and given one
// evaluation slot, or all that are free when leaves compute part of it
// (leaves.go): the plain engine's query, or its rewritten one.
type plainQuery struct {
	promql.Query
	e    *Engine
	kind string

	// What the leaves need to evaluate it again.
	q                storage.Queryable
	opts             promql.QueryOpts
	qs               string
	start, end, step int64 // ms; step 0 for an instant query.
	leaves           bool
	alt              promql.Query // The rewritten query, once evaluated.
}

func (p *plainQuery) Exec(ctx context.Context) *promql.Result {
	began := time.Now()
	done, err := p.e.ev.track(ctx, p.String())
	if err != nil {
		return &promql.Result{Err: contextErr(err, "query queue")}
	}
	defer done()
	extra := 0
	if p.leaves {
		extra = p.e.ev.cfg.Parallelism - 1
	}
	n, err := p.e.ev.acquire(ctx, extra)
	if err != nil {
		return &promql.Result{Err: contextErr(err, "query queue")}
	}
	var res *promql.Result
	st := p.Query.Stats
	if p.leaves {
		// The workspace's query timeout bounds the leaves too; when it
		// passes, the plain engine, given the same context, answers with
		// its timeout error at once.
		if d := time.Duration(p.e.lim.QueryTimeout); d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		if qry, r, ok := p.e.execLeaves(ctx, p.q, p.opts, p.qs, p.start, p.end, p.step, n); ok {
			p.alt, res, st = qry, r, qry.Stats
		}
	}
	if res == nil {
		res = p.Query.Exec(ctx)
	}
	p.e.ev.release(n)
	p.e.observe(p.kind, began, st())
	if p.kind == "range" {
		p.e.ev.parts.WithLabelValues(p.e.id.String(), "plain").Inc()
	}
	return res
}

// Stats returns the statistics of the evaluation that answered.
func (p *plainQuery) Stats() *stats.Statistics {
	if p.alt != nil {
		return p.alt.Stats()
	}
	return p.Query.Stats()
}

// Close releases the queries.
func (p *plainQuery) Close() {
	if p.alt != nil {
		p.alt.Close()
	}
	p.Query.Close()
}

// hasLeaves reports whether leaves would compute part of qs.
func (e *Engine) hasLeaves(qs string) bool {
	if e.leaves == nil {
		return false
	}
	expr, err := e.parser.ParseExpr(qs)
	if err != nil {
		return false
	}
	_, leaves := plantLeaves(expr)
	return len(leaves) > 0
}

// execLeaves evaluates the range query qs over the steps of [start, end]
// (the instant query at start when step is 0)
// with its rate() and increase() calls computed as leaves (leaves.go),
// over workers goroutines. ok is false when the query has no leaf or its
// leaves cannot reproduce the plain engine's answer: the caller then
// evaluates it plainly. The caller closes qry.
// headSharder is a workspace's queryable in internal/storage: it opens
// shards of the series of its head, in the engine's order.
type headSharder interface {
	HeadShards(mint, maxt int64, n int) ([]*orstorage.HeadShard, error)
}

func (e *Engine) execLeaves(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end, step int64, workers int) (qry promql.Query, res *promql.Result, ok bool) {
	if e.leaves == nil {
		return nil, nil, false
	}
	expr, err := e.parser.ParseExpr(qs)
	if err != nil {
		return nil, nil, false
	}
	expr, leaves := plantLeaves(expr)
	if len(leaves) == 0 {
		return nil, nil, false
	}
	defer func() {
		outcome := "used"
		if !ok {
			outcome = "fallback"
		}
		e.ev.leaves.WithLabelValues(e.id.String(), outcome).Inc()
	}()
	// The leaves read the storage over the range the plain engine would
	// open, so that they see the series it would see, in its order.
	orig, err := e.parser.ParseExpr(qs)
	if err != nil {
		return nil, nil, false
	}
	lookback := e.lookback
	if opts != nil && opts.LookbackDelta() > 0 {
		lookback = opts.LookbackDelta()
	}
	stmt := &parser.EvalStmt{Start: time.UnixMilli(start), End: time.UnixMilli(end), Interval: time.Duration(step) * time.Millisecond, LookbackDelta: lookback}
	leafStep := step
	if step == 0 {
		leafStep = 1 // An instant query: one step.
	}
	if stmt.Expr, err = promql.PreprocessExpr(orig, stmt.Start, stmt.End, stmt.Interval); err != nil {
		return nil, nil, false
	}
	mint, maxt := promql.FindMinMaxTime(stmt)
	querier, err := q.Querier(mint, maxt)
	if err != nil {
		return nil, nil, false
	}
	defer querier.Close()
	window := 0
	src := leafSource{q: querier, open: func() (storage.Querier, error) { return q.Querier(mint, maxt) }}
	if hs, ok := q.(headSharder); ok {
		src.shards = func(n int) ([]*orstorage.HeadShard, error) { return hs.HeadShards(mint, maxt, n) }
	}
	for _, l := range leaves {
		if err := l.compute(ctx, src, start, end, leafStep, lookback.Milliseconds(), workers); err != nil {
			return nil, nil, false
		}
		if workers > 1 {
			read := "walks"
			if l.sharded {
				read = "shards"
			}
			e.ev.reads.WithLabelValues(e.id.String(), read).Inc()
		}
		if l.chunks.decoded > 0 {
			e.ev.chunks.WithLabelValues(e.id.String(), "decoded").Add(float64(l.chunks.decoded))
		}
		if l.chunks.iterated > 0 {
			e.ev.chunks.WithLabelValues(e.id.String(), "iterated").Add(float64(l.chunks.iterated))
		}
		window = max(window, l.window)
	}

	token, forget := e.leaves.register(expr)
	defer forget()
	lq := &leafQueryable{Queryable: q, leaves: leaves}
	if step == 0 {
		qry, err = e.inner.NewInstantQuery(ctx, lq, opts, token, stmt.Start)
	} else {
		qry, err = e.inner.NewRangeQuery(ctx, lq, opts, token, stmt.Start, stmt.End, stmt.Interval)
	}
	if err != nil {
		return nil, nil, false
	}
	res = qry.Exec(ctx)
	// The plain engine holds a window of samples more than the rewritten
	// query at its peak: where that could pass the limit, the plain
	// engine decides.
	var tooMany promql.ErrTooManySamples
	if errors.As(res.Err, &tooMany) || e.maxSamples-window < qry.Stats().Samples.PeakSamples {
		qry.Close()
		return nil, nil, false
	}
	// The rewritten query counted the leaves' answers as samples; the plain
	// engine would have processed the samples the leaves read. Statistics,
	// the samples metric and query logs' thresholds count what it would.
	st := qry.Stats()
	for _, l := range leaves {
		res.Warnings.Merge(l.annos)
		if st != nil && st.Samples != nil {
			st.Samples.TotalSamples += l.samples - l.answers
		}
	}
	return qry, res, true
}

func (e *Engine) observe(kind string, began time.Time, st *stats.Statistics) {
	e.ev.duration.WithLabelValues(e.id.String(), kind).Observe(time.Since(began).Seconds())
	if st != nil && st.Samples != nil {
		e.ev.samples.WithLabelValues(e.id.String()).Add(float64(st.Samples.TotalSamples))
	}
}

// contextErr words a context error as the engine does.
func contextErr(err error, env string) error {
	switch {
	case errors.Is(err, context.Canceled):
		return promql.ErrQueryCanceled(env)
	case errors.Is(err, context.DeadlineExceeded):
		return promql.ErrQueryTimeout(env)
	default:
		return err
	}
}

// rangeQuery is a range query evaluated in step-aligned parts, some of
// them perhaps from the results cache. Its answer is the plain engine's:
// the parts' series merged, each series' points in time order, the series
// sorted by labels as the engine sorts a range query's.
type rangeQuery struct {
	plain            *plainQuery
	q                storage.Queryable
	opts             promql.QueryOpts
	qs               string
	start, end, step int64 // ms; end is the last step.
	window           int64 // how far before a step its samples reach (ms).
	leaves           bool  // Whether leaves compute part of it (leaves.go).
	key              *cacheKey
	// ranked are its topk and bottomk aggregations (rankings): its spans
	// are evaluated in one part each, and an answer assembled from
	// several evaluations holds only if none has a tie (rangeQuery.tied).
	ranked []*parser.AggregateExpr

	mu     sync.Mutex
	cancel context.CancelFunc
	st     *stats.Statistics
}

func (r *rangeQuery) Statement() parser.Statement { return r.plain.Statement() }
func (r *rangeQuery) String() string              { return r.qs }
func (r *rangeQuery) Close()                      { r.plain.Close() }

func (r *rangeQuery) Cancel() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
}

func (r *rangeQuery) Stats() *stats.Statistics {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st == nil {
		return &stats.Statistics{Timers: stats.NewQueryTimers(), Samples: stats.NewQuerySamples(false)}
	}
	return r.st
}

// span is a range of steps, from start to end inclusive (ms).
type span struct{ start, end int64 }

// part is the answer of one evaluation of a span.
type part struct {
	span
	series []promql.Series
	annos  annotations.Annotations
	st     *stats.Statistics
	err    error
}

func (r *rangeQuery) Exec(ctx context.Context) *promql.Result {
	e := r.plain.e
	ev := e.ev
	began := time.Now()
	// The workspace's query timeout bounds the whole query, waiting for
	// slots and parts evaluated one after another included, as it bounds
	// a plain one.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d := time.Duration(e.lim.QueryTimeout); d > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, d)
		defer stop()
	}
	r.mu.Lock()
	r.cancel = cancel
	r.mu.Unlock()

	done, err := ev.track(ctx, r.qs)
	if err != nil {
		return &promql.Result{Err: contextErr(err, "query queue")}
	}
	defer done()

	// What the cache holds, and what must be evaluated.
	var (
		cached  *extent
		todo    = []span{{r.start, r.end}}
		pending *pendingExtent
		limit   int64
	)
	if r.key != nil {
		now := ev.now().UnixMilli()
		limit = r.alignDown(now - ev.cfg.CacheFreshness.Milliseconds())
		pending = ev.cache.begin(e.id, limit)
		if x := ev.cache.lookup(*r.key); x != nil {
			low := int64(minInt64)
			if ret := time.Duration(e.lim.RetentionPeriod).Milliseconds(); ret > 0 {
				// Samples older than the retention may be deleted at any
				// time: steps reading them are evaluated anew.
				low = now - ret + r.window
			}
			switch {
			case !x.whole:
				cached, todo = r.plan(x, low)
			case x.start == r.start && x.end == r.end && low <= r.start:
				cached, todo = x, nil // Exactly the range it answers.
			}
		}
	}
	finish := func(store *extent) {
		if pending != nil {
			ev.cache.finish(pending, *r.key, store)
		}
	}
	if len(r.ranked) > 0 && r.key != nil && (cached == nil || !cached.whole) && ev.cache.recentlyTied(*r.key, ev.now()) {
		// A ranking that had a tie: evaluated whole without checking
		// again, and kept for this very range only.
		whole := r.evalPart(ctx, span{r.start, r.end}, ev.cfg.Parallelism)
		var store *extent
		if whole.err == nil {
			store = r.wholeExtent(whole)
		}
		finish(store)
		return r.answerWhole(e, began, whole)
	}

	parts, err := r.evaluate(ctx, todo)
	if err != nil {
		finish(nil)
		return &promql.Result{Err: err}
	}

	// The answer's annotations. Those of the evaluated parts and of the
	// exact pieces inside the cached steps are the answer's (a range emits
	// what any of its steps emits). An inexact piece holds a superset of
	// its steps': when it holds nothing more than those, the answer is
	// known; otherwise its steps are evaluated anew.
	var annos annotations.Annotations
	var segments []*extent
	if cached != nil {
		segments = []*extent{cached}
	}
	for _, p := range parts {
		annos.Merge(copyAnnotations(p.annos))
	}
	for _, x := range segments {
		for _, p := range x.pieces {
			if p.exact {
				annos.Merge(copyAnnotations(p.annos))
			}
		}
	}
	var redo []span
	for _, x := range segments {
		for _, p := range x.pieces {
			if !p.exact && (hasSummary(p.annos) || !subset(p.annos, annos)) {
				redo = append(redo, span{p.start, p.end})
			}
		}
	}
	if len(redo) > 0 {
		more, err := r.evaluate(ctx, redo)
		if err != nil {
			finish(nil)
			return &promql.Result{Err: err}
		}
		for _, p := range more {
			annos.Merge(copyAnnotations(p.annos))
		}
		parts = append(parts, more...)
		segments = cutSpans(segments, redo, r.step)
	}
	if len(r.ranked) > 0 && (len(parts) > 0 || len(segments) > 0) {
		// Cached steps had no tie when evaluated (they were kept only
		// then); the evaluated parts are checked, the whole range's
		// included, which is kept only without a tie.
		if r.tied(ctx, parts, ev.cfg.Parallelism) {
			ev.cache.markTied(*r.key, ev.now())
			whole := parts[0]
			if len(parts) != 1 || len(segments) > 0 || parts[0].span != (span{r.start, r.end}) {
				whole = r.evalPart(ctx, span{r.start, r.end}, ev.cfg.Parallelism)
			}
			var store *extent
			if whole.err == nil {
				store = r.wholeExtent(whole)
			}
			finish(store)
			return r.answerWhole(e, began, whole)
		}
	}
	if hasSummary(annos) && !r.oneEvaluation(parts, segments) {
		// The engine's summary annotations (histogram_quantile's
		// monotonicity fix) count their samples by merges whose number
		// depends on how the range was evaluated, not on the data
		// (Prometheus' Merge doubles a count it merges into itself at
		// every step after the first): only one evaluation of the whole
		// range gives the plain engine's figure.
		whole := r.evalPart(ctx, span{r.start, r.end}, ev.cfg.Parallelism)
		if whole.err != nil {
			finish(nil)
			return &promql.Result{Err: whole.err}
		}
		if r.key != nil {
			// Kept as one exact piece: the same range asked again is
			// this evaluation's answer, note included (oneEvaluation);
			// any other range of it is evaluated whole again.
			finish(r.extend(nil, []part{whole}, r.alignDown(limit)))
		}
		return r.answerWhole(e, began, whole)
	}
	if r.key != nil {
		var hit []span
		for _, x := range segments {
			hit = append(hit, span{x.start, x.end})
		}
		ev.cache.misses.WithLabelValues(e.id.String()).Add(float64(r.steps(todo) + r.steps(redo)))
		ev.cache.hits.WithLabelValues(e.id.String()).Add(float64(r.steps(hit)))
		if len(hit) > 0 {
			ev.parts.WithLabelValues(e.id.String(), "cached").Add(float64(len(hit)))
		}
	}
	st := mergeStats(parts)
	r.mu.Lock()
	r.st = st
	r.mu.Unlock()
	e.observe("range", began, st)

	// The answer: the parts and the cached steps, in time order.
	ordered := make([]part, 0, len(parts)+len(segments))
	ordered = append(ordered, parts...)
	for _, x := range segments {
		ordered = append(ordered, part{span: span{x.start, x.end}, series: x.series})
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i].start < ordered[j].start })
	var (
		pieces [][]promql.Series
		points int
	)
	for _, p := range ordered {
		pieces = append(pieces, p.series)
		for _, s := range p.series {
			points += len(s.Floats) + len(s.Histograms)
		}
	}
	if max := e.lim.MaxQuerySamples; max > 0 && points > max {
		finish(nil)
		return &promql.Result{Err: promql.ErrTooManySamples("query execution"), Warnings: annos}
	}
	mat := mergeSeries(pieces)

	if r.key != nil {
		if cached != nil && cached.whole {
			finish(nil) // Answered by it, and kept as it is.
		} else {
			finish(r.extend(segments, parts, r.alignDown(limit)))
		}
	}
	return &promql.Result{Value: mat, Warnings: annos}
}

// answerWhole answers with whole, one evaluation of the query's range.
func (r *rangeQuery) answerWhole(e *Engine, began time.Time, whole part) *promql.Result {
	if whole.err != nil {
		return &promql.Result{Err: whole.err}
	}
	e.ev.parts.WithLabelValues(e.id.String(), "plain").Inc()
	r.mu.Lock()
	r.st = whole.st
	r.mu.Unlock()
	e.observe("range", began, whole.st)
	return &promql.Result{Value: promql.Matrix(whole.series), Warnings: whole.annos}
}

// oneEvaluation reports whether the answer assembled from parts and cached
// segments is one evaluation of the query's whole range, as the plain engine
// would make it: a single evaluated part, or a single cached segment whose
// annotations are one exact piece spanning the range (stored by the whole
// evaluation of the same range, and not cut since). Only such an answer
// carries the plain engine's summary annotations.
func (r *rangeQuery) oneEvaluation(parts []part, segments []*extent) bool {
	switch {
	case len(segments) == 0:
		return len(parts) <= 1
	case len(parts) > 0 || len(segments) > 1:
		return false
	}
	x := segments[0]
	if x.start != r.start || x.end != r.end {
		return false
	}
	for _, p := range x.pieces {
		if !p.exact || p.start != r.start || p.end != r.end {
			return false
		}
	}
	return true
}

// copyAnnotations returns a copy of a that can be merged into without
// changing a: annotations that summarize a range (histogram_quantile's
// monotonicity fix: its samples, buckets and time span) are merged in
// place by annotations.Merge, and the API sets their query in place.
func copyAnnotations(a annotations.Annotations) annotations.Annotations {
	if len(a) == 0 {
		return nil
	}
	out := make(annotations.Annotations, len(a))
	for k, err := range a {
		v := reflect.ValueOf(err)
		if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
			c := reflect.New(v.Elem().Type())
			c.Elem().Set(v.Elem())
			err = c.Interface().(error)
		}
		out[k] = err
	}
	return out
}

// hasSummary reports whether a holds an annotation that summarizes its
// range (anything but the engine's plain annotation): merged over parts it
// is the whole range's, but a piece's says nothing of its sub-ranges.
func hasSummary(a annotations.Annotations) bool {
	for _, err := range a {
		if fmt.Sprintf("%T", err) != "*annotations.annoErr" {
			return true
		}
	}
	return false
}

// subset reports whether every annotation of a is in b.
func subset(a, b annotations.Annotations) bool {
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// cutSpans returns the steps of segments outside spans.
func cutSpans(segments []*extent, spans []span, step int64) []*extent {
	for _, s := range spans {
		var out []*extent
		for _, x := range segments {
			if s.end < x.start || s.start > x.end {
				out = append(out, x)
				continue
			}
			if x.start < s.start {
				out = append(out, sliceExtent(x, x.start, s.start-step))
			}
			if x.end > s.end {
				out = append(out, sliceExtent(x, s.end+step, x.end))
			}
		}
		segments = out
	}
	return segments
}

// steps counts the evaluation steps of spans.
func (r *rangeQuery) steps(spans []span) int64 {
	var n int64
	for _, s := range spans {
		n += (s.end-s.start)/r.step + 1
	}
	return n
}

// alignDown returns the last step of the query's phase at or before t.
func (r *rangeQuery) alignDown(t int64) int64 {
	return t - mod(t-r.start, r.step)
}

// plan returns the steps of x the query may use, as an extent, and the
// spans it must evaluate. Steps before low are not used.
func (r *rangeQuery) plan(x *extent, low int64) (*extent, []span) {
	cs, ce := max(x.start, r.start), min(x.end, r.end)
	if low > cs {
		cs = r.start + (low-r.start+r.step-1)/r.step*r.step // first step at or after low.
	}
	// No span to evaluate of a single step, unless the query has one.
	if r.start < cs && cs-r.start == r.step {
		cs += r.step
	}
	if ce < r.end && r.end-ce == r.step {
		ce -= r.step
	}
	if cs > ce {
		return nil, []span{{r.start, r.end}}
	}
	use := sliceExtent(x, cs, ce)
	var todo []span
	if r.start < cs {
		todo = append(todo, span{r.start, cs - r.step})
	}
	if ce < r.end {
		todo = append(todo, span{ce + r.step, r.end})
	}
	return use, todo
}

// evaluate evaluates spans, split into parts over as many evaluation slots
// as are free (at least one), and returns the parts in time order. The
// first error in time order is returned, as the plain engine, evaluating
// steps in time order, would meet it first.
func (r *rangeQuery) evaluate(ctx context.Context, spans []span) ([]part, error) {
	if len(spans) == 0 {
		return nil, nil
	}
	ev := r.plain.e.ev
	total := r.steps(spans)
	want := int(min(int64(ev.cfg.Parallelism), max(1, total/int64(ev.cfg.MinStepsPerPart))))
	n, err := ev.acquire(ctx, want-1)
	if err != nil {
		return nil, contextErr(err, "query queue")
	}
	defer ev.release(n)

	// A query with leaves spreads its series over the slots instead
	// (leaves.go): parts of time would each select and decode every
	// series again. Otherwise, cut the spans into about n parts of equal
	// steps, none of one step (plan leaves no span of one step in a query
	// of more): the engine evaluates a single step as an instant query in
	// places (topk's order, sort's warning).
	per, workers := max(2, (total+int64(n)-1)/int64(n)), 1
	if r.leaves {
		per, workers = total, n
	}
	if len(r.ranked) > 0 {
		per = total // Each evaluation is one more to check for ties.
	}
	var parts []part
	for _, s := range spans {
		for t := s.start; t <= s.end; {
			e := min(s.end, t+(per-1)*r.step)
			if s.end-e == r.step {
				e = s.end // Leave no single step behind.
			}
			parts = append(parts, part{span: span{t, e}})
			t = e + r.step
		}
	}
	if r.leaves {
		workers = max(1, n/len(parts))
	}
	path := "split"
	if len(parts) == 1 {
		path = "plain"
	}
	ev.parts.WithLabelValues(r.plain.e.id.String(), path).Add(float64(len(parts)))

	var wg sync.WaitGroup
	work := make(chan int)
	for range min(n, len(parts)) {
		wg.Go(func() {
			for i := range work {
				parts[i] = r.evalPart(ctx, parts[i].span, workers)
			}
		})
	}
	for i := range parts {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, p := range parts {
		if p.err != nil {
			return nil, p.err
		}
	}
	return parts, nil
}

// evalPart evaluates the steps of s with the plain engine and copies the
// answer out of the engine's pooled buffers.
func (r *rangeQuery) evalPart(ctx context.Context, s span, workers int) part {
	return r.evalExpr(ctx, r.qs, s, workers)
}

// evalExpr evaluates qs (the query or part of it) as evalPart does.
func (r *rangeQuery) evalExpr(ctx context.Context, qs string, s span, workers int) part {
	p := part{span: s}
	qry, res, ok := r.plain.e.execLeaves(ctx, r.q, r.opts, qs, s.start, s.end, r.step, workers)
	if !ok {
		var err error
		qry, err = r.plain.e.inner.NewRangeQuery(ctx, r.q, r.opts, qs, time.UnixMilli(s.start), time.UnixMilli(s.end), time.Duration(r.step)*time.Millisecond)
		if err != nil {
			p.err = err
			return p
		}
		res = qry.Exec(ctx)
	}
	defer qry.Close()
	p.st = qry.Stats()
	if res.Err != nil {
		p.err = res.Err
		return p
	}
	p.annos = res.Warnings
	mat, ok := res.Value.(promql.Matrix)
	if !ok {
		p.err = fmt.Errorf("range query answered %s, not a matrix", res.Value.Type())
		return p
	}
	p.series = make([]promql.Series, len(mat))
	for i, s := range mat {
		c := promql.Series{Metric: s.Metric, DropName: s.DropName}
		if len(s.Floats) > 0 {
			c.Floats = append([]promql.FPoint(nil), s.Floats...)
		}
		if len(s.Histograms) > 0 {
			c.Histograms = make([]promql.HPoint, len(s.Histograms))
			for j, h := range s.Histograms {
				c.Histograms[j] = promql.HPoint{T: h.T, H: h.H.Copy()}
			}
		}
		p.series[i] = c
	}
	return p
}

// tied reports whether, at a step of one of parts, one of the query's
// rankings has a tie at its k-th value in a group: which of the tied
// series it chose there depends on the range evaluated (rankings), so
// the parts' answers may differ from one evaluation of the whole range.
// It evaluates each ranking's argument over each part again; an error
// there counts as a tie, leaving the answer to one evaluation of the
// whole range.
func (r *rangeQuery) tied(ctx context.Context, parts []part, workers int) bool {
	for _, n := range r.ranked {
		k := int64(unparen(n.Param).(*parser.NumberLiteral).Val) // As the engine truncates it.
		grouping := slices.Sorted(slices.Values(n.Grouping))
		for _, p := range parts {
			arg := r.evalExpr(ctx, n.Expr.String(), p.span, workers)
			if arg.err != nil {
				return true
			}
			// The values of each step and group, keyed as the engine
			// groups them (generateGroupingKey in Prometheus' promql).
			type key struct {
				t     int64
				group uint64
			}
			values := map[key][]float64{}
			var buf []byte
			for _, s := range arg.series {
				var g uint64
				switch {
				case n.Without:
					g, buf = s.Metric.HashWithoutLabels(buf, grouping...)
				case len(grouping) > 0:
					g, buf = s.Metric.HashForLabels(buf, grouping...)
				}
				for _, pt := range s.Floats { // topk and bottomk ignore histograms.
					kk := key{pt.T, g}
					values[kk] = append(values[kk], pt.F)
				}
			}
			for _, vs := range values {
				if tiedAtK(vs, k, n.Op == parser.BOTTOMK) {
					return true
				}
			}
		}
	}
	return false
}

// tiedAtK reports whether the k-th and (k+1)-th of vs, ranked as topk (or
// bottomk) ranks them, are equal or both NaN (a NaN ranks last either
// way): then which of them is chosen depends on their order.
func tiedAtK(vs []float64, k int64, bottom bool) bool {
	if k < 1 || int64(len(vs)) <= k {
		return false // None chosen, or all.
	}
	slices.SortFunc(vs, func(a, b float64) int {
		switch {
		case math.IsNaN(a) || math.IsNaN(b):
			return cmp.Compare(boolInt(math.IsNaN(a)), boolInt(math.IsNaN(b)))
		case bottom:
			return cmp.Compare(a, b)
		default:
			return cmp.Compare(b, a)
		}
	})
	a, b := vs[k-1], vs[k]
	return math.IsNaN(a) || a == b
}

// boolInt is 1 for true, 0 for false.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// extend returns the extent to cache after the query: the evaluated parts
// and the cached segments, with the steps of the cached extent beside them
// when they join, up to limit. Nil when nothing is worth keeping.
func (r *rangeQuery) extend(segments []*extent, parts []part, limit int64) *extent {
	e := &extent{key: *r.key, start: r.start, end: r.end}
	pieces := make([][]promql.Series, 0, len(parts)+len(segments)+2)
	for _, p := range parts {
		pieces = append(pieces, p.series)
		if len(p.annos) > 0 {
			e.pieces = append(e.pieces, piece{start: p.start, end: p.end, annos: p.annos, exact: true})
		}
	}
	for _, x := range segments {
		pieces = append(pieces, x.series)
		e.pieces = append(e.pieces, x.pieces...)
	}
	// Steps of the extent now cached beside the query's, still valid (it is
	// unchanged since it was stored: extents are replaced, never modified);
	// not of one answering its whole range only.
	if old := r.plain.e.ev.cache.lookup(*r.key); old != nil && !old.whole && old.start <= r.end+r.step && old.end >= r.start-r.step {
		if old.start < r.start {
			x := sliceExtent(old, old.start, r.start-r.step)
			pieces = append(pieces, x.series)
			e.pieces = append(e.pieces, x.pieces...)
			e.start = old.start
		}
		if old.end > r.end {
			x := sliceExtent(old, r.end+r.step, old.end)
			pieces = append(pieces, x.series)
			e.pieces = append(e.pieces, x.pieces...)
			e.end = old.end
		}
	}
	sortPieces(pieces)
	e.series = mergeSeries(pieces)
	if e = prefix(e, limit); e == nil {
		return nil
	}
	return e
}

// wholeExtent returns the extent to cache of whole, the evaluation of the
// query's whole range, to be served to that range only.
func (r *rangeQuery) wholeExtent(whole part) *extent {
	e := &extent{key: *r.key, start: r.start, end: r.end, series: whole.series, whole: true}
	if len(whole.annos) > 0 {
		e.pieces = []piece{{start: r.start, end: r.end, annos: whole.annos, exact: true}}
	}
	e.bytes = seriesBytes(e.series)
	return e
}

// sortPieces orders pieces of one answer by the time of their first point.
func sortPieces(pieces [][]promql.Series) {
	first := func(ss []promql.Series) int64 {
		t := int64(1<<63 - 1)
		for _, s := range ss {
			if len(s.Floats) > 0 {
				t = min(t, s.Floats[0].T)
			}
			if len(s.Histograms) > 0 {
				t = min(t, s.Histograms[0].T)
			}
		}
		return t
	}
	sort.SliceStable(pieces, func(i, j int) bool { return first(pieces[i]) < first(pieces[j]) })
}

// mergeSeries merges answers to disjoint, time-ordered step ranges of one
// range query into one, the series sorted by labels as the engine sorts.
func mergeSeries(pieces [][]promql.Series) promql.Matrix {
	var n int
	for _, p := range pieces {
		n = max(n, len(p))
	}
	if len(pieces) == 1 {
		out := make(promql.Matrix, len(pieces[0]))
		copy(out, pieces[0])
		return out
	}
	index := make(map[uint64][]int, n)
	out := make(promql.Matrix, 0, n)
	for _, p := range pieces {
		for _, s := range p {
			h := s.Metric.Hash()
			i := -1
			for _, j := range index[h] {
				if labels.Equal(out[j].Metric, s.Metric) {
					i = j
					break
				}
			}
			if i < 0 {
				index[h] = append(index[h], len(out))
				out = append(out, promql.Series{Metric: s.Metric, DropName: s.DropName,
					Floats: append([]promql.FPoint(nil), s.Floats...), Histograms: append([]promql.HPoint(nil), s.Histograms...)})
				continue
			}
			out[i].Floats = append(out[i].Floats, s.Floats...)
			out[i].Histograms = append(out[i].Histograms, s.Histograms...)
		}
	}
	for i := range out {
		if len(out[i].Floats) == 0 {
			out[i].Floats = nil
		}
		if len(out[i].Histograms) == 0 {
			out[i].Histograms = nil
		}
	}
	sort.Sort(out)
	return out
}

// mergeStats adds up the parts' sample statistics.
func mergeStats(parts []part) *stats.Statistics {
	st := &stats.Statistics{Timers: stats.NewQueryTimers(), Samples: stats.NewQuerySamples(false)}
	for _, p := range parts {
		if p.st == nil || p.st.Samples == nil {
			continue
		}
		st.Samples.TotalSamples += p.st.Samples.TotalSamples
		st.Samples.SamplesRead += p.st.Samples.SamplesRead
		st.Samples.TotalSeries += p.st.Samples.TotalSeries
		st.Samples.UpdatePeak(p.st.Samples.PeakSamples)
	}
	return st
}
