// Orrery's web UI: a small hash-routed single page application.
import { api, prom, am, state, canEdit } from "./api.js";
import { h, timeseries, table, escapeHTML } from "./charts.js";
import { Dashboard, flash, parseTime, RANGES } from "./dashboard.js";
import { interpolate, queryResolution, parseDuration, formatDuration } from "./template.js";
import { format } from "./units.js";
import { seriesToFrames } from "./transform.js";

const main = () => document.getElementById("main");
let current = null;

function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  return { path: path || "/dashboards", params: new URLSearchParams(query || "") };
}

async function ensureSession() {
  if (state.session) return true;
  try {
    state.session = await api("GET", "/ui/api/session");
    return true;
  } catch (_) {
    return false;
  }
}

function pickWorkspace(params) {
  const list = state.session.workspaces;
  const want = params.get("ws") || localStorage.getItem("orrery-ws");
  state.ws = list.some(w => w.id === want) ? want : list.length ? list[0].id : null;
  if (state.ws) localStorage.setItem("orrery-ws", state.ws);
}

function nav(active) {
  const s = state.session;
  const link = (href, label, id) => h("a", { href: href + (state.ws ? "?ws=" + state.ws : ""), class: active === id ? "active" : "", id: "nav-" + id }, label);
  const wsSel = h("select", { id: "workspace", title: "Workspace", onchange: e => {
    state.ws = e.target.value;
    localStorage.setItem("orrery-ws", state.ws);
    location.hash = "#/" + (active === "dashboard" ? "dashboards" : active) + "?ws=" + state.ws;
  } }, s.workspaces.map(w => h("option", { value: w.id, selected: w.id === state.ws }, w.alias ? `${w.alias} (${w.id.slice(0, 11)}…)` : w.id)));
  return h("nav", { class: "top" }, h("a", { class: "brand", href: "#/dashboards" }, "◎ Orrery"), wsSel,
    link("#/dashboards", "Dashboards", "dashboards"), link("#/explore", "Explore", "explore"), link("#/alerting", "Alerting", "alerting"),
    link("#/usage", "Usage", "usage"), link("#/scrapers", "Scrapers", "scrapers"), s.role === "admin" ? link("#/users", "Users", "users") : null,
    h("span", { class: "spacer" }),
    h("span", { class: "who", id: "who" }, `${s.name} · ${s.role}`),
    h("button", { class: "btn", id: "logout", onclick: async () => {
      await api("POST", "/ui/api/logout").catch(() => {});
      state.session = null;
      location.hash = "#/login";
    } }, "Log out"));
}

async function render() {
  if (current && current.destroy) current.destroy();
  current = null;
  const { path, params } = route();
  const root = main();
  if (path === "/login") return renderLogin(root);
  if (!(await ensureSession())) { location.hash = "#/login"; return; }
  pickWorkspace(params);
  const page = path.split("/")[1];
  document.getElementById("nav").replaceChildren(nav(page === "d" ? "dashboard" : page));
  root.innerHTML = "";
  if (!state.ws && page !== "users") {
    root.append(h("div", { class: "empty" }, "You may not see any workspace yet. Ask an admin to grant you one."));
    return;
  }
  try {
    switch (page) {
      case "d": current = new Dashboard(root, decodeURIComponent(path.split("/")[2] || ""), params); await current.load(); break;
      case "explore": current = await renderExplore(root, params); break;
      case "alerting": await renderAlerting(root); break;
      case "usage": await renderUsage(root); break;
      case "scrapers": await renderScrapers(root); break;
      case "users": await renderUsers(root); break;
      default: await renderDashboards(root);
    }
  } catch (e) {
    root.append(h("div", { class: "panel-error", id: "page-error" }, e.message));
  }
}

function renderLogin(root) {
  document.getElementById("nav").replaceChildren();
  const err = h("div", { class: "error", id: "login-error" });
  const name = h("input", { id: "login-name", name: "username", autocomplete: "username", required: true, autofocus: true });
  const pass = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  root.replaceChildren(h("form", { class: "login", id: "login-form", onsubmit: async e => {
    e.preventDefault();
    try {
      state.session = await api("POST", "/ui/api/login", { name: name.value, password: pass.value });
      location.hash = "#/dashboards";
    } catch (x) { err.textContent = x.message; }
  } }, h("h1", {}, "◎ Orrery"), h("label", {}, "User", name), h("label", {}, "Password", pass),
  h("button", { class: "btn primary", type: "submit", id: "login-submit" }, "Log in"), err));
}

