package anomaly

// store holds the forest's points once, for all its trees: a shingle
// sampled by several trees is kept once, with a count of the leaves and
// reservoir entries that refer to it. Indexes of freed points are reused.
type store struct {
	dim    int
	values []float64 // point i is values[i*dim : (i+1)*dim]
	refs   []int32
	free   []int32
}

// add copies p into the store with no reference yet and returns its index.
func (s *store) add(p []float64) int32 {
	if n := len(s.free); n > 0 {
		i := s.free[n-1]
		s.free = s.free[:n-1]
		copy(s.point(i), p)
		s.refs[i] = 0
		return i
	}
	s.values = append(s.values, p...)
	s.refs = append(s.refs, 0)
	return int32(len(s.refs) - 1)
}

func (s *store) point(i int32) []float64 {
	return s.values[int(i)*s.dim : (int(i)+1)*s.dim]
}

// release drops a reference and frees the point when none is left.
func (s *store) release(i int32) {
	s.refs[i]--
	if s.refs[i] == 0 {
		s.free = append(s.free, i)
	}
}

// len is the number of points held.
func (s *store) len() int { return len(s.refs) - len(s.free) }

// dropUnused frees a point no leaf or reservoir took.
func (s *store) dropUnused(i int32) {
	if s.refs[i] == 0 {
		s.free = append(s.free, i)
	}
}
