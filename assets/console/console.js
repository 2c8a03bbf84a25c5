// The operators' console: a client of the same admin APIs curl uses (/api/auth, /api/routes,
// /api/waitlist, /api/metrics), called through the console's own prefix: /console/api/* is
// /api/* with the console's session cookie (HttpOnly, SameSite=Strict, Path=/console) as the
// credential, so script never holds a token, and the server refuses any change whose Origin
// is not this page's. Every value from the server is put into the page as text (never HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const PAGES = ["overview", "routes", "users", "waitlist", "requests"];
let me = null;
let healthTimer = null;
let routeCursor = null;
let userCursor = null;
let userAuditCursor = null;
let selected = null;
let requestCursor = null;
// Each listing's latest load: an answer to an older one (a filter changed meanwhile) is dropped.
const generation = { users: 0, audit: 0, requests: 0 };

/** `path` is an /api/ path (sent through /console/api/) or another same-origin path. */
async function api(method, path, body, accept = "application/json") {
  const headers = { accept };
  if (body !== undefined) headers["content-type"] = "application/json";
  const url = path.startsWith("/api/") ? `/console${path}` : path;
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json().catch(() => null) : await res.text();
  return { status: res.status, ok: res.ok, data };
}

const detail = (res) => (res.data && res.data.detail) || `HTTP ${res.status}`;

function say(text) { $("status").textContent = text; }

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

function button(label, onClick, extra = {}) {
  const b = el("button", label, { type: "button", ...extra });
  b.addEventListener("click", onClick);
  return b;
}

function show(id) {
  for (const s of ["signin", "forbidden", ...PAGES]) $(s).hidden = s !== id;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === `#${id}`) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

// ------------------------------------------------------------------------------------------
// Sign-in

async function signIn(event) {
  event.preventDefault();
  $("signin-error").textContent = "";
  const res = await api("POST", "/api/auth/login", { email: $("email").value.trim(), password: $("password").value });
  if (!res.ok) {
    $("signin-error").textContent = res.status === 401 ? "Wrong email or password." : `Sign-in failed (${detail(res)}).`;
    return;
  }
  $("password").value = "";
  await start();
}

async function signOut() {
  await api("POST", "/api/auth/logout");
  me = null;
  selected = null;
  await start();
}

async function start() {
  clearInterval(healthTimer);
  const signedIn = await api("GET", "/api/auth/me");
  me = signedIn.ok ? signedIn.data.user : null;
  $("who").textContent = me ? `Signed in as ${me.email}` : "";
  $("signout").hidden = !me;
  $("nav").hidden = !(me && me.role === "admin");
  if (!me) { show("signin"); $("email").focus(); return; }
  if (me.role !== "admin") { $("forbidden-who").textContent = me.email; show("forbidden"); return; }
  await navigate();
}

async function navigate() {
  if (!me || me.role !== "admin") return;
  const page = PAGES.includes(location.hash.slice(1)) ? location.hash.slice(1) : "overview";
  show(page);
  clearInterval(healthTimer);
  if (page === "overview") {
    await Promise.all([loadHealth(), loadMetrics()]);
    healthTimer = setInterval(() => { loadHealth(); loadMetrics(); }, 10_000);
  }
  if (page === "routes") { await loadRoutes(true); await loadAudit(); }
  if (page === "users") { await loadUsers(true); await loadUserAudit(true); }
  if (page === "waitlist") await loadWaitlist();
  if (page === "requests") await loadRequests(true);
}

// ------------------------------------------------------------------------------------------
// Overview