async function renderDashboards(root) {
  const list = await api("GET", `/ui/api/workspaces/${state.ws}/dashboards`);
  const tbody = h("tbody");
  // Search by title and filter by tag, as Grafana's dashboard browser.
  const search = h("input", { id: "dashboard-search", type: "search", placeholder: "Search dashboards by title", size: 32 });
  let tagFilter = "", folderFilter = null;
  const tagBox = h("span", { id: "dashboard-tag-filter" });
  const folderBox = h("span", { id: "dashboard-folder-filter" });
  const filter = () => {
    const q = search.value.toLowerCase();
    for (const tr of tbody.children) {
      tr.hidden = !(tr.dataset.title.includes(q) && (!tagFilter || JSON.parse(tr.dataset.tags).includes(tagFilter)) &&
        (folderFilter === null || tr.dataset.folder === folderFilter));
    }
    tagBox.replaceChildren(...(tagFilter ? [h("span", { class: "tag" }, tagFilter), h("button", { class: "btn", onclick: () => { tagFilter = ""; filter(); } }, "×")] : []));
    folderBox.replaceChildren(...(folderFilter !== null ? [h("span", { class: "folder" }, "📁 " + (folderFilter || "General")),
      h("button", { class: "btn", onclick: () => { folderFilter = null; filter(); } }, "×")] : []));
  };
  // Move puts a dashboard in another folder (empty: the top level).
  const move = async d => {
    const to = prompt(`Move "${d.title}" to the folder (empty for none):`, d.folder || "");
    if (to === null) return;
    const path = `/ui/api/workspaces/${state.ws}/dashboards/${encodeURIComponent(d.uid)}`;
    const model = await api("GET", path);
    await api("PUT", `${path}?folder=${encodeURIComponent(to.trim())}`, model);
    render();
  };
  search.addEventListener("input", filter);
  for (const d of list) {
    const tags = d.tags || [];
    tbody.append(h("tr", { "data-title": d.title.toLowerCase(), "data-tags": JSON.stringify(tags), "data-folder": d.folder || "" },
      h("td", { class: "folder" }, h("a", { href: "#", class: "folder-link", "data-folder": d.folder || "",
        onclick: e => { e.preventDefault(); folderFilter = d.folder || ""; filter(); } }, "📁 " + (d.folder || "General"))),
      h("td", {}, h("a", { href: `#/d/${encodeURIComponent(d.uid)}?ws=${state.ws}`, class: "dash-link" }, d.title), " ",
        tags.map(tg => h("a", { href: "#", class: "tag", "data-tag": tg, onclick: e => { e.preventDefault(); tagFilter = tg; filter(); } }, tg))),
      h("td", { class: "mono" }, d.uid), h("td", {}, new Date(d.modifiedAt).toLocaleString()),
      h("td", {}, h("a", { class: "btn", href: `/ui/api/workspaces/${state.ws}/dashboards/${encodeURIComponent(d.uid)}?download=1` }, "Export"),
        h("button", { class: "btn", "data-versions": d.uid, onclick: () => showVersions(d) }, "Versions"),
        canEdit() ? h("button", { class: "btn", "data-move": d.uid, onclick: () => move(d) }, "Move") : null,
        canEdit() ? h("button", { class: "btn danger", onclick: async () => {
          if (!confirm(`Delete "${d.title}"?`)) return;
          await api("DELETE", `/ui/api/workspaces/${state.ws}/dashboards/${encodeURIComponent(d.uid)}`);
          render();
        } }, "Delete") : null)));
  }
  root.append(h("div", { class: "toolbar" }, h("h2", {}, "Dashboards"), search, folderBox, tagBox),
    h("table", { class: "data", id: "dashboards" }, h("thead", {}, h("tr", {}, h("th", {}, "Folder"), h("th", {}, "Title"), h("th", {}, "UID"), h("th", {}, "Modified"), h("th", {}))), tbody));
  if (!list.length) root.append(h("p", { class: "empty" }, "No dashboards in this workspace yet."));
  if (!canEdit()) return;
  const ta = h("textarea", { id: "import-json", placeholder: "Paste a Grafana dashboard's JSON model here, or choose a file.", spellcheck: "false" });
  const file = h("input", { type: "file", accept: ".json,application/json", id: "import-file", onchange: async e => { ta.value = await e.target.files[0].text(); } });
  const err = h("div", { class: "error", id: "import-error" });
  const folders = [...new Set(list.map(d => d.folder).filter(Boolean))].sort();
  const folderIn = h("input", { id: "import-folder", list: "import-folders", placeholder: "Folder (optional)", size: 18 });
  const folderList = h("datalist", { id: "import-folders" }, folders.map(f => h("option", { value: f })));
  const post = async text => {
    const f = folderIn.value.trim();
    const d = await api("POST", `/ui/api/workspaces/${state.ws}/dashboards${f ? "?folder=" + encodeURIComponent(f) : ""}`, text);
    location.hash = `#/d/${encodeURIComponent(d.uid)}?ws=${state.ws}`;
  };
  // An import whose uid names an existing dashboard asks first: overwrite
  // it, import a copy under a new uid, or cancel.
  const doImport = async text => {
    err.textContent = "";
    let model;
    try { model = JSON.parse(text); } catch (_) { model = null; }
    const d = model && (model.dashboard && typeof model.dashboard === "object" ? model.dashboard : model);
    const existing = d && d.uid ? list.find(x => x.uid === d.uid) : null;
    if (!existing) { try { await post(text); } catch (e) { err.textContent = e.message; } return; }
    const dlg = h("dialog", { class: "inspect-dialog", id: "import-overwrite" },
      h("h3", {}, "A dashboard with this uid exists"),
      h("p", {}, `"${existing.title}" (uid ${existing.uid}, modified ${new Date(existing.modifiedAt).toLocaleString()}) has the uid of "${d.title || "Untitled"}".`),
      h("button", { class: "btn danger", id: "import-overwrite-confirm", onclick: async () => {
        dlg.close();
        try { await post(text); } catch (e) { err.textContent = e.message; }
      } }, "Overwrite it"),
      h("button", { class: "btn primary", id: "import-copy", onclick: async () => {
        dlg.close();
        d.uid = Math.random().toString(36).slice(2, 11);
        d.title = (d.title || "Untitled") + " (copy)";
        delete d.id;
        try { await post(JSON.stringify(model)); } catch (e) { err.textContent = e.message; }
      } }, "Import as a copy"),
      h("button", { class: "btn", id: "import-cancel", onclick: () => dlg.close() }, "Cancel"));
    dlg.addEventListener("close", () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  };
  root.append(h("section", { class: "import", id: "import" }, h("h3", {}, "Import"), ta, h("div", {}, file, folderIn, folderList,
    h("button", { class: "btn primary", id: "import-submit", onclick: () => doImport(ta.value) }, "Import"),
    h("button", { class: "btn", id: "install-envoy", onclick: async () => doImport(await api("GET", "/ui/api/builtin/envoy", undefined, true)) }, "Install Orrery's Envoy dashboard")), err));
}

// showVersions lists a dashboard's kept versions (newest first), each
// exportable, and lets an editor restore an earlier one: it becomes the
// newest version, as Grafana's restore does.
async function showVersions(d) {
  const base = `/ui/api/workspaces/${state.ws}/dashboards/${encodeURIComponent(d.uid)}`;
  const err = h("div", { class: "error", id: "versions-error" });
  const tbody = h("tbody");
  const dlg = h("dialog", { class: "inspect-dialog", id: "versions" }, h("h3", {}, `Versions of "${d.title}"`),
    h("table", { class: "data" }, h("thead", {}, h("tr", {}, h("th", {}, "Version"), h("th", {}, "Title"), h("th", {}, "Saved by"), h("th", {}, "Saved"), h("th", {}))), tbody),
    err, h("button", { class: "btn", id: "versions-close", onclick: () => dlg.close() }, "Close"));
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  let versions;
  try { versions = await api("GET", `${base}/versions`); } catch (e) { err.textContent = e.message; return; }
  versions.forEach((v, i) => tbody.append(h("tr", { "data-version": v.version },
    h("td", {}, String(v.version), i === 0 ? " (current)" : ""), h("td", {}, v.title), h("td", {}, v.author || "—"),
    h("td", {}, new Date(v.createdAt).toLocaleString()),
    h("td", {}, i > 0 && canEdit() ? h("button", { class: "btn", "data-restore": v.version, onclick: async () => {
      if (!confirm(`Restore version ${v.version} of "${d.title}"? It becomes the newest version; the others stay.`)) return;
      try { await api("POST", `${base}/versions/${v.version}/restore`); } catch (e) { err.textContent = e.message; return; }
      dlg.close();
      render();
    } }, "Restore") : null))));
}

// Explore: one or two panes (split), each a PromQL box with completion of
// metric and label names, a range or instant query (or both) with an
// automatic or given step, a graph and a table; the queries run are kept
// per user and workspace in this browser's history.
async function renderExplore(root, params) {
  const names = { metrics: [], labels: [] };
  prom("label/__name__/values").then(v => { names.metrics = v || []; }).catch(() => {});
  prom("labels").then(v => { names.labels = v || []; }).catch(() => {});
  const histKey = `orrery-explore-history:${state.session.name}:${state.ws}`;
  const loadHistory = () => { try { return JSON.parse(localStorage.getItem(histKey) || "[]"); } catch (_) { return []; } };
  const histList = h("ul", { class: "explore-history", id: "explore-history" });
  const panes = [];
  const showHistory = () => {
    histList.replaceChildren(...loadHistory().map(x => h("li", {}, h("a", { href: "#", class: "mono", title: new Date(x.at).toLocaleString(), onclick: e => {
      e.preventDefault();
      panes[0].set(x.expr);
      panes[0].run();
    } }, x.expr))));
  };
  const remember = expr => {
    const list = loadHistory().filter(x => x.expr !== expr);
    list.unshift({ expr, at: Date.now() });
    localStorage.setItem(histKey, JSON.stringify(list.slice(0, 50)));
    showHistory();
  };
  const syncURL = () => {
    const q = new URLSearchParams({ ws: state.ws });
    panes.forEach((p, i) => {
      const sfx = i ? String(i + 1) : "";
      q.set("expr" + sfx, p.expr.value); q.set("range" + sfx, p.rangeSel.value); q.set("mode" + sfx, p.mode.value);
      if (p.step.value) q.set("step" + sfx, p.step.value);
    });
    history.replaceState(null, "", "#/explore?" + q);
  };
  const pane = idx => {
    const sfx = idx ? "-" + (idx + 1) : "";
    const psfx = idx ? String(idx + 1) : "";
    const expr = h("textarea", { id: "explore-expr" + sfx, class: "promql", rows: 2, spellcheck: "false", placeholder: "PromQL, e.g. sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total[5m]))" });
    expr.value = params.get("expr" + psfx) || "";
    const suggest = h("ul", { class: "suggest", id: "suggest" + sfx, hidden: true });
    const rangeSel = h("select", { id: "explore-range" + sfx }, RANGES.map(r => h("option", { value: r, selected: r === (params.get("range" + psfx) || "1h") }, "Last " + r)));
    const mode = h("select", { id: "explore-mode" + sfx, title: "Query type" }, [["both", "Range and instant"], ["range", "Range"], ["instant", "Instant"]].map(([v, l]) =>
      h("option", { value: v, selected: v === (params.get("mode" + psfx) || "both") }, l)));
    const step = h("input", { id: "explore-step" + sfx, placeholder: "step: auto", size: 9, value: params.get("step" + psfx) || "", title: "Step of the range query, e.g. 30s; empty: as Grafana computes it" });
    const graph = h("div", { class: "explore-graph panel-body" });
    const tbl = h("div", { class: "explore-table" });
    const err = h("div", { class: "error", id: "explore-error" + sfx });
    const stepNote = h("small", { class: "explore-step-note", id: "explore-step-used" + sfx });
    let sel = -1, items = [];
    const word = () => {
      const before = expr.value.slice(0, expr.selectionStart);
      const m = /([a-zA-Z_:][\w:]*)$/.exec(before);
      return m ? m[1] : "";
    };
    const inBraces = () => {
      const before = expr.value.slice(0, expr.selectionStart);
      return before.lastIndexOf("{") > before.lastIndexOf("}") || /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(before);
    };
    const update = () => {
      const w = word();
      if (!w) { suggest.hidden = true; return; }
      const pool = inBraces() ? names.labels : names.metrics.concat(["sum", "rate", "irate", "increase", "histogram_quantile", "avg", "max", "min", "count", "topk", "label_replace"]);
      items = pool.filter(n => n.startsWith(w) && n !== w).slice(0, 12);
      sel = items.length ? 0 : -1;
      suggest.replaceChildren(...items.map((n, i) => h("li", { class: i === sel ? "sel" : "", onmousedown: e => { e.preventDefault(); accept(n); } }, n)));
      suggest.hidden = !items.length;
    };
    const accept = n => {
      const w = word(), pos = expr.selectionStart;
      expr.value = expr.value.slice(0, pos - w.length) + n + expr.value.slice(pos);
      expr.selectionStart = expr.selectionEnd = pos - w.length + n.length;
      suggest.hidden = true;
    };
    expr.addEventListener("input", update);
    expr.addEventListener("keydown", e => {
      if (!suggest.hidden && items.length && (e.key === "Tab" || e.key === "ArrowDown" || e.key === "ArrowUp" || e.key === "Enter" && sel >= 0 && !e.shiftKey)) {
        if (e.key === "ArrowDown" || e.key === "ArrowUp") {
          sel = (sel + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
          [...suggest.children].forEach((li, i) => li.className = i === sel ? "sel" : "");
        } else accept(items[sel]);
        e.preventDefault();
        return;
      }
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); run(); }
      if (e.key === "Escape") suggest.hidden = true;
    });
    const run = async () => {
      err.textContent = "";
      if (!expr.value.trim()) return;
      const now = Date.now(), from = parseTime("now-" + rangeSel.value, now);
      const res0 = queryResolution({ width: Math.max(graph.clientWidth, 300) }, {}, { from, to: now }, new Date(now).getTimezoneOffset());
      const given = parseDuration(step.value.trim());
      if (step.value.trim() && !given) { err.textContent = `step ${step.value}: write a duration such as 15s, 1m or 1h`; return; }
      const stepS = given ? given / 1000 : res0.stepS;
      const start = given ? Math.floor(from / 1000 / stepS) * stepS : res0.start, end = given ? Math.floor(now / 1000 / stepS) * stepS : res0.end;
      stepNote.textContent = mode.value === "instant" ? "" : `step ${formatDuration(stepS * 1000)}`;
      syncURL();
      remember(expr.value.trim());
      const info = { expr: expr.value, mode: mode.value, step: stepS, start, end, series: [], instant: [] };
      try {
        const [r, inst] = await Promise.all([
          mode.value !== "instant" ? prom("query_range", { query: expr.value, start: String(start), end: String(end), step: String(stepS) }) : null,
          mode.value !== "range" ? prom("query", { query: expr.value, time: String(now / 1000) }) : null]);
        graph.hidden = !r;
        tbl.hidden = !inst;
        if (r) {
          info.series = (r.result || []).map(s => ({ labels: s.metric, name: legendName(s.metric), values: s.values.map(([t, v]) => [t * 1000, parseFloat(v)]) }));
          timeseries(graph, info.series, { unit: "short", decimals: null, legend: { show: true }, thresholds: { steps: [] } }, { from, to: now });
        }
        if (inst) {
          info.instant = inst.resultType === "vector" ? inst.result : inst.resultType === "scalar" ? [{ metric: {}, value: inst.result }] : [];
          const rows = info.instant.map(s => ({ qi: 0, refId: "A", labels: s.metric, name: legendName(s.metric), values: [[s.value[0] * 1000, parseFloat(s.value[1])]] }));
          table(tbl, seriesToFrames(rows, [{ refId: "A", format: "table" }], 1), { unit: "none", decimals: null, thresholds: { steps: [] } });
        }
      } catch (e) { err.textContent = e.message; }
      if (idx === 0) window.__orreryExplore = info; else window.__orreryExplore2 = info;
    };
    const el = h("div", { class: "explore-pane", id: "explore-pane" + sfx },
      h("div", { class: "explore-box" }, expr, suggest),
      h("div", { class: "explore-actions" }, rangeSel, mode, step, h("button", { class: "btn primary", id: "explore-run" + sfx, onclick: run }, "Run query"), stepNote, err),
      graph, tbl);
    return { el, expr, rangeSel, mode, step, run, set: v => { expr.value = v; } };
  };
  const split = h("div", { class: "explore-split" });
  const addPane = () => { const p = pane(panes.length); panes.push(p); split.append(p.el); return p; };
  addPane();
  const splitBtn = h("button", { class: "btn", id: "explore-split", onclick: () => {
    if (panes.length > 1) { panes.pop().el.remove(); split.classList.remove("two"); splitBtn.textContent = "Split"; syncURL(); return; }
    const p = addPane();
    p.set(panes[0].expr.value);
    split.classList.add("two");
    splitBtn.textContent = "Close split";
    if (p.expr.value) p.run();
  } }, "Split");
  root.append(h("div", { class: "toolbar" }, h("h2", {}, "Explore"), splitBtn), split,
    h("details", { class: "explore-history-box", open: true }, h("summary", {}, "Query history"), histList));
  showHistory();
  if (params.get("expr2") !== null) { const p = addPane(); split.classList.add("two"); splitBtn.textContent = "Close split"; if (p.expr.value) p.run(); }
  if (panes[0].expr.value) panes[0].run();
  return null;
}

