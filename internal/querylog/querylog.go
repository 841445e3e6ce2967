package querylog

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// DefaultMaxFileBytes bounds a workspace's current query log file; with
// the one rotated file kept beside it, a workspace's query logs take at
// most twice as much.
const DefaultMaxFileBytes = 16 << 20

// DefaultTTL is how long a workspace's configuration is remembered: a
// change made through another replica holds here within it.
const DefaultTTL = 10 * time.Second

// recentQueries is how many of a workspace's latest logged queries are
// kept in memory, for Slowest.
const recentQueries = 100

// Config configures a Log.
type Config struct {
	// Dir holds the files, <Dir>/<workspace>.jsonl and, rotated,
	// <workspace>.jsonl.1.
	Dir string
	// MaxFileBytes bounds the current file (DefaultMaxFileBytes when 0):
	// a line that would take it beyond rotates it first.
	MaxFileBytes int64
	// TTL: DefaultTTL when 0.
	TTL time.Duration
}

// DefaultConfig returns the defaults of the flags.
func DefaultConfig() Config { return Config{MaxFileBytes: DefaultMaxFileBytes} }

// RegisterFlags registers the query log's flags on fs, with c's values as
// their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxFileBytes, "query-log.max-file-bytes", c.MaxFileBytes, "bound of a workspace's current query log file, <data-dir>/querylogs/<workspace>.jsonl; beyond it the file is rotated to <workspace>.jsonl.1, replacing the previous one")
}

// minFileBytes is the least MaxFileBytes: a few lines.
const minFileBytes = 4096

// Validate reports a configuration that cannot work. A zero MaxFileBytes
// means the default.
func (c Config) Validate() error {
	if c.MaxFileBytes != 0 && c.MaxFileBytes < minFileBytes {
		return fmt.Errorf("--query-log.max-file-bytes %d: must be at least %d", c.MaxFileBytes, minFileBytes)
	}
	return nil
}

// Lookup returns a workspace's query logging threshold: ok is false when
// the workspace logs no queries. Queries that process at least threshold
// samples are logged.
type Lookup func(ctx context.Context, id workspace.ID) (threshold int64, ok bool, err error)

