package dashboard

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// InterpolationCases are shared with the browser test, which checks that
// the JavaScript renderer interpolates the same way.
func InterpolationCases() []InterpolationCase {
	vars := map[string]Value{
		"ns":     {Values: []string{"prod"}, Multi: true},
		"multi":  {Values: []string{"a", "b.c"}, Multi: true},
		"single": {Values: []string{"x.y"}},
		"all":    {All: true, Multi: true},
		"allv":   {All: true, AllValue: "cart|web", Multi: true},
	}
	b := Builtins{Interval: 30 * time.Second, Range: time.Hour, ScrapeInterval: 15 * time.Second}
	return []InterpolationCase{
		{`up{namespace=~"$ns"}`, vars, b, `up{namespace=~"prod"}`},
		{`up{namespace=~"${ns}"}`, vars, b, `up{namespace=~"prod"}`},
		{`up{namespace=~"[[ns]]"}`, vars, b, `up{namespace=~"prod"}`},
		{`up{x=~"$multi"}`, vars, b, `up{x=~"(a|b\.c)"}`},
		{`up{x=~"${multi:regex}"}`, vars, b, `up{x=~"(a|b\.c)"}`},
		{`up{x=~"${multi:pipe}"}`, vars, b, `up{x=~"a|b.c"}`},
		{`up{x=~"${multi:csv}"}`, vars, b, `up{x=~"a,b.c"}`},
		{`up{x="$single"}`, vars, b, `up{x="x.y"}`},
		{`up{x=~"${single:regex}"}`, vars, b, `up{x=~"x\.y"}`},
		{`up{x=~"$all"}`, vars, b, `up{x=~".*"}`},
		{`up{x=~"$allv"}`, vars, b, `up{x=~"cart|web"}`},
		{`up{x="$unknown"}`, vars, b, `up{x="$unknown"}`},
		{`rate(x[$__interval])`, vars, b, `rate(x[30s])`},
		{`rate(x[$__rate_interval])`, vars, b, `rate(x[1m])`},
		{`increase(x[$__range])`, vars, b, `increase(x[3600s])`},
		{`x / $__range_s + $__interval_ms`, vars, b, `x / 3600 + 30000`},
		{`rate(x[${__interval}])`, vars, Builtins{Interval: 1500 * time.Millisecond, Range: time.Minute}, `rate(x[1500ms])`},
		{`rate(x[$__rate_interval])`, vars, Builtins{Interval: 5 * time.Minute, Range: time.Hour}, `rate(x[315s])`},
	}
}

// InterpolationCase is one expression, its variables and the result.
type InterpolationCase struct {
	Expr string
	Vars map[string]Value
	B    Builtins
	Want string
}

func TestInterpolate(t *testing.T) {
	for _, c := range InterpolationCases() {
		t.Run(c.Expr, func(t *testing.T) {
			require.Equal(t, c.Want, Interpolate(c.Expr, c.Vars, c.B))
		})
	}
}

func TestIntervals(t *testing.T) {
	for _, c := range []struct {
		rng    time.Duration
		points int
		min    time.Duration
		want   string
	}{
		{time.Hour, 1000, 0, "5s"},
		{time.Hour, 100, 0, "30s"},
		{30 * time.Minute, 1000, 15 * time.Second, "15s"},
		{24 * time.Hour, 1000, 0, "1m"},
		{7 * 24 * time.Hour, 1000, 0, "10m"},
	} {
		require.Equal(t, c.want, FormatDuration(AutoInterval(c.rng, c.points, c.min)), "%v/%d", c.rng, c.points)
	}
	for s, want := range map[string]time.Duration{"30s": 30 * time.Second, "1m": time.Minute, "500ms": 500 * time.Millisecond, "2d": 48 * time.Hour} {
		got, ok := ParseDuration(s)
		require.True(t, ok, s)
		require.Equal(t, want, got, s)
	}
	_, ok := ParseDuration("soon")
	require.False(t, ok)
}
