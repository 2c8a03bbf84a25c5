// A soak test of the whole local platform (not in CI): mixed traffic at saturation from
// loopback for SOAK_SECONDS (default 300), a table per minute (req/s, p50/p99, answers by
// status, workerd's resident memory), then a consistency audit of everything the platform
// acknowledged. Exits non-zero when the audit fails. Run through `scripts/soak`.
//
// Memory is measured per isolate too, not only as workerd's resident set: workerd runs with
// its V8 inspector on a loopback port, and every SOAK_SAMPLE_SECS (default 15) each isolate
// is asked for its V8 heap after a full GC and the size of its WebAssembly memories (a wasm
// `Memory` never shrinks: it is the high-water mark of the Rust heap). The end report fits a
// least-squares line to each series after the first minute (warm-up) and says whether it grows.
import http from "node:http";
import net from "node:net";
import { readFileSync, readdirSync } from "node:fs";
import { Miniflare } from "miniflare";
import { platformOptions, applyMigrations, runtimeLines as linesOf, DEV_ADMIN_API_KEY } from "./platform.mjs";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 300);
const SAMPLE_SECS = Number(process.env.SOAK_SAMPLE_SECS ?? 15);
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
// As startPlatform (scripts/platform.mjs), plus the V8 inspector on a free loopback port.
const freePort = () => new Promise((resolve, reject) => {
  const server = net.createServer().once("error", reject).listen(0, "127.0.0.1", () => {
    const { port } = server.address();
    server.close(() => resolve(port));
  });
});
const inspectorPort = await freePort();
const mfOptions = platformOptions({
  port: PORT,
  apiVars: {
    // Callers are a handful of users and addresses at saturation: a limit no caller reaches,
    // except the flood's, which must be held exactly.
    RATE_LIMITS: JSON.stringify({ default: { limit: 100_000, windowSecs: 60 }, routes: { health: FLOOD } }),
  },
});
mfOptions.inspectorPort = inspectorPort;
// The local Analytics Engine stand-in keeps up to 100 000 data points in the api's isolate for
// the console's one query, which the soak never makes: a bounded, local-only store that would
// read as api heap growth. Here it prints each point (as in dev) and keeps none.
for (const w of mfOptions.workers) {
  if (w.name === "analytics-engine-local") w.script = `export default function () { return { writeDataPoint(point) { console.log("analytics-engine " + JSON.stringify(point ?? {})); } }; }`;
}
// Drained (an unread pipe would stall workerd); panics and runtime messages are kept.
mfOptions.handleRuntimeStdio = linesOf((line) => {
  if (line.includes("panicked")) panics++;
  if (!line.startsWith("{") && !line.startsWith("analytics-engine") && runtimeLines.length < 200) {
    runtimeLines.push(`${((Date.now() - started) / 1000).toFixed(1)} s ${line.slice(0, 300)}`);
  }
});
const mf = new Miniflare(mfOptions);
const platform = { url: await mf.ready, dispose: () => mf.dispose() };
await applyMigrations(mf);
const base = new URL(platform.url);
// A fresh connection per request by default, as curl and the tests do. SOAK_KEEPALIVE=1 reuses
// connections instead; local workerd then resets every open connection at once every few tens
// of seconds under load (ECONNRESET bursts; README "Soak"). In production client connections
// end at Cloudflare's edge, never at workerd's own listener.
const agent = process.env.SOAK_KEEPALIVE === "1" ? new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS + 4 }) : false;

// ---------------------------------------------------------------------------------------
// Measurement: one bucket per minute of the run.
const minutes = [];
let trafficStart = Date.now(); // set again when the traffic starts
const bucket = () => {
  const m = Math.floor((Date.now() - trafficStart) / 60_000);
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
  answered++;
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
const MiB = 1024 * 1024;
// Resident set, and its anonymous part (heap memory, as opposed to mapped files).
function residentMiB() {
  let rss = 0, anon = 0;
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      rss += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
      anon += Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    } catch { /* gone */ }
  }
  return { rss, anon };
}

