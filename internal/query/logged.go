package query

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery-dev/orrery/internal/querylog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// QueryLog records the queries of the workspaces that log them (AMP's
// query logging). Implementations are safe for concurrent use;
// *querylog.Log is one.
type QueryLog interface {
	// Threshold reports whether workspace id logs its queries, and how
	// many samples a query must process to be logged. It is asked once per
	// query and must be cheap.
	Threshold(ctx context.Context, id workspace.ID) (int64, bool)
	// Record logs a query; ctx is the request's.
	Record(ctx context.Context, id workspace.ID, e querylog.Entry)
}

var _ QueryLog = (*querylog.Log)(nil)

// loggedEngine is a workspace's engine for the query API when the server
// keeps query logs: a query of a workspace that logs is wrapped to be
// recorded once evaluated; any other costs one Threshold call.
type loggedEngine struct {
	*Engine
	log QueryLog
}

func (e loggedEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	qry, err := e.Engine.NewInstantQuery(ctx, q, opts, qs, ts)
	if err != nil {
		return nil, err
	}
	return e.wrap(ctx, qry, qs, ts, ts, 0), nil
}

func (e loggedEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	qry, err := e.Engine.NewRangeQuery(ctx, q, opts, qs, start, end, step)
	if err != nil {
		return nil, err
	}
	return e.wrap(ctx, qry, qs, start, end, step), nil
}

func (e loggedEngine) wrap(ctx context.Context, qry promql.Query, qs string, start, end time.Time, step time.Duration) promql.Query {
	threshold, ok := e.log.Threshold(ctx, e.id)
	if !ok {
		return qry
	}
	return &loggedQuery{Query: qry, e: e, threshold: threshold,
		entry: querylog.Entry{Query: qs, Start: start.UTC(), End: end.UTC(), StepSeconds: step.Seconds()}}
}

// loggedQuery records its evaluation if it processed at least threshold
// samples.
type loggedQuery struct {
	promql.Query
	e         loggedEngine
	threshold int64
	entry     querylog.Entry
}

func (q *loggedQuery) Exec(ctx context.Context) *promql.Result {
	began := time.Now()
	res := q.Query.Exec(ctx)
	e := q.entry
	e.DurationSeconds = time.Since(began).Seconds()
	if st := q.Query.Stats(); st != nil && st.Samples != nil {
		e.SamplesProcessed = st.Samples.TotalSamples
	}
	if e.SamplesProcessed < q.threshold {
		return res
	}
	e.Time, e.Status = began.UTC(), "success"
	if res.Err != nil {
		e.Status, e.Error = "error", res.Err.Error()
	}
	q.e.log.Record(ctx, q.e.id, e)
	return res
}
