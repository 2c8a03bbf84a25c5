// Fault injection in workerd (see faults.mjs): a binding fails on demand, and for each fault
// the test checks what the client gets (status, problem body, request id), what the log says,
// and that nothing is half-written (rows counted before and after, in the real databases).
// Also the writes that must never be half-done in auth (role changes, lastUsedAt, the API-key
// cap under concurrency) and the routing table's cache under broken files and a hanging
// ASSETS read.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { request } from "./helpers.mjs";
import { faultPlan, faultyPlatform, ADMIN } from "./faults.mjs";

const RATE_LIMITS = JSON.stringify({ default: { limit: 100000, windowSecs: 60 } });
const PASSWORD = "correct horse battery";
const JSON_TYPE = { "content-type": "application/json" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let counter = 0;
const uniqueEmail = (tag) => `${tag}-${Date.now()}-${++counter}@example.com`;

function assertProblem(res, status, what = "") {
  assert.equal(res.status, status, `${what}: ${res.text}`);
  assert.equal(res.headers["content-type"], "application/problem+json", what);
  assert.equal(res.json.status, status, what);
  assert.equal(res.json.requestId, res.headers["x-request-id"], what);
  assert.doesNotMatch(res.text, /injected|D1_|SQLITE|\bat .*\.(js|rs)|panicked/, `${what}: leaks internals`);
}

/** The JSON log lines (any worker) that mention `requestId`. */
function linesOf(p, requestId) {
  return p.logs
    .map((l) => { try { return JSON.parse(l.slice(l.indexOf("{"))); } catch { return null; } })
    .filter((l) => l && l.requestId === requestId);
}

async function waitForLine(p, requestId, pick, ms = 3000) {
  const until = Date.now() + ms;
  for (;;) {
    const found = linesOf(p, requestId).find(pick);
    if (found || Date.now() > until) return found;
    await sleep(50);
  }
}

const count = async (db, sql, ...args) => (await db.prepare(sql).bind(...args).first()).n;

describe("D1 failing under db, auth and the waitlist", () => {
  const plan = faultPlan();
  let p, docs, users, waitlist;
  const api = (method, host, path, { body, headers = {} } = {}) =>
    request(p.url, host, path, { method, headers: { ...(body !== undefined ? JSON_TYPE : {}), ...headers }, body });
  before(async () => {
    p = await faultyPlatform(plan, { d1: ["db:DB", "auth:DB", "api:WAITLIST_DB"] }, { apiVars: { RATE_LIMITS } });
    docs = await p.realD1("db", "DB");
    users = await p.realD1("auth", "DB");
    waitlist = await p.realD1("api", "WAITLIST_DB");
  });
  after(async () => { await p?.dispose(); });

  test("db put, patch and delete: 502 problem, logged by db, no row changed", async () => {
    const put = await api("PUT", "db.do", "/notes/n1", { body: { title: "v1" }, headers: ADMIN });
    assert.equal(put.status, 201, put.text);
    const before = await docs.prepare("SELECT data, version FROM documents WHERE id = 'n1'").first();
    plan.set({ target: "db:DB", match: /^(INSERT|UPDATE|DELETE)/ });
    try {
      for (const [method, body, headers] of [
        ["PUT", { title: "v2" }, {}],
        ["PATCH", { title: "v3" }, { "content-type": "application/merge-patch+json" }],
        ["DELETE", undefined, {}],
      ]) {
        const res = await api(method, "db.do", "/notes/n1", { body, headers: { ...ADMIN, ...headers } });
        assertProblem(res, 502, method);
        const line = await waitForLine(p, res.headers["x-request-id"], (l) => l.message === "db call" && l.status === 500);
        assert.match(line?.error ?? "", /injected fault/, `${method}: db logs the cause`);
      }
    } finally {
      plan.clear();
    }
    assert.deepEqual(await docs.prepare("SELECT data, version FROM documents WHERE id = 'n1'").first(), before);
    assert.equal((await api("GET", "db.do", "/notes/n1", { headers: ADMIN })).json.title, "v1");
  });

  test("auth signup and login: 502 problem, no user or session row half-made", async () => {
    const email = uniqueEmail("signup");
    const usersBefore = await count(users, "SELECT COUNT(*) AS n FROM users");
    plan.set({ target: "auth:DB", match: /^INSERT INTO users/ });
    const failed = await api("POST", "api.do", "/api/auth/signup", { body: { email, password: PASSWORD } });
    plan.clear();
    assertProblem(failed, 502, "signup");
    assert.ok(await waitForLine(p, failed.headers["x-request-id"], (l) => l.service === "auth" && l.outcome === "error"), "auth logs the fault");
    assert.equal(await count(users, "SELECT COUNT(*) AS n FROM users"), usersBefore);
    // the retry succeeds: nothing left behind blocks it
    assert.equal((await api("POST", "api.do", "/api/auth/signup", { body: { email, password: PASSWORD } })).status, 201);

    const sessionsBefore = await count(users, "SELECT COUNT(*) AS n FROM sessions");
    plan.set({ target: "auth:DB", match: /^INSERT INTO sessions/ });
    const login = await api("POST", "api.do", "/api/auth/login", { body: { email, password: PASSWORD } });
    plan.clear();
    assertProblem(login, 502, "login");
    assert.equal(login.headers["set-cookie"], undefined, "no cookie for a session that does not exist");
    assert.equal(await count(users, "SELECT COUNT(*) AS n FROM sessions"), sessionsBefore);
  });

  test("auth logout with D1 failing: 502, yet the token is already dead (KV first) and a retry completes", async () => {
    const email = uniqueEmail("logout");
    await api("POST", "api.do", "/api/auth/signup", { body: { email, password: PASSWORD } });
    const login = await api("POST", "api.do", "/api/auth/login", { body: { email, password: PASSWORD } });
    const { token } = login.json;
    const cookie = [login.headers["set-cookie"]].flat().find((c) => c.startsWith("session=")).split(";")[0];
    const bearer = { authorization: `Bearer ${token}` };
    plan.set({ target: "auth:DB", match: /^UPDATE sessions SET revoked_at/ });
    const res = await api("POST", "api.do", "/api/auth/logout", { headers: bearer });
    plan.clear();
    assertProblem(res, 502, "logout");
    assert.equal(await count(users, "SELECT COUNT(*) AS n FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = ?1 AND s.revoked_at IS NOT NULL", email), 0);
    // The revocation record was written first: the token dies within the api's 4 s re-read of
    // revocations (the contract's "within 5 s everywhere"), though D1 still shows the session.
    const started = Date.now();
    let res2;
    do {
      await sleep(250);
      res2 = await api("GET", "api.do", "/api/auth/me", { headers: bearer });
    } while (res2.status === 200 && Date.now() - started < 6000);
    assertProblem(res2, 401, "token after a failed logout");
    assert.ok(Date.now() - started <= 5500, `took ${Date.now() - started} ms`);
    // The session cookie (checked against D1) still works until a retry finishes the job.
    const retry = await api("POST", "api.do", "/api/auth/logout", { headers: { cookie } });
    assert.equal(retry.status, 204, retry.text);
    assert.equal(await count(users, "SELECT COUNT(*) AS n FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = ?1 AND s.revoked_at IS NOT NULL", email), 1);
  });

  test("createApiKey with D1 failing: 502, no key row", async () => {
    const email = uniqueEmail("keys");
    await api("POST", "api.do", "/api/auth/signup", { body: { email, password: PASSWORD } });
    const { token } = (await api("POST", "api.do", "/api/auth/login", { body: { email, password: PASSWORD } })).json;
    const keysBefore = await count(users, "SELECT COUNT(*) AS n FROM api_keys");
    plan.set({ target: "auth:DB", match: /^INSERT INTO api_keys/ });
    const res = await api("POST", "api.do", "/api/auth/keys", { body: { name: "ci" }, headers: { authorization: `Bearer ${token}` } });
    plan.clear();
    assertProblem(res, 502, "createApiKey");
    assert.equal(await count(users, "SELECT COUNT(*) AS n FROM api_keys"), keysBefore);
  });

  test("setRole with the D1 write failing never leaves tokens granting a role D1 does not hold", async () => {
    const email = uniqueEmail("promote");
    const user = (await api("POST", "api.do", "/api/auth/signup", { body: { email, password: PASSWORD } })).json.user;
    const { token } = (await api("POST", "api.do", "/api/auth/login", { body: { email, password: PASSWORD } })).json;
    const bearer = { authorization: `Bearer ${token}` };
    plan.set({ target: "auth:DB", match: /^UPDATE users SET role/ });
    const promote = await api("PUT", "api.do", `/api/auth/users/${user.id}/role`, { body: { role: "admin" }, headers: ADMIN });
    assertProblem(promote, 502, "promotion");
    plan.clear();
    assert.equal((await users.prepare("SELECT role FROM users WHERE id = ?1").bind(user.id).first()).role, "user");
    const kv = await p.mf.getKVNamespace("AUTH_CACHE", "auth");
    assert.notEqual(await kv.get(`user:role:${user.id}`), "admin", "no KV record grants the role D1 refused");
    // the old token still carries "user", here and on every other instance
    const me = await api("GET", "api.do", "/api/auth/me", { headers: bearer });
    assert.equal(me.json.user.role, "user", me.text);
    assertProblem(await api("PUT", "api.do", `/api/auth/users/${user.id}/role`, { body: { role: "user" }, headers: bearer }), 403, "no admin rights");

    // A demotion whose D1 write fails leaves D1 and the tokens agreeing too.
    assert.equal((await api("PUT", "api.do", `/api/auth/users/${user.id}/role`, { body: { role: "admin" }, headers: ADMIN })).status, 200);
    plan.set({ target: "auth:DB", match: /^UPDATE users SET role/ });
    assertProblem(await api("PUT", "api.do", `/api/auth/users/${user.id}/role`, { body: { role: "user" }, headers: ADMIN }), 502, "demotion");
    plan.clear();
    assert.equal((await users.prepare("SELECT role FROM users WHERE id = ?1").bind(user.id).first()).role, "admin");
    assert.notEqual(await kv.get(`user:role:${user.id}`), "user", "the restricting record was put back");
  });

  test("a failed lastUsedAt update never fails a valid API key (logged)", async () => {
    const email = uniqueEmail("lastused");
    await api("POST", "api.do", "/api/auth/signup", { body: { email, password: PASSWORD } });
    const { token } = (await api("POST", "api.do", "/api/auth/login", { body: { email, password: PASSWORD } })).json;
    const { key } = (await api("POST", "api.do", "/api/auth/keys", { body: { name: "ci" }, headers: { authorization: `Bearer ${token}` } })).json;
    plan.set({ target: "auth:DB", match: /last_used_at = \?2/ });
    const res = await api("GET", "api.do", "/api/auth/me", { headers: { "x-api-key": key } });
    plan.clear();
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.user.email, email);
    assert.ok(plan.hits.some((h) => /last_used_at = \?2/.test(h.sql)), "the update was attempted and failed");
    assert.ok(p.logs.some((l) => l.includes("lastUsedAt was not updated")), "the failure is logged");
  });

  test("waitlist join with D1 failing: 500 problem, logged, no sign-up row", async () => {
    const host = "faulty-join.example";
    plan.set({ target: "api:WAITLIST_DB", match: /^INSERT INTO waitlist_signups/ });
    const res = await api("POST", host, "/waitlist", { body: { email: "a@b.example" } });
    plan.clear();
    assertProblem(res, 500, "waitlist join");
    const line = await waitForLine(p, res.headers["x-request-id"], (l) => l.message === "request");
    assert.match(line?.error ?? "", /waitlist insert failed/);
    assert.equal(await count(waitlist, "SELECT COUNT(*) AS n FROM waitlist_signups WHERE domain = ?1", host), 0);
    assert.equal((await api("POST", host, "/waitlist", { body: { email: "a@b.example" } })).status, 201, "the retry joins");
  });
});

