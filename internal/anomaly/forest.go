package anomaly

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Near says how far a value may be from the expected value, on one side,
// and still not be an anomaly: by Amount (absolute) or by Ratio (of the
// expected value's magnitude). Zero fields set nothing. These are AMP's
// ignoreNearExpectedFromAbove and ignoreNearExpectedFromBelow.
type Near struct {
	Amount, Ratio float64
}

// Config configures a Forest. Zero fields take the defaults.
type Config struct {
	// ShingleSize is the number of consecutive values in a point, 8 by
	// default as AMP's: the forest compares recent shapes of the series,
	// not single values.
	ShingleSize int
	// SampleSize is the number of points each tree keeps, 256 by default
	// as AMP's.
	SampleSize int
	// Trees is the number of trees, 50 by default as AWS's RCF library.
	Trees int
	// TimeDecay weights the reservoir towards recent points: a point
	// sampled n points ago is kept as if its weight were exp(-TimeDecay·n).
	// 0 is the paper's uniform reservoir sampling; AWS's RCF library uses
	// 1/(10·SampleSize), which Detector sets.
	TimeDecay float64
	// Seed makes a forest deterministic: the same seed and values give the
	// same results.
	Seed uint64
	// ZFactor is how many standard deviations above its mean a point's
	// score must be, and how many deviations of the recent prediction
	// errors the band spans, for an anomaly. Default 3.
	ZFactor float64
	// Above and Below exempt values near the expected value.
	Above, Below Near
}

// Limits of a Config, as AMP's API allows.
const (
	MinShingleSize, MaxShingleSize = 2, 1024
	MinSampleSize, MaxSampleSize   = 4, 1024
	maxTrees                       = 1000
)

func (c Config) withDefaults() Config {
	if c.ShingleSize == 0 {
		c.ShingleSize = 8
	}
	if c.SampleSize == 0 {
		c.SampleSize = 256
	}
	if c.Trees == 0 {
		c.Trees = 50
	}
	if c.ZFactor == 0 {
		c.ZFactor = 3
	}
	return c
}

// Validate reports the first field out of its range.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.ShingleSize < MinShingleSize || c.ShingleSize > MaxShingleSize:
		return fmt.Errorf("shingle size %d is not between %d and %d", c.ShingleSize, MinShingleSize, MaxShingleSize)
	case c.SampleSize < MinSampleSize || c.SampleSize > MaxSampleSize:
		return fmt.Errorf("sample size %d is not between %d and %d", c.SampleSize, MinSampleSize, MaxSampleSize)
	case c.Trees < 1 || c.Trees > maxTrees:
		return fmt.Errorf("tree count %d is not between 1 and %d", c.Trees, maxTrees)
	case c.TimeDecay < 0 || math.IsNaN(c.TimeDecay) || math.IsInf(c.TimeDecay, 0):
		return fmt.Errorf("time decay %v is not a non-negative number", c.TimeDecay)
	case !(c.ZFactor > 0) || math.IsInf(c.ZFactor, 0):
		return fmt.Errorf("z factor %v is not positive", c.ZFactor)
	}
	for _, n := range []Near{c.Above, c.Below} {
		if !(n.Amount >= 0) || !(n.Ratio >= 0) || math.IsInf(n.Amount, 0) || math.IsInf(n.Ratio, 0) {
			return fmt.Errorf("ignore near expected amount %v and ratio %v must be non-negative numbers", n.Amount, n.Ratio)
		}
	}
	return nil
}

// Result is what a Forest says of a value.
type Result struct {
	// Ready is false until the forest has seen enough points to judge
	// (a shingle and a quarter of its sample size, as AWS's RCF); the
	// other fields are then zero.
	Ready bool
	// Expected is the value the forest expected, imputed from the
	// neighbours of the previous ShingleSize-1 values; Lower and Upper
	// bound the values it would not call anomalous.
	Expected, Lower, Upper float64
	// RawScore is the point's collusive displacement, averaged over the
	// trees: how many sampled points would move, per point removed, if it
	// were taken out.
	RawScore float64
	// Score maps RawScore into [0, 1]: at least 0.5 exactly when Anomaly,
	// rising towards 1 as RawScore exceeds the threshold by more standard
	// deviations of the recent scores.
	Score float64
	// Anomaly is set when the point scores above the threshold (ZFactor
	// deviations above the mean score), lies outside [Lower, Upper], and
	// is not exempt by Config.Above or Config.Below.
	Anomaly bool
}

