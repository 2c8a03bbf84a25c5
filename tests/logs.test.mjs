// The log pipeline in workerd: api, do, db and auth → their tail consumer (crates/tail) →
// LogBatcher buffers → NDJSON objects in local R2 → GET /api/logs. The bucket is real local R2;
// the only stand-in is the fault injector in front of the tail worker's bucket (R2 has no
// failure switch), which fails every write while a marker object exists.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { platform, request } from "./helpers.mjs";
import { DEV_ADMIN_API_KEY, LOGS_FAULT_KEY } from "../scripts/platform.mjs";

const MAX_BYTES = 8192;
const MAX_AGE_MS = 1500;
const RATE_LIMITS = JSON.stringify({ default: { limit: 100000, windowSecs: 60 } });
const ADMIN = { "x-api-key": DEV_ADMIN_API_KEY };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A ULID for a request id chosen by the test (time now, random rest).
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
function ulid() {
  let time = Date.now(), head = "";
  for (let i = 0; i < 10; i++) { head = CROCKFORD[time % 32] + head; time = Math.floor(time / 32); }
  let tail = "";
  for (let i = 0; i < 16; i++) tail += CROCKFORD[Math.floor(Math.random() * 32)];
  return head + tail;
}

describe("log pipeline (tail worker → R2 → /api/logs)", () => {
  let p, bucket;
  // Every credential the tests use; none may appear in any stored object.
  const secrets = new Set([DEV_ADMIN_API_KEY]);
  let user; // { email, password, token, cookie, apiKey, userId }

  const api = (path, options = {}) => request(p.url, "api.do", path, options);
  const json = (body) => ({ method: "POST", headers: { "content-type": "application/json" }, body });

  /** Every stored object: {key, size, uploaded, text}. */
  async function objects() {
    const out = [];
    let cursor;
    do {
      const page = await bucket.list({ prefix: "logs/", cursor, include: ["customMetadata"] });
      for (const o of page.objects) {
        const body = await bucket.get(o.key);
        out.push({ key: o.key, size: o.size, uploaded: o.uploaded.getTime(), meta: o.customMetadata, text: await body.text() });
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return out;
  }
  const records = (objs) => objs.flatMap((o) => o.text.split("\n").filter(Boolean).map((l) => ({ ...JSON.parse(l), _key: o.key })));
  async function waitFor(what, fn, timeoutMs = 15000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await fn();
      if (value) return value;
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await sleep(200);
    }
  }
  /** The tail worker's counters for one producer, through its `stats` RPC method. */
  async function stats(worker) {
    const probe = await p.mf.getWorker("logs-probe");
    const res = await probe.fetch(`http://probe/?worker=${worker}`);
    const shards = await res.json();
    assert.ok(Array.isArray(shards), JSON.stringify(shards));
    return shards[0];
  }
  const idle = (worker) => waitFor(`${worker}'s buffer to drain`, async () => (await stats(worker)).pending.lines === 0);

  before(async () => {
    p = await platform({
      logPipeline: true,
      logsFaults: true,
      apiVars: { RATE_LIMITS, ENABLE_TEST_PANIC: "1" },
      tailVars: { LOG_BATCH_MAX_BYTES: String(MAX_BYTES), LOG_BATCH_MAX_AGE_MS: String(MAX_AGE_MS), LOG_SHARDS: "1" },
      // Test-only caller of the tail worker's stats() RPC method and its cron handler.
      extraWorkers: [{
        name: "logs-probe",
        modules: true,
        compatibilityDate: "2025-09-01",
        serviceBindings: { TAIL: "tail" },
        script: `export default { async fetch(req, env) {
          const url = new URL(req.url);
          try {
            if (url.searchParams.has("scheduled")) return Response.json(await env.TAIL.scheduled({ cron: "17 3 * * *" }));
            return Response.json(await env.TAIL.stats(url.searchParams.get("worker")));
          }
          catch (e) { return Response.json({ error: String(e) }, { status: 500 }); } } };`,
      }],
    });
    bucket = await p.mf.getR2Bucket("LOGS", "api");

    const email = `logs-${Date.now()}@example.com`;
    const password = "correct horse battery staple";
    const signup = await api("/api/auth/signup", json({ email, password }));
    assert.equal(signup.status, 201, signup.text);
    const login = await api("/api/auth/login", json({ email, password }));
    assert.equal(login.status, 200, login.text);
    const cookie = /session=([^;]+)/.exec(login.headers["set-cookie"]?.join?.(";") ?? login.headers["set-cookie"] ?? "")?.[1];
    assert.ok(cookie, "login sets a session cookie");
    const authorization = `Bearer ${login.json.token}`;
    const key = await api("/api/auth/keys", { method: "POST", headers: { authorization, "content-type": "application/json" }, body: { name: "logs-test" } });
    assert.equal(key.status, 201, key.text);
    user = { email, password, token: login.json.token, cookie, apiKey: key.json.key, userId: signup.json.user.id, authorization };
    for (const s of [password, user.token, cookie, user.apiKey]) secrets.add(s);
  });
  after(async () => { await p?.dispose(); });

  test("one request through api → do → db leaves lines from all three in R2 under its request id, in order", async () => {
    const rpc = await api("/rpc", {
      method: "POST",
      headers: { authorization: user.authorization, "content-type": "application/json" },
      body: { jsonrpc: "2.0", id: 1, method: "db.get", params: ["notes", "missing-note"] },
    });
    assert.equal(rpc.status, 200, rpc.text);
    const id = rpc.headers["x-request-id"];
    const mine = await waitFor("lines of api, do and db", async () => {
      const found = records(await objects()).filter((r) => r.requestId === id);
      const workers = new Set(found.map((r) => r.worker));
      return ["api", "do", "db"].every((w) => workers.has(w)) ? found : undefined;
    });
    // Stored where the layout says: the hour partition of each record, an object of its worker.
    for (const r of mine) {
      const d = new Date(r.ts).toISOString();
      assert.ok(r._key.startsWith(`logs/dt=${d.slice(0, 10)}/hr=${d.slice(11, 13)}/${r.worker}-`), r._key);
      assert.match(r._key, /\.ndjson$/);
    }
    // Each worker's invocation summary and its structured line, with the same trace id.
    const traceId = rpc.headers.traceparent.split("-")[1];
    for (const w of ["api", "do", "db"]) {
      const kinds = mine.filter((r) => r.worker === w).map((r) => r.kind);
      assert.ok(kinds.includes("invocation") && kinds.includes("log"), `${w}: ${kinds}`);
    }
    assert.ok(mine.filter((r) => r.kind === "log").every((r) => r.traceId === traceId));
    const apiLine = mine.find((r) => r.worker === "api" && r.message === "request");
    assert.equal(apiLine.status, 200);
    assert.equal(apiLine.path, "/rpc");

    // The endpoint answers the whole trace in time order, reading one or two partitions.
    const res = await api(`/api/logs?requestId=${id}`, { headers: ADMIN });
    assert.equal(res.status, 200, res.text);
    const items = res.json.items;
    assert.equal(items.length, mine.length);
    for (let i = 1; i < items.length; i++) assert.ok(items[i - 1].ts <= items[i].ts, "time order");
    const starts = ["api", "do", "db"].map((w) => items.find((r) => r.worker === w && r.kind === "invocation").ts);
    assert.ok(starts[0] <= starts[1] && starts[1] <= starts[2], `api ≤ do ≤ db start: ${starts}`);
    assert.ok(res.json.scanned.partitions <= 2, JSON.stringify(res.json.scanned));
    assert.equal(res.json.nextCursor, null);
  });

  test("an uncaught exception is captured with its request id", async () => {
    const id = ulid();
    const res = await api("/health?panic", { headers: { "x-request-id": id } });
    assert.equal(res.status, 500);
    const exception = await waitFor("the exception record", async () =>
      records(await objects()).find((r) => r.requestId === id && r.kind === "exception"));
    assert.equal(exception.worker, "api");
    assert.ok(exception.name, JSON.stringify(exception));
    const found = await api(`/api/logs?requestId=${id}`, { headers: ADMIN });
    const invocation = found.json.items.find((r) => r.kind === "invocation");
    assert.equal(invocation.outcome, "exception");
    assert.ok(found.json.items.some((r) => r.kind === "exception"));
    // The platform still answers.
    assert.equal((await api("/health?live")).status, 200);
  });

  test("batches respect their size bound", async () => {
    // ~40 requests' records (~1 KiB each for the api) are far over 8 KiB: written by size.
    const before = await stats("api");
    await Promise.all(Array.from({ length: 40 }, (_, i) =>
      api(`/health?live`, { headers: { "cf-connecting-ip": `198.51.100.${i + 1}` } })));
    await waitFor("a flush by size", async () => (await stats("api")).flushesBySize > before.flushesBySize);
    await idle("api");
    const all = await objects();
    assert.ok(all.length > 1);
    for (const o of all) {
      assert.ok(o.size <= MAX_BYTES, `${o.key}: ${o.size} bytes`);
      const lines = o.text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
      assert.equal(String(lines.length), o.meta.lines);
      assert.equal(String(Math.min(...lines.map((l) => l.ts))), o.meta.minTs);
      assert.equal(String(Math.max(...lines.map((l) => l.ts))), o.meta.maxTs);
    }
  });

  test("a lone record waits for the age bound, then is written", async () => {
    await idle("api");
    const before = await stats("api");
    const res = await api("/health?live");
    const id = res.headers["x-request-id"];
    const sent = Date.now();
    await sleep(MAX_AGE_MS / 3);
    assert.ok(!records(await objects()).some((r) => r.requestId === id), "not written before the age bound");
    const hit = await waitFor("the record", async () => {
      const objs = await objects();
      return objs.find((o) => o.text.includes(id));
    });
    const after = await stats("api");
    assert.equal(after.flushesByAge, before.flushesByAge + 1);
    assert.ok(hit.uploaded - sent >= MAX_AGE_MS - 300, `written ${hit.uploaded - sent} ms after the request`);
    assert.ok(hit.uploaded - sent < MAX_AGE_MS + 5000, `written ${hit.uploaded - sent} ms after the request`);
  });

  test("an R2 failure leaves requests unaffected, is counted, and the lines arrive once R2 is back", async () => {
    await idle("api");
    const before = await stats("api");
    await bucket.put(LOGS_FAULT_KEY, "1");
    try {
      const ids = [];
      for (let i = 0; i < 3; i++) {
        const res = await api("/health?live");
        assert.equal(res.status, 200);
        assert.equal(res.json.status, "ok");
        ids.push(res.headers["x-request-id"]);
      }
      const failing = await waitFor("a counted write failure", async () => {
        const s = await stats("api");
        return s.writeFailures > before.writeFailures ? s : undefined;
      });
      assert.ok(failing.pending.lines > 0, "the lines stay buffered");
      assert.match(failing.lastError, /injected R2 failure/);
      assert.ok(!records(await objects()).some((r) => ids.includes(r.requestId)));
      // Producers are unaffected while writes fail.
      assert.equal((await api("/health?live")).status, 200);
      await bucket.delete(LOGS_FAULT_KEY);
      await waitFor("the buffered lines after recovery", async () => {
        const found = new Set(records(await objects()).map((r) => r.requestId));
        return ids.every((id) => found.has(id));
      }, 20000);
      const recovered = await stats("api");
      assert.equal(recovered.consecutiveFailures, 0);
      assert.equal(recovered.linesDropped, 0);
      // A retried batch replaces what a failed attempt wrote: each record is stored once.
      const stored = records(await objects()).filter((r) => ids.includes(r.requestId));
      const unique = new Set(stored.map((r) => JSON.stringify({ ...r, _key: undefined })));
      assert.equal(unique.size, stored.length);
    } finally {
      await bucket.delete(LOGS_FAULT_KEY);
    }
  });

  test("the query endpoint is admin-only, validated and bounded", async () => {
    const anon = await api("/api/logs?requestId=01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert.equal(anon.status, 401);
    assert.match(anon.headers["content-type"], /problem\+json/);
    const nonAdmin = await api("/api/logs", { headers: { authorization: user.authorization } });
    assert.equal(nonAdmin.status, 403);
    for (const bad of ["from=0&to=999999999999", "limit=0", "limit=5000", "status=abc", "requestid=x", "cursor=bogus", "traceId=nothex"]) {
      const res = await api(`/api/logs?${bad}`, { headers: ADMIN });
      assert.equal(res.status, 400, `${bad}: ${res.text}`);
      assert.match(res.headers["content-type"], /problem\+json/);
      assert.equal(res.json.requestId, res.headers["x-request-id"]);
    }
    assert.equal((await api("/api/logs", { method: "POST", headers: ADMIN, body: "{}" })).status, 405);
    assert.equal((await api("/api/logs/x", { headers: ADMIN })).status, 404);

    // Pagination: limit=2 walks one request's records page by page, each exactly once.
    const rpc = await api("/rpc", {
      method: "POST",
      headers: { authorization: user.authorization, "content-type": "application/json" },
      body: { jsonrpc: "2.0", id: 2, method: "db.get", params: ["notes", "other"] },
    });
    const id = rpc.headers["x-request-id"];
    const all = await waitFor("the request's records", async () => {
      const r = await api(`/api/logs?requestId=${id}`, { headers: ADMIN });
      return new Set(r.json.items.map((i) => i.worker)).size >= 3 ? r.json.items : undefined;
    });
    const paged = [];
    let cursor = "";
    for (let pages = 0; pages < 20; pages++) {
      const r = await api(`/api/logs?requestId=${id}&limit=2${cursor ? `&cursor=${cursor}` : ""}`, { headers: ADMIN });
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.items.length <= 2);
      paged.push(...r.json.items);
      if (!r.json.nextCursor) break;
      cursor = r.json.nextCursor;
    }
    assert.deepEqual(paged.map((x) => JSON.stringify(x)).sort(), all.map((x) => JSON.stringify(x)).sort());

    // Filters over a time range: the api's request lines with a 5xx status (a route whose
    // binding is not configured answers 503).
    const unavailable = await api("/api/schedule/jobs", { headers: ADMIN });
    assert.equal(unavailable.status, 503);
    await waitFor("the 503 line", async () => records(await objects()).some((r) => r.requestId === unavailable.headers["x-request-id"]));
    const range = await api(`/api/logs?status=5xx&worker=api&from=${Date.now() - 10 * 60_000}`, { headers: ADMIN });
    assert.equal(range.status, 200, range.text);
    assert.ok(range.json.items.some((r) => r.requestId === unavailable.headers["x-request-id"] && r.status === 503));
    assert.ok(range.json.items.every((r) => r.status >= 500 && r.worker === "api"));
    const byUser = await api(`/api/logs?userId=${user.userId}&from=${Date.now() - 10 * 60_000}`, { headers: ADMIN });
    assert.ok(byUser.json.items.length >= 1 && byUser.json.items.every((r) => r.userId === user.userId));
    // Bounded: a page reads only the range's partitions.
    assert.ok(range.json.scanned.partitions <= 2, JSON.stringify(range.json.scanned));
  });

  test("retention deletes the day partitions older than LOG_RETENTION_DAYS, nothing newer", async () => {
    const old = "logs/dt=2020-01-01/hr=00/api-01DXF6DT00AAAAAAAAAAAAAAAA.ndjson";
    await bucket.put(old, '{"ts":1577836800000,"worker":"api","kind":"log"}\n');
    const kept = (await objects()).map((o) => o.key).filter((k) => k !== old);
    assert.ok(kept.length > 0);
    const probe = await p.mf.getWorker("logs-probe");
    const run = await probe.fetch("http://probe/?scheduled=1");
    assert.equal(run.status, 200, await run.text());
    const after = (await objects()).map((o) => o.key);
    assert.ok(!after.includes(old), "the 2020 partition is gone");
    for (const key of kept) assert.ok(after.includes(key), `${key} was kept`);
    assert.ok(p.logs.some((l) => l.includes('"message":"log retention"') && l.includes('"deletedObjects":"1"')));
  });

  test("no credential used by the tests appears in any stored object", async () => {
    // Credentials in every place a careless logger might pick them up.
    await api(`/api/auth/me?token=${user.token}&api_key=${user.apiKey}`, { headers: { authorization: user.authorization } });
    await api("/api/auth/me", { headers: { "x-api-key": user.apiKey } });
    await api("/api/auth/me", { headers: { cookie: `session=${user.cookie}` } });
    await api("/api/auth/login", json({ email: user.email, password: `${user.password}-wrong` }));
    secrets.add(`${user.password}-wrong`);
    await api("/api/logs?limit=1", { headers: ADMIN });
    await api(`/api/db/notes?session=${user.cookie}`, { headers: { authorization: user.authorization } });
    // In the path, which the api's request line (and db's call line) do record: only the
    // tail's own redaction stands between these and the bucket (workerd redacts trace URLs
    // and credential headers itself, not log lines).
    for (const secret of [user.apiKey, user.token, user.cookie]) {
      await api(`/api/db/notes/${secret}`, { headers: { authorization: user.authorization } });
    }
    await sleep(500);
    for (const w of ["api", "auth", "db", "do"]) await idle(w);
    const all = await objects();
    assert.ok(records(all).some((r) => r.worker === "auth"), "auth's lines are stored too");
    const everything = all.map((o) => o.key + "\n" + o.text).join("\n");
    for (const secret of secrets) {
      assert.ok(secret && secret.length >= 8, "a real credential");
      assert.ok(!everything.includes(secret), `a credential (${secret.slice(0, 4)}…) was stored`);
    }
    assert.ok(!everything.includes(user.token.split(".")[2]), "not even a token's signature");
  });
});
