// The dashboard view: variables, time range, auto-refresh, panels.
import { api, prom, state, canEdit } from "./api.js";
import { h, timeseries, stat, gauge, bargauge, table, heatmap, markdown, escapeHTML, piechart, stateTimeline, unsupported } from "./charts.js";
import { fieldConfig } from "./fields.js";
import { seriesToFrames, transform, TRANSFORMS } from "./transform.js";
import { interpolate, legend, autoInterval, parseDuration, formatDuration, queryResolution, DATASOURCE_MIN_INTERVAL_MS } from "./template.js";

export const RANGES = ["5m", "15m", "30m", "1h", "3h", "6h", "12h", "24h", "2d", "7d", "30d"];

// parseTime reads "now", "now-1h" or milliseconds since the epoch.
export function parseTime(s, now) {
  if (s === undefined || s === null || s === "") return now;
  if (/^\d+$/.test(String(s))) return parseInt(s, 10);
  const m = /^now(?:-(\d+[smhdwy]))?(?:\/[smhdwy])?$/.exec(s);
  if (m) return now - (m[1] ? parseDuration(m[1]) : 0);
  const t = Date.parse(s);
  return isNaN(t) ? now : t;
}

function num(v) {
  if (v === null || v === undefined || v === "") return null;
  const n = Number(v);
  return isNaN(n) ? null : n;
}

// normalize turns Grafana's JSON model into the renderer's panel list:
// rows with their panels (the panels after a row belong to it), legacy
// rows converted, field defaults read.
export function normalize(model) {
  const d = model.dashboard && typeof model.dashboard === "object" ? model.dashboard : model;
  const panel = p => {
    const def = (p.fieldConfig && p.fieldConfig.defaults) || {};
    const y0 = (p.yaxes && p.yaxes[0]) || {};
    const legacyLegend = p.legend && typeof p.legend === "object" ? p.legend.show !== false : true;
    const lg = (p.options && p.options.legend) || {};
    return {
      raw: p, id: p.id, type: p.type || "graph", title: p.title || "", description: p.description || "",
      gridPos: p.gridPos || { x: 0, y: 0, w: 12, h: 8 }, targets: refIds((p.targets || []).filter(t => t && typeof t === "object")),
      interval: p.interval || "", maxDataPoints: p.maxDataPoints || 0, repeat: p.repeat || "", repeatDirection: p.repeatDirection || "h", maxPerRow: p.maxPerRow || 0, collapsed: !!p.collapsed,
      unit: def.unit || (p.options && p.options.yAxis && p.options.yAxis.unit) || (p.yAxis && p.yAxis.format) || y0.format || p.format || "short", min: num(def.min ?? y0.min), max: num(def.max ?? y0.max),
      decimals: num(def.decimals ?? y0.decimals ?? p.decimals),
      thresholds: def.thresholds || { mode: "absolute", steps: [] },
      stacking: (def.custom && def.custom.stacking && def.custom.stacking.mode) || (p.stack ? "normal" : "none"),
      legend: { show: lg.showLegend !== false && legacyLegend },
      content: (p.options && p.options.content) || p.content || "",
      panels: (p.panels || []).filter(x => x && typeof x === "object").map(panel),
    };
  };
  let panels = (d.panels || []).filter(x => x && typeof x === "object").map(panel);
  if (Array.isArray(d.rows)) {
    let y = 0;
    for (const r of d.rows) {
      const h0 = Math.max(1, Math.round(parseInt(r.height || "250", 10) / 30));
      const row = { type: "row", title: r.title || "", collapsed: !!r.collapse, gridPos: { x: 0, y: y++, w: 24, h: 1 }, panels: [], targets: [] };
      // Legacy panels flow left to right in spans of 12 columns, wrapping.
      let x = 0;
      const inner = (r.panels || []).filter(p => p && typeof p === "object").map(p => {
        const q = panel(p), w = Math.min(24, Math.max(1, (p.span || 4) * 2));
        if (x + w > 24) { x = 0; y += h0; }
        q.gridPos = { x, y, w, h: h0 };
        x += w;
        return q;
      });
      y += h0;
      if (row.collapsed) { row.panels = inner; panels.push(row); } else panels.push(row, ...inner);
    }
  }
  panels.sort((a, b) => (a.gridPos.y - b.gridPos.y) || (a.gridPos.x - b.gridPos.x));
  const sections = [{ row: null, panels: [] }];
  for (const p of panels) {
    // A row saved collapsed carries its panels (inner); the top-level
    // panels after it are not its own and stay visible, pushed below the
    // inner panels when the row opens. A row saved open owns the panels
    // after it and hides them when it closes.
    if (p.type === "row") sections.push({ row: p, nested: p.collapsed, inner: p.collapsed ? p.panels.slice() : [], panels: [] });
    else sections[sections.length - 1].panels.push(p);
  }
  const vars = (((d.templating || {}).list) || []).filter(v => v && v.name).map(v => ({
    name: v.name, label: v.label || v.name, type: v.type || "query",
    query: typeof v.query === "object" && v.query ? v.query.query || "" : String(v.query ?? ""),
    regex: v.regex || "", multi: !!v.multi, includeAll: !!v.includeAll, allValue: v.allValue || "", hide: v.hide || 0,
    current: v.current || {}, options: v.options || [], filters: Array.isArray(v.filters) ? v.filters : [],
  }));
  return { uid: d.uid, title: d.title || "Untitled", from: (d.time || {}).from || "now-6h", to: (d.time || {}).to || "now",
    refresh: typeof d.refresh === "string" ? d.refresh : "", sections, vars };
}

