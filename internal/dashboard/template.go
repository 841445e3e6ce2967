package dashboard

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Value is a variable's current value for interpolation.
type Value struct {
	// Values are the selected values; for "All" they are ignored.
	Values []string
	// All is set when "All" is selected; AllValue replaces it when not
	// empty, otherwise All means ".*".
	All      bool
	AllValue string
	// Multi is set for variables that allow several values or All; their
	// values are regex-escaped as Grafana's Prometheus data source does.
	Multi bool
}

// Builtins are the time-dependent built-in variables.
type Builtins struct {
	Interval time.Duration // $__interval and $__interval_ms.
	Range    time.Duration // $__range, $__range_s, $__range_ms.
	// ScrapeInterval feeds $__rate_interval; 0 means 15s.
	ScrapeInterval time.Duration
}

// RateInterval is Grafana's $__rate_interval: max($__interval + scrape
// interval, 4 × scrape interval).
func (b Builtins) RateInterval() time.Duration {
	s := b.ScrapeInterval
	if s <= 0 {
		s = 15 * time.Second
	}
	return max(b.Interval+s, 4*s)
}

// varPattern is Grafana's variable syntax: $var, [[var]] or [[var:fmt]],
// ${var}, ${var.field} or ${var:fmt}.
func varPattern() *regexp.Regexp {
	return regexp.MustCompile(`\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}`)
}

// Interpolate replaces variables and built-ins in expr. Unknown variables
// are left as written.
func Interpolate(expr string, vars map[string]Value, b Builtins) string {
	re := varPattern()
	return re.ReplaceAllStringFunc(expr, func(m string) string {
		sub := re.FindStringSubmatch(m)
		name, format := sub[1], ""
		switch {
		case sub[2] != "":
			name, format = sub[2], sub[3]
		case sub[4] != "":
			name, format = sub[4], sub[6]
		}
		if s, ok := builtin(name, b); ok {
			return s
		}
		v, ok := vars[name]
		if !ok {
			return m
		}
		return formatValue(v, format)
	})
}

func builtin(name string, b Builtins) (string, bool) {
	switch name {
	case "__interval":
		return FormatDuration(b.Interval), true
	case "__interval_ms":
		return strconv.FormatInt(b.Interval.Milliseconds(), 10), true
	case "__rate_interval":
		return FormatDuration(b.RateInterval()), true
	case "__range":
		return strconv.FormatInt(int64(math.Round(b.Range.Seconds())), 10) + "s", true
	case "__range_s":
		return strconv.FormatInt(int64(math.Round(b.Range.Seconds())), 10), true
	case "__range_ms":
		return strconv.FormatInt(b.Range.Milliseconds(), 10), true
	}
	return "", false
}

func formatValue(v Value, format string) string {
	if v.All {
		if v.AllValue != "" {
			return v.AllValue
		}
		return ".*"
	}
	vals := v.Values
	switch format {
	case "raw", "text":
		return strings.Join(vals, ",")
	case "csv":
		return strings.Join(vals, ",")
	case "pipe":
		return strings.Join(vals, "|")
	case "json":
		b, _ := json.Marshal(vals)
		return string(b)
	case "regex":
		return regexAlternation(vals)
	case "":
		if !v.Multi {
			return strings.Join(vals, ",")
		}
		return regexAlternation(vals)
	}
	return strings.Join(vals, ",")
}

func regexAlternation(vals []string) string {
	esc := make([]string, len(vals))
	for i, s := range vals {
		esc[i] = EscapeRegex(s)
	}
	if len(esc) == 1 {
		return esc[0]
	}
	return "(" + strings.Join(esc, "|") + ")"
}

// EscapeRegex escapes the regex metacharacters of a label value as Grafana
// does for Prometheus.
func EscapeRegex(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\^$*+?.()|{}[]`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// FormatDuration writes a duration as Grafana does for intervals: the
// largest whole unit among y, w, d, h, m, s, ms ("1m", "90s", "500ms").
func FormatDuration(d time.Duration) string {
	ms := d.Milliseconds()
	if ms <= 0 {
		return "0s"
	}
	units := []struct {
		suffix string
		ms     int64
	}{{"y", 365 * 86400000}, {"w", 7 * 86400000}, {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}}
	for _, u := range units {
		if ms%u.ms == 0 {
			return strconv.FormatInt(ms/u.ms, 10) + u.suffix
		}
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// ParseDuration reads a Grafana interval like "30s", "1m", "500ms" or "1d".
func ParseDuration(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"y", 365 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			if u.suffix == "s" && strings.HasSuffix(n, "m") {
				continue
			}
			f, err := strconv.ParseFloat(n, 64)
			if err != nil || f < 0 {
				return 0, false
			}
			return time.Duration(f * float64(u.d)), true
		}
	}
	return 0, false
}

// AutoInterval is Grafana's $__interval: the range divided by the number of
// points (maxDataPoints or the panel width in pixels), rounded to a
// readable step, and at least minInterval.
func AutoInterval(rng time.Duration, points int, minInterval time.Duration) time.Duration {
	if points <= 0 {
		points = 1000
	}
	iv := RoundInterval(rng / time.Duration(points))
	if iv < minInterval {
		return minInterval
	}
	return iv
}

// RoundInterval rounds a raw interval to Grafana's steps (rangeutil.roundInterval).
func RoundInterval(d time.Duration) time.Duration {
	ms := d.Milliseconds()
	steps := []struct{ below, to int64 }{
		{10, 1}, {15, 10}, {35, 20}, {75, 50}, {150, 100}, {350, 200}, {750, 500}, {1500, 1000},
		{3500, 2000}, {7500, 5000}, {12500, 10000}, {17500, 15000}, {25000, 20000}, {45000, 30000},
		{90000, 60000}, {210000, 120000}, {450000, 300000}, {750000, 600000}, {1050000, 900000},
		{1500000, 1200000}, {2700000, 1800000}, {5400000, 3600000}, {9000000, 7200000},
		{16200000, 10800000}, {32400000, 21600000}, {86400000, 43200000}, {604800000, 86400000},
		{1814400000, 604800000}, {3628800000, 2592000000},
	}
	for _, s := range steps {
		if ms < s.below {
			return time.Duration(s.to) * time.Millisecond
		}
	}
	return 365 * 24 * time.Hour
}
