// API calls with the session's CSRF token.
export const state = { session: null, ws: null };

export class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(method, path, body, raw) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (state.session && method !== "GET") opts.headers["X-CSRF-Token"] = state.session.csrf;
  if (body !== undefined) {
    if (body instanceof URLSearchParams) {
      opts.body = body;
      opts.headers["Content-Type"] = "application/x-www-form-urlencoded";
    } else {
      opts.body = typeof body === "string" ? body : JSON.stringify(body);
      opts.headers["Content-Type"] = "application/json";
    }
  }
  const resp = await fetch(path, opts);
  const text = await resp.text();
  if (resp.status === 401 && !path.endsWith("/login")) {
    state.session = null;
    location.hash = "#/login";
  }
  if (!resp.ok) {
    let msg = text;
    // Error bodies come as {message}, {error}, or (Alertmanager's) a bare
    // JSON string: shown as text, never as an escaped string.
    try { const j = JSON.parse(text); msg = typeof j === "string" ? j : j.message || j.error || j.Message || text; } catch (_) { /* not JSON */ }
    throw new APIError(resp.status, msg || resp.statusText);
  }
  if (raw) return text;
  return text ? JSON.parse(text) : null;
}

// prom calls the current workspace's Prometheus API and returns data.
export async function prom(endpoint, params, ws) {
  const id = ws || state.ws;
  const body = new URLSearchParams(params || {});
  const path = `/ui/api/workspaces/${id}/prom/api/v1/${endpoint}`;
  const r = ["query", "query_range", "series", "labels"].includes(endpoint)
    ? await api("POST", path, body)
    : await api("GET", path + (body.toString() ? "?" + body : ""));
  return r.data;
}

export function am(method, endpoint, body) {
  return api(method, `/ui/api/workspaces/${state.ws}/alertmanager/api/v2/${endpoint}`, body);
}

export function canEdit() {
  return state.session && (state.session.role === "editor" || state.session.role === "admin");
}
