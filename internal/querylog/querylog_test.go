package querylog

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// configs is a catalog of query logging thresholds that counts lookups.
type configs struct {
	mu         sync.Mutex
	thresholds map[workspace.ID]int64
	lookups    int
}

func (c *configs) lookup(_ context.Context, id workspace.ID) (int64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lookups++
	th, ok := c.thresholds[id]
	return th, ok, nil
}

func lines(t *testing.T, path string) []Entry {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Entry
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e), sc.Text())
		out = append(out, e)
	}
	require.NoError(t, sc.Err())
	return out
}

// TestLog checks what a workspace's query log holds, that its files stay
// bounded, and that configurations are remembered until forgotten.
func TestLog(t *testing.T) {
	dir := t.TempDir()
	a, b := workspace.NewID(), workspace.NewID()
	c := &configs{thresholds: map[workspace.ID]int64{a: 100}}
	var server strings.Builder
	var serverMu sync.Mutex
	logger := slogTo(&server, &serverMu)
	l, err := New(Config{Dir: dir, MaxFileBytes: 4096}, c.lookup, logger)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	ctx := auth.NewContext(context.Background(), auth.Principal{ID: "AKIAREADER"})

	th, ok := l.Threshold(ctx, a)
	require.True(t, ok)
	require.Equal(t, int64(100), th)
	_, ok = l.Threshold(ctx, b)
	require.False(t, ok, "b logs nothing")
	for range 3 {
		l.Threshold(ctx, a)
		l.Threshold(ctx, b)
	}
	require.Equal(t, 2, c.lookups, "remembered, the answer of no configuration too")

	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l.Record(ctx, a, Entry{Query: `sum(rate(envoy_cluster_upstream_rq_total[1m]))`, Start: start, End: start.Add(time.Hour),
		StepSeconds: 15, DurationSeconds: 0.25, SamplesProcessed: 1234, Status: "success"})
	got := lines(t, filepath.Join(dir, a.String()+".jsonl"))
	require.Len(t, got, 1)
	e := got[0]
	require.Equal(t, a.String(), e.Workspace)
	require.Equal(t, "AKIAREADER", e.Principal)
	require.Equal(t, `sum(rate(envoy_cluster_upstream_rq_total[1m]))`, e.Query)
	require.Equal(t, start, e.Start)
	require.Equal(t, 15.0, e.StepSeconds)
	require.Equal(t, int64(1234), e.SamplesProcessed)
	require.Equal(t, "success", e.Status)
	serverMu.Lock()
	require.Contains(t, server.String(), "workspace="+a.String())
	require.Contains(t, server.String(), "samples=1234")
	serverMu.Unlock()
	fi, err := os.Stat(filepath.Join(dir, a.String()+".jsonl"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "query logs name principals and queries")

	// Bounded: a current file under the bound and one rotated file.
	for i := range 200 {
		l.Record(ctx, a, Entry{Query: strings.Repeat("x", 100), DurationSeconds: float64(i), Status: "success"})
	}
	for _, name := range []string{a.String() + ".jsonl", a.String() + ".jsonl.1"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		require.LessOrEqual(t, fi.Size(), int64(4096), name)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "no third file")
	last := lines(t, filepath.Join(dir, a.String()+".jsonl"))
	require.Equal(t, 199.0, last[len(last)-1].DurationSeconds, "the latest line is in the current file")

	slow := l.Slowest(a, 3)
	require.Len(t, slow, 3)
	require.Equal(t, []float64{199, 198, 197}, []float64{slow[0].DurationSeconds, slow[1].DurationSeconds, slow[2].DurationSeconds})
	require.Empty(t, l.Slowest(b, 3))

	// A long query is kept whole in the file, cut in memory.
	long := strings.Repeat("é", maxRecentBytes)
	l.Record(ctx, a, Entry{Query: long, DurationSeconds: 1000, Status: "success"})
	slow = l.Slowest(a, 1)
	require.Len(t, slow[0].Query, maxRecentBytes+len("…"))
	require.True(t, strings.HasSuffix(slow[0].Query, "é…"), "cut on a character boundary")
	last = lines(t, filepath.Join(dir, a.String()+".jsonl"))
	require.Equal(t, long, last[len(last)-1].Query)

	// A change is looked up again once forgotten.
	c.mu.Lock()
	delete(c.thresholds, a)
	c.mu.Unlock()
	_, ok = l.Threshold(ctx, a)
	require.True(t, ok, "remembered")
	l.Forget(a)
	_, ok = l.Threshold(ctx, a)
	require.False(t, ok, "forgotten: looked up again")
}

// slogTo returns a text logger writing to w under mu.
func slogTo(w io.Writer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{w, mu}, nil))
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
