package dashboard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRealDashboards(t *testing.T) {
	files, err := filepath.Glob("../../test/testdata/dashboards/*.json")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3)
	want := map[string]struct {
		title    string
		schema   int
		vars     []string
		types    []string
		minExprs int
	}{
		"envoy-global-11022.json":               {"Pomerium / Envoy", 36, []string{"datasource", "Namespace", "Service"}, []string{"graph", "row", "table-old"}, 20},
		"envoy-proxy-global-envoy-gateway.json": {"", 39, []string{"datasource", "Namespace"}, []string{"gauge", "row", "stat", "table", "timeseries"}, 20},
		"node-exporter-nodes.json":              {"", 39, []string{"datasource", "cluster", "instance"}, []string{"gauge", "row", "table", "timeseries"}, 8},
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			d, err := Parse(b)
			require.NoError(t, err)
			w, ok := want[filepath.Base(f)]
			require.True(t, ok, "add the new dashboard to the table")
			if w.title != "" {
				require.Equal(t, w.title, d.Title)
			}
			require.NotEmpty(t, d.Title)
			require.Equal(t, w.schema, d.SchemaVersion)
			var names []string
			for _, v := range d.Variables {
				names = append(names, v.Name)
			}
			require.Equal(t, w.vars, names)
			types := map[string]bool{}
			exprs := 0
			vars := map[string]Value{}
			for _, v := range d.Variables {
				vars[v.Name] = Value{All: true, AllValue: v.AllValue, Multi: v.Multi || v.IncludeAll}
			}
			for _, p := range d.AllPanels() {
				types[p.Type] = true
				if p.Type != "row" && p.Type != "text" {
					require.Positive(t, p.GridPos.W, "panel %q", p.Title)
					require.Positive(t, p.GridPos.H, "panel %q", p.Title)
				}
				for _, tg := range p.Targets {
					if tg.Expr == "" {
						continue
					}
					exprs++
					// Every variable in every query is known: interpolation
					// leaves no $ behind.
					out := Interpolate(tg.Expr, vars, Builtins{Interval: time.Minute, Range: time.Hour})
					require.NotContains(t, out, "$", "panel %q: %s", p.Title, tg.Expr)
				}
			}
			var got []string
			for k := range types {
				got = append(got, k)
			}
			require.ElementsMatch(t, w.types, got)
			require.GreaterOrEqual(t, exprs, w.minExprs)
		})
	}
}

func TestParseDetails(t *testing.T) {
	b, err := os.ReadFile("../../test/testdata/dashboards/envoy-global-11022.json")
	require.NoError(t, err)
	d, err := Parse(b)
	require.NoError(t, err)
	require.Equal(t, "now-30m", d.From)
	require.Equal(t, "10s", d.Refresh)
	ns := d.Variables[1]
	require.Equal(t, "query", ns.Type)
	require.Equal(t, "label_values(envoy_cluster_upstream_rq_time_bucket,namespace)", ns.Query)
	require.True(t, ns.Multi)
	require.True(t, ns.IncludeAll)
	require.Equal(t, ".*", ns.AllValue)
	require.Equal(t, []string{"$__all"}, ns.Current.Value)

	b, err = os.ReadFile("../../test/testdata/dashboards/node-exporter-nodes.json")
	require.NoError(t, err)
	d, err = Parse(b)
	require.NoError(t, err)
	var units []string
	stacked := false
	for _, p := range d.AllPanels() {
		units = append(units, p.Defaults.Unit)
		stacked = stacked || p.Defaults.Stacking == "normal"
	}
	require.Contains(t, units, "percentunit")
	require.Contains(t, units, "bytes")
	require.True(t, stacked)
}

