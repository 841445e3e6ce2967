package anomaly

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/workspace"
)

func TestParseRCF(t *testing.T) {
	for _, tc := range []struct {
		name, in, query string
		check           func(t *testing.T, c Config)
		err             string
	}{
		{name: "minimal", in: `RCF(sum(rate(x[5m])))`, query: `sum(rate(x[5m]))`, check: func(t *testing.T, c Config) {
			require.Equal(t, 8, c.ShingleSize)
			require.Equal(t, 256, c.SampleSize)
		}},
		{name: "commas inside the query", in: `RCF(histogram_quantile(0.99, sum by (le, svc) (rate(h{a=~"x,y"}[5m]))), 4, 64)`,
			err: "wrapped in an aggregation"},
		{name: "aggregation with commas", in: `RCF(sum by (le, svc) (rate(h{a=~"x,y"}[5m])), 4, 64)`, query: `sum by (le, svc) (rate(h{a=~"x,y"}[5m]))`,
			check: func(t *testing.T, c Config) {
				require.Equal(t, 4, c.ShingleSize)
				require.Equal(t, 64, c.SampleSize)
			}},
		{name: "empty positions", in: `RCF(avg(up),,,,,1.0,0.5)`, query: `avg(up)`, check: func(t *testing.T, c Config) {
			require.Equal(t, Near{Ratio: 1}, c.Above)
			require.Equal(t, Near{Ratio: 0.5}, c.Below)
			require.Equal(t, 8, c.ShingleSize)
		}},
		{name: "amounts", in: `RCF(max(up), 8, 128, 2, 3)`, query: `max(up)`, check: func(t *testing.T, c Config) {
			require.Equal(t, Near{Amount: 2}, c.Above)
			require.Equal(t, Near{Amount: 3}, c.Below)
		}},
		{name: "not aggregated", in: `RCF(up)`, err: "wrapped in an aggregation"},
		{name: "too many arguments", in: `RCF(sum(up),1,2,3,4,5,6,7)`, err: "at most 6"},
		{name: "shingle not a number", in: `RCF(sum(up), x)`, err: "shingle size"},
		{name: "shingle out of range", in: `RCF(sum(up), 1)`, err: "shingle size 1"},
		{name: "negative ratio", in: `RCF(sum(up),,,,,-1)`, err: "non-negative"},
		{name: "unbalanced", in: `RCF(sum(up(), 4)`, err: "unbalanced"},
		{name: "no closing parenthesis", in: `RCF(sum(up)`, err: "unbalanced"},
		{name: "not a call", in: `RCF sum(up)`, err: "want RCF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, c, err := ParseRCF(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.query, q)
			tc.check(t, c)
		})
	}
}

type previewAnswer struct {
	Status    string
	ErrorType string
	Error     string
	Data      struct {
		ResultType string
		Result     []struct {
			Metric map[string]string
			Values [][2]any
			Value  [2]any
		}
	}
}

// TestPreview answers RCF(…) range and instant queries over a real
// workspace: the original series and AMP's band and score series, the
// spike scored as an anomaly; other queries go to the next handler.
func TestPreview(t *testing.T) {
	e := newRunnerEnv(t)
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	rng := rand.New(rand.NewPCG(3, 4))
	var ts []time.Time
	var vs []float64
	for i := range 150 {
		ts = append(ts, base.Add(time.Duration(i)*time.Minute))
		v := 5 + 0.2*rng.NormFloat64()
		if i == 140 {
			v = 30
		}
		vs = append(vs, v)
	}
	e.write(t, "payments", ts, vs)
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	p := NewPreview(next, e.store, e.ov, 0)
	ask := func(path string, form url.Values) (int, previewAnswer) {
		r := httptest.NewRequest(http.MethodPost, "/workspaces/"+e.ws.String()+"/api/v1/"+path, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r = r.WithContext(workspace.NewContext(r.Context(), e.ws))
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		var a previewAnswer
		if w.Code != http.StatusTeapot {
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &a), w.Body.String())
		}
		return w.Code, a
	}
	sec := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

	// The last 20 minutes, after 130 minutes of history (the forests learn
	// from shingle+sample steps before start: 4+64).
	code, a := ask("query_range", url.Values{"query": {`RCF(sum by (svc) (latency), 4, 64)`},
		"start": {sec(ts[130])}, "end": {sec(ts[149])}, "step": {"60"}})
	require.Equal(t, http.StatusOK, code, a.Error)
	require.Equal(t, "matrix", a.Data.ResultType)
	names := map[string][][2]any{}
	for _, s := range a.Data.Result {
		require.Equal(t, "payments", s.Metric["svc"])
		names[s.Metric["__name__"]] = s.Values
	}
	require.Len(t, names, 4, "the original series, both bands and the score")
	require.Len(t, names[""], 20)
	score := names[PreviewScore]
	require.Len(t, score, 20)
	for i, v := range score {
		f, err := strconv.ParseFloat(v[1].(string), 64)
		require.NoError(t, err)
		if i == 10 {
			require.GreaterOrEqual(t, f, 0.5, "the spike")
		} else if i < 10 {
			require.Less(t, f, 0.5, "point %d", i)
		}
	}

	// An instant preview: the values at the time asked.
	code, a = ask("query", url.Values{"query": {`RCF(sum by (svc) (latency), 4, 64)`}, "time": {sec(ts[140])}})
	require.Equal(t, http.StatusOK, code, a.Error)
	require.Equal(t, "vector", a.Data.ResultType)
	require.Len(t, a.Data.Result, 4)

	// Errors as the Prometheus API answers them.
	code, a = ask("query", url.Values{"query": {`RCF(latency)`}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "bad_data", a.ErrorType)
	require.Contains(t, a.Error, "aggregation")
	code, a = ask("query_range", url.Values{"query": {`RCF(sum(latency))`}, "start": {"1"}, "end": {"2"}, "step": {"0"}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, a.Error, "step")

	// Other queries are the query API's.
	code, _ = ask("query", url.Values{"query": {`sum(latency)`}})
	require.Equal(t, http.StatusTeapot, code)
	code, _ = ask("labels", url.Values{})
	require.Equal(t, http.StatusTeapot, code)
}
