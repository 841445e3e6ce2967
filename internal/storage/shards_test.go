package storage

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/stretchr/testify/require"
)

func openShardedTSDB(t *testing.T, oooWindow time.Duration) *tsdb.DB {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.BlockQuerierFunc = HeadQuerier
	opts.OutOfOrderTimeWindow = oooWindow.Milliseconds()
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// appendSeries writes one sample at ts of each of n series of metric m,
// in an order unrelated to their labels, so that the head's references
// are not the labels' order.
func appendSeries(t *testing.T, db *tsdb.DB, m string, n int, ts int64) {
	t.Helper()
	app := db.Appender(context.Background())
	for i := range n {
		j := (i * 7919) % n
		_, err := app.Append(0, labels.FromStrings(labels.MetricName, m, "i", fmt.Sprint(j), "odd", fmt.Sprint(j%2)), ts, float64(j))
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

// selectAll answers the series of q matching ms, unsorted, as the engine
// selects them.
func selectAll(t *testing.T, db *tsdb.DB, mint, maxt int64, ms ...*labels.Matcher) []labels.Labels {
	t.Helper()
	q, err := db.Querier(mint, maxt)
	require.NoError(t, err)
	defer q.Close()
	var out []labels.Labels
	set := q.Select(context.Background(), false, nil, ms...)
	for set.Next() {
		out = append(out, set.At().Labels())
	}
	require.NoError(t, set.Err())
	return out
}

// TestHeadShardsMergeToTheEnginesOrder: the shards of a head are
// disjoint, cover its series, and merged by the references they name
// give the order of the engine's own Select, which is not the labels'.
func TestHeadShardsMergeToTheEnginesOrder(t *testing.T) {
	db := openShardedTSDB(t, 0)
	appendSeries(t, db, "m", 1000, 1000)
	appendSeries(t, db, "other", 10, 1000)
	for _, ms := range [][]*labels.Matcher{
		{labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "m")},
		{labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "m"), labels.MustNewMatcher(labels.MatchEqual, "odd", "1")},
		{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, "m|other"), labels.MustNewMatcher(labels.MatchNotEqual, "i", "3")},
	} {
		want := selectAll(t, db, 0, 2000, ms...)
		require.NotEmpty(t, want)
		require.False(t, slices.IsSortedFunc(want, labels.Compare), "the head's order is its references', not the labels'")
		for _, n := range []int{1, 2, 3, 7} {
			shards, err := HeadShards(db, 0, 2000, n)
			require.NoError(t, err)
			require.Len(t, shards, n)
			type named struct {
				ref  storage.SeriesRef
				lset labels.Labels
			}
			var all []named
			for _, sh := range shards {
				set := sh.Select(context.Background(), &storage.SelectHints{Start: 0, End: 2000}, ms...)
				var last storage.SeriesRef
				for set.Next() {
					require.Greater(t, set.Ref(), last, "a shard answers in the order of references")
					last = set.Ref()
					all = append(all, named{set.Ref(), set.At().Labels()})
				}
				require.NoError(t, set.Err())
				require.NoError(t, sh.Close())
			}
			slices.SortFunc(all, func(a, b named) int { return int(a.ref) - int(b.ref) })
			got := make([]labels.Labels, len(all))
			for i, s := range all {
				got[i] = s.lset
			}
			require.Equal(t, want, got, "%d shards of %v", n, ms)
		}
	}
}

// TestHeadShardsAreBalanced: the series of one metric name, whose
// references step by the number of families written in turn, spread over
// the shards about evenly.
func TestHeadShardsAreBalanced(t *testing.T) {
	db := openShardedTSDB(t, 0)
	app := db.Appender(context.Background())
	for i := range 3600 { // 18 families in turn, as orrery loadgen writes.
		_, err := app.Append(0, labels.FromStrings(labels.MetricName, fmt.Sprintf("m%d", i%18), "i", fmt.Sprint(i)), 1000, 1)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	for _, n := range []int{2, 3, 4} {
		shards, err := HeadShards(db, 0, 2000, n)
		require.NoError(t, err)
		for _, sh := range shards {
			set := sh.Select(context.Background(), &storage.SelectHints{Start: 0, End: 2000}, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "m0"))
			got := 0
			for set.Next() {
				got++
			}
			require.NoError(t, set.Err())
			require.InDelta(t, 200/n, got, float64(200/n)/4, "shard %d of %d", sh.i, n)
			require.NoError(t, sh.Close())
		}
	}
}

