// Rate limiting in workerd over real HTTP: exact under concurrency (one Durable Object per key),
// keyed by CF-Connecting-IP (never X-Forwarded-For) or by user, rate headers on every answer,
// windows that slide and free quota again, rejections that consume nothing, the clean-up alarm,
// and both failure modes. Miniflare passes an incoming CF-Connecting-IP through to the worker
// (it only fills it in when absent), so each test picks its own client address.
//
// `RATELIMIT_BENCH=1` also runs the overhead measurement at the end (numbers as diagnostics).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import path from "node:path";
import { platform, request } from "./helpers.mjs";
import { ROOT } from "../scripts/platform.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** GET on the api host from a given client address. */
function from(p, ip, path, headers = {}) {
  return request(p.url, "api.do", path, { headers: { "cf-connecting-ip": ip, ...headers } });
}

/** The five rate-limit headers, parsed; fails if any is missing. */
function rate(res) {
  const h = res.headers;
  for (const name of ["ratelimit-policy", "ratelimit", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]) {
    assert.ok(h[name] !== undefined, `${name} missing on ${res.status}: ${JSON.stringify(h)}`);
  }
  const m = /^"([^"]+)";r=(\d+);t=(\d+)$/.exec(h["ratelimit"]);
  assert.ok(m, `RateLimit: ${h["ratelimit"]}`);
  assert.equal(h["x-ratelimit-remaining"], m[2]);
  assert.equal(h["x-ratelimit-reset"], m[3]);
  return {
    policy: h["ratelimit-policy"],
    name: m[1],
    limit: Number(h["x-ratelimit-limit"]),
    remaining: Number(m[2]),
    reset: Number(m[3]),
  };
}

function assertNoRateHeaders(res) {
  for (const name of ["ratelimit-policy", "ratelimit", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"]) {
    assert.equal(res.headers[name], undefined, `${name} present on ${res.status}`);
  }
}

function assertTooMany(res, { maxRetry }) {
  assert.equal(res.status, 429, res.text);
  assert.equal(res.headers["content-type"], "application/problem+json");
  const retry = Number(res.headers["retry-after"]);
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= maxRetry, `Retry-After ${res.headers["retry-after"]}`);
  assert.equal(res.json.status, 429);
  assert.equal(res.json.retryAfter, retry);
  assert.equal(res.json.requestId, res.headers["x-request-id"]);
  assert.equal(rate(res).remaining, 0);
}

/** Parsed JSON log lines printed by workerd. */
function logLines(p) {
  return p.logs.flatMap((line) => {
    const start = line.indexOf("{");
    if (start < 0) return [];
    try { return [JSON.parse(line.slice(start))]; } catch { return []; }
  });
}

/** Waits (up to 3 s) for log lines matching `pick`; workerd output arrives asynchronously. */
async function waitForLogs(p, pick) {
  for (let i = 0; i < 30; i++) {
    const found = logLines(p).filter(pick);
    if (found.length > 0) return found;
    await sleep(100);
  }
  return [];
}

/** The limiter-failure event and the request line for `res`, both naming the mode. */
async function failureLogged(p, res, mode) {
  const id = res.headers["x-request-id"];
  const [event] = await waitForLogs(p, (l) => l.message === "rate limiter unavailable" && l.requestId === id);
  assert.ok(event, "limiter failure event logged");
  assert.equal(event.failureMode, mode);
  const [line] = await waitForLogs(p, (l) => l.message === "request" && l.requestId === id);
  assert.ok(line, "request line logged");
  assert.ok(line.limiterFailure.startsWith(`${mode}: `), line.limiterFailure);
  return { event, line };
}

/** The shard that owns a limit key: FNV-1a 64 mod the shard count, as
 * `gateway::limitshard::shard_index` computes it (pinned there by a native test). */
function shardOf(key, shards = 32) {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(key, "utf8")) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return Number(h % BigInt(shards));
}

/** A stub on the limiter shard (the api's RateLimiter object) that owns a limit key. */
async function limiterObject(p, key) {
  const ns = await p.mf.getDurableObjectNamespace("RATE_LIMITER", "api");
  return ns.get(ns.idFromName(`shard:${shardOf(key)}`));
}