// refIds names targets without a refId A, B, C… as Grafana does when it
// loads a panel, skipping the names taken.
function refIds(targets) {
  const taken = new Set(targets.map(t => t.refId).filter(Boolean));
  let i = 0;
  const next = () => {
    for (;;) {
      let n = i++, id = "";
      do { id = String.fromCharCode(65 + n % 26) + id; n = Math.floor(n / 26) - 1; } while (n >= 0);
      if (!taken.has(id)) return id;
    }
  };
  return targets.map(t => t.refId ? t : { ...t, refId: next() });
}

// SUPPORTED are the panel types Orrery draws; any other shows a notice.
export const SUPPORTED = new Set(["graph", "timeseries", "stat", "singlestat", "gauge", "bargauge", "table", "table-old", "heatmap",
  "text", "piechart", "grafana-piechart-panel", "state-timeline"]);

function asList(v) { return v === undefined || v === null ? [] : Array.isArray(v) ? v.map(String) : [String(v)]; }

function applyRegex(values, regex) {
  if (!regex) return values;
  const m = /^\/(.*)\/([gimsuy]*)$/.exec(regex);
  let re;
  try { re = m ? new RegExp(m[1], m[2].replace("g", "")) : new RegExp(regex); } catch (_) { return values; }
  const out = [];
  for (const v of values) {
    const r = re.exec(v);
    if (r) out.push(r.length > 1 ? (r.groups && r.groups.value) || r[1] : v);
  }
  return out;
}

// variableOptions resolves a query variable: label_values(label),
// label_values(metric, label), label_names(), metrics(regex),
// query_result(expr).
export async function variableOptions(v, scope, b, range) {
  const q = interpolate(v.query, scope, b).trim();
  let vals = [];
  let m;
  const time = { start: String(Math.floor(range.from / 1000)), end: String(Math.ceil(range.to / 1000)) };
  if ((m = /^label_values\(\s*([a-zA-Z_][\w]*)\s*\)$/.exec(q))) {
    vals = await prom(`label/${encodeURIComponent(m[1])}/values`, time);
  } else if ((m = /^label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][\w]*)\s*\)$/s.exec(q))) {
    vals = await prom(`label/${encodeURIComponent(m[2])}/values`, { ...time, "match[]": m[1] });
  } else if (/^label_names\(\s*\)$/.test(q)) {
    vals = await prom("labels", time);
  } else if ((m = /^metrics\((.*)\)$/.exec(q))) {
    vals = (await prom("label/__name__/values", time)).filter(n => { try { return new RegExp(m[1]).test(n); } catch (_) { return true; } });
  } else if ((m = /^query_result\((.+)\)$/s.exec(q))) {
    const r = await prom("query", { query: m[1], time: String(range.to / 1000) });
    const res = r.resultType === "vector" ? r.result : r.resultType === "scalar" ? [{ metric: {}, value: r.result }] : [];
    vals = res.map(s => legend("", s.metric) + " " + s.value[1] + " " + Math.round(s.value[0] * 1000));
  } else if (q) {
    const r = await prom("query", { query: q, time: String(range.to / 1000) });
    vals = (r.result || []).map(s => legend("", s.metric));
  }
  return [...new Set(applyRegex(vals || [], v.regex))];
}

function customOptions(query) {
  return query.split(/(?<!\\),/).map(s => s.trim()).filter(Boolean).map(s => {
    const m = /^(.*?)\s:\s(.*)$/.exec(s);
    return m ? { text: m[1], value: m[2] } : { text: s, value: s };
  });
}

// Dashboard renders one dashboard into root.
export class Dashboard {
  constructor(root, uid, params) {
    this.root = root; this.uid = uid; this.params = params;
    this.timer = null; this.values = {}; this.options = {}; this.panels = [];
    window.__orrery = { panels: {}, ready: false, dashboard: this };
  }

  destroy() { clearInterval(this.timer); this.timer = null; }

  async load() {
    this.json = await api("GET", `/ui/api/workspaces/${state.ws}/dashboards/${encodeURIComponent(this.uid)}`);
    this.model = normalize(this.json);
    const p = this.params;
    this.from = p.get("from") || this.model.from;
    this.to = p.get("to") || this.model.to;
    this.refresh = p.has("refresh") ? p.get("refresh") : this.model.refresh;
    await this.resolveVariables(null);
    this.render();
  }

  range() {
    const now = Date.now();
    return { from: parseTime(this.from, now), to: parseTime(this.to, now) };
  }

  // scope is the interpolation scope, with override values for repeats.
  scope(override) {
    const s = {};
    for (const v of this.model.vars) {
      const val = this.values[v.name];
      if (!val || v.type === "adhoc") continue; // Ad hoc filters are not $variables.
      s[v.name] = { values: val.all ? [] : val.values, all: val.all, allValue: v.allValue, multi: v.multi || v.includeAll };
      if (val.all && !v.allValue && v.type !== "query") s[v.name] = { values: this.options[v.name].map(o => o.value), all: false, multi: true };
      if (v.type === "datasource" || v.type === "constant" || v.type === "textbox" || v.type === "interval") s[v.name].multi = false;
    }
    return Object.assign(s, override || {});
  }

