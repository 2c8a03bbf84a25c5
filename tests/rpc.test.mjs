// The do RPC proxy and the public JSON-RPC 2.0 endpoint: do called from Node over RPC, from a
// Rust worker (the api, through /api/do/... and /rpc), the JSON-RPC 2.0 spec's examples, and
// the clean failures: denied methods, forged ctx, unbound services and a slow service.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { platform, request } from "./helpers.mjs";

const ADMIN = { "x-api-key": "dev-admin-key" };
const TIMEOUT_MS = 300;

// Test-only services bound into do as registry services: `schedule` never answers in time,
// `email` throws with internal detail that must never reach a public caller.
const entrypoint = (name, methods) => ({
  name,
  modules: true,
  compatibilityDate: "2025-09-01",
  script: `import { WorkerEntrypoint } from "cloudflare:workers";
    export default class extends WorkerEntrypoint { ${methods} }`,
});
const slow = entrypoint("slow", `async health() { await new Promise((r) => setTimeout(r, 5000)); return { ok: true, service: "schedule" }; }`);
const flaky = entrypoint("flaky", `async health() { throw new Error("secret internal detail at flaky.js:3"); }`);

async function startRpcPlatform() {
  return platform({
    extraWorkers: [slow, flaky],
    overrides: {
      do: {
        serviceBindings: { DB_SERVICE: "db", AUTH_SERVICE: "auth", SCHEDULE_SERVICE: "slow", EMAIL_SERVICE: "flaky" },
        bindings: { CALL_TIMEOUT_MS: String(TIMEOUT_MS) },
      },
    },
    apiVars: { RATE_LIMITS: JSON.stringify({ default: { limit: 100000, windowSecs: 60 } }) },
  });
}

/** What `call()` throws or rejects with (fails the test if it succeeds). Miniflare's Node-side
 *  stub may throw synchronously, so the call is made in here. */
