// Field configuration as Grafana resolves it: a panel's fieldConfig
// defaults, then every override whose matcher matches the field, in order
// (byName, byRegexp, byType, byFrameRefID), then the old graph panel's
// seriesOverrides; and the reducers ("calcs") legends, stats and the
// reduce transformation share.
import { normalizeMappings } from "./units.js";

function num(v) {
  if (v === null || v === undefined || v === "") return null;
  const n = Number(v);
  return isNaN(n) ? null : n;
}

// regexOf reads a Grafana regex option, "/re/flags" or a bare pattern.
export function regexOf(s) {
  const m = /^\/(.*)\/([gimsuy]*)$/.exec(String(s || ""));
  try { return m ? new RegExp(m[1], m[2].replace("g", "")) : new RegExp(String(s || "")); } catch (_) { return null; }
}

// matches tells whether an override's matcher selects the field
// {name, type, refId}.
export function matches(matcher, f) {
  const m = matcher || {};
  switch (m.id) {
    case "byName": return m.options === f.name;
    case "byNames": return Array.isArray(m.options && m.options.names) && m.options.names.includes(f.name);
    case "byRegexp": { const re = regexOf(m.options); return !!re && re.test(f.name); }
    case "byType": return m.options === (f.type || "number");
    case "byFrameRefID": return m.options === f.refId;
  }
  return false;
}

// baseField is the panel's default field config in the renderer's terms.
export function baseField(p) {
  const raw = p.raw || {};
  const def = (raw.fieldConfig && raw.fieldConfig.defaults) || {};
  const custom = def.custom || {};
  const color = def.color || {};
  return {
    unit: p.unit, decimals: p.decimals, min: p.min, max: p.max, thresholds: p.thresholds,
    mappings: normalizeMappings(def.mappings, raw), displayName: def.displayName || "",
    colorFixed: color.mode === "fixed" || color.mode === "shades" ? color.fixedColor || null : null,
    axisPlacement: custom.axisPlacement || "auto", axisLabel: custom.axisLabel || "",
    transform: custom.transform || "", hideFrom: custom.hideFrom || {},
    cellType: (custom.cellOptions && custom.cellOptions.type) || custom.displayMode || "auto",
    width: custom.width || null, fillOpacity: custom.fillOpacity ?? null,
  };
}

// apply sets one override property on a field config.
function apply(f, id, value) {
  switch (id) {
    case "unit": f.unit = value || "short"; break;
    case "decimals": f.decimals = num(value); break;
    case "min": f.min = num(value); break;
    case "max": f.max = num(value); break;
    case "displayName": case "displayNameFromDS": f.displayName = value || ""; break;
    case "color": f.colorFixed = value && (value.mode === "fixed" || value.mode === "shades") ? value.fixedColor || null : null; break;
    case "thresholds": if (value) f.thresholds = value; break;
    case "mappings": f.mappings = normalizeMappings(value); break;
    case "custom.axisPlacement": f.axisPlacement = value || "auto"; break;
    case "custom.axisLabel": f.axisLabel = value || ""; break;
    case "custom.transform": f.transform = value || ""; break;
    case "custom.hideFrom": f.hideFrom = value || {}; break;
    case "custom.cellOptions": f.cellType = (value && value.type) || "auto"; break;
    case "custom.displayMode": f.cellType = value || "auto"; break;
    case "custom.width": f.width = num(value); break;
    case "custom.fillOpacity": f.fillOpacity = num(value); break;
  }
}

