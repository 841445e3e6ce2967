package query

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// chunkencFloats reads chunk with chunkenc's own iterator as the leaf
// reads a series' iterator (readFloats).
func chunkencFloats(t testing.TB, chunk []byte, after, until int64, stale bool) ([]promql.FPoint, error) {
	t.Helper()
	c, err := chunkenc.FromData(chunkenc.EncXOR, chunk)
	require.NoError(t, err)
	return readFloats(c.Iterator(nil), after, until, stale, nil)
}

// randomXORChunk encodes samples of one of several shapes: regular
// scrapes of a counter, jittered times, gauges of random bits, repeated
// values, NaNs and stale markers, huge jumps of time.
func randomXORChunk(rng *rand.Rand) (chunk []byte, first, last int64) {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		panic(err)
	}
	n := 1 + rng.IntN(240)
	t := rng.Int64N(2e12) - 1e12
	first = t
	v := rng.Float64() * 1000
	shape := rng.IntN(6)
	for i := range n {
		if i > 0 {
			switch shape {
			case 0, 1:
				t += 15000
			case 2:
				t += 15000 + rng.Int64N(2001) - 1000
			case 3:
				t += 1 + rng.Int64N(1<<uint(rng.IntN(40)))
			default:
				t += 1 + rng.Int64N(60000)
			}
		}
		switch shape {
		case 0:
			v += float64(rng.IntN(100))
		case 1:
			if rng.IntN(4) == 0 {
				v = float64(rng.IntN(3))
			}
		case 2:
			v = math.Float64frombits(rng.Uint64())
		case 3:
			switch rng.IntN(4) {
			case 0:
				v = math.NaN()
			case 1:
				v = math.Float64frombits(value.StaleNaN)
			case 2:
				v = math.Inf(1 - 2*rng.IntN(2))
			default:
				v = rng.NormFloat64() * 1e300
			}
		default:
			v = rng.Float64()
		}
		app.Append(0, t, v)
	}
	return c.Bytes(), first, t
}

func requireSameFloats(t testing.TB, want, got []promql.FPoint) {
	t.Helper()
	// Not testify's diff: it takes minutes over thousands of samples.
	for i := range min(len(want), len(got)) {
		if want[i].T != got[i].T || math.Float64bits(want[i].F) != math.Float64bits(got[i].F) {
			t.Fatalf("sample %d: want %d %x, got %d %x", i, want[i].T, math.Float64bits(want[i].F), got[i].T, math.Float64bits(got[i].F))
		}
	}
	if len(want) != len(got) {
		t.Fatalf("want %d samples, got %d", len(want), len(got))
	}
}

// The decoder reads every chunk chunkenc writes as chunkenc reads it,
// bit for bit, whatever the bounds.
func TestXORDecoderMatchesChunkenc(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var d xorDecoder
	for range 3000 {
		chunk, first, last := randomXORChunk(rng)
		span := last - first + 1
		after, until := first-1, last
		switch rng.IntN(3) {
		case 1:
			after = first - 1 + rng.Int64N(span)
			until = after + rng.Int64N(span)
		case 2:
			after = first - 2 - rng.Int64N(span)
			until = last + rng.Int64N(span)
		}
		stale := rng.IntN(2) == 0
		want, err := chunkencFloats(t, chunk, after, until, stale)
		require.NoError(t, err)
		d.last = math.MinInt64
		got, err := d.appendFloats(nil, chunk, after, until, stale)
		require.NoError(t, err)
		requireSameFloats(t, want, got)
	}
}

// The decoder refuses, rather than guesses, a series whose chunks do not
// follow each other in time.
func TestXORDecoderRefusesChunksOutOfOrder(t *testing.T) {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	require.NoError(t, err)
	app.Append(0, 1000, 1)
	app.Append(0, 2000, 2)
	d := xorDecoder{last: math.MinInt64}
	pts, err := d.appendFloats(nil, c.Bytes(), 0, 5000, false)
	require.NoError(t, err)
	require.Len(t, pts, 2)
	_, err = d.appendFloats(pts, c.Bytes(), 0, 5000, false)
	require.ErrorIs(t, err, errXOR)
}

// Whatever the bytes, the decoder either refuses them or answers what
// chunkenc's iterator answers without an error.
func FuzzXORDecoder(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		chunk, first, last := randomXORChunk(rng)
		f.Add(chunk, first-1, last, false)
	}
	f.Add([]byte{0, 2, 0, 0}, int64(-1), int64(10), true)
	f.Fuzz(func(t *testing.T, chunk []byte, after, until int64, stale bool) {
		d := xorDecoder{last: math.MinInt64}
		got, err := d.appendFloats(nil, chunk, after, until, stale)
		if err != nil {
			require.ErrorIs(t, err, errXOR)
			return
		}
		if len(chunk) < 2 {
			t.Fatal("a chunk without a header decoded")
		}
		want, err := chunkencFloats(t, chunk, after, until, stale)
		require.NoError(t, err, "the decoder read a chunk chunkenc refuses")
		requireSameFloats(t, want, got)
	})
}

// BenchmarkXORDecoder reads a counter's chunk of 120 regular scrapes
// with chunkenc's iterator and with the decoder.
func BenchmarkXORDecoder(b *testing.B) {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	require.NoError(b, err)
	v := 0.0
	for i := range 120 {
		v += float64(i % 7 * 13)
		app.Append(0, int64(i)*15000, v)
	}
	buf := make([]promql.FPoint, 0, 120)
	b.Run("chunkenc", func(b *testing.B) {
		var it chunkenc.Iterator
		for b.Loop() {
			it = c.Iterator(it)
			buf, _ = readFloats(it, -1, math.MaxInt64, false, buf[:0])
		}
	})
	b.Run("decoder", func(b *testing.B) {
		var d xorDecoder
		for b.Loop() {
			d.last = math.MinInt64
			buf, _ = d.appendFloats(buf[:0], c.Bytes(), -1, math.MaxInt64, false)
		}
	})
}
