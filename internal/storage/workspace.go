package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// Appender returns an appender on a workspace's TSDB. Commit or Rollback
// releases the workspace. Commit writes the WAL before returning, so
// committed data survives a crash of the process; with Config.WALFsync it
// also syncs the WAL to disk, so that it survives a power loss.
func (s *Store) Appender(ctx context.Context, id workspace.ID) (storage.AppenderV2, error) {
	db, release, err := s.acquire(id)
	if err != nil {
		return nil, err
	}
	a := &appender{AppenderV2: db.AppenderV2(ctx), release: release, id: id, written: s.cfg.Written, mint: math.MaxInt64}
	if s.cfg.WALFsync {
		t, err := s.tenant(id)
		if err != nil {
			_ = a.Rollback()
			return nil, err
		}
		a.sync = func() error { return s.syncWAL(t) }
	}
	return a, nil
}

// appender releases its workspace when the transaction ends, and reports
// the oldest sample it committed to Config.Written.
type appender struct {
	storage.AppenderV2
	release func()
	sync    func() error // nil: no sync after Commit.
	id      workspace.ID
	written func(workspace.ID, int64)
	mint    int64
}

func (a *appender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	a.mint = min(a.mint, t)
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

var _ storage.ExemplarAppenderV2 = (*appender)(nil)

func (a *appender) Commit() error {
	defer a.release()
	// Report even a failed commit: it may have written part of the data.
	defer func() {
		if a.written != nil && a.mint != math.MaxInt64 {
			a.written(a.id, a.mint)
		}
	}()
	if err := a.AppenderV2.Commit(); err != nil || a.sync == nil {
		return err
	}
	return a.sync()
}

func (a *appender) Rollback() error {
	defer a.release()
	return a.AppenderV2.Rollback()
}

func (a *appender) AppendExemplars(ref storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	ea, ok := a.AppenderV2.(storage.ExemplarAppenderV2)
	if !ok {
		return 0, storage.ErrExemplarsDisabled
	}
	return ea.AppendExemplars(ref, ls, es)
}

// HasSeries reports whether the head of a workspace's TSDB holds a series
// with exactly lset.
func (s *Store) HasSeries(ctx context.Context, id workspace.ID, lset labels.Labels) (bool, error) {
	db, release, err := s.acquire(id)
	if err != nil {
		return false, err
	}
	defer release()
	h := db.Head()
	q, err := tsdb.NewBlockQuerier(tsdb.NewRangeHead(h, math.MinInt64, math.MaxInt64), math.MinInt64, math.MaxInt64)
	if err != nil {
		return false, fmt.Errorf("query head of workspace %s: %w", id, err)
	}
	defer q.Close()
	ms := make([]*labels.Matcher, 0, lset.Len())
	lset.Range(func(l labels.Label) { ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value)) })
	ss := q.Select(ctx, false, &storage.SelectHints{Start: math.MinInt64, End: math.MaxInt64, Func: "series"}, ms...)
	for ss.Next() {
		if labels.Equal(ss.At().Labels(), lset) {
			return true, nil
		}
	}
	return false, ss.Err()
}

// Queryable returns a workspace's TSDB as a Prometheus queryable. Each
// querier holds the workspace open until it is closed.
func (s *Store) Queryable(id workspace.ID) storage.SampleAndChunkQueryable {
	return &queryable{s: s, id: id}
}

type queryable struct {
	s  *Store
	id workspace.ID
}

func (q *queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	db, release, err := q.s.acquire(q.id)
	if err != nil {
		return nil, err
	}
	qr, err := db.Querier(mint, maxt)
	if err != nil {
		release()
		return nil, err
	}
	return &querier{Querier: qr, release: release}, nil
}

func (q *queryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	db, release, err := q.s.acquire(q.id)
	if err != nil {
		return nil, err
	}
	qr, err := db.ChunkQuerier(mint, maxt)
	if err != nil {
		release()
		return nil, err
	}
	return &chunkQuerier{ChunkQuerier: qr, release: release}, nil
}

type querier struct {
	storage.Querier
	release func()
}

func (q *querier) Close() error {
	defer q.release()
	return q.Querier.Close()
}

type chunkQuerier struct {
	storage.ChunkQuerier
	release func()
}

func (q *chunkQuerier) Close() error {
	defer q.release()
	return q.ChunkQuerier.Close()
}

// ExemplarQueryable returns a workspace's exemplar storage.
func (s *Store) ExemplarQueryable(id workspace.ID) storage.ExemplarQueryable {
	return exemplarQueryable{s: s, id: id}
}

type exemplarQueryable struct {
	s  *Store
	id workspace.ID
}

func (e exemplarQueryable) ExemplarQuerier(context.Context) (storage.ExemplarQuerier, error) {
	return e, nil
}

// Select holds the workspace open for the duration of the lookup.
func (e exemplarQueryable) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	db, release, err := e.s.acquire(e.id)
	if err != nil {
		return nil, err
	}
	defer release()
	q, err := db.ExemplarQuerier(context.Background())
	if err != nil {
		return nil, err
	}
	return q.Select(start, end, matchers...)
}

// Admin returns the TSDB administration and statistics of a workspace, as
// the Prometheus HTTP API needs them.
func (s *Store) Admin(id workspace.ID) *Admin { return &Admin{s: s, id: id} }

// Admin implements the Prometheus API's TSDBAdminStats for one workspace.
type Admin struct {
	s  *Store
	id workspace.ID
}

