package policy

import (
	"fmt"
	"slices"
	"strings"
)

// WithinBoundary checks that p grants nothing boundary does not, as an IAM
// permission boundary: it is how a caller may hand out credentials no more
// powerful than its own. Every pair of Action and Resource patterns of p's
// Allow statements must be covered by one Allow statement of boundary,
// where a pattern covers another when it matches every string the other
// matches; and every Deny statement of boundary must be in p too, since
// whether it overlaps what p allows is not worth guessing. The error names
// the first grant that is not covered. A nil boundary allows nothing.
func WithinBoundary(p, boundary *Policy) error {
	if boundary == nil {
		boundary = &Policy{} // Allows nothing.
	}
	for _, d := range boundary.Statement {
		if d.Effect != Deny {
			continue
		}
		if !slices.ContainsFunc(p.Statement, func(s Statement) bool {
			return s.Effect == Deny && covers(s.Action, d.Action, true) && covers(s.Resource, d.Resource, false)
		}) {
			return fmt.Errorf("the caller's own policy denies %s on %s: the new policy must deny it too",
				strings.Join(d.Action, ","), strings.Join(d.Resource, ","))
		}
	}
	for _, s := range p.Statement {
		if s.Effect != Allow {
			continue
		}
		for _, a := range s.Action {
			for _, r := range s.Resource {
				if !slices.ContainsFunc(boundary.Statement, func(b Statement) bool {
					return b.Effect == Allow && covers(b.Action, []string{a}, true) && covers(b.Resource, []string{r}, false)
				}) {
					return fmt.Errorf("the new policy allows %s on %s, which the caller's own policy does not allow", a, r)
				}
			}
		}
	}
	return nil
}

// covers reports whether every pattern of narrow is covered by one of wide.
func covers(wide, narrow []string, fold bool) bool {
	for _, n := range narrow {
		if fold {
			n = strings.ToLower(n)
		}
		if !slices.ContainsFunc(wide, func(w string) bool {
			if fold {
				w = strings.ToLower(w)
			}
			return patternCovers(w, n)
		}) {
			return false
		}
	}
	return true
}

// patternCovers reports whether every string pattern n matches, pattern w
// matches too. It is wildcard matching of n as a string by w, where a
// wildcard of n is matched only by one of w: a literal of w matches only
// the same literal, w's ? any single character but n's *, and w's * any run.
func patternCovers(w, n string) bool {
	var wi, ni, star, mark = 0, 0, -1, 0
	for ni < len(n) {
		switch {
		case wi < len(w) && w[wi] == '?' && n[ni] != '*':
			wi++
			ni++
		case wi < len(w) && w[wi] != '*' && w[wi] != '?' && n[ni] != '*' && n[ni] != '?' && w[wi] == n[ni]:
			wi++
			ni++
		case wi < len(w) && w[wi] == '*':
			star, mark = wi, ni
			wi++
		case star >= 0:
			wi = star + 1
			mark++
			ni = mark
		default:
			return false
		}
	}
	for wi < len(w) && w[wi] == '*' {
		wi++
	}
	return wi == len(w)
}