/** What the shard owning `key` holds: {keys, pending, known, rows, stored, alarm, legacy}. */
async function inspect(p, key) {
  const stub = await limiterObject(p, key);
  return (await stub.fetch(`http://limiter/inspect?key=${encodeURIComponent(key)}`)).json();
}

/** Polls `inspect` until `done(state)` (up to ~5 s); returns the last state seen. */
async function inspectUntil(p, key, done) {
  let state;
  for (let i = 0; i < 50; i++) {
    state = await inspect(p, key);
    if (done(state)) break;
    await sleep(100);
  }
  return state;
}

describe("default limits: 100 per 60 s per client", () => {
  let p;
  before(async () => { p = await platform(); });
  after(async () => { await p?.dispose(); });

  test("150 concurrent /health requests from one IP: exactly 100 pass and 50 get 429", async () => {
    const all = await Promise.all(Array.from({ length: 150 }, () => from(p, "203.0.113.7", "/health")));
    const passed = all.filter((r) => r.status !== 429);
    const rejected = all.filter((r) => r.status === 429);
    assert.equal(passed.length, 100);
    assert.equal(rejected.length, 50);
    for (const res of passed) assert.equal(res.status, 200, res.text);
    // Decided one at a time: each remaining count from 99 down to 0 was handed out once.
    const remaining = passed.map((r) => rate(r).remaining).sort((a, b) => a - b);
    assert.deepEqual(remaining, Array.from({ length: 100 }, (_, i) => i));
    for (const res of rejected) assertTooMany(res, { maxRetry: 60 });
    for (const res of all) {
      const r = rate(res);
      assert.equal(r.policy, '"default";q=100;w=60');
      assert.equal(r.name, "default");
      assert.equal(r.limit, 100);
      assert.ok(r.reset >= 1 && r.reset <= 60, `reset ${r.reset}`);
    }
  });

  test("the exhausted key stays rejected, whatever X-Forwarded-For says", async () => {
    for (const xff of ["198.51.100.1", "198.51.100.2, 10.0.0.1", "2001:db8::1", "garbage"]) {
      const res = await from(p, "203.0.113.7", "/health", { "x-forwarded-for": xff });
      assertTooMany(res, { maxRetry: 60 });
    }
  });

  test("a second client IP is unaffected", async () => {
    const res = await from(p, "203.0.113.8", "/health");
    assert.equal(res.status, 200, res.text);
    assert.equal(rate(res).remaining, 99);
  });

  test("varying X-Forwarded-For does not give a fresh counter", async () => {
    const seen = [];
    for (const xff of ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) {
      const res = await from(p, "203.0.113.9", "/health", { "x-forwarded-for": xff });
      assert.equal(res.status, 200, res.text);
      seen.push(rate(res).remaining);
    }
    assert.deepEqual(seen, [99, 98, 97]);
  });

  test("/health, 404s and 401s all count against the same key, and all carry the headers", async () => {
    const ip = "203.0.113.10";
    const health = await from(p, ip, "/health");
    assert.equal(health.status, 200);
    assert.equal(rate(health).remaining, 99);
    const missing = await from(p, ip, "/no-such-route");
    assert.equal(missing.status, 404, missing.text);
    assert.equal(rate(missing).remaining, 98);
    // A presented but invalid credential is answered after the limiter has counted it.
    const badKey = await from(p, ip, "/health", { "x-api-key": "not-a-real-key" });
    assert.equal(badKey.status, 401, badKey.text);
    assert.equal(rate(badKey).remaining, 97);
    // A well-formed key this isolate has never seen pays its unit before auth is asked, and
    // only that one unit when it turns out invalid.
    const unknownKey = await from(p, ip, "/health", { "x-api-key": `sk_${"A".repeat(12)}_${"b".repeat(43)}` });
    assert.equal(unknownKey.status, 401, unknownKey.text);
    assert.equal(rate(unknownKey).remaining, 96);
  });

  test("tenant traffic has its own policy per tenant, and tenant answers carry no platform headers", async () => {
    const ip = "203.0.113.13";
    assert.equal(rate(await from(p, ip, "/no-such-route")).remaining, 99);
    const waitlist = await request(p.url, "nobody.example.org", "/", { headers: { "cf-connecting-ip": ip } });
    assert.equal(waitlist.status, 200);
    assertNoRateHeaders(waitlist);
    const worker = await request(p.url, "myapp.do", "/hello", { headers: { "cf-connecting-ip": ip } });
    assert.equal(worker.status, 200, worker.text);
    assertNoRateHeaders(worker);
    // The platform counter did not move for the two tenant requests.
    assert.equal(rate(await from(p, ip, "/no-such-route")).remaining, 98);
  });

  test("a burst of 150 page requests from one address to one tenant passes under the default", async () => {
    const ip = "203.0.113.12";
    const statuses = await Promise.all(
      Array.from({ length: 150 }, (_, i) =>
        request(p.url, "myapp.do", `/asset-${i}.js`, { headers: { "cf-connecting-ip": ip } }).then((r) => r.status)),
    );
    assert.deepEqual([...new Set(statuses)], [200]);
  });

  test("100 never-seen addresses are decided by the existing shards and reach storage off the response path", async () => {
    await Promise.all(Array.from({ length: 100 }, (_, i) => from(p, `10.9.${i >> 8}.${i & 255}`, "/no-such-route")));
    // Every key is in memory in its shard, none waited for a table, and they reach storage
    // in the next flush, off the response path.
    const keys = Array.from({ length: 100 }, (_, i) => `ip:10.9.${i >> 8}.${i & 255}:default`);
    const shards = new Set(keys.map((k) => shardOf(k)));
    assert.ok(shards.size <= 32);
    const states = await Promise.all(keys.map((k) => inspectUntil(p, k, (s) => s.stored)));
    assert.ok(states.every((s) => s.known && s.stored && s.pending === 0), JSON.stringify(states.find((s) => !s.stored)));
  });

  test("an authenticated caller is limited per user, not per IP", async () => {
    // 203.0.113.7 is exhausted, but the admin identity has its own counter.
    const res = await from(p, "203.0.113.7", "/health", { "x-api-key": "dev-admin-key" });
    assert.equal(res.status, 200, res.text);
    assert.equal(rate(res).remaining, 99);
    const again = await from(p, "203.0.113.99", "/health", { "x-api-key": "dev-admin-key" });
    assert.equal(rate(again).remaining, 98);
  });

  test("addresses in one IPv6 /64 share a counter; another /64 does not", async () => {
    const a = await from(p, "2001:db8:1:2::1", "/health");
    const b = await from(p, "2001:db8:1:2:ffff::9", "/health");
    const c = await from(p, "2001:db8:1:3::1", "/health");
    assert.deepEqual([a, b, c].map((r) => rate(r).remaining), [99, 98, 99]);
  });

  test("the request log line records the decision", async () => {
    const res = await from(p, "203.0.113.11", "/health");
    const id = res.headers["x-request-id"];
    const [line] = await waitForLogs(p, (l) => l.message === "request" && l.requestId === id);
    assert.ok(line, "request line");
    assert.deepEqual(line.rateLimit, { policy: "default", allowed: true, remaining: 99 });
    assert.equal(line.ip, "203.0.113.11");
  });
});