function legendName(metric) {
  const name = metric.__name__ || "";
  const labels = Object.keys(metric).filter(k => k !== "__name__").sort().map(k => `${k}="${metric[k]}"`);
  return labels.length ? `${name}{${labels.join(", ")}}` : name || "{}";
}

async function renderAlerting(root) {
  root.append(h("div", { class: "toolbar" }, h("h2", {}, "Alerting")));
  const rules = await prom("rules");
  const groups = h("section", { id: "rule-groups" }, h("h3", {}, "Rule groups"));
  if (!rules.groups.length) groups.append(h("p", { class: "empty" }, "No rule groups. Create a rule groups namespace through the control plane API."));
  for (const g of rules.groups) {
    const rows = g.rules.map(r => h("tr", { class: "state-" + (r.state || r.health) },
      h("td", {}, r.name), h("td", {}, r.type), h("td", {}, h("span", { class: "badge " + (r.state || r.health) }, r.state || r.health)),
      h("td", { class: "mono" }, r.query), h("td", { class: "error" }, r.lastError || ""),
      h("td", {}, r.lastEvaluation ? new Date(r.lastEvaluation).toLocaleTimeString() : "")));
    groups.append(h("h4", {}, `${g.name} `, h("small", {}, `${g.file} · every ${g.interval}s`)),
      h("table", { class: "data" }, h("thead", {}, h("tr", {}, ["Rule", "Type", "State", "Query", "Last error", "Evaluated"].map(x => h("th", {}, x)))), h("tbody", {}, rows)));
  }
  root.append(groups);
  if (canEdit()) await rulesEditor(groups);
  const pending = (await prom("alerts")).alerts;
  // The alert manager says which alerts a silence mutes: an alert whose
  // labels it holds as suppressed by a silence shows as silenced.
  const amHeld = await am("GET", "alerts").catch(() => []);
  const silencedBy = a => {
    const m = amHeld.find(x => Object.entries(a.labels).every(([k, v]) => x.labels[k] === v));
    return m && m.status && m.status.state === "suppressed" && (m.status.silencedBy || []).length ? m.status.silencedBy : null;
  };
  const alertsSec = h("section", { id: "alerts" }, h("h3", {}, "Firing and pending alerts"));
  const alertRows = pending.map(a => {
    const sil = silencedBy(a);
    const st = sil ? "silenced" : a.state;
    return h("tr", { "data-alert": a.labels.alertname, "data-state": st }, h("td", {}, a.labels.alertname),
      h("td", {}, h("span", { class: "badge " + st, title: sil ? `${a.state}, muted by silence ${sil.join(", ")}` : "" }, st)),
    h("td", { class: "mono" }, Object.entries(a.labels).filter(([k]) => k !== "alertname").map(([k, v]) => `${k}="${v}"`).join(", ")),
    h("td", {}, a.activeAt ? new Date(a.activeAt).toLocaleString() : ""), h("td", {}, (a.annotations || {}).summary || ""));
  });
  alertsSec.append(h("table", { class: "data" }, h("thead", {}, h("tr", {}, ["Alert", "State", "Labels", "Active since", "Summary"].map(x => h("th", {}, x)))), h("tbody", {}, alertRows)));
  if (!pending.length) alertsSec.append(h("p", { class: "empty" }, "No alert is firing or pending."));
  root.append(alertsSec);

  root.append(await contactPoints());

  const sil = h("section", { id: "silences" }, h("h3", {}, "Silences"));
  root.append(sil);
  let silences;
  try {
    silences = await am("GET", "silences");
    sil.append(h("p", {}, `The alert manager holds ${amHeld.length} alert(s): ${amHeld.filter(a => a.status.state === "suppressed").length} silenced or inhibited.`));
  } catch (e) {
    sil.append(h("p", { class: "empty" }, e.message));
    return;
  }
  silences.sort((a, b) => (a.status.state === "expired") - (b.status.state === "expired") || b.startsAt.localeCompare(a.startsAt));
  sil.append(h("table", { class: "data", id: "silence-list" }, h("thead", {}, h("tr", {}, ["Matchers", "State", "Ends", "Comment", "By", ""].map(x => h("th", {}, x)))),
    h("tbody", {}, silences.map(s => h("tr", {}, h("td", { class: "mono" }, s.matchers.map(m => `${m.name}${m.isEqual === false ? "!" : ""}${m.isRegex ? "=~" : "="}"${m.value}"`).join(", ")),
      h("td", {}, h("span", { class: "badge " + s.status.state }, s.status.state)), h("td", {}, new Date(s.endsAt).toLocaleString()),
      h("td", {}, s.comment), h("td", {}, s.createdBy),
      h("td", {}, canEdit() && s.status.state !== "expired" ? h("button", { class: "btn danger", onclick: async () => { await am("DELETE", "silence/" + s.id); render(); } }, "Expire") : null))))));
  if (!canEdit()) return;
  const matchers = h("input", { id: "silence-matchers", placeholder: 'alertname="HighLatency", envoy_cluster_name=~"pay.*"', size: 50 });
  const dur = h("select", { id: "silence-duration" }, ["1h", "2h", "4h", "12h", "1d", "7d"].map(d => h("option", { value: d }, d)));
  const comment = h("input", { id: "silence-comment", placeholder: "Why", size: 30 });
  const err = h("div", { class: "error", id: "silence-error" });
  sil.append(h("div", { class: "silence-form" }, h("h4", {}, "New silence"), matchers, dur, comment,
    h("button", { class: "btn primary", id: "silence-create", onclick: async () => {
      try {
        const ms = matchers.value.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/).map(s => s.trim()).filter(Boolean).map(s => {
          const m = /^([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"?(.*?)"?$/.exec(s);
          if (!m) throw new Error(`The matcher ${s} is not name="value", name!="value", name=~"regex" or name!~"regex".`);
          if (m[2].includes("~")) {
            try { new RegExp("^(?:" + m[3] + ")$"); } catch (x) { throw new Error(`The matcher ${s} has a bad regular expression: ${x.message.replace(/^Invalid regular expression: /, "")}.`); }
          }
          return { name: m[1], value: m[3], isRegex: m[2].includes("~"), isEqual: !m[2].startsWith("!") };
        });
        if (!ms.length) throw new Error("Write at least one matcher, e.g. alertname=\"HighLatency\".");
        const now = Date.now(), ends = parseTime("now-" + dur.value, now);
        await am("POST", "silences", { matchers: ms, startsAt: new Date(now).toISOString(), endsAt: new Date(2 * now - ends).toISOString(),
          createdBy: state.session.name, comment: comment.value || "silenced from the Orrery UI" });
        render();
      } catch (e) { err.textContent = e.message; }
    } }, "Create"), err));
}

// ruleAtCursor finds the expression of the rule the cursor is in: the
// last expr: at or above the cursor's line (a block scalar's lines
// joined).
export function ruleAtCursor(text, pos) {
  const lines = text.split("\n");
  let line = text.slice(0, pos).split("\n").length - 1;
  for (let i = line; i >= 0; i--) {
    const m = /^(\s*)(?:-\s+)?expr:\s*(.*)$/.exec(lines[i]);
    if (!m) { if (i < line && /^\s*-\s+(alert|record):/.test(lines[i])) return null; continue; }
    let v = m[2].trim();
    if (v === "|" || v === ">" || v === "|-" || v === ">-") {
      const out = [];
      const indent = m[1].length;
      for (let j = i + 1; j < lines.length; j++) {
        if (lines[j].trim() && lines[j].search(/\S/) <= indent) break;
        out.push(lines[j].trim());
      }
      v = out.join(v.startsWith(">") ? " " : "\n").trim();
    } else if (/^'.*'$/.test(v)) v = v.slice(1, -1).replace(/''/g, "'");
    else if (/^".*"$/.test(v)) { try { v = JSON.parse(v); } catch (_) { v = v.slice(1, -1); } }
    return v;
  }
  return null;
}

const RULE_TEMPLATE = `groups:
  - name: example
    interval: 1m
    rules:
      - alert: HighRequestLatency
        expr: histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[5m]))) > 50
        for: 5m
        labels: {severity: page}
        annotations: {summary: 'p99 latency of {{ $labels.envoy_cluster_name }} is {{ $value }} ms'}
      - record: cluster:envoy_upstream_rq:rate5m
        expr: sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total[5m]))
`;

// rulesEditor edits a rule groups namespace's YAML through the same API
// as AMP's (the server validates it as promtool does, applies quotas and
// reloads the ruler), with a live preview of the expression under the
// cursor: its graph over the last hour and the series it returns now —
// for an alerting rule, the series that would fire.
async function rulesEditor(sec) {
  const base = `/ui/api/workspaces/${state.ws}/rulegroupsnamespaces`;
  let list = [];
  try { list = ((await api("GET", base)) || {}).ruleGroupsNamespaces || []; } catch (e) { sec.append(h("p", { class: "error" }, e.message)); return; }
  const name = h("input", { id: "rules-name", placeholder: "namespace name", size: 24 });
  const ta = h("textarea", { id: "rules-yaml", spellcheck: "false" });
  const err = h("div", { class: "error", id: "rules-error" });
  const exprBox = h("pre", { class: "promql", id: "rules-preview-expr" });
  const graph = h("div", { class: "panel-body" });
  const tbl = h("div", { class: "explore-table", id: "rules-preview-series" });
  const note = h("p", { id: "rules-preview-note" });
  let current = null; // The namespace being edited; null for a new one.
  const editor = h("div", { class: "rules-editor", id: "rules-editor", hidden: true },
    h("div", {}, h("div", {}, name,
      h("button", { class: "btn primary", id: "rules-save", onclick: async () => {
        err.textContent = "";
        const data = btoa(unescape(encodeURIComponent(ta.value)));
        try {
          if (current) await api("PUT", `${base}/${encodeURIComponent(current)}`, { data });
          else await api("POST", base, { name: name.value.trim(), data });
          flash("Saved: the ruler loads it now");
          render();
        } catch (e) { err.textContent = e.message; }
      } }, "Save"),
      h("button", { class: "btn danger", id: "rules-delete", onclick: async () => {
        if (!current || !confirm(`Delete the rule groups namespace ${current}?`)) return;
        try { await api("DELETE", `${base}/${encodeURIComponent(current)}`); render(); } catch (e) { err.textContent = e.message; }
      } }, "Delete"),
      h("button", { class: "btn", onclick: () => { editor.hidden = true; } }, "Close")), ta, err),
    h("div", { class: "rules-preview" }, h("h4", {}, "Preview of the expression under the cursor"), exprBox, note, graph, tbl));
  let timer = null, last = "";
  const preview = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const expr = ruleAtCursor(ta.value, ta.selectionStart);
      if (!expr || expr === last) return;
      last = expr;
      exprBox.textContent = expr;
      const now = Date.now(), from = now - 3600000;
      const res0 = queryResolution({ width: Math.max(graph.clientWidth, 300) }, {}, { from, to: now }, new Date(now).getTimezoneOffset());
      try {
        const [r, inst] = await Promise.all([
          prom("query_range", { query: expr, start: String(res0.start), end: String(res0.end), step: String(res0.stepS) }),
          prom("query", { query: expr, time: String(now / 1000) })]);
        const series = (r.result || []).map(s => ({ labels: s.metric, name: legendName(s.metric), values: s.values.map(([t, v]) => [t * 1000, parseFloat(v)]) }));
        timeseries(graph, series, { unit: "short", decimals: null, legend: { show: false }, thresholds: { steps: [] } }, { from, to: now });
        const res = inst.resultType === "vector" ? inst.result : inst.resultType === "scalar" ? [{ metric: {}, value: inst.result }] : [];
        const rows = res.map(s => ({ qi: 0, refId: "A", labels: s.metric, name: legendName(s.metric), values: [[s.value[0] * 1000, parseFloat(s.value[1])]] }));
        table(tbl, seriesToFrames(rows, [{ refId: "A", format: "table" }], 1), { unit: "none", decimals: null, thresholds: { steps: [] } });
        note.textContent = `${res.length} series now; an alerting rule fires for each (after its for:).`;
        window.__orreryRulePreview = { expr, series: res.length, error: null };
      } catch (e) {
        note.textContent = e.message;
        window.__orreryRulePreview = { expr, series: 0, error: e.message };
      }
    }, 300);
  };
  for (const ev of ["input", "click", "keyup"]) ta.addEventListener(ev, preview);
  const open = async ns => {
    err.textContent = ""; last = "";
    current = ns;
    name.value = ns || "";
    name.disabled = !!ns;
    ta.value = RULE_TEMPLATE;
    if (ns) {
      const d = await api("GET", `${base}/${encodeURIComponent(ns)}`);
      ta.value = decodeURIComponent(escape(atob(((d || {}).ruleGroupsNamespace || {}).data || "")));
    }
    editor.hidden = false;
    ta.focus();
  };
  sec.append(h("div", { class: "toolbar", id: "rule-namespaces" }, h("span", {}, "Rule groups namespaces:"),
    list.map(n => h("button", { class: "btn", "data-edit-namespace": n.name, onclick: () => open(n.name) }, "Edit " + n.name)),
    h("button", { class: "btn primary", id: "rules-new", onclick: () => open(null) }, "New namespace")), editor);
}

