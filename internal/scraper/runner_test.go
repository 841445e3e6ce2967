package scraper

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/ingest"
	"github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestRunnerLifecycle runs a scraper of a real HTTP target against the
// catalog, the remote write handler and a store: it becomes ACTIVE and its
// series reach the workspace, the workspace's refusal of a scrape is its
// last error, and deleting it stops the writes and removes it.
func TestRunnerLifecycle(t *testing.T) {
	ctx := context.Background()
	cat, err := catalog.OpenSQLite(ctx, filepath.Join(t.TempDir(), "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cat.Close() })
	ws, _, err := cat.CreateWorkspace(ctx, catalog.Workspace{ID: workspace.NewID(), Status: catalog.StatusActive, CreatedAt: time.Now()})
	require.NoError(t, err)

	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE demo gauge\ndemo 1")
	}))
	t.Cleanup(target.Close)
	// The server's own remote write handler over a real store; writes
	// counts the scrapes handed to it.
	dir := t.TempDir()
	ov, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	st, err := storage.New(storage.Config{Dir: dir}, ov, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	rw, err := ingest.New(ingest.DefaultConfig(), st, ov, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	var writes atomic.Int64
	ingest := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writes.Add(1)
		rw.ServeHTTP(w, r)
	})
	r, err := New(Config{PollInterval: 100 * time.Millisecond, MaxTargets: 5, Replica: "test"}, cat, ingest, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	cat.OnChange(func(catalog.Change) { r.Notify() })
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })

	host := strings.TrimPrefix(target.URL, "http://")
	blob := "global:\n  scrape_interval: 100ms\n  scrape_timeout: 50ms\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: [" + host + "]\n"
	now := time.Now()
	s, _, err := cat.CreateScraper(ctx, catalog.Scraper{ID: "s-1", Status: catalog.ScraperCreating, Workspace: ws.ID,
		Source: []byte(`{"vpcConfiguration":{}}`), Configuration: []byte(blob), CreatedAt: now, ModifiedAt: now}, 0)
	require.NoError(t, err)
	status := func(want string) {
		require.Eventually(t, func() bool {
			got, err := cat.Scraper(ctx, s.ID)
			return err == nil && got.Status == want
		}, 10*time.Second, 20*time.Millisecond, "status %s", want)
	}
	status(catalog.ScraperActive)
	require.Eventually(t, func() bool { return writes.Load() > 2 }, 10*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		ts, ok := r.Targets(s.ID)
		return ok && len(ts.ActiveTargets) == 1 && ts.ActiveTargets[0].Health == "up"
	}, 10*time.Second, 20*time.Millisecond)

	has, err := st.HasSeries(ctx, ws.ID, labels.FromStrings("__name__", "demo", "instance", host, "job", "demo"))
	require.NoError(t, err)
	require.True(t, has, "the scraped series is in the workspace")

	// A scrape is one write, admitted against the workspace's limits: a
	// burst smaller than a scrape refuses it, and the scraper says why.
	lim := workspace.DefaultLimits()
	lim.IngestionRate, lim.IngestionBurstSize = 1, 1
	require.NoError(t, ov.Set(ws.ID, lim))
	require.Eventually(t, func() bool {
		ts, _ := r.Targets(s.ID)
		return strings.Contains(ts.LastWriteError, "ingestion burst size of 1")
	}, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, ov.Set(ws.ID, workspace.DefaultLimits()))

	// Deleting the scraper stops it.
	s.Status = catalog.ScraperDeleting
	require.NoError(t, cat.UpdateScraper(ctx, s))
	require.Eventually(t, func() bool {
		_, err := cat.Scraper(ctx, s.ID)
		return err != nil
	}, 10*time.Second, 20*time.Millisecond)
	_, running := r.Targets(s.ID)
	require.False(t, running)
	// Its series end with a staleness marker, as Prometheus' do when a
	// target goes away, just over two intervals after its last scrape.
	lastSample := func() float64 {
		q, err := st.Queryable(ws.ID).Querier(0, time.Now().Add(time.Minute).UnixMilli())
		require.NoError(t, err)
		defer q.Close()
		set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "demo"))
		v := 0.0
		for set.Next() {
			it := set.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				_, v = it.At()
			}
		}
		require.NoError(t, set.Err())
		return v
	}
	require.Eventually(t, func() bool { return value.IsStaleNaN(lastSample()) }, 10*time.Second, 50*time.Millisecond)
	// Then it is stopped: nothing more is written.
	time.Sleep(time.Second)
	n := writes.Load()
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, n, writes.Load(), "no write after the scraper is deleted")
}