describe("a short window (5 per 2 s) with a per-route override (health: 3)", () => {
  let p;
  before(async () => {
    p = await platform({
      apiVars: { RATE_LIMITS: JSON.stringify({ default: { limit: 5, windowSecs: 2 }, routes: { health: { limit: 3 } } }) },
    });
  });
  after(async () => { await p?.dispose(); });

  test("after the window requests pass again; the rejections in between consumed nothing", async () => {
    const ip = "198.51.100.20";
    for (let i = 0; i < 5; i++) {
      const res = await from(p, ip, "/no-such-route");
      assert.equal(res.status, 404, res.text);
      assert.equal(rate(res).remaining, 4 - i);
      assert.equal(rate(res).policy, '"default";q=5;w=2');
    }
    // All five were recorded before this point (the object answered after recording them).
    const lastAccepted = Date.now();
    // Keep knocking through the window: if a rejection were counted, it would still be in the
    // window when the five accepted ones leave it, and the next burst would be refused.
    let rejected = 0;
    while (Date.now() - lastAccepted < 1_800) {
      assertTooMany(await from(p, ip, "/no-such-route"), { maxRetry: 2 });
      rejected += 1;
      await sleep(50);
    }
    assert.ok(rejected >= 5, `only ${rejected} rejections sent`);
    await sleep(Math.max(0, lastAccepted + 2_100 - Date.now()));
    const again = [];
    for (let i = 0; i < 6; i++) again.push((await from(p, ip, "/no-such-route")).status);
    assert.deepEqual(again, [404, 404, 404, 404, 404, 429]);
  });

  test("a route override has its own policy, counter and headers", async () => {
    const ip = "198.51.100.21";
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const res = await from(p, ip, "/health");
      statuses.push(res.status);
      assert.equal(rate(res).policy, '"route.health";q=3;w=2');
      assert.equal(rate(res).name, "route.health");
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    // The default policy's counter for the same IP is untouched.
    const other = await from(p, ip, "/no-such-route");
    assert.equal(other.status, 404);
    assert.equal(rate(other).remaining, 4);
  });

  test("accepted entries reach storage in a flush, and an idle key leaves memory and storage", async () => {
    const ip = "198.51.100.22";
    const key = `ip:${ip}:default`;
    for (let i = 0; i < 2; i++) assert.equal((await from(p, ip, "/no-such-route")).status, 404);
    const busy = await inspectUntil(p, key, (s) => s.stored && s.pending === 0);
    assert.equal(busy.known, true);
    assert.equal(busy.stored, true, JSON.stringify(busy));
    assert.equal(busy.alarm, true, "the shard's clean-up alarm is set");
    // The window is 2 s: once it has passed, the alarm (or a sweep) deletes the row and the
    // key leaves memory. Alarms fire in real time locally; allow a loaded machine some slack.
    await sleep(2_200);
    let idle;
    for (let i = 0; i < 40; i++) {
      idle = await inspect(p, key);
      if (!idle.stored && !idle.known) break;
      await sleep(200);
    }
    assert.equal(idle.stored, false, JSON.stringify(idle));
    assert.equal(idle.known, false, JSON.stringify(idle));
    // And the key starts afresh.
    const res = await from(p, ip, "/no-such-route");
    assert.equal(rate(res).remaining, 4);
  });

  test("the object refuses a malformed policy instead of guessing", async () => {
    const stub = await limiterObject(p, "ip:198.51.100.23:default");
    for (const query of [
      "",
      "key=k&cost=1&name=x&limit=0&windowMs=1000",
      "key=k&cost=1&name=a:b&limit=1&windowMs=1000",
      "key=k&cost=0&name=x&limit=1&windowMs=1000",
      "cost=1&name=x&limit=1&windowMs=1000",
      "key=k&cost=1&name=x&limit=1&windowMs=1000&extra=9",
    ]) {
      const res = await stub.fetch(`http://limiter/check?${query}`);
      assert.equal(res.status, 400, query);
      await res.text();
    }
    const ok = await stub.fetch("http://limiter/check?key=probe&cost=1&name=x&limit=1&windowMs=1000");
    // allowed;limit;remaining;reset — a header, no body.
    assert.equal(ok.headers.get("x-ratelimit-decision"), "1;1;0;1");
    assert.equal(await ok.text(), "");
  });
});

