package anomaly

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/orrery-dev/orrery/internal/query"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// The series AMP's preview returns beside the original ones.
const (
	PreviewLower = "anomaly_detector_preview:lower_band"
	PreviewUpper = "anomaly_detector_preview:upper_band"
	PreviewScore = "anomaly_detector_preview:score"
)

// previewStep is the step of an instant preview's history: AMP's default
// detector interval.
const previewStep = time.Minute

// Queryables gives a workspace's data to query. Implementations are safe
// for concurrent use.
type Queryables interface {
	Queryable(id workspace.ID) storage.SampleAndChunkQueryable
}

// Preview serves AMP's preview of a detector: a query or query_range whose
// query is RCF(<query>[, shingle size[, sample size[, ignore near expected
// from above[, … from below[, … from above ratio[, … from below ratio]]]]]])
// trains a forest per result series on the history before the queried time
// and answers the original series and, once the forests are ready, the
// lower band, upper band and score series AMP documents. Any other query
// goes to next unchanged.
type Preview struct {
	next     http.Handler
	data     Queryables
	limits   workspace.LimitsSource
	lookback time.Duration
}

// NewPreview returns the preview in front of next, the workspace's query
// API. A lookback of 0 is PromQL's 5 minutes.
func NewPreview(next http.Handler, data Queryables, limits workspace.LimitsSource, lookback time.Duration) *Preview {
	if lookback <= 0 {
		lookback = 5 * time.Minute
	}
	return &Preview{next: next, data: data, limits: limits, lookback: lookback}
}

// ServeHTTP implements http.Handler.
func (p *Preview) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rangeQuery := strings.HasSuffix(r.URL.Path, "/query_range")
	if !rangeQuery && !strings.HasSuffix(r.URL.Path, "/query") {
		p.next.ServeHTTP(w, r)
		return
	}
	// Parsing the form keeps it for next: a POST body is read once.
	if err := r.ParseForm(); err != nil {
		badData(w, fmt.Sprintf("parse form: %v", err))
		return
	}
	qs := strings.TrimSpace(r.Form.Get("query"))
	if !strings.HasPrefix(qs, "RCF(") {
		p.next.ServeHTTP(w, r)
		return
	}
	id, ok := workspace.FromContext(r.Context())
	if !ok {
		query.WriteError(w, http.StatusInternalServerError, "internal", "no workspace in the request")
		return
	}
	inner, cfg, err := ParseRCF(qs)
	if err != nil {
		badData(w, err.Error())
		return
	}
	var start, end time.Time
	step := previewStep
	if rangeQuery {
		if start, err = query.ParseTime(r.Form.Get("start")); err != nil {
			badData(w, fmt.Sprintf("invalid parameter \"start\": %v", err))
			return
		}
		if end, err = query.ParseTime(r.Form.Get("end")); err != nil {
			badData(w, fmt.Sprintf("invalid parameter \"end\": %v", err))
			return
		}
		if step, err = parseDuration(r.Form.Get("step")); err != nil || step <= 0 {
			badData(w, "invalid parameter \"step\": a positive duration or number of seconds is required")
			return
		}
		if end.Before(start) {
			badData(w, "invalid parameter \"end\": end timestamp must not be before start time")
			return
		}
		if end.Sub(start)/step > 11000 {
			badData(w, "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
			return
		}
	} else {
		end = time.Now()
		if t := r.Form.Get("time"); t != "" {
			if end, err = query.ParseTime(t); err != nil {
				badData(w, fmt.Sprintf("invalid parameter \"time\": %v", err))
				return
			}
		}
		start = end
	}
	lim := p.limits.Limits(id)
	// The forests learn from the shingleSize+sampleSize steps before the
	// queried time, as a detector trains on create, within the
	// workspace's longest query range.
	from := start.Add(-time.Duration(cfg.ShingleSize+cfg.SampleSize) * step)
	if max := time.Duration(lim.MaxQueryRange); max > 0 && end.Sub(from) > max {
		from = end.Add(-max)
		if from.After(start) {
			badData(w, fmt.Sprintf("the query time range %s exceeds the limit of workspace %s (max_query_range %s)", end.Sub(start), id, max))
			return
		}
	}
	engine := promql.NewEngine(query.EngineOpts(lim, p.lookback))
	q, err := engine.NewRangeQuery(r.Context(), p.data.Queryable(id), nil, inner, from, end, step)
	if err != nil {
		badData(w, err.Error())
		return
	}
	defer q.Close()
	res := q.Exec(r.Context())
	if res.Err != nil {
		query.WriteError(w, http.StatusUnprocessableEntity, "execution", res.Err.Error())
		return
	}
	m, err := res.Matrix()
	if err != nil {
		query.WriteError(w, http.StatusUnprocessableEntity, "execution", err.Error())
		return
	}
	out := previewSeries(m, cfg, start.UnixMilli())
	if rangeQuery {
		writeMatrix(w, out)
	} else {
		writeVector(w, out, end.UnixMilli())
	}
}