// fieldConfig resolves the config of field {name, type, refId} of panel p.
// name is the field's display name before any displayName override.
export function fieldConfig(p, field) {
  const f = baseField(p);
  const raw = p.raw || {};
  for (const o of ((raw.fieldConfig && raw.fieldConfig.overrides) || [])) {
    if (!o || !matches(o.matcher, field)) continue;
    for (const prop of o.properties || []) if (prop && prop.id) apply(f, prop.id, prop.value);
  }
  // The graph panel's seriesOverrides: alias is a name or /regex/.
  for (const so of raw.seriesOverrides || []) {
    if (!so || !so.alias) continue;
    const re = /^\/.*\/[a-z]*$/.test(so.alias) ? regexOf(so.alias) : null;
    if (re ? !re.test(field.name) : so.alias !== field.name) continue;
    if (so.yaxis === 2) {
      f.axisPlacement = "right";
      const y1 = (raw.yaxes && raw.yaxes[1]) || {};
      if (y1.format) f.unit = y1.format;
      if (y1.decimals !== undefined && y1.decimals !== null) f.decimals = num(y1.decimals);
      f.min = num(y1.min); f.max = num(y1.max);
    }
    if (so.transform === "negative-Y") f.transform = "negative-Y";
    if (so.color) f.colorFixed = so.color;
    if (so.legend === false) f.hideFrom = { ...f.hideFrom, legend: true };
  }
  if (f.displayName) f.displayName = f.displayName.replace(/\$\{__field\.displayName\}|\$\{__series\.name\}/g, field.name);
  return f;
}

// REDUCERS are Grafana's standard calculations by id, with the names
// legends and the reduce transformation show.
export const REDUCERS = {
  lastNotNull: ["Last *", v => { const a = nn(v); return a.length ? a[a.length - 1] : null; }],
  last: ["Last", v => v.length ? v[v.length - 1] : null],
  firstNotNull: ["First *", v => { const a = nn(v); return a.length ? a[0] : null; }],
  first: ["First", v => v.length ? v[0] : null],
  mean: ["Mean", v => { const a = nn(v); return a.length ? a.reduce((x, y) => x + y, 0) / a.length : null; }],
  max: ["Max", v => { const a = nn(v); return a.length ? Math.max(...a) : null; }],
  min: ["Min", v => { const a = nn(v); return a.length ? Math.min(...a) : null; }],
  sum: ["Total", v => nn(v).reduce((x, y) => x + y, 0)],
  count: ["Count", v => v.length],
  range: ["Range", v => { const a = nn(v); return a.length ? Math.max(...a) - Math.min(...a) : null; }],
  delta: ["Delta", v => { const a = nn(v); let d = 0; for (let i = 1; i < a.length; i++) d += a[i] >= a[i - 1] ? a[i] - a[i - 1] : a[i]; return d; }],
  diff: ["Difference", v => { const a = nn(v); return a.length ? a[a.length - 1] - a[0] : null; }],
  median: ["Median", v => { const a = nn(v).sort((x, y) => x - y); return a.length ? (a.length % 2 ? a[(a.length - 1) / 2] : (a[a.length / 2 - 1] + a[a.length / 2]) / 2) : null; }],
  stdDev: ["StdDev", v => { const a = nn(v); if (!a.length) return null; const m = a.reduce((x, y) => x + y, 0) / a.length; return Math.sqrt(a.reduce((x, y) => x + (y - m) ** 2, 0) / a.length); }],
  variance: ["Variance", v => { const a = nn(v); if (!a.length) return null; const m = a.reduce((x, y) => x + y, 0) / a.length; return a.reduce((x, y) => x + (y - m) ** 2, 0) / a.length; }],
  distinctCount: ["Distinct Count", v => new Set(nn(v)).size],
  changeCount: ["Change Count", v => { let c = 0; for (let i = 1; i < v.length; i++) if (v[i] !== v[i - 1]) c++; return c; }],
  allIsNull: ["All Nulls", v => v.every(x => x === null)],
  allIsZero: ["All Zeros", v => v.every(x => x === 0)],
};
// Aliases the old panels use.
const ALIASES = { current: "lastNotNull", avg: "mean", total: "sum", lastNotNull: "lastNotNull" };

function nn(v) { return v.filter(x => x !== null && x !== undefined && !Number.isNaN(x)); }

// reducer returns [display name, function] for a calc id.
export function reducer(id) {
  return REDUCERS[ALIASES[id] || id] || REDUCERS.lastNotNull;
}

// calc reduces a series' values ([[t, v]]) with the calc id.
export function calc(id, values) {
  return reducer(id)[1](values.map(p => p[1]));
}