  // resolveVariables fills options and values of every variable after
  // `changed` (all when null), in order: later ones may use earlier ones.
  async resolveVariables(changed) {
    const range = this.range();
    const b = { intervalMs: autoInterval(range.to - range.from, 1000, DATASOURCE_MIN_INTERVAL_MS), rangeMs: range.to - range.from, scrapeMs: DATASOURCE_MIN_INTERVAL_MS };
    let after = changed === null;
    for (const v of this.model.vars) {
      if (!after) { if (v.name === changed) after = true; continue; }
      if (v.name === changed) continue;
      let opts = [];
      try {
        switch (v.type) {
          case "custom": case "interval": opts = customOptions(v.query); break;
          case "datasource": opts = [{ text: "Orrery", value: "orrery" }]; break;
          case "constant": opts = [{ text: v.query, value: v.query }]; break;
          case "textbox": case "adhoc": opts = []; break;
          case "query": opts = (await variableOptions(v, this.scope(), b, range)).map(x => ({ text: x, value: x })); break;
          default: opts = v.options.map(o => ({ text: String(o.text), value: String(o.value) }));
        }
      } catch (e) {
        this.varErrors = Object.assign(this.varErrors || {}, { [v.name]: e.message });
      }
      this.options[v.name] = opts;
      const fromURL = this.params.getAll("var-" + v.name);
      if (v.type === "adhoc") {
        // Grafana's URL form: one var-NAME=key|operator|value per filter.
        const prevF = this.values[v.name];
        const filters = prevF ? prevF.filters : fromURL.length ? fromURL.map(parseAdHoc).filter(Boolean)
          : v.filters.map(f => ({ key: String(f.key || ""), operator: String(f.operator || "="), value: String(f.value ?? "") })).filter(f => f.key);
        this.values[v.name] = { values: filters.map(encodeAdHoc), all: false, filters };
        continue;
      }
      const cur = fromURL.length ? fromURL : asList(v.current.value);
      const prev = this.values[v.name];
      let picked = prev ? (prev.all ? ["$__all"] : prev.values) : cur;
      if (v.type === "textbox") { this.values[v.name] = { values: picked.length ? picked : [v.query], all: false }; continue; }
      if (v.type === "constant") { this.values[v.name] = { values: [v.query], all: false }; continue; }
      if (v.type === "datasource") { this.values[v.name] = { values: ["orrery"], all: false }; continue; }
      if (picked.includes("$__all") || picked.includes("All") && v.includeAll && !opts.some(o => o.value === "All")) {
        if (v.includeAll) { this.values[v.name] = { values: [], all: true }; continue; }
        picked = [];
      }
      picked = picked.filter(x => opts.some(o => o.value === x));
      if (!picked.length) picked = v.includeAll && v.type === "query" ? ["$__all"] : opts.length ? [opts[0].value] : [];
      if (picked[0] === "$__all") this.values[v.name] = { values: [], all: true };
      else this.values[v.name] = { values: v.multi ? picked : picked.slice(0, 1), all: false };
    }
  }

  syncURL() {
    const q = new URLSearchParams();
    q.set("ws", state.ws);
    q.set("from", this.from); q.set("to", this.to);
    if (this.refresh) q.set("refresh", this.refresh);
    for (const v of this.model.vars) {
      const val = this.values[v.name];
      if (!val || v.type === "constant" || v.type === "datasource") continue;
      if (val.all) q.append("var-" + v.name, "$__all"); else for (const x of val.values) q.append("var-" + v.name, x);
    }
    this.params = q;
    history.replaceState(null, "", `#/d/${encodeURIComponent(this.uid)}?${q}`);
  }

  setTime(from, to) {
    this.from = String(from); this.to = String(to);
    this.resolveVariables(null).then(() => this.render());
  }

  render() {
    this.syncURL();
    this.destroy();
    const root = this.root;
    root.innerHTML = "";
    const bar = h("div", { class: "toolbar" }, h("h2", { class: "dash-title" }, this.model.title));
    const actions = h("span", { class: "actions" });
    const exportURL = `/ui/api/workspaces/${state.ws}/dashboards/${encodeURIComponent(this.uid)}?download=1`;
    actions.append(h("a", { class: "btn", href: exportURL, download: this.uid + ".json", id: "export-json" }, "Export JSON"));
    if (canEdit()) {
      actions.append(h("button", { class: "btn", id: "save-dashboard", onclick: () => this.save() }, "Save"));
      actions.append(h("button", { class: "btn", id: "edit-json", onclick: () => this.editJSON() }, "Edit JSON"));
      actions.append(h("button", { class: "btn danger", id: "delete-dashboard", onclick: () => this.remove() }, "Delete"));
    }
    bar.append(actions, this.timePicker());
    root.append(bar, this.variableBar());
    this.grid = h("div", { class: "dashboard" });
    root.append(this.grid);
    this.renderPanels();
    const ms = parseDuration(this.refresh);
    if (ms) this.timer = setInterval(() => this.refreshPanels(), Math.max(ms, 5000));
  }

