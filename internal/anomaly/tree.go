package anomaly

import (
	"math"
	"math/rand/v2"
)

// A ref names a node of a tree: an internal node i as i (≥ 0), a leaf j as
// ^j (< 0), and no node as none.
type ref = int32

const none ref = math.MinInt32

// internal is a cut of a tree: points with x[Dim] <= Cut are on the left.
type internal struct {
	Parent, Left, Right ref
	Dim                 int32
	Cut                 float64
	Mass                int32
}

// leaf is one distinct point of a tree's sample; Mass counts the sampled
// points equal to it.
type leaf struct {
	Parent ref
	Point  int32
	Mass   int32
}

// tree is one random cut tree over a sample of the stream (section 3 of
// the paper). Its invariants: every internal node has two children; a
// node's Mass is the number of sampled points below it; lo and hi hold the
// bounding box of each internal node's points (a leaf's box is its point);
// distinct leaves hold distinct points.
type tree struct {
	dim    int
	Root   ref
	Nodes  []internal
	Leaves []leaf
	// lo and hi are the boxes of Nodes, dim values each. They are not
	// serialized: decoding computes them from the points.
	lo, hi     []float64
	FreeNodes  []int32
	FreeLeaves []int32
}

// newTree returns an empty tree sized for a sample of n points: n leaves
// and n-1 internal nodes, one more of each while a point is scored before
// the reservoir evicts one. Sizing up front keeps append from doubling
// the boxes, the largest part of a tree.
func newTree(dim, n int) *tree {
	return &tree{dim: dim, Root: none, Nodes: make([]internal, 0, n), Leaves: make([]leaf, 0, n+1),
		lo: make([]float64, 0, n*dim), hi: make([]float64, 0, n*dim)}
}

func (t *tree) mass(r ref) int32 {
	if r < 0 {
		return t.Leaves[^r].Mass
	}
	return t.Nodes[r].Mass
}

func (t *tree) parent(r ref) ref {
	if r < 0 {
		return t.Leaves[^r].Parent
	}
	return t.Nodes[r].Parent
}

func (t *tree) setParent(r, p ref) {
	if r < 0 {
		t.Leaves[^r].Parent = p
	} else {
		t.Nodes[r].Parent = p
	}
}

// box returns the bounding box of r's points.
func (t *tree) box(s *store, r ref) (lo, hi []float64) {
	if r < 0 {
		p := s.point(t.Leaves[^r].Point)
		return p, p
	}
	o := int(r) * t.dim
	return t.lo[o : o+t.dim], t.hi[o : o+t.dim]
}

func (t *tree) newLeaf(point int32, parent ref) ref {
	l := leaf{Parent: parent, Point: point, Mass: 1}
	if n := len(t.FreeLeaves); n > 0 {
		i := t.FreeLeaves[n-1]
		t.FreeLeaves = t.FreeLeaves[:n-1]
		t.Leaves[i] = l
		return ^i
	}
	t.Leaves = append(t.Leaves, l)
	return ^int32(len(t.Leaves) - 1)
}

func (t *tree) newNode(n internal) ref {
	if k := len(t.FreeNodes); k > 0 {
		i := t.FreeNodes[k-1]
		t.FreeNodes = t.FreeNodes[:k-1]
		t.Nodes[i] = n
		return i
	}
	t.Nodes = append(t.Nodes, n)
	t.lo = append(t.lo, make([]float64, t.dim)...)
	t.hi = append(t.hi, make([]float64, t.dim)...)
	return int32(len(t.Nodes) - 1)
}

// replaceChild makes n take old's place under parent p (or at the root).
func (t *tree) replaceChild(p, old, n ref) {
	if p == none || p < 0 {
		t.Root = n
		return
	}
	if t.Nodes[p].Left == old {
		t.Nodes[p].Left = n
	} else {
		t.Nodes[p].Right = n
	}
}

