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
    default: return short(v);
  }
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
