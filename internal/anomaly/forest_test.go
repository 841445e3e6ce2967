package anomaly

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// noise returns n values of white noise N(mean, sd) from a fixed seed.
func noise(n int, mean, sd float64, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 0))
	v := make([]float64, n)
	for i := range v {
		v[i] = mean + sd*r.NormFloat64()
	}
	return v
}

// run feeds values to a new forest and returns its results.
func run(t testing.TB, cfg Config, values []float64) []Result {
	t.Helper()
	f, err := New(cfg)
	require.NoError(t, err)
	out := make([]Result, len(values))
	for i, v := range values {
		out[i] = f.Update(v)
	}
	return out
}

// flagged returns the indexes of the anomalies from index from on.
func flagged(rs []Result, from int) []int {
	var idx []int
	for i := from; i < len(rs); i++ {
		if rs[i].Anomaly {
			idx = append(idx, i)
		}
	}
	return idx
}

func TestSpikesInWhiteNoise(t *testing.T) {
	values := noise(3000, 100, 1, 1)
	spikes := []int{1000, 1500, 2000, 2500, 2900}
	for _, i := range spikes {
		values[i] += 12 // twelve standard deviations
	}
	rs := run(t, Config{Seed: 7, TimeDecay: 1.0 / 2560}, values)
	got := flagged(rs, 300)
	for _, i := range spikes {
		require.Contains(t, got, i, "spike at %d: %+v", i, rs[i])
		require.GreaterOrEqual(t, rs[i].Score, 0.5)
		require.Greater(t, values[i], rs[i].Upper)
	}
	// Outside the spikes (and the shingles that still hold them), white
	// noise is normal: at most 0.5% false positives.
	var false_ int
	for _, i := range got {
		near := false
		for _, s := range spikes {
			near = near || (i >= s && i < s+8)
		}
		if !near {
			false_++
		}
	}
	require.LessOrEqual(t, false_, 13, "false positives: %d of %d", false_, len(values)-300)
	t.Logf("flagged %v", got)
}

func TestLevelShift(t *testing.T) {
	values := append(noise(1500, 10, 0.5, 2), noise(500, 20, 0.5, 3)...)
	rs := run(t, Config{Seed: 1, TimeDecay: 1.0 / 2560}, values)
	require.True(t, rs[1500].Anomaly, "%+v", rs[1500])
	require.Less(t, rs[1500].Upper, 20.0)
	require.InDelta(t, 10, rs[1500].Expected, 1)
	require.Empty(t, flagged(rs[:1500], 300))
}

// TestRoundingNoiseIsNotAnomalous: a flat series whose computation
// rounds differently from one value to the next (a p99 of 0.995 ms out of
// histogram_quantile, 1 ulp either side as the rates it divides vary with
// scrape timing) is normal, while a real change of it still is flagged.
func TestRoundingNoiseIsNotAnomalous(t *testing.T) {
	flat := 0.995
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		values := make([]float64, 0, 120)
		for range 36 {
			values = append(values, flat)
		}
		for range 80 {
			values = append(values, []float64{math.Nextafter(flat, 0), flat, math.Nextafter(flat, 2)}[r.IntN(3)])
		}
		slow := len(values)
		values = append(values, 24.7, 24.7, 24.7, 24.7)
		rs := run(t, Config{ShingleSize: 4, SampleSize: 32, TimeDecay: 1.0 / 320, Seed: seed}, values)
		require.Empty(t, flagged(rs[:slow], 0), "seed %d: rounding noise flagged", seed)
		require.True(t, rs[slow].Anomaly, "seed %d: the slow value is an anomaly: %+v", seed, rs[slow])
		require.GreaterOrEqual(t, rs[slow].Score, 0.5)
	}
}

func TestSineIsNormalOnceTrained(t *testing.T) {
	// A daily cycle sampled every 5 minutes: 288 values a day, 7 days.
	const day = 288
	values := make([]float64, 7*day)
	for i := range values {
		values[i] = 50 + 20*math.Sin(2*math.Pi*float64(i)/day)
	}
	rs := run(t, Config{Seed: 3, TimeDecay: 1.0 / 2560}, values)
	require.Empty(t, flagged(rs, 2*day), "anomalies in a clean sine")
	for i := 2 * day; i < len(rs); i++ {
		require.True(t, rs[i].Ready)
		require.InDelta(t, values[i], rs[i].Expected, 1.5, "value %d", i)
		// The cycle repeats exactly, so the band may close on the value:
		// allow for rounding.
		require.LessOrEqual(t, rs[i].Lower, values[i]+1e-9)
		require.GreaterOrEqual(t, rs[i].Upper, values[i]-1e-9)
	}
}