// insert adds point i of the store (values p) to the tree, as the paper's
// InsertPoint: at each node a cut is drawn on the box of the node's points
// and p, with each dimension chosen in proportion to its span; a cut that
// separates p from the node's points puts p in a new leaf beside the node,
// otherwise p goes down the node's own cut. A point equal to a leaf's only
// adds to its mass. insert returns the leaf that holds p and the index of
// the stored point it holds, which is i unless p was a duplicate.
func (t *tree) insert(s *store, rng *rand.Rand, i int32, p []float64) (ref, int32) {
	if t.Root == none {
		l := t.newLeaf(i, none)
		t.Root = l
		return l, i
	}
	r, parent := t.Root, none
	for {
		lo, hi := t.box(s, r)
		if r < 0 && equal(lo, p) {
			t.Leaves[^r].Mass++
			return r, t.Leaves[^r].Point
		}
		total := 0.0
		for d := range t.dim {
			total += math.Max(hi[d], p[d]) - math.Min(lo[d], p[d])
		}
		x := rng.Float64() * total
		dim := t.dim - 1
		for d := range t.dim {
			span := math.Max(hi[d], p[d]) - math.Min(lo[d], p[d])
			if x < span {
				dim = d
				break
			}
			x -= span
		}
		mn, mx := math.Min(lo[dim], p[dim]), math.Max(hi[dim], p[dim])
		cut := mn + x
		if cut >= mx { // rounding: a cut must leave a point on each side
			cut = math.Nextafter(mx, mn)
		}
		if cut < lo[dim] || cut >= hi[dim] {
			// The cut separates p from r's points: a new node takes r's
			// place with r and p's new leaf as its children.
			k := t.newNode(internal{Parent: parent, Dim: int32(dim), Cut: cut, Mass: t.mass(r) + 1})
			o := int(k) * t.dim
			for d := range t.dim {
				t.lo[o+d] = math.Min(lo[d], p[d])
				t.hi[o+d] = math.Max(hi[d], p[d])
			}
			l := t.newLeaf(i, k)
			if p[dim] <= cut {
				t.Nodes[k].Left, t.Nodes[k].Right = l, r
			} else {
				t.Nodes[k].Left, t.Nodes[k].Right = r, l
			}
			t.replaceChild(parent, r, k)
			t.setParent(r, k)
			return l, i
		}
		// r is an internal node: a leaf's box is a point, and every cut of
		// the span between two distinct points separates them.
		n := &t.Nodes[r]
		n.Mass++
		o := int(r) * t.dim
		for d := range t.dim {
			t.lo[o+d] = math.Min(t.lo[o+d], p[d])
			t.hi[o+d] = math.Max(t.hi[o+d], p[d])
		}
		parent = r
		if p[n.Dim] <= n.Cut {
			r = n.Left
		} else {
			r = n.Right
		}
	}
}

// find returns the leaf holding p, or none.
func (t *tree) find(s *store, p []float64) ref {
	r := t.Root
	for r >= 0 {
		n := &t.Nodes[r]
		if p[n.Dim] <= n.Cut {
			r = n.Left
		} else {
			r = n.Right
		}
	}
	if r == none || !equal(s.point(t.Leaves[^r].Point), p) {
		return none
	}
	return r
}