// TestHeadShardsOnlyOverTheHeadAlone: where a persisted block or
// out-of-order chunks overlap the range, the engine's querier merges
// (in the labels' order): there are no shards there.
func TestHeadShardsOnlyOverTheHeadAlone(t *testing.T) {
	db := openShardedTSDB(t, time.Hour)
	hour := time.Hour.Milliseconds()
	shardsOver := func(mint, maxt int64) int {
		shards, err := HeadShards(db, mint, maxt, 2)
		require.NoError(t, err)
		for _, sh := range shards {
			require.NoError(t, sh.Close())
		}
		return len(shards)
	}
	appendSeries(t, db, "m", 100, 0)
	appendSeries(t, db, "m", 100, 3*hour)
	require.NoError(t, db.CompactHead(tsdb.NewRangeHead(db.Head(), 0, hour-1)))
	require.Len(t, db.Blocks(), 1)
	require.Zero(t, shardsOver(0, 4*hour), "a block overlaps")
	require.Equal(t, 2, shardsOver(2*hour, 4*hour), "the head alone")

	appendSeries(t, db, "m", 100, 3*hour-10*time.Minute.Milliseconds()) // Out of order, in the window.
	require.Zero(t, shardsOver(2*hour, 4*hour), "out-of-order chunks overlap")
	require.Equal(t, 2, shardsOver(3*hour, 4*hour), "after the out-of-order samples")
}

// TestRefShardSeeks: a shard's postings seek to the shard's next
// reference at or after the one sought.
func TestRefShardSeeks(t *testing.T) {
	refs := []storage.SeriesRef{1, 2, 3, 5, 8, 13, 21, 34, 55, 89}
	for n := uint64(1); n <= 4; n++ {
		for i := range n {
			for v := storage.SeriesRef(1); v <= 90; v++ { // References start at 1.
				var want []storage.SeriesRef
				for _, r := range refs {
					if r >= v && refShardOf(r, n) == i {
						want = append(want, r)
					}
				}
				p := &refShard{Postings: index.NewListPostings(refs), i: i, n: n}
				var got []storage.SeriesRef
				if p.Seek(v) {
					got = append(got, p.At())
					for p.Next() {
						got = append(got, p.At())
					}
				}
				require.Equal(t, want, got, "shard %d of %d from %d", i, n, v)
			}
		}
	}
}