async function loadHealth() {
  const res = await api("GET", "/health");
  const rows = $("health-rows");
  rows.replaceChildren();
  const services = (res.data && res.data.services) || {};
  for (const [name, s] of Object.entries(services)) {
    const ok = s && (s.ok === true || s.status === "ok");
    rows.append(row([name, el("span", ok ? "healthy" : "unhealthy", { class: ok ? "ok" : "down" }), s && (s.error || (s.latencyMs != null ? `${s.latencyMs} ms` : ""))]));
  }
  if (!rows.children.length) rows.append(row([`health answered ${res.status}`, "", ""]));
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** An inline SVG line chart of `series` ([{label, cls, values}]) over `minutes` slots. */
function chart(container, minutes, series, format, label) {
  const W = 320, H = 120, P = 24;
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values));
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, class: "chart" });
  svg.append(svgEl("line", { x1: P, y1: H - P, x2: W - 4, y2: H - P, class: "axis" }));
  const top = svgEl("text", { x: 2, y: 12, class: "tick" });
  top.textContent = format(max);
  svg.append(top);
  const x = (i) => P + (i * (W - P - 8)) / Math.max(1, minutes - 1);
  const y = (v) => H - P - (v / max) * (H - P - 16);
  for (const s of series) {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg.append(svgEl("polyline", { points, class: `series ${s.cls}` }));
  }
  const legend = svgEl("text", { x: P, y: H - 6, class: "tick" });
  legend.textContent = series.length > 1 ? series.map((s) => s.label).join(" · ") : `${minutes} min`;
  svg.append(legend);
  container.replaceChildren(svg);
}

