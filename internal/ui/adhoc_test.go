package ui

import (
	"net/url"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

// TestAdHocFilters: the filters land in every selector of the query, in
// ranges, subqueries, binary operations and function arguments, and bad
// filters are refused naming what is wrong.
func TestAdHocFilters(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, c := range []struct{ filters, query, want, err string }{
		{`[{"key":"namespace","operator":"=","value":"shop"}]`,
			`sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="cart"}[5m]))`,
			`sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="cart",namespace="shop"}[5m]))`, ""},
		{`[{"key":"pod","operator":"=~","value":"web-.*"},{"key":"zone","operator":"!=","value":"b"}]`,
			`sum(rate(a_total[5m])) / sum(rate(b_total[5m])) > 0.5`,
			`sum(rate(a_total{pod=~"web-.*",zone!="b"}[5m])) / sum(rate(b_total{pod=~"web-.*",zone!="b"}[5m])) > 0.5`, ""},
		{`[{"key":"job","operator":"!~","value":"node|x"}]`,
			`max_over_time(up[10m:1m]) or vector(0)`, `max_over_time(up{job!~"node|x"}[10m:1m]) or vector(0)`, ""},
		{`[]`, `up`, `up`, ""},
		{`[{"key":"job","operator":"==","value":"x"}]`, `up`, "", `operator "==" is not one of`},
		{`[{"key":"","operator":"=","value":"x"}]`, `up`, "", "a filter needs a label name"},
		{`[{"key":"job","operator":"=~","value":"(("}]`, `up`, "", "error parsing regexp"},
		{`{"key":"job"}`, `up`, "", "not a JSON list"},
		{`[{"key":"job","operator":"=","value":"x"}]`, `sum(`, "", "query: "},
	} {
		form := url.Values{"query": {c.query}, adHocParam: {c.filters}, "step": {"30"}}
		err := withAdHocFilters(form, p)
		if c.err != "" {
			require.ErrorContains(t, err, c.err, c.filters)
			continue
		}
		require.NoError(t, err, c.filters)
		require.Equal(t, c.want, form.Get("query"))
		require.False(t, form.Has(adHocParam), "the parameter is not forwarded")
		require.Equal(t, "30", form.Get("step"))
	}
}
