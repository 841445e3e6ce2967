// Panel renderers drawing SVG. Each takes the panel body element, the
// series ({name, labels, values: [[ms, number|null]]}) and the panel model.
import { format, thresholdColor, cssColor, PALETTE } from "./units.js";

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

function timeLabel(ms, span) {
  const d = new Date(ms), p = n => String(n).padStart(2, "0");
  if (span > 2 * 86400000) return `${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
  return `${p(d.getHours())}:${p(d.getMinutes())}` + (span < 600000 ? `:${p(d.getSeconds())}` : "");
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

function legendBox(series, panel, colors) {
  const lg = panel.legend || {};
  if (lg.show === false || (lg.showLegend === false)) return null;
  return h("div", { class: "legend" }, series.map((s, i) =>
    h("span", { class: "legend-item", title: s.name },
      h("i", { style: `background:${colors[i]}` }), s.name,
      h("b", {}, " " + format(reduceLast(s.values), panel.unit, panel.decimals)))));
}

// timeseries draws lines (stacked areas when stacking is normal or
// percent), threshold lines, axes and a legend; dragging selects a range
// handed to onZoom(fromMs, toMs).
export function timeseries(el, series, panel, range, onZoom) {
  el.innerHTML = "";
  const colors = series.map((_, i) => PALETTE[i % PALETTE.length]);
  const legend = legendBox(series, panel, colors);
  const box = h("div", { class: "chart" });
  el.append(box);
  if (legend) el.append(legend);
  if (!series.length) box.append(h("div", { class: "nodata overlay" }, "No data"));
  const W = Math.max(box.clientWidth, 200), H = Math.max(box.clientHeight, 80);
  const stacking = panel.stacking === "normal" || panel.stacking === "percent";
  const draw = stacking ? stack(series, panel.stacking === "percent") : series;
  let lo = Infinity, hi = -Infinity;
  for (const s of draw) for (const [, v] of s.values) if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  if (stacking || lo > 0 && lo < hi / 3) lo = Math.min(lo, 0);
  if (panel.min !== null && panel.min !== undefined) lo = panel.min;
  if (panel.max !== null && panel.max !== undefined) hi = panel.max;
  const yt = niceTicks(lo, hi, Math.max(2, Math.floor(H / 40)));
  if (panel.min === null || panel.min === undefined) lo = yt.lo;
  if (panel.max === null || panel.max === undefined) hi = yt.hi;
  const yUnit = panel.stacking === "percent" ? "percentunit" : panel.unit;
  const labelW = Math.max(...yt.ticks.map(t => format(t, yUnit, panel.decimals).length)) * 6.5 + 8;
  const L = labelW, R = 8, T = 6, B = 20, pw = W - L - R, ph = H - T - B;
  const x = t => L + (t - range.from) / (range.to - range.from) * pw;
  const y = v => T + ph - (v - lo) / (hi - lo || 1) * ph;
  const root = svg("svg", { width: W, height: H, class: "ts" }, box);
  for (const t of yt.ticks) {
    if (t < lo - 1e-9 || t > hi + 1e-9) continue;
    svg("line", { x1: L, x2: W - R, y1: y(t), y2: y(t), class: "grid" }, root);
    svg("text", { x: L - 4, y: y(t) + 4, "text-anchor": "end", class: "axis" }, root).textContent = format(t, yUnit, panel.decimals);
  }
  const span = range.to - range.from, nx = Math.max(2, Math.floor(pw / 90));
  for (let i = 0; i <= nx; i++) {
    const t = range.from + span * i / nx;
    svg("line", { x1: x(t), x2: x(t), y1: T, y2: T + ph, class: "grid" }, root);
    svg("text", { x: x(t), y: H - 5, "text-anchor": i === 0 ? "start" : i === nx ? "end" : "middle", class: "axis" }, root).textContent = timeLabel(t, span);
  }
  const clip = "c" + Math.random().toString(36).slice(2);
  svg("rect", { x: L, y: T, width: pw, height: ph }, svg("clipPath", { id: clip }, svg("defs", {}, root)));
  const g = svg("g", { "clip-path": `url(#${clip})` }, root);
  draw.forEach((s, i) => {
    let d = "", prev = null, area = "";
    const pts = [];
    for (const [t, v] of s.values) {
      if (v === null || !isFinite(v)) { prev = null; continue; }
      d += (prev === null ? "M" : "L") + x(t).toFixed(1) + "," + y(v).toFixed(1);
      prev = v;
      pts.push([t, v]);
    }
    if (stacking && pts.length) {
      const below = i > 0 ? draw[i - 1].values.filter(([, v]) => v !== null) : null;
      area = "M" + pts.map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join("L");
      if (below && below.length) area += "L" + below.slice().reverse().map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join("L");
      else area += `L${x(pts[pts.length - 1][0]).toFixed(1)},${y(Math.max(lo, 0)).toFixed(1)}L${x(pts[0][0]).toFixed(1)},${y(Math.max(lo, 0)).toFixed(1)}`;
      svg("path", { d: area + "Z", fill: colors[i], "fill-opacity": 0.35, stroke: "none" }, g);
    }
    if (pts.length === 1) svg("circle", { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 2, fill: colors[i] }, g);
    svg("path", { d, fill: "none", stroke: colors[i], "stroke-width": 1.5, class: "series" }, g);
  });
  const steps = (panel.thresholds && panel.thresholds.steps) || [];
  for (const st of steps.slice(1)) {
    if (st.value === null || st.value === undefined || st.value < lo || st.value > hi) continue;
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
      let best = null;
      for (const p of s.values) if (best === null || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
      return best ? `<div><i style="background:${colors[i]}"></i>${escapeHTML(s.name)}: <b>${format(best[1], panel.unit, panel.decimals)}</b></div>` : "";
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
    if (Math.abs(e.offsetX - (a === b ? 0 : e.offsetX)) >= 0 && b - a > span / 200 && onZoom) onZoom(Math.round(a), Math.round(b));
  });
}

export function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

export function stat(el, series, panel) {
  el.innerHTML = "";
  const wrap = h("div", { class: "stat-wrap" });
  el.append(wrap);
  if (!series.length) { wrap.append(h("div", { class: "stat-value", style: "color:#8e8e8e" }, "No data")); return; }
  for (const s of series.slice(0, 12)) {
    const v = reduceLast(s.values);
    const color = thresholdColor(panel.thresholds, v, panel.min, panel.max);
    const cell = h("div", { class: "stat" },
      h("div", { class: "stat-value", style: `color:${color}` }, format(v, panel.unit, panel.decimals)),
      series.length > 1 ? h("div", { class: "stat-name" }, s.name) : null);
    wrap.append(cell);
  }
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
    const color = thresholdColor(panel.thresholds, v, min, max);
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
    t.textContent = format(v, panel.unit, panel.decimals);
    wrap.append(h("div", { class: "stat" }, root, series.length > 1 ? h("div", { class: "stat-name" }, s.name) : null));
  }
}

