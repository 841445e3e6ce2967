// Value formatting for Grafana units.

function fixed(v, decimals) {
  if (!isFinite(v)) return String(v);
  if (decimals === null || decimals === undefined) {
    const a = Math.abs(v);
    decimals = a === 0 ? 0 : a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
    return String(parseFloat(v.toFixed(decimals)));
  }
  return v.toFixed(decimals);
}

function scaled(v, decimals, base, suffixes) {
  let i = 0;
  while (Math.abs(v) >= base && i < suffixes.length - 1) { v /= base; i++; }
  return fixed(v, decimals) + suffixes[i];
}

function duration(v, decimals, unitMs) {
  const ms = v * unitMs, a = Math.abs(ms);
  if (a === 0) return "0 " + (unitMs === 1 ? "ms" : "s");
  if (a < 1) return fixed(ms * 1000, decimals) + " µs";
  if (a < 1000) return fixed(ms, decimals) + " ms";
  if (a < 60000) return fixed(ms / 1000, decimals) + " s";
  if (a < 3600000) return fixed(ms / 60000, decimals) + " min";
  if (a < 86400000) return fixed(ms / 3600000, decimals) + " hour";
  return fixed(ms / 86400000, decimals) + " day";
}

// format writes v in unit with decimals (null for automatic).
export function format(v, unit, decimals) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const short = x => scaled(x, decimals, 1000, ["", " K", " Mil", " Bil", " Tri"]);
  switch (unit || "short") {
    case "percent": return fixed(v, decimals) + "%";
    case "percentunit": return fixed(v * 100, decimals) + "%";
    case "ms": return duration(v, decimals, 1);
    case "s": return duration(v, decimals, 1000);
    case "µs": case "us": return duration(v, decimals, 0.001);
    case "ns": return duration(v, decimals, 0.000001);
    case "bytes": return scaled(v, decimals, 1024, [" B", " KiB", " MiB", " GiB", " TiB", " PiB"]);
    case "decbytes": return scaled(v, decimals, 1000, [" B", " kB", " MB", " GB", " TB", " PB"]);
    case "bits": return scaled(v, decimals, 1024, [" b", " Kib", " Mib", " Gib", " Tib"]);
    case "bps": return scaled(v, decimals, 1000, [" bps", " kbps", " Mbps", " Gbps", " Tbps"]);
    case "Bps": case "binBps": return scaled(v, decimals, 1000, [" B/s", " kB/s", " MB/s", " GB/s"]);
    case "reqps": return short(v) + " req/s";
    case "ops": return short(v) + " ops/s";
    case "rps": return short(v) + " rd/s";
    case "wps": return short(v) + " wr/s";
    case "iops": return short(v) + " io/s";
    case "none": return fixed(v, decimals);
    case "dateTimeAsIso": return new Date(v).toISOString();
    case "kbytes": return scaled(v * 1024, decimals, 1024, [" B", " KiB", " MiB", " GiB", " TiB", " PiB"]);
    case "mbytes": return scaled(v * 1048576, decimals, 1024, [" B", " KiB", " MiB", " GiB", " TiB", " PiB"]);
    case "deckbytes": return scaled(v * 1000, decimals, 1000, [" B", " kB", " MB", " GB", " TB", " PB"]);
    case "decmbytes": return scaled(v * 1e6, decimals, 1000, [" B", " kB", " MB", " GB", " TB", " PB"]);
    case "decgbytes": return scaled(v * 1e9, decimals, 1000, [" B", " kB", " MB", " GB", " TB", " PB"]);
    case "pps": return scaled(v, decimals, 1000, [" p/s", " Kp/s", " Mp/s", " Gp/s"]);
    case "hertz": return scaled(v, decimals, 1000, [" Hz", " kHz", " MHz", " GHz"]);
    case "short": case "": return short(v);
  }
  // Grafana's custom units: suffix:, prefix:, and any other string shown
  // after the value.
  const u = String(unit);
  if (u.startsWith("suffix:")) return fixed(v, decimals) + u.slice(7);
  if (u.startsWith("prefix:")) return u.slice(7) + fixed(v, decimals);
  if (u.startsWith("currency")) return short(v);
  return fixed(v, decimals) + " " + u;
}