// One V8 inspector session on one isolate of workerd (`ws://…/core:user:{worker}` for ours;
// Miniflare's own services — its entry worker, KV, D1, R2, cache, … — are isolates too).
class Isolate {
  static async connect(id) {
    const ws = new WebSocket(`ws://127.0.0.1:${inspectorPort}/${id}`);
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve, { once: true });
      ws.addEventListener("error", () => reject(new Error(`inspector ${id}: no connection`)), { once: true });
    });
    const isolate = new Isolate(id, ws);
    // The execution context (announced on Runtime.enable) is needed to evaluate anything;
    // Runtime stays disabled after, so console messages are not streamed to us.
    await isolate.send("Runtime.enable");
    await isolate.send("Runtime.disable");
    return isolate;
  }
  constructor(id, ws) {
    this.id = id;
    this.name = id.replace(/^core:user:/, "");
    this.ws = ws;
    this.seq = 0;
    this.pending = new Map();
    ws.addEventListener("message", (event) => {
      const m = JSON.parse(event.data);
      if (m.method === "Runtime.executionContextCreated") this.context ??= m.params.context.id;
      const waiting = m.id && this.pending.get(m.id);
      if (!waiting) return;
      this.pending.delete(m.id);
      if (m.error) waiting.reject(new Error(`${this.name}: ${m.error.message}`));
      else waiting.resolve(m.result);
    });
    ws.addEventListener("close", () => {
      for (const w of this.pending.values()) w.reject(new Error(`${this.name}: inspector closed`));
      this.pending.clear();
    });
  }
  send(method, params = {}, timeoutMs = 20_000) {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
      setTimeout(() => this.pending.delete(id) && reject(new Error(`${this.name}: ${method} timed out`)), timeoutMs).unref();
    });
  }
  // V8 heap in use after a full GC, the heap V8 holds, and the byte length of every wasm
  // Memory. Runtime.queryObjects runs a full synchronous GC before it looks (plain
  // HeapProfiler.collectGarbage posts a task that local workerd runs only on the isolate's
  // next event, so an idle isolate would never answer).
  async sample() {
    if (this.context === undefined) throw new Error(`${this.name}: no execution context`);
    const group = { objectGroup: "soak" };
    const proto = await this.send("Runtime.evaluate", { expression: "WebAssembly.Memory.prototype", contextId: this.context, ...group });
    const found = await this.send("Runtime.queryObjects", { prototypeObjectId: proto.result.objectId, ...group });
    const sizes = await this.send("Runtime.callFunctionOn", {
      objectId: found.objects.objectId, functionDeclaration: "function () { return this.map((m) => m.buffer.byteLength); }", returnByValue: true,
    });
    await this.send("Runtime.releaseObjectGroup", group);
    const heap = await this.send("Runtime.getHeapUsage");
    return { used: heap.usedSize / MiB, total: heap.totalSize / MiB, wasm: sizes.result.value.reduce((a, b) => a + b, 0) / MiB };
  }
}

// The isolates, grouped as the tables show them: ours one by one (the four tail instances as
// one), the example user workers, and everything of Miniflare's own.
const OURS = ["api", "db", "auth", "do", "tail"];
const groupOf = (name) => (OURS.includes(name) ? name : /^tail-/.test(name) ? "tail" : name.startsWith("user-") ? "users" : "miniflare");
const GROUPS = [...OURS, "users", "miniflare"];
const isolates = [];
const inspectorProblems = [];
try {
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  for (const { id } of targets) {
    try {
      const isolate = await Isolate.connect(id);
      if (isolate.context === undefined) { isolate.ws.close(); continue; } // a service with no JS
      isolates.push(isolate);
    } catch (e) {
      inspectorProblems.push(e.message);
    }
  }
} catch (e) {
  inspectorProblems.push(`inspector list: ${e.message}`);
}
const missing = OURS.filter((w) => !isolates.some((i) => i.name === w));
if (missing.length) inspectorProblems.push(`no inspector session on ${missing.join(", ")}`);