describe("the per-user API key cap under concurrent creation", () => {
  const plan = faultPlan();
  let p;
  before(async () => { p = await faultyPlatform(plan, { d1: ["auth:DB"] }, { apiVars: { RATE_LIMITS } }); });
  after(async () => { await p?.dispose(); });

  test("20 simultaneous creations with room for 3: exactly 3 succeed, the rest 409", async () => {
    const email = uniqueEmail("cap");
    const user = (await request(p.url, "api.do", "/api/auth/signup", { method: "POST", headers: JSON_TYPE, body: { email, password: PASSWORD } })).json.user;
    const { token } = (await request(p.url, "api.do", "/api/auth/login", { method: "POST", headers: JSON_TYPE, body: { email, password: PASSWORD } })).json;
    const db = await p.realD1("auth", "DB");
    await db
      .prepare(
        `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 96)
         INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at)
         SELECT printf('seed%08d', i), ?1, 'seed', 'sk_seed', 'x', '2026-01-01T00:00:00.000Z' FROM n`,
      )
      .bind(user.id)
      .run();
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        request(p.url, "api.do", "/api/auth/keys", { method: "POST", headers: { ...JSON_TYPE, authorization: `Bearer ${token}` }, body: { name: "race" } }),
      ),
    );
    const statuses = answers.map((r) => r.status).sort();
    assert.deepEqual(statuses, [...Array(3).fill(201), ...Array(17).fill(409)], JSON.stringify(statuses));
    assert.equal(await count(db, "SELECT COUNT(*) AS n FROM api_keys WHERE user_id = ?1 AND revoked_at IS NULL", user.id), 100);
  });
});