/** A JSON-RPC POST to /rpc as the platform admin from `ip`. */
function rpc(p, ip, body) {
  return request(p.url, "api.do", "/rpc", {
    method: "POST",
    headers: { "cf-connecting-ip": ip, "x-api-key": "dev-admin-key", "content-type": "application/json" },
    body,
  });
}

const call = (id) => ({ jsonrpc: "2.0", id, method: "do.getServices" });

/** Every `.sqlite` file under `dir` (Miniflare keeps one per Durable Object). */
function sqliteFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith(".sqlite"));
}

describe("traffic classes, batch costs and credential floods (issue 15)", () => {
  let p;
  let dir;
  let auth;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "ratelimit-classes-"));
    const assets = path.join(dir, "assets");
    mkdirSync(assets);
    const routes = JSON.parse(readFileSync(path.join(ROOT, "assets/domain-routes.json"), "utf8"));
    routes.push(
      { domain: "limited.example.com", worker: "myapp", namespace: "production", rateLimit: { mode: "exact", limit: 2, windowSecs: 60 } },
      { domain: "unlimited.example.com", worker: "myapp", namespace: "production", rateLimit: { mode: "off" } },
      { domain: "plain.example.com", worker: "myapp", namespace: "production" },
    );
    writeFileSync(path.join(assets, "domain-routes.json"), JSON.stringify(routes));
    p = await platform({
      persistTo: path.join(dir, "state"),
      assetsDirectory: assets,
      apiVars: {
        RATE_LIMITS: JSON.stringify({
          default: { limit: 5, windowSecs: 60 },
          tenant: { default: { mode: "approximate" }, namespaces: { staging: { mode: "exact", limit: 3, windowSecs: 60 } } },
        }),
      },
      overrides: { api: { ratelimits: { TENANT_RATE_LIMITER: { namespace_id: "1001", simple: { limit: 4, period: 60 } } } } },
    });
    auth = () => logLines(p).filter((l) => l.message === "rpc" && l.service === "auth" && l.method === "validateApiKey").length;
  });
  after(async () => {
    await p?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const tenant = (host, ip, path = "/") => request(p.url, host, path, { headers: { "cf-connecting-ip": ip } });

  test("approximate (the binding): the 5th page over a limit of 4 gets 429 with Retry-After, per tenant", async () => {
    const ip = "192.0.2.50";
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await tenant("myapp.do", ip)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 429]);
    const refused = await tenant("myapp.do", ip);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers["content-type"], "application/problem+json");
    assert.equal(refused.headers["retry-after"], "60");
    assert.equal(refused.json.requestId, refused.headers["x-request-id"]);
    // Another tenant (a custom domain to the same worker counts as the same tenant; the
    // development namespace's worker is another one), and another address, are unaffected.
    assert.equal((await tenant("myapp.dev.do", ip)).status, 200);
    assert.equal((await tenant("myapp.do", "192.0.2.51")).status, 200);
  });

  test("waitlist pages share one counter per address whatever the domain; a sign-up on a missing worker counts there too", async () => {
    const ip = "192.0.2.56";
    const statuses = [
      (await tenant("a.example.org", ip)).status,
      (await tenant("b.example.org", ip)).status,
      // No such user worker: its own tenant counter, and the waitlist's for the sign-up.
      (await request(p.url, "no-such-worker.do", "/waitlist", {
        method: "POST",
        headers: { "cf-connecting-ip": ip, "content-type": "application/json" },
        body: { email: "someone@example.com" },
      })).status,
      (await tenant("c.example.org", ip)).status,
      (await tenant("d.example.org", ip)).status,
    ];
    assert.deepEqual(statuses, [200, 200, 201, 200, 429]);
  });

  test("exact per namespace (staging: 3 per 60 s), with platform headers on the 429 only", async () => {
    const ip = "192.0.2.52";
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await tenant("myapp.staging.do", ip));
    assert.deepEqual(answers.map((r) => r.status), [200, 200, 200, 429]);
    assertNoRateHeaders(answers[0]);
    assert.equal(rate(answers[3]).policy, '"tenant.staging";q=3;w=60');
    assert.equal(rate(answers[3]).remaining, 0);
  });

  test("a domain route's own rateLimit: exact 2, and off", async () => {
    const ip = "192.0.2.53";
    const limited = [];
    for (let i = 0; i < 3; i++) limited.push((await tenant("limited.example.com", ip)).status);
    assert.deepEqual(limited, [200, 200, 429]);
    const unlimited = [];
    for (let i = 0; i < 8; i++) unlimited.push((await tenant("unlimited.example.com", ip)).status);
    assert.deepEqual([...new Set(unlimited)], [200]);
    // A route without its own limit follows the namespace (production: approximate, 4).
    const plain = [];
    for (let i = 0; i < 5; i++) plain.push((await tenant("plain.example.com", ip)).status);
    assert.deepEqual(plain, [200, 200, 200, 200, 429]);
  });

  test("a JSON-RPC batch of N calls costs N units; one larger than what remains is refused whole", async () => {
    const ip = "192.0.2.54";
    const three = await rpc(p, ip, [call(1), call(2), call(3)]);
    assert.equal(three.status, 200, three.text);
    assert.equal(three.json.length, 3);
    assert.equal(rate(three).remaining, 2);
    const refused = await rpc(p, ip, [call(4), call(5), call(6)]);
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.headers["content-type"], "application/problem+json");
    assert.ok(Number(refused.headers["retry-after"]) >= 1);
    assert.equal(refused.json.requestId, refused.headers["x-request-id"]);
    // Two units remain; the batch asked for three.
    assert.equal(rate(refused).remaining, 2);
    // Nothing of the refused batch ran or was counted: two single calls still fit.
    for (const expected of [1, 0]) {
      const one = await rpc(p, ip, call(7));
      assert.equal(one.status, 200, one.text);
      assert.equal(rate(one).remaining, expected);
    }
  });

  test("a flood of random API keys from one address is refused at its quota without asking auth", async () => {
    const ip = "192.0.2.55";
    const before = auth();
    const statuses = [];
    for (let i = 0; i < 12; i++) {
      const key = `sk_${randomBytes(9).toString("base64url").slice(0, 12).replace(/[-_]/g, "x")}_${randomBytes(32).toString("base64url")}`;
      statuses.push((await from(p, ip, "/api/db/notes", { "x-api-key": key })).status);
    }
    // The address quota is 5: five lookups (each 401), then 429 without a lookup.
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    await sleep(300); // auth's log lines arrive asynchronously
    assert.equal(auth() - before, 5, "auth was asked once per key within the quota, never past it");
  });

  test("fresh addresses share the existing shards: 300 of them leave at most 32 objects", async () => {
    await Promise.all(Array.from({ length: 300 }, (_, i) => from(p, `10.8.${i >> 8}.${i & 255}`, "/no-such-route")));
    const files = sqliteFiles(path.join(dir, "state"));
    const limiterFiles = files.filter((f) => String(f).includes("RateLimiter") && !String(f).endsWith("metadata.sqlite"));
    assert.ok(limiterFiles.length > 0 && limiterFiles.length <= 32, `${limiterFiles.length} limiter objects: ${files.join(", ")}`);
  });
});

