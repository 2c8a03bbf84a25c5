// A soak test of the whole local platform (not in CI): mixed traffic at saturation from
// loopback for SOAK_SECONDS (default 300), a table per minute (req/s, p50/p99, answers by
// status, workerd's resident memory), then a consistency audit of everything the platform
// acknowledged. Exits non-zero when the audit fails. Run through `scripts/soak`.
import http from "node:http";
import { readFileSync, readdirSync } from "node:fs";
import { startPlatform, DEV_ADMIN_API_KEY } from "./platform.mjs";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 300);
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 16);
const PORT = Number(process.env.PORT ?? 0);
const USERS = Math.max(2, Math.ceil(CONNECTIONS / 2));
const COUNTERS = 4;
const WAITLIST_DOMAINS = 8;
// The flood's own policy: `/health` (platform traffic) from one address, well below what two
// clients send even on a loaded machine, so it is rejected most of the time.
const FLOOD = { limit: 10, windowSecs: 10 };
const FLOODERS = 2;
// SOAK_OPS=tenant,docRead runs only those operations of the mix (to attribute a trend).
const ONLY = process.env.SOAK_OPS ? new Set(process.env.SOAK_OPS.split(",")) : null;
const ADMIN = { "x-api-key": DEV_ADMIN_API_KEY };
const JSON_TYPE = { "content-type": "application/json" };

const started = Date.now();
let panics = 0;
// workerd's own messages (not the platform's JSON log lines), with when they came.
const runtimeLines = [];
const platform = await startPlatform({
  port: PORT,
  // Drained (an unread pipe would stall workerd); panics and runtime messages are kept.
  onOutput: (line) => {
    if (line.includes("panicked")) panics++;
    if (!line.startsWith("{") && !line.startsWith("analytics-engine") && runtimeLines.length < 200) {
      runtimeLines.push(`${((Date.now() - started) / 1000).toFixed(1)} s ${line.slice(0, 300)}`);
    }
  },
  apiVars: {
    // Callers are a handful of users and addresses at saturation: a limit no caller reaches,
    // except the flood's, which must be held exactly.
    RATE_LIMITS: JSON.stringify({ default: { limit: 100_000, windowSecs: 60 }, routes: { health: FLOOD } }),
  },
});
const base = new URL(platform.url);
// A fresh connection per request by default, as curl and the tests do. SOAK_KEEPALIVE=1 reuses
// connections instead; local workerd then resets every open connection at once every few tens
// of seconds under load (ECONNRESET bursts; README "Soak"). In production client connections
// end at Cloudflare's edge, never at workerd's own listener.
const agent = process.env.SOAK_KEEPALIVE === "1" ? new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS + 4 }) : false;

// ---------------------------------------------------------------------------------------
// Measurement: one bucket per minute of the run.
const minutes = [];
const bucket = () => {
  const m = Math.floor((Date.now() - started) / 60_000);
  return (minutes[m] ??= { latencies: [], statuses: {}, rss: [], requests: 0 });
};
const perOp = {};
let measuring = false;

function send(op, host, path, { method = "GET", headers = {}, body, ip } = {}) {
  const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const h = { host, ...headers, ...(ip ? { "cf-connecting-ip": ip } : {}) };
    if (payload !== undefined) h["content-length"] = Buffer.byteLength(payload);
    const req = http.request({ hostname: base.hostname, port: base.port, path, method, headers: h, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve(record(op, res.statusCode, t0, { status: res.statusCode, headers: res.headers, text, json }));
      });
      res.on("error", (e) => resolve(record(op, "socket", t0, { status: 0, text: socketError(e) })));
    });
    req.on("error", (e) => resolve(record(op, "socket", t0, { status: 0, text: socketError(e) })));
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

const socketError = (e) => `${e.code ?? e.message} at ${((Date.now() - started) / 1000).toFixed(1)} s`;

function record(op, status, t0, result) {
  if (measuring) {
    const ms = performance.now() - t0;
    const b = bucket();
    b.requests++;
    b.latencies.push(ms);
    b.statuses[status] = (b.statuses[status] ?? 0) + 1;
    const o = (perOp[op] ??= { n: 0, latencies: [], statuses: {} });
    o.n++;
    o.latencies.push(ms);
    o.statuses[status] = (o.statuses[status] ?? 0) + 1;
  }
  return result;
}

const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

// workerd is Miniflare's child process; its resident set is sampled every 5 s.
function workerdPids() {
  const pids = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (comm.includes("workerd") && ppid === process.pid) pids.push(Number(name));
    } catch { /* gone */ }
  }
  return pids;
}
const pids = workerdPids();
const rssMiB = () => pids.reduce((t, pid) => {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    return t + kb / 1024;
  } catch { return t; }
}, 0);