describe("KV failing under identity (the api's AUTH_CACHE)", () => {
  const plan = faultPlan();
  let p;
  before(async () => { p = await faultyPlatform(plan, { kv: ["api:AUTH_CACHE"] }, { apiVars: { RATE_LIMITS } }); });
  after(async () => { await p?.dispose(); });

  test("a token whose revocation check cannot be read: a clean problem, never a silent pass of a dead token", async () => {
    const email = uniqueEmail("kvdown");
    await request(p.url, "api.do", "/api/auth/signup", { method: "POST", headers: JSON_TYPE, body: { email, password: PASSWORD } });
    const { token } = (await request(p.url, "api.do", "/api/auth/login", { method: "POST", headers: JSON_TYPE, body: { email, password: PASSWORD } })).json;
    plan.set({ target: "api:AUTH_CACHE" });
    const res = await request(p.url, "api.do", "/api/auth/me", { headers: { authorization: `Bearer ${token}` } });
    plan.clear();
    assert.ok(plan.hits.length > 0, "identity read KV");
    if (res.status === 200) {
      assert.equal(res.json.user.email, email);
    } else {
      assertProblem(res, res.status, "identity with KV down");
      assert.ok([401, 503].includes(res.status), res.text);
    }
    console.log(`identity with KV down: ${res.status} ${res.text.slice(0, 200)}`);
  });
});