async function rejection(call) {
  try {
    const value = await call();
    assert.fail(`expected a rejection, got ${JSON.stringify(value)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    return e;
  }
}

/** The JSON log lines workerd printed that satisfy `match`. */
function logLines(p, match) {
  return p.logs
    .map((line) => line.slice(line.indexOf("{")))
    .flatMap((line) => { try { return [JSON.parse(line)]; } catch { return []; } })
    .filter(match);
}

describe("do over Workers RPC, called from Node", () => {
  let p, proxy;
  before(async () => { p = await startRpcPlatform(); proxy = await p.mf.getWorker("do"); });
  after(async () => { await p?.dispose(); });

  test("call() forwards to db and auth", async () => {
    assert.deepEqual({ ...(await proxy.call("db", "health", [])) }, { ok: true, service: "db" });
    assert.deepEqual({ ...(await proxy.call("auth", "health")) }, { ok: true, service: "auth" });
    assert.deepEqual({ ...(await proxy.health()) }, { ok: true, service: "do" });
  });

  test("getServices() lists the registry with availability from do's own bindings", async () => {
    const services = await proxy.getServices();
    const names = services.map((s) => s.name);
    assert.deepEqual(names.slice(0, 4), ["db", "auth", "do", "schedule"]);
    assert.ok(!names.includes("waitlist"), "built-ins are the api's own");
    assert.equal(names.length, 15);
    const available = services.filter((s) => s.available).map((s) => s.name);
    assert.deepEqual(available, ["db", "auth", "do", "schedule", "email"]);
    const db = services.find((s) => s.name === "db");
    assert.deepEqual({ ...db, methods: [...db.methods] }, {
      name: "db",
      binding: "DB_SERVICE",
      description: "documents (RPC, HTTP adapter)",
      available: true,
      methods: ["get", "put", "patch", "delete", "list", "health"],
    });
    for (const s of services) {
      for (const m of s.methods) assert.ok(!/^(_|fetch$|connect$|constructor$|dup$|validate)/.test(m), `${s.name}.${m}`);
    }
    assert.deepEqual([...services.find((s) => s.name === "queue").methods], ["health"]);
  });

  test("getService() and isServiceAvailable()", async () => {
    assert.equal((await proxy.getService("auth")).binding, "AUTH_SERVICE");
    assert.equal(await proxy.getService("nope"), null);
    assert.equal(await proxy.getService("waitlist"), null);
    assert.equal(await proxy.getService(42), null);
    assert.equal(await proxy.isServiceAvailable("db"), true);
    assert.equal(await proxy.isServiceAvailable("do"), true);
    assert.equal(await proxy.isServiceAvailable("queue"), false, "registered, but not bound in do");
    assert.equal(await proxy.isServiceAvailable("nope"), false);
  });

  test("internals and unlisted methods are refused with -32601", async () => {
    for (const [service, method] of [
      ["db", "fetch"], ["db", "connect"], ["db", "constructor"], ["db", "dup"], ["db", "_x"], ["db", "__proto__"],
      ["auth", "validateToken"], ["auth", "validateSession"], ["do", "call"], ["do", "constructor"],
      ["schedule", "run"], ["nope", "health"], ["db", "health\u0000"],
    ]) {
      const e = await rejection(() => proxy.call(service, method, []));
      assert.match(e.message, /^Method not found/, `${service}.${method}`);
    }
  });

  test("a registered service that do does not bind is unavailable (-32002)", async () => {
    const e = await rejection(() => proxy.call("queue", "health", []));
    assert.match(e.message, /Service unavailable: queue/);
  });

  test("bad arguments are refused (-32602)", async () => {
    assert.match((await rejection(() => proxy.call("db", "health", "not an array"))).message, /args must be an array/);
    assert.match((await rejection(() => proxy.call(1, "health", []))).message, /must be strings/);
    assert.match((await rejection(() => proxy.batchCall("nope"))).message, /calls must be an array/);
    const tooMany = Array.from({ length: 101 }, () => ({ service: "db", method: "health" }));
    assert.match((await rejection(() => proxy.batchCall(tooMany))).message, /at most 100/);
  });

  test("a slow service times out cleanly after CALL_TIMEOUT_MS, not after 5 s", async () => {
    const started = performance.now();
    const e = await rejection(() => proxy.call("schedule", "health", [], { requestId: "req-timeout-node" }));
    const elapsed = performance.now() - started;
    assert.match(e.message, /^Timeout: schedule\.health did not answer within 300 ms/);
    assert.ok(elapsed >= TIMEOUT_MS - 20 && elapsed < 1500, `took ${elapsed.toFixed(0)} ms`);
    console.log(`# do.call timeout answered after ${elapsed.toFixed(0)} ms (limit ${TIMEOUT_MS} ms)`);
  });

  test("a service that throws gives -32000 with its message (do's callers are trusted workers)", async () => {
    const e = await rejection(() => proxy.call("email", "health", []));
    assert.match(e.message, /secret internal detail/);
  });

  test("batchCall runs calls in parallel, isolated, answered in order", async () => {
    const calls = [
      { service: "db", method: "health" },
      { service: "schedule", method: "health" },
      { service: "db", method: "_x" },
      { service: "email", method: "health" },
      { service: "queue", method: "health" },
      5,
      { service: "db", method: "health", args: "x" },
      { service: "do", method: "getService", args: ["db"] },
      { service: "schedule", method: "health" },
      { service: "auth", method: "health", args: [] },
    ];
    const started = performance.now();
    const outcomes = await proxy.batchCall(calls, { requestId: "req-batch-node" });
    const elapsed = performance.now() - started;
    const summary = outcomes.map((o) => (o.success ? "ok" : o.error.code));
    assert.deepEqual(summary, ["ok", -32001, -32601, -32000, -32002, -32602, -32602, "ok", -32001, "ok"]);
    assert.deepEqual({ ...outcomes[0].result }, { ok: true, service: "db" });
    assert.equal(outcomes[7].result.name, "db");
    assert.equal(typeof outcomes[1].error.message, "string");
    // Two 300 ms timeouts in one batch: parallel, so well under 2 × 300 ms.
    assert.ok(elapsed < 2 * TIMEOUT_MS + 250, `took ${elapsed.toFixed(0)} ms`);
    console.log(`# batchCall of ${calls.length} (two timing out) answered after ${elapsed.toFixed(0)} ms`);
  });

  test("every proxied call writes one JSON log line with requestId, duration and outcome", async () => {
    await proxy.batchCall([{ service: "db", method: "health" }, { service: "db", method: "fetch" }], { requestId: "req-log-1" });
    await proxy.call("db", "health", [{ requestId: "req-from-ctx", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" }]);
    await new Promise((r) => setTimeout(r, 200)); // log lines arrive through workerd's stdout
    const lines = logLines(p, (l) => l.message === "call" && l.requestId === "req-log-1");
    assert.deepEqual(lines.map((l) => [l.service, l.method, l.outcome]).sort(), [["db", "fetch", "denied"], ["db", "health", "ok"]]);
    for (const l of lines) assert.equal(typeof l.durationMs, "number");
    const fromCtx = logLines(p, (l) => l.message === "call" && l.requestId === "req-from-ctx");
    assert.equal(fromCtx.length, 1);
    assert.equal(fromCtx[0].traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    const timedOut = logLines(p, (l) => l.message === "call" && l.requestId === "req-timeout-node");
    assert.equal(timedOut.length, 1);
    assert.equal(timedOut[0].outcome, "timeout");
    assert.ok(timedOut[0].durationMs >= TIMEOUT_MS - 20, JSON.stringify(timedOut[0]));
  });
});

describe("do through the api (a Rust worker): /api/do/...", () => {
  let p;
  before(async () => { p = await startRpcPlatform(); });
  after(async () => { await p?.dispose(); });

  const api = (path, options = {}) =>
    request(p.url, "api.do", path, { ...options, headers: { ...ADMIN, ...(options.headers ?? {}) } });

  test("GET /api/do/services and /services/{name}", async () => {
    const res = await api("/api/do/services");
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.services.filter((s) => s.available).map((s) => s.name), ["db", "auth", "do", "schedule", "email"]);
    const one = await api("/api/do/services/auth");
    assert.equal(one.status, 200, one.text);
    assert.equal(one.json.binding, "AUTH_SERVICE");
    const missing = await api("/api/do/services/nope");
    assert.equal(missing.status, 404);
    assert.equal(missing.headers["content-type"], "application/problem+json");
    assert.equal(missing.json.requestId, missing.headers["x-request-id"]);
  });

  test("it needs a credential", async () => {
    const res = await request(p.url, "api.do", "/api/do/services");
    assert.equal(res.status, 401);
    const rpc = await request(p.url, "api.do", "/rpc", { method: "POST", body: { jsonrpc: "2.0", id: 1, method: "do.health" } });
    assert.equal(rpc.status, 401);
  });

  test("POST /api/do/call runs a published method", async () => {
    const res = await api("/api/do/call", { method: "POST", body: { service: "db", method: "health" } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { result: { ok: true, service: "db" } });
    const named = await api("/api/do/call", { method: "POST", body: { service: "do", method: "getService", args: { name: "db" } } });
    assert.equal(named.json.result.name, "db");
  });

  test("POST /api/do/call refuses internals, forged ctx and bad bodies", async () => {
    for (const [service, method] of [["db", "fetch"], ["auth", "validateToken"], ["do", "constructor"], ["db", "_x"], ["do", "call"], ["auth", "login"]]) {
      const res = await api("/api/do/call", { method: "POST", body: { service, method, args: [] } });
      assert.equal(res.status, 404, `${service}.${method}: ${res.text}`);
      assert.equal(res.headers["content-type"], "application/problem+json");
    }
    const forged = await api("/api/do/call", {
      method: "POST",
      body: { service: "db", method: "get", args: { ctx: { userId: "someone-else", role: "admin" }, collection: "notes", id: "n1" } },
    });
    assert.equal(forged.status, 400, forged.text);
    assert.match(forged.json.detail, /ctx is supplied by the gateway/);
    const positional = await api("/api/do/call", { method: "POST", body: { service: "db", method: "get", args: [{ userId: "x" }, "notes", "n1"] } });
    assert.equal(positional.status, 400, positional.text);
    for (const body of ["{", "[]", JSON.stringify({ service: "db" }), JSON.stringify({ service: "db", method: "health", args: 3 }), JSON.stringify({ service: "db", method: "health", extra: 1 })]) {
      const res = await api("/api/do/call", { method: "POST", body });
      assert.equal(res.status, 400, `${body}: ${res.text}`);
    }
    const wrongMethod = await api("/api/do/call");
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, "POST");
    assert.equal((await api("/api/do/nothing")).status, 404);
  });

  test("POST /api/do/call: a slow service is a 504, a throwing one a 502 without its detail", async () => {
    const started = performance.now();
    const slowRes = await api("/api/do/call", { method: "POST", body: { service: "schedule", method: "health" } });
    const elapsed = performance.now() - started;
    assert.equal(slowRes.status, 504, slowRes.text);
    assert.ok(elapsed < 1500, `took ${elapsed.toFixed(0)} ms`);
    const failing = await api("/api/do/call", { method: "POST", body: { service: "email", method: "health" } });
    assert.equal(failing.status, 502, failing.text);
    assert.doesNotMatch(failing.text, /secret|flaky\.js/);
    const unbound = await api("/api/do/call", { method: "POST", body: { service: "queue", method: "health" } });
    assert.equal(unbound.status, 503, unbound.text);
  });

  test("GET /api/do/health", async () => {
    const res = await api("/api/do/health");
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { ok: true, service: "do" });
  });

  test("a body over 1 MiB is refused with 413 before it is run", async () => {
    const big = JSON.stringify({ service: "db", method: "health", args: ["x".repeat(1 << 20)] });
    const res = await api("/api/do/call", { method: "POST", body: big });
    assert.equal(res.status, 413, res.text);
    const rpc = await api("/rpc", { method: "POST", body: big });
    assert.equal(rpc.status, 413, rpc.text);
  });
});

describe("JSON-RPC 2.0 over POST /rpc (the spec's examples, with this platform's methods)", () => {
  let p;
  before(async () => { p = await startRpcPlatform(); });
  after(async () => { await p?.dispose(); });

  const rpc = (body, headers = {}) =>
    request(p.url, "api.do", "/rpc", { method: "POST", headers: { ...ADMIN, "content-type": "application/json", ...headers }, body });
  const byId = (responses) => Object.fromEntries(responses.map((r) => [JSON.stringify(r.id), r]));

  test("positional params", async () => {
    const res = await rpc({ jsonrpc: "2.0", method: "do.getService", params: ["db"], id: 1 });
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers["content-type"], /^application\/json/);
    assert.equal(res.json.jsonrpc, "2.0");
    assert.equal(res.json.id, 1);
    assert.equal(res.json.result.name, "db");
    assert.equal(res.json.error, undefined);
  });

  test("named params", async () => {
    const res = await rpc({ jsonrpc: "2.0", method: "do.isServiceAvailable", params: { name: "schedule" }, id: "a" });
    assert.deepEqual(res.json, { jsonrpc: "2.0", result: true, id: "a" });
    const unbound = await rpc({ jsonrpc: "2.0", method: "do.isServiceAvailable", params: { name: "queue" }, id: 2 });
    assert.equal(unbound.json.result, false);
  });

  test("a notification gets no response", async () => {
    const res = await rpc({ jsonrpc: "2.0", method: "db.health" });
    assert.equal(res.status, 204);
    assert.equal(res.text, "");
  });

  test("a method that does not exist", async () => {
    const res = await rpc({ jsonrpc: "2.0", method: "foobar", id: "1" });
    assert.deepEqual(res.json, { jsonrpc: "2.0", error: { code: -32601, message: "Method not found" }, id: "1" });
  });

  test("invalid JSON", async () => {
    const res = await rpc('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { jsonrpc: "2.0", error: { code: -32700, message: "Parse error" }, id: null });
  });

  test("an invalid Request object", async () => {
    const res = await rpc('{"jsonrpc": "2.0", "method": 1, "params": "bar"}');
    assert.equal(res.json.error.code, -32600);
    assert.equal(res.json.id, null);
  });

  test("a batch with invalid JSON", async () => {
    const res = await rpc('[{"jsonrpc": "2.0", "method": "db.health", "id": "1"}, {"jsonrpc": "2.0", "method"]');
    assert.ok(!Array.isArray(res.json));
    assert.equal(res.json.error.code, -32700);
    assert.equal(res.json.id, null);
  });

  test("an empty array", async () => {
    const res = await rpc("[]");
    assert.ok(!Array.isArray(res.json));
    assert.equal(res.json.error.code, -32600);
    assert.equal(res.json.id, null);
  });

  test("an invalid batch of one: [1]", async () => {
    const res = await rpc("[1]");
    assert.equal(res.json.length, 1);
    assert.equal(res.json[0].error.code, -32600);
    assert.equal(res.json[0].id, null);
  });

  test("an invalid batch: [1,2,3]", async () => {
    const res = await rpc("[1,2,3]");
    assert.deepEqual(res.json.map((r) => [r.error.code, r.id]), [[-32600, null], [-32600, null], [-32600, null]]);
  });

  test("a mixed batch", async () => {
    const res = await rpc([
      { jsonrpc: "2.0", method: "do.isServiceAvailable", params: ["db"], id: "1" },
      { jsonrpc: "2.0", method: "db.health" },
      { jsonrpc: "2.0", method: "do.getService", params: { name: "schedule" }, id: "2" },
      { foo: "boo" },
      { jsonrpc: "2.0", method: "foo.get", params: { name: "myself" }, id: "5" },
      { jsonrpc: "2.0", method: "do.health", id: "9" },
    ]);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.length, 5);
    const answers = byId(res.json);
    assert.equal(answers['"1"'].result, true);
    assert.equal(answers['"2"'].result.binding, "SCHEDULE_SERVICE");
    assert.equal(answers.null.error.code, -32600);
    assert.equal(answers['"5"'].error.code, -32601);
    assert.deepEqual(answers['"9"'].result, { ok: true, service: "do" });
  });

  test("an all-notification batch gets 204 and no body", async () => {
    const res = await rpc([{ jsonrpc: "2.0", method: "db.health", params: [] }, { jsonrpc: "2.0", method: "do.health" }]);
    assert.equal(res.status, 204);
    assert.equal(res.text, "");
  });

  test("ctx can never come from the caller (-32602)", async () => {
    const res = await rpc([
      { jsonrpc: "2.0", id: 1, method: "db.get", params: { ctx: { userId: "victim", role: "admin" }, collection: "notes", id: "n1" } },
      { jsonrpc: "2.0", id: 2, method: "db.get", params: [{ requestId: "x", userId: "victim", role: "admin" }, "notes", "n1"] },
      { jsonrpc: "2.0", id: 3, method: "db.health", params: { ctx: {} } },
      { jsonrpc: "2.0", id: 4, method: "do.getServices", params: [{ userId: "victim" }] },
    ]);
    assert.deepEqual(res.json.map((r) => [r.id, r.error?.code]), [[1, -32602], [2, -32602], [3, -32602], [4, -32602]]);
    assert.equal(res.json[0].error.data, "ctx is supplied by the gateway");
  });

  test("internals are never callable (-32601)", async () => {
    const names = ["db.fetch", "auth.validateToken", "do.constructor", "db._x", "do.call", "do.batchCall", "db.connect", "db.dup", "auth.login", "rpc.other"];
    const res = await rpc(names.map((method, i) => ({ jsonrpc: "2.0", id: i, method, params: [] })));
    assert.deepEqual(res.json.map((r) => r.error?.code), names.map(() => -32601));
  });

  test("a slow service times out cleanly (-32001) while the rest of the batch answers", async () => {
    const started = performance.now();
    const res = await rpc([
      { jsonrpc: "2.0", id: 1, method: "schedule.health" },
      { jsonrpc: "2.0", id: 2, method: "db.health" },
      { jsonrpc: "2.0", id: 3, method: "email.health" },
      { jsonrpc: "2.0", id: 4, method: "queue.health" },
    ]);
    const elapsed = performance.now() - started;
    assert.equal(res.status, 200, res.text);
    const answers = byId(res.json);
    assert.deepEqual(answers["1"].error, { code: -32001, message: "Timeout" });
    assert.deepEqual(answers["2"].result, { ok: true, service: "db" });
    assert.equal(answers["3"].error.code, -32000);
    assert.doesNotMatch(JSON.stringify(answers["3"]), /secret|flaky/);
    assert.deepEqual(answers["4"].error, { code: -32002, message: "Service unavailable" });
    assert.ok(elapsed < 1500, `took ${elapsed.toFixed(0)} ms`);
    console.log(`# /rpc batch with a 300 ms timeout answered after ${elapsed.toFixed(0)} ms`);
    await new Promise((r) => setTimeout(r, 200));
    // do logged the api's request id for calls that carry no ctx.
    const lines = logLines(p, (l) => l.message === "call" && l.requestId === res.headers["x-request-id"]);
    assert.deepEqual(lines.map((l) => `${l.service}.${l.method}:${l.outcome}`).sort(), ["db.health:ok", "email.health:error", "queue.health:unavailable", "schedule.health:timeout"]);
  });

  test("only POST (405 with Allow)", async () => {
    const res = await request(p.url, "api.do", "/rpc", { headers: ADMIN });
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, "POST");
    assert.equal(res.headers["content-type"], "application/problem+json");
  });

  test("db.put then db.get round trip with the api's ctx", async () => {
    const id = `rpc-${Date.now()}`;
    const put = await rpc({ jsonrpc: "2.0", id: 1, method: "db.put", params: ["notes", id, { title: "via rpc", n: 1 }] });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.json.error, undefined, put.text);
    assert.equal(put.json.result.created, true, put.text);
    const got = await rpc({ jsonrpc: "2.0", id: 2, method: "db.get", params: { collection: "notes", id } });
    assert.equal(got.json.result.title, "via rpc", got.text);
    assert.equal(got.json.result._version, 1);
    // The same document over the db HTTP adapter: same owner, because the api supplied the ctx.
    const http = await request(p.url, "api.do", `/api/db/notes/${id}`, { headers: ADMIN });
    assert.equal(http.status, 200, http.text);
    assert.equal(http.json.title, "via rpc");
    const missing = await rpc({ jsonrpc: "2.0", id: 3, method: "db.get", params: ["notes", "absent"] });
    assert.equal(missing.json.error.code, -32000, missing.text);
    assert.deepEqual(missing.json.error.data, { status: 404, code: "not_found" });
  });

  test("identity reaches services only as the api's ctx: ownership and role hold over /rpc", async () => {
    const login = async (email) => {
      const body = { email, password: "correct horse battery" };
      const signup = await request(p.url, "api.do", "/api/auth/signup", { method: "POST", headers: { "content-type": "application/json" }, body });
      assert.equal(signup.status, 201, signup.text);
      const res = await request(p.url, "api.do", "/api/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body });
      assert.equal(res.status, 200, res.text);
      return { authorization: `Bearer ${res.json.token}`, userId: signup.json.user.id };
    };
    const alice = await login(`alice-${Date.now()}@example.com`);
    const bob = await login(`bob-${Date.now()}@example.com`);
    const as = (who, body) => request(p.url, "api.do", "/rpc", { method: "POST", headers: { authorization: who.authorization }, body });
    const id = `owned-${Date.now()}`;
    const put = await as(alice, { jsonrpc: "2.0", id: 1, method: "db.put", params: ["notes", id, { secret: "alice's" }] });
    assert.equal(put.json.result?.created, true, put.text);
    assert.equal((await as(alice, { jsonrpc: "2.0", id: 2, method: "db.get", params: ["notes", id] })).json.result.secret, "alice's");
    // Bob cannot see it, and cannot claim to be Alice by sending a ctx of his own.
    const theft = await as(bob, [
      { jsonrpc: "2.0", id: 1, method: "db.get", params: ["notes", id] },
      { jsonrpc: "2.0", id: 2, method: "db.get", params: { ctx: { userId: alice.userId, role: "admin" }, collection: "notes", id } },
      { jsonrpc: "2.0", id: 3, method: "db.get", params: [{ requestId: "x", userId: alice.userId }, "notes", id] },
    ]);
    assert.deepEqual(theft.json.map((r) => [r.id, r.error?.code, r.error?.data?.status ?? null]), [[1, -32000, 404], [2, -32602, null], [3, -32602, null]]);
    assert.doesNotMatch(theft.text, /alice's/);
    // A plain user may not use an admin-only service (schedule) over /rpc or /api/do/call.
    const forbidden = await as(bob, [{ jsonrpc: "2.0", id: 1, method: "schedule.health" }, { jsonrpc: "2.0", id: 2, method: "db.health" }]);
    assert.deepEqual(forbidden.json.map((r) => [r.id, r.error?.code ?? "ok"]), [[1, -32003], [2, "ok"]]);
    const viaHttp = await request(p.url, "api.do", "/api/do/call", { method: "POST", headers: { authorization: bob.authorization }, body: { service: "schedule", method: "health" } });
    assert.equal(viaHttp.status, 403, viaHttp.text);
  });

  test("latency of one /rpc call through do", async () => {
    const samples = [];
    for (let i = 0; i < 30; i++) {
      const started = performance.now();
      const res = await rpc({ jsonrpc: "2.0", id: i, method: "db.health" });
      samples.push(performance.now() - started);
      assert.equal(res.json.result.ok, true);
    }
    samples.sort((a, b) => a - b);
    const pct = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))].toFixed(1);
    console.log(`# /rpc db.health through do: p50 ${pct(0.5)} ms, p90 ${pct(0.9)} ms, max ${pct(1)} ms (n=${samples.length})`);
  });
});

