package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Dashboard is the part of Grafana's dashboard JSON model Orrery renders.
// Fields it does not know are ignored; the original JSON is kept by callers
// that store dashboards.
type Dashboard struct {
	UID           string
	Title         string
	Tags          []string
	SchemaVersion int
	From, To      string // The default time range, e.g. "now-1h" and "now".
	Refresh       string // The default auto-refresh interval, "" for off.
	// Panels holds the top-level panels in order. Rows are panels of type
	// "row"; a collapsed row carries its panels in its own Panels. Legacy
	// (schema < 16) dashboards' rows are converted to row panels.
	Panels    []Panel
	Variables []Variable
}

// GridPos places a panel on Grafana's 24-column grid.
type GridPos struct{ X, Y, W, H int }

// Panel is a dashboard panel.
type Panel struct {
	ID          int
	Type        string
	Title       string
	Description string
	GridPos     GridPos
	Targets     []Target
	// Interval is the panel's minimum interval ("" for the default).
	Interval string
	// MaxDataPoints bounds the points of range queries (0 for the width).
	MaxDataPoints int
	Defaults      FieldDefaults
	Legend        Legend
	// Repeat names the variable the panel is repeated for.
	Repeat          string
	RepeatDirection string
	Collapsed       bool
	Panels          []Panel // A collapsed row's panels.
	Content         string  // A text panel's content.
	Mode            string  // A text panel's mode: markdown, html.
}

// Target is a panel query.
type Target struct {
	RefID        string
	Expr         string
	LegendFormat string
	Interval     string
	Instant      bool
	Format       string // time_series, table or heatmap.
	Hide         bool
}

// FieldDefaults is fieldConfig.defaults (or a legacy graph's y axis).
type FieldDefaults struct {
	Unit       string
	Min, Max   *float64
	Decimals   *int
	Thresholds Thresholds
	// Stacking is custom.stacking.mode: "", "none", "normal" or "percent".
	Stacking string
}

// Thresholds are colored steps: a step's color applies from its value up.
type Thresholds struct {
	Mode  string // absolute or percentage.
	Steps []Step
}

// Step is one threshold step; the first has no value (minus infinity).
type Step struct {
	Value *float64
	Color string
}

// Legend is options.legend.
type Legend struct {
	Show      bool
	Placement string
	Mode      string
	Calcs     []string
}

// Variable is a templating variable.
type Variable struct {
	Name       string
	Label      string
	Type       string // query, custom, interval, datasource, constant, textbox, adhoc…
	Query      string
	Regex      string
	Multi      bool
	IncludeAll bool
	AllValue   string
	Hide       int
	Current    Current
	Options    []Option
}

// Current is a variable's selected value(s).
type Current struct {
	Text  []string
	Value []string
}

// Option is a variable option.
type Option struct {
	Text, Value string
	Selected    bool
}

// Error is a parse error: Path locates the offending value, like
// `panels[3].gridPos.w`.
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "dashboard: " + e.Msg
	}
	return "dashboard: " + e.Path + ": " + e.Msg
}

// maxDepth bounds row nesting so hostile input cannot exhaust the stack.
const maxDepth = 8

// Parse reads a dashboard. It accepts the dashboard itself or Grafana's API
// envelope {"dashboard": {...}}. Unknown fields are ignored; a known field of
// the wrong type is an *Error naming it.
func Parse(data []byte) (*Dashboard, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(data, se.Offset)
			return nil, &Error{Msg: fmt.Sprintf("invalid JSON at line %d, column %d: %v", line, col, err)}
		}
		return nil, &Error{Msg: fmt.Sprintf("invalid JSON: %v", err)}
	}
	if dec.More() {
		return nil, &Error{Msg: "trailing data after the dashboard object"}
	}
	root := node{v: v}
	if _, ok := v.(map[string]any); !ok {
		return nil, &Error{Msg: "want a JSON object, got " + kind(v)}
	}
	if inner := root.get("dashboard"); inner.v != nil {
		if _, ok := inner.v.(map[string]any); ok {
			root = node{v: inner.v}
		}
	}
	p := &parser{}
	d := p.dashboard(root)
	if p.err != nil {
		return nil, p.err
	}
	return d, nil
}