  timePicker() {
    const rel = /^now-(\w+)$/.exec(this.from);
    const sel = h("select", { id: "time-range", title: "Time range", onchange: e => {
      if (e.target.value === "custom") { custom.hidden = false; return; }
      this.setTime("now-" + e.target.value, "now");
    } }, RANGES.map(r => h("option", { value: r, selected: rel && rel[1] === r && this.to === "now" }, "Last " + r)),
    h("option", { value: "custom", selected: !(rel && this.to === "now") }, "Absolute…"));
    const r = this.range();
    const local = ms => { const d = new Date(ms - new Date().getTimezoneOffset() * 60000); return d.toISOString().slice(0, 19); };
    const fromIn = h("input", { type: "datetime-local", step: "1", id: "time-from", value: local(r.from) });
    const toIn = h("input", { type: "datetime-local", step: "1", id: "time-to", value: local(r.to) });
    const custom = h("span", { class: "custom-range", hidden: rel && this.to === "now" }, fromIn, " to ", toIn,
      h("button", { class: "btn", id: "time-apply", onclick: () => this.setTime(new Date(fromIn.value).getTime(), new Date(toIn.value).getTime()) }, "Apply"));
    const refresh = h("select", { id: "refresh", title: "Auto-refresh", onchange: e => { this.refresh = e.target.value; this.render(); } },
      ["", "5s", "10s", "30s", "1m", "5m", "15m"].map(x => h("option", { value: x, selected: x === (this.refresh || "") }, x ? "Every " + x : "Auto-refresh off")));
    return h("span", { class: "timepicker" }, sel, custom,
      h("button", { class: "btn", id: "zoom-out", title: "Zoom out", onclick: () => {
        const c = this.range(), span = c.to - c.from;
        this.setTime(Math.round(c.from - span / 2), Math.min(Date.now(), Math.round(c.to + span / 2)));
      } }, "⊖"),
      h("button", { class: "btn", id: "refresh-now", title: "Refresh", onclick: () => this.refreshPanels() }, "↻"), refresh);
  }

  variableBar() {
    const bar = h("div", { class: "variables" });
    for (const v of this.model.vars) {
      if (v.hide === 2 || v.type === "constant") continue;
      if (v.type === "adhoc") { bar.append(this.adHocBar(v)); continue; }
      const val = this.values[v.name] || { values: [], all: false };
      let input;
      if (v.type === "textbox") {
        input = h("input", { type: "text", value: val.values[0] || "", "data-var": v.name, onchange: e => this.changeVar(v, [e.target.value]) });
      } else {
        const opts = this.options[v.name] || [];
        // The select holds the value; the picker is what one sees and
        // clicks, as Grafana's dropdown: search, All, several values.
        const sel = h("select", { "data-var": v.name, multiple: v.multi, hidden: true,
          onchange: e => this.changeVar(v, [...e.target.selectedOptions].map(o => o.value)) },
        v.includeAll ? h("option", { value: "$__all", selected: val.all }, "All") : null,
        opts.map(o => h("option", { value: o.value, selected: !val.all && val.values.includes(o.value) }, o.text)));
        input = h("span", { class: "var-wrap" }, sel, variablePicker(v, sel, val, opts));
      }
      const err = this.varErrors && this.varErrors[v.name];
      bar.append(h("label", { class: "variable", title: err || "" }, h("span", {}, v.label), input, err ? h("span", { class: "error" }, "!") : null));
    }
    return bar;
  }

  // adHocBar shows an ad hoc filters variable: its filters, each
  // removable, and a form adding one (a label name of the workspace, an
  // operator, a value offered from the label's values). Every query of the
  // dashboard gets them (the query proxy adds them to its selectors).
  adHocBar(v) {
    const val = this.values[v.name] || { filters: [] };
    const set = filters => { this.values[v.name] = { values: filters.map(encodeAdHoc), all: false, filters }; this.render(); };
    const chips = val.filters.map((f, i) => h("span", { class: "adhoc-filter", "data-adhoc": encodeAdHoc(f) }, `${f.key} ${f.operator} ${f.value}`,
      h("button", { class: "btn", type: "button", title: "Remove this filter", "data-adhoc-remove": String(i),
        onclick: () => set(val.filters.filter((_, j) => j !== i)) }, "×")));
    const key = h("select", { "data-adhoc-key": v.name, title: "Label" }, h("option", { value: "" }, "label…"));
    const op = h("select", { "data-adhoc-op": v.name, title: "Operator" }, ["=", "!=", "=~", "!~"].map(o => h("option", { value: o }, o)));
    const listID = "adhoc-values-" + v.name;
    const value = h("input", { "data-adhoc-value": v.name, list: listID, placeholder: "value", size: 14 });
    const values = h("datalist", { id: listID });
    prom("labels", {}).then(names => key.append(...names.filter(n => n !== "__name__").map(n => h("option", { value: n }, n)))).catch(() => {});
    key.addEventListener("change", async () => {
      values.replaceChildren();
      if (!key.value) return;
      try { values.append(...(await prom(`label/${encodeURIComponent(key.value)}/values`, {})).slice(0, 500).map(x => h("option", { value: x }))); } catch (_) { /* offered values only */ }
    });
    const add = h("button", { class: "btn", type: "button", "data-adhoc-add": v.name, title: "Add the filter", onclick: () => {
      if (key.value) set([...val.filters, { key: key.value, operator: op.value, value: value.value }]);
    } }, "+");
    return h("span", { class: "variable adhoc", "data-adhoc-var": v.name }, h("span", {}, v.label), ...chips, key, op, value, values, add);
  }

  // adHoc is the parameter carrying the dashboard's ad hoc filters with a
  // query, or nothing without filters.
  adHoc() {
    const filters = this.model.vars.filter(v => v.type === "adhoc").flatMap(v => (this.values[v.name] || { filters: [] }).filters);
    return filters.length ? { orrery_adhoc: JSON.stringify(filters) } : {};
  }

  async changeVar(v, picked) {
    if (picked.includes("$__all") || !picked.length && v.includeAll) this.values[v.name] = { values: [], all: true };
    else this.values[v.name] = { values: picked, all: false };
    await this.resolveVariables(v.name);
    this.render();
  }