// ---------------------------------------------------------------------------------------
// Setup: users with a token and an API key each, shared counter documents, waitlist domains.
const expect = (r, ok, what) => {
  if (!ok.includes(r.status)) throw new Error(`setup ${what}: ${r.status} ${r.text}`);
  return r.json;
};
const run = Date.now().toString(36);
async function newUser(tag) {
  const email = `soak-${run}-${tag}@example.com`, password = "soak-password-123";
  expect(await send("setup", "api.do", "/api/auth/signup", { method: "POST", headers: JSON_TYPE, body: { email, password } }), [201], "signup");
  const login = expect(await send("setup", "api.do", "/api/auth/login", { method: "POST", headers: JSON_TYPE, body: { email, password } }), [200], "login");
  const bearer = { authorization: `Bearer ${login.token}` };
  const key = expect(await send("setup", "api.do", "/api/auth/keys", { method: "POST", headers: { ...bearer, ...JSON_TYPE }, body: { name: "soak" } }), [201], "key").key;
  return { email, password, bearer, apiKey: { "x-api-key": key } };
}
const users = [];
for (let i = 0; i < USERS; i++) users.push(await newUser(`u${i}`));
const counterOwner = await newUser("counters");
const counterIds = [];
for (let k = 0; k < COUNTERS; k++) {
  const doc = expect(await send("setup", "db.do", "/counters", { method: "POST", headers: { ...counterOwner.bearer, ...JSON_TYPE }, body: { value: 0 } }), [201], "counter");
  counterIds.push(doc.id);
}
const increments = new Array(COUNTERS).fill(0);
const domains = Array.from({ length: WAITLIST_DOMAINS }, (_, i) => `soak-${run}-${i}.example`);
const joined = Object.fromEntries(domains.map((d) => [d, []])); // emails acknowledged with 201
const ips = Array.from({ length: 64 }, (_, i) => `198.51.100.${i + 1}`);

// Every acknowledged write: doc id → { user, data } as last acknowledged.
const acked = new Map();
const audit = { staleReads: 0, unexpected: [] };
const pick = (xs) => xs[Math.floor(Math.random() * xs.length)];
const note = (op, r, expected) => {
  if (!expected.includes(r.status) && audit.unexpected.length < 20) audit.unexpected.push(`${op}: ${r.status} ${String(r.text ?? "").slice(0, 160)}`);
};