func position(data []byte, off int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < off-1 && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// node is a decoded JSON value and its path.
type node struct {
	path string
	v    any
}

func (n node) get(key string) node {
	p := key
	if n.path != "" {
		p = n.path + "." + key
	}
	m, _ := n.v.(map[string]any)
	return node{path: p, v: m[key]}
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// parser records the first error; after it, its methods return zero values.
type parser struct{ err *Error }

func (p *parser) fail(n node, format string, args ...any) {
	if p.err == nil {
		p.err = &Error{Path: n.path, Msg: fmt.Sprintf(format, args...)}
	}
}

// str reads a string; numbers and booleans are accepted as their text, as
// Grafana's loose exports contain them.
func (p *parser) str(n node) string {
	switch v := n.v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	p.fail(n, "want a string, got %s", kind(n.v))
	return ""
}

func (p *parser) num(n node) *float64 {
	switch v := n.v.(type) {
	case nil:
		return nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			p.fail(n, "invalid number %s", v)
			return nil
		}
		return &f
	case string:
		if v == "" {
			return nil
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			p.fail(n, "want a number, got string %q", v)
			return nil
		}
		return &f
	}
	p.fail(n, "want a number, got %s", kind(n.v))
	return nil
}

func (p *parser) integer(n node) int {
	f := p.num(n)
	if f == nil {
		return 0
	}
	if *f != float64(int(*f)) || *f > 1e9 || *f < -1e9 {
		p.fail(n, "want an integer, got %v", *f)
		return 0
	}
	return int(*f)
}

func (p *parser) boolean(n node) bool {
	switch v := n.v.(type) {
	case nil:
		return false
	case bool:
		return v
	}
	p.fail(n, "want a boolean, got %s", kind(n.v))
	return false
}

func (p *parser) list(n node) []node {
	switch v := n.v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]node, len(v))
		for i, e := range v {
			out[i] = node{path: fmt.Sprintf("%s[%d]", n.path, i), v: e}
		}
		return out
	}
	p.fail(n, "want an array, got %s", kind(n.v))
	return nil
}

func (p *parser) object(n node) bool {
	switch n.v.(type) {
	case nil:
		return false
	case map[string]any:
		return true
	}
	p.fail(n, "want an object, got %s", kind(n.v))
	return false
}

// strings reads a string or an array of strings.
func (p *parser) strings(n node) []string {
	if _, ok := n.v.([]any); !ok {
		if n.v == nil {
			return nil
		}
		return []string{p.str(n)}
	}
	var out []string
	for _, e := range p.list(n) {
		out = append(out, p.str(e))
	}
	return out
}

func (p *parser) dashboard(n node) *Dashboard {
	d := &Dashboard{
		UID:           p.str(n.get("uid")),
		Title:         p.str(n.get("title")),
		Tags:          p.strings(n.get("tags")),
		SchemaVersion: p.integer(n.get("schemaVersion")),
	}
	if p.object(n.get("time")) {
		d.From, d.To = p.str(n.get("time").get("from")), p.str(n.get("time").get("to"))
	}
	if d.From == "" {
		d.From = "now-6h"
	}
	if d.To == "" {
		d.To = "now"
	}
	if r := n.get("refresh"); r.v != false {
		d.Refresh = p.str(r)
	}
	for _, pn := range p.list(n.get("panels")) {
		d.Panels = append(d.Panels, p.panel(pn, 0))
	}
	// Legacy rows (schema < 16): each becomes a row panel followed by its
	// panels, laid out left to right.
	y := 0
	for _, rn := range p.list(n.get("rows")) {
		if !p.object(rn) {
			continue
		}
		row := Panel{Type: "row", Title: p.str(rn.get("title")), Collapsed: p.boolean(rn.get("collapse")), GridPos: GridPos{Y: y, W: 24, H: 1}}
		y++
		h := 8
		if hv := p.str(rn.get("height")); hv != "" {
			if px, err := strconv.Atoi(strings.TrimSuffix(hv, "px")); err == nil && px > 0 {
				h = max(1, px/30)
			}
		}
		x := 0
		var inner []Panel
		for _, pn := range p.list(rn.get("panels")) {
			pan := p.panel(pn, 1)
			span := 4
			if s := p.num(pn.get("span")); s != nil && *s > 0 {
				span = int(*s)
			}
			w := min(24, max(1, span*2))
			if x+w > 24 {
				x, y = 0, y+h
			}
			pan.GridPos = GridPos{X: x, Y: y, W: w, H: h}
			x += w
			inner = append(inner, pan)
		}
		y += h
		if row.Collapsed {
			row.Panels = inner
			d.Panels = append(d.Panels, row)
		} else {
			d.Panels = append(d.Panels, row)
			d.Panels = append(d.Panels, inner...)
		}
	}
	templating := n.get("templating")
	if p.object(templating) {
		seen := map[string]bool{}
		for _, vn := range p.list(templating.get("list")) {
			v := p.variable(vn)
			if p.err != nil {
				break
			}
			if seen[v.Name] {
				p.fail(vn.get("name"), "duplicate variable %q", v.Name)
				break
			}
			seen[v.Name] = true
			d.Variables = append(d.Variables, v)
		}
	}
	return d
}