// entry is a point of a tree's reservoir. The reservoir keeps the
// SampleSize points of least Priority, a max-heap on Priority.
type entry struct {
	Priority float64
	Point    int32
}

type member struct {
	*tree
	reservoir []entry
	src       *rand.PCG
	rng       *rand.Rand
}

// Forest is a streaming Robust Random Cut Forest over one series. It is
// not safe for concurrent use.
type Forest struct {
	cfg     Config
	store   store
	trees   []member
	shingle []float64 // the last ShingleSize values, oldest first
	seen    uint64    // values given to Update
	// Running statistics of the scores and prediction errors of points not
	// found anomalous, exponentially weighted over about SampleSize points.
	scoreMean, scoreVar, errMean float64
	stats                        uint64

	point, cands []float64 // scratch
}

// New returns an empty forest.
func New(cfg Config) (*Forest, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	f := &Forest{cfg: cfg, store: store{dim: cfg.ShingleSize}}
	f.trees = make([]member, cfg.Trees)
	for i := range f.trees {
		src := rand.NewPCG(cfg.Seed, uint64(i))
		f.trees[i] = member{tree: newTree(cfg.ShingleSize, cfg.SampleSize), src: src, rng: rand.New(src), reservoir: make([]entry, 0, cfg.SampleSize+1)}
	}
	f.scratch()
	return f, nil
}

func (f *Forest) scratch() {
	f.point = make([]float64, f.cfg.ShingleSize)
	f.cands = make([]float64, 0, f.cfg.Trees)
}

// Config returns the forest's configuration, defaults filled in.
func (f *Forest) Config() Config { return f.cfg }

// Seen returns the number of values the forest has been given.
func (f *Forest) Seen() uint64 { return f.seen }

// warmup is the number of values before results are Ready.
func (f *Forest) warmup() uint64 {
	return uint64(f.cfg.ShingleSize + f.cfg.SampleSize/4)
}

// Update judges v, the next value of the series, then learns it. A value
// that is NaN or infinite is not judged nor learnt: it has no place in a
// box (the caller decides what a missing value means). A value the same as
// the previous one but for rounding (see precision) is taken as the
// previous one.
func (f *Forest) Update(v float64) Result {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Result{}
	}
	if n := len(f.shingle); n > 0 && same(v, f.shingle[n-1]) {
		v = f.shingle[n-1]
	}
	d := f.cfg.ShingleSize
	if len(f.shingle) == d {
		copy(f.shingle, f.shingle[1:])
		f.shingle[d-1] = v
	} else {
		f.shingle = append(f.shingle, v)
	}
	f.seen++
	if len(f.shingle) < d {
		return Result{}
	}
	p := f.point
	copy(p, f.shingle)

	expected, lower, upper := f.impute(p)
	raw := f.learn(p)

	res := Result{Ready: f.seen >= f.warmup(), Expected: expected, Lower: lower, Upper: upper, RawScore: raw}
	z := f.cfg.ZFactor
	sd := math.Sqrt(f.scoreVar)
	threshold := f.scoreMean + z*sd
	if res.Ready {
		res.Anomaly = raw > threshold && (v > upper || v < lower) && !f.exempt(v, expected)
		res.Score = score(raw, threshold, sd, res.Anomaly)
	}
	if !res.Anomaly {
		// Anomalies do not move the statistics, so that a long anomaly
		// stays one until the trees' samples have learnt it.
		f.observe(raw, math.Abs(v-expected))
	}
	if !res.Ready {
		return Result{}
	}
	return res
}

// precision is the relative difference under which two values are the
// same to a forest. A query computes a steady value a rounding or two
// apart from one evaluation to the next: histogram_quantile's 0.995 is
// 0.99·c/c, which rounds one ulp either way for some bucket rates c, and
// the rates vary with the timing of the writes. The trees, whose cuts do
// not depend on the scale of the values, would isolate such a value from
// a steady history as they do a spike, and score it an anomaly. A part in
// a billion is far above PromQL's rounding errors and far below any
// change worth an alert.
const precision = 1e-9

// same says whether a and b differ by rounding only.
func same(a, b float64) bool {
	return math.Abs(a-b) <= precision*math.Max(math.Abs(a), math.Abs(b))
}