// Entry is one line of a query log.
type Entry struct {
	Time      time.Time `json:"time"`
	Workspace string    `json:"workspace"`
	// Principal is the caller: an access key id or token/<id>; empty
	// for the web UI's queries and when the server authenticates nothing.
	Principal string `json:"principal,omitempty"`
	Query     string `json:"query"`
	// Start and End are the range; equal for an instant query, whose Step
	// is 0.
	Start            time.Time `json:"start"`
	End              time.Time `json:"end"`
	StepSeconds      float64   `json:"stepSeconds"`
	DurationSeconds  float64   `json:"durationSeconds"`
	SamplesProcessed int64     `json:"samplesProcessed"`
	// Status is "success" or "error", with the error's text in Error.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Log decides which workspaces' queries are logged and writes their
// lines. It is safe for concurrent use.
type Log struct {
	cfg    Config
	lookup Lookup
	logger *slog.Logger
	now    func() time.Time

	// configs remembers every workspace's configuration, "logs nothing"
	// included: most workspaces have none, and every query asks.
	configs *auth.Cache[config]

	mu     sync.Mutex
	files  map[workspace.ID]*os.File
	recent map[workspace.ID][]Entry
}

type config struct {
	threshold int64
	on        bool
}

// New returns a Log; lookup gives the workspaces' configurations. A nil
// logger discards the server-log copy.
func New(cfg Config, lookup Lookup, logger *slog.Logger) (*Log, error) {
	if cfg.Dir == "" || lookup == nil {
		return nil, errors.New("query log needs a directory and a lookup")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = DefaultMaxFileBytes
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Log{cfg: cfg, lookup: lookup, logger: logger.With("component", "querylog"), now: time.Now,
		configs: auth.NewCache[config](cfg.TTL, nil), files: map[workspace.ID]*os.File{}, recent: map[workspace.ID][]Entry{}}, nil
}

// Threshold reports whether a workspace logs its queries and from how many
// samples processed. It is on every query's path: it answers from memory
// but for one catalog lookup per workspace and TTL. A lookup error is
// logged and answered as "not logging": a query is never refused for its
// log.
func (l *Log) Threshold(ctx context.Context, id workspace.ID) (int64, bool) {
	c, _, err := l.configs.Get(ctx, id.String(), func(ctx context.Context, key string) (config, bool, error) {
		threshold, on, err := l.lookup(ctx, workspace.ID(key))
		return config{threshold: threshold, on: on}, err == nil, err
	})
	if err != nil {
		l.logger.Warn("look up query logging configuration; the query is not logged", "workspace", id, "err", err)
		return 0, false
	}
	return c.threshold, c.on
}

// Forget drops what is remembered of a workspace's configuration, when it
// changed, and closes its file.
func (l *Log) Forget(id workspace.ID) {
	l.configs.Forget(id.String())
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.files[id]; f != nil {
		if err := f.Close(); err != nil {
			l.logger.Warn("close query log; its lines may be incomplete", "workspace", id, "err", err)
		}
		delete(l.files, id)
	}
}

// Record writes e, a query of workspace id, to the workspace's file and
// to the server's log, with the principal of ctx.
func (l *Log) Record(ctx context.Context, id workspace.ID, e Entry) {
	e.Workspace = id.String()
	if p, ok := auth.FromContext(ctx); ok {
		e.Principal = p.ID
	}
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	line, err := json.Marshal(e)
	if err != nil {
		l.logger.Error("encode query log line", "workspace", id, "err", err)
		return
	}
	line = append(line, '\n')
	attrs := []any{"workspace", id, "principal", e.Principal, "query", e.Query, "start", e.Start, "end", e.End,
		"step", e.StepSeconds, "duration", e.DurationSeconds, "samples", e.SamplesProcessed, "status", e.Status}
	if e.Error != "" {
		attrs = append(attrs, "err", e.Error)
	}
	l.logger.Info("query", attrs...)
	l.mu.Lock()
	defer l.mu.Unlock()
	// The recent queries are kept in memory: a long query (the query API
	// takes 2 MiB) keeps only its start.
	e.Query, e.Error = truncate(e.Query), truncate(e.Error)
	r := append(l.recent[id], e)
	if len(r) > recentQueries {
		r = r[len(r)-recentQueries:]
	}
	l.recent[id] = r
	if err := l.write(id, line); err != nil {
		l.logger.Warn("write query log; the line is only in the server log", "workspace", id, "err", err)
	}
}

// maxRecentBytes bounds the query and error text of a recent query.
const maxRecentBytes = 1024

// truncate cuts s to maxRecentBytes, on a character boundary, marking the
// cut with "…".
func truncate(s string) string {
	if len(s) <= maxRecentBytes {
		return s
	}
	return strings.ToValidUTF8(s[:maxRecentBytes], "") + "…"
}

// write appends line to the workspace's file, rotating it first when the
// line would take it beyond MaxFileBytes. l.mu is held.
func (l *Log) write(id workspace.ID, line []byte) error {
	path := filepath.Join(l.cfg.Dir, id.String()+".jsonl")
	f := l.files[id]
	if f == nil {
		if err := os.MkdirAll(l.cfg.Dir, 0o700); err != nil {
			return err
		}
		var err error
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return err
		}
		l.files[id] = f
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > 0 && fi.Size()+int64(len(line)) > l.cfg.MaxFileBytes {
		delete(l.files, id)
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(path, path+".1"); err != nil {
			return fmt.Errorf("rotate %s: %w", path, err)
		}
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return err
		}
		l.files[id] = f
	}
	_, err = f.Write(line)
	return err
}

// Slowest returns up to n of the workspace's latest logged queries (of
// the last 100 logged since start), slowest first.
func (l *Log) Slowest(id workspace.ID, n int) []Entry {
	l.mu.Lock()
	out := append([]Entry(nil), l.recent[id]...)
	l.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].DurationSeconds > out[j].DurationSeconds })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// Close closes the open files.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for id, f := range l.files {
		errs = append(errs, f.Close())
		delete(l.files, id)
	}
	return errors.Join(errs...)
}