  renderPanels() {
    window.__orrery.panels = {};
    window.__orrery.ready = false;
    this.panels = [];
    const pending = [];
    for (const sec of this.model.sections) {
      let list = sec.panels;
      if (sec.row) {
        const own = sec.nested ? sec.inner : sec.panels;
        const head = h("div", { class: "row-header" + (sec.row.collapsed ? " collapsed" : ""), "data-row": sec.row.title, onclick: () => {
          sec.row.collapsed = !sec.row.collapsed;
          this.renderPanelsKeep();
        } }, h("span", { class: "chev" }, sec.row.collapsed ? "▸" : "▾"), " " + interpolate(sec.row.title, this.scope(), {}, "raw"), " ",
        h("small", {}, `(${own.length} panels)`));
        this.grid.append(head);
        if (sec.nested) {
          if (!sec.row.collapsed) {
            const bottom = Math.max(...sec.inner.map(p => (p.gridPos.y || 0) + (p.gridPos.h || 8)));
            const after = Math.min(...sec.panels.map(p => p.gridPos.y || 0));
            list = [...sec.inner, ...sec.panels.map(p => ({ ...p, gridPos: { ...p.gridPos, y: (p.gridPos.y || 0) - after + bottom } }))];
            if (!sec.inner.length) list = sec.panels;
          }
        } else if (sec.row.collapsed) {
          list = [];
        }
      }
      if (!list.length) continue;
      const g = h("div", { class: "grid" });
      this.grid.append(g);
      for (const inst of this.layout(list)) {
        const el = this.panelElement(inst);
        g.append(el);
        this.panels.push(inst);
        pending.push(this.runPanel(inst));
      }
    }
    Promise.allSettled(pending).then(() => { window.__orrery.ready = true; });
  }

  renderPanelsKeep() { this.grid.innerHTML = ""; this.renderPanels(); }

  // layout expands repeated panels and places every panel on the 24-column
  // grid at its gridPos, rows relative to the section; the copies of a
  // panel repeated horizontally share its line (wrapping after maxPerRow)
  // and push the panels below them down, as Grafana does.
  layout(panels) {
    const sorted = panels.slice().sort((a, b) => (a.gridPos.y - b.gridPos.y) || (a.gridPos.x - b.gridPos.x));
    const minY = sorted.length ? Math.min(...sorted.map(p => p.gridPos.y || 0)) : 0;
    const pushes = [];
    const out = [];
    for (const p of sorted) {
      const gp = { x: p.gridPos.x || 0, y: (p.gridPos.y || 0) - minY, w: Math.max(1, Math.min(24, p.gridPos.w || 12)), h: Math.max(1, p.gridPos.h || 8) };
      const y0 = gp.y + pushes.filter(e => gp.y >= e.from).reduce((a, e) => a + e.add, 0);
      const copies = this.expandRepeat(p);
      if (copies.length === 1) { out.push({ ...copies[0], pos: { ...gp, y: y0 } }); continue; }
      if (p.repeatDirection === "v") {
        copies.forEach((c, i) => out.push({ ...c, pos: { ...gp, y: y0 + i * gp.h } }));
        pushes.push({ from: gp.y + gp.h, add: (copies.length - 1) * gp.h });
        continue;
      }
      const w = Math.max(Math.floor(24 / copies.length), Math.floor(24 / (p.maxPerRow || 4)), 1);
      const perRow = Math.max(1, Math.floor(24 / w));
      copies.forEach((c, i) => out.push({ ...c, pos: { x: (i % perRow) * w, y: y0 + Math.floor(i / perRow) * gp.h, w, h: gp.h } }));
      pushes.push({ from: gp.y + gp.h, add: (Math.ceil(copies.length / perRow) - 1) * gp.h });
    }
    return out;
  }

  // expandRepeat returns a panel once per selected value of its repeat
  // variable (every option for All), each with that value in its scope.
  expandRepeat(p) {
    if (!p.repeat || !this.values[p.repeat]) return [{ ...p, override: null, key: String(p.id ?? p.title) }];
    const v = this.model.vars.find(x => x.name === p.repeat);
    const val = this.values[p.repeat];
    const vals = val.all ? (this.options[p.repeat] || []).map(o => o.value) : val.values;
    if (!vals.length) return [{ ...p, override: null, key: String(p.id ?? p.title) }];
    return vals.map(x => ({ ...p, override: { [p.repeat]: { values: [x], all: false, multi: v ? v.multi || v.includeAll : false } }, key: `${p.id ?? p.title}-${x}` }));
  }

  panelElement(p) {
    const title = interpolate(p.title, this.scope(p.override), {}, "raw");
    const body = h("div", { class: "panel-body" });
    const status = h("span", { class: "panel-status" });
    let el;
    el = h("div", { class: "panel panel-" + p.type, "data-panel": p.key, "data-title": title,
      style: `grid-column: ${Math.min(p.pos.x, 24 - p.pos.w) + 1} / span ${p.pos.w}; grid-row: ${p.pos.y + 1} / span ${Math.max(2, p.pos.h)}` },
    h("div", { class: "panel-header" }, h("span", { class: "panel-title", title: p.description || "" }, title), status,
      h("button", { class: "inspect", title: "View larger", "data-view": p.key, onclick: () => {
        el.classList.toggle("viewing");
        document.body.classList.toggle("has-viewing", el.classList.contains("viewing"));
        window.__orrery.ready = false;
        this.runPanel(p).finally(() => { window.__orrery.ready = true; });
      } }, "⤢"),
      canEdit() ? h("button", { class: "inspect", title: "Edit: queries, visualization and unit", "data-edit-panel": p.key, onclick: () => this.editPanel(p) }, "✎") : null,
      h("button", { class: "inspect", title: "Explore: the panel's queries, interpolated", "data-explore": p.key, onclick: () => this.explore(p) }, "↗"),
      h("button", { class: "inspect", title: "Inspect: PromQL and raw data", "data-inspect": p.key, onclick: () => this.inspect(p) }, "⋯")), body);
    p.el = body; p.status = status; p.shownTitle = title;
    return el;
  }

