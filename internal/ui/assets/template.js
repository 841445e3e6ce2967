// Template interpolation: the same rules as internal/dashboard/template.go
// (the browser test checks that both agree).

const VAR_RE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}/g;

const UNITS = [["y", 365 * 86400000], ["w", 7 * 86400000], ["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000]];

export function formatDuration(ms) {
  ms = Math.trunc(ms);
  if (ms <= 0) return "0s";
  for (const [suffix, size] of UNITS) {
    if (ms % size === 0) return ms / size + suffix;
  }
  return ms + "ms";
}

export function parseDuration(s) {
  const m = /^\s*(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)\s*$/.exec(s || "");
  if (!m) return null;
  const size = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 7 * 86400000, y: 365 * 86400000 }[m[2]];
  return Math.round(parseFloat(m[1]) * size);
}

const STEPS = [[10, 1], [15, 10], [35, 20], [75, 50], [150, 100], [350, 200], [750, 500], [1500, 1000],
  [3500, 2000], [7500, 5000], [12500, 10000], [17500, 15000], [25000, 20000], [45000, 30000],
  [90000, 60000], [210000, 120000], [450000, 300000], [750000, 600000], [1050000, 900000],
  [1500000, 1200000], [2700000, 1800000], [5400000, 3600000], [9000000, 7200000],
  [16200000, 10800000], [32400000, 21600000], [86400000, 43200000], [604800000, 86400000],
  [1814400000, 604800000], [3628800000, 2592000000]];

export function roundInterval(ms) {
  for (const [below, to] of STEPS) if (ms < below) return to;
  return 365 * 86400000;
}

export function autoInterval(rangeMs, points, minMs) {
  if (!points || points <= 0) points = 1000;
  const iv = roundInterval(Math.trunc(rangeMs / points));
  return minMs && iv < minMs ? minMs : iv;
}

// DATASOURCE_MIN_INTERVAL_MS is the built-in data source's minimum
// interval, Grafana's Prometheus data source's "Scrape interval"
// (jsonData.timeInterval) at its default, 15s.
export const DATASOURCE_MIN_INTERVAL_MS = 15000;

function minIntervalMs(s) {
  return parseDuration(String(s || "").trim().replace(/^>/, "")) || 0;
}

// queryResolution computes a range query's step and the built-ins of its
// expression as Grafana does. The panel's interval comes from its width in
// pixels (or maxDataPoints when set) over the range, rounded
// (rangeutil.calculateInterval), and no lower than the panel's "Min
// interval" or else the data source's. The Prometheus data source then
// raises the step to the query's "Min step" (target.interval), times the
// legacy intervalFactor, and to range/11000 (Prometheus' 11,000-point
// limit); a raised step becomes $__interval. $__rate_interval is
// max($__interval + scrape, 4 × scrape) with scrape the query's Min step
// or the data source's interval. Start and end are aligned down to
// multiples of the step in the browser's time zone.
// p: {width, maxDataPoints, interval}; t: {interval, intervalFactor}, both
// interpolated; range: {from, to} in ms; tzOffsetMin as
// Date.getTimezoneOffset returns it.
export function queryResolution(p, t, range, tzOffsetMin) {
  const rangeMs = range.to - range.from;
  const points = p.maxDataPoints > 0 ? p.maxDataPoints : Math.max(1, Math.round(p.width || 0)) || 1000;
  const low = minIntervalMs(p.interval) || DATASOURCE_MIN_INTERVAL_MS;
  let intervalMs = roundInterval(rangeMs / points);
  if (intervalMs < low) intervalMs = low;
  const minStepMs = minIntervalMs(t.interval);
  const scrapeMs = minStepMs || DATASOURCE_MIN_INTERVAL_MS;
  const rangeS = Math.ceil(rangeMs / 1000);
  let safe = rangeS / 11000;
  if (safe > 1) safe = Math.ceil(safe);
  const factor = t.intervalFactor > 0 ? t.intervalFactor : 1;
  const stepS = Math.max(intervalMs / 1000 * factor, (minStepMs || intervalMs) / 1000, safe);
  const offS = -(tzOffsetMin || 0) * 60;
  const align = x => Math.floor((x + offS) / stepS) * stepS - offS;
  return {
    intervalMs: stepS * 1000, stepS, scrapeMs,
    start: align(range.from / 1000), end: align(range.to / 1000),
  };
}

export function rateInterval(intervalMs, scrapeMs) {
  const s = scrapeMs > 0 ? scrapeMs : 15000;
  return Math.max(intervalMs + s, 4 * s);
}

export function escapeRegex(s) {
  return String(s).replace(/[\\^$*+?.()|{}\[\]]/g, "\\$&");
}

function regexAlternation(vals) {
  const esc = vals.map(escapeRegex);
  return esc.length === 1 ? esc[0] : "(" + esc.join("|") + ")";
}

function builtin(name, b) {
  switch (name) {
    case "__interval": return formatDuration(b.intervalMs);
    case "__interval_ms": return String(Math.trunc(b.intervalMs));
    case "__rate_interval": return formatDuration(rateInterval(b.intervalMs, b.scrapeMs));
    case "__range": return Math.round(b.rangeMs / 1000) + "s";
    case "__range_s": return String(Math.round(b.rangeMs / 1000));
    case "__range_ms": return String(Math.trunc(b.rangeMs));
  }
  return null;
}

function formatValue(v, format) {
  if (v.all) return v.allValue ? v.allValue : ".*";
  const vals = v.values || [];
  switch (format || "") {
    case "raw": case "text": case "csv": return vals.join(",");
    case "pipe": return vals.join("|");
    case "json": return JSON.stringify(vals);
    case "regex": return regexAlternation(vals);
    case "": return v.multi ? regexAlternation(vals) : vals.join(",");
  }
  return vals.join(",");
}

// interpolate replaces $var, ${var}, ${var:fmt}, [[var]] and the built-ins.
// vars maps names to {values, all, allValue, multi}; b is
// {intervalMs, rangeMs, scrapeMs}. Without a format, multi-value variables
// become regex alternations, as in PromQL; text (titles) passes "raw" as
// defaultFormat.
export function interpolate(expr, vars, b, defaultFormat) {
  return String(expr || "").replace(VAR_RE, (m, n1, n2, f2, n4, _field, f4) => {
    let name = n1, format = "";
    if (n2) { name = n2; format = f2 || ""; } else if (n4) { name = n4; format = f4 || ""; }
    if (!format && defaultFormat) format = defaultFormat;
    const bi = builtin(name, b || {});
    if (bi !== null) return bi;
    const v = vars && Object.prototype.hasOwnProperty.call(vars, name) ? vars[name] : null;
    return v ? formatValue(v, format) : m;
  });
}

// legend renders a legendFormat like "{{service}} p99" for a series.
export function legend(format, metric) {
  if (format && format !== "__auto") {
    return format.replace(/\{\{\s*(.+?)\s*\}\}/g, (_, k) => metric[k] ?? "");
  }
  const name = metric.__name__ || "";
  const labels = Object.keys(metric).filter(k => k !== "__name__").sort().map(k => `${k}="${metric[k]}"`);
  return labels.length ? `${name}{${labels.join(", ")}}` : name || "{}";
}