// Every sample: seconds since start, requests answered so far, RSS, and per group the sum of
// V8 heap after GC and of wasm memory. Sampled one isolate at a time, in the background.
const samples = [];
let answered = 0;
async function sampleMemory() {
  const at = (Date.now() - started) / 1000;
  const requests = answered;
  const groups = Object.fromEntries(GROUPS.map((g) => [g, { used: 0, total: 0, wasm: 0 }]));
  const beforeGc = residentMiB().rss;
  // All isolates at once: each waits for its own isolate between requests (one thread).
  await Promise.all(isolates.map(async (isolate) => {
    try {
      const s = await isolate.sample();
      const g = groups[groupOf(isolate.name)];
      g.used += s.used; g.total += s.total; g.wasm += s.wasm;
    } catch (e) {
      if (inspectorProblems.length < 20) inspectorProblems.push(e.message);
    }
  }));
  const sample = { at, requests, beforeGc, ...residentMiB(), groups };
  samples.push(sample);
  return sample;
}

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
if (inspectorProblems.length) process.stderr.write(`soak: inspector: ${inspectorProblems.join("; ")}\n`);
process.stderr.write(`soak: sampling ${isolates.length} isolates every ${SAMPLE_SECS} s\n`);
const baseline = await sampleMemory(); // after setup, before the traffic
trafficStart = Date.now();
measuring = true;
const deadline = Date.now() + SECONDS * 1000;
const sampler = setInterval(() => bucket().rss.push(residentMiB().rss), 5000);
// Isolate samples one after another (never two at once), then a final one after the traffic.
const memoryLoop = (async () => {
  while (Date.now() < deadline) {
    const t = Date.now();
    const sample = await sampleMemory();
    if (Date.now() < deadline) bucket().memory = sample;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(SAMPLE_SECS * 1000 - (Date.now() - t), deadline - Date.now()))));
  }
})();
const ticker = setInterval(() => {
  const b = minutes[minutes.length - 1];
  if (b) process.stderr.write(`  ${Math.round((Date.now() - trafficStart) / 1000)} s: ${b.requests} requests this minute\n`);
}, 30_000);
await Promise.all([...Array.from({ length: CONNECTIONS }, (_, i) => client(i)(deadline)), ...Array.from({ length: FLOODERS }, () => flood(deadline))]);
measuring = false;
await memoryLoop;
clearInterval(sampler);
clearInterval(ticker);
const elapsed = (Date.now() - trafficStart) / 1000;
const finalSample = await sampleMemory(); // after the traffic, before the audit

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

// Memory per minute: the minute's last sample (V8 heap in use after a full GC / wasm memory).
const mem = (g) => `${fmt(g.used, 1)}${g.wasm ? ` / ${fmt(g.wasm, 1)}` : ""}`;
console.log(`\nmemory (MiB; V8 heap in use after a full GC / wasm memory; ${isolates.length} isolates sampled every ${SAMPLE_SECS} s):\n`);
console.log(`| minute | requests so far | RSS before GC | RSS after | RSS anon | ${OURS.map((w) => (w === "tail" ? "tail ×4" : w)).join(" | ")} | user workers | Miniflare's own |`);
console.log(`| --- | --- | --- | --- | --- | ${OURS.map(() => "---").join(" | ")} | --- | --- |`);
const memoryRow = (label, x) =>
  console.log(`| ${label} | ${x.requests} | ${fmt(x.beforeGc, 0)} | ${fmt(x.rss, 0)} | ${fmt(x.anon, 0)} | ${OURS.map((w) => mem(x.groups[w])).join(" | ")} | ${mem(x.groups.users)} | ${mem(x.groups.miniflare)} |`);
memoryRow("before", baseline);
minutes.forEach((b, m) => b?.memory && memoryRow(String(m + 1), b.memory));
memoryRow("after", finalSample);