// ---------------------------------------------------------------------------------------
// The traffic mix: weight, operation. Each virtual client owns the documents it creates, and
// works on them one request at a time, so a read after an acknowledged write must see it.
function client(index) {
  const user = users[index % USERS];
  const mine = [];
  let seq = 0;
  const cred = () => (seq % 2 ? user.bearer : user.apiKey);
  const ops = [
    [16, async function docWrite() {
      const data = { client: index, seq: ++seq, text: "x".repeat(50 + (seq % 200)), n: Math.random() * 1e6 };
      if (mine.length && seq % 3 === 0) {
        const id = pick(mine);
        const r = await send("doc.put", "db.do", `/soak/${id}`, { method: "PUT", headers: { ...cred(), ...JSON_TYPE }, body: data });
        note("doc.put", r, [200]);
        if (r.status === 200) acked.set(id, { user, data });
      } else {
        const r = await send("doc.post", "api.do", "/api/db/soak", { method: "POST", headers: { ...cred(), ...JSON_TYPE }, body: data });
        note("doc.post", r, [201]);
        if (r.status === 201 && r.json?.id) { mine.push(r.json.id); acked.set(r.json.id, { user, data }); }
      }
    }],
    [16, async function docRead() {
      if (!mine.length) return new Promise((resolve) => setImmediate(resolve)); // nothing written yet
      const id = pick(mine);
      const r = await send("doc.get", "db.do", `/soak/${id}`, { headers: cred() });
      note("doc.get", r, [200]);
      if (r.status === 200 && !sameData(r.json, acked.get(id)?.data)) audit.staleReads++;
    }],
    [8, async function counter() {
      const k = Math.floor(Math.random() * COUNTERS);
      const got = await send("counter.get", "db.do", `/counters/${counterIds[k]}`, { headers: counterOwner.bearer });
      note("counter.get", got, [200]);
      if (got.status !== 200) return;
      const r = await send("counter.put", "db.do", `/counters/${counterIds[k]}`, {
        method: "PUT", headers: { ...counterOwner.bearer, ...JSON_TYPE, "if-match": got.headers.etag }, body: { value: got.json.value + 1 },
      });
      note("counter.put", r, [200, 412]);
      if (r.status === 200) increments[k]++;
    }],
    [10, async function rpcBatch() {
      const calls = mine.slice(-3).map((id, i) => ({ jsonrpc: "2.0", id: i, method: "db.get", params: ["soak", id] }));
      calls.push({ jsonrpc: "2.0", id: "s", method: "do.getServices" });
      const r = await send("rpc.batch", "api.do", "/rpc", { method: "POST", headers: { ...user.bearer, ...JSON_TYPE }, body: calls });
      note("rpc.batch", r, [200]);
      if (r.status === 200 && !(Array.isArray(r.json) && r.json.length === calls.length && r.json.every((x) => "result" in x))) {
        note("rpc.batch", { status: "bad-answer", text: r.text }, []);
      }
    }],
    [16, async function tenant() {
      const [host, path] = pick([["myapp.do", "/hello"], ["myapp.staging.do", "/x"], ["myapp.dev.do", "/"], ["shop.example.com", "/"]]);
      const r = await send("tenant", host, path, { ip: pick(ips) });
      note("tenant", r, [200]);
    }],
    [5, async function waitlistPage() {
      const r = await send("waitlist.page", pick(domains), "/", { ip: pick(ips) });
      note("waitlist.page", r, [200]);
    }],
    [8, async function waitlistJoin() {
      const domain = pick(domains);
      const repeat = joined[domain].length && Math.random() < 0.2;
      const email = repeat ? pick(joined[domain]) : `w${index}-${++seq}-${run}@example.com`;
      const r = await send("waitlist.join", domain, "/waitlist", { method: "POST", ip: pick(ips), headers: JSON_TYPE, body: { email } });
      note("waitlist.join", r, repeat ? [200] : [201]);
      if (r.status === 201) joined[domain].push(email);
    }],
    [5, async function me() {
      const r = await send("auth.me", "api.do", "/api/auth/me", { headers: user.apiKey });
      note("auth.me", r, [200]);
    }],
    // PBKDF2 at 100 000 iterations: a few of these are the realistic share.
    [2, async function login() {
      const r = await send("auth.login", "auth.do", "/login", { method: "POST", headers: JSON_TYPE, body: { email: user.email, password: user.password } });
      note("auth.login", r, [200]);
    }],
  ];
  if (ONLY) ops.splice(0, ops.length, ...ops.filter(([, op]) => ONLY.has(op.name)));
  const total = ops.reduce((t, [w]) => t + w, 0);
  return async (deadline) => {
    while (Date.now() < deadline) {
      let roll = Math.random() * total;
      const [, op] = ops.find(([w]) => (roll -= w) < 0) ?? ops[0];
      await op();
    }
  };
}

function sameData(doc, data) {
  if (!doc || !data) return false;
  return Object.entries(data).every(([k, v]) => doc[k] === v);
}

// Two clients of one address flooding `/health?live`: its 429s are expected; what passed is audited below.
const floodPassed = [];
let floodRejected = 0;
async function flood(deadline) {
  while (Date.now() < deadline) {
    const r = await send("flood", "api.do", "/health?live", { ip: "203.0.113.7" });
    note("flood", r, [200, 429]);
    if (r.status === 200) floodPassed.push(performance.now());
    if (r.status === 429) floodRejected++;
    if (r.status === 429 && !(r.headers["retry-after"] && r.headers["content-type"]?.startsWith("application/problem+json"))) {
      note("flood", { status: "429-without-retry-after", text: r.text }, []);
    }
  }
}

// ---------------------------------------------------------------------------------------
process.stderr.write(`soak: ${SECONDS} s, ${CONNECTIONS} clients + ${FLOODERS} flooding, ${USERS} users, workerd pids ${pids.join(",") || "?"}\n`);
measuring = true;
const deadline = Date.now() + SECONDS * 1000;
const sampler = setInterval(() => bucket().rss.push(rssMiB()), 5000);
const ticker = setInterval(() => {
  const b = minutes[minutes.length - 1];
  if (b) process.stderr.write(`  ${Math.round((Date.now() - started) / 1000)} s: ${b.requests} requests this minute\n`);
}, 30_000);
await Promise.all([...Array.from({ length: CONNECTIONS }, (_, i) => client(i)(deadline)), ...Array.from({ length: FLOODERS }, () => flood(deadline))]);
measuring = false;
clearInterval(sampler);
clearInterval(ticker);
const elapsed = (Date.now() - started) / 1000;