// remove takes one copy of p out of the tree (the paper's DeletePoint): a
// leaf of mass one goes with its parent, whose other child takes the
// parent's place. It returns the stored point the leaf held and whether
// the leaf went, or false if p is not in the tree.
func (t *tree) remove(s *store, p []float64) (point int32, gone, ok bool) {
	l := t.find(s, p)
	if l == none {
		return 0, false, false
	}
	lf := &t.Leaves[^l]
	point = lf.Point
	if lf.Mass > 1 {
		lf.Mass--
		for a := lf.Parent; a != none; a = t.Nodes[a].Parent {
			t.Nodes[a].Mass--
		}
		return point, false, true
	}
	par := lf.Parent
	t.FreeLeaves = append(t.FreeLeaves, ^l)
	if par == none {
		t.Root = none
		return point, true, true
	}
	sib := t.Nodes[par].Left
	if sib == l {
		sib = t.Nodes[par].Right
	}
	grand := t.Nodes[par].Parent
	t.replaceChild(grand, par, sib)
	t.setParent(sib, grand)
	t.FreeNodes = append(t.FreeNodes, par)
	for a := grand; a != none; a = t.Nodes[a].Parent {
		t.Nodes[a].Mass--
		t.refit(s, a)
	}
	return point, true, true
}

// refit sets an internal node's box to the union of its children's.
func (t *tree) refit(s *store, a ref) {
	n := &t.Nodes[a]
	llo, lhi := t.box(s, n.Left)
	rlo, rhi := t.box(s, n.Right)
	o := int(a) * t.dim
	for d := range t.dim {
		t.lo[o+d] = math.Min(llo[d], rlo[d])
		t.hi[o+d] = math.Max(lhi[d], rhi[d])
	}
}

// codisp is the collusive displacement of leaf l (definition 6 of the
// paper): over the subtrees C on the path from l to the root, the largest
// ratio of the mass of C's sibling to the mass of C. It is the number of
// points whose depth would change, per point removed, if l's points and
// those colluding with them were removed.
func (t *tree) codisp(l ref) float64 {
	best := 0.0
	for c, p := l, t.parent(l); p != none; c, p = p, t.Nodes[p].Parent {
		sib := t.Nodes[p].Left
		if sib == c {
			sib = t.Nodes[p].Right
		}
		best = math.Max(best, float64(t.mass(sib))/float64(t.mass(c)))
	}
	return best
}

// nearest returns the stored point closest to q over q's first known
// dimensions (Euclidean), the tree's offer for imputing the others. It
// searches branch and bound, nearer side first, pruning subtrees whose box
// is farther than the best point found. (A greedy descent costs a third as
// much but offers farther points: white noise then gets twice the false
// positives.)
func (t *tree) nearest(s *store, q []float64, known int) int32 {
	best, bestD := int32(-1), math.Inf(1)
	var visit func(r ref)
	visit = func(r ref) {
		if r < 0 {
			pi := t.Leaves[^r].Point
			if d := dist2(s.point(pi)[:known], q[:known]); d < bestD {
				best, bestD = pi, d
			}
			return
		}
		lo, hi := t.box(s, r)
		if boxDist2(lo[:known], hi[:known], q[:known]) >= bestD {
			return
		}
		n := &t.Nodes[r]
		first, second := n.Left, n.Right
		if int(n.Dim) < known && q[n.Dim] > n.Cut {
			first, second = second, first
		}
		visit(first)
		visit(second)
	}
	if t.Root != none {
		visit(t.Root)
	}
	return best
}

// rebuildBoxes computes every internal node's box from the leaves, after
// decoding.
func (t *tree) rebuildBoxes(s *store) {
	t.lo = make([]float64, len(t.Nodes)*t.dim)
	t.hi = make([]float64, len(t.Nodes)*t.dim)
	var fit func(r ref)
	fit = func(r ref) {
		if r < 0 {
			return
		}
		fit(t.Nodes[r].Left)
		fit(t.Nodes[r].Right)
		t.refit(s, r)
	}
	if t.Root != none {
		fit(t.Root)
	}
}

func equal(a, b []float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// boxDist2 is the squared distance from q to the box [lo, hi].
func boxDist2(lo, hi, q []float64) float64 {
	s := 0.0
	for i := range q {
		var d float64
		if q[i] < lo[i] {
			d = lo[i] - q[i]
		} else if q[i] > hi[i] {
			d = q[i] - hi[i]
		}
		s += d * d
	}
	return s
}

func dist2(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return s
}