  refreshPanels() {
    window.__orrery.ready = false;
    Promise.allSettled(this.panels.map(p => this.runPanel(p))).then(() => { window.__orrery.ready = true; });
  }

  async runPanel(p) {
    const range = this.range();
    const width = p.el.clientWidth || 600;
    const info = { title: p.shownTitle, type: p.type, queries: [], series: [], error: null, range, ranAt: Date.now() };
    window.__orrery.panels[p.key] = info;
    if (p.type === "text") {
      const o = (p.raw && p.raw.options) || {};
      const src = interpolate(p.content, this.scope(p.override), {}, "raw");
      // HTML mode is shown as text: a dashboard may not run markup here.
      p.el.innerHTML = `<div class="text">${(o.mode || p.raw.mode) === "html" ? `<pre>${escapeHTML(src)}</pre>` : markdown(src)}</div>`;
      info.render = { text: p.el.textContent };
      return;
    }
    if (!SUPPORTED.has(p.type)) { unsupported(p.el, p.type); info.unsupported = p.type; return; }
    const targets = p.targets.filter(t => t.expr && !t.hide);
    if (!targets.length) { p.el.innerHTML = '<div class="nodata">No queries</div>'; return; }
    p.status.textContent = "…";
    try {
      const results = await Promise.all(targets.map(async (t, qi) => {
        const scope = this.scope(p.override);
        const res0 = queryResolution({ width, maxDataPoints: p.maxDataPoints, interval: interpolate(p.interval, scope, {}, "raw") },
          { interval: interpolate(t.interval || "", scope, {}, "raw"), intervalFactor: t.intervalFactor }, range, new Date(range.to).getTimezoneOffset());
        const b = { intervalMs: res0.intervalMs, rangeMs: range.to - range.from, scrapeMs: res0.scrapeMs };
        const expr = interpolate(t.expr, this.scope(p.override), b);
        const instant = !!t.instant || t.format === "table" && p.type === "table";
        const lf = interpolate(t.legendFormat || "", this.scope(p.override), b, "raw");
        const q = { refId: t.refId || "", expr, instant, legendFormat: lf, format: t.format || "time_series" };
        if (instant) {
          q.time = range.to / 1000;
          const r = await prom("query", { query: expr, time: String(q.time), ...this.adHoc() });
          q.raw = r;
          const res = r.resultType === "vector" ? r.result : r.resultType === "scalar" ? [{ metric: {}, value: r.result }] : (r.result || []).map(s => ({ metric: s.metric, value: s.values[s.values.length - 1] }));
          info.queries[qi] = q;
          return res.map(s => ({ qi, refId: q.refId, labels: s.metric, name: legend(lf, s.metric), values: [[s.value[0] * 1000, parseFloat(s.value[1])]] }));
        }
        const step = res0.stepS;
        q.start = res0.start; q.end = res0.end; q.step = step; q.interval = interpolate("$__interval", {}, b); q.rateInterval = interpolate("$__rate_interval", {}, b);
        const r = await prom("query_range", { query: expr, start: String(q.start), end: String(q.end), step: String(step), ...this.adHoc() });
        q.raw = r;
        info.queries[qi] = q;
        const res = r.resultType === "matrix" ? r.result : [];
        return res.map(s => ({ qi, refId: q.refId, labels: s.metric, name: legend(lf, s.metric), values: s.values.map(([ts, v]) => [ts * 1000, parseFloat(v)]) }));
      }));
      const series = results.flat();
      if (p.type === "timeseries" || p.type === "graph") series.push(...await this.detectorBands(info));
      // Each series is a field: its config from the defaults and the
      // overrides that match its name or query, its display name.
      for (const s of series) {
        s.field = fieldConfig(p, { name: s.name, type: "number", refId: s.refId });
        if (s.field.displayName) s.name = s.field.displayName;
      }
      info.series = series.map(s => ({ query: s.qi, name: s.name, labels: s.labels, values: s.values }));
      p.status.textContent = "";
      info.render = this.draw(p, series, range, info) || null;
    } catch (e) {
      info.error = e.message;
      p.status.textContent = "⚠";
      p.status.title = e.message;
      p.el.innerHTML = "";
      p.el.append(h("div", { class: "panel-error" }, e.message));
    }
  }

  // detectorBands returns, for each range query of a panel that an anomaly
  // detector of the workspace runs, the detector's lower and upper band
  // series over the same range and step (drawn dashed), recorded as
  // queries of their own. Which detectors run a query is asked once per
  // query while the dashboard is open.
  async detectorBands(info) {
    this.detectors = this.detectors || new Map();
    const bands = [];
    for (const q of info.queries.slice()) {
      if (!q || q.instant || q.band) continue;
      if (!this.detectors.has(q.expr)) {
        this.detectors.set(q.expr, api("GET", `/ui/api/workspaces/${state.ws}/anomalydetectors?query=${encodeURIComponent(q.expr)}`).catch(() => []));
      }
      for (const d of await this.detectors.get(q.expr)) {
        for (const [metric, what] of [["anomaly_detector:lower_band", "lower band"], ["anomaly_detector:upper_band", "upper band"]]) {
          const expr = `${metric}{anomaly_detector_id="${d.id}"}`;
          const r = await prom("query_range", { query: expr, start: String(q.start), end: String(q.end), step: String(q.step) });
          const bq = { refId: `${q.refId}-${what}`, expr, instant: false, start: q.start, end: q.end, step: q.step, band: true, detector: d.id, raw: r };
          const qi = info.queries.push(bq) - 1;
          for (const sr of (r.resultType === "matrix" ? r.result : [])) {
            bands.push({ qi, refId: bq.refId, labels: sr.metric, band: true, name: `${legend(q.legendFormat, sr.metric)} (${d.alias} ${what})`,
              values: sr.values.map(([ts, v]) => [ts * 1000, parseFloat(v)]) });
          }
        }
      }
    }
    return bands;
  }

