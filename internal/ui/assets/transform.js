// Data frames and Grafana's transformations. A frame is
// {refId, name, fields: [{name, type: "time"|"number"|"string", values,
// labels, config: {displayName}}]}, columns of equal length. The query
// results become frames as Grafana's Prometheus data source makes them;
// transformations run in the panel's order on the list of frames.
import { reducer, regexOf } from "./fields.js";

export function fieldName(f) {
  return (f.config && f.config.displayName) || f.name;
}

function rowCount(frame) {
  return frame.fields.length ? frame.fields[0].values.length : 0;
}

// seriesToFrames makes frames of a panel's series. A query in table
// format makes one frame: Time, one column per label, and its value,
// named "Value" or, when the panel has several queries, "Value #refId";
// every other series is a frame of Time and the series' values.
export function seriesToFrames(series, queries, nQueries) {
  const frames = [];
  const byQuery = new Map();
  for (const s of series) {
    const q = queries[s.qi] || {};
    if (q.format !== "table") {
      frames.push({ refId: s.refId, name: s.name, fields: [
        { name: "Time", type: "time", values: s.values.map(p => p[0]), config: {} },
        { name: s.name, type: "number", values: s.values.map(p => p[1]), labels: s.labels, config: {} }] });
      continue;
    }
    if (!byQuery.has(s.qi)) byQuery.set(s.qi, []);
    byQuery.get(s.qi).push(s);
  }
  for (const [qi, list] of byQuery) {
    const q = queries[qi] || {};
    const keys = [...new Set(list.flatMap(s => Object.keys(s.labels)))].filter(k => k !== "__name__").sort();
    const time = [], cols = keys.map(() => []), vals = [];
    for (const s of list) {
      for (const [t, v] of s.values) {
        time.push(t);
        keys.forEach((k, i) => cols[i].push(s.labels[k] ?? ""));
        vals.push(v);
      }
    }
    frames.push({ refId: q.refId, name: q.refId, fields: [
      { name: "Time", type: "time", values: time, config: {} },
      ...keys.map((k, i) => ({ name: k, type: "string", values: cols[i], config: {} })),
      { name: nQueries > 1 ? "Value #" + q.refId : "Value", type: "number", values: vals, config: {} }] });
  }
  // Frames in query order, as Grafana lists them.
  const order = new Map(queries.map((q, i) => [q.refId, i]));
  return frames.sort((a, b) => (order.get(a.refId) ?? 0) - (order.get(b.refId) ?? 0));
}

function num(v) {
  if (v === null || v === undefined || v === "") return null;
  const n = Number(v);
  return isNaN(n) ? null : n;
}

function reduceValues(id, values) {
  return reducer(id)[1](values);
}

// merge joins frames into one: a row of a frame fills the row of the
// result whose shared non-number fields hold the same values and whose
// number fields it does not set yet; otherwise it is a new row.
function merge(frames) {
  if (frames.length < 2) return frames;
  const fields = [];
  const byName = new Map();
  for (const fr of frames) for (const f of fr.fields) {
    const n = fieldName(f);
    if (!byName.has(n)) { const nf = { ...f, name: n, values: [], config: { ...f.config, displayName: undefined } }; byName.set(n, nf); fields.push(nf); }
  }
  const rows = [];
  for (const fr of frames) {
    const names = fr.fields.map(fieldName);
    const keyIdx = fr.fields.map((f, i) => f.type !== "number" ? i : -1).filter(i => i >= 0);
    for (let r = 0; r < rowCount(fr); r++) {
      const rec = {};
      names.forEach((n, i) => { rec[n] = fr.fields[i].values[r]; });
      const target = rows.find(row => keyIdx.every(i => row[names[i]] === undefined || row[names[i]] === rec[names[i]]) &&
        keyIdx.some(i => row[names[i]] !== undefined) &&
        fr.fields.every((f, i) => f.type !== "number" || row[names[i]] === undefined));
      if (target) Object.assign(target, rec); else rows.push(rec);
    }
  }
  for (const f of fields) f.values = rows.map(row => row[f.name] ?? null);
  return [{ refId: frames[0].refId, name: frames[0].name, fields }];
}