// contactPoints shows each receiver's integrations with their health —
// last attempt, how it ended (the error as the integration gave it),
// notifications sent and failed — and, for editors, a button that sends a
// test notification through the receiver.
async function contactPoints() {
  const sec = h("section", { id: "contact-points" }, h("h3", {}, "Contact points"));
  let list;
  try { list = await api("GET", `/ui/api/workspaces/${state.ws}/contactpoints`); } catch (e) { sec.append(h("p", { class: "empty" }, e.message)); return sec; }
  if (!list.length) { sec.append(h("p", { class: "empty" }, "No receiver is in use: create an alert manager definition whose routes name one.")); return sec; }
  const out = h("div", { id: "contact-test-result" });
  const when = t => t ? new Date(t).toLocaleString() : "never";
  const rows = list.map((c, i) => {
    const health = !c.lastAttempt ? "unknown" : c.lastError ? "failing" : "ok";
    const first = i === 0 || list[i - 1].receiver !== c.receiver;
    return h("tr", { "data-receiver": c.receiver, "data-integration": c.integration, "data-state": health },
      h("td", {}, first ? c.receiver : ""), h("td", {}, `${c.integration}[${c.index}]`),
      h("td", {}, h("span", { class: "badge " + (health === "failing" ? "err" : health === "ok" ? "ok" : "") }, health)),
      h("td", {}, when(c.lastAttempt)), h("td", {}, c.lastAttempt ? (c.lastDurationSeconds * 1000).toFixed(0) + " ms" : ""),
      h("td", {}, String(c.sent)), h("td", {}, String(c.failed)),
      h("td", { class: "error contact-error" }, c.lastError || (c.lastFailureError ? `(earlier, ${when(c.lastFailure)}: ${c.lastFailureError})` : "")),
      h("td", {}, first && canEdit() ? h("button", { class: "btn", "data-test-receiver": c.receiver, onclick: async e => {
        e.target.disabled = true;
        out.textContent = `Sending a test notification through ${c.receiver}…`;
        try {
          const r = await api("POST", `/ui/api/workspaces/${state.ws}/contactpoints/${encodeURIComponent(c.receiver)}/test`);
          const failed = r.filter(x => x.lastError);
          const msg = failed.length ? `Test of ${c.receiver} failed: ${failed.map(x => `${x.integration}: ${x.lastError}`).join("; ")}` : `Test of ${c.receiver} delivered.`;
          // The outcome shows with the table that holds it.
          const fresh = await contactPoints();
          const res = fresh.querySelector("#contact-test-result");
          if (res) res.textContent = msg;
          sec.replaceWith(fresh);
        } catch (x) { out.textContent = x.message; e.target.disabled = false; }
      } }, "Send test notification") : null));
  });
  sec.append(h("table", { class: "data", id: "contact-list" }, h("thead", {}, h("tr", {},
    ["Receiver", "Integration", "Health", "Last attempt", "Took", "Sent", "Failed", "Last error", ""].map(x => h("th", {}, x)))), h("tbody", {}, rows)), out);
  return sec;
}

