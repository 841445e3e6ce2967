package storage

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/workspace"
)

func newTestStore(t testing.TB, fsync bool) *Store {
	ov, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	s, err := New(Config{Dir: t.TempDir(), WALFsync: fsync}, ov, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

var base = time.Now().UnixMilli()

// commitOne commits one sample; i must be unique per store.
func commitOne(t testing.TB, s *Store, id workspace.ID, i int64) {
	app, err := s.Appender(context.Background(), id)
	require.NoError(t, err)
	_, err = app.Append(0, labels.FromStrings("__name__", "fsync_test", "i", fmt.Sprint(i%100)), 0, base+i, float64(i), nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
}

// TestWALFsync: with WALFsync every commit returns after a sync of the WAL
// that started after it, and concurrent commits share syncs.
func TestWALFsync(t *testing.T) {
	for _, fsync := range []bool{false, true} {
		t.Run(fmt.Sprint("fsync=", fsync), func(t *testing.T) {
			s := newTestStore(t, fsync)
			id := workspace.NewID()
			commitOne(t, s, id, 0)
			var wg sync.WaitGroup
			for i := range 64 {
				wg.Go(func() { commitOne(t, s, id, int64(i+1)) })
			}
			wg.Wait()
			n := testutil.ToFloat64(s.fsyncs)
			if !fsync {
				require.Zero(t, n)
				return
			}
			require.GreaterOrEqual(t, n, 2.0, "the first commit and at least one of the others")
			require.LessOrEqual(t, n, 65.0)
			t.Logf("65 commits, %v syncs", n)
		})
	}
}

// BenchmarkCommit measures a one-sample commit with and without syncing
// the WAL, alone and with 8 × GOMAXPROCS committers sharing syncs.
func BenchmarkCommit(b *testing.B) {
	for _, fsync := range []bool{false, true} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("fsync=%v/parallelism=%d", fsync, par), func(b *testing.B) {
				s := newTestStore(b, fsync)
				id := workspace.NewID()
				commitOne(b, s, id, 0)
				b.SetParallelism(par)
				b.ResetTimer()
				var n atomic.Int64
				if par == 1 {
					for b.Loop() {
						commitOne(b, s, id, n.Add(1))
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						commitOne(b, s, id, n.Add(1))
					}
				})
			})
		}
	}
}
