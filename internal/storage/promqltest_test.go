package storage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/query"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// workspaceStorage is one workspace of a Store seen as a Prometheus
// storage.Storage, so that upstream PromQL tests run against it.
type workspaceStorage struct {
	storage.SampleAndChunkQueryable
	s  *Store
	id workspace.ID
}

func (w *workspaceStorage) Appender(ctx context.Context) storage.Appender {
	db, release, err := w.s.acquire(w.id)
	if err != nil {
		panic(err) // Test-only adapter; promqltest uses AppenderV2.
	}
	release()
	return db.Appender(ctx)
}

func (w *workspaceStorage) AppenderV2(ctx context.Context) storage.AppenderV2 {
	app, err := w.s.Appender(ctx, w.id)
	if err != nil {
		panic(err)
	}
	return app
}

func (w *workspaceStorage) StartTime() (int64, error) { return 0, nil }
func (w *workspaceStorage) Close() error              { return w.s.Close() }

// excludedUpstream lists upstream test files that exercise features a
// workspace does not enable, with the reason.
var excludedUpstream = map[string]string{
	"start_timestamps.test": "needs the TSDB's experimental start-timestamp storage (off in Prometheus by default)",
}

// TestUpstreamPromQLTests runs Prometheus' own PromQL acceptance tests
// (promql/promqltest/testdata of the embedded module version) through a
// workspace of the Store, with the engine options every workspace gets.
func TestUpstreamPromQLTests(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus").Output()
	require.NoError(t, err, "find the Prometheus module")
	files, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "promql", "promqltest", "testdata", "*.test"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 20)

	lim := workspace.DefaultLimits()
	opts := query.EngineOpts(lim, 5*time.Minute)
	// The test files use experimental functions and modifiers behind
	// feature flags; the parser options switch them on as upstream does.
	opts.Parser = parser.NewParser(promqltest.TestParserOpts)
	opts.EnableDelayedNameRemoval = true
	opts.Timeout = 100 * time.Second
	engine := promql.NewEngine(opts)
	t.Cleanup(func() { require.NoError(t, engine.Close()) })

	for _, f := range files {
		name := filepath.Base(f)
		if _, skip := excludedUpstream[name]; skip {
			continue
		}
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			promqltest.RunTestWithStorage(t, string(b), engine, func(tb testing.TB) storage.Storage {
				// 24 h blocks, as upstream's test storage: the files load long spans.
				s, err := New(Config{Dir: tb.TempDir(), BlockDuration: 24 * time.Hour}, mustOverrides(tb), nil, prometheus.NewRegistry())
				require.NoError(tb, err)
				id := workspace.NewID()
				return &workspaceStorage{SampleAndChunkQueryable: s.Queryable(id), s: s, id: id}
			})
		})
	}
}

func mustOverrides(tb testing.TB) *workspace.Overrides {
	lim := workspace.DefaultLimits()
	lim.OutOfOrderWindow = 0
	o, err := workspace.NewOverrides(lim)
	require.NoError(tb, err)
	return o
}