// TestRunnerLeases runs two runners, as two replicas sharing a catalog
// have: exactly one runs the scraper, the other takes it over at once
// when the first stops (its lease released), and a runner whose lease is
// taken stops scraping.
func TestRunnerLeases(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "catalog.db")
	cat, err := catalog.OpenSQLite(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cat.Close() })
	ws, _, err := cat.CreateWorkspace(ctx, catalog.Workspace{ID: workspace.NewID(), Status: catalog.StatusActive, CreatedAt: time.Now()})
	require.NoError(t, err)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE demo gauge\ndemo 1")
	}))
	t.Cleanup(target.Close)

	type replica struct {
		r      *Runner
		writes atomic.Int64
		cancel context.CancelFunc
		done   chan struct{}
	}
	start := func(name string) *replica {
		c, err := catalog.OpenSQLite(ctx, path)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		rep := &replica{done: make(chan struct{})}
		count := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			rep.writes.Add(1)
			w.WriteHeader(http.StatusNoContent)
		})
		rep.r, err = New(Config{PollInterval: 100 * time.Millisecond, LeaseDuration: 10 * time.Second, Replica: name}, c, count, nil, prometheus.NewRegistry())
		require.NoError(t, err)
		rctx, cancel := context.WithCancel(ctx)
		rep.cancel = cancel
		go func() { defer close(rep.done); _ = rep.r.Run(rctx) }()
		t.Cleanup(func() { cancel(); <-rep.done })
		return rep
	}
	a, b := start("A"), start("B")

	host := strings.TrimPrefix(target.URL, "http://")
	blob := "global:\n  scrape_interval: 100ms\n  scrape_timeout: 50ms\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: [" + host + "]\n"
	now := time.Now()
	s, _, err := cat.CreateScraper(ctx, catalog.Scraper{ID: "s-1", Status: catalog.ScraperCreating, Workspace: ws.ID,
		Source: []byte(`{"vpcConfiguration":{}}`), Configuration: []byte(blob), CreatedAt: now, ModifiedAt: now}, 0)
	require.NoError(t, err)
	running := func(rep *replica) bool { _, ok := rep.r.Targets(s.ID); return ok }
	require.Eventually(t, func() bool { return running(a) || running(b) }, 10*time.Second, 20*time.Millisecond)
	holder, other := a, b
	if running(b) {
		holder, other = b, a
	}
	require.Eventually(t, func() bool { return holder.writes.Load() > 3 }, 10*time.Second, 20*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // Several polls of the other replica.
	require.False(t, running(other), "one replica runs the scraper")
	require.Zero(t, other.writes.Load(), "the other replica does not scrape")

	// An orderly stop releases the lease: the other replica takes it at
	// its next poll, long before the lease would expire.
	holder.cancel()
	<-holder.done
	stopped := time.Now()
	require.Eventually(t, func() bool { return other.writes.Load() > 3 }, 5*time.Second, 20*time.Millisecond)
	require.Less(t, time.Since(stopped), 5*time.Second)
	n := holder.writes.Load()

	// A lease taken from under its holder (here by hand: another holder
	// after it expired) stops the scrape there at the next poll.
	require.NoError(t, cat.ReleaseLease(ctx, "scraper/"+s.ID, other.r.cfg.Replica))
	ok, err := cat.AcquireLease(ctx, "scraper/"+s.ID, "C", time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	require.Eventually(t, func() bool { return !running(other) }, 5*time.Second, 20*time.Millisecond)
	m := other.writes.Load()
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, m, other.writes.Load(), "no scrape once the lease is lost")
	require.Equal(t, n, holder.writes.Load(), "none from the stopped replica")
}

// TestLimitTargets keeps the first targets, jobs in name order, and says
// how many it left out.
func TestLimitTargets(t *testing.T) {
	group := func(addrs ...string) *targetgroup.Group {
		g := &targetgroup.Group{Source: addrs[0]}
		for _, a := range addrs {
			g.Targets = append(g.Targets, model.LabelSet{model.AddressLabel: model.LabelValue(a)})
		}
		return g
	}
	tsets := map[string][]*targetgroup.Group{"b": {group("b1", "b2")}, "a": {group("a1", "a2")}}
	same, why := limitTargets(tsets, 4)
	require.Empty(t, why)
	require.Equal(t, tsets, same)
	kept, why := limitTargets(tsets, 3)
	require.Equal(t, "discovery found 4 targets, more than the 3 a scraper scrapes (--scraper.max-targets); 1 are not scraped", why)
	require.Len(t, kept["a"][0].Targets, 2)
	require.Len(t, kept["b"][0].Targets, 1)
	require.Len(t, tsets["b"][0].Targets, 2, "the discovered groups are not changed")
}
