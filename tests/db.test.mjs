// The db service and its REST adapter, in workerd: every row of the contract's Documents table
// over HTTP (API host and db.do), the same operations over RPC from Node (`getWorker("db")`)
// and from a JS worker with a service binding, isolation between users, optimistic concurrency
// under real races, cursor walks during inserts, bad input that must change nothing, db's log
// lines, and (reported, not asserted) get/put latency through the api against direct RPC.
//
// Identities: the admin key over HTTP (user "admin", role admin); other users through RPC with
// hand-made ctx objects (what the api builds from a verified identity).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { platform, request } from "./helpers.mjs";

const ADMIN = { "x-api-key": "dev-admin-key" };
const JSON_TYPE = { "content-type": "application/json" };
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const PROBLEM = "application/problem+json";

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
// A well-formed ULID (the first character is at most 7), so the api keeps it as the request id.
const fakeUlid = () => "0" + Array.from(randomBytes(25), (b) => CROCKFORD[b % 32]).join("");
const hex = (n) => randomBytes(n).toString("hex");

/** A ctx as the api would build it for `userId`. */
function ctxFor(userId, role = "user", requestId = fakeUlid(), traceId = hex(16)) {
  return { requestId, traceparent: `00-${traceId}-${hex(8)}-01`, userId, role };
}

/** RPC results arrive as structured clones; compare them as plain JSON. */
const plain = (v) => JSON.parse(JSON.stringify(v));

/** A unique collection name per test, so tests never see each other's documents. */
let collectionSeq = 0;
const freshCollection = (prefix) => `${prefix}-${process.pid}-${++collectionSeq}`;

// A test-only JS worker calling db over a service binding, as any JS worker would.
const JS_CLIENT = {
  name: "db-js-client",
  modules: true,
  compatibilityDate: "2025-09-01",
  serviceBindings: { DB: "db" },
  script: `export default {
    async fetch(request, env) {
      const ctx = { requestId: "01JSCL1ENT0000000000000000", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", userId: "js-user", role: "user" };
      const c = new URL(request.url).searchParams.get("collection");
      const steps = {};
      steps.put = await env.DB.put(ctx, c, "j1", { title: "from js", tags: ["a", "b"] });
      steps.get = await env.DB.get(ctx, c, "j1");
      steps.created = await env.DB.put(ctx, c, null, { title: "generated" }, { mode: "create" });
      steps.patch = await env.DB.patch(ctx, c, "j1", { title: null, done: true }, { ifMatch: '"1"' });
      steps.stale = await env.DB.put(ctx, c, "j1", { x: 1 }, { ifMatch: '"1"' });
      steps.list = await env.DB.list(ctx, c, { limit: 10 });
      steps.delete = await env.DB.delete(ctx, c, "j1");
      steps.missing = await env.DB.get(ctx, c, "j1");
      steps.noUser = await env.DB.get({ requestId: "x" }, c, "j1");
      steps.health = await env.DB.health();
      return Response.json(steps);
    },
  };`,
};

// A harness trap worth knowing: Miniflare's Node-side proxy (`getWorker`) completes RPC calls
// with synchronous round trips, so a loop of awaited RPC calls never lets Node's event loop
// poll I/O. workerd's stdout is then never drained; once it fills (about 40-60 KB of log lines,
// ~170 db calls) workerd blocks writing a log line and the call never returns. `yieldToIo`
// after each call lets Node read the output. HTTP requests and worker-to-worker RPC are not
// affected. Each block below also starts its own platform, so blocks cannot see each other.
const yieldToIo = () => new Promise((resolve) => setImmediate(resolve));

const RATE_LIMITS = JSON.stringify({ default: { limit: 100000, windowSecs: 60 } });

/** One platform for the enclosing describe block, and helpers bound to it. */
function usePlatform(options = {}) {
  const t = {};
  before(async () => {
    // Each block sends well over the default 100 requests a minute through the api.
    t.p = await platform({ apiVars: { RATE_LIMITS }, ...options });
    t.db = await t.p.mf.getWorker("db");
  });
  after(async () => { await t.p?.dispose(); });

  /** HTTP through the api on an API host, as the admin unless headers say otherwise. */
  // A header given as undefined is left out (so a test can drop the admin key).
  t.api = (method, path, { body, headers = {}, host = "api.do", prefix = "/api/db" } = {}) => {
    const all = { ...ADMIN, ...(body !== undefined ? JSON_TYPE : {}), ...headers };
    const sent = Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
    return request(t.p.url, host, prefix + path, { method, headers: sent, body });
  };
  t.rpc = async (method, ...args) => {
    const reply = plain(await t.db[method](...args));
    await yieldToIo();
    return reply;
  };
  /** Everything in a collection, as the admin sees it (all owners), walking every page. */
  t.everything = async (collection) => {
    const items = [];
    let cursor = null;
    do {
      const page = await t.rpc("list", ctxFor("admin", "admin"), collection, { limit: 100, cursor });
      items.push(...ok(page).items);
      cursor = page.value.nextCursor;
    } while (cursor);
    return items;
  };
  return t;
}

const ok = (reply) => {
  assert.equal(reply.ok, true, JSON.stringify(reply));
  return reply.value;
};

function assertProblem(res, status) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.headers["content-type"], PROBLEM, res.text);
  assert.equal(res.json.status, status);
  assert.equal(res.json.requestId, res.headers["x-request-id"]);
  assert.doesNotMatch(res.text, /\bat .*\.(js|rs)|panicked|RuntimeError/);
}