describe("an api without a do binding (test-only config)", () => {
  let p;
  before(async () => {
    p = await platform({ overrides: { api: { serviceBindings: { DB_SERVICE: "db", AUTH_SERVICE: "auth" } } } });
  });
  after(async () => { await p?.dispose(); });

  test("/rpc and /api/do/... answer 503 problems; parse errors still answer without do", async () => {
    const rpc = await request(p.url, "api.do", "/rpc", { method: "POST", headers: ADMIN, body: { jsonrpc: "2.0", id: 1, method: "db.health" } });
    assert.equal(rpc.status, 503, rpc.text);
    assert.equal(rpc.headers["content-type"], "application/problem+json");
    assert.equal(rpc.json.requestId, rpc.headers["x-request-id"]);
    const services = await request(p.url, "api.do", "/api/do/services", { headers: ADMIN });
    assert.equal(services.status, 503, services.text);
    // Nothing to run: answered by the api alone.
    const parse = await request(p.url, "api.do", "/rpc", { method: "POST", headers: ADMIN, body: "{" });
    assert.equal(parse.json.error.code, -32700);
  });
});

describe("the api's own deadline on the round trip to do (test-only config)", () => {
  let p;
  before(async () => {
    p = await platform({
      extraWorkers: [slow],
      overrides: { do: { serviceBindings: { DB_SERVICE: "db", AUTH_SERVICE: "auth", SCHEDULE_SERVICE: "slow" }, bindings: { CALL_TIMEOUT_MS: "10000" } } },
      apiVars: { RPC_TIMEOUT_MS: "300" },
    });
  });
  after(async () => { await p?.dispose(); });

  test("when do answers later than RPC_TIMEOUT_MS, every call of the batch is -32001 and /api/do/call is 504", async () => {
    const started = performance.now();
    const res = await request(p.url, "api.do", "/rpc", {
      method: "POST",
      headers: ADMIN,
      body: [{ jsonrpc: "2.0", id: 1, method: "schedule.health" }, { jsonrpc: "2.0", id: 2, method: "db.health" }],
    });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json.map((r) => [r.id, r.error?.code]), [[1, -32001], [2, -32001]]);
    assert.ok(elapsed < 1500, `took ${elapsed.toFixed(0)} ms`);
    const call = await request(p.url, "api.do", "/api/do/call", { method: "POST", headers: ADMIN, body: { service: "schedule", method: "health" } });
    assert.equal(call.status, 504, call.text);
  });
});