// The trend after warm-up: a least-squares line through the samples from the end of the first
// minute on, as MiB per minute and as bytes per request (the traffic rate varies).
const fit = (xs, ys) => {
  const n = xs.length, mx = xs.reduce((a, b) => a + b, 0) / n, my = ys.reduce((a, b) => a + b, 0) / n;
  const sxx = xs.reduce((t, x) => t + (x - mx) ** 2, 0), sxy = xs.reduce((t, x, i) => t + (x - mx) * (ys[i] - my), 0);
  return { slope: sxx ? sxy / sxx : NaN, mean: my };
};
const warm = [...samples.filter((x) => x.at - (trafficStart - started) / 1000 >= 60 && x !== finalSample), finalSample];
const series = [
  ["workerd RSS", (x) => x.rss, 8, 0.05],
  ["workerd RSS anon", (x) => x.anon, 8, 0.05],
  ...OURS.map((w) => [`${w} V8 heap`, (x) => x.groups[w].used, 0.5, 0.1]),
  ...OURS.map((w) => [`${w} wasm memory`, (x) => x.groups[w].wasm, 1, 0]),
  ["user workers' V8 heap", (x) => x.groups.users.used, 0.5, 0.1],
  ["Miniflare's own V8 heap", (x) => x.groups.miniflare.used, 0.5, 0.1],
];
// Fitted over everything after warm-up, and again over the second half of the run alone: a
// straight line cannot tell "still levelling off" from "grows without end", the second half can.
function trendOf(points, title) {
  const out = [];
  if (points.length < 3) return out;
  const span = (points.at(-1).at - points[0].at) / 60, served = points.at(-1).requests - points[0].requests;
  console.log(`\n${title} (least squares over ${points.length} samples, ${fmt(span, 1)} min, ${served} requests; flat = fitted growth over the span below the allowance):\n`);
  console.log("| series | first | last | MiB/min | bytes/request | fitted growth MiB | allowance MiB | verdict |");
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const [name, get, floor, share] of series) {
    const ys = points.map(get);
    const perMinute = fit(points.map((x) => x.at / 60), ys);
    const perRequest = fit(points.map((x) => x.requests), ys);
    const growth = perMinute.slope * span, allowance = Math.max(floor, share * perMinute.mean);
    const flat = !(growth > allowance);
    out.push({ name, flat, growth });
    console.log(`| ${name} | ${fmt(ys[0], 1)} | ${fmt(ys.at(-1), 1)} | ${fmt(perMinute.slope, 2)} | ${fmt(perRequest.slope * MiB, 0)} | ${fmt(growth, 1)} | ${fmt(allowance, 1)} | ${flat ? "flat" : "GROWS"} |`);
  }
  return out;
}
const trend = trendOf(warm, "trend after warm-up");
const half = warm.length ? warm.filter((x) => x.at >= (warm[0].at + warm.at(-1).at) / 2) : [];
const settled = trendOf(half, "trend over the second half of the run");

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
check(inspectorProblems.length === 0 && missing.length === 0, `every isolate of ours measured${inspectorProblems.length ? `:\n  ${inspectorProblems.join("\n  ")}` : ""}`);
if (trend.length) {
  const ours = trend.filter((t) => OURS.some((w) => t.name.startsWith(`${w} `)) && !t.flat);
  const others = trend.filter((t) => !OURS.some((w) => t.name.startsWith(`${w} `)) && !t.flat);
  check(ours.length === 0, `memory of our workers flat after warm-up${ours.length ? `: grows in ${ours.map((t) => `${t.name} (+${fmt(t.growth, 1)} MiB)`).join(", ")}` : ""}`);
  const settledGrowing = settled.filter((t) => !t.flat);
  const verdict = ours.length === 0 && others.length === 0
    ? "memory: FLAT (no growth trend after warm-up in workerd's RSS, any isolate's heap or any wasm memory)"
    : ours.length
      ? `memory: GROWS in our workers (${ours.map((t) => t.name).join(", ")})`
      : settled.length && settledGrowing.length === 0
        ? `memory: our workers flat; outside them ${others.map((t) => `${t.name} +${fmt(t.growth, 1)} MiB`).join(", ")} after warm-up, but FLAT over the second half (levelling off)`
        : `memory: our workers flat; GROWS outside them (${others.map((t) => `${t.name} +${fmt(t.growth, 1)} MiB`).join(", ")}${settled.length ? `; second half: ${settledGrowing.map((t) => `${t.name} +${fmt(t.growth, 1)} MiB`).join(", ") || "flat"}` : ""})`;
  console.log(`\n${verdict}`);
} else {
  check(false, `memory trend: fewer than 3 samples after warm-up (SOAK_SECONDS ${SECONDS} too short for a trend)`);
}

if (runtimeLines.length) console.log(`\nworkerd's own messages (first ${runtimeLines.length}):\n  ${runtimeLines.join("\n  ")}`);
const pidsAfter = workerdPids();
if (pidsAfter.join() !== pids.join()) console.log(`workerd restarted: pids ${pids.join(",")} → ${pidsAfter.join(",")}`);
if (agent) agent.destroy();
await platform.dispose();
process.exit(failures.length ? 1 : 0);