// impute returns the expected value of p's last entry given the others,
// as AWS's RCF imputes a missing value: each tree offers the last entry of
// its sampled point nearest to p on the known entries. The median offer is
// the expected value; the band spans the middle 90% of the offers,
// widened to ZFactor deviations of the recent errors.
func (f *Forest) impute(p []float64) (expected, lower, upper float64) {
	d := f.cfg.ShingleSize
	c := f.cands[:0]
	for _, t := range f.trees {
		if i := t.nearest(&f.store, p, d-1); i >= 0 {
			c = append(c, f.store.point(i)[d-1])
		}
	}
	f.cands = c
	if len(c) == 0 {
		return p[d-1], p[d-1], p[d-1]
	}
	slices.Sort(c)
	expected = quantile(c, 0.5)
	// 1.2533 = sqrt(pi/2) turns a mean absolute error into a standard
	// deviation for normal errors.
	spread := f.cfg.ZFactor * 1.2533 * f.errMean
	lower = math.Min(quantile(c, 0.05), expected-spread)
	upper = math.Max(quantile(c, 0.95), expected+spread)
	return expected, lower, upper
}

// learn scores p in every tree and offers it to every tree's reservoir.
// It returns the mean collusive displacement of p over the trees.
func (f *Forest) learn(p []float64) float64 {
	idx := f.store.add(p)
	seq := float64(f.seen)
	total := 0.0
	for i := range f.trees {
		t := &f.trees[i]
		// Weighted reservoir sampling (Efraimidis and Spirakis' A-Res, in
		// logarithms): keep the SampleSize points of least priority.
		prio := math.Log(-math.Log(t.rng.Float64())) - f.cfg.TimeDecay*seq
		keep := len(t.reservoir) < f.cfg.SampleSize || prio < t.reservoir[0].Priority
		l, held := t.insert(&f.store, t.rng, idx, p)
		total += t.codisp(l)
		if !keep {
			// p was in the tree only to be scored.
			t.remove(&f.store, p)
			continue
		}
		f.store.refs[held]++
		t.push(entry{Priority: prio, Point: held})
		if len(t.reservoir) > f.cfg.SampleSize {
			e := t.pop()
			t.remove(&f.store, f.store.point(e.Point))
			f.store.release(e.Point)
		}
	}
	f.store.dropUnused(idx)
	return total / float64(len(f.trees))
}

func (f *Forest) observe(raw, absErr float64) {
	f.stats++
	a := 1 / float64(min(f.stats, uint64(f.cfg.SampleSize)))
	diff := raw - f.scoreMean
	f.scoreMean += a * diff
	f.scoreVar = (1 - a) * (f.scoreVar + a*diff*diff)
	f.errMean += a * (absErr - f.errMean)
}

// exempt says whether v is near enough to expected by Config.Above or
// Config.Below.
func (f *Forest) exempt(v, expected float64) bool {
	n, diff := f.cfg.Above, v-expected
	if diff < 0 {
		n, diff = f.cfg.Below, -diff
	}
	return (n.Amount > 0 && diff <= n.Amount) || (n.Ratio > 0 && diff <= n.Ratio*math.Abs(expected))
}

// score maps a raw score into [0, 0.5) for normal points, in proportion to
// the threshold, and into [0.5, 1) for anomalies, by how many deviations it
// exceeds the threshold.
func score(raw, threshold, sd float64, anomaly bool) float64 {
	if !anomaly {
		if threshold <= 0 {
			return 0
		}
		return 0.5 * math.Min(raw/threshold, 0.999)
	}
	if sd <= 0 {
		sd = math.Max(threshold, 1) / 10
	}
	return 0.5 + 0.5*(1-math.Exp(-(raw-threshold)/sd))
}

// quantile returns the q-quantile of sorted values, interpolating.
func quantile(sorted []float64, q float64) float64 {
	x := q * float64(len(sorted)-1)
	i := int(x)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	fr := x - float64(i)
	return sorted[i]*(1-fr) + sorted[i+1]*fr
}

func (m *member) push(e entry) {
	r := append(m.reservoir, e)
	for i := len(r) - 1; i > 0; {
		p := (i - 1) / 2
		if r[p].Priority >= r[i].Priority {
			break
		}
		r[p], r[i] = r[i], r[p]
		i = p
	}
	m.reservoir = r
}

func (m *member) pop() entry {
	r := m.reservoir
	top := r[0]
	n := len(r) - 1
	r[0] = r[n]
	r = r[:n]
	for i := 0; ; {
		l, big := 2*i+1, i
		if l < n && r[l].Priority > r[big].Priority {
			big = l
		}
		if l+1 < n && r[l+1].Priority > r[big].Priority {
			big = l + 1
		}
		if big == i {
			break
		}
		r[i], r[big] = r[big], r[i]
		i = big
	}
	m.reservoir = r
	return top
}