  draw(p, series, range, info) {
    switch (p.type) {
      case "stat": case "singlestat": return stat(p.el, series, p);
      case "gauge": return gauge(p.el, series, p);
      case "bargauge": return bargauge(p.el, series, p);
      case "table": case "table-old": {
        let frames = seriesToFrames(series, info.queries, info.queries.length);
        // The old table panel joined its table-format queries into one
        // table.
        if (p.type === "table-old" && frames.length > 1 && info.queries.every(q => q.format === "table")) frames = TRANSFORMS.merge(frames);
        const unknown = [];
        frames = transform(frames, p.raw.transformations, unknown);
        if (unknown.length) { p.status.textContent = "⚠"; p.status.title = "Transformations Orrery does not apply: " + unknown.join(", "); info.unknownTransformations = unknown; }
        return table(p.el, frames, p, f => fieldConfig(p, f));
      }
      case "heatmap": return heatmap(p.el, series, p, range, info.queries);
      case "piechart": case "grafana-piechart-panel": return piechart(p.el, series, p);
      case "state-timeline": return stateTimeline(p.el, series, p, range);
      default: return timeseries(p.el, series, p, range, (a, b) => this.setTime(a, b));
    }
  }

  // editPanel edits a panel's queries, visualization type and unit in the
  // dashboard's JSON model: Apply shows the change, Save also stores it.
  editPanel(p) {
    const raw = p.raw;
    const dlg = h("dialog", { class: "inspect-dialog", id: "panel-editor" });
    const type = h("select", { id: "panel-edit-type" }, [...new Set([raw.type || "graph", ...SUPPORTED])].map(t => h("option", { value: t, selected: t === (raw.type || "graph") }, t)));
    const unit = h("input", { id: "panel-edit-unit", value: p.unit || "", placeholder: "unit, e.g. ms, bytes, reqps, percentunit", size: 30 });
    const targets = (raw.targets || []).map((t, i) => t && typeof t === "object" ? h("label", { class: "panel-edit-target" }, h("span", {}, t.refId || String.fromCharCode(65 + i)),
      Object.assign(h("textarea", { class: "promql panel-edit-expr", rows: 3, spellcheck: "false", "data-index": i }), { value: t.expr || "" })) : null);
    const apply = () => {
      raw.type = type.value;
      raw.fieldConfig = raw.fieldConfig && typeof raw.fieldConfig === "object" ? raw.fieldConfig : { defaults: {}, overrides: [] };
      raw.fieldConfig.defaults = raw.fieldConfig.defaults || {};
      raw.fieldConfig.defaults.unit = unit.value.trim() || undefined;
      if (Array.isArray(raw.yaxes) && raw.yaxes[0] && unit.value.trim()) raw.yaxes[0].format = unit.value.trim();
      for (const ta of dlg.querySelectorAll(".panel-edit-expr")) raw.targets[Number(ta.dataset.index)].expr = ta.value;
      this.model = normalize(this.json);
      dlg.close();
      this.render();
    };
    dlg.append(h("h3", {}, "Edit " + p.shownTitle), h("label", {}, "Visualization ", type), " ", h("label", {}, "Unit ", unit), h("h4", {}, "Queries"), ...targets.filter(Boolean),
      h("div", {}, h("button", { class: "btn", id: "panel-edit-apply", onclick: apply }, "Apply"),
        h("button", { class: "btn primary", id: "panel-edit-save", onclick: async () => { apply(); await this.save(); } }, "Save dashboard"),
        h("button", { class: "btn", onclick: () => dlg.close() }, "Cancel")));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  // explore opens Explore with the panel's first query (and its second
  // one in a split), interpolated, over the dashboard's relative range.
  explore(p) {
    const info = window.__orrery.panels[p.key] || { queries: [] };
    const qs = info.queries.filter(Boolean);
    if (!qs.length) return;
    const rel = /^now-(\w+)$/.exec(this.from);
    const range = rel && RANGES.includes(rel[1]) ? rel[1] : "1h";
    const q = new URLSearchParams({ ws: state.ws, expr: qs[0].expr, range, mode: qs[0].instant ? "instant" : "both" });
    if (qs[1]) { q.set("expr2", qs[1].expr); q.set("range2", range); }
    location.hash = "#/explore?" + q;
  }

  inspect(p) {
    const info = window.__orrery.panels[p.key] || { queries: [] };
    const queries = info.queries.map(q => {
      const params = q.instant ? `instant at ${new Date(q.time * 1000).toISOString()}` : `range ${new Date(q.start * 1000).toISOString()} – ${new Date(q.end * 1000).toISOString()}, step ${formatDuration(q.step * 1000)}`;
      return `<h4>${escapeHTML(q.refId)} <small>${escapeHTML(params)}</small></h4><pre class="promql">${escapeHTML(q.expr)}</pre>`;
    }).join("");
    const raw = JSON.stringify(info.queries.map(q => q.raw), null, 1);
    const dlg = h("dialog", { class: "inspect-dialog", id: "inspect" });
    dlg.innerHTML = `<h3>${escapeHTML(p.shownTitle)}</h3>${queries}<h4>Raw data</h4><pre class="raw">${escapeHTML(raw.length > 200000 ? raw.slice(0, 200000) + "\n…" : raw)}</pre>`;
    dlg.append(h("button", { class: "btn", onclick: () => dlg.close() }, "Close"));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  // save stores the current time range and variable values as the
  // dashboard's defaults.
  async save() {
    const j = this.json.dashboard && typeof this.json.dashboard === "object" ? this.json.dashboard : this.json;
    j.time = { from: this.from, to: this.to };
    j.refresh = this.refresh || "";
    for (const v of ((j.templating || {}).list || [])) {
      const val = this.values[v.name];
      if (!val) continue;
      if (v.type === "adhoc") { v.filters = val.filters; continue; }
      v.current = val.all ? { text: ["All"], value: ["$__all"] } : { text: val.values, value: v.multi ? val.values : val.values[0] };
    }
    await api("PUT", `/ui/api/workspaces/${state.ws}/dashboards/${encodeURIComponent(this.uid)}`, j);
    flash("Saved");
  }

  editJSON() {
    const dlg = h("dialog", { class: "inspect-dialog" });
    const ta = h("textarea", { class: "json-edit", spellcheck: "false" });
    ta.value = JSON.stringify(this.json, null, 2);
    const err = h("div", { class: "error" });
    dlg.append(h("h3", {}, "Dashboard JSON"), ta, err,
      h("button", { class: "btn primary", onclick: async () => {
        try {
          await api("PUT", `/ui/api/workspaces/${state.ws}/dashboards/${encodeURIComponent(this.uid)}`, ta.value);
          dlg.close(); await this.load();
        } catch (e) { err.textContent = e.message; }
      } }, "Save"), h("button", { class: "btn", onclick: () => dlg.close() }, "Cancel"));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  async remove() {
    if (!confirm(`Delete the dashboard "${this.model.title}"?`)) return;
    await api("DELETE", `/ui/api/workspaces/${state.ws}/dashboards/${encodeURIComponent(this.uid)}`);
    location.hash = "#/dashboards?ws=" + state.ws;
  }
}

// encodeAdHoc and parseAdHoc write and read an ad hoc filter as Grafana
// puts it in a var- URL parameter: key|operator|value.
function encodeAdHoc(f) { return [f.key, f.operator, f.value].join("|"); }
function parseAdHoc(s) {
  const [key, operator, ...rest] = String(s).split("|");
  return key && ["=", "!=", "=~", "!~"].includes(operator) ? { key, operator, value: rest.join("|") } : null;
}

// variablePicker is a variable's dropdown: a button showing the current
// value ("All", or the values joined by " + "), a menu with a search box,
// All when the variable has it, and the options. A single-value variable
// takes a click at once; a multi-value one collects clicks and applies
// them when the menu closes (a click outside, Escape or Enter).
function variablePicker(v, sel, val, opts) {
  const text = val.all ? "All" : val.values.map(x => (opts.find(o => o.value === x) || { text: x }).text).join(" + ") || "None";
  const picked = new Set(val.all ? ["$__all"] : val.values);
  const button = h("button", { class: "var-button", type: "button", "data-var-button": v.name, title: text }, text);
  const search = h("input", { class: "var-search", placeholder: "Search", "data-var-search": v.name });
  const items = [...(v.includeAll ? [{ text: "All", value: "$__all" }] : []), ...opts].map(o =>
    h("li", { class: "var-option" + (picked.has(o.value) ? " selected" : ""), "data-value": o.value, title: o.text }, v.multi ? h("i", { class: "check" }) : null, o.text));
  const menu = h("div", { class: "var-menu", hidden: true }, search, h("ul", {}, items));
  const root = h("span", { class: "var-picker", "data-var-picker": v.name }, button, menu);
  const apply = () => {
    for (const o of sel.options) o.selected = picked.has(o.value);
    sel.dispatchEvent(new Event("change"));
  };
  let changed = false;
  const close = commit => {
    if (menu.hidden) return;
    menu.hidden = true;
    document.removeEventListener("mousedown", outside, true);
    if (commit && changed) apply();
  };
  const outside = e => { if (!root.contains(e.target)) close(true); };
  button.addEventListener("click", () => {
    if (!menu.hidden) { close(true); return; }
    menu.hidden = false;
    search.value = "";
    items.forEach(li => { li.hidden = false; });
    search.focus();
    document.addEventListener("mousedown", outside, true);
  });
  search.addEventListener("input", () => {
    const q = search.value.toLowerCase();
    items.forEach(li => { li.hidden = q !== "" && !li.textContent.toLowerCase().includes(q); });
  });
  search.addEventListener("keydown", e => {
    if (e.key === "Escape") close(true);
    if (e.key === "Enter") {
      const first = items.find(li => !li.hidden);
      if (!v.multi && first) first.click(); else close(true);
    }
  });
  for (const li of items) {
    li.addEventListener("click", () => {
      const x = li.dataset.value;
      changed = true;
      if (!v.multi) { picked.clear(); picked.add(x); close(false); apply(); return; }
      if (x === "$__all") { picked.clear(); picked.add(x); } else {
        picked.delete("$__all");
        if (picked.has(x)) picked.delete(x); else picked.add(x);
        if (!picked.size && v.includeAll) picked.add("$__all");
      }
      items.forEach(it => it.classList.toggle("selected", picked.has(it.dataset.value)));
    });
  }
  return root;
}

export function flash(msg) {
  const f = h("div", { class: "flash" }, msg);
  document.body.append(f);
  setTimeout(() => f.remove(), 2500);
}
