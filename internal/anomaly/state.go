package anomaly

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"math/rand/v2"
)

// stateVersion is the version of the encoding below; a change to it that
// old state cannot decode into must bump it.
const stateVersion = 1

// state is a Forest as encoding/gob writes it: everything but the trees'
// bounding boxes, which decoding computes again from the points.
type state struct {
	Version                      int
	Config                       Config
	Points                       []float64
	Refs, Free                   []int32
	Trees                        []treeState
	Shingle                      []float64
	Seen                         uint64
	ScoreMean, ScoreVar, ErrMean float64
	Stats                        uint64
}

type treeState struct {
	Root       ref
	Nodes      []internal
	Leaves     []leaf
	FreeNodes  []int32
	FreeLeaves []int32
	Reservoir  []entry
	RNG        []byte
}

// MarshalBinary encodes the forest's whole state: a forest decoded from it
// gives the same results as f would.
func (f *Forest) MarshalBinary() ([]byte, error) {
	s := state{Version: stateVersion, Config: f.cfg, Points: f.store.values, Refs: f.store.refs, Free: f.store.free,
		Shingle: f.shingle, Seen: f.seen, ScoreMean: f.scoreMean, ScoreVar: f.scoreVar, ErrMean: f.errMean, Stats: f.stats}
	for _, t := range f.trees {
		rng, err := t.src.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("encode forest: %w", err)
		}
		s.Trees = append(s.Trees, treeState{Root: t.Root, Nodes: t.Nodes, Leaves: t.Leaves, FreeNodes: t.FreeNodes,
			FreeLeaves: t.FreeLeaves, Reservoir: t.reservoir, RNG: rng})
	}
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(&s); err != nil {
		return nil, fmt.Errorf("encode forest: %w", err)
	}
	return b.Bytes(), nil
}

// UnmarshalBinary replaces f with the forest encoded in data. It checks
// the references between nodes, leaves and points, so that a damaged
// encoding is an error rather than a forest that fails later.
func (f *Forest) UnmarshalBinary(data []byte) error {
	var s state
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		return fmt.Errorf("decode forest: %w", err)
	}
	if s.Version != stateVersion {
		return fmt.Errorf("decode forest: version %d, want %d", s.Version, stateVersion)
	}
	if err := s.Config.Validate(); err != nil {
		return fmt.Errorf("decode forest: %w", err)
	}
	cfg := s.Config.withDefaults()
	d := cfg.ShingleSize
	if len(s.Trees) != cfg.Trees || len(s.Points)%d != 0 || len(s.Points)/d != len(s.Refs) || len(s.Shingle) > d {
		return fmt.Errorf("decode forest: inconsistent sizes")
	}
	g := Forest{cfg: cfg, store: store{dim: d, values: s.Points, refs: s.Refs, free: s.Free}, shingle: s.Shingle,
		seen: s.Seen, scoreMean: s.ScoreMean, scoreVar: s.ScoreVar, errMean: s.ErrMean, stats: s.Stats}
	npoints := int32(len(s.Refs))
	for _, ts := range s.Trees {
		t := &tree{dim: d, Root: ts.Root, Nodes: ts.Nodes, Leaves: ts.Leaves, FreeNodes: ts.FreeNodes, FreeLeaves: ts.FreeLeaves}
		if err := t.check(npoints); err != nil {
			return fmt.Errorf("decode forest: %w", err)
		}
		for _, e := range ts.Reservoir {
			if e.Point < 0 || e.Point >= npoints {
				return fmt.Errorf("decode forest: reservoir names point %d of %d", e.Point, npoints)
			}
		}
		src := &rand.PCG{}
		if err := src.UnmarshalBinary(ts.RNG); err != nil {
			return fmt.Errorf("decode forest: %w", err)
		}
		t.rebuildBoxes(&g.store)
		g.trees = append(g.trees, member{tree: t, reservoir: ts.Reservoir, src: src, rng: rand.New(src)})
	}
	g.scratch()
	*f = g
	return nil
}

// check verifies that the tree's references stay within its slices and
// the store, and that walking it from the root ends: each node is reached
// once.
func (t *tree) check(npoints int32) error {
	if t.Root == none {
		return nil
	}
	seenN := make([]bool, len(t.Nodes))
	seenL := make([]bool, len(t.Leaves))
	stack := []ref{t.Root}
	for len(stack) > 0 {
		r := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if r < 0 {
			i := ^r
			if int(i) >= len(t.Leaves) || seenL[i] {
				return fmt.Errorf("tree names leaf %d twice or of %d", i, len(t.Leaves))
			}
			seenL[i] = true
			if p := t.Leaves[i].Point; p < 0 || p >= npoints {
				return fmt.Errorf("leaf names point %d of %d", p, npoints)
			}
			continue
		}
		if int(r) >= len(t.Nodes) || seenN[r] {
			return fmt.Errorf("tree names node %d twice or of %d", r, len(t.Nodes))
		}
		seenN[r] = true
		if dim := t.Nodes[r].Dim; dim < 0 || int(dim) >= t.dim {
			return fmt.Errorf("node cuts dimension %d of %d", dim, t.dim)
		}
		stack = append(stack, t.Nodes[r].Left, t.Nodes[r].Right)
	}
	return nil
}