func TestSameSeedSameResults(t *testing.T) {
	values := noise(1200, 5, 2, 9)
	values[900] = 40
	a := run(t, Config{Seed: 42, TimeDecay: 0.001}, values)
	b := run(t, Config{Seed: 42, TimeDecay: 0.001}, values)
	require.Equal(t, a, b)
	c := run(t, Config{Seed: 43, TimeDecay: 0.001}, values)
	require.NotEqual(t, a, c)
}

func TestStateRoundTrip(t *testing.T) {
	values := noise(1500, 30, 3, 5)
	values[1200], values[1400] = 80, -10
	cfg := Config{Seed: 11, TimeDecay: 0.0005, Above: Near{Amount: 1}, Below: Near{Ratio: 0.1}}
	want := run(t, cfg, values)

	// Stop after 1000 values, encode, decode into a new forest, go on.
	f, err := New(cfg)
	require.NoError(t, err)
	var got []Result
	for _, v := range values[:1000] {
		got = append(got, f.Update(v))
	}
	data, err := f.MarshalBinary()
	require.NoError(t, err)
	var g Forest
	require.NoError(t, g.UnmarshalBinary(data))
	require.Equal(t, f.Config(), g.Config())
	for _, v := range values[1000:] {
		got = append(got, g.Update(v))
	}
	require.Equal(t, want, got)
	t.Logf("state of %d trees, %d points sampled: %d bytes", cfg.withDefaults().Trees, f.store.len(), len(data))
}

func TestStateRefusesDamage(t *testing.T) {
	f, err := New(Config{Seed: 1})
	require.NoError(t, err)
	for _, v := range noise(100, 0, 1, 1) {
		f.Update(v)
	}
	data, err := f.MarshalBinary()
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"truncated", data[:len(data)/2]},
		{"garbage", []byte("not a forest")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g Forest
			require.Error(t, g.UnmarshalBinary(tc.data))
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"shingle too small", Config{ShingleSize: 1}, false},
		{"shingle too large", Config{ShingleSize: 1025}, false},
		{"sample too small", Config{SampleSize: 3}, false},
		{"sample too large", Config{SampleSize: 1025}, false},
		{"negative decay", Config{TimeDecay: -1}, false},
		{"NaN decay", Config{TimeDecay: math.NaN()}, false},
		{"negative amount", Config{Above: Near{Amount: -1}}, false},
		{"NaN ratio", Config{Below: Near{Ratio: math.NaN()}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestIgnoreNearExpected(t *testing.T) {
	values := noise(1500, 100, 1, 4)
	values[1200] = 110 // 10 above
	values[1300] = 90  // 10 below
	rs := run(t, Config{Seed: 2, Above: Near{Amount: 15}, Below: Near{Ratio: 0.05}}, values)
	require.False(t, rs[1200].Anomaly, "10 above is within the amount of 15")
	require.True(t, rs[1300].Anomaly, "10 below is beyond 5%% of 100")
}

func TestNonFiniteValuesAreSkipped(t *testing.T) {
	f, err := New(Config{Seed: 1})
	require.NoError(t, err)
	require.Equal(t, Result{}, f.Update(math.NaN()))
	require.Equal(t, Result{}, f.Update(math.Inf(1)))
	require.Zero(t, f.Seen())
}

func BenchmarkForestUpdate(b *testing.B) {
	for _, shingle := range []int{4, 8, 16} {
		b.Run(fmt.Sprintf("shingle=%d", shingle), func(b *testing.B) {
			values := noise(20000, 100, 5, 1)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			f, err := New(Config{ShingleSize: shingle, Seed: 1, TimeDecay: 1.0 / 2560})
			require.NoError(b, err)
			for _, v := range values[:5000] { // past warm-up and a full reservoir
				f.Update(v)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			// The heap one series' model holds once its reservoirs are full
			// (reported after the loop: b.Loop's first call resets metrics).
			heap := float64(after.HeapAlloc - before.HeapAlloc)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				f.Update(values[5000+i%15000])
				i++
			}
			data, err := f.MarshalBinary()
			require.NoError(b, err)
			b.ReportMetric(float64(len(data)), "state-bytes")
			b.ReportMetric(heap, "heap-bytes")
		})
	}
}