async function renderUsage(root) {
  root.append(h("div", { class: "toolbar" }, h("h2", {}, "Usage")));
  const usageURL = `/ui/api/workspaces/${state.ws}/usage`;
  const [tsdb, first] = await Promise.all([prom("status/tsdb", { limit: "15" }), api("GET", usageURL)]);
  const t0 = Date.now();
  const head = tsdb.headStats || {};
  const card = (id, label, value) => h("div", { class: "card", id }, h("div", { class: "card-value" }, value), h("div", { class: "card-label" }, label));
  const rateCard = card("usage-samples", "Samples/s ingested", "…");
  root.append(h("div", { class: "cards" },
    card("usage-series", "Active series", format(head.numSeries || 0, "short", null)),
    rateCard,
    card("usage-total", "Samples stored since the server started", format(first.samples + first.histograms, "short", null)),
    card("usage-labelpairs", "Label pairs", format(head.numLabelPairs || 0, "short", null)),
    card("usage-rejected", "Samples rejected", format(first.rejected, "short", null))));
  // The rate is the counter's increase between two readings.
  let prev = { t: t0, n: first.samples + first.histograms };
  const tick = async () => {
    if (!rateCard.isConnected) return;
    const u = await api("GET", usageURL).catch(() => null);
    if (!u) return;
    const now = Date.now(), n = u.samples + u.histograms;
    rateCard.firstChild.textContent = format((n - prev.n) / ((now - prev.t) / 1000), "short", null);
    prev = { t: now, n };
    setTimeout(tick, 5000);
  };
  setTimeout(tick, 2000);
  const top = tsdb.seriesCountByMetricName || [];
  const max = Math.max(1, ...top.map(x => x.value));
  root.append(h("h3", {}, "Top metrics by series"), h("table", { class: "data", id: "top-metrics" },
    h("thead", {}, h("tr", {}, h("th", {}, "Metric"), h("th", {}, "Series"), h("th", {}))),
    h("tbody", {}, top.map(x => h("tr", {}, h("td", { class: "mono" }, h("a", { href: `#/explore?ws=${state.ws}&expr=${encodeURIComponent(x.name)}` }, x.name)), h("td", {}, String(x.value)),
      h("td", { class: "barcell" }, h("span", { class: "bar-fill", style: `width:${(x.value / max * 100).toFixed(1)}%` })))))));
  // The slowest of the queries the workspace's query logging configuration
  // logged lately (none without one).
  const slow = await api("GET", `/ui/api/workspaces/${state.ws}/slowqueries`).catch(() => []);
  root.append(h("h3", {}, "Slowest recent queries"), slow.length === 0
    ? h("p", { class: "hint", id: "slow-queries" }, "No logged queries: create a query logging configuration (aws amp create-query-logging-configuration) to see them here.")
    : h("table", { class: "data", id: "slow-queries" },
      h("thead", {}, h("tr", {}, ["Query", "Took", "Samples", "Range", "Caller", "Status"].map(x => h("th", {}, x)))),
      h("tbody", {}, slow.map(q => h("tr", {},
        h("td", { class: "mono" }, h("a", { href: `#/explore?ws=${state.ws}&expr=${encodeURIComponent(q.query)}` }, q.query)),
        h("td", {}, format(q.durationSeconds, "s", 3)), h("td", {}, format(q.samplesProcessed, "short", null)),
        h("td", {}, q.stepSeconds ? `${new Date(q.start).toLocaleString()} – ${new Date(q.end).toLocaleString()}, step ${q.stepSeconds}s` : new Date(q.end).toLocaleString()),
        h("td", { class: "mono" }, q.principal || "—"), h("td", {}, q.status === "success" ? "ok" : q.error))))));
  const labels = tsdb.labelValueCountByLabelName || [];
  root.append(h("h3", {}, "Labels with the most values"), h("table", { class: "data" },
    h("thead", {}, h("tr", {}, h("th", {}, "Label"), h("th", {}, "Values"))),
    h("tbody", {}, labels.map(x => h("tr", {}, h("td", { class: "mono" }, x.name), h("td", {}, String(x.value)))))));
}