export function bargauge(el, series, panel) {
  el.innerHTML = "";
  const vals = series.map(s => reduceLast(s.values));
  const min = panel.min ?? 0;
  const max = panel.max ?? Math.max(...vals.filter(v => v !== null), 1);
  const list = h("div", { class: "bars" });
  series.forEach((s, i) => {
    const v = vals[i], frac = v === null ? 0 : Math.max(0, Math.min(1, (v - min) / (max - min || 1)));
    const color = thresholdColor(panel.thresholds, v, min, max);
    list.append(h("div", { class: "bar-row" }, h("span", { class: "bar-name", title: s.name }, s.name),
      h("span", { class: "bar-track" }, h("span", { class: "bar-fill", style: `width:${(frac * 100).toFixed(1)}%;background:${color}` })),
      h("span", { class: "bar-value", style: `color:${color}` }, format(v, panel.unit, panel.decimals))));
  });
  if (!series.length) list.append(h("div", { class: "nodata" }, "No data"));
  el.append(list);
}

export function table(el, series, panel) {
  el.innerHTML = "";
  const keys = [...new Set(series.flatMap(s => Object.keys(s.labels)))].filter(k => k !== "__name__").sort();
  const t = h("table", { class: "data" }, h("thead", {}, h("tr", {}, h("th", {}, "Time"), keys.map(k => h("th", {}, k)), h("th", {}, "Value"))));
  const body = h("tbody");
  for (const s of series) {
    const last = s.values.length ? s.values[s.values.length - 1] : [null, null];
    body.append(h("tr", {}, h("td", {}, last[0] ? new Date(last[0]).toLocaleString() : ""), keys.map(k => h("td", {}, s.labels[k] ?? "")),
      h("td", { style: `color:${thresholdColor(panel.thresholds, last[1], panel.min, panel.max)}` }, format(last[1], panel.unit, panel.decimals))));
  }
  t.append(body);
  el.append(h("div", { class: "table-wrap" }, t));
  if (!series.length) el.append(h("div", { class: "nodata" }, "No data"));
}

// heatmap draws one row per bucket (series sorted by their le label, or in
// order) and one column per time step, shaded by value.
export function heatmap(el, series, panel, range) {
  el.innerHTML = "";
  const le = s => { const v = s.labels.le; return v === undefined ? 0 : v === "+Inf" ? Infinity : parseFloat(v); };
  let rows = series.slice().sort((a, b) => le(a) - le(b));
  // Prometheus buckets are cumulative: each row shows its own bucket only.
  if (rows.length > 1 && rows.every(s => s.labels.le !== undefined)) {
    rows = rows.map((s, i) => {
      if (i === 0) return s;
      const below = new Map(rows[i - 1].values);
      return { ...s, values: s.values.map(([t, v]) => [t, v === null ? null : Math.max(0, v - (below.get(t) || 0))]) };
    });
  }
  const box = h("div", { class: "chart" });
  el.append(box);
  const W = Math.max(box.clientWidth, 200), H = Math.max(box.clientHeight, 80), L = 60, B = 20;
  const root = svg("svg", { width: W, height: H, class: "heatmap" }, box);
  let max = 0;
  for (const s of rows) for (const [, v] of s.values) if (v !== null && v > max) max = v;
  const rh = (H - B) / Math.max(rows.length, 1);
  const times = [...new Set(rows.flatMap(s => s.values.map(p => p[0])))].sort((a, b) => a - b);
  const cw = (W - L) / Math.max(times.length, 1);
  const col = new Map(times.map((t, i) => [t, i]));
  rows.forEach((s, ri) => {
    const yy = H - B - (ri + 1) * rh;
    svg("text", { x: L - 4, y: yy + rh / 2 + 4, "text-anchor": "end", class: "axis" }, root).textContent = s.labels.le ?? s.name;
    for (const [t, v] of s.values) {
      if (v === null || v <= 0) continue;
      const a = max ? v / max : 0;
      svg("rect", { x: L + col.get(t) * cw, y: yy, width: Math.max(cw - 0.5, 0.5), height: Math.max(rh - 0.5, 0.5), fill: `rgba(255,120,10,${(0.15 + 0.85 * a).toFixed(3)})` }, root);
    }
  });
  const span = range.to - range.from;
  for (let i = 0; i <= 4; i++) {
    svg("text", { x: L + (W - L) * i / 4, y: H - 5, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "axis" }, root).textContent = timeLabel(range.from + span * i / 4, span);
  }
  if (!rows.length) el.append(h("div", { class: "nodata" }, "No data"));
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
