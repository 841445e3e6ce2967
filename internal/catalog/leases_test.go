package catalog

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestLeases elects holders on the embedded SQLite file and on a real
// PostgreSQL server, through two Catalogs as two replicas have: one holder
// at a time, renewal, release taken over at once, expiry taken over after
// the duration, and one winner among contenders racing for a lease.
func TestLeases(t *testing.T) {
	pg := apptest.StartPostgres(t)
	for name, dsn := range map[string]func() string{
		"sqlite":   func() string { return filepath.Join(t.TempDir(), "catalog.db") },
		"postgres": func() string { return pg.NewDatabase(t) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dsn := dsn()
			a, err := Open(ctx, dsn)
			require.NoError(t, err)
			defer a.Close()
			b, err := Open(ctx, dsn)
			require.NoError(t, err)
			defer b.Close()
			const ttl = 400 * time.Millisecond

			holder, err := a.LeaseHolder(ctx, "scraper/s-1")
			require.NoError(t, err)
			require.Empty(t, holder)
			ok, err := a.AcquireLease(ctx, "scraper/s-1", "A", ttl)
			require.NoError(t, err)
			require.True(t, ok, "a free lease is taken")
			ok, err = b.AcquireLease(ctx, "scraper/s-1", "B", ttl)
			require.NoError(t, err)
			require.False(t, ok, "a held lease is not taken")
			ok, err = b.AcquireLease(ctx, "scraper/s-2", "B", ttl)
			require.NoError(t, err)
			require.True(t, ok, "leases are by name")
			ok, err = a.AcquireLease(ctx, "scraper/s-1", "A", ttl)
			require.NoError(t, err)
			require.True(t, ok, "the holder renews")
			holder, err = b.LeaseHolder(ctx, "scraper/s-1")
			require.NoError(t, err)
			require.Equal(t, "A", holder)

			// Renewed before it expires, it stays A's beyond one duration.
			for range 3 {
				time.Sleep(ttl / 3)
				ok, err = a.AcquireLease(ctx, "scraper/s-1", "A", ttl)
				require.NoError(t, err)
				require.True(t, ok)
				ok, err = b.AcquireLease(ctx, "scraper/s-1", "B", ttl)
				require.NoError(t, err)
				require.False(t, ok, "a renewed lease is not taken")
			}

			// Released, it is taken at once.
			require.NoError(t, b.ReleaseLease(ctx, "scraper/s-1", "B"), "releasing another's lease does nothing")
			ok, err = b.AcquireLease(ctx, "scraper/s-1", "B", ttl)
			require.NoError(t, err)
			require.False(t, ok)
			require.NoError(t, a.ReleaseLease(ctx, "scraper/s-1", "A"))
			ok, err = b.AcquireLease(ctx, "scraper/s-1", "B", ttl)
			require.NoError(t, err)
			require.True(t, ok, "a released lease is taken at once")

			// Not renewed (its holder killed), it is taken after it expires.
			ok, err = a.AcquireLease(ctx, "scraper/s-1", "A", ttl)
			require.NoError(t, err)
			require.False(t, ok)
			time.Sleep(ttl + 100*time.Millisecond)
			holder, err = a.LeaseHolder(ctx, "scraper/s-1")
			require.NoError(t, err)
			require.Empty(t, holder, "an expired lease has no holder")
			ok, err = a.AcquireLease(ctx, "scraper/s-1", "A", ttl)
			require.NoError(t, err)
			require.True(t, ok, "an expired lease is taken")
			ok, err = b.AcquireLease(ctx, "scraper/s-1", "B", ttl)
			require.NoError(t, err)
			require.False(t, ok, "the lease it lost is not the old holder's any more")

			// Contenders on both catalogs race for new and expired leases:
			// exactly one wins each.
			for round := range 5 {
				name := fmt.Sprintf("anomaly/race-%d", round%2)
				if round >= 2 {
					time.Sleep(ttl + 50*time.Millisecond) // The previous winner's lease expires.
				}
				var wins atomic.Int32
				var wg sync.WaitGroup
				for i := range 8 {
					c := a
					if i%2 == 1 {
						c = b
					}
					wg.Go(func() {
						ok, err := c.AcquireLease(ctx, name, fmt.Sprintf("replica-%d-%d", round, i), ttl)
						if err != nil {
							t.Error(err)
						}
						if ok {
							wins.Add(1)
						}
					})
				}
				wg.Wait()
				require.EqualValues(t, 1, wins.Load(), "round %d", round)
			}

			_, err = a.AcquireLease(ctx, "", "A", ttl)
			require.Error(t, err)
			_, err = a.AcquireLease(ctx, "x", "A", 0)
			require.Error(t, err)
		})
	}
}