func (p *parser) panel(n node, depth int) Panel {
	if !p.object(n) {
		if n.v == nil {
			p.fail(n, "want a panel object, got null")
		}
		return Panel{}
	}
	if depth > maxDepth {
		p.fail(n, "rows nested deeper than %d", maxDepth)
		return Panel{}
	}
	pan := Panel{
		ID:              p.integer(n.get("id")),
		Type:            p.str(n.get("type")),
		Title:           p.str(n.get("title")),
		Description:     p.str(n.get("description")),
		Interval:        p.str(n.get("interval")),
		MaxDataPoints:   p.integer(n.get("maxDataPoints")),
		Repeat:          p.str(n.get("repeat")),
		RepeatDirection: p.str(n.get("repeatDirection")),
		Collapsed:       p.boolean(n.get("collapsed")),
	}
	if pan.Type == "" {
		pan.Type = "graph"
	}
	if gp := n.get("gridPos"); p.object(gp) {
		pan.GridPos = GridPos{X: p.integer(gp.get("x")), Y: p.integer(gp.get("y")), W: p.integer(gp.get("w")), H: p.integer(gp.get("h"))}
		if pan.GridPos.W < 0 || pan.GridPos.H < 0 || pan.GridPos.X < 0 || pan.GridPos.Y < 0 {
			p.fail(gp, "negative size or position %+v", pan.GridPos)
		}
	}
	for _, tn := range p.list(n.get("targets")) {
		if !p.object(tn) {
			continue
		}
		pan.Targets = append(pan.Targets, Target{
			RefID:        p.str(tn.get("refId")),
			Expr:         p.str(tn.get("expr")),
			LegendFormat: p.str(tn.get("legendFormat")),
			Interval:     p.str(tn.get("interval")),
			Instant:      p.boolean(tn.get("instant")),
			Format:       p.str(tn.get("format")),
			Hide:         p.boolean(tn.get("hide")),
		})
	}
	opts := n.get("options")
	if p.object(opts) {
		pan.Content, pan.Mode = p.str(opts.get("content")), p.str(opts.get("mode"))
		if lg := opts.get("legend"); p.object(lg) {
			pan.Legend = Legend{Show: lg.get("showLegend").v != false, Placement: p.str(lg.get("placement")),
				Mode: p.str(lg.get("displayMode")), Calcs: p.strings(lg.get("calcs"))}
		} else {
			pan.Legend.Show = true
		}
	} else {
		pan.Legend.Show = true
	}
	if pan.Content == "" {
		pan.Content = p.str(n.get("content")) // Text panels before schema 27.
	}
	if pan.Mode == "" {
		pan.Mode = p.str(n.get("mode"))
	}
	if lg := n.get("legend"); lg.v != nil && p.object(lg) { // Legacy graph.
		pan.Legend.Show = lg.get("show").v != false
	}
	fc := n.get("fieldConfig")
	if p.object(fc) {
		def := fc.get("defaults")
		if p.object(def) {
			pan.Defaults = FieldDefaults{Unit: p.str(def.get("unit")), Min: p.num(def.get("min")), Max: p.num(def.get("max"))}
			if dn := p.num(def.get("decimals")); dn != nil {
				d := int(*dn)
				pan.Defaults.Decimals = &d
			}
			if th := def.get("thresholds"); p.object(th) {
				pan.Defaults.Thresholds.Mode = p.str(th.get("mode"))
				for _, sn := range p.list(th.get("steps")) {
					if p.object(sn) {
						pan.Defaults.Thresholds.Steps = append(pan.Defaults.Thresholds.Steps, Step{Value: p.num(sn.get("value")), Color: p.str(sn.get("color"))})
					}
				}
			}
			if c := def.get("custom"); p.object(c) {
				if st := c.get("stacking"); p.object(st) {
					pan.Defaults.Stacking = p.str(st.get("mode"))
				}
			}
		}
	}
	// Legacy graph panels: stack, y axis format and bounds.
	if p.boolean(n.get("stack")) && pan.Defaults.Stacking == "" {
		pan.Defaults.Stacking = "normal"
	}
	if ys := p.list(n.get("yaxes")); len(ys) > 0 && p.object(ys[0]) && pan.Defaults.Unit == "" {
		pan.Defaults.Unit = p.str(ys[0].get("format"))
		pan.Defaults.Min, pan.Defaults.Max = p.num(ys[0].get("min")), p.num(ys[0].get("max"))
		if dn := p.num(ys[0].get("decimals")); dn != nil {
			d := int(*dn)
			pan.Defaults.Decimals = &d
		}
	}
	if pan.Defaults.Unit == "" {
		pan.Defaults.Unit = p.str(n.get("format")) // Legacy singlestat.
	}
	for _, cn := range p.list(n.get("panels")) {
		pan.Panels = append(pan.Panels, p.panel(cn, depth+1))
	}
	return pan
}