describe("state survives the object being restarted", () => {
  test("a clean restart (fresh objects, same storage, after the flush) forgets nothing", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ratelimit-restart-"));
    const options = { persistTo: dir, apiVars: { RATE_LIMITS: JSON.stringify({ default: { limit: 5, windowSecs: 60 } }) } };
    const ip = "198.51.100.30";
    try {
      let p = await platform(options);
      try {
        for (let i = 0; i < 3; i++) assert.equal((await from(p, ip, "/no-such-route")).status, 404);
        // Clean: the shard has written what it accepted (at most FLUSH_MS = 100 ms later).
        const state = await inspectUntil(p, `ip:${ip}:default`, (s) => s.stored && s.pending === 0);
        assert.equal(state.pending, 0, JSON.stringify(state));
      } finally { await p.dispose(); }
      // Every object's memory is gone now, as after an eviction, a crash or a deploy.
      p = await platform(options);
      try {
        const statuses = [];
        for (let i = 0; i < 3; i++) statuses.push((await from(p, ip, "/no-such-route")).status);
        assert.deepEqual(statuses, [404, 404, 429]);
      } finally { await p.dispose(); }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// A stand-in for the limiter's Durable Object class that fails the way a real outage does:
// it throws, or (for the health route's policy) does not answer for 10 s.
const brokenLimiter = {
  name: "broken-limiter",
  modules: true,
  compatibilityDate: "2025-09-01",
  script: `
    import { DurableObject } from "cloudflare:workers";
    export class RateLimiter extends DurableObject {
      async fetch(request) {
        if (new URL(request.url).searchParams.get("name") === "route.health") {
          await new Promise((resolve) => setTimeout(resolve, 10_000));
          return new Response("too late");
        }
        throw new Error("limiter storage exploded");
      }
    }
    export default { fetch() { return new Response("not here", { status: 404 }); } };`,
};

describe("limiter failure with the default mode (closed)", () => {
  let p;
  before(async () => {
    p = await platform({
      extraWorkers: [brokenLimiter],
      overrides: { api: { durableObjects: { RATE_LIMITER: { className: "RateLimiter", scriptName: "broken-limiter" } } } },
      // An unknown mode is logged and treated as closed; health gets a policy the stand-in hangs on.
      apiVars: { RATE_LIMIT_FAILURE_MODE: "sideways", RATE_LIMITS: JSON.stringify({ routes: { health: {} } }) },
    });
  });
  after(async () => { await p?.dispose(); });

  test("a throwing limiter answers 503 problem+json, without rate headers, and is logged", async () => {
    const res = await from(p, "192.0.2.1", "/no-such-route");
    assert.equal(res.status, 503, res.text);
    assert.equal(res.headers["content-type"], "application/problem+json");
    assert.equal(res.json.requestId, res.headers["x-request-id"]);
    assert.match(res.json.detail, /rate limiter is unavailable/);
    assert.doesNotMatch(res.text, /exploded/);
    assertNoRateHeaders(res);
    const { event, line } = await failureLogged(p, res, "closed");
    assert.match(event.error, /exploded/);
    assert.equal(line.status, 503);
  });

  test("a limiter that does not answer times out after 2 s and fails closed", async () => {
    const started = Date.now();
    const res = await from(p, "192.0.2.2", "/health");
    const took = Date.now() - started;
    assert.equal(res.status, 503, res.text);
    assert.ok(took >= 1_900 && took < 6_000, `took ${took} ms`);
    const { event } = await failureLogged(p, res, "closed");
    assert.match(event.error, /no answer within 2000 ms/);
  });

  test("the unknown failure mode was logged", async () => {
    const found = await waitForLogs(p, (l) => l.message === "invalid RATE_LIMIT_FAILURE_MODE; failing closed");
    assert.equal(found[0]?.value, "sideways");
  });
});

describe("limiter failure with RATE_LIMIT_FAILURE_MODE=open", () => {
  let p;
  before(async () => {
    p = await platform({
      // No RATE_LIMITER binding at all: the limiter is unreachable.
      overrides: { api: { durableObjects: {} } },
      apiVars: { RATE_LIMIT_FAILURE_MODE: "open", RATE_LIMITS: "{not json" },
    });
  });
  after(async () => { await p?.dispose(); });

  test("requests proceed without rate headers, and each failure is logged", async () => {
    const res = await from(p, "192.0.2.3", "/health");
    assert.equal(res.status, 200, res.text);
    assertNoRateHeaders(res);
    const { event, line } = await failureLogged(p, res, "open");
    assert.match(event.error, /RATE_LIMITER/);
    assert.equal(line.status, 200);
    assert.equal(line.rateLimit, undefined);
  });

  test("a malformed RATE_LIMITS is logged (the defaults stay in force)", async () => {
    const found = await waitForLogs(p, (l) => l.message === "invalid RATE_LIMITS; using the default limits");
    assert.ok(found.length >= 1);
  });
});

// Overhead of the limiter, measured rather than guessed. Off by default (it takes ~1 min).
describe("overhead measurement (RATELIMIT_BENCH=1)", { skip: !process.env.RATELIMIT_BENCH }, () => {
  const N = Number(process.env.RATELIMIT_BENCH_N ?? 500);
  const K = 2_000;
  const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const summary = (ms) => {
    const s = [...ms].sort((a, b) => a - b);
    const mean = s.reduce((a, b) => a + b, 0) / s.length;
    return `p50 ${pct(s, 0.5).toFixed(2)} ms, p99 ${pct(s, 0.99).toFixed(2)} ms, mean ${mean.toFixed(2)} ms (n=${s.length})`;
  };
  async function timed(p, ip, expect) {
    const t = process.hrtime.bigint();
    const res = await from(p, ip, "/no-such-route");
    const took = Number(process.hrtime.bigint() - t) / 1e6;
    assert.equal(res.status, expect, res.text);
    return took;
  }
  // Times the object alone: a worker calls the api's RateLimiter class K times, one after
  // another or in waves of 100 concurrent calls, and reports the elapsed time (workerd's
  // clock advances across I/O, so a loop's total is meaningful; a single call's is not).
  const probe = {
    name: "limiter-probe",
    modules: true,
    compatibilityDate: "2025-09-01",
    durableObjects: { RL: { className: "RateLimiter", scriptName: "api", useSQLite: true } },
    script: `export default { async fetch(request, env) {
      const u = new URL(request.url);
      const stub = env.RL.get(env.RL.idFromName(u.searchParams.get("key")));
      const check = "http://limiter/check?key=" + u.searchParams.get("key") + "&cost=1&name=bench&limit=" + u.searchParams.get("limit") + "&windowMs=60000";
      const k = Number(u.searchParams.get("k"));
      const wave = Number(u.searchParams.get("wave"));
      const one = async () => (await stub.fetch(check)).headers.get("x-ratelimit-decision").startsWith("1;") ? 1 : 0;
      await one();
      let allowed = 0;
      const t0 = Date.now();
      for (let i = 0; i < k; i += wave) {
        const results = await Promise.all(Array.from({ length: wave }, one));
        allowed += results.reduce((a, b) => a + b, 0);
      }
      return Response.json({ ms: Date.now() - t0, allowed });
    } }`,
  };
  async function object(p, key, limit, wave) {
    const worker = await p.mf.getWorker("limiter-probe");
    const r = await (await worker.fetch(`http://probe/?key=${key}&limit=${limit}&k=${K}&wave=${wave}`)).json();
    return { ...r, perCall: r.ms / K };
  }

  test("limiter on vs off, and accepted vs rejected decisions", async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), "ratelimit-bench-"));
    const limits = (limit) => JSON.stringify({ default: { limit, windowSecs: 60 } });
    const started = [];
    try {
      // On-disk storage (as deployed objects have), so an insert really reaches SQLite on a file.
      const [off, on, tight, memory] = await Promise.all([
        platform({ persistTo: path.join(dir, "off"), overrides: { api: { durableObjects: {} } }, apiVars: { RATE_LIMIT_FAILURE_MODE: "open" } }),
        platform({ persistTo: path.join(dir, "on"), apiVars: { RATE_LIMITS: limits(10_000) }, extraWorkers: [probe] }),
        platform({ persistTo: path.join(dir, "tight"), apiVars: { RATE_LIMITS: limits(1) } }),
        platform({ apiVars: { RATE_LIMITS: limits(10_000) }, extraWorkers: [probe] }),
      ]);
      started.push(off, on, tight, memory);
      assert.equal((await from(tight, "10.1.0.2", "/no-such-route")).status, 404);
      // Interleaved, so load changes on the machine hit all three series alike.
      const series = { off: [], accepted: [], rejected: [] };
      for (let i = 0; i < N + 50; i++) {
        const a = await timed(off, "10.1.0.3", 404);
        const b = await timed(on, "10.1.0.1", 404);
        const c = await timed(tight, "10.1.0.2", 429);
        if (i >= 50) { series.off.push(a); series.accepted.push(b); series.rejected.push(c); } // 50 to warm up
      }
      const probes = {
        "disk, accepted, sequential": await object(on, "a1", 10_000, 1),
        "disk, rejected, sequential": await object(on, "r1", 1, 1),
        "disk, accepted, waves of 100": await object(on, "a2", 10_000, 100),
        "memory, accepted, sequential": await object(memory, "a3", 10_000, 1),
        "memory, rejected, sequential": await object(memory, "r3", 1, 1),
      };
      assert.equal(probes["disk, accepted, sequential"].allowed, K);
      assert.equal(probes["disk, rejected, sequential"].allowed, 0);
      const lines = [
        `api 404, limiter off (no binding, fail open): ${summary(series.off)}`,
        `api 404, limiter on, accepted (DO round trip + SQL insert): ${summary(series.accepted)}`,
        `api 429, limiter on, rejected (DO round trip, no write): ${summary(series.rejected)}`,
        ...Object.entries(probes).map(([name, r]) => `object alone, ${name}: ${r.perCall.toFixed(3)} ms per decision (${r.ms} ms / ${K})`),
      ];
      for (const line of lines) { t.diagnostic(line); console.log(line); }
    } finally {
      await Promise.all(started.map((p) => p.dispose()));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