async function loadMetrics() {
  const res = await api("GET", "/api/metrics?window=60");
  if (!res.ok) { $("metrics-source").textContent = `Metrics unavailable (${(res.data && res.data.detail) || res.status}).`; return; }
  const slots = 60;
  const now = Date.now();
  const index = new Map(res.data.minutes.map((m) => [m.minute, m]));
  const pad = (n) => String(n).padStart(2, "0");
  const keyOf = (t) => { const d = new Date(t - (t % 60000)); return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:00`; };
  const rows = [];
  for (let i = slots - 1; i >= 0; i--) rows.push(index.get(keyOf(now - i * 60000)) || { requests: 0, errorRate: 0, p50Ms: 0, p99Ms: 0 });
  const total = rows.reduce((a, r) => a + r.requests, 0);
  const errors = rows.reduce((a, r) => a + r.requests * r.errorRate, 0);
  $("metrics-source").textContent = `${total} requests, ${Math.round(errors)} errors in the last hour (source: ${res.data.source}).`;
  chart($("chart-requests"), slots, [{ label: "requests", cls: "s1", values: rows.map((r) => r.requests) }], (v) => `${Math.round(v)}/min`,
    `Requests per minute over the last hour: ${total} in all, at most ${Math.max(...rows.map((r) => r.requests))} in a minute`);
  chart($("chart-errors"), slots, [{ label: "error rate", cls: "s2", values: rows.map((r) => r.errorRate * 100) }], (v) => `${v.toFixed(1)} %`,
    `Error rate over the last hour: ${total ? ((errors / total) * 100).toFixed(1) : 0} % of requests`);
  chart($("chart-latency"), slots, [
    { label: "p50", cls: "s1", values: rows.map((r) => r.p50Ms) },
    { label: "p99", cls: "s3", values: rows.map((r) => r.p99Ms) },
  ], (v) => `${Math.round(v)} ms`, `Latency over the last hour: p99 at most ${Math.max(...rows.map((r) => r.p99Ms))} ms`);
}

// ------------------------------------------------------------------------------------------
// Routes

function target(r) {
  if (r.disabled) return "disabled";
  return r.worker ? `worker ${r.worker} (${r.namespace})` : `service ${r.service}`;
}

async function loadRoutes(fresh) {
  if (fresh) { routeCursor = null; $("route-rows").replaceChildren(); }
  const q = $("route-q").value.trim();
  const params = new URLSearchParams({ limit: "50" });
  if (q) params.set("q", q);
  if (routeCursor) params.set("cursor", routeCursor);
  const res = await api("GET", `/api/routes?${params}`);
  if (!res.ok) { say(`Routes: ${res.data && res.data.detail || res.status}`); return; }
  for (const r of res.data.items) {
    const actions = document.createElement("span");
    actions.append(button("Edit", () => editRoute(r), { "aria-label": `Edit ${r.domain}` }));
    if (r.source === "runtime") actions.append(button("Delete", () => deleteRoute(r.domain), { class: "secondary", "aria-label": `Delete ${r.domain}` }));
    $("route-rows").append(row([el("span", r.domain, { class: "mono" }), target(r), r.source + (r.overridesFile ? " (overrides file)" : ""), actions]));
  }
  routeCursor = res.data.nextCursor;
  $("route-more").hidden = !routeCursor;
}

function editRoute(r) {
  const entry = { ...r };
  for (const k of ["domain", "source", "overridesFile", "updatedAt", "updatedBy"]) delete entry[k];
  $("route-domain").value = r.domain;
  $("route-entry").value = JSON.stringify(entry, null, 2);
  $("route-domain").focus();
}

async function saveRoute(event) {
  event.preventDefault();
  const errors = $("route-errors");
  errors.replaceChildren();
  for (const id of ["route-domain", "route-entry"]) $(id).removeAttribute("aria-invalid");
  const domain = $("route-domain").value.trim();
  let entry;
  try { entry = JSON.parse($("route-entry").value); } catch (e) {
    errors.append(el("li", `entry: not JSON (${e.message})`));
    $("route-entry").setAttribute("aria-invalid", "true");
    return;
  }
  if (!domain) { errors.append(el("li", "domain: required")); $("route-domain").setAttribute("aria-invalid", "true"); return; }
  const res = await api("PUT", `/api/routes/${encodeURIComponent(domain)}`, entry);
  if (res.status === 400 && res.data && res.data.problems) {
    for (const p of res.data.problems) {
      errors.append(el("li", p.field ? `${p.field}: ${p.message}` : p.message));
      $(p.field === "domain" ? "route-domain" : "route-entry").setAttribute("aria-invalid", "true");
    }
    return;
  }
  if (!res.ok) { errors.append(el("li", (res.data && res.data.detail) || `failed (${res.status})`)); return; }
  say(`${res.status === 201 ? "Added" : "Saved"} ${res.data.domain}.`);
  await loadRoutes(true);
  await loadAudit();
}

async function deleteRoute(domain) {
  if (!confirm(`Delete the runtime route for ${domain}?`)) return;
  const res = await api("DELETE", `/api/routes/${encodeURIComponent(domain)}`);
  say(res.status === 204 ? `Deleted ${domain}.` : `Delete failed: ${(res.data && res.data.detail) || res.status}`);
  await loadRoutes(true);
  await loadAudit();
}

async function loadAudit() {
  const res = await api("GET", "/api/routes/audit?limit=20");
  const rows = $("audit-rows");
  rows.replaceChildren();
  if (!res.ok) return;
  for (const a of res.data.items) {
    rows.append(row([a.at, a.actor, a.action, el("span", a.domain, { class: "mono" }), el("code", a.after ? JSON.stringify(a.after) : "")]));
  }
}

// ------------------------------------------------------------------------------------------
// Users and keys

async function loadUsers(fresh) {
  if (fresh) userCursor = null;
  const params = new URLSearchParams({ q: $("user-q").value.trim(), match: $("user-match").value, limit: "20" });
  if (userCursor) params.set("cursor", userCursor);
  const gen = ++generation.users;
  const res = await api("GET", `/api/auth/users?${params}`);
  if (gen !== generation.users) return;
  if (fresh) $("user-rows").replaceChildren();
  if (!res.ok) { say(`Users: ${detail(res)}`); return; }
  for (const u of res.data.users) {
    $("user-rows").append(row([el("span", u.email, { class: "mono" }), u.role, u.createdAt || "",
      button("Manage", () => selectUser(u), { "aria-label": `Manage ${u.email}` })]));
  }
  if (fresh && !res.data.users.length) $("user-rows").append(row(["No users match", "", "", ""]));
  userCursor = res.data.nextCursor;
  $("user-more").hidden = !userCursor;
}

async function selectUser(u) {
  selected = u;
  $("user-detail").hidden = false;
  $("user-detail-h").textContent = `User ${u.email}`;
  $("user-id").textContent = u.id;
  $("role-role").value = u.role;
  $("user-result").textContent = "";
  $("user-detail-h").focus();
  await loadKeys();
}

async function changeRole(event) {
  event.preventDefault();
  if (!selected) return;
  const role = $("role-role").value;
  const res = await api("PUT", `/api/auth/users/${encodeURIComponent(selected.id)}/role`, { role });
  if (res.ok) selected.role = res.data.user.role;
  $("user-result").textContent = res.ok ? `${selected.email} is now ${res.data.user.role}.` : `Role change failed: ${detail(res)}`;
  await Promise.all([loadUsers(true), loadUserAudit(true)]);
}

async function endSessions() {
  if (!selected || !confirm(`End every session of ${selected.email}?`)) return;
  const res = await api("DELETE", `/api/auth/users/${encodeURIComponent(selected.id)}/sessions`);
  $("user-result").textContent = res.ok
    ? `Ended ${res.data.ended} session${res.data.ended === 1 ? "" : "s"} of ${selected.email}.`
    : `Ending sessions failed: ${detail(res)}`;
  await loadUserAudit(true);
}

async function loadKeys() {
  const rows = $("key-rows");
  rows.replaceChildren();
  const res = await api("GET", `/api/auth/users/${encodeURIComponent(selected.id)}/keys`);
  if (!res.ok) { rows.append(row([`Keys: ${detail(res)}`, "", "", "", ""])); return; }
  for (const k of res.data.keys) {
    rows.append(row([k.name, el("span", k.prefix, { class: "mono" }), k.createdAt, k.lastUsedAt || "never",
      button("Revoke", () => revokeKey(k), { class: "secondary", "aria-label": `Revoke key ${k.name}` })]));
  }
  if (!res.data.keys.length) rows.append(row(["No active keys", "", "", "", ""]));
}

async function revokeKey(k) {
  if (!confirm(`Revoke the key ${k.name} of ${selected.email}?`)) return;
  const res = await api("DELETE", `/api/auth/users/${encodeURIComponent(selected.id)}/keys/${encodeURIComponent(k.id)}`);
  $("user-result").textContent = res.status === 204 ? `Revoked ${k.name}.` : `Revoke failed: ${detail(res)}`;
  await Promise.all([loadKeys(), loadUserAudit(true)]);
}

/** An audit `before`/`after` object as "name: value" pairs. */
const compact = (v) => (v ? Object.entries(v).map(([k, x]) => `${k}: ${typeof x === "string" ? x : JSON.stringify(x)}`).join(", ") : "");

async function loadUserAudit(fresh) {
  if (fresh) userAuditCursor = null;
  const params = new URLSearchParams({ limit: "20" });
  if (userAuditCursor) params.set("cursor", userAuditCursor);
  const gen = ++generation.audit;
  const res = await api("GET", `/api/auth/audit?${params}`);
  if (gen !== generation.audit) return;
  if (fresh) $("user-audit-rows").replaceChildren();
  if (!res.ok) { say(`Audit: ${detail(res)}`); return; }
  for (const a of res.data.items) {
    $("user-audit-rows").append(row([a.at, el("span", a.actor, { class: "mono" }), a.action + (a.keyId ? ` ${a.keyId}` : ""),
      el("span", a.userId, { class: "mono" }), el("span", compact(a.before), { class: "pairs" }), el("span", compact(a.after), { class: "pairs" })]));
  }
  if (fresh && !res.data.items.length) $("user-audit-rows").append(row(["No changes yet", "", "", "", "", ""]));
  userAuditCursor = res.data.nextCursor;
  $("user-audit-more").hidden = !userAuditCursor;
}

// ------------------------------------------------------------------------------------------
// Waitlist

async function loadWaitlist() {
  const res = await api("GET", "/api/waitlist");
  const rows = $("waitlist-rows");
  rows.replaceChildren();
  if (!res.ok) { say(`Waitlist: ${res.status}`); return; }
  for (const d of res.data.domains) {
    const actions = document.createElement("span");
    actions.append(button("Sign-ups", () => loadSignups(d.domain), { "aria-label": `Sign-ups of ${d.domain}` }));
    actions.append(button("Export CSV", () => exportCsv(d.domain), { class: "secondary", "aria-label": `Export ${d.domain} as CSV` }));
    rows.append(row([el("span", d.domain, { class: "mono" }), String(d.count), d.latestAt, actions]));
  }
  if (!res.data.domains.length) rows.append(row(["No sign-ups yet", "", "", ""]));
}

async function loadSignups(domain) {
  const res = await api("GET", `/api/waitlist/${encodeURIComponent(domain)}`);
  $("signups-h").hidden = false;
  $("signups-h").textContent = `Sign-ups of ${domain}`;
  $("signups").hidden = false;
  const rows = $("signup-rows");
  rows.replaceChildren();
  for (const s of (res.data && res.data.signups) || []) rows.append(row([s.email, s.createdAt]));
}

async function exportCsv(domain) {
  const res = await api("GET", `/api/waitlist/${encodeURIComponent(domain)}`, undefined, "text/csv");
  if (!res.ok) { say(`Export failed (${res.status}).`); return; }
  const url = URL.createObjectURL(new Blob([res.data], { type: "text/csv" }));
  const a = el("a", "", { href: url, download: `waitlist-${domain}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ------------------------------------------------------------------------------------------
// Requests (the api's request lines, from /api/logs)

const REQUEST_FILTERS = [["req-status", "status"], ["req-host", "host"], ["req-path", "path"]];

async function loadRequests(fresh) {
  const errors = $("req-errors");
  errors.textContent = "";
  for (const [id] of REQUEST_FILTERS) $(id).removeAttribute("aria-invalid");
  if (fresh) requestCursor = null;
  const params = new URLSearchParams({ worker: "api", message: "request", limit: "50" });
  for (const [id, name] of REQUEST_FILTERS) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  if (requestCursor) params.set("cursor", requestCursor);
  const gen = ++generation.requests;
  const res = await api("GET", `/api/logs?${params}`);
  if (gen !== generation.requests) return;
  if (fresh) $("req-rows").replaceChildren();
  if (!res.ok) {
    errors.textContent = detail(res);
    const bad = REQUEST_FILTERS.find(([, name]) => errors.textContent.includes(name));
    if (bad && res.status === 400) $(bad[0]).setAttribute("aria-invalid", "true");
    return;
  }
  for (const r of res.data.items) {
    const status = el("span", r.status, { class: r.status >= 500 ? "down" : "" });
    const at = new Date(r.ts).toISOString();
    $("req-rows").append(row([el("time", `${at.slice(11, 23)}Z`, { datetime: at, title: at }), r.method, el("span", r.host, { class: "mono" }),
      el("span", r.path, { class: "mono" }), status, r.durationMs, el("span", r.requestId, { class: "mono" })]));
  }
  if (fresh && !res.data.items.length) $("req-rows").append(row(["No requests match", "", "", "", "", "", ""]));
  requestCursor = res.data.nextCursor;
  $("req-more").hidden = !requestCursor;
  const s = res.data.scanned || {};
  $("req-scanned").textContent = `This page read ${s.objects ?? 0} log object${s.objects === 1 ? "" : "s"}.`;
}

// ------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("route-search").addEventListener("submit", (e) => { e.preventDefault(); loadRoutes(true); });
  $("route-more").addEventListener("click", () => loadRoutes(false));
  $("route-form").addEventListener("submit", saveRoute);
  $("role-form").addEventListener("submit", changeRole);
  $("user-search").addEventListener("submit", (e) => { e.preventDefault(); loadUsers(true); });
  $("user-more").addEventListener("click", () => loadUsers(false));
  $("end-sessions").addEventListener("click", endSessions);
  $("user-audit-more").addEventListener("click", () => loadUserAudit(false));
  $("req-filter").addEventListener("submit", (e) => { e.preventDefault(); loadRequests(true); });
  $("req-more").addEventListener("click", () => loadRequests(false));
  window.addEventListener("hashchange", navigate);
  start();
});