function organize(frames, o) {
  const ex = o.excludeByName || {}, idx = o.indexByName || {}, ren = o.renameByName || {};
  return frames.map(fr => {
    let fields = fr.fields.filter(f => !ex[fieldName(f)]);
    if (Object.keys(idx).length) fields = fields.slice().sort((a, b) => (idx[fieldName(a)] ?? 1e9) - (idx[fieldName(b)] ?? 1e9));
    fields = fields.map(f => ren[fieldName(f)] ? { ...f, name: ren[fieldName(f)], config: { ...f.config, displayName: ren[fieldName(f)] } } : f);
    return { ...fr, fields };
  });
}

function groupBy(frames, o) {
  const cfg = o.fields || {};
  return frames.map(fr => {
    const keys = fr.fields.filter(f => cfg[fieldName(f)] && cfg[fieldName(f)].operation === "groupby");
    if (!keys.length) return fr;
    const aggs = fr.fields.filter(f => cfg[fieldName(f)] && cfg[fieldName(f)].operation === "aggregate");
    const groups = new Map();
    for (let r = 0; r < rowCount(fr); r++) {
      const k = JSON.stringify(keys.map(f => f.values[r]));
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(r);
    }
    const fields = keys.map(f => ({ ...f, name: fieldName(f), config: {}, values: [...groups.values()].map(rs => f.values[rs[0]]) }));
    for (const f of aggs) for (const id of cfg[fieldName(f)].aggregations || []) {
      fields.push({ name: `${fieldName(f)} (${id})`, type: "number", config: {}, values: [...groups.values()].map(rs => reduceValues(id, rs.map(r => f.values[r]))) });
    }
    return { ...fr, fields };
  });
}

const OPS = { "+": (a, b) => a + b, "-": (a, b) => a - b, "*": (a, b) => a * b, "/": (a, b) => a / b, "%": (a, b) => a % b, "^": (a, b) => a ** b };

function calculateField(frames, o) {
  const mode = o.mode || "reduceRow";
  return frames.map(fr => {
    const n = rowCount(fr);
    const col = name => { const f = fr.fields.find(x => fieldName(x) === name); return f ? f.values : null; };
    let values, alias;
    if (mode === "binary") {
      const b = o.binary || {};
      const side = s => { const c = col(s); if (c) return r => c[r]; const k = num(s); return () => k; };
      const l = side(b.left), r = side(b.right), op = OPS[b.operator || "+"] || OPS["+"];
      values = Array.from({ length: n }, (_, i) => { const x = l(i), y = r(i); return x === null || y === null || x === undefined || y === undefined ? null : op(x, y); });
      alias = `${b.left} ${b.operator || "+"} ${b.right}`;
    } else if (mode === "index") {
      values = Array.from({ length: n }, (_, i) => i);
      alias = "Row";
    } else {
      const red = (o.reduce && o.reduce.reducer) || "sum";
      const include = o.reduce && o.reduce.include;
      const nums = fr.fields.filter(f => f.type === "number" && (!include || !include.length || include.includes(fieldName(f))));
      values = Array.from({ length: n }, (_, i) => reduceValues(red, nums.map(f => f.values[i])));
      alias = reducer(red)[0];
    }
    const name = o.alias || alias;
    const fields = o.replaceFields ? fr.fields.filter(f => f.type === "time") : fr.fields.slice();
    fields.push({ name, type: "number", values, config: {} });
    return { ...fr, fields };
  });
}

