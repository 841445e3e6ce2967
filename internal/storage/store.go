package storage

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// Config configures a Store.
type Config struct {
	// Dir holds one directory per workspace under Dir/workspaces.
	Dir string
	// IdleTimeout closes a workspace's TSDB after it has served no write or
	// query for this long. Zero never closes.
	IdleTimeout time.Duration
	// BlockDuration is the TSDB's head block length (Prometheus: 2h).
	BlockDuration time.Duration
	// WALFsync makes Commit wait until the WAL is on disk (fsync), so that
	// acknowledged data survives a power loss, not only a crash of the
	// process. Concurrent commits to a workspace share a sync.
	WALFsync bool
	// Written, if not nil, is called after samples at mint or later became
	// visible to a workspace's queries (a committed append) or were
	// deleted (delete_series), so that cached answers over them are
	// dropped. It runs on every commit and must be cheap.
	Written func(id workspace.ID, mint int64)
}

// DefaultConfig returns the storage's defaults. Dir and Written are the
// server's to set.
func DefaultConfig() Config {
	return Config{IdleTimeout: 30 * time.Minute, BlockDuration: 2 * time.Hour}
}

// RegisterFlags registers the storage's flags on fs, with c's values as
// their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.IdleTimeout, "storage.idle-timeout", c.IdleTimeout, "close a workspace's TSDB after this long without reads or writes (0: never)")
	fs.BoolVar(&c.WALFsync, "storage.wal-fsync", c.WALFsync, "sync a workspace's WAL to disk (fsync) before acknowledging a write, so acknowledged samples survive a power loss, not only a crash of the process; costs about 3 ms per write request, less when requests are concurrent (they share syncs)")
	fs.DurationVar(&c.BlockDuration, "storage.block-duration", c.BlockDuration, "length of a TSDB block, as Prometheus' (do not change in production)")
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("storage directory is empty")
	}
	if c.IdleTimeout < 0 {
		return errors.New("--storage.idle-timeout must not be negative")
	}
	if c.BlockDuration < 0 || c.BlockDuration%time.Millisecond != 0 {
		return fmt.Errorf("--storage.block-duration %s: use a positive whole number of milliseconds", c.BlockDuration)
	}
	return nil
}

// Store is a set of per-workspace TSDBs, in the manner of Thanos' MultiTSDB.
//
// A workspace's tenant moves through these states:
//
//	closed --acquire--> open --(idle for IdleTimeout, no users)--> closed
//	  any  --Delete--> deleted (directory removed; the next acquire recreates it empty)
//
// Invariants: a tenant's db is non-nil exactly when it is open; a tenant
// with users > 0 is never closed; all state changes happen under the
// tenant's mutex, and the store's mutex only guards the tenants map. The
// WAL is replayed when a tenant opens, so closing loses nothing.
type Store struct {
	cfg    Config
	limits workspace.LimitsSource
	logger *slog.Logger

	mu      sync.Mutex
	tenants map[workspace.ID]*tenant
	closed  bool

	opens, closes, fsyncs prometheus.Counter
}

type tenant struct {
	id  workspace.ID
	dir string

	mu       sync.Mutex
	db       *tsdb.DB
	reg      *prometheus.Registry // db's own metrics (prometheus_tsdb_*), new at each open.
	users    int
	lastUsed time.Time
	// Settings applied to db, to re-apply when the limits change.
	oooWindow model.Duration
	retention model.Duration
	exemplars int
	// meta is loaded on first use and outlives open/close cycles.
	meta *metadataSet
	// Group commit of WAL syncs (Config.WALFsync): commits counts
	// commits that asked for a sync; synced is the count the last sync
	// covered, under syncMu.
	commits atomic.Uint64
	syncMu  sync.Mutex
	synced  uint64
}

// New returns a Store. It opens nothing until a workspace is used.
func New(cfg Config, limits workspace.LimitsSource, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if limits == nil {
		return nil, errors.New("storage needs a limits source")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BlockDuration == 0 {
		cfg.BlockDuration = 2 * time.Hour
	}
	s := &Store{
		cfg:     cfg,
		limits:  limits,
		logger:  logger.With("component", "storage"),
		tenants: map[workspace.ID]*tenant{},
		opens: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "orrery_storage_workspace_opens_total", Help: "Workspace TSDBs opened (WAL replayed).",
		}),
		closes: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "orrery_storage_workspace_closes_total", Help: "Workspace TSDBs closed after being idle or at shutdown.",
		}),
		fsyncs: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "orrery_storage_wal_fsyncs_total", Help: "WAL syncs to disk made for commits (--storage.wal-fsync).",
		}),
	}
	if reg != nil {
		if err := reg.Register(&storeCollector{s: s}); err != nil {
			return nil, fmt.Errorf("register storage collector: %w", err)
		}
	}
	return s, nil
}

func (s *Store) workspaceDir(id workspace.ID) string {
	return WorkspaceDir(s.cfg.Dir, id)
}

