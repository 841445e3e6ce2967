package query

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/promql"
)

// extrapolatedRate is the engine's extrapolatedRate for a window of two
// or more float samples of a counter, without start timestamps: the same
// operations in the same order, so the same bits. reset says whether the
// window holds a counter reset; when it does not, the engine's loop over
// the window adds nothing.
func extrapolatedRate(pts []promql.FPoint, reset bool, rangeStart, rangeEnd int64, rangeSeconds float64, isRate bool) float64 {
	numSamplesMinusOne := len(pts) - 1
	firstT, lastT := pts[0].T, pts[numSamplesMinusOne].T
	resultFloat := pts[numSamplesMinusOne].F - pts[0].F
	if reset {
		for i, currPoint := range pts[1:] {
			prevPoint := pts[i]
			if currPoint.F < prevPoint.F {
				resultFloat += prevPoint.F
			}
		}
	}
	durationToStart := float64(firstT-rangeStart) / 1000
	durationToEnd := float64(rangeEnd-lastT) / 1000
	sampledInterval := float64(lastT-firstT) / 1000
	averageDurationBetweenSamples := sampledInterval / float64(numSamplesMinusOne)
	extrapolationThreshold := averageDurationBetweenSamples * 1.1

	if durationToStart >= extrapolationThreshold {
		durationToStart = averageDurationBetweenSamples / 2
	}
	durationToZero := durationToStart
	if resultFloat > 0 && pts[0].F >= 0 {
		durationToZero = sampledInterval * (pts[0].F / resultFloat)
	}
	if durationToZero < durationToStart {
		durationToStart = durationToZero
	}
	if durationToEnd >= extrapolationThreshold {
		durationToEnd = averageDurationBetweenSamples / 2
	}
	factor := 1.0
	if sampledInterval != 0 {
		factor = (sampledInterval + durationToStart + durationToEnd) / sampledInterval
	}
	if isRate {
		factor /= rangeSeconds
	}
	return resultFloat * factor
}

// The extrapolation kept from step to step answers extrapolatedRate's
// bits, over windows sliding along series of steady and jittered times,
// counters from zero, resets, NaN and infinities.
func TestExtrapolationMatchesExtrapolatedRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		var pts []promql.FPoint
		ts, v := rng.Int64N(1e6), float64(rng.IntN(3))
		for range 10 + rng.IntN(100) {
			switch rng.IntN(3) {
			case 0:
				ts += 15000
			case 1:
				ts += 15000 + rng.Int64N(201) - 100
			default:
				ts += 1 + rng.Int64N(40000)
			}
			switch rng.IntN(20) {
			case 0:
				v = 0 // A reset.
			case 1:
				v = []float64{math.NaN(), math.Inf(1), math.Inf(-1), -v}[rng.IntN(4)]
			default:
				if math.IsNaN(v) || math.IsInf(v, 0) {
					v = 0
				}
				v += float64(rng.IntN(50)) * rng.Float64()
			}
			pts = append(pts, promql.FPoint{T: ts, F: v})
		}
		resets := countResets(pts, nil)
		rng0 := []int64{60000, 300000, 37000}[rng.IntN(3)]
		step := []int64{15000, 30000, 60000, 7000}[rng.IntN(4)]
		isRate := rng.IntN(2) == 0
		secs := float64(rng0) / 1000
		var e extrapolation
		lo, hi := 0, 0
		for rangeEnd := pts[0].T; rangeEnd <= ts+rng0; rangeEnd += step {
			rangeStart := rangeEnd - rng0
			for lo < len(pts) && pts[lo].T <= rangeStart {
				lo++
			}
			for hi < len(pts) && pts[hi].T <= rangeEnd {
				hi++
			}
			if hi-lo < 2 {
				continue
			}
			w, reset := pts[lo:hi], resets[hi-1] != resets[lo]
			want := extrapolatedRate(w, reset, rangeStart, rangeEnd, secs, isRate)
			got := e.rate(w, reset, rangeStart, rangeEnd, secs, isRate)
			if math.Float64bits(want) != math.Float64bits(got) && !(math.IsNaN(want) && math.IsNaN(got)) {
				t.Fatalf("window %v from %d to %d: want %v, got %v", w, rangeStart, rangeEnd, want, got)
			}
		}
	}
}

// Windows of the same bounds but not as many samples are not extrapolated
// alike: the average interval sets the threshold.
func TestExtrapolationKeysOnTheSampleCount(t *testing.T) {
	a := []promql.FPoint{{T: 1000, F: 1}, {T: 31000, F: 5}, {T: 61000, F: 9}}
	b := []promql.FPoint{{T: 1000, F: 1}, {T: 61000, F: 9}}
	var e extrapolation
	for _, w := range [][]promql.FPoint{a, b, a} {
		want := extrapolatedRate(w, false, 0, 100000, 100, true)
		if got := e.rate(w, false, 0, 100000, 100, true); got != want {
			t.Fatalf("window %v: want %v, got %v", w, want, got)
		}
	}
}