func (a *Admin) with(f func(db *tsdb.DB) error) error {
	db, release, err := a.s.acquire(a.id)
	if err != nil {
		return err
	}
	defer release()
	return f(db)
}

// Gather returns the metrics of the workspace's TSDB (prometheus_tsdb_*),
// which the Prometheus API reads for status/tsdb's head statistics.
func (a *Admin) Gather() ([]*dto.MetricFamily, error) {
	t, err := a.s.tenant(a.id)
	if err != nil {
		return nil, err
	}
	var mfs []*dto.MetricFamily
	err = a.with(func(*tsdb.DB) error {
		t.mu.Lock()
		reg := t.reg
		t.mu.Unlock()
		mfs, err = reg.Gather()
		return err
	})
	return mfs, err
}

// CleanTombstones removes deleted data from the workspace's blocks.
func (a *Admin) CleanTombstones() error {
	return a.with(func(db *tsdb.DB) error { return db.CleanTombstones() })
}

// Delete marks series matching ms between mint and maxt deleted.
func (a *Admin) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	if w := a.s.cfg.Written; w != nil {
		defer w(a.id, mint)
	}
	return a.with(func(db *tsdb.DB) error { return db.Delete(ctx, mint, maxt, ms...) })
}

// Snapshot writes a snapshot of the workspace's TSDB into dir.
func (a *Admin) Snapshot(dir string, withHead bool) error {
	return a.with(func(db *tsdb.DB) error { return db.Snapshot(dir, withHead) })
}

// Stats returns the head block's cardinality statistics.
func (a *Admin) Stats(statsByLabelName string, limit int) (st *tsdb.Stats, err error) {
	err = a.with(func(db *tsdb.DB) error {
		st = db.Head().Stats(statsByLabelName, limit)
		return nil
	})
	return st, err
}

// WALReplayStatus reports a finished replay: a workspace is opened, and its
// WAL replayed, before it serves any request.
func (a *Admin) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, nil
}

// BlockMetas lists the workspace's persisted blocks.
func (a *Admin) BlockMetas() (metas []tsdb.BlockMeta, err error) {
	err = a.with(func(db *tsdb.DB) error {
		metas = db.BlockMetas()
		return nil
	})
	return metas, err
}

// Dir returns the directory of a workspace's data, for snapshots.
func (a *Admin) Dir() string { return a.s.workspaceDir(a.id) }

// metadataFile is where a workspace's metric metadata is kept.
const metadataFile = "metadata.json"

// metadataSet is a workspace's metric metadata: per family, the distinct
// metadata seen, newest last, at most maxMetadataPerFamily.
type metadataSet struct {
	mu       sync.Mutex
	families map[string][]metadata.Metadata
	dirty    bool
}

const maxMetadataPerFamily = 10

func (s *Store) metadata(id workspace.ID) (*metadataSet, error) {
	t, err := s.tenant(id)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.meta == nil {
		m := &metadataSet{families: map[string][]metadata.Metadata{}}
		b, err := os.ReadFile(filepath.Join(s.workspaceDir(id), metadataFile))
		switch {
		case err == nil:
			if err := json.Unmarshal(b, &m.families); err != nil {
				s.logger.Warn("metric metadata file is corrupt; starting with none", "workspace", id, "err", err)
				m.families = map[string][]metadata.Metadata{}
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("read metadata of workspace %s: %w", id, err)
		}
		t.meta = m
	}
	return t.meta, nil
}

// SetMetadata records the metadata of a metric family in a workspace.
func (s *Store) SetMetadata(id workspace.ID, family string, md metadata.Metadata) {
	m, err := s.metadata(id)
	if err != nil {
		s.logger.Warn("metadata not recorded", "workspace", id, "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	list := m.families[family]
	for i, x := range list {
		if x == md {
			if i == len(list)-1 {
				return
			}
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	list = append(list, md)
	if len(list) > maxMetadataPerFamily {
		list = list[len(list)-maxMetadataPerFamily:]
	}
	m.families[family] = list
	m.dirty = true
}

// Metadata returns a workspace's metric metadata per family, at most
// limitPerMetric entries per family and limit families (negative: all).
func (s *Store) Metadata(id workspace.ID, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error) {
	m, err := s.metadata(id)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.families))
	for name := range m.families {
		if metric == "" || name == metric {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	out := map[string][]metadata.Metadata{}
	for _, name := range names {
		if limit >= 0 && len(out) >= limit {
			break
		}
		list := m.families[name]
		if limitPerMetric > 0 && len(list) > limitPerMetric {
			list = list[:limitPerMetric]
		}
		out[name] = append([]metadata.Metadata(nil), list...)
	}
	return out, nil
}

// FlushMetadata writes changed metadata of every workspace to disk.
func (s *Store) FlushMetadata() error {
	s.mu.Lock()
	ts := make([]*tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	var errs []error
	for _, t := range ts {
		t.mu.Lock()
		m := t.meta
		t.mu.Unlock()
		if m == nil {
			continue
		}
		m.mu.Lock()
		if !m.dirty {
			m.mu.Unlock()
			continue
		}
		b, err := json.Marshal(m.families)
		m.dirty = false
		m.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := writeFileAtomic(filepath.Join(s.workspaceDir(t.id), metadataFile), b); err != nil {
			errs = append(errs, fmt.Errorf("write metadata of workspace %s: %w", t.id, err))
		}
	}
	return errors.Join(errs...)
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
