package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// The expectations of TestUIScreenshots come from Grafana's documentation,
// not from Orrery's code:
//
//   - Heatmap, "Calculate from data" off: the data is already a heatmap,
//     one y bucket per series; the y axis is in the panel's unit; "the color
//     spectrum controls the mapping between value count (in each bucket)
//     and the color assigned to each bucket", the lowest count at one end
//     and the highest at the other; in opacity mode "opaque cells mean the
//     maximum value", and on a linear scale "bucket values are mapped
//     linearly to opacity" (Amazon Managed Grafana, Heatmap panel, Grafana 9:
//     https://docs.aws.amazon.com/grafana/latest/userguide/v9-panels-heatmap.html).
//     "The color on the right most side represents the max frequency. Most
//     color schemes are automatically inverted when using the light theme"
//     (Grafana's heatmap docs, in the commit cited below): in the dark theme,
//     Oranges runs from its dark end, the lowest count, to its lightest
//     orange, the highest.
//   - Prometheus "Format as: Heatmap" "converts cumulative histogram to
//     regular and sorts series by the bucket bound" (Grafana's Prometheus
//     data source docs, quoted in the change at
//     https://forger.sitiv.fr/apitech/grafana/commit/0a68dabb8942c5a0dcc306489891946ebf2a3179
//     and https://dev.nexpie.com/Doratong24/nexpie-grafana-theme/commit/c9cdb4cda016543c6fa9dc55ec4aa5abb6ae73a3).
//   - X buckets are time: "a time range of 1h makes the cells 1-hour wide on
//     the X-axis" (same AMG page); the axis runs over the dashboard's range,
//     so time that has no data is empty.
//   - Table: the cell display modes (TableCellDisplayMode: auto,
//     color-text, color-background, …:
//     https://grafana.com/docs/grafana/v9.0/packages_api/schema/tablecelldisplaymode/);
//     a colored-background cell (here in its "basic", solid mode) takes the
//     colour of the threshold step its value falls in, an auto cell is not
//     coloured; values are shown in
//     the field's unit (https://grafana.com/docs/grafana/v10.1/panels-visualizations/visualizations/table/).
//   - Organize fields "changes the order of columns" (Grafana
//     transformations, types and options:
//     https://grafana.com/docs/grafana/v7.4/panels/transformations/types-options).
//
// Why pixels and not golden images: a stored screenshot differs with every
// font, hinting or Chromium release. These assertions sample the
// screenshot only inside boxes the page reports (the heatmap's plot area,
// a bucket label's row, a table cell), compare colours with a tolerance,
// and take the most frequent colour of a box so that glyphs drawn in it do
// not count. Where a cell must lie is computed here from time and the plot
// area's box, not read from the renderer.
const screenshotsDashboard = `{
  "uid": "shots", "title": "Screenshots", "schemaVersion": 39, "time": {"from": "now-30m", "to": "now"},
  "panels": [
    {"id": 1, "type": "heatmap", "title": "Latency heatmap", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 10}, "interval": "1m",
     "targets": [{"refId": "A", "expr": "sum by (le) (shot_latency_seconds_bucket)", "format": "heatmap", "legendFormat": "{{le}}"}],
     "options": {"calculate": false, "yAxis": {"unit": "s"}, "legend": {"show": false}},
     "fieldConfig": {"defaults": {"unit": "s"}, "overrides": []}},
    {"id": 6, "type": "heatmap", "title": "Latency heatmap, opacity", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 10}, "interval": "1m",
     "targets": [{"refId": "A", "expr": "sum by (le) (shot_latency_seconds_bucket)", "format": "heatmap", "legendFormat": "{{le}}"}],
     "options": {"calculate": false, "yAxis": {"unit": "s"}, "color": {"mode": "opacity", "fill": "blue", "scale": "linear"}, "legend": {"show": false}},
     "fieldConfig": {"defaults": {"unit": "s"}, "overrides": []}},
    {"id": 2, "type": "table", "title": "Disk usage", "gridPos": {"x": 0, "y": 10, "w": 24, "h": 6},
     "targets": [{"refId": "A", "expr": "sum by (device, mount) (shot_disk_used_ratio)", "format": "table", "instant": true}],
     "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": true},
       "indexByName": {"mount": 0, "Value": 1, "device": 2}, "renameByName": {"Value": "Used"}}}],
     "fieldConfig": {"defaults": {"unit": "percentunit",
       "thresholds": {"mode": "absolute", "steps": [{"color": "#56a64b", "value": null}, {"color": "#e02f44", "value": 0.9}]}},
       "overrides": [{"matcher": {"id": "byName", "options": "Used"},
         "properties": [{"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}}]}]}},
    {"id": 3, "type": "timeseries", "title": "Long names, list", "gridPos": {"x": 0, "y": 16, "w": 6, "h": 8},
     "targets": [{"refId": "A", "expr": "sum by (le) (shot_latency_seconds_bucket{le=\"0.01\"})", "legendFormat": "` + shotLongName + `"}],
     "options": {"legend": {"showLegend": true, "displayMode": "list", "placement": "bottom", "calcs": []}}},
    {"id": 4, "type": "timeseries", "title": "Long names, table", "gridPos": {"x": 6, "y": 16, "w": 6, "h": 8},
     "targets": [{"refId": "A", "expr": "sum by (le) (shot_latency_seconds_bucket{le=\"0.01\"})", "legendFormat": "` + shotLongName + `"}],
     "options": {"legend": {"showLegend": true, "displayMode": "table", "placement": "bottom", "calcs": ["max"]}}},
    {"id": 5, "type": "orrery-no-such-panel", "title": "Unknown type", "gridPos": {"x": 12, "y": 16, "w": 6, "h": 8},
     "targets": [{"refId": "A", "expr": "shot_disk_used_ratio"}]},
    {"id": 7, "type": "heatmap", "title": "Latency heatmap, time series", "gridPos": {"x": 18, "y": 16, "w": 6, "h": 8}, "interval": "1m",
     "targets": [{"refId": "A", "expr": "sum by (le) (shot_latency_seconds_bucket)", "legendFormat": "{{le}}"}],
     "options": {"calculate": false, "yAxis": {"unit": "s", "reverse": true}, "legend": {"show": false}},
     "fieldConfig": {"defaults": {"unit": "s"}, "overrides": []}}
  ]
}`

