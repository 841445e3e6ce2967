package storage

import (
	"context"
	"errors"
	"math"
	"reflect"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/tombstones"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// Series of a workspace's head can be read as disjoint shards, one
// goroutine each, in an order the query engine's own reading defines.
//
// Where the TSDB's querier over a range is its head's alone (no persisted
// block and no out-of-order chunk overlaps the range), the engine's
// unsorted Select answers the matching series in the order of their
// references, ascending: the head's postings are sorted by reference, and
// nothing merges them. A head querier of a workspace (HeadQuerier, the
// TSDB's BlockQuerierFunc) shards a Select given SelectHints.ShardCount by
// a hash of the reference, and names each series it answers by its
// reference; merging the shards by reference then gives the engine's
// order, and no shard reads another's series. (The head's own sharding, by a hash of the
// labels, would need every series looked up to be placed in order.)

// HeadQuerier opens a querier over a block of a workspace's TSDB, as
// tsdb.NewBlockQuerier does; over the head, one that can answer shards
// (see above). It is the TSDB's BlockQuerierFunc.
func HeadQuerier(b tsdb.BlockReader, mint, maxt int64) (storage.Querier, error) {
	rh, ok := b.(*tsdb.RangeHead)
	if !ok {
		return tsdb.NewBlockQuerier(b, mint, maxt)
	}
	hb := &headBlock{RangeHead: rh}
	q, err := tsdb.NewBlockQuerier(hb, mint, maxt)
	if err != nil {
		return nil, err
	}
	return &headQuerier{Querier: q, b: hb}, nil
}

// headBlock is a head's range whose index reader is a headIndex, and
// which keeps the readers its querier opened.
type headBlock struct {
	*tsdb.RangeHead
	ix *headIndex // The index reader Index opened last.
	cr tsdb.ChunkReader
	tr tombstones.Reader
}

func (b *headBlock) Chunks() (tsdb.ChunkReader, error) {
	cr, err := b.RangeHead.Chunks()
	b.cr = cr
	return cr, err
}

func (b *headBlock) Tombstones() (tombstones.Reader, error) {
	tr, err := b.RangeHead.Tombstones()
	b.tr = tr
	return tr, err
}

func (b *headBlock) Index() (tsdb.IndexReader, error) {
	ir, err := b.RangeHead.Index()
	if err != nil {
		return nil, err
	}
	b.ix = &headIndex{IndexReader: ir}
	return b.ix, nil
}

// headIndex is a head's index reader that shards postings by reference
// and remembers the series it looked up last. Like the querier it serves,
// it is used by one goroutine at a time.
type headIndex struct {
	tsdb.IndexReader
	last storage.SeriesRef
	// chks is where the last lookup put the series' chunks: the series
	// set's own buffer, which it keeps until its next Next.
	chks *[]chunks.Meta
}

// Series records ref: a series set's Next looks its series up last
// before answering it.
func (ix *headIndex) Series(ref storage.SeriesRef, builder *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	ix.last, ix.chks = ref, chks
	return ix.IndexReader.Series(ref, builder, chks)
}

// ShardedPostings keeps the references of shard shardIndex of
// shardCount (refShardOf), in their order.
func (ix *headIndex) ShardedPostings(p index.Postings, shardIndex, shardCount uint64) index.Postings {
	return &refShard{Postings: p, i: shardIndex, n: shardCount}
}

// refShardOf is the shard of n a series reference falls in. References
// are handed out in the order series are first written, and writers
// write families in turn: the references of one metric name often step
// by the number of families (by 18 for orrery loadgen's), so that the
// reference modulo n would put them all in one shard. They are mixed
// first (Fibonacci hashing).
func refShardOf(ref storage.SeriesRef, n uint64) uint64 {
	return (uint64(ref) * 0x9E3779B97F4A7C15 >> 32) % n
}

type refShard struct {
	index.Postings
	i, n uint64
}

func (p *refShard) Next() bool {
	for p.Postings.Next() {
		if refShardOf(p.At(), p.n) == p.i {
			return true
		}
	}
	return false
}

func (p *refShard) Seek(v storage.SeriesRef) bool {
	if !p.Postings.Seek(v) {
		return false
	}
	return refShardOf(p.At(), p.n) == p.i || p.Next()
}

// headQuerier is a querier over a workspace's head alone.
type headQuerier struct {
	storage.Querier
	b *headBlock
}

// HeadShard reads one of n shards of the series of a workspace's head.
type HeadShard struct {
	q       *headQuerier
	release func()
	i, n    int
}

// Select answers the shard's series matching ms, unsorted: in the order
// of their references, which the set names. hints' ShardIndex and
// ShardCount are the shard's own.
func (s *HeadShard) Select(ctx context.Context, hints *storage.SelectHints, ms ...*labels.Matcher) *RefSeriesSet {
	h := storage.SelectHints{}
	if hints != nil {
		h = *hints
	}
	h.ShardIndex, h.ShardCount = uint64(s.i), uint64(s.n)
	return &RefSeriesSet{SeriesSet: s.q.Select(ctx, false, &h, ms...), b: s.q.b}
}

// Close closes the shard's querier.
func (s *HeadShard) Close() error {
	defer s.release()
	return s.q.Close()
}

// RefSeriesSet is a shard's series set, naming each series' reference.
type RefSeriesSet struct {
	storage.SeriesSet
	b   *headBlock
	ref storage.SeriesRef
	// Reused by Chunks.
	it    chunkenc.Iterator
	metas []chunks.Meta
}

func (s *RefSeriesSet) Next() bool {
	if !s.SeriesSet.Next() {
		return false
	}
	s.ref = s.b.ix.last
	return true
}

// plainXORIterator is the type of an XOR chunk's own iterator, which the
// head's chunks answer where isolation hides none of their samples.
var plainXORIterator = reflect.TypeOf(chunkenc.NewXORChunk().Iterator(nil))

// Chunks calls f with each chunk of the series At answers that has
// samples in [mint, maxt], oldest first, as the series' own iterator
// reads them: with xor, the bytes of an XOR chunk that no appender
// changes (the head's open chunk is copied as it stands) and of which
// the querier's isolation shows every sample; or else with it, an
// iterator over what the querier sees of the chunk (valid until the next
// call). Read either way, the samples are the series iterator's. It
// reports false, calling nothing, where part of the series is deleted:
// the series' own iterator applies the deletions.
func (s *RefSeriesSet) Chunks(mint, maxt int64, f func(xor []byte, it chunkenc.Iterator) error) (bool, error) {
	ivs, err := s.b.tr.Get(s.ref)
	if err != nil || len(ivs) > 0 {
		return false, err
	}
	s.metas = s.metas[:0]
	for _, m := range *s.b.ix.chks {
		if m.MaxTime >= mint && m.MinTime <= maxt {
			s.metas = append(s.metas, m)
		}
	}
	if len(s.metas) == 0 {
		return true, nil
	}
	// Isolation hides the series' newest samples, from the first it hides
	// on: where it shows all of the newest chunk read, it shows all of
	// the older ones, and their iterators need not be asked. The newest
	// chunk is taken first, so that the older ones are older than its
	// copy.
	newest := s.metas[len(s.metas)-1]
	nchk, nIterable, copied, err := s.chunk(newest)
	if err != nil {
		return true, err
	}
	var all bool
	if nIterable == nil {
		s.it = nchk.Iterator(s.it)
		all = reflect.TypeOf(s.it) == plainXORIterator
	}
	for _, m := range s.metas[:len(s.metas)-1] {
		chk, iterable, _, err := s.chunk(m)
		if err != nil {
			return true, err
		}
		if err := s.read(chk, iterable, all, true, f); err != nil {
			return true, err
		}
	}
	// The open chunk's bytes change as they are read, unless copied.
	return true, s.read(nchk, nIterable, all, copied || newest.MaxTime != math.MaxInt64, f)
}

// chunk answers the head chunk of m, the open one as a copy if the chunk
// reader can copy it.
func (s *RefSeriesSet) chunk(m chunks.Meta) (chk chunkenc.Chunk, iterable chunkenc.Iterable, copied bool, err error) {
	if cr, ok := s.b.cr.(tsdb.ChunkReaderWithCopy); ok {
		chk, iterable, _, err = cr.ChunkOrIterableWithCopy(m)
		return chk, iterable, true, err
	}
	chk, iterable, err = s.b.cr.ChunkOrIterable(m)
	return chk, iterable, false, err
}

// read calls f with a head chunk's bytes where they can be decoded
// whole (fixed bytes, XOR-encoded, and isolation shows every sample:
// visible says it does, or the chunk's own iterator is answered), or else
// with its iterator.
func (s *RefSeriesSet) read(chk chunkenc.Chunk, iterable chunkenc.Iterable, visible, fixed bool, f func(xor []byte, it chunkenc.Iterator) error) error {
	if iterable != nil {
		s.it = iterable.Iterator(s.it)
		return f(nil, s.it)
	}
	if !fixed || chk.Encoding() != chunkenc.EncXOR {
		s.it = chk.Iterator(s.it)
		return f(nil, s.it)
	}
	if !visible {
		s.it = chk.Iterator(s.it)
		if reflect.TypeOf(s.it) != plainXORIterator {
			return f(nil, s.it)
		}
	}
	return f(chk.Bytes(), nil)
}

// Ref is the reference of the series At answers: the engine reads the
// head's series in the order of their references.
func (s *RefSeriesSet) Ref() storage.SeriesRef { return s.ref }

// HeadShards opens n shards (one querier each) of the series of a
// workspace in [mint, maxt], if the querier the engine opens over that
// range is the head's alone, so that the head's order of references is
// the engine's order; otherwise it returns nil and opens nothing. Each
// querier keeps what it reads consistent by the head's isolation, as the
// engine's querier does, but the shards are opened one after the other.
func (s *Store) HeadShards(id workspace.ID, mint, maxt int64, n int) ([]*HeadShard, error) {
	return openHeadShards(n, func() (storage.Querier, func(), error) {
		db, release, err := s.acquire(id)
		if err != nil {
			return nil, nil, err
		}
		qr, err := db.Querier(mint, maxt)
		if err != nil {
			release()
			return nil, nil, err
		}
		return qr, release, nil
	})
}

// HeadShards is the workspace's Store.HeadShards.
func (q *queryable) HeadShards(mint, maxt int64, n int) ([]*HeadShard, error) {
	return q.s.HeadShards(q.id, mint, maxt, n)
}

// HeadShards is HeadShards of a TSDB opened with HeadQuerier, as tests
// open one.
func HeadShards(db *tsdb.DB, mint, maxt int64, n int) ([]*HeadShard, error) {
	return openHeadShards(n, func() (storage.Querier, func(), error) {
		qr, err := db.Querier(mint, maxt)
		return qr, func() {}, err
	})
}

func openHeadShards(n int, open func() (storage.Querier, func(), error)) ([]*HeadShard, error) {
	shards := make([]*HeadShard, 0, n)
	closeAll := func() error {
		var errs []error
		for _, s := range shards {
			errs = append(errs, s.Close())
		}
		return errors.Join(errs...)
	}
	for i := range n {
		qr, release, err := open()
		if err != nil {
			return nil, errors.Join(err, closeAll())
		}
		hq, ok := qr.(*headQuerier)
		if !ok {
			err := qr.Close()
			release()
			return nil, errors.Join(err, closeAll())
		}
		shards = append(shards, &HeadShard{q: hq, release: release, i: i, n: n})
	}
	return shards, nil
}