describe("the routing table cache under faults", () => {
  const assetsWith = (content) => {
    const dir = mkdtempSync(path.join(tmpdir(), "routes-"));
    writeFileSync(path.join(dir, "domain-routes.json"), content);
    return dir;
  };
  const good = JSON.stringify([{ domain: "shop.example.com", worker: "myapp", namespace: "production" }]);

  describe("a cold isolate meeting a broken file", () => {
    let p;
    before(async () => {
      p = await faultyPlatform(faultPlan(), {}, { assetsDirectory: assetsWith("[{ broken"), apiVars: { RATE_LIMITS } });
      // The last good table another isolate shared, long past its TTL: a header line, then
      // the table's snapshot (`DomainRoutes::snapshot`: a version, then the routes; the api
      // writes each route as an array of its fields, and reads this object form as well).
      const kv = await p.mf.getKVNamespace("ROUTES_CACHE", "api");
      const header = JSON.stringify({ fetchedAtMs: Date.now() - 86_400_000, source: "not this file" });
      await kv.put("domain-routes:v2", `${header}\n${JSON.stringify([1, JSON.parse(good)])}`);
    });
    after(async () => { await p?.dispose(); });

    test("uses KV's last good table whatever its age, and logs it as stale", async () => {
      const res = await request(p.url, "shop.example.com", "/hello");
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json?.worker, "myapp");
      assert.ok(p.logs.some((l) => l.includes("serving the last good table from KV (stale)")), "logged as stale");
    });
  });

  describe("ASSETS hanging, and KV writes", () => {
    const plan = faultPlan();
    let p, assets, kvPuts;
    // A stand-in for ASSETS that serves the table and can be told to hang (test-only: the
    // local Assets binding cannot be made to hang).
    const fakeAssets = {
      name: "fake-assets",
      modules: true,
      compatibilityDate: "2025-09-01",
      serviceBindings: {
        async STATE() { if (assets.hang) assets.hung += 1; return Response.json(assets); },
      },
      script: `export default { async fetch(request, env) {
        const state = await (await env.STATE.fetch("http://state/")).json();
        if (state.hang) await new Promise((resolve) => setTimeout(resolve, 600000));
        return new Response(state.body, { headers: { "content-type": "application/json" } });
      } };`,
    };
    before(async () => {
      assets = { hang: false, hung: 0, body: good };
      p = await faultyPlatform(plan, { kv: ["api:ROUTES_CACHE"] }, {
        extraWorkers: [fakeAssets],
        apiVars: { RATE_LIMITS, ROUTES_TTL_MS: "200", ROUTES_REFRESH_DEADLINE_MS: "500" },
        apiServices: { ASSETS: "fake-assets" },
        // The api's own Assets config would claim the ASSETS name; the stand-in replaces it.
        overrides: { api: { assets: undefined } },
      });
    });
    after(async () => { await p?.dispose(); });
    kvPuts = () => plan.seen.filter((s) => s.target === "api:ROUTES_CACHE" && s.op === "put").length;

    test("an unchanged table is written to KV once, not on every refresh", async () => {
      const first = await request(p.url, "shop.example.com", "/");
      assert.equal(first.json?.worker, "myapp", first.text + "\n" + p.logs.filter((l) => l.includes("error")).slice(-5).join("\n"));
      for (let i = 0; i < 12; i++) {
        await sleep(250); // past the TTL: each request starts a refresh
        await request(p.url, "shop.example.com", "/");
      }
      assert.equal(kvPuts(), 1, JSON.stringify(plan.seen.filter((s) => s.op === "put")));
    });

    test("a hanging refresh is abandoned at its deadline; the next one picks up the edit", async () => {
      assets.hang = true;
      await sleep(250);
      await request(p.url, "shop.example.com", "/"); // starts a refresh that hangs
      // The refresh runs after the answer, and reads KV before ASSETS: wait until its ASSETS
      // fetch has really started hanging before the table is fixed.
      for (let i = 0; i < 50 && assets.hung === 0; i++) await sleep(20);
      assert.ok(assets.hung > 0, "the refresh never reached ASSETS");
      assets.hang = false;
      assets.body = JSON.stringify([{ domain: "other.example.com", worker: "myapp", namespace: "production" }]);
      let seen = false;
      for (let i = 0; i < 30 && !seen; i++) {
        await sleep(150);
        seen = (await request(p.url, "other.example.com", "/")).json?.worker === "myapp";
      }
      assert.ok(seen, "the isolate kept serving the stale table forever");
      // workerd's output reaches p.logs through a pipe, a little after the answers that follow it.
      let logged = false;
      for (let i = 0; i < 20 && !logged; i++) {
        logged = p.logs.some((l) => l.includes("no answer within 500 ms"));
        if (!logged) await sleep(100);
      }
      assert.ok(logged, "the timeout is logged");
      assert.equal(kvPuts(), 2, "the changed table is written once");
    });
  });
});