function test(cfg, v) {
  const o = (cfg && cfg.options) || {};
  switch (cfg && cfg.id) {
    case "isNull": return v === null || v === undefined;
    case "isNotNull": return !(v === null || v === undefined);
    case "greater": return v !== null && v > num(o.value);
    case "greaterOrEqual": return v !== null && v >= num(o.value);
    case "lower": return v !== null && v < num(o.value);
    case "lowerOrEqual": return v !== null && v <= num(o.value);
    case "equal": return String(v) === String(o.value);
    case "notEqual": return String(v) !== String(o.value);
    case "range": return v !== null && v >= num(o.from) && v <= num(o.to);
    case "regex": { const re = regexOf(o.value); return !!re && re.test(String(v)); }
  }
  return false;
}

function filterByValue(frames, o) {
  const filters = o.filters || [];
  if (!filters.length) return frames;
  const include = (o.type || "include") === "include", all = o.match === "all";
  return frames.map(fr => {
    const keep = [];
    for (let r = 0; r < rowCount(fr); r++) {
      const hits = filters.map(fl => { const f = fr.fields.find(x => fieldName(x) === fl.fieldName); return !!f && test(fl.config, f.values[r]); });
      const hit = all ? hits.every(Boolean) : hits.some(Boolean);
      if (hit === include) keep.push(r);
    }
    return { ...fr, fields: fr.fields.map(f => ({ ...f, values: keep.map(r => f.values[r]) })) };
  });
}

// reduce: seriesToRows (default) makes one frame with a Field column and
// one column per reducer; reduceFields reduces every number field of each
// frame to one value.
function reduce(frames, o) {
  const ids = o.reducers && o.reducers.length ? o.reducers : ["lastNotNull"];
  if (o.mode === "reduceFields") {
    return frames.map(fr => ({ ...fr, fields: fr.fields.filter(f => f.type !== "time" || o.includeTimeField).flatMap(f => f.type !== "number" ? [{ ...f, values: f.values.slice(-1) }]
      : ids.map(id => ({ ...f, name: ids.length > 1 ? `${fieldName(f)} ${reducer(id)[0]}` : fieldName(f), config: { ...f.config, displayName: undefined }, values: [reduceValues(id, f.values)] }))) }));
  }
  const names = [], cols = ids.map(() => []), labelKeys = new Set();
  const rows = [];
  for (const fr of frames) for (const f of fr.fields) {
    if (f.type !== "number") continue;
    names.push(fieldName(f));
    rows.push(f.labels || {});
    for (const k of Object.keys(f.labels || {})) if (k !== "__name__") labelKeys.add(k);
    ids.forEach((id, i) => cols[i].push(reduceValues(id, f.values)));
  }
  const fields = [{ name: "Field", type: "string", values: names, config: {} }];
  if (o.labelsToFields) for (const k of [...labelKeys].sort()) fields.push({ name: k, type: "string", values: rows.map(l => l[k] ?? ""), config: {} });
  ids.forEach((id, i) => fields.push({ name: reducer(id)[0], type: "number", values: cols[i], config: {} }));
  return [{ refId: frames.length ? frames[0].refId : "", name: "", fields }];
}

// joinByField joins every frame on one field (Time by default), outer or
// inner.
function joinByField(frames, o) {
  if (frames.length < 2) return frames;
  const by = o.byField || "Time", inner = o.mode === "inner";
  const keys = [];
  const seen = new Map();
  const per = frames.map(fr => {
    const kf = fr.fields.find(f => fieldName(f) === by);
    const m = new Map();
    if (kf) kf.values.forEach((k, r) => { m.set(k, r); if (!seen.has(k)) { seen.set(k, keys.length); keys.push(k); } });
    return { fr, kf, m };
  });
  let rowsKeys = keys;
  if (inner) rowsKeys = keys.filter(k => per.every(p => p.m.has(k)));
  if (per[0].kf && per[0].kf.type === "time") rowsKeys = rowsKeys.slice().sort((a, b) => a - b);
  const first = per.find(p => p.kf);
  const fields = [{ ...(first ? first.kf : { name: by, type: "string" }), name: by, config: {}, values: rowsKeys }];
  for (const p of per) for (const f of p.fr.fields) {
    if (f === p.kf) continue;
    fields.push({ ...f, values: rowsKeys.map(k => p.m.has(k) ? f.values[p.m.get(k)] : null) });
  }
  return [{ refId: frames[0].refId, name: frames[0].name, fields }];
}