// knownVariableType reports whether Parse accepts a variable type.
func knownVariableType(t string) bool {
	switch t {
	case "query", "custom", "interval", "datasource", "constant", "textbox", "adhoc", "groupby", "system":
		return true
	}
	return false
}

func (p *parser) variable(n node) Variable {
	if !p.object(n) {
		p.fail(n, "want a variable object, got %s", kind(n.v))
		return Variable{}
	}
	v := Variable{
		Name:       p.str(n.get("name")),
		Label:      p.str(n.get("label")),
		Type:       p.str(n.get("type")),
		Regex:      p.str(n.get("regex")),
		Multi:      p.boolean(n.get("multi")),
		IncludeAll: p.boolean(n.get("includeAll")),
		AllValue:   p.str(n.get("allValue")),
		Hide:       p.integer(n.get("hide")),
	}
	if v.Name == "" {
		p.fail(n.get("name"), "a variable needs a name")
		return v
	}
	if !validName(v.Name) {
		p.fail(n.get("name"), "variable name %q: use letters, digits and _", v.Name)
		return v
	}
	if v.Type == "" {
		v.Type = "query"
	}
	if !knownVariableType(v.Type) {
		p.fail(n.get("type"), "unknown variable type %q", v.Type)
		return v
	}
	q := n.get("query")
	if _, ok := q.v.(map[string]any); ok {
		v.Query = p.str(q.get("query")) // Schema 37+: {"query": "...", "refId": ...}.
	} else {
		v.Query = p.str(q)
	}
	if c := n.get("current"); p.object(c) {
		v.Current = Current{Text: p.strings(c.get("text")), Value: p.strings(c.get("value"))}
	}
	for _, on := range p.list(n.get("options")) {
		if p.object(on) {
			v.Options = append(v.Options, Option{Text: p.str(on.get("text")), Value: p.str(on.get("value")), Selected: p.boolean(on.get("selected"))})
		}
	}
	return v
}

func validName(s string) bool {
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// AllPanels returns every panel, rows' nested panels included, depth first.
func (d *Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}