// previewSeries runs a forest over each series and returns, from time
// from on, the series and its bands and score.
func previewSeries(m promql.Matrix, cfg Config, from int64) []promql.Series {
	var out []promql.Series
	for _, s := range m {
		c := cfg
		h := fnv.New64a()
		h.Write([]byte(s.Metric.String()))
		c.Seed = h.Sum64()
		f, err := New(c)
		if err != nil { // cfg was validated by ParseRCF.
			continue
		}
		orig := promql.Series{Metric: s.Metric}
		lower := promql.Series{Metric: withName(s.Metric, PreviewLower)}
		upper := promql.Series{Metric: withName(s.Metric, PreviewUpper)}
		score := promql.Series{Metric: withName(s.Metric, PreviewScore)}
		for _, pt := range s.Floats {
			res := f.Update(pt.F)
			if pt.T < from {
				continue
			}
			orig.Floats = append(orig.Floats, pt)
			if res.Ready {
				lower.Floats = append(lower.Floats, promql.FPoint{T: pt.T, F: res.Lower})
				upper.Floats = append(upper.Floats, promql.FPoint{T: pt.T, F: res.Upper})
				score.Floats = append(score.Floats, promql.FPoint{T: pt.T, F: res.Score})
			}
		}
		for _, x := range []promql.Series{orig, lower, upper, score} {
			if len(x.Floats) > 0 {
				out = append(out, x)
			}
		}
	}
	slices.SortFunc(out, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	return out
}

func withName(ls labels.Labels, name string) labels.Labels {
	b := labels.NewBuilder(ls)
	b.Set(labels.MetricName, name)
	return b.Labels()
}

// ParseRCF splits RCF(<query>[, …]) into the query and the forest
// configuration its positional arguments set; an empty argument keeps the
// default. The query must be wrapped in an aggregation, as for a detector.
func ParseRCF(qs string) (string, Config, error) {
	var cfg Config
	body, ok := strings.CutPrefix(strings.TrimSpace(qs), "RCF(")
	if !ok || !strings.HasSuffix(body, ")") {
		return "", cfg, fmt.Errorf("RCF: want RCF(<query>[, shingle size[, sample size[, …]]])")
	}
	args, err := splitArgs(body[:len(body)-1])
	if err != nil {
		return "", cfg, fmt.Errorf("RCF: %w", err)
	}
	if len(args) > 7 {
		return "", cfg, fmt.Errorf("RCF takes a query and at most 6 arguments, not %d", len(args)-1)
	}
	inner := strings.TrimSpace(args[0])
	if err := ValidateQuery(inner); err != nil {
		return "", cfg, fmt.Errorf("RCF query: %w", err)
	}
	names := []string{"shingle size", "sample size", "ignore near expected from above", "ignore near expected from below",
		"ignore near expected from above ratio", "ignore near expected from below ratio"}
	for i, a := range args[1:] {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if i < 2 {
			n, err := strconv.Atoi(a)
			if err != nil {
				return "", cfg, fmt.Errorf("RCF %s %q: not an integer", names[i], a)
			}
			if i == 0 {
				cfg.ShingleSize = n
			} else {
				cfg.SampleSize = n
			}
			continue
		}
		v, err := strconv.ParseFloat(a, 64)
		if err != nil || v < 0 || math.IsInf(v, 0) {
			return "", cfg, fmt.Errorf("RCF %s %q: not a non-negative number", names[i], a)
		}
		switch i {
		case 2:
			cfg.Above.Amount = v
		case 3:
			cfg.Below.Amount = v
		case 4:
			cfg.Above.Ratio = v
		case 5:
			cfg.Below.Ratio = v
		}
	}
	cfg = cfg.withDefaults()
	cfg.TimeDecay = 1 / (10 * float64(cfg.SampleSize))
	if err := cfg.Validate(); err != nil {
		return "", cfg, fmt.Errorf("RCF: %w", err)
	}
	return inner, cfg, nil
}

// splitArgs splits s at the commas outside parentheses, brackets, braces
// and quoted strings.
func splitArgs(s string) ([]string, error) {
	var (
		args  []string
		depth int
		quote rune
		start int
	)
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced %q at %d", c, i)
			}
		case c == ',' && depth == 0:
			args = append(args, s[start:i])
			start = i + 1
		}
	}
	if depth != 0 || quote != 0 {
		return nil, fmt.Errorf("unbalanced brackets or quotes")
	}
	return append(args, s[start:]), nil
}

type jsonSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values,omitempty"`
	Value  *[2]any           `json:"value,omitempty"`
}

func point(p promql.FPoint) [2]any {
	return [2]any{float64(p.T) / 1000, strconv.FormatFloat(p.F, 'f', -1, 64)}
}

func writeMatrix(w http.ResponseWriter, ss []promql.Series) {
	result := make([]jsonSeries, 0, len(ss))
	for _, s := range ss {
		j := jsonSeries{Metric: s.Metric.Map()}
		for _, p := range s.Floats {
			j.Values = append(j.Values, point(p))
		}
		result = append(result, j)
	}
	writeSuccess(w, "matrix", result)
}

// writeVector answers the series' points at t: a preview at an instant.
func writeVector(w http.ResponseWriter, ss []promql.Series, t int64) {
	result := make([]jsonSeries, 0, len(ss))
	for _, s := range ss {
		if n := len(s.Floats); n > 0 && s.Floats[n-1].T == t {
			v := point(s.Floats[n-1])
			result = append(result, jsonSeries{Metric: s.Metric.Map(), Value: &v})
		}
	}
	writeSuccess(w, "vector", result)
}

func writeSuccess(w http.ResponseWriter, typ string, result []jsonSeries) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success",
		"data": map[string]any{"resultType": typ, "result": result}})
}

func badData(w http.ResponseWriter, msg string) {
	query.WriteError(w, http.StatusBadRequest, "bad_data", msg)
}

// parseDuration parses a Prometheus API duration: seconds or 5m-style.
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.Abs(f) > float64(math.MaxInt64)/1e9 {
			return 0, fmt.Errorf("%q overflows a duration", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}