// TestHeadShardChunksAreTheSeriesSamples: a shard's chunks, read as Chunks
// hands them out (bytes of chunks that isolation shows whole, the open
// one copied; iterators otherwise), are the samples the series' iterator
// reads, with samples committed after the querier opened still hidden; a
// series with deletions is left to its iterator.
func TestHeadShardChunksAreTheSeriesSamples(t *testing.T) {
	db := openShardedTSDB(t, 0)
	m := labels.FromStrings(labels.MetricName, "m", "i", "0")
	deleted := labels.FromStrings(labels.MetricName, "m", "i", "1")
	still := labels.FromStrings(labels.MetricName, "m", "i", "2") // Not written once the queriers opened.
	write := func(from, to int, series ...labels.Labels) {
		app := db.Appender(context.Background())
		for i := from; i < to; i++ {
			for _, ls := range series {
				_, err := app.Append(0, ls, int64(i)*15000, float64(i*i))
				require.NoError(t, err)
			}
		}
		require.NoError(t, app.Commit())
	}
	for i := 0; i < 300; i += 20 {
		write(i, i+20, m, deleted, still)
	}
	require.NoError(t, db.Delete(context.Background(), 0, 15000, labels.MustNewMatcher(labels.MatchEqual, "i", "1")))

	shards, err := HeadShards(db, 0, math.MaxInt64, 1)
	require.NoError(t, err)
	defer shards[0].Close()
	plain, err := db.Querier(0, math.MaxInt64)
	require.NoError(t, err)
	defer plain.Close()
	// Written after both opened: the open chunk fills up and more are cut,
	// but neither querier's isolation shows these samples.
	write(300, 500, m, deleted)

	want := map[uint64][]chunks.Sample{}
	set := plain.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "m"))
	for set.Next() {
		s := set.At()
		pts, err := storage.ExpandSamples(s.Iterator(nil), nil)
		require.NoError(t, err)
		if labels.Equal(s.Labels(), m) {
			require.Len(t, pts, 300, "the plain querier saw samples written after it opened")
		}
		want[s.Labels().Hash()] = pts
	}
	require.NoError(t, set.Err())
	require.Len(t, want, 3)

	var decoded, iterated int
	refs := shards[0].Select(context.Background(), nil, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "m"))
	seen := 0
	for refs.Next() {
		seen++
		iterated0 := iterated
		var got []chunks.Sample
		read, err := refs.Chunks(0, math.MaxInt64, func(xor []byte, it chunkenc.Iterator) error {
			if xor != nil {
				decoded++
				c, err := chunkenc.FromData(chunkenc.EncXOR, xor)
				require.NoError(t, err)
				it = c.Iterator(nil)
			} else {
				iterated++
			}
			pts, err := storage.ExpandSamples(it, nil)
			got = append(got, pts...)
			return err
		})
		require.NoError(t, err)
		lset := refs.At().Labels()
		if labels.Equal(lset, deleted) {
			require.False(t, read, "a series with deletions read by chunks")
			continue
		}
		require.True(t, read)
		require.Equal(t, want[lset.Hash()], got)
		if labels.Equal(lset, still) {
			require.Equal(t, iterated0, iterated, "the chunks of a series isolation shows whole, the open one included, were not all decoded")
		}
	}
	require.NoError(t, refs.Err())
	require.Equal(t, 3, seen)
	require.Positive(t, decoded, "no chunk decoded")
	// The chunk open when the queriers opened, now full but partly hidden,
	// the hidden ones and the open one.
	require.GreaterOrEqual(t, iterated, 2, "chunks that isolation hides in part were not left to their iterators")
}

// TestHeadShardChunksWhileWritten reads a shard's chunks, the open ones
// decoded from their copies, while writers append to them: run with
// -race, it shows that no chunk handed out as bytes is written to.
func TestHeadShardChunksWhileWritten(t *testing.T) {
	db := openShardedTSDB(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done, started := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(0); ctx.Err() == nil; i++ {
			if i == 300 {
				close(started) // Chunks cut.
			}
			app := db.Appender(ctx)
			for s := range 20 {
				_, err := app.Append(0, labels.FromStrings(labels.MetricName, "m", "i", fmt.Sprint(s)), i*15000, float64(i))
				if err != nil {
					t.Error(err)
					return
				}
			}
			if err := app.Commit(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-started:
	case <-done:
		t.FailNow()
	}
	var decoded int
	for range 200 {
		shards, err := HeadShards(db, 0, math.MaxInt64, 2)
		require.NoError(t, err)
		for _, sh := range shards {
			refs := sh.Select(context.Background(), nil, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "m"))
			for refs.Next() {
				last := int64(math.MinInt64)
				_, err := refs.Chunks(0, math.MaxInt64, func(xor []byte, it chunkenc.Iterator) error {
					if xor != nil {
						decoded++
						c, err := chunkenc.FromData(chunkenc.EncXOR, xor)
						require.NoError(t, err)
						it = c.Iterator(nil)
					}
					for it.Next() != chunkenc.ValNone {
						ts, v := it.At()
						require.Greater(t, ts, last)
						require.Equal(t, float64(ts/15000), v)
						last = ts
					}
					return it.Err()
				})
				require.NoError(t, err)
			}
			require.NoError(t, refs.Err())
			require.NoError(t, sh.Close())
		}
	}
	require.Positive(t, decoded)
}