// WorkspaceDir returns the directory of a workspace's data under a server's
// --data-dir: its TSDB (TSDBDir) and its metric metadata.
func WorkspaceDir(dataDir string, id workspace.ID) string {
	return filepath.Join(dataDir, "workspaces", id.String())
}

// TSDBDir returns the directory of a workspace's Prometheus TSDB under a
// server's --data-dir. The server holds the TSDB's lock file while the
// workspace is open.
func TSDBDir(dataDir string, id workspace.ID) string {
	return filepath.Join(WorkspaceDir(dataDir, id), "tsdb")
}

// ErrClosed is returned once the Store has been closed.
var ErrClosed = errors.New("storage is shut down")

func (s *Store) tenant(id workspace.ID) (*tenant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	t, ok := s.tenants[id]
	if !ok {
		t = &tenant{id: id, dir: TSDBDir(s.cfg.Dir, id)}
		s.tenants[id] = t
	}
	return t, nil
}

// acquire returns the open TSDB of a workspace, opening it if needed. The
// caller must call release exactly once when done with the DB.
func (s *Store) acquire(id workspace.ID) (*tsdb.DB, func(), error) {
	t, err := s.tenant(id)
	if err != nil {
		return nil, nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	lim := s.limits.Limits(id)
	if t.db == nil {
		if err := s.open(t, lim); err != nil {
			return nil, nil, err
		}
	} else if err := s.applyLimits(t, lim); err != nil {
		s.logger.Warn("apply workspace limits", "workspace", id, "err", err)
	}
	t.users++
	t.lastUsed = time.Now()
	db := t.db
	var once sync.Once
	return db, func() {
		once.Do(func() {
			t.mu.Lock()
			t.users--
			t.lastUsed = time.Now()
			t.mu.Unlock()
		})
	}, nil
}

func (s *Store) open(t *tenant, lim workspace.Limits) error {
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return fmt.Errorf("open workspace %s: %w", t.id, err)
	}
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = time.Duration(lim.RetentionPeriod).Milliseconds()
	opts.OutOfOrderTimeWindow = time.Duration(lim.OutOfOrderWindow).Milliseconds()
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = int64(lim.MaxExemplars)
	opts.EnableMetadataWALRecords = true
	opts.WALCompression = compression.Snappy
	opts.BlockQuerierFunc = HeadQuerier
	opts.MinBlockDuration = s.cfg.BlockDuration.Milliseconds()
	opts.MaxBlockDuration = s.cfg.BlockDuration.Milliseconds()
	if r := opts.RetentionDuration / 10; r > opts.MaxBlockDuration {
		// Prometheus grows blocks up to 10% of the retention, max 31 days.
		opts.MaxBlockDuration = min(r, (31 * 24 * time.Hour).Milliseconds())
	}
	start := time.Now()
	reg := prometheus.NewRegistry()
	db, err := tsdb.Open(t.dir, s.logger.With("workspace", t.id), reg, opts, nil)
	if err != nil {
		return fmt.Errorf("open workspace %s: %w", t.id, err)
	}
	t.db, t.reg = db, reg
	t.oooWindow, t.retention, t.exemplars = lim.OutOfOrderWindow, lim.RetentionPeriod, lim.MaxExemplars
	s.opens.Inc()
	s.logger.Info("workspace opened", "workspace", t.id, "series", db.Head().NumSeries(), "duration", time.Since(start))
	return nil
}

// applyLimits re-applies retention, out-of-order window and exemplar
// capacity when a workspace's limits changed since it was opened.
func (s *Store) applyLimits(t *tenant, lim workspace.Limits) error {
	if t.oooWindow == lim.OutOfOrderWindow && t.retention == lim.RetentionPeriod && t.exemplars == lim.MaxExemplars {
		return nil
	}
	cfg := &config.Config{StorageConfig: config.StorageConfig{
		TSDBConfig: &config.TSDBConfig{
			OutOfOrderTimeWindow: time.Duration(lim.OutOfOrderWindow).Milliseconds(),
			Retention:            &config.TSDBRetentionConfig{Time: lim.RetentionPeriod},
		},
		ExemplarsConfig: &config.ExemplarsConfig{MaxExemplars: int64(lim.MaxExemplars)},
	}}
	if err := t.db.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("apply limits to workspace %s: %w", t.id, err)
	}
	t.oooWindow, t.retention, t.exemplars = lim.OutOfOrderWindow, lim.RetentionPeriod, lim.MaxExemplars
	return nil
}