// renderScrapers lists the managed scrapers writing into the workspace —
// status, source, and their targets' health as this server runs them —
// and, per scraper, its targets with each one's last scrape and error, as
// GET /scrapers/{id}/api/v1/targets gives them.
async function renderScrapers(root) {
  root.append(h("div", { class: "toolbar" }, h("h2", {}, "Scrapers")));
  const base = `/ui/api/workspaces/${state.ws}/scrapers`;
  const list = await api("GET", base);
  if (!list.length) {
    root.append(h("p", { class: "hint", id: "scrapers" }, "No scraper writes into this workspace: create one with aws amp create-scraper (its destination this workspace's ARN)."));
    return;
  }
  const when = t => t ? new Date(t).toLocaleString() : "never";
  const badge = st => h("span", { class: "badge " + (st === "ACTIVE" ? "ok" : st === "CREATION_FAILED" ? "err" : "") }, st);
  const targets = async (s, cell) => {
    let data;
    try { data = await api("GET", `${base}/${encodeURIComponent(s.id)}/targets`); } catch (e) { cell.replaceChildren(h("p", { class: "error" }, e.message)); return; }
    const rows = data.activeTargets.map(t => h("tr", { "data-target": t.scrapeUrl, "data-health": t.health },
      h("td", { class: "mono" }, t.scrapePool), h("td", { class: "mono" }, t.scrapeUrl),
      h("td", { class: "mono" }, Object.entries(t.labels).map(([k, v]) => `${k}="${v}"`).join(", ")),
      h("td", {}, h("span", { class: "badge " + (t.health === "up" ? "ok" : t.health === "down" ? "err" : "") }, t.health)),
      h("td", {}, when(t.lastScrape && !t.lastScrape.startsWith("0001") ? t.lastScrape : null)),
      h("td", {}, t.lastScrapeDuration ? (t.lastScrapeDuration * 1000).toFixed(0) + " ms" : ""),
      h("td", { class: "error target-error" }, t.lastError)));
    cell.replaceChildren(rows.length ? h("table", { class: "data targets" }, h("thead", {}, h("tr", {},
      ["Job", "URL", "Labels", "Health", "Last scrape", "Took", "Last error"].map(x => h("th", {}, x)))), h("tbody", {}, rows))
      : h("p", { class: "hint" }, data.targetLimit || "No target discovered yet."));
  };
  const rows = [];
  for (const s of list) {
    const cell = h("td", { colspan: 10 });
    const detail = h("tr", { class: "scraper-targets", "data-targets-of": s.id, hidden: true }, cell);
    const health = s.running
      ? h("span", { class: "scraper-health" }, h("span", { class: "scraper-up" }, String(s.up)), " up, ", h("span", { class: "scraper-down" }, String(s.down)), " down" + (s.unknown ? `, ${s.unknown} not scraped yet` : ""))
      : h("span", { class: "hint" }, s.notRunning);
    rows.push(h("tr", { "data-scraper": s.id, "data-status": s.status },
      h("td", {}, s.alias || "—"), h("td", { class: "mono" }, s.id),
      h("td", {}, badge(s.status), s.statusReason ? h("div", { class: "error status-reason" }, s.statusReason) : null),
      h("td", { class: "mono" }, s.source), h("td", {}, when(s.createdAt)), h("td", {}, when(s.modifiedAt)),
      h("td", {}, health), h("td", {}, s.running ? when(s.lastScrape) : ""),
      h("td", { class: "error" }, [s.lastWriteError, s.targetLimit].filter(Boolean).join("; ")),
      h("td", {}, s.running ? h("button", { class: "btn", "data-show-targets": s.id, onclick: async e => {
        detail.hidden = !detail.hidden;
        e.target.textContent = detail.hidden ? "Targets" : "Hide targets";
        if (!detail.hidden) await targets(s, cell);
      } }, "Targets") : null)), detail);
  }
  root.append(h("table", { class: "data", id: "scrapers" }, h("thead", {}, h("tr", {},
    ["Alias", "ID", "Status", "Source", "Created", "Modified", "Targets", "Last scrape", "Last write error", ""].map(x => h("th", {}, x)))), h("tbody", {}, rows)));
}