// A test-only JS worker that times db calls over its service binding from inside workerd: the
// RPC cost without Miniflare's Node-side proxy. (Workers clocks advance on I/O, and every RPC
// call is I/O, so per-call times are real, at the clock's millisecond resolution.)
const BENCH_CLIENT = {
  name: "db-bench",
  modules: true,
  compatibilityDate: "2025-09-01",
  serviceBindings: { DB: "db" },
  script: `export default {
    async fetch(request, env) {
      const q = new URL(request.url).searchParams;
      const [op, c, n] = [q.get("op"), q.get("collection"), Number(q.get("n"))];
      const ctx = { requestId: "01JSBENCH00000000000000000", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", userId: "admin", role: "admin" };
      const body = { title: "benchmark", n: 1, tags: ["a", "b"] };
      const ms = [];
      for (let i = 0; i < n; i++) {
        const t0 = Date.now();
        const r = op === "put" ? await env.DB.put(ctx, c, "w" + i, body) : await env.DB.get(ctx, c, "d" + i);
        ms.push(Date.now() - t0);
        if (!r.ok) return new Response(JSON.stringify(r), { status: 500 });
      }
      return Response.json(ms);
    },
  };`,
};

describe("documents (db)", () => {
  // ----------------------------------------------------------------------------------------
  // The contract's table, over HTTP

  describe("the contract's table over HTTP", () => {
    const t = usePlatform();
    const { api, rpc, everything } = t;
    test("POST /{collection} → 201 with a ULID id, Location and ETag; GET Location → 200", async () => {
      const c = freshCollection("notes");
      const res = await api("POST", `/${c}`, { body: { title: "hello", n: 1, nested: { a: [1, 2] } } });
      assert.equal(res.status, 201, res.text);
      assert.match(res.json.id, ULID);
      assert.equal(res.headers.location, `/api/db/${c}/${res.json.id}`);
      assert.equal(res.headers.etag, '"1"');
      assert.equal(res.headers["cache-control"], "no-store");
      assert.equal(res.json._version, 1);
      assert.equal(res.json.title, "hello");
      assert.deepEqual(res.json.nested, { a: [1, 2] });
      assert.ok(!Number.isNaN(Date.parse(res.json._createdAt)));
      assert.equal(res.json._createdAt, res.json._updatedAt);

      const got = await request(t.p.url, "api.do", res.headers.location, { headers: ADMIN });
      assert.equal(got.status, 200, got.text);
      assert.equal(got.headers.etag, '"1"');
      assert.deepEqual(got.json, res.json);
      assert.deepEqual(Object.keys(got.json).sort(), ["_createdAt", "_updatedAt", "_version", "id", "n", "nested", "title"]);
    });

    test("PUT /{collection}/{id} → 201 created, then 200 replaced; If-Match mismatch → 412 and nothing changes", async () => {
      const c = freshCollection("notes");
      const created = await api("PUT", `/${c}/n1`, { body: { v: "first" } });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.headers.location, `/api/db/${c}/n1`);
      assert.equal(created.headers.etag, '"1"');
      assert.equal(created.json.id, "n1");

      const replaced = await api("PUT", `/${c}/n1`, { body: { w: "second" } });
      assert.equal(replaced.status, 200, replaced.text);
      assert.equal(replaced.headers.etag, '"2"');
      assert.equal(replaced.headers.location, undefined);
      assert.equal(replaced.json.w, "second");
      assert.equal(replaced.json.v, undefined, "PUT replaces the whole document");
      assert.equal(replaced.json._createdAt, created.json._createdAt);

      const stale = await api("PUT", `/${c}/n1`, { body: { w: "stale" }, headers: { "if-match": '"1"' } });
      assertProblem(stale, 412);
      const weak = await api("PUT", `/${c}/n1`, { body: { w: "weak" }, headers: { "if-match": 'W/"2"' } });
      assertProblem(weak, 412);
      const after412 = await api("GET", `/${c}/n1`);
      assert.equal(after412.json.w, "second");
      assert.equal(after412.json._version, 2);

      const matching = await api("PUT", `/${c}/n1`, { body: { w: "third" }, headers: { "if-match": '"7", "2"' } });
      assert.equal(matching.status, 200, matching.text);
      assert.equal(matching.headers.etag, '"3"');
      const star = await api("PUT", `/${c}/n1`, { body: { w: "fourth" }, headers: { "if-match": "*" } });
      assert.equal(star.status, 200, star.text);

      // If-Match on an absent document is 412 and creates nothing.
      const absent = await api("PUT", `/${c}/n2`, { body: { x: 1 }, headers: { "if-match": "*" } });
      assertProblem(absent, 412);
      assertProblem(await api("GET", `/${c}/n2`), 404);

      // If-None-Match: * creates only: 201 when absent, 412 (and nothing changes) when present.
      const createOnly = await api("PUT", `/${c}/n4`, { body: { v: 1 }, headers: { "if-none-match": "*" } });
      assert.equal(createOnly.status, 201, createOnly.text);
      assertProblem(await api("PUT", `/${c}/n4`, { body: { v: 2 }, headers: { "if-none-match": "*" } }), 412);
      assert.equal((await api("GET", `/${c}/n4`)).json.v, 1);

      // An id member must equal the path id, and is not stored.
      const withId = await api("PUT", `/${c}/n3`, { body: { id: "n3", x: 1 } });
      assert.equal(withId.status, 201, withId.text);
      assert.equal(withId.json.id, "n3");
    });

    test("PATCH /{collection}/{id} → 200 merge patch (RFC 7396); If-Match honoured; 404 when absent; 415 for other patch types", async () => {
      const c = freshCollection("notes");
      await api("PUT", `/${c}/p1`, { body: { a: 1, b: { c: 1, d: 2 }, list: [1, 2] } });
      const patched = await api("PATCH", `/${c}/p1`, {
        body: { a: null, b: { c: 9, d: null, e: 3 }, list: [3], added: "yes" },
        headers: { "content-type": "application/merge-patch+json" },
      });
      assert.equal(patched.status, 200, patched.text);
      assert.equal(patched.headers.etag, '"2"');
      assert.equal(patched.json.a, undefined);
      assert.deepEqual(patched.json.b, { c: 9, e: 3 });
      assert.deepEqual(patched.json.list, [3]);
      assert.equal(patched.json.added, "yes");

      const stale = await api("PATCH", `/${c}/p1`, { body: { added: "stale" }, headers: { "if-match": '"1"' } });
      assertProblem(stale, 412);
      const fresh = await api("PATCH", `/${c}/p1`, { body: { added: "fresh" }, headers: { "if-match": '"2"' } });
      assert.equal(fresh.status, 200, fresh.text);
      assert.equal(fresh.json.added, "fresh");
      assert.equal(fresh.json._version, 3);

      assertProblem(await api("PATCH", `/${c}/absent`, { body: { x: 1 } }), 404);
      assertProblem(await api("GET", `/${c}/absent`), 404);

      for (const type of ["application/json-patch+json", "text/plain"]) {
        const res = await api("PATCH", `/${c}/p1`, { body: [{ op: "remove", path: "/added" }], headers: { "content-type": type } });
        assertProblem(res, 415);
        assert.equal(res.headers["accept-patch"], "application/merge-patch+json, application/json");
      }
      const unchanged = await api("GET", `/${c}/p1`);
      assert.equal(unchanged.json._version, 3);
      assert.equal(unchanged.json.added, "fresh");
    });

    test("GET /{collection}/{id} → 200 with ETag, 404 when absent", async () => {
      const c = freshCollection("notes");
      assertProblem(await api("GET", `/${c}/nothing`), 404);
      await api("PUT", `/${c}/g1`, { body: { x: 1 } });
      await api("PUT", `/${c}/g1`, { body: { x: 2 } });
      const got = await api("GET", `/${c}/g1`);
      assert.equal(got.status, 200);
      assert.equal(got.headers.etag, '"2"');
      assert.equal(got.json.x, 2);
      assert.match(got.headers["content-type"], /^application\/json/);
    });

    test("DELETE /{collection}/{id} → 204, then 404; a stale If-Match → 412 and the document stays", async () => {
      const c = freshCollection("notes");
      await api("PUT", `/${c}/d1`, { body: { x: 1 } });
      assertProblem(await api("DELETE", `/${c}/d1`, { headers: { "if-match": '"9"' } }), 412);
      assert.equal((await api("GET", `/${c}/d1`)).status, 200);
      const deleted = await api("DELETE", `/${c}/d1`, { headers: { "if-match": '"1"' } });
      assert.equal(deleted.status, 204, deleted.text);
      assert.equal(deleted.text, "");
      assertProblem(await api("GET", `/${c}/d1`), 404);
      assertProblem(await api("DELETE", `/${c}/d1`), 404);

      await api("PUT", `/${c}/d2`, { body: { x: 1 } });
      assert.equal((await api("DELETE", `/${c}/d2`)).status, 204);
      // Recreated after a delete: a new document, version 1 again.
      const again = await api("PUT", `/${c}/d2`, { body: { x: 2 } });
      assert.equal(again.status, 201);
      assert.equal(again.json._version, 1);
    });

    test("GET /{collection}?limit=&cursor= → {items, nextCursor}; limit 1..100, default 20", async () => {
      const c = freshCollection("list");
      const ids = Array.from({ length: 25 }, (_, i) => `item-${String(i).padStart(2, "0")}`);
      await Promise.all(ids.map((id) => api("PUT", `/${c}/${id}`, { body: { i: id } })));

      const first = await api("GET", `/${c}`);
      assert.equal(first.status, 200, first.text);
      assert.equal(first.json.items.length, 20, "default limit");
      assert.deepEqual(first.json.items.map((d) => d.id), ids.slice(0, 20));
      assert.equal(typeof first.json.nextCursor, "string");
      assert.equal(first.json.items[0]._version, 1);
      const rest = await api("GET", `/${c}?cursor=${encodeURIComponent(first.json.nextCursor)}`);
      assert.deepEqual(rest.json.items.map((d) => d.id), ids.slice(20));
      assert.equal(rest.json.nextCursor, null);

      const walked = [];
      let cursor = "";
      do {
        const page = await api("GET", `/${c}?limit=7&cursor=${encodeURIComponent(cursor)}`);
        assert.equal(page.status, 200, page.text);
        assert.ok(page.json.items.length <= 7);
        walked.push(...page.json.items.map((d) => d.id));
        cursor = page.json.nextCursor ?? "";
      } while (cursor);
      assert.deepEqual(walked, ids);

      assert.equal((await api("GET", `/${c}?limit=100`)).json.items.length, 25);
      assert.equal((await api("GET", `/${c}?limit=1`)).json.items.length, 1);
      for (const q of ["limit=0", "limit=101", "limit=-1", "limit=abc", "limit=2.5", "cursor=garbage", "limit=1&limit=2"]) {
        assertProblem(await api("GET", `/${c}?${q}`), 400);
      }
      const empty = await api("GET", `/${freshCollection("empty")}`);
      assert.deepEqual(empty.json, { items: [], nextCursor: null });
    });

    test("host db.do serves the same adapter at the root, and needs a credential", async () => {
      const c = freshCollection("dbdo");
      const created = await api("POST", `/${c}`, { body: { via: "db.do" }, host: "db.do", prefix: "" });
      assert.equal(created.status, 201, created.text);
      assert.equal(created.headers.location, `/${c}/${created.json.id}`);
      const got = await request(t.p.url, "db.do", created.headers.location, { headers: ADMIN });
      assert.equal(got.status, 200, got.text);
      assert.equal(got.json.via, "db.do");
      // The same document through the API host.
      assert.equal((await api("GET", `/${c}/${created.json.id}`)).json.via, "db.do");

      for (const [host, path] of [["db.do", `/${c}`], ["api.do", `/api/db/${c}`]]) {
        assertProblem(await request(t.p.url, host, path), 401);
        assertProblem(await request(t.p.url, host, path, { method: "POST", body: "{}", headers: JSON_TYPE }), 401);
        assertProblem(await request(t.p.url, host, path, { headers: { "x-api-key": "wrong" } }), 401);
      }
      assert.equal((await everything(c)).length, 1, "the refused POSTs wrote nothing");
    });

    test("wrong methods → 405 with Allow", async () => {
      const c = freshCollection("notes");
      for (const [method, path, allow] of [
        ["DELETE", `/${c}`, "GET, POST"],
        ["PUT", `/${c}`, "GET, POST"],
        ["PATCH", `/${c}`, "GET, POST"],
        ["POST", `/${c}/x`, "GET, PUT, PATCH, DELETE"],
      ]) {
        const res = await api(method, path, { body: {} });
        assertProblem(res, 405);
        assert.equal(res.headers.allow, allow, `${method} ${path}`);
      }
      assert.deepEqual(await everything(c), []);
    });

    test("db logs one JSON line per call with ids, method, collection, timing and outcome, never the body", async () => {
      const c = freshCollection("logs");
      const requestId = fakeUlid();
      const traceId = hex(16);
      const marker = `secret-${hex(8)}`;
      const res = await api("PUT", `/${c}/l1`, {
        body: { marker },
        headers: { "x-request-id": requestId, traceparent: `00-${traceId}-${hex(8)}-01` },
      });
      assert.equal(res.status, 201, res.text);
      assert.equal(res.headers["x-request-id"], requestId);
      await api("GET", `/${c}/missing`, { headers: { "x-request-id": fakeUlid() } });
      await new Promise((r) => setTimeout(r, 200));
      const lines = t.p.logs.flatMap((l) => {
        try { return [JSON.parse(l.slice(l.indexOf("{")))]; } catch { return []; }
      });
      const dbLines = lines.filter((l) => l.message === "db call" && l.collection === c);
      const put = dbLines.find((l) => l.requestId === requestId);
      assert.ok(put, `no db line for ${requestId}: ${JSON.stringify(dbLines)}`);
      assert.equal(put.traceId, traceId);
      assert.equal(put.method, "put");
      assert.equal(put.outcome, "ok");
      assert.equal(put.userId, "admin");
      assert.equal(typeof put.durationMs, "number");
      assert.equal(dbLines.filter((l) => l.requestId === requestId).length, 1, "one line per call");
      assert.ok(dbLines.some((l) => l.method === "get" && l.outcome === "not_found" && l.status === 404));
      assert.ok(!t.p.logs.some((l) => l.includes(marker)), "the document body is never logged");
    });
  });

  // ----------------------------------------------------------------------------------------
  // RPC from Node

  describe("RPC from Node, from a JS worker, and isolation between users", () => {
    const t = usePlatform({ extraWorkers: [JS_CLIENT] });
    const { api, rpc, everything } = t;
    test("get/put/patch/delete/list answer typed replies", async () => {
      const c = freshCollection("rpc");
      const alice = ctxFor("alice");
      const created = ok(await rpc("put", alice, c, "r1", { title: "t" }));
      assert.equal(created.created, true);
      assert.equal(created.document.id, "r1");
      assert.equal(created.document._version, 1);
      const replaced = ok(await rpc("put", alice, c, "r1", { title: "u" }, { ifMatch: '"1"' }));
      assert.equal(replaced.created, false);
      assert.equal(replaced.document._version, 2);
      assert.deepEqual(await rpc("put", alice, c, "r1", { title: "v" }, { ifMatch: '"1"' }), {
        ok: false,
        error: { status: 412, code: "precondition_failed", detail: "If-Match does not match the current version" },
      });
      const generated = ok(await rpc("put", alice, c, null, { g: 1 }, { mode: "create" }));
      assert.match(generated.document.id, ULID);
      const dup = await rpc("put", alice, c, "r1", { title: "dup" }, { mode: "create" });
      assert.equal(dup.error.status, 409);
      assert.equal(dup.error.code, "conflict");

      const patched = ok(await rpc("patch", alice, c, "r1", { extra: true }));
      assert.deepEqual([patched.title, patched.extra, patched._version], ["u", true, 3]);
      assert.equal(ok(await rpc("get", alice, c, "r1"))._version, 3);

      const page = ok(await rpc("list", alice, c, { limit: 1 }));
      assert.equal(page.items.length, 1);
      const page2 = ok(await rpc("list", alice, c, { limit: 1, cursor: page.nextCursor }));
      assert.equal(page2.items.length, 1);
      assert.notEqual(page2.items[0].id, page.items[0].id);
      assert.equal(page2.nextCursor, null);
      assert.equal(ok(await rpc("list", alice, c)).items.length, 2, "opts are optional");

      assert.deepEqual(ok(await rpc("delete", alice, c, "r1")), { id: "r1" });
      assert.equal((await rpc("get", alice, c, "r1")).error.status, 404);
      assert.equal((await rpc("delete", alice, c, "r1")).error.code, "not_found");
    });

    test("a missing userId is 401 unauthenticated; a bad ctx, name, body or option is 400", async () => {
      const c = freshCollection("rpc-bad");
      for (const ctx of [undefined, null, {}, { requestId: "x" }, { requestId: "x", userId: "" }, { requestId: "x", userId: null }]) {
        const r = await rpc("get", ctx, c, "x");
        assert.deepEqual(r.error && [r.error.status, r.error.code], [401, "unauthenticated"], JSON.stringify(ctx));
      }
      const alice = ctxFor("alice");
      const cases = [
        ["put", alice, "../etc", "x", {}],
        ["put", alice, c, "..", {}],
        ["put", alice, c, "a/b", {}],
        ["put", alice, 42, "x", {}],
        ["put", alice, c, 42, {}],
        ["put", alice, c, null, {}],
        ["put", alice, c, "x", [1, 2]],
        ["put", alice, c, "x", "text"],
        ["put", alice, c, "x", null],
        ["put", alice, c, "x", undefined],
        ["put", alice, c, "x", { _version: 9 }],
        ["put", alice, c, "x", { id: "y" }],
        ["put", alice, c, "x", {}, { ifmatch: '"1"' }],
        ["put", alice, c, "x", {}, { mode: "replace" }],
        ["put", alice, c, "x", {}, { mode: "create", ifMatch: "*" }],
        ["put", alice, c, null, { id: "chosen" }, { mode: "create" }],
        ["patch", alice, c, "x", [1]],
        ["list", alice, c, { limit: 0 }],
        ["list", alice, c, { limit: 101 }],
        ["list", alice, c, { limit: 2.5 }],
        ["list", alice, c, { limit: "5" }],
        ["list", alice, c, { cursor: "garbage" }],
        ["list", alice, c, { limt: 5 }],
        ["get", { ...alice, userId: "u".repeat(300) }, c, "x"],
      ];
      for (const [method, ...args] of cases) {
        const r = await rpc(method, ...args);
        assert.equal(r.ok, false, `${method} ${JSON.stringify(args.slice(1))}`);
        assert.equal(r.error.status, 400, `${method} ${JSON.stringify(args.slice(1))}: ${JSON.stringify(r)}`);
        assert.equal(r.error.code, "bad_request");
      }
      assert.deepEqual(await everything(c), [], "nothing was written");
    });

    test("a JS worker calls db over its service binding", async () => {
      const c = freshCollection("js");
      const res = await (await t.p.mf.getWorker("db-js-client")).fetch(`http://js/?collection=${c}`);
      assert.equal(res.status, 200);
      const s = await res.json();
      assert.equal(s.put.ok, true);
      assert.equal(s.put.value.created, true);
      assert.deepEqual(s.get.value.tags, ["a", "b"]);
      assert.equal(s.get.value.title, "from js");
      assert.match(s.created.value.document.id, ULID);
      assert.equal(s.patch.value.title, undefined);
      assert.equal(s.patch.value.done, true);
      assert.equal(s.patch.value._version, 2);
      assert.equal(s.stale.error.status, 412);
      assert.equal(s.list.value.items.length, 2);
      assert.deepEqual(s.delete, { ok: true, value: { id: "j1" } });
      assert.equal(s.missing.error.status, 404);
      assert.equal(s.noUser.error.status, 401);
      assert.deepEqual(s.health, { ok: true, service: "db" });
      // Written as js-user: nobody else sees it, the admin does.
      assert.equal((await rpc("get", ctxFor("alice"), c, s.created.value.document.id)).error.status, 404);
      assert.equal((await api("GET", `/${c}/${s.created.value.document.id}`)).status, 200);
    });

    // ----------------------------------------------------------------------------------------
    // Isolation

    test("isolation over HTTP with real users (signup + login): 404 for another user's documents", async () => {
      const c = freshCollection("users");
      /** A new user through /api/auth; answers the Authorization header to act as them. */
      const user = async (name) => {
        const email = `${name}-${hex(4)}@example.com`;
        const password = `pw-${hex(8)}`;
        const signup = await request(t.p.url, "api.do", "/api/auth/signup", { method: "POST", headers: JSON_TYPE, body: { email, password } });
        assert.equal(signup.status, 201, signup.text);
        const login = await request(t.p.url, "api.do", "/api/auth/login", { method: "POST", headers: JSON_TYPE, body: { email, password } });
        assert.equal(login.status, 200, login.text);
        return { id: login.json.user.id, headers: { authorization: `Bearer ${login.json.token}`, "x-api-key": undefined } };
      };
      const [alice, bob] = [await user("alice"), await user("bob")];
      const as = (who, method, path, opts = {}) =>
        api(method, path, { ...opts, headers: { ...who.headers, ...(opts.headers ?? {}) } });

      const created = await as(alice, "POST", `/${c}`, { body: { secret: "alice's" } });
      assert.equal(created.status, 201, created.text);
      const id = created.json.id;
      assert.equal((await as(alice, "PUT", `/${c}/fixed`, { body: { mine: true } })).status, 201);

      assertProblem(await as(bob, "GET", `/${c}/${id}`), 404);
      assertProblem(await as(bob, "PATCH", `/${c}/${id}`, { body: { hacked: true } }), 404);
      assertProblem(await as(bob, "DELETE", `/${c}/${id}`), 404);
      assertProblem(await as(bob, "PUT", `/${c}/${id}`, { body: { hacked: true }, headers: { "if-match": '"1"' } }), 412);
      assert.deepEqual((await as(bob, "GET", `/${c}`)).json, { items: [], nextCursor: null });
      // Bob's PUT to the same id makes Bob's own document, not a change to Alice's.
      assert.equal((await as(bob, "PUT", `/${c}/fixed`, { body: { mine: "bob" } })).status, 201);

      const mine = await as(alice, "GET", `/${c}`);
      assert.deepEqual(mine.json.items.map((d) => [d.id, d.secret ?? d.mine]).sort(), [[id, "alice's"], ["fixed", true]].sort());
      assert.equal((await as(alice, "GET", `/${c}/${id}`)).json._version, 1, "Bob's attempts changed nothing");
      assert.equal((await as(bob, "GET", `/${c}/fixed`)).json.mine, "bob");
      // The admin key sees both users' documents; the db rows carry the users' real ids.
      assert.equal((await api("GET", `/${c}/${id}`)).json.secret, "alice's");
      assert.equal((await api("GET", `/${c}`)).json.items.length, 3);
      assert.equal(ok(await rpc("get", ctxFor(alice.id), c, id)).secret, "alice's");
      assertProblem(await as({ headers: { authorization: "Bearer not-a-token", "x-api-key": undefined } }, "GET", `/${c}/${id}`), 401);
    });

    test("isolation: another user gets 404 for everything; the admin sees all", async () => {
      const c = freshCollection("iso");
      const alice = ctxFor("alice");
      const bob = ctxFor("bob");
      const carol = ctxFor("carol");
      ok(await rpc("put", alice, c, "shared-id", { owner: "alice" }));
      ok(await rpc("put", alice, c, "alice-only", { secret: "a" }));

      assert.equal((await rpc("get", bob, c, "alice-only")).error.status, 404);
      assert.equal((await rpc("patch", bob, c, "alice-only", { hacked: true })).error.status, 404);
      assert.equal((await rpc("delete", bob, c, "alice-only")).error.status, 404);
      assert.equal((await rpc("put", bob, c, "alice-only", { x: 1 }, { ifMatch: "*" })).error.status, 412);
      assert.deepEqual(ok(await rpc("list", bob, c)).items, []);
      // Bob's PUT on the same id creates Bob's own document; Alice's is untouched.
      assert.equal(ok(await rpc("put", bob, c, "shared-id", { owner: "bob" })).created, true);
      assert.equal(ok(await rpc("get", alice, c, "shared-id")).owner, "alice");
      assert.equal(ok(await rpc("get", bob, c, "shared-id")).owner, "bob");
      const aliceDoc = ok(await rpc("get", alice, c, "alice-only"));
      assert.deepEqual([aliceDoc.secret, aliceDoc._version, aliceDoc.hacked], ["a", 1, undefined]);
      assert.deepEqual(ok(await rpc("list", carol, c)).items, []);
      assert.deepEqual(ok(await rpc("list", bob, c)).items.map((d) => d.id), ["shared-id"]);

      // The admin (over HTTP, with the admin key) sees every owner's documents...
      const adminGet = await api("GET", `/${c}/alice-only`);
      assert.equal(adminGet.status, 200, adminGet.text);
      assert.equal(adminGet.json.secret, "a");
      const adminList = await api("GET", `/${c}`);
      assert.deepEqual(adminList.json.items.map((d) => `${d.id}:${d.owner ?? d.secret}`).sort(), [
        "alice-only:a",
        "shared-id:alice",
        "shared-id:bob",
      ]);
      // ...an id two users hold is ambiguous for an admin by id...
      assertProblem(await api("GET", `/${c}/shared-id`), 409);
      // ...an admin's write to a user's document keeps it that user's...
      const adminPatch = await api("PATCH", `/${c}/alice-only`, { body: { reviewed: true } });
      assert.equal(adminPatch.status, 200, adminPatch.text);
      assert.equal(ok(await rpc("get", alice, c, "alice-only")).reviewed, true);
      const adminPut = await api("PUT", `/${c}/alice-only`, { body: { secret: "b" }, headers: { "if-match": '"2"' } });
      assert.equal(adminPut.status, 200, adminPut.text);
      assert.equal(ok(await rpc("get", alice, c, "alice-only")).secret, "b");
      // ...an ambiguous id is not written either (nothing changes)...
      assertProblem(await api("PUT", `/${c}/shared-id`, { body: { owner: "admin" } }), 409);
      assertProblem(await api("DELETE", `/${c}/shared-id`), 409);
      assert.equal(ok(await rpc("get", alice, c, "shared-id"))._version, 1);
      assert.equal(ok(await rpc("get", bob, c, "shared-id"))._version, 1);
      // ...and once the admin holds its own copy of an id (create mode always writes the
      // caller's own), by-id requests mean that copy.
      const adminCtx = ctxFor("admin", "admin");
      assert.equal(ok(await rpc("put", adminCtx, c, "shared-id", { owner: "admin" }, { mode: "create" })).created, true);
      assert.equal((await api("GET", `/${c}/shared-id`)).json.owner, "admin");
      assert.equal((await api("PUT", `/${c}/shared-id`, { body: { owner: "admin", v: 2 } })).status, 200);
      assert.equal(ok(await rpc("get", alice, c, "shared-id")).owner, "alice");
      assert.equal((await api("DELETE", `/${c}/alice-only`)).status, 204);
      assert.equal((await rpc("get", alice, c, "alice-only")).error.status, 404);
      // Role "admin" in ctx is what makes an admin: another admin sees three holders of
      // shared-id (none its own), which is ambiguous; a user never sees the admin's copy.
      assert.equal((await rpc("get", ctxFor("root", "admin"), c, "shared-id")).error.status, 409);
      assert.equal(ok(await rpc("get", bob, c, "shared-id")).owner, "bob");
    });
  });

  // ----------------------------------------------------------------------------------------
  // Concurrency

  describe("concurrency", () => {
    const t = usePlatform();
    const { api, rpc, everything } = t;
    test("20 parallel POSTs all land, with distinct ids", async () => {
      const c = freshCollection("par");
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => api("POST", `/${c}`, { body: { i } })));
      for (const r of results) assert.equal(r.status, 201, r.text);
      const ids = new Set(results.map((r) => r.json.id));
      assert.equal(ids.size, 20);
      const stored = await everything(c);
      assert.equal(stored.length, 20);
      assert.deepEqual(stored.map((d) => d.i).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i));
    });

    test("20 parallel PUTs (distinct ids over HTTP, one id over RPC) all land", async () => {
      const c = freshCollection("par");
      const distinct = await Promise.all(Array.from({ length: 20 }, (_, i) => api("PUT", `/${c}/d${i}`, { body: { i } })));
      for (const r of distinct) assert.equal(r.status, 201, r.text);
      const alice = ctxFor("alice");
      const same = await Promise.all(Array.from({ length: 20 }, (_, i) => rpc("put", alice, c, "same", { i })));
      for (const r of same) assert.equal(r.ok, true, JSON.stringify(r));
      assert.equal(same.filter((r) => r.value.created).length, 1, "exactly one creates");
      const versions = same.map((r) => r.value.document._version).sort((a, b) => a - b);
      assert.deepEqual(versions, Array.from({ length: 20 }, (_, i) => i + 1), "every write got its own version");
      const final = ok(await rpc("get", alice, c, "same"));
      assert.equal(final._version, 20);
      const last = same.find((r) => r.value.document._version === 20).value.document;
      assert.equal(final.i, last.i, "the last version is the last write");
    });

    test("20 parallel unconditional PATCHes of one document: no update is lost", async () => {
      const c = freshCollection("par");
      const alice = ctxFor("alice");
      ok(await rpc("put", alice, c, "counter", { start: true }));
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => rpc("patch", alice, c, "counter", { [`f${i}`]: i })));
      const landed = results.map((r, i) => (r.ok ? i : null)).filter((i) => i !== null);
      for (const r of results) if (!r.ok) assert.equal(r.error.status, 409, JSON.stringify(r));
      const final = ok(await rpc("get", alice, c, "counter"));
      for (let i = 0; i < 20; i++) {
        assert.equal(final[`f${i}`], landed.includes(i) ? i : undefined, `f${i}`);
      }
      assert.equal(final._version, 1 + landed.length);
      assert.equal(landed.length, 20, `all landed (got ${landed.length})`);
    });

    test("racing writers with the same If-Match: exactly one wins, the rest get 412", async () => {
      const c = freshCollection("race");
      for (let round = 0; round < 5; round++) {
        const id = `doc${round}`;
        await api("PUT", `/${c}/${id}`, { body: { writer: "seed" } });
        const racers = round === 4 ? 10 : 2;
        const results = await Promise.all(
          Array.from({ length: racers }, (_, w) => api("PUT", `/${c}/${id}`, { body: { writer: `w${w}` }, headers: { "if-match": '"1"' } })),
        );
        const statuses = results.map((r) => r.status).sort();
        assert.deepEqual(statuses, [200, ...Array(racers - 1).fill(412)], `round ${round}: ${statuses}`);
        const winner = results.find((r) => r.status === 200).json.writer;
        const stored = await api("GET", `/${c}/${id}`);
        assert.equal(stored.json.writer, winner, "the stored document is the winner's");
        assert.equal(stored.json._version, 2);
      }
      // The same for PATCH and DELETE over RPC.
      const alice = ctxFor("alice");
      ok(await rpc("put", alice, c, "p", { n: 0 }));
      const patches = await Promise.all([1, 2].map((n) => rpc("patch", alice, c, "p", { n }, { ifMatch: '"1"' })));
      assert.deepEqual(patches.map((r) => r.ok).sort(), [false, true]);
      assert.equal(patches.find((r) => !r.ok).error.status, 412);
      // The loser of a conditional delete gets 412 if it read before the winner deleted, and 404
      // if after: either way exactly one delete happens.
      const deletes = await Promise.all([1, 2].map(() => rpc("delete", alice, c, "p", { ifMatch: '"2"' })));
      const outcomes = deletes.map((r) => (r.ok ? 204 : r.error.status)).sort();
      assert.equal(outcomes[0], 204, JSON.stringify(deletes));
      assert.ok([404, 412].includes(outcomes[1]), JSON.stringify(deletes));
    });

  });

  describe("cursor walks", () => {
    const t = usePlatform();
    const { rpc } = t;

    test("a cursor walk during inserts neither skips nor repeats", async () => {
      const c = freshCollection("walk");
      const alice = ctxFor("alice");
      const seeded = Array.from({ length: 40 }, (_, i) => `m-${String(i).padStart(3, "0")}`);
      await Promise.all(seeded.map((id) => rpc("put", alice, c, id, { seeded: true })));
      const seen = [];
      let cursor = null;
      let inserted = 0;
      do {
        const page = ok(await rpc("list", alice, c, { limit: 6, cursor }));
        seen.push(...page.items.map((d) => d.id));
        cursor = page.nextCursor;
        // Between pages, insert before the cursor, inside the unread range, and after the end.
        const pageNo = inserted / 3;
        await Promise.all([
          rpc("put", alice, c, `a-${pageNo}`, { late: true }),
          rpc("put", alice, c, `m-${String(pageNo * 7).padStart(3, "0")}x`, { late: true }),
          rpc("put", alice, c, `z-${pageNo}`, { late: true }),
        ]);
        inserted += 3;
      } while (cursor);
      assert.equal(new Set(seen).size, seen.length, "no id repeats");
      for (const id of seeded) assert.ok(seen.includes(id), `${id} was not skipped`);
      assert.deepEqual(seen, [...seen].sort(), "ids come in order across pages");
      assert.ok(!seen.some((id) => id.startsWith("a-")), "ids inserted behind the cursor are not revisited");
    });
  });

  // ----------------------------------------------------------------------------------------
  // Bad input changes nothing

  describe("bad input changes nothing", () => {
    const t = usePlatform();
    const { api, rpc, everything } = t;
    test("path traversal, injection strings as names, non-object bodies, oversized bodies", async () => {
      const c = freshCollection("bad");
      await api("PUT", `/${c}/keep`, { body: { original: true } });
      const before = await everything(c);

      const attempts = [
        // Path traversal in every spelling: the URL parser resolves %2e%2e like .. (so the
        // request may land on another db path, where the method is wrong: 405), the router
        // refuses dot segments it still sees (404), the adapter what decodes to one (400).
        ["PUT", `/${c}/..`, { x: 1 }, [400, 404, 405]],
        ["PUT", `/${c}/%2e%2e`, { x: 1 }, [400, 404, 405]],
        ["PUT", `/${c}/%2E%2e/keep`, { x: 1 }, [400, 404, 405]],
        ["PUT", `/${c}/..%2fkeep`, { x: 1 }, [400, 404, 405]],
        ["PUT", `/${c}/keep%2f..%2f..%2fx`, { x: 1 }, [400, 404, 405]],
        ["PUT", `/..%2f${c}/keep`, { x: 1 }, [400, 404, 405]],
        ["GET", `/${c}/..%5c..%5cetc`, undefined, [400, 404, 405]],
        ["PUT", `/${c}/a%2Fb`, { x: 1 }, [400]],
        ["PUT", `/${c}/a%00b`, { x: 1 }, [400]],
        ["PUT", `/${c}/keep/extra`, { x: 1 }, [400]],
        ["PUT", `/${c}/`, { x: 1 }, [400]],
        // SQL injection strings as names.
        ["PUT", `/${c}/${encodeURIComponent("x' OR '1'='1")}`, { x: 1 }, [400]],
        ["PUT", `/${encodeURIComponent(`${c}'; DROP TABLE documents;--`)}/keep`, { x: 1 }, [400]],
        ["GET", `/${encodeURIComponent("documents WHERE 1=1 --")}`, undefined, [400]],
        ["DELETE", `/${c}/${encodeURIComponent("keep' OR 1=1 --")}`, undefined, [400]],
        ["POST", `/${encodeURIComponent(`${c}"; DELETE FROM documents; --`)}`, { x: 1 }, [400]],
        // Names out of range.
        ["PUT", `/${"c".repeat(65)}/x`, { x: 1 }, [400]],
        ["PUT", `/${c}/${"i".repeat(129)}`, { x: 1 }, [400]],
        ["PUT", `/${encodeURIComponent("nötes")}/x`, { x: 1 }, [400]],
      ];
      for (const [method, path, body, statuses] of attempts) {
        const res = await api(method, path, { body });
        assert.ok(statuses.includes(res.status), `${method} ${path}: ${res.status} ${res.text}`);
        assert.equal(res.headers["content-type"], PROBLEM, `${method} ${path}`);
      }

      // Bodies that are not a JSON object (or break the rules) on POST, PUT and PATCH.
      const deep = "[".repeat(70) + "]".repeat(70);
      const bodies = ["[1,2]", '"text"', "42", "null", "true", "", "{", '{"a":1,}', '{"a":1} {"b":2}', "\u00ff{}",
        `{"deep":${deep}}`, '{"_version":99}', '{"_owner":"bob"}', '{"id":"other"}', '{"id":7}'];
      for (const body of bodies) {
        for (const [method, path] of [["POST", `/${c}`], ["PUT", `/${c}/keep`], ["PUT", `/${c}/new-one`], ["PATCH", `/${c}/keep`]]) {
          const res = await api(method, path, { body });
          assertProblem(res, 400);
        }
      }

      // 2 MiB: refused by Content-Length before reading, and by counting when chunked.
      const big = JSON.stringify({ blob: "x".repeat(2 << 20) });
      const sized = await api("PUT", `/${c}/big`, { body: big, headers: { "content-length": String(Buffer.byteLength(big)) } });
      assertProblem(sized, 413);
      const chunked = await api("POST", `/${c}`, { body: big });
      assertProblem(chunked, 413);
      const patchBig = await api("PATCH", `/${c}/keep`, { body: big });
      assertProblem(patchBig, 413);
      // Over RPC too (the limit is db's own, not only the api's).
      const rpcBig = await rpc("put", ctxFor("admin", "admin"), c, "big", { blob: "x".repeat(2 << 20) });
      assert.deepEqual([rpcBig.error?.status, rpcBig.error?.code], [413, "too_large"]);

      // Just under the limit is fine (1 MiB exactly, as sent), proving the limit is the limit.
      const exact = JSON.stringify({ blob: "y".repeat((1 << 20) - 11) });
      assert.equal(Buffer.byteLength(exact), 1 << 20);
      const fits = await api("PUT", `/${c}/exact`, { body: exact });
      assert.equal(fits.status, 201, fits.text.slice(0, 200));
      assert.equal((await api("DELETE", `/${c}/exact`)).status, 204);

      // Nothing was written, changed or dropped.
      assert.deepEqual(await everything(c), before);
      const keep = await api("GET", `/${c}/keep`);
      assert.deepEqual([keep.status, keep.json.original, keep.json._version], [200, true, 1]);
      for (const id of ["new-one", "big", "x", "other"]) assertProblem(await api("GET", `/${c}/${id}`), 404);
    });
  });

  // ----------------------------------------------------------------------------------------
  // Latency (reported, not asserted): the same identity (the admin) on both paths, so both
  // run the same statements. One platform per operation keeps each under the harness limit.

  const N = 200;
  const stats = (ms) => {
    const sorted = [...ms].sort((a, b) => a - b);
    const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
    const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
    return { p50: +at(0.5).toFixed(2), p99: +at(0.99).toFixed(2), mean: +mean.toFixed(2) };
  };
  const time = async (fn) => {
    const ms = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      await fn(i);
      ms.push(performance.now() - t0);
      await yieldToIo(); // outside the measurement (see the note on yieldToIo)
    }
    return stats(ms);
  };
  const body = { title: "benchmark", n: 1, tags: ["a", "b"] };

  /** Per-call times of `n` sequential calls from the bench worker. */
  const fromWorker = async (t, op, collection) => {
    const res = await (await t.p.mf.getWorker("db-bench")).fetch(`http://bench/?op=${op}&collection=${collection}&n=${N}`);
    assert.equal(res.status, 200, await res.clone().text());
    return stats(await res.json());
  };

  describe("latency: put", () => {
    const t = usePlatform({ extraWorkers: [BENCH_CLIENT] });
    test(`put: ${N} sequential calls through the api (HTTP) and direct from Node (RPC)`, async (ctx) => {
      const c = freshCollection("bench");
      const admin = ctxFor("admin", "admin");
      for (let i = 0; i < 3; i++) {
        await t.api("PUT", `/${c}/warm`, { body });
        await t.rpc("put", admin, c, "warm", body);
      }
      const http = await time(async (i) => assert.equal((await t.api("PUT", `/${c}/h${i}`, { body })).status, 201));
      const rpc = await time(async (i) => assert.equal((await t.db.put(admin, c, `r${i}`, body)).value.created, true));
      const worker = await fromWorker(t, "put", c);
      ctx.diagnostic(`db put latency ms (N=${N}): http via api ${JSON.stringify(http)}; rpc from Node ${JSON.stringify(rpc)}; rpc from a worker ${JSON.stringify(worker)}`);
    });
  });

  describe("latency: get", () => {
    const t = usePlatform({ extraWorkers: [BENCH_CLIENT] });
    test(`get: ${N} sequential calls through the api (HTTP) and direct from Node (RPC)`, async (ctx) => {
      const c = freshCollection("bench");
      const admin = ctxFor("admin", "admin");
      for (let i = 0; i < N; i += 20) {
        await Promise.all(Array.from({ length: 20 }, (_, k) => t.api("PUT", `/${c}/d${i + k}`, { body })));
      }
      for (let i = 0; i < 3; i++) {
        await t.api("GET", `/${c}/d${i}`);
        await t.rpc("get", admin, c, `d${i}`);
      }
      const http = await time(async (i) => assert.equal((await t.api("GET", `/${c}/d${i}`)).status, 200));
      const rpc = await time(async (i) => assert.equal((await t.db.get(admin, c, `d${i}`)).value.id, `d${i}`));
      const worker = await fromWorker(t, "get", c);
      ctx.diagnostic(`db get latency ms (N=${N}): http via api ${JSON.stringify(http)}; rpc from Node ${JSON.stringify(rpc)}; rpc from a worker ${JSON.stringify(worker)}`);
    });
  });
});