// CloseIdle closes the TSDBs of workspaces unused for the idle timeout. The
// server calls it periodically.
func (s *Store) CloseIdle() {
	if s.cfg.IdleTimeout == 0 {
		return
	}
	s.mu.Lock()
	ts := make([]*tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	for _, t := range ts {
		t.mu.Lock()
		if t.db != nil && t.users == 0 && time.Since(t.lastUsed) > s.cfg.IdleTimeout {
			s.closeTenant(t, "idle")
		}
		t.mu.Unlock()
	}
}

// closeTenant closes t's DB; the caller holds t.mu.
func (s *Store) closeTenant(t *tenant, why string) {
	if t.db == nil {
		return
	}
	if err := t.db.Close(); err != nil {
		s.logger.Error("close workspace", "workspace", t.id, "err", err)
	}
	t.db = nil
	s.closes.Inc()
	s.logger.Info("workspace closed", "workspace", t.id, "reason", why)
}

// Delete closes a workspace's TSDB and removes all its data from disk.
// Users holding the DB keep it until they release it; Delete waits for them.
func (s *Store) Delete(ctx context.Context, id workspace.ID) error {
	t, err := s.tenant(id)
	if err != nil {
		return err
	}
	for {
		t.mu.Lock()
		if t.users == 0 {
			break
		}
		t.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("delete workspace %s: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer t.mu.Unlock()
	s.closeTenant(t, "deleted")
	s.mu.Lock()
	delete(s.tenants, id)
	s.mu.Unlock()
	if err := os.RemoveAll(s.workspaceDir(id)); err != nil {
		return fmt.Errorf("delete workspace %s: %w", id, err)
	}
	return nil
}

// Close closes every open TSDB. The Store cannot be used afterwards.
func (s *Store) Close() error {
	var errs []error
	if err := s.FlushMetadata(); err != nil {
		errs = append(errs, err)
	}
	s.mu.Lock()
	s.closed = true
	ts := s.tenants
	s.tenants = map[workspace.ID]*tenant{}
	s.mu.Unlock()
	for _, t := range ts {
		t.mu.Lock()
		if t.db != nil {
			if err := t.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close workspace %s: %w", t.id, err))
			}
			t.db = nil
		}
		t.mu.Unlock()
	}
	return errors.Join(errs...)
}

// ActiveSeries returns the number of series in a workspace's head block.
func (s *Store) ActiveSeries(id workspace.ID) (int, error) {
	db, release, err := s.acquire(id)
	if err != nil {
		return 0, err
	}
	defer release()
	return int(db.Head().NumSeries()), nil
}

// storeCollector reports per-workspace gauges of open workspaces.
type storeCollector struct{ s *Store }

var (
	activeSeriesDesc = prometheus.NewDesc("orrery_storage_active_series",
		"Series in the workspace's in-memory head block.", []string{"workspace"}, nil)
	openDesc = prometheus.NewDesc("orrery_storage_open_workspaces",
		"Workspaces whose TSDB is open.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- activeSeriesDesc
	ch <- openDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	ts := make([]*tenant, 0, len(c.s.tenants))
	for _, t := range c.s.tenants {
		ts = append(ts, t)
	}
	c.s.mu.Unlock()
	open := 0
	for _, t := range ts {
		t.mu.Lock()
		if t.db != nil {
			open++
			ch <- prometheus.MustNewConstMetric(activeSeriesDesc, prometheus.GaugeValue, float64(t.db.Head().NumSeries()), t.id.String())
		}
		t.mu.Unlock()
	}
	ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(open))
}

// CountLabelSets returns, for each label set limit, how many series of the
// workspace's head carry the set; for the empty set (the default bucket),
// how many carry none of the other sets.
func (s *Store) CountLabelSets(ctx context.Context, id workspace.ID, ls []workspace.LabelSetLimit) ([]int, error) {
	db, release, err := s.acquire(id)
	if err != nil {
		return nil, err
	}
	defer release()
	ir, err := db.Head().Index()
	if err != nil {
		return nil, fmt.Errorf("index of workspace %s: %w", id, err)
	}
	defer func() { _ = ir.Close() }()
	postings := func(set map[string]string) (index.Postings, error) {
		its := make([]index.Postings, 0, len(set))
		for k, v := range set {
			p, err := ir.Postings(ctx, k, v)
			if err != nil {
				return nil, err
			}
			its = append(its, p)
		}
		return index.Intersect(its...), nil
	}
	counts := make([]int, len(ls))
	def := -1
	for i, l := range ls {
		if len(l.LabelSet) == 0 {
			def = i
			continue
		}
		p, err := postings(l.LabelSet)
		if err != nil {
			return nil, fmt.Errorf("count label set %s in workspace %s: %w", l, id, err)
		}
		for p.Next() {
			counts[i]++
		}
		if err := p.Err(); err != nil {
			return nil, fmt.Errorf("count label set %s in workspace %s: %w", l, id, err)
		}
	}
	if def >= 0 {
		var others []index.Postings
		for i, l := range ls {
			if i == def {
				continue
			}
			p, err := postings(l.LabelSet)
			if err != nil {
				return nil, err
			}
			others = append(others, p)
		}
		name, value := index.AllPostingsKey()
		all, err := ir.Postings(ctx, name, value)
		if err != nil {
			return nil, err
		}
		p := all
		if len(others) > 0 {
			p = index.Without(all, index.Merge(ctx, others...))
		}
		for p.Next() {
			counts[def]++
		}
		if err := p.Err(); err != nil {
			return nil, fmt.Errorf("count the default label set bucket in workspace %s: %w", id, err)
		}
	}
	return counts, nil
}
