// Panel renderers drawing SVG. Each takes the panel body element, the
// series ({name, labels, values: [[ms, number|null]]}) and the panel model.
import { format, thresholdColor, cssColor, PALETTE, display, mapValue } from "./units.js";
import { calc, reducer, regexOf } from "./fields.js";
import { fieldName } from "./transform.js";

const NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

export function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function niceTicks(min, max, count) {
  // Values equal but for floating point noise count as equal: a step below
  // their precision would never advance.
  if (max - min <= Math.abs(max) * 1e-9) { const pad = Math.abs(max) * 0.1 || 1; max = max + pad; min = min === 0 ? 0 : min - pad; }
  const span = max - min, raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => span / s <= count) || 10 * mag;
  const lo = Math.floor(min / step) * step, hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let i = 0, v = lo; v <= hi + step / 2 && i < 100; i++, v = lo + i * step) ticks.push(+v.toPrecision(12));
  return { lo, hi, ticks };
}

function timeLabel(ms, span, step) {
  const d = new Date(ms), p = n => String(n).padStart(2, "0");
  if (step >= 86400000) return `${p(d.getMonth() + 1)}/${p(d.getDate())}`;
  if (span > 2 * 86400000) return `${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  const secs = step !== undefined ? step < 60000 : span < 600000;
  return `${p(d.getHours())}:${p(d.getMinutes())}` + (secs ? `:${p(d.getSeconds())}` : "");
}

const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 7 * 86400, 30 * 86400].map(x => x * 1000);

// timeTicks returns tick times at round multiples of a step (whole
// minutes, hours, local midnights) between from and to, at most about
// maxTicks of them, so that no two labels read alike.
export function timeTicks(from, to, maxTicks) {
  const span = to - from;
  const step = TICK_STEPS.find(s => span / s <= Math.max(1, maxTicks)) || TICK_STEPS[TICK_STEPS.length - 1];
  // Multiples of the step in local time: the time zone's offset shifts
  // the grid (an hour's offset of 30 minutes, days at local midnight).
  const off = -new Date(from).getTimezoneOffset() * 60000;
  const ticks = [];
  for (let t = Math.ceil((from + off) / step) * step - off; t <= to && ticks.length < 200; t += step) ticks.push(t);
  return { step, ticks };
}

export function reduceLast(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i][1] !== null && !Number.isNaN(values[i][1])) return values[i][1];
  return null;
}

// stack returns series whose values are cumulative sums, aligned on time.
function stack(series, percent) {
  const totals = new Map();
  if (percent) for (const s of series) for (const [t, v] of s.values) totals.set(t, (totals.get(t) || 0) + (v || 0));
  const acc = new Map();
  return series.map(s => ({ ...s, values: s.values.map(([t, v]) => {
    let x = v === null ? 0 : v;
    if (percent) x = totals.get(t) ? x / totals.get(t) : 0;
    const sum = (acc.get(t) || 0) + x;
    acc.set(t, sum);
    return [t, v === null ? null : sum];
  }) }));
}

// legendOptions reads a panel's legend: options.legend of the new panels
// (displayMode list, table or hidden; placement; calcs; sortBy, sortDesc)
// or the graph panel's legend (alignAsTable, rightSide, current, avg…).
export function legendOptions(panel) {
  const raw = panel.raw || {};
  const o = raw.options && raw.options.legend;
  if (o && typeof o === "object") {
    return { show: o.showLegend !== false && o.displayMode !== "hidden" && (panel.legend || {}).show !== false, mode: o.displayMode || "list",
      placement: o.placement || "bottom", calcs: (o.calcs || []).filter(c => typeof c === "string"), sortBy: o.sortBy || "", sortDesc: !!o.sortDesc };
  }
  const l = raw.legend;
  if (l && typeof l === "object") {
    // Grafana's migration of the graph panel: with values on, the calcs
    // in the order the legend object names them.
    const names = { current: "lastNotNull", avg: "mean", min: "min", max: "max", total: "sum" };
    const calcs = l.values ? Object.keys(l).filter(k => names[k] && l[k] === true).map(k => names[k]) : [];
    return { show: l.show !== false, mode: l.alignAsTable ? "table" : "list", placement: l.rightSide ? "right" : "bottom", calcs,
      sortBy: l.sort ? reducer(names[l.sort] || l.sort)[0] : "", sortDesc: !!l.sortDesc };
  }
  return { show: (panel.legend || {}).show !== false, mode: "list", placement: "bottom", calcs: [], sortBy: "", sortDesc: false };
}

// legendBox draws the legend as a list or a table with one column per
// calc; a table sorts by a clicked column (again: the other way). Long
// names are cut with an ellipsis and shown whole in a tooltip.
function legendBox(series, panel, colors, onSort) {
  const lg = legendOptions(panel);
  if (!lg.show) return { el: null, rows: [] };
  const calcs = lg.calcs.map(c => ({ id: c, name: reducer(c)[0] }));
  let rows = series.map((s, i) => ({ s, color: colors[i], values: calcs.map(c => calc(c.id, s.values)) }))
    .filter(r => !(r.s.field && r.s.field.hideFrom && r.s.field.hideFrom.legend));
  const sortBy = panel.legendSort ? panel.legendSort.by : lg.sortBy, desc = panel.legendSort ? panel.legendSort.desc : lg.sortDesc;
  const ci = calcs.findIndex(c => c.name === sortBy);
  if (sortBy === "Name") rows.sort((a, b) => a.s.name.localeCompare(b.s.name) * (desc ? -1 : 1));
  else if (ci >= 0) rows.sort((a, b) => ((a.values[ci] ?? -Infinity) - (b.values[ci] ?? -Infinity)) * (desc ? -1 : 1));
  const fmt = (r, v) => display(v, r.s.field || panel).text;
  const out = rows.map(r => ({ name: r.s.name, values: Object.fromEntries(calcs.map((c, k) => [c.name, fmt(r, r.values[k])])),
    raw: Object.fromEntries(calcs.map((c, k) => [c.name, r.values[k]])) }));
  if (lg.mode === "table") {
    const head = h("tr", {}, h("th", { class: "legend-sort", "data-sort": "Name", onclick: () => onSort && onSort("Name") }, "Name"),
      calcs.map(c => h("th", { class: "legend-sort" + (c.name === sortBy ? (desc ? " desc" : " asc") : ""), "data-sort": c.name, onclick: () => onSort && onSort(c.name) }, c.name)));
    const body = rows.map(r => h("tr", { class: "legend-item" }, h("td", { class: "legend-name", title: r.s.name }, h("i", { style: `background:${r.color}` }), r.s.name),
      r.values.map(v => h("td", {}, fmt(r, v)))));
    return { el: h("div", { class: "legend legend-table " + lg.placement }, h("table", {}, h("thead", {}, head), h("tbody", {}, body))), rows: out, sort: { by: sortBy, desc, ci, legendSort: panel.legendSort || null } };
  }
  return { el: h("div", { class: "legend " + lg.placement }, rows.map(r =>
    h("span", { class: "legend-item", title: r.s.name },
      h("i", { style: `background:${r.color}` }), h("span", { class: "legend-name" }, r.s.name),
      calcs.map((c, k) => h("b", {}, ` ${c.name}: ${fmt(r, r.values[k])}`))))), rows: out };
}

// axisGroups splits series between a left and a right y axis as Grafana
// does: axisPlacement left or right where set; with auto, the first unit
// goes left and other units right.
function axisGroups(series, panel) {
  let firstUnit = null;
  return series.map(s => {
    const f = s.field || panel;
    const place = f.axisPlacement || "auto";
    if (place === "right" || place === "left") return place;
    if (place === "hidden") return "left";
    if (firstUnit === null) firstUnit = f.unit;
    return f.unit === firstUnit ? "left" : "right";
  });
}

// timeseries draws lines (stacked areas when stacking is normal or
// percent) on a left and, when a field asks for one, a right y axis, with
// threshold lines, time ticks at round times and a legend; dragging
// selects a range handed to onZoom(fromMs, toMs). It returns what it drew
// (axes and legend) for tests.
export function timeseries(el, series, panel, range, onZoom) {
  el.innerHTML = "";
  series = series.filter(s => !(s.field && s.field.hideFrom && s.field.hideFrom.viz))
    .map(s => s.field && s.field.transform === "negative-Y" ? { ...s, values: s.values.map(([t, v]) => [t, v === null ? null : -v]) } : s);
  const colors = series.map((s, i) => s.field && s.field.colorFixed ? cssColor(s.field.colorFixed) : PALETTE[i % PALETTE.length]);
  const lg = legendBox(series, panel, colors, by => {
    const cur = panel.legendSort || { by: legendOptions(panel).sortBy, desc: legendOptions(panel).sortDesc };
    panel.legendSort = { by, desc: cur.by === by ? !cur.desc : true };
    timeseries(el, series, panel, range, onZoom);
  });
  const legendRight = lg.el && lg.el.classList.contains("right");
  const wrap = legendRight ? h("div", { class: "chart-row" }) : el;
  if (legendRight) el.append(wrap);
  const box = h("div", { class: "chart" });
  wrap.append(box);
  if (lg.el) wrap.append(lg.el);
  if (!series.length) box.append(h("div", { class: "nodata overlay" }, "No data"));
  const W = Math.max(box.clientWidth, 200), H = Math.max(box.clientHeight, 80);
  const stacking = panel.stacking === "normal" || panel.stacking === "percent";
  const draw = stacking ? stack(series, panel.stacking === "percent") : series;
  const side = axisGroups(series, panel);
  const hasRight = side.includes("right");
  const T = 6, B = 20;
  const ph = H - T - B;
  const axis = which => {
    const idx = draw.map((_, i) => i).filter(i => side[i] === which);
    const f0 = idx.length ? series[idx[0]].field || panel : panel;
    let lo = Infinity, hi = -Infinity;
    for (const i of idx) for (const [, v] of draw[i].values) if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (stacking || lo > 0 && lo < hi / 3) lo = Math.min(lo, 0);
    const fmin = f0.min ?? panel.min, fmax = f0.max ?? panel.max;
    if (fmin !== null && fmin !== undefined) lo = fmin;
    if (fmax !== null && fmax !== undefined) hi = fmax;
    const yt = niceTicks(lo, hi, Math.max(2, Math.floor(ph / 40)));
    if (fmin === null || fmin === undefined) lo = yt.lo;
    if (fmax === null || fmax === undefined) hi = yt.hi;
    const unit = panel.stacking === "percent" ? "percentunit" : f0.unit || panel.unit;
    const decimals = f0.decimals ?? panel.decimals;
    const labels = yt.ticks.filter(t => t >= lo - 1e-9 && t <= hi + 1e-9).map(t => [t, format(t, unit, decimals)]);
    return { idx, lo, hi, unit, labels, width: Math.max(0, ...labels.map(([, l]) => l.length)) * 6.5 + 8, label: f0.axisLabel || "" };
  };
  const left = axis("left"), right = hasRight ? axis("right") : null;
  const L = left.width, R = right ? right.width : 8, pw = W - L - R;
  const x = t => L + (t - range.from) / (range.to - range.from) * pw;
  const yOf = a => v => T + ph - (v - a.lo) / (a.hi - a.lo || 1) * ph;
  const y = yOf(left);
  const root = svg("svg", { width: W, height: H, class: "ts" }, box);
  for (const [t, l] of left.labels) {
    svg("line", { x1: L, x2: W - R, y1: y(t), y2: y(t), class: "grid" }, root);
    svg("text", { x: L - 4, y: y(t) + 4, "text-anchor": "end", class: "axis y-left" }, root).textContent = l;
  }
  if (right) {
    const yr = yOf(right);
    for (const [t, l] of right.labels) svg("text", { x: W - R + 4, y: yr(t) + 4, "text-anchor": "start", class: "axis y-right" }, root).textContent = l;
  }
  const span = range.to - range.from;
  const xt = timeTicks(range.from, range.to, Math.max(2, Math.floor(pw / 80)));
  const xLabels = [];
  for (const t of xt.ticks) {
    svg("line", { x1: x(t), x2: x(t), y1: T, y2: T + ph, class: "grid" }, root);
    const px = x(t), label = timeLabel(t, span, xt.step);
    xLabels.push(label);
    svg("text", { x: px, y: H - 5, "text-anchor": px - L < 20 ? "start" : L + pw - px < 20 ? "end" : "middle", class: "axis x-tick" }, root).textContent = label;
  }
  const clip = "c" + Math.random().toString(36).slice(2);
  svg("rect", { x: L, y: T, width: pw, height: ph }, svg("clipPath", { id: clip }, svg("defs", {}, root)));
  const g = svg("g", { "clip-path": `url(#${clip})` }, root);
  draw.forEach((s, i) => {
    const yy = side[i] === "right" ? yOf(right) : y;
    const a = side[i] === "right" ? right : left;
    let d = "", prev = null, area = "";
    const pts = [];
    for (const [t, v] of s.values) {
      if (v === null || !isFinite(v)) { prev = null; continue; }
      d += (prev === null ? "M" : "L") + x(t).toFixed(1) + "," + yy(v).toFixed(1);
      prev = v;
      pts.push([t, v]);
    }
    if (stacking && pts.length) {
      const below = i > 0 ? draw[i - 1].values.filter(([, v]) => v !== null) : null;
      area = "M" + pts.map(([t, v]) => x(t).toFixed(1) + "," + yy(v).toFixed(1)).join("L");
      if (below && below.length) area += "L" + below.slice().reverse().map(([t, v]) => x(t).toFixed(1) + "," + yy(v).toFixed(1)).join("L");
      else area += `L${x(pts[pts.length - 1][0]).toFixed(1)},${yy(Math.max(a.lo, 0)).toFixed(1)}L${x(pts[0][0]).toFixed(1)},${yy(Math.max(a.lo, 0)).toFixed(1)}`;
      svg("path", { d: area + "Z", fill: colors[i], "fill-opacity": 0.35, stroke: "none" }, g);
    }
    if (pts.length === 1) svg("circle", { cx: x(pts[0][0]), cy: yy(pts[0][1]), r: 2, fill: colors[i] }, g);
    // An anomaly detector's band is dashed, beside the series it bounds.
    svg("path", { d, fill: "none", stroke: colors[i], "stroke-width": 1.5, class: "series" + (side[i] === "right" ? " right" : "") + (s.band ? " band" : ""),
      ...(s.band ? { "stroke-dasharray": "5 3" } : {}) }, g);
  });
  const steps = (panel.thresholds && panel.thresholds.steps) || [];
  for (const st of steps.slice(1)) {
    if (st.value === null || st.value === undefined || st.value < left.lo || st.value > left.hi) continue;
    svg("line", { x1: L, x2: W - R, y1: y(st.value), y2: y(st.value), stroke: cssColor(st.color), "stroke-dasharray": "4 4", class: "threshold" }, g);
  }
  // Hover shows the values at the pointer; dragging zooms.
  const cursor = svg("line", { y1: T, y2: T + ph, class: "cursor", visibility: "hidden" }, root);
  const sel = svg("rect", { y: T, height: ph, class: "zoom", visibility: "hidden" }, root);
  const tip = h("div", { class: "tooltip", hidden: true });
  box.append(tip);
  let start = null;
  const toT = px => range.from + (px - L) / pw * span;
  root.addEventListener("mousedown", e => { start = e.offsetX; e.preventDefault(); });
  root.addEventListener("mousemove", e => {
    const px = Math.min(Math.max(e.offsetX, L), L + pw);
    cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
    if (start !== null) {
      sel.setAttribute("x", Math.min(start, px)); sel.setAttribute("width", Math.abs(px - start)); sel.setAttribute("visibility", "visible");
    }
    const t = toT(px);
    const rows = series.map((s, i) => {
      if (s.field && s.field.hideFrom && s.field.hideFrom.tooltip) return "";
      let best = null;
      for (const p of s.values) if (best === null || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
      return best ? `<div><i style="background:${colors[i]}"></i>${escapeHTML(s.name)}: <b>${escapeHTML(display(best[1], s.field || panel).text)}</b></div>` : "";
    }).slice(0, 12).join("");
    tip.innerHTML = `<div class="tip-time">${new Date(t).toLocaleString()}</div>` + rows;
    tip.hidden = false;
    tip.style.left = Math.min(px + 12, W - 220) + "px";
    tip.style.top = "8px";
  });
  root.addEventListener("mouseleave", () => { cursor.setAttribute("visibility", "hidden"); tip.hidden = true; start = null; sel.setAttribute("visibility", "hidden"); });
  root.addEventListener("mouseup", e => {
    if (start === null) return;
    const a = toT(Math.min(start, e.offsetX)), b = toT(Math.max(start, e.offsetX));
    start = null;
    sel.setAttribute("visibility", "hidden");
    if (b - a > span / 200 && onZoom) onZoom(Math.round(a), Math.round(b));
  });
  return { left: { unit: left.unit, labels: left.labels.map(([, l]) => l), series: left.idx.map(i => series[i].name) },
    right: right ? { unit: right.unit, labels: right.labels.map(([, l]) => l), series: right.idx.map(i => series[i].name) } : null,
    xTicks: xLabels, legend: lg.rows, legendSort: lg.sort || null };
}

export function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

export function stat(el, series, panel) {
  el.innerHTML = "";
  const wrap = h("div", { class: "stat-wrap" });
  el.append(wrap);
  if (!series.length) { wrap.append(h("div", { class: "stat-value", style: "color:#8e8e8e" }, "No data")); return; }
  const shown = [];
  for (const s of series.slice(0, 12)) {
    const v = reduceLast(s.values);
    const dv = display(v, s.field || panel);
    shown.push({ name: s.name, text: dv.text, color: dv.color });
    const cell = h("div", { class: "stat" },
      h("div", { class: "stat-value", style: `color:${dv.color}` }, dv.text),
      series.length > 1 ? h("div", { class: "stat-name" }, s.name) : null);
    wrap.append(cell);
  }
  return { values: shown };
}

export function gauge(el, series, panel) {
  el.innerHTML = "";
  const wrap = h("div", { class: "stat-wrap" });
  el.append(wrap);
  const unitMax = panel.unit === "percentunit" ? 1 : 100;
  const min = panel.min ?? 0, max = panel.max ?? unitMax;
  if (!series.length) { wrap.append(h("div", { class: "stat-value", style: "color:#8e8e8e" }, "No data")); return; }
  for (const s of series.slice(0, 8)) {
    const v = reduceLast(s.values);
    const frac = v === null ? 0 : Math.max(0, Math.min(1, (v - min) / (max - min || 1)));
    const dv = display(v, { ...(s.field || panel), min, max });
    const color = dv.color;
    const size = Math.min(el.clientWidth / Math.min(series.length, 8), el.clientHeight) - 10;
    const r = Math.max(size / 2 - 10, 20), cx = r + 10, cy = r + 10;
    const arc = (a0, a1) => {
      const p = a => [cx + r * Math.cos(a), cy + r * Math.sin(a)];
      const [x0, y0] = p(a0), [x1, y1] = p(a1);
      return `M${x0},${y0} A${r},${r} 0 ${a1 - a0 > Math.PI ? 1 : 0} 1 ${x1},${y1}`;
    };
    const a0 = Math.PI * 0.75, a1 = Math.PI * 2.25;
    const root = svg("svg", { width: 2 * r + 20, height: 2 * r + 20, class: "gauge" });
    svg("path", { d: arc(a0, a1), stroke: "#2c3235", "stroke-width": r / 5, fill: "none" }, root);
    if (frac > 0) svg("path", { d: arc(a0, a0 + (a1 - a0) * frac), stroke: color, "stroke-width": r / 5, fill: "none" }, root);
    const t = svg("text", { x: cx, y: cy + r / 8, "text-anchor": "middle", fill: color, "font-size": Math.max(r / 3, 10), class: "gauge-value" }, root);
    t.textContent = dv.text;
    wrap.append(h("div", { class: "stat" }, root, series.length > 1 ? h("div", { class: "stat-name" }, s.name) : null));
  }
}

export function bargauge(el, series, panel) {
  el.innerHTML = "";
  const vals = series.map(s => reduceLast(s.values));
  const min = panel.min ?? 0;
  const max = panel.max ?? Math.max(...vals.filter(v => v !== null), 1);
  const o = (panel.raw && panel.raw.options) || {};
  const list = h("div", { class: "bars" + (o.orientation === "vertical" ? " vertical" : "") });
  const rows = [];
  series.forEach((s, i) => {
    const f = s.field || panel;
    const lo = f.min ?? min, hi = f.max ?? max;
    const v = vals[i], frac = v === null ? 0 : Math.max(0, Math.min(1, (v - lo) / (hi - lo || 1)));
    const dv = display(v, { ...f, min: lo, max: hi });
    list.append(h("div", { class: "bar-row" }, h("span", { class: "bar-name", title: s.name }, s.name),
      h("span", { class: "bar-track" }, h("span", { class: "bar-fill", style: `width:${(frac * 100).toFixed(1)}%;background:${dv.color}` })),
      h("span", { class: "bar-value", style: `color:${dv.color}` }, dv.text)));
    rows.push({ name: s.name, value: v, text: dv.text, fraction: frac });
  });
  if (!series.length) list.append(h("div", { class: "nodata" }, "No data"));
  el.append(list);
  return { bars: rows };
}

// oldStyle finds the table-old panel's style for a column: the first
// whose pattern (a name or /regex/) matches.
function oldStyle(panel, name) {
  for (const st of (panel.raw && panel.raw.styles) || []) {
    if (!st || st.pattern === undefined) continue;
    const re = /^\/.*\/[a-z]*$/.test(st.pattern) ? regexOf(st.pattern) : null;
    if (re ? re.test(name) : st.pattern === name) return st;
  }
  return null;
}

// table draws data frames as Grafana's table does: one frame at a time
// (a selector when there are several), a column per field with its
// config (unit, decimals, mappings), cells coloured only where the
// field's cell type asks for it (color-text, color-background, gauge),
// sortable by a click on a header. The old table panel's styles (alias,
// unit, decimals, hidden, threshold colours) apply to its columns.
export function table(el, frames, panel, fieldFor) {
  el.innerHTML = "";
  const wrap = h("div", { class: "table-wrap" });
  const pick = Math.min(panel.frameIndex || 0, Math.max(frames.length - 1, 0));
  if (frames.length > 1) {
    el.append(h("select", { class: "frame-select", onchange: e => { panel.frameIndex = parseInt(e.target.value, 10); table(el, frames, panel, fieldFor); } },
      frames.map((fr, i) => h("option", { value: i, selected: i === pick }, fr.name || fr.refId || `Frame ${i + 1}`))));
  }
  el.append(wrap);
  const fr = frames[pick];
  if (!fr || !fr.fields.length || !fr.fields[0].values.length) { el.append(h("div", { class: "nodata" }, "No data")); return { columns: [], rows: [] }; }
  const cols = [];
  for (const f of fr.fields) {
    const name = fieldName(f);
    const cfg = fieldFor ? fieldFor({ name, type: f.type, refId: fr.refId }) : { ...panel, cellType: "auto", mappings: [] };
    const st = panel.type === "table-old" ? oldStyle(panel, name) : null;
    if (st && st.type === "hidden") continue;
    let cellType = cfg.cellType;
    if (st) {
      if (st.unit) cfg.unit = st.unit;
      if (st.decimals !== undefined && st.decimals !== null && st.decimals !== "") cfg.decimals = Number(st.decimals);
      if (st.colorMode && Array.isArray(st.thresholds) && st.thresholds.length) {
        const colors = st.colors || [];
        cfg.thresholds = { mode: "absolute", steps: [{ color: colors[0], value: null }, ...st.thresholds.map((v, k) => ({ value: Number(v), color: colors[k + 1] || colors[colors.length - 1] }))] };
        cellType = st.colorMode === "value" ? "color-text" : "color-background";
      }
    }
    cols.push({ f, name: st && st.alias ? st.alias : cfg.displayName || name, cfg, cellType, isTime: f.type === "time" || (st && st.type === "date") });
  }
  const n = fr.fields[0].values.length;
  let order = [...Array(n).keys()];
  const sort = panel.tableSort;
  const sc = sort ? cols.find(c => c.name === sort.name) : null;
  if (sc) order.sort((a, b) => {
    const x = sc.f.values[a], y = sc.f.values[b];
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x ?? "").localeCompare(String(y ?? ""));
    return sort.desc ? -c : c;
  });
  const thead = h("tr", {}, cols.map(c => h("th", { class: "sortable" + (sc === c ? (sort.desc ? " desc" : " asc") : ""), style: c.cfg.width ? `width:${c.cfg.width}px` : null,
    onclick: () => { panel.tableSort = { name: c.name, desc: sc === c ? !sort.desc : false }; table(el, frames, panel, fieldFor); } }, c.name)));
  const body = h("tbody");
  const rows = [], colors = [];
  for (const r of order) {
    const tr = h("tr");
    const texts = [], cs = [];
    for (const c of cols) {
      const v = c.f.values[r];
      let txt, color = null;
      if (c.isTime) txt = v === null || v === undefined ? "" : new Date(v).toLocaleString();
      else if (c.f.type === "string") { const m = mapValue(v, c.cfg.mappings); txt = m && m.text ? m.text : String(v ?? ""); }
      else { const dv = display(v, c.cfg); txt = dv.text; color = dv.color; }
      const td = h("td", {}, txt);
      const ct = c.cellType;
      if (color && (ct === "color-text")) td.style.color = color;
      else if (color && (ct === "color-background" || ct === "color-background-solid")) { td.style.background = color; td.style.color = "#fff"; }
      else if (color && /gauge|basic|gradient/.test(ct)) {
        const lo = c.cfg.min ?? 0, hi = c.cfg.max ?? 100;
        const frac = Math.max(0, Math.min(1, ((v ?? 0) - lo) / (hi - lo || 1)));
        td.replaceChildren(h("span", { class: "cell-gauge" }, h("span", { class: "bar-fill", style: `width:${(frac * 100).toFixed(1)}%;background:${color}` })), h("span", { class: "cell-gauge-text", style: `color:${color}` }, txt));
      } else color = null;
      texts.push(txt); cs.push(color);
      tr.append(td);
    }
    rows.push(texts); colors.push(cs);
    body.append(tr);
  }
  wrap.append(h("table", { class: "data" }, h("thead", {}, thead), body));
  return { columns: cols.map(c => c.name), rows, colors, frames: frames.length };
}

// Sequential colour schemes (ColorBrewer's nine classes, light to dark,
// as d3's interpolators that Grafana's heatmap uses run through them).
const SCHEMES = {
  Oranges: ["#fff5eb", "#fee6ce", "#fdd0a2", "#fdae6b", "#fd8d3c", "#f16913", "#d94801", "#a63603", "#7f2704"],
  Reds: ["#fff5f0", "#fee0d2", "#fcbba1", "#fc9272", "#fb6a4a", "#ef3b2c", "#cb181d", "#a50f15", "#67000d"],
  Greens: ["#f7fcf5", "#e5f5e0", "#c7e9c0", "#a1d99b", "#74c476", "#41ab5d", "#238b45", "#006d2c", "#00441b"],
  Blues: ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"],
  Purples: ["#fcfbfd", "#efedf5", "#dadaeb", "#bcbddc", "#9e9ac8", "#807dba", "#6a51a3", "#54278f", "#3f007d"],
  Greys: ["#ffffff", "#f0f0f0", "#d9d9d9", "#bdbdbd", "#969696", "#737373", "#525252", "#252525", "#000000"],
  YlOrRd: ["#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#bd0026", "#800026"],
};

// heatColors reads a heatmap's colour options as Grafana does: the
// panel's options.color (mode scheme or opacity, scheme, fill, scale,
// exponent, steps, reverse, min, max), or the old panel's color (spectrum
// with colorScheme "interpolateX", or opacity with cardColor and
// colorScale), with Grafana's defaults: scheme Oranges in 64 steps. It
// returns a function from a count's place in the counts' range (0 to 1) to
// a fill and an opacity. The UI's theme is dark, where Grafana runs a
// sequential scheme from its dark end (the lowest count) to its light end
// (the highest); its light theme inverts that.
export function heatColors(panel) {
  const raw = panel.raw || {};
  let o = raw.options && raw.options.color;
  if (!o && raw.color && typeof raw.color === "object") {
    const c = raw.color;
    o = c.mode === "opacity" ? { mode: "opacity", fill: c.cardColor, scale: c.colorScale === "linear" ? "linear" : "exponential", exponent: c.exponent }
      : { mode: "scheme", scheme: String(c.colorScheme || "").replace(/^interpolate/, "") };
    if (typeof c.min === "number") o.min = c.min;
    if (typeof c.max === "number") o.max = c.max;
  }
  o = { mode: "scheme", scheme: "Oranges", fill: "dark-orange", scale: "exponential", exponent: 0.5, steps: 64, reverse: false, ...(o || {}) };
  const steps = Math.max(2, Math.min(256, Number(o.steps) || 64));
  const quantize = f => Math.round(Math.max(0, Math.min(1, f)) * (steps - 1)) / (steps - 1);
  if (o.mode === "opacity") {
    const fill = cssColor(o.fill || "dark-orange"), k = Number(o.exponent) > 0 ? Number(o.exponent) : 0.5;
    return { min: o.min, max: o.max, color: f => ({ fill, opacity: quantize(o.scale === "linear" ? f : Math.pow(Math.max(0, f), k)) }) };
  }
  let ramp = (SCHEMES[o.scheme] || SCHEMES.Oranges).slice().reverse();
  if (o.reverse) ramp = ramp.reverse();
  const rgb = hx => [1, 3, 5].map(i => parseInt(hx.slice(i, i + 2), 16));
  return { min: o.min, max: o.max, color: f => {
    const q = quantize(f) * (ramp.length - 1), i = Math.min(Math.floor(q), ramp.length - 2), u = q - i;
    const a = rgb(ramp[i]), b = rgb(ramp[i + 1]);
    return { fill: `rgb(${a.map((v, j) => Math.round(v + (b[j] - v) * u)).join(",")})`, opacity: 1 };
  } };
}

// heatmap draws one row per bucket (series sorted by their le label, or
// in order; the buckets of a query formatted as heatmap made
// non-cumulative), labelled by its upper bound in the panel's unit, and
// one cell per sample placed by time: as Grafana lays out Prometheus buckets,
// a sample at t covers (t - step, t], step being the interval between
// samples; the x axis runs from the range's start to its end.
export function heatmap(el, series, panel, range, queries) {
  el.innerHTML = "";
  const le = s => { const v = s.labels.le; return v === undefined ? 0 : v === "+Inf" ? Infinity : parseFloat(v); };
  let rows = series.slice().sort((a, b) => le(a) - le(b));
  // Prometheus buckets are cumulative. A query formatted as a heatmap
  // shows each bucket's own count, as Grafana's Prometheus data source
  // converts it; a time series query shows what it returns.
  const asHeatmap = s => ((queries || [])[s.qi] || {}).format === "heatmap";
  if (rows.length > 1 && rows.every(s => s.labels.le !== undefined && asHeatmap(s))) {
    rows = rows.map((s, i) => {
      if (i === 0) return s;
      const below = new Map(rows[i - 1].values);
      return { ...s, values: s.values.map(([t, v]) => [t, v === null ? null : Math.max(0, v - (below.get(t) || 0))]) };
    });
  }
  const box = h("div", { class: "chart" });
  el.append(box);
  const W = Math.max(box.clientWidth, 200), H = Math.max(box.clientHeight, 80), B = 20, R = 8;
  const rowLabel = s => s.labels.le === undefined ? s.name : s.labels.le === "+Inf" ? "+Inf" : format(parseFloat(s.labels.le), panel.unit, panel.decimals);
  const labels = rows.map(rowLabel);
  const L = Math.max(40, ...labels.map(x => x.length * 6.5 + 10));
  const pw = W - L - R;
  const root = svg("svg", { width: W, height: H, class: "heatmap" }, box);
  // The plot area, unpainted: its box is where time and buckets map to
  // pixels (tests compare screenshots against it).
  svg("rect", { x: L, y: 0, width: pw, height: H - B, fill: "none", class: "plot-area" }, root);
  // The colour scale spans the counts shown (or the options' min and
  // max); a cell of zero count is not drawn (Grafana hides cells of at
  // most 1e-9 by default).
  const colors = heatColors(panel);
  let lo = Infinity, hi = -Infinity;
  for (const s of rows) for (const [, v] of s.values) if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (typeof colors.min === "number") lo = colors.min;
  if (typeof colors.max === "number") hi = colors.max;
  const rh = (H - B) / Math.max(rows.length, 1);
  // options.yAxis.reverse puts the lowest bucket at the top.
  const reverse = !!(panel.raw && panel.raw.options && panel.raw.options.yAxis && panel.raw.options.yAxis.reverse);
  const times = [...new Set(rows.flatMap(s => s.values.map(p => p[0])))].sort((a, b) => a - b);
  let step = Infinity;
  for (let i = 1; i < times.length; i++) step = Math.min(step, times[i] - times[i - 1]);
  if (!isFinite(step)) step = panel.stepMs || (range.to - range.from) / 100;
  const span = range.to - range.from;
  const x = t => L + (t - range.from) / span * pw;
  const cells = [];
  rows.forEach((s, ri) => {
    const yy = reverse ? ri * rh : H - B - (ri + 1) * rh;
    svg("text", { x: L - 4, y: yy + rh / 2 + 4, "text-anchor": "end", class: "axis bucket" }, root).textContent = labels[ri];
    for (const [t, v] of s.values) {
      if (v === null || v <= 1e-9) continue;
      const x0 = Math.max(L, x(t - step)), x1 = Math.min(L + pw, x(t));
      if (x1 <= x0) continue;
      const c = colors.color(hi > lo ? (v - lo) / (hi - lo) : 1);
      svg("rect", { x: x0, y: yy, width: Math.max(x1 - x0 - 0.5, 0.5), height: Math.max(rh - 0.5, 0.5), fill: c.fill, "fill-opacity": c.opacity.toFixed(3), class: "cell", "data-t": t, "data-le": s.labels.le ?? "" }, root);
      cells.push({ t, le: s.labels.le ?? "", x0, x1 });
    }
  });
  const xt = timeTicks(range.from, range.to, Math.max(2, Math.floor(pw / 80)));
  for (const t of xt.ticks) {
    const px = x(t);
    svg("text", { x: px, y: H - 5, "text-anchor": px - L < 20 ? "start" : L + pw - px < 20 ? "end" : "middle", class: "axis x-tick" }, root).textContent = timeLabel(t, span, xt.step);
  }
  if (!rows.length) el.append(h("div", { class: "nodata" }, "No data"));
  return { plotLeft: L, plotWidth: pw, buckets: labels, cells };
}

// markdown renders a small, safe subset: headings, emphasis, code, links
// and lists. HTML in the source is shown as text.
export function markdown(src) {
  const inline = s => escapeHTML(s)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<b>$1</b>")
    .replace(/\*([^*]+)\*/g, "<i>$1</i>")
    .replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g, '<a href="$2" rel="noopener noreferrer" target="_blank">$1</a>');
  const out = [];
  let list = false;
  for (const line of String(src || "").split("\n")) {
    const m = /^(#{1,6})\s+(.*)$/.exec(line), li = /^\s*[-*]\s+(.*)$/.exec(line);
    if (li) { if (!list) { out.push("<ul>"); list = true; } out.push("<li>" + inline(li[1]) + "</li>"); continue; }
    if (list) { out.push("</ul>"); list = false; }
    if (m) out.push(`<h${m[1].length}>${inline(m[2])}</h${m[1].length}>`);
    else if (line.trim()) out.push("<p>" + inline(line) + "</p>");
  }
  if (list) out.push("</ul>");
  return out.join("");
}

// piechart draws one slice per series, its value reduced by the panel's
// first calc (lastNotNull by default), as a pie or a donut, with a legend
// of names, values and percents.
export function piechart(el, series, panel) {
  el.innerHTML = "";
  const o = (panel.raw && panel.raw.options) || {};
  const calcId = ((o.reduceOptions && o.reduceOptions.calcs) || [])[0] || "lastNotNull";
  const slices = series.map((s, i) => {
    const v = calc(calcId, s.values);
    return { name: s.name, value: v, color: s.field && s.field.colorFixed ? cssColor(s.field.colorFixed) : PALETTE[i % PALETTE.length], field: s.field || panel };
  }).filter(x => x.value !== null && x.value > 0);
  const total = slices.reduce((a, x) => a + x.value, 0);
  const box = h("div", { class: "pie-wrap" });
  el.append(box);
  if (!slices.length) { box.append(h("div", { class: "nodata" }, "No data")); return { slices: [] }; }
  const size = Math.max(60, Math.min(el.clientHeight - 10, el.clientWidth * 0.55));
  const r = size / 2 - 4, cx = size / 2, cy = size / 2;
  const root = svg("svg", { width: size, height: size, class: "pie" }, box);
  let a = -Math.PI / 2;
  for (const sl of slices) {
    const frac = sl.value / total, a1 = a + frac * 2 * Math.PI;
    const p = t => [cx + r * Math.cos(t), cy + r * Math.sin(t)];
    const [x0, y0] = p(a), [x1, y1] = p(a1);
    const d = frac >= 0.9999 ? `M${cx - r},${cy}A${r},${r} 0 1 1 ${cx + r},${cy}A${r},${r} 0 1 1 ${cx - r},${cy}Z`
      : `M${cx},${cy}L${x0},${y0}A${r},${r} 0 ${a1 - a > Math.PI ? 1 : 0} 1 ${x1},${y1}Z`;
    svg("path", { d, fill: sl.color, stroke: "#181b1f", "stroke-width": 1, class: "slice" }, root).appendChild(document.createElementNS(NS, "title")).textContent = sl.name;
    sl.percent = frac * 100;
    sl.text = display(sl.value, sl.field).text;
    a = a1;
  }
  if (o.pieType === "donut") svg("circle", { cx, cy, r: r * 0.6, fill: "#181b1f" }, root);
  const lv = (o.legend && o.legend.values) || [];
  box.append(h("div", { class: "legend pie-legend" }, slices.map(sl => h("span", { class: "legend-item", title: sl.name },
    h("i", { style: `background:${sl.color}` }), sl.name,
    lv.includes("value") || !lv.length ? h("b", {}, " " + sl.text) : null,
    lv.includes("percent") ? h("b", {}, ` ${sl.percent.toFixed(0)}%`) : null))));
  return { slices: slices.map(sl => ({ name: sl.name, value: sl.value, text: sl.text, percent: sl.percent })) };
}

// stateTimeline draws one row per series, split into spans of equal
// displayed value (a mapping's text or the formatted value), each
// coloured by its mapping or threshold.
export function stateTimeline(el, series, panel, range) {
  el.innerHTML = "";
  const box = h("div", { class: "chart" });
  el.append(box);
  const W = Math.max(box.clientWidth, 200), H = Math.max(box.clientHeight, 80), B = 20, R = 8;
  const L = Math.min(W / 3, Math.max(40, ...series.map(s => s.name.length * 6.5 + 10)));
  const pw = W - L - R, span = range.to - range.from;
  const x = t => L + Math.max(0, Math.min(1, (t - range.from) / span)) * pw;
  const root = svg("svg", { width: W, height: H, class: "state-timeline" }, box);
  const rh = (H - B) / Math.max(series.length, 1);
  const rows = [];
  series.forEach((s, ri) => {
    const y = ri * rh;
    svg("text", { x: L - 4, y: y + rh / 2 + 4, "text-anchor": "end", class: "axis" }, root).textContent = s.name;
    const segs = [];
    let step = Infinity;
    for (let i = 1; i < s.values.length; i++) step = Math.min(step, s.values[i][0] - s.values[i - 1][0]);
    if (!isFinite(step)) step = span / 100;
    for (let i = 0; i < s.values.length; i++) {
      const [t, v] = s.values[i];
      if (v === null || Number.isNaN(v)) continue;
      const dv = display(v, s.field || panel);
      const last = segs[segs.length - 1];
      const end = i + 1 < s.values.length ? s.values[i + 1][0] : t + step;
      if (last && last.text === dv.text && last.to === t) { last.to = end; continue; }
      segs.push({ from: t, to: end, value: v, text: dv.text, color: dv.color });
    }
    for (const g of segs) {
      const x0 = x(g.from), x1 = x(g.to);
      svg("rect", { x: x0, y: y + 2, width: Math.max(x1 - x0 - 1, 0.5), height: Math.max(rh - 4, 1), fill: g.color, "fill-opacity": 0.8, class: "state" }, root);
      if (x1 - x0 > g.text.length * 6.5 + 6) svg("text", { x: (x0 + x1) / 2, y: y + rh / 2 + 4, "text-anchor": "middle", class: "state-text" }, root).textContent = g.text;
    }
    rows.push({ name: s.name, segments: segs.map(g => ({ from: g.from, to: g.to, text: g.text, color: g.color })) });
  });
  const xt = timeTicks(range.from, range.to, Math.max(2, Math.floor(pw / 80)));
  for (const t of xt.ticks) svg("text", { x: x(t), y: H - 5, "text-anchor": "middle", class: "axis x-tick" }, root).textContent = timeLabel(t, span, xt.step);
  if (!series.length) box.append(h("div", { class: "nodata overlay" }, "No data"));
  return { rows };
}

// unsupported shows that Orrery does not draw a panel type, naming it.
export function unsupported(el, type) {
  el.innerHTML = "";
  el.append(h("div", { class: "panel-unsupported" }, `Panel type "${type}" is not supported by Orrery's UI; its queries are not run. Inspect shows its JSON.`));
}