// labelsToFields turns the labels of each number field into string
// columns (mode columns, the default) or into label/value rows (mode
// rows); the value field keeps its name or takes valueLabel's value.
function labelsToFields(frames, o) {
  return frames.map(fr => {
    if (o.mode === "rows") {
      const f = fr.fields.find(x => x.type === "number" && x.labels);
      if (!f) return fr;
      const ks = Object.keys(f.labels).filter(k => !o.keepLabels || o.keepLabels.includes(k));
      return { ...fr, fields: [{ name: "label", type: "string", values: ks, config: {} }, { name: "value", type: "string", values: ks.map(k => f.labels[k]), config: {} }] };
    }
    const out = [];
    for (const f of fr.fields) {
      if (f.type !== "number" || !f.labels) { out.push(f); continue; }
      const n = f.values.length;
      const ks = Object.keys(f.labels).filter(k => k !== "__name__" && (!o.keepLabels || o.keepLabels.includes(k)) && k !== o.valueLabel).sort();
      for (const k of ks) out.push({ name: k, type: "string", values: Array(n).fill(f.labels[k]), config: {} });
      const vname = o.valueLabel && f.labels[o.valueLabel] !== undefined ? f.labels[o.valueLabel] : f.labels.__name__ || "Value";
      out.push({ ...f, name: vname, labels: undefined, config: {} });
    }
    return { ...fr, fields: out };
  });
}

// seriesToRows puts every frame's points into one frame: Time, Metric
// (the frame's value field's name) and Value, newest first.
function seriesToRows(frames) {
  if (frames.length < 2) return frames;
  const rows = [];
  for (const fr of frames) {
    const t = fr.fields.find(f => f.type === "time");
    for (const f of fr.fields) {
      if (f.type !== "number") continue;
      f.values.forEach((v, r) => rows.push([t ? t.values[r] : null, fieldName(f), v]));
    }
  }
  rows.sort((a, b) => b[0] - a[0]);
  return [{ refId: frames[0].refId, name: "", fields: [
    { name: "Time", type: "time", values: rows.map(r => r[0]), config: {} },
    { name: "Metric", type: "string", values: rows.map(r => r[1]), config: {} },
    { name: "Value", type: "number", values: rows.map(r => r[2]), config: {} }] }];
}

function sortBy(frames, o) {
  const s = (o.sort || [])[0];
  if (!s || !s.field) return frames;
  return frames.map(fr => {
    const f = fr.fields.find(x => fieldName(x) === s.field);
    if (!f) return fr;
    const idx = f.values.map((_, i) => i).sort((a, b) => {
      const x = f.values[a], y = f.values[b];
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x ?? "").localeCompare(String(y ?? ""));
      return s.desc ? -c : c;
    });
    return { ...fr, fields: fr.fields.map(g => ({ ...g, values: idx.map(i => g.values[i]) })) };
  });
}

export const TRANSFORMS = { merge: (f) => merge(f), organize, groupBy, calculateField, filterByValue, reduce, joinByField,
  seriesToColumns: joinByField, labelsToFields, seriesToRows: (f) => seriesToRows(f), sortBy };

// transform runs a panel's transformations; a disabled one is skipped, an
// unknown one is reported in unknown (the panel says so).
export function transform(frames, transformations, unknown) {
  for (const t of transformations || []) {
    if (!t || t.disabled) continue;
    const fn = TRANSFORMS[t.id];
    if (!fn) { if (unknown) unknown.push(t.id); continue; }
    frames = fn(frames, t.options || {});
  }
  return frames;
}