async function renderUsers(root) {
  const users = await api("GET", "/ui/api/users");
  const wsNames = state.session.workspaces.map(w => w.id);
  root.append(h("div", { class: "toolbar" }, h("h2", {}, "Users")));
  root.append(h("table", { class: "data", id: "users" }, h("thead", {}, h("tr", {}, ["Name", "Role", "Workspaces", "Created", ""].map(x => h("th", {}, x)))),
    h("tbody", {}, users.map(u => {
      const role = h("select", { onchange: async e => { await api("PUT", `/ui/api/users/${encodeURIComponent(u.name)}`, { role: e.target.value }); flash("Role changed"); } },
        ["viewer", "editor", "admin"].map(r => h("option", { value: r, selected: r === u.role }, r)));
      const ws = h("input", { value: u.workspaces.join(","), size: 40, onchange: async e => {
        await api("PUT", `/ui/api/users/${encodeURIComponent(u.name)}`, { workspaces: e.target.value.split(",").map(s => s.trim()).filter(Boolean) });
        flash("Workspaces changed");
      } });
      return h("tr", { "data-user": u.name }, h("td", {}, u.name), h("td", {}, role), h("td", {}, ws), h("td", {}, new Date(u.createdAt).toLocaleString()),
        h("td", {}, h("button", { class: "btn", onclick: async () => {
          const r = await api("PUT", `/ui/api/users/${encodeURIComponent(u.name)}`, { generatePassword: true });
          alert(`New password of ${u.name} (shown once): ${r.password}`);
        } }, "Reset password"),
        u.name !== state.session.name ? h("button", { class: "btn danger", onclick: async () => {
          if (!confirm(`Delete user ${u.name}?`)) return;
          await api("DELETE", `/ui/api/users/${encodeURIComponent(u.name)}`);
          render();
        } }, "Delete") : null));
    }))));
  const name = h("input", { id: "user-name", placeholder: "name" });
  const role = h("select", { id: "user-role" }, ["viewer", "editor", "admin"].map(r => h("option", { value: r }, r)));
  const ws = h("input", { id: "user-workspaces", placeholder: "ws-…,ws-… or *", size: 40, value: state.ws || "" });
  const out = h("div", { id: "user-created" });
  root.append(h("section", { class: "user-form" }, h("h3", {}, "New user"), name, role, ws,
    h("button", { class: "btn primary", id: "user-create", onclick: async () => {
      try {
        const u = await api("POST", "/ui/api/users", { name: name.value, role: role.value, workspaces: ws.value.split(",").map(s => s.trim()).filter(Boolean) });
        out.textContent = `Created ${u.name}; password (shown once): ${u.password}`;
      } catch (e) { out.textContent = e.message; }
    } }, "Create"), out, h("p", { class: "hint" }, "Workspaces you can see: " + wsNames.join(", "))));
}

// Exposed for the browser test, which checks that JavaScript and Go
// interpolate alike.
window.orreryInterpolate = (expr, vars, b) => interpolate(expr, vars, b);
window.orreryFormat = (v, unit, decimals) => format(v, unit, decimals);
window.orreryResolution = (p, t, range, tz) => queryResolution(p, t, range, tz);

window.addEventListener("hashchange", render);
render();