func TestParseShapes(t *testing.T) {
	d, err := Parse([]byte(`{"dashboard": {"title": "wrapped", "refresh": false,
		"panels": [{"type": "row", "title": "r", "collapsed": true, "gridPos": {"x":0,"y":0,"w":24,"h":1},
			"panels": [{"type": "stat", "title": "s", "targets": [{"expr": "up", "instant": true, "legendFormat": "{{job}}"}],
				"fieldConfig": {"defaults": {"unit": "ms", "min": 0, "max": "100", "decimals": 2,
					"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": null}, {"color": "red", "value": 80}]}}},
				"someFutureField": {"x": [1,2]}}]}],
		"templating": {"list": [{"name": "v", "type": "custom", "query": "a,b", "current": {"text": "a", "value": "a"}}]}}}`))
	require.NoError(t, err)
	require.Equal(t, "wrapped", d.Title)
	require.Empty(t, d.Refresh)
	require.True(t, d.Panels[0].Collapsed)
	s := d.Panels[0].Panels[0]
	require.Equal(t, "stat", s.Type)
	require.True(t, s.Targets[0].Instant)
	require.Equal(t, 100.0, *s.Defaults.Max)
	require.Equal(t, 2, *s.Defaults.Decimals)
	require.Nil(t, s.Defaults.Thresholds.Steps[0].Value)
	require.Equal(t, 80.0, *s.Defaults.Thresholds.Steps[1].Value)
	require.Equal(t, []string{"a"}, d.Variables[0].Current.Value)

	// Legacy rows become row panels.
	d, err = Parse([]byte(`{"title": "old", "schemaVersion": 14, "rows": [
		{"title": "one", "height": "250px", "panels": [{"type": "graph", "span": 6, "targets": [{"expr": "up"}]}, {"type": "singlestat", "span": 6, "format": "bytes"}]},
		{"title": "two", "collapse": true, "panels": [{"type": "text", "content": "# hi"}]}]}`))
	require.NoError(t, err)
	require.Len(t, d.Panels, 4)
	require.Equal(t, "row", d.Panels[0].Type)
	require.Equal(t, GridPos{X: 12, Y: 1, W: 12, H: 8}, d.Panels[2].GridPos)
	require.Equal(t, "bytes", d.Panels[2].Defaults.Unit)
	require.True(t, d.Panels[3].Collapsed)
	require.Equal(t, "# hi", d.Panels[3].Panels[0].Content)
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, "invalid JSON"},
		{`{"title": "x",}`, "line 1, column 15"},
		{"{\n\"title\": \"x\"\n\"panels\": []}", "line 3"},
		{`[]`, "want a JSON object, got array"},
		{`{} {}`, "trailing data"},
		{`{"panels": {}}`, "panels: want an array, got object"},
		{`{"panels": [{"gridPos": {"w": "wide"}}]}`, `panels[0].gridPos.w: want a number, got string "wide"`},
		{`{"panels": [{}, {"gridPos": {"w": 1.5}}]}`, "panels[1].gridPos.w: want an integer"},
		{`{"panels": [{"type": "row", "panels": [{"targets": [{"expr": 3, "instant": "yes"}]}]}]}`, "panels[0].panels[0].targets[0].instant: want a boolean, got string"},
		{`{"panels": [null]}`, "panels[0]: want a panel object, got null"},
		{`{"templating": {"list": [{"type": "query"}]}}`, "templating.list[0].name: a variable needs a name"},
		{`{"templating": {"list": [{"name": "a b"}]}}`, `templating.list[0].name: variable name "a b"`},
		{`{"templating": {"list": [{"name": "a", "type": "magic"}]}}`, `templating.list[0].type: unknown variable type "magic"`},
		{`{"templating": {"list": [{"name": "a"}, {"name": "a"}]}}`, `templating.list[1].name: duplicate variable "a"`},
		{`{"title": ["x"]}`, "title: want a string, got array"},
		{`{"panels": [{"gridPos": {"x": -1, "y": 0, "w": 1, "h": 1}}]}`, "panels[0].gridPos: negative"},
		{`{"panels": [{"panels": [{"panels": [{"panels": [{"panels": [{"panels": [{"panels": [{"panels": [{"panels": [{"panels": [{}]}]}]}]}]}]}]}]}]}]}`, "nested deeper"},
	} {
		t.Run(c.in, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
			var pe *Error
			require.ErrorAs(t, err, &pe)
		})
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../test/testdata/dashboards/*.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"rows": [{"panels": [{"span": 30}]}], "templating": {"list": [{"name": "x", "current": {"value": ["a", 1]}}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			require.Nil(t, d)
			require.True(t, strings.HasPrefix(err.Error(), "dashboard: "))
			return
		}
		vars := map[string]Value{}
		for _, v := range d.Variables {
			vars[v.Name] = Value{Values: v.Current.Value, Multi: v.Multi}
		}
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				_ = Interpolate(tg.Expr, vars, Builtins{Interval: time.Second, Range: time.Hour})
			}
		}
	})
}