// ---------------------------------------------------------------------------------------
// The audit, after the traffic: every acknowledged write readable as acknowledged, no lost
// counter increment, sign-ups counted as acknowledged, the flood held to its limit.
let lostWrites = 0;
const entries = [...acked.entries()];
for (let i = 0; i < entries.length; i += 16) {
  await Promise.all(entries.slice(i, i + 16).map(async ([id, { user, data }]) => {
    const r = await send("audit", "db.do", `/soak/${id}`, { headers: user.bearer });
    if (r.status !== 200 || !sameData(r.json, data)) lostWrites++;
  }));
}
const lostIncrements = [];
for (let k = 0; k < COUNTERS; k++) {
  const r = await send("audit", "db.do", `/counters/${counterIds[k]}`, { headers: counterOwner.bearer });
  lostIncrements.push(increments[k] - (r.json?.value ?? NaN));
}
const overview = await send("audit", "api.do", "/api/waitlist", { headers: ADMIN });
const counted = Object.fromEntries((overview.json?.domains ?? []).map((d) => [d.domain, d.count]));
const signupMismatch = domains.filter((d) => (counted[d] ?? 0) !== joined[d].length);
// Sliding window: no more than `limit` passed in any window. Client-side receive times carry
// latency jitter, so the window checked is one second shorter than the policy's.
let floodMax = 0;
for (let i = 0, j = 0; i < floodPassed.length; i++) {
  while (floodPassed[i] - floodPassed[j] >= (FLOOD.windowSecs - 1) * 1000) j++;
  floodMax = Math.max(floodMax, i - j + 1);
}

// ---------------------------------------------------------------------------------------
const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "-");
const statusText = (s) => Object.entries(s).sort().map(([k, v]) => `${k}:${v}`).join(" ");
console.log(`\nsoak: ${fmt(elapsed, 0)} s, ${CONNECTIONS} clients + ${FLOODERS} flooding on ${base.host}${ONLY ? ` (only ${[...ONLY].join(", ")})` : ""}\n`);
console.log("| minute | requests | req/s | p50 ms | p99 ms | answers by status | workerd RSS MiB (min–max) |");
console.log("| --- | --- | --- | --- | --- | --- | --- |");
minutes.forEach((b, m) => {
  if (!b) return;
  const span = Math.min(60, elapsed - m * 60);
  const rss = b.rss.length ? `${fmt(Math.min(...b.rss), 0)}–${fmt(Math.max(...b.rss), 0)}` : "-";
  console.log(`| ${m + 1} | ${b.requests} | ${fmt(b.requests / span, 0)} | ${fmt(pct(b.latencies, 50))} | ${fmt(pct(b.latencies, 99))} | ${statusText(b.statuses)} | ${rss} |`);
});
console.log("\n| operation | requests | p50 ms | p99 ms | answers by status |");
console.log("| --- | --- | --- | --- | --- |");
for (const [op, o] of Object.entries(perOp).sort()) {
  console.log(`| ${op} | ${o.n} | ${fmt(pct(o.latencies, 50))} | ${fmt(pct(o.latencies, 99))} | ${statusText(o.statuses)} |`);
}
const failures = [];
const check = (ok, text) => { console.log(`${ok ? "ok  " : "FAIL"} ${text}`); if (!ok) failures.push(text); };
console.log("\naudit:");
check(lostWrites === 0, `${acked.size} acknowledged documents read back as acknowledged (${lostWrites} lost)`);
check(audit.staleReads === 0, `reads after an acknowledged write saw it (${audit.staleReads} stale)`);
check(lostIncrements.every((d) => d === 0), `${increments.reduce((a, b) => a + b, 0)} acknowledged counter increments, none lost (${lostIncrements.join(", ")})`);
check(overview.status === 200 && signupMismatch.length === 0,
  `${Object.values(joined).reduce((t, e) => t + e.length, 0)} acknowledged sign-ups counted by the admin API${signupMismatch.length ? ` (mismatch: ${signupMismatch.join(", ")})` : ""}`);
check(floodMax <= FLOOD.limit && floodRejected > 0,
  `the flood was limited (${floodRejected} answered 429) and never passed more than ${FLOOD.limit} in ${FLOOD.windowSecs - 1} s (max ${floodMax}, ${floodPassed.length} passed in all)`);
check(panics === 0, `no panic in workerd's output (${panics})`);
check(audit.unexpected.length === 0, `no unexpected answer${audit.unexpected.length ? `:\n  ${audit.unexpected.join("\n  ")}` : ""}`);

if (runtimeLines.length) console.log(`\nworkerd's own messages (first ${runtimeLines.length}):\n  ${runtimeLines.join("\n  ")}`);
const pidsAfter = workerdPids();
if (pidsAfter.join() !== pids.join()) console.log(`workerd restarted: pids ${pids.join(",")} → ${pidsAfter.join(",")}`);
if (agent) agent.destroy();
await platform.dispose();
process.exit(failures.length ? 1 : 0);
