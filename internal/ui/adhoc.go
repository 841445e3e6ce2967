package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// adHocParam carries a dashboard's ad hoc filters with a query the UI
// sends: a JSON list of {key, operator, value}. Grafana's Prometheus data
// source adds them to every selector of every query of the dashboard;
// here the UI's query proxy does it with Prometheus' own parser, so that
// the filters land in selectors however the query is written, and the
// query API never sees the parameter.
const adHocParam = "orrery_adhoc"

// adHocFilter is one ad hoc filter, as Grafana's templating model keeps it.
type adHocFilter struct {
	Key      string `json:"key"`
	Operator string `json:"operator"`
	Value    string `json:"value"`
}

var adHocOps = map[string]labels.MatchType{"=": labels.MatchEqual, "!=": labels.MatchNotEqual, "=~": labels.MatchRegexp, "!~": labels.MatchNotRegexp}

// withAdHocFilters rewrites the query in form with the filters of its
// adHocParam, and drops the parameter. It changes nothing without it.
func withAdHocFilters(form url.Values, p parser.Parser) error {
	raw := form.Get(adHocParam)
	form.Del(adHocParam)
	if raw == "" {
		return nil
	}
	var filters []adHocFilter
	if err := json.Unmarshal([]byte(raw), &filters); err != nil {
		return fmt.Errorf("%s: not a JSON list of {key, operator, value}: %v", adHocParam, err)
	}
	if len(filters) == 0 {
		return nil
	}
	ms := make([]*labels.Matcher, 0, len(filters))
	for _, f := range filters {
		t, ok := adHocOps[f.Operator]
		if !ok {
			return fmt.Errorf("%s: filter on %q: operator %q is not one of =, !=, =~, !~", adHocParam, f.Key, f.Operator)
		}
		if f.Key == "" {
			return fmt.Errorf("%s: a filter needs a label name", adHocParam)
		}
		m, err := labels.NewMatcher(t, f.Key, f.Value)
		if err != nil {
			return fmt.Errorf("%s: filter %s%s%s: %v", adHocParam, f.Key, f.Operator, strconv.Quote(f.Value), err)
		}
		ms = append(ms, m)
	}
	q := form.Get("query")
	if q == "" {
		return nil
	}
	expr, err := p.ParseExpr(q)
	if err != nil {
		return fmt.Errorf("query: %v", err)
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			vs.LabelMatchers = append(vs.LabelMatchers, ms...)
		}
		return nil
	})
	form.Set("query", expr.String())
	return nil
}

// applyAdHoc applies withAdHocFilters to a query request to the proxy, in
// its URL or in its form body, before it is forwarded.
func applyAdHoc(r *http.Request, p parser.Parser) error {
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
		if err != nil {
			return fmt.Errorf("read the query: %v", err)
		}
		if len(body) > 1<<20 {
			return fmt.Errorf("a query request of the web UI is at most 1 MiB")
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return fmt.Errorf("the query's form: %v", err)
		}
		if form.Has(adHocParam) {
			if err := withAdHocFilters(form, p); err != nil {
				return err
			}
		}
		enc := form.Encode()
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(enc)), int64(len(enc))
	}
	if q := r.URL.Query(); q.Has(adHocParam) {
		if err := withAdHocFilters(q, p); err != nil {
			return err
		}
		r.URL.RawQuery = q.Encode()
	}
	return nil
}