// thresholdColor returns the color of the step v falls into.
export function thresholdColor(th, v, min, max) {
  const steps = (th && th.steps) || [];
  let color = steps.length ? steps[0].color : "green";
  for (const s of steps) {
    if (s.value === null || s.value === undefined) continue;
    let limit = s.value;
    if (th.mode === "percentage") limit = (min ?? 0) + ((max ?? 100) - (min ?? 0)) * s.value / 100;
    if (v >= limit) color = s.color;
  }
  return cssColor(color);
}

const NAMED = { green: "#56a64b", red: "#e02f44", orange: "#ff9830", yellow: "#f2cc0c", blue: "#3274d9", purple: "#a352cc",
  "dark-red": "#c4162a", "semi-dark-red": "#e02f44", "light-red": "#ff7383", "dark-green": "#37872d", "semi-dark-green": "#56a64b",
  "light-green": "#96d98d", "dark-orange": "#fa6400", "light-orange": "#ffb357", "dark-yellow": "#e0b400", "text": "#ccccdc",
  transparent: "transparent" };

export function cssColor(c) {
  if (!c) return NAMED.green;
  return NAMED[c] || c;
}

export const PALETTE = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0",
  "#508642", "#cca300", "#447ebc", "#c15c17", "#890f02", "#0a437c", "#6d1f62", "#584477"];

// normalizeMappings turns Grafana's value mappings (fieldConfig mappings,
// schema 7+: value, range, regex, special) and the legacy singlestat
// valueMaps/rangeMaps into one list of {type, options}.
export function normalizeMappings(fieldMappings, legacy) {
  const out = [];
  for (const m of fieldMappings || []) {
    if (!m || typeof m !== "object") continue;
    if (m.type && m.options) { out.push(m); continue; }
    // Schema 7 mappings: {type: 1|2, value, from, to, text}.
    if (m.type === 1 || m.type === "1") out.push({ type: "value", options: { [String(m.value)]: { text: m.text } } });
    else if (m.type === 2 || m.type === "2") out.push({ type: "range", options: { from: num(m.from), to: num(m.to), result: { text: m.text } } });
  }
  const lg = legacy || {};
  for (const v of lg.valueMaps || []) if (v && v.op === "=") out.push({ type: "value", options: { [String(v.value)]: { text: v.text } } });
  for (const r of lg.rangeMaps || []) if (r) out.push({ type: "range", options: { from: num(r.from), to: num(r.to), result: { text: r.text } } });
  return out;
}

function num(v) {
  if (v === null || v === undefined || v === "") return null;
  const n = Number(v);
  return isNaN(n) ? null : n;
}

// mapValue returns the mapping result ({text, color}) for v, or null. The
// first mapping that matches wins, as in Grafana.
export function mapValue(v, mappings) {
  for (const m of mappings || []) {
    const o = m.options || {};
    switch (m.type) {
      case "value": {
        if (v === null || v === undefined) break;
        const key = Object.keys(o).find(k => k === String(v) || (k !== "" && !isNaN(Number(k)) && Number(k) === v));
        if (key !== undefined) return o[key];
        break;
      }
      case "range": {
        if (v === null || v === undefined || Number.isNaN(v)) break;
        if ((o.from === null || o.from === undefined || v >= o.from) && (o.to === null || o.to === undefined || v <= o.to)) return o.result || {};
        break;
      }
      case "regex": {
        try { if (v !== null && new RegExp(o.pattern).test(String(v))) return o.result || {}; } catch (_) { /* a bad pattern matches nothing */ }
        break;
      }
      case "special": {
        const w = o.match;
        if ((w === "null" && v === null) || (w === "nan" && Number.isNaN(v)) || (w === "null+nan" && (v === null || Number.isNaN(v))) ||
          (w === "true" && v === true) || (w === "false" && v === false) || (w === "empty" && v === "")) return o.result || {};
        break;
      }
    }
  }
  return null;
}

// display formats v as a field shows it: a mapping's text (and color)
// first, else the unit; the color from the mapping or the thresholds.
export function display(v, f) {
  const m = mapValue(v, f.mappings);
  const color = m && m.color ? cssColor(m.color) : f.colorFixed ? cssColor(f.colorFixed) : thresholdColor(f.thresholds, v, f.min, f.max);
  const text = m && m.text !== undefined && m.text !== "" ? m.text : format(v, f.unit, f.decimals);
  return { text, color };
}