// shotLongName is a legend name longer than any legend's width: le
// 0.01 and about 140 characters.
const shotLongName = "a series whose legend name is far longer than the panel is wide, as the names of Kubernetes pods and Envoy clusters often are, le={{le}}, the end"

// The heatmap's per-bucket counts (not cumulative), for le 5 ms, 10 ms,
// 25 ms, 50 ms and +Inf; the spike sample has the panel's highest count.
var (
	shotLes    = []string{"0.005", "0.01", "0.025", "0.05", "+Inf"}
	shotCounts = []float64{2, 10, 5, 1, 0}
	shotSpike  = []float64{2, 10, 5, 30, 0}
)

// TestUIScreenshots checks screenshots of a heatmap and a table panel,
// drawn by the real binary's UI in headless Chromium from samples written
// at known times, against what Grafana's documentation says they show.
func TestUIScreenshots(t *testing.T) {
	t.Setenv("ORRERY_UI_ADMIN_PASSWORD", uiAdminPassword)
	o := apptest.StartOrrery(t, t.TempDir())
	base := "http://" + o.Addr
	created, err := ampClient(o).CreateWorkspace(context.Background(), &amp.CreateWorkspaceInput{Alias: aws.String("shots")})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)

	// The range is the 30 minutes up to end; samples cover its last 10
	// minutes only, every 15 seconds, with a spike at end-5m.
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	from := end.Add(-30 * time.Minute)
	first, spike := end.Add(-10*time.Minute), end.Add(-5*time.Minute)
	var series []prompb.TimeSeries
	for j, le := range shotLes {
		s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "shot_latency_seconds_bucket"}, {Name: "le", Value: le}}}
		for at := first; !at.After(end); at = at.Add(15 * time.Second) {
			counts := shotCounts
			if at.Equal(spike) {
				counts = shotSpike
			}
			cum := 0.0
			for k := 0; k <= j; k++ {
				cum += counts[k]
			}
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: at.UnixMilli(), Value: cum})
		}
		series = append(series, s)
	}
	for _, d := range []struct {
		device, mount string
		used          float64
	}{{"sda1", "/", 0.5}, {"sda2", "/boot", 0.95}} {
		s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "shot_disk_used_ratio"}, {Name: "device", Value: d.device}, {Name: "mount", Value: d.mount}}}
		for at := first; !at.After(end); at = at.Add(15 * time.Second) {
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: at.UnixMilli(), Value: d.used})
		}
		series = append(series, s)
	}
	code, body := apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: series})
	require.Equal(t, http.StatusNoContent, code, body)

	c, csrf, _ := sessionClient(t, base, "admin", uiAdminPassword)
	require.Equal(t, http.StatusOK, sessionDo(t, c, csrf, "POST", base+"/ui/api/workspaces/"+ws+"/dashboards", screenshotsDashboard))
	dir := artifactsDir(t)
	bctx := browser(t)
	// Tall enough for every panel: a box out of the viewport is not in its
	// screenshot.
	require.NoError(t, chromedp.Do(bctx, chromedp.EmulateViewport(1600, 1400)))
	uiLogin(t, bctx, base, "admin", uiAdminPassword)
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(fmt.Sprintf("%s/ui/#/d/shots?ws=%s&refresh=&from=%d&to=%d", base, ws, from.UnixMilli(), end.UnixMilli())), chromedp.Reload()))
	panels := checkPanelsMatchAPI(t, o, ws, waitPanels(t, bctx))
	hmPanel := panels["Latency heatmap"]
	require.Len(t, hmPanel.Queries, 1)
	require.Equal(t, 60.0, hmPanel.Queries[0].Step, "the panel's interval of 1m is the step")
	require.Equal(t, float64(from.Unix()), hmPanel.Queries[0].Start)
	require.Equal(t, float64(end.Unix()), hmPanel.Queries[0].End)

	// What the page shows where: boxes in CSS pixels of the viewport.
	type box struct{ Left, Top, Width, Height float64 }
	var g struct {
		DPR      float64
		Heatmaps map[string]struct {
			Plot    box
			PanelBg string
			Buckets []struct {
				Text string
				Box  box
			}
		}
		Headers []struct {
			Text string
			Box  box
		}
		Cells [][]struct {
			Text string
			Box  box
		}
		TableBg string
		Legends []struct {
			Panel, Title, Text string
			Scroll, Client     float64
			Box, PanelBox      box
		}
		Notice struct {
			Text string
			Box  box
		}
	}
	require.NoError(t, json.Unmarshal([]byte(eval[string](t, bctx, `(() => {
		const rect = e => { const r = e.getBoundingClientRect(); return {left: r.left, top: r.top, width: r.width, height: r.height}; };
		const bg = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; if (c && c !== "rgba(0, 0, 0, 0)" && c !== "transparent") return c; } return ""; };
		const tb = document.querySelector('[data-title="Disk usage"]');
		const heatmap = title => { const svg = document.querySelector('[data-title="' + title + '"] svg.heatmap');
			return {plot: rect(svg.querySelector(".plot-area")), panelBg: bg(svg),
				buckets: [...svg.querySelectorAll("text.bucket")].map(e => ({text: e.textContent, box: rect(e)}))}; };
		return JSON.stringify({
			dpr: window.devicePixelRatio,
			heatmaps: Object.fromEntries(["Latency heatmap", "Latency heatmap, opacity", "Latency heatmap, time series"].map(t => [t, heatmap(t)])),
			headers: [...tb.querySelectorAll("table.data thead th")].map(e => ({text: e.textContent, box: rect(e)})),
			cells: [...tb.querySelectorAll("table.data tbody tr")].map(tr => [...tr.children].map(e => ({text: e.textContent, box: rect(e)}))),
			tableBg: bg(tb.querySelector("table.data")),
			legends: ["Long names, list", "Long names, table"].map(title => {
				const p = document.querySelector('[data-title="' + title + '"]'), n = p.querySelector(".legend .legend-name");
				return {panel: title, title: n.closest("[title]").getAttribute("title"), text: n.textContent, scroll: n.scrollWidth, client: n.clientWidth,
					box: rect(n), panelBox: rect(p)}; }),
			notice: (e => ({text: e.textContent, box: rect(e)}))(document.querySelector('[data-title="Unknown type"] .panel-unsupported')),
		}); })()`)), &g))
	img := captureViewport(t, bctx, dir, "screenshots-heatmap-table")
	inView := func(what string, b box) {
		r := img.Bounds()
		require.True(t, b.Left >= 0 && b.Top >= 0 && (b.Left+b.Width)*g.DPR <= float64(r.Dx()) && (b.Top+b.Height)*g.DPR <= float64(r.Dy()),
			"%s %+v is in the %v screenshot", what, b, r.Size())
	}
	for title, hm := range g.Heatmaps {
		inView(title, hm.Plot)
	}
	for _, row := range g.Cells {
		for _, c := range row {
			inView("table cell", c.Box)
		}
	}
	inView("notice", g.Notice.Box)
	// at reads the pixel at CSS coordinates.
	at := func(x, y float64) color.RGBA {
		return rgbaOf(img.At(int(math.Floor(x*g.DPR)), int(math.Floor(y*g.DPR))))
	}
	// mode is the most frequent colour in a box inset by a quarter of its
	// size on each side: the cell's fill, not the glyphs drawn on it.
	mode := func(b box) color.RGBA {
		n := map[color.RGBA]int{}
		for y := b.Top + b.Height/4; y < b.Top+3*b.Height/4; y++ {
			for x := b.Left + b.Width/4; x < b.Left+3*b.Width/4; x++ {
				n[at(x, y)]++
			}
		}
		var best color.RGBA
		for c, k := range n {
			if k > n[best] {
				best = c
			}
		}
		return best
	}

	// Grafana's default colours (scheme Oranges), opacity mode with a blue
	// fill on a linear scale, and a query not formatted as a heatmap.
	for _, title := range []string{"Latency heatmap", "Latency heatmap, opacity", "Latency heatmap, time series"} {
		hm := g.Heatmaps[title]
		t.Run(title, func(t *testing.T) {
			// The y axis: one bucket per le, bottom up ("Reverse: the axis
			// appears in reverse order", set on the time series panel), in
			// the panel's unit. Then hm.Buckets is in le order.
			sort.Slice(hm.Buckets, func(i, j int) bool { return hm.Buckets[i].Box.Top > hm.Buckets[j].Box.Top })
			var labels []string
			for _, b := range hm.Buckets {
				labels = append(labels, b.Text)
			}
			want := []string{"5 ms", "10 ms", "25 ms", "50 ms", "+Inf"}
			if title == "Latency heatmap, time series" {
				slices.Reverse(want)
			}
			require.Equal(t, want, labels)
			if title == "Latency heatmap, time series" {
				slices.Reverse(hm.Buckets)
			}
			bg := parseCSSColor(t, hm.PanelBg)
			require.Less(t, dist(at(hm.Plot.Left+hm.Plot.Width/10, hm.Plot.Top+hm.Plot.Height/2), bg), 6.0, "the panel's background shows in the plot area")
			span := float64(end.Sub(from).Milliseconds())
			x := func(ts time.Time) float64 {
				return hm.Plot.Left + float64(ts.Sub(from).Milliseconds())/span*hm.Plot.Width
			}
			pitch := math.Abs(hm.Buckets[0].Box.Top - hm.Buckets[1].Box.Top)
			require.Greater(t, pitch, 20.0, "rows tall enough to sample")
			rowY := func(r int) float64 { return hm.Buckets[r].Box.Top + hm.Buckets[r].Box.Height/2 }
			// cell is the fill of the cell of bucket r for the step ending at
			// ts: a Prometheus sample at ts covers (ts-step, ts].
			cell := func(r int, ts time.Time) color.RGBA {
				return mode(box{Left: x(ts.Add(-time.Minute)), Top: rowY(r) - pitch/6, Width: x(ts) - x(ts.Add(-time.Minute)), Height: pitch / 3})
			}

			heat := func(r int, ts time.Time) float64 { return dist(cell(r, ts), bg) }

			// The left 19 of 30 minutes have no data: background in every row.
			dataStart := x(first.Add(-time.Minute))
			for r := range hm.Buckets {
				for px := hm.Plot.Left + 1; px < dataStart-1.5; px++ {
					require.Less(t, dist(at(px, rowY(r)), bg), 6.0, "row %s at x=%.0f (data from x=%.1f)", hm.Buckets[r].Text, px, dataStart)
				}
			}
			// In the 10 ms row, filled every minute, the cells start and end
			// where time says, to a pixel and a half.
			var filled []float64
			for px := hm.Plot.Left; px < hm.Plot.Left+hm.Plot.Width; px++ {
				if dist(at(px, rowY(1)), bg) > 20 {
					filled = append(filled, px)
				}
			}
			require.NotEmpty(t, filled)
			require.InDelta(t, dataStart, filled[0], 1.5, "first painted column")
			require.InDelta(t, x(end), filled[len(filled)-1]+1, 1.5, "last painted column")
			require.InDelta(t, x(end)-dataStart, float64(len(filled)), 11*1.5, "painted all the way (but for the gaps between cells)")

			if title == "Latency heatmap, time series" {
				// Not formatted as a heatmap: the buckets stay cumulative, as the
				// query returns them, so the +Inf row is painted and every row is
				// at least as hot as the one below it.
				for ts := first; !ts.After(end); ts = ts.Add(time.Minute) {
					require.Greater(t, heat(4, ts), 20.0, "+Inf at %s is painted", ts.Format(time.TimeOnly))
					for r := 1; r < 4; r++ {
						require.Greater(t, heat(r, ts), heat(r-1, ts)+3, "%s above %s at %s", shotLes[r], shotLes[r-1], ts.Format(time.TimeOnly))
					}
				}
				return
			}
			// Colour by count: in every minute, the hotter cell has the higher
			// count; the spike's 50 ms cell is the hottest of all, and only its
			// minute is hot in that row.
			hottest, hottestAt := 0.0, ""
			for ts := first; !ts.After(end); ts = ts.Add(time.Minute) {
				counts := shotCounts
				if ts.Equal(spike) {
					counts = shotSpike
				}
				for r := 0; r < 4; r++ {
					h := heat(r, ts)
					if title == "Latency heatmap" {
						// A scheme's darkest colour is no background; in opacity
						// mode a count of 1 in 30 is barely there.
						require.Greater(t, h, 20.0, "bucket %s at %s is painted", shotLes[r], ts.Format(time.TimeOnly))
					}
					if h > hottest {
						hottest, hottestAt = h, fmt.Sprintf("%s@%s", shotLes[r], ts.Format(time.TimeOnly))
					}
					for q := 0; q < 4; q++ {
						if counts[q] < counts[r] {
							require.Greater(t, h, heat(q, ts)+3, "%s (%v) is hotter than %s (%v) at %s", shotLes[r], counts[r], shotLes[q], counts[q], ts.Format(time.TimeOnly))
						}
					}
				}
			}
			require.Equal(t, "0.05@"+spike.Format(time.TimeOnly), hottestAt)
			require.Greater(t, heat(3, spike), heat(3, spike.Add(-time.Minute))+50)
			require.Greater(t, heat(3, spike), heat(3, spike.Add(time.Minute))+50)
			if title == "Latency heatmap" {
				// Oranges, whose right end, the lightest orange, is the highest
				// count in a dark theme.
				require.Less(t, dist(cell(3, spike), color.RGBA{0xff, 0xf5, 0xeb, 0xff}), 8.0, "the hottest cell: %v", cell(3, spike))
				return
			}
			// Opacity on a linear scale from the lowest count (0, the +Inf
			// bucket) to the highest: a cell is the fill at count/30 over the
			// background, the hottest one opaque blue.
			blue := color.RGBA{0x32, 0x74, 0xd9, 0xff}
			over := func(a float64) color.RGBA {
				mix := func(f, b uint8) uint8 { return uint8(math.Round(float64(b) + (float64(f)-float64(b))*a)) }
				return color.RGBA{mix(blue.R, bg.R), mix(blue.G, bg.G), mix(blue.B, bg.B), 0xff}
			}
			for ts := first; !ts.After(end); ts = ts.Add(time.Minute) {
				counts := shotCounts
				if ts.Equal(spike) {
					counts = shotSpike
				}
				for r := 0; r < 4; r++ {
					want := over(counts[r] / 30)
					require.Less(t, dist(cell(r, ts), want), 8.0, "bucket %s at %s: %v, want %v", shotLes[r], ts.Format(time.TimeOnly), cell(r, ts), want)
				}
			}
		})
	}

	t.Run("table", func(t *testing.T) {
		// Columns in the organize order, left to right, Value renamed.
		sort.Slice(g.Headers, func(i, j int) bool { return g.Headers[i].Box.Left < g.Headers[j].Box.Left })
		var cols []string
		for _, h := range g.Headers {
			cols = append(cols, h.Text)
		}
		require.Equal(t, []string{"mount", "Used", "device"}, cols)
		require.Len(t, g.Cells, 2)
		byMount := map[string]int{}
		for i, row := range g.Cells {
			require.Len(t, row, 3)
			byMount[row[0].Text] = i
		}
		root, boot := g.Cells[byMount["/"]], g.Cells[byMount["/boot"]]
		// The unit: percentunit.
		require.Equal(t, "50%", root[1].Text)
		require.Equal(t, "95%", boot[1].Text)
		green, red := color.RGBA{0x56, 0xa6, 0x4b, 0xff}, color.RGBA{0xe0, 0x2f, 0x44, 0xff}
		// 95% is over the 0.9 step: red; 50% is under it: the base step's
		// green, not red.
		require.Less(t, dist(mode(boot[1].Box), red), 8.0, "the 95%% cell is red: %v", mode(boot[1].Box))
		require.Less(t, dist(mode(root[1].Box), green), 8.0, "the 50%% cell is green: %v", mode(root[1].Box))
		require.Greater(t, dist(mode(root[1].Box), red), 100.0)
		// The other columns' cells (auto) are not coloured.
		tbg := parseCSSColor(t, g.TableBg)
		for _, row := range [][]struct {
			Text string
			Box  box
		}{root, boot} {
			for _, k := range []int{0, 2} {
				require.Less(t, dist(mode(row[k].Box), tbg), 6.0, "cell %q is not coloured", row[k].Text)
			}
		}
	})

	t.Run("long legend names are cut, with the whole name in a tooltip", func(t *testing.T) {
		long := strings.ReplaceAll(shotLongName, "{{le}}", "0.01")
		require.Len(t, g.Legends, 2)
		for _, l := range g.Legends {
			require.Equal(t, long, l.Text, l.Panel)
			require.Equal(t, long, l.Title, "%s: the tooltip has the whole name", l.Panel)
			require.Greater(t, l.Scroll, l.Client, "%s: the name is cut", l.Panel)
			require.LessOrEqual(t, l.Box.Left+l.Box.Width, l.PanelBox.Left+l.PanelBox.Width, "%s: the name ends inside its panel", l.Panel)
		}
	})

	t.Run("a panel type Orrery does not draw shows a notice naming it", func(t *testing.T) {
		require.Contains(t, g.Notice.Text, `Panel type "orrery-no-such-panel" is not supported`)
		require.Greater(t, g.Notice.Box.Width*g.Notice.Box.Height, 0.0)
		// Visible: its orange border and text are in the screenshot.
		orange, n := color.RGBA{0xff, 0x98, 0x30, 0xff}, 0
		for y := g.Notice.Box.Top; y < g.Notice.Box.Top+g.Notice.Box.Height; y++ {
			for x := g.Notice.Box.Left; x < g.Notice.Box.Left+g.Notice.Box.Width; x++ {
				if dist(at(x, y), orange) < 40 {
					n++
				}
			}
		}
		require.Greater(t, float64(n), g.Notice.Box.Width, "orange pixels in the notice's box")
	})
}

// captureViewport takes a PNG of the viewport, keeps it in dir and
// decodes it. The viewport, not the full page: the boxes the page reports
// are in viewport coordinates, and a full-page capture may resize it.
func captureViewport(t *testing.T, ctx context.Context, dir, name string) image.Image {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, chromedp.Sleep(300*time.Millisecond)))
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644))
	img, err := png.Decode(bytes.NewReader(buf))
	require.NoError(t, err)
	return img
}

func rgbaOf(c color.Color) color.RGBA {
	r, g, b, a := c.RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
}

// dist is the Euclidean distance of two colours in RGB.
func dist(a, b color.RGBA) float64 {
	dr, dg, db := float64(a.R)-float64(b.R), float64(a.G)-float64(b.G), float64(a.B)-float64(b.B)
	return math.Sqrt(dr*dr + dg*dg + db*db)
}

// parseCSSColor reads a computed style colour, "rgb(r, g, b)".
func parseCSSColor(t *testing.T, s string) color.RGBA {
	t.Helper()
	var r, g, b uint8
	_, err := fmt.Sscanf(s, "rgb(%d, %d, %d)", &r, &g, &b)
	require.NoError(t, err, "colour %q", s)
	return color.RGBA{r, g, b, 0xff}
}