describe("the limiter object throwing, fail open", () => {
  let p;
  const brokenLimiter = {
    name: "throwing-limiter",
    modules: true,
    compatibilityDate: "2025-09-01",
    script: `export class RateLimiter { async fetch() { throw new Error("limiter storage exploded"); } }
      export default { fetch() { return new Response("not here", { status: 404 }); } };`,
  };
  before(async () => {
    p = await faultyPlatform(faultPlan(), {}, {
      extraWorkers: [brokenLimiter],
      overrides: { api: { durableObjects: { RATE_LIMITER: { className: "RateLimiter", scriptName: "throwing-limiter" } } } },
      apiVars: { RATE_LIMIT_FAILURE_MODE: "open" },
    });
  });
  after(async () => { await p?.dispose(); });

  test("requests proceed without rate headers; the failure is logged with the request id", async () => {
    const res = await request(p.url, "api.do", "/health?live");
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers["ratelimit"], undefined);
    const line = await waitForLine(p, res.headers["x-request-id"], (l) => l.message === "rate limiter unavailable");
    assert.match(line?.error ?? "", /exploded/);
  });
});

describe("the auth service hanging (its D1 never answers)", () => {
  const plan = faultPlan();
  let p;
  before(async () => {
    p = await faultyPlatform(plan, { d1: ["auth:DB"] }, { apiVars: { RATE_LIMITS, RPC_TIMEOUT_MS: "1000", HEALTH_TIMEOUT_MS: "1000" } });
  });
  after(async () => { await p?.dispose(); });

  test("login answers 504 problem at the RPC deadline instead of hanging", async () => {
    plan.set({ target: "auth:DB", action: "hang" });
    const started = Date.now();
    const res = await request(p.url, "api.do", "/api/auth/login", { method: "POST", headers: JSON_TYPE, body: { email: "a@b.example", password: PASSWORD } });
    const took = Date.now() - started;
    plan.clear();
    assertProblem(res, 504, "login with auth hanging");
    assert.ok(took >= 900 && took < 5000, `took ${took} ms`);
  });

  test("/health reports auth down after its probe deadline, without internal text", async () => {
    plan.set({ target: "auth:DB", action: "hang" });
    const res = await request(p.url, "api.do", "/health");
    plan.clear();
    assert.equal(res.status, 503, res.text);
    assert.deepEqual(res.json.down, ["auth"]);
    assert.deepEqual(Object.keys(res.json.services.auth).sort(), ["latencyMs", "ok"]);
    assert.ok(res.json.services.auth.latencyMs >= 900, res.text);
    const line = await waitForLine(p, res.headers["x-request-id"], (l) => l.message === "health: service down");
    assert.match(line?.error ?? "", /did not answer within 1000 ms/);
  });
});

describe("auth's KV failing during a promotion", () => {
  const plan = faultPlan();
  let p;
  before(async () => { p = await faultyPlatform(plan, { kv: ["auth:AUTH_CACHE"] }, { apiVars: { RATE_LIMITS } }); });
  after(async () => { await p?.dispose(); });

  test("502 and tokens keep the lower role; the retry writes the record", async () => {
    const email = uniqueEmail("kvpromote");
    const user = (await request(p.url, "api.do", "/api/auth/signup", { method: "POST", headers: JSON_TYPE, body: { email, password: PASSWORD } })).json.user;
    const promote = () => request(p.url, "api.do", `/api/auth/users/${user.id}/role`, { method: "PUT", headers: { ...JSON_TYPE, ...ADMIN }, body: { role: "admin" } });
    plan.set({ target: "auth:AUTH_CACHE", op: "put" });
    assertProblem(await promote(), 502, "promotion with KV down");
    plan.clear();
    const kv = await p.mf.getKVNamespace("AUTH_CACHE", "api");
    assert.equal(await kv.get(`user:role:${user.id}`), null, "no record was written");
    const retry = await promote();
    assert.equal(retry.status, 200, retry.text);
    assert.equal(await kv.get(`user:role:${user.id}`), "admin");
  });
});
