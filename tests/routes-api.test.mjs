// Runtime domain routes (`/api/routes`): admin-only access, the file's validation rules with
// every problem listed, runtime-over-file merge order (override, mask, delete), propagation to
// a second api isolate within the routing TTL, the audit trail, and a D1 failure keeping the
// last good table. Two isolates: the platform's api plus a second copy of the same api worker
// ("api-b") bound to the same KV namespace and D1 database. Miniflare's getWorker().fetch
// rewrites the Host header, so api-b is reached through a tiny front worker that sets it.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { platform, request } from "./helpers.mjs";
import { platformOptions } from "../scripts/platform.mjs";

const TTL_MS = 300;
const ADMIN = { "x-api-key": "dev-admin-key" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = (headers = {}) => ({ "content-type": "application/json", ...ADMIN, ...headers });

describe("the routes API", () => {
  let p, apiB, userToken;
  const api = (method, path, body, headers = json()) =>
    request(p.url, "api.do", `/api/routes${path}`, { method, headers, body });
  // The second isolate, asked for `host` + `path` the way a client would.
  const viaB = async (host, path = "/", which = "b") => {
    const res = await apiB.fetch("http://front-b/", { headers: { ...ADMIN, "x-target-url": `http://${host}${path}`, "x-target-api": which } });
    const text = await res.text();
    let body;
    try { body = JSON.parse(text); } catch { body = undefined; }
    return { status: res.status, text, json: body };
  };
  // Polls `probe` until it returns true; resolves to the milliseconds it took (or fails).
  const within = async (what, probe, limitMs = 4000) => {
    const start = Date.now();
    while (Date.now() - start < limitMs) {
      if (await probe()) return Date.now() - start;
      await sleep(25);
    }
    assert.fail(`${what}: not seen within ${limitMs} ms`);
  };

  before(async () => {
    const apiVars = { ROUTES_TTL_MS: String(TTL_MS) };
    const [apiWorker] = platformOptions({ apiVars, logPipeline: false }).workers;
    const front = {
      name: "front-b", modules: true, compatibilityDate: "2025-09-01", serviceBindings: { API_B: "api-b", API_C: "api-c" },
      script: `export default { fetch(request, env) {
        const target = new URL(request.headers.get("x-target-url"));
        const api = request.headers.get("x-target-api") === "c" ? env.API_C : env.API_B;
        const headers = new Headers(request.headers);
        headers.delete("x-target-url");
        headers.delete("x-target-api");
        headers.set("host", target.host);
        return api.fetch(new Request(target, { method: request.method, headers }));
      } }`,
    };
    // api-c gets no request before D1 fails: a cold isolate in an outage.
    p = await platform({ apiVars, extraWorkers: [{ ...apiWorker, name: "api-b" }, { ...apiWorker, name: "api-c" }, front] });
    apiB = await p.mf.getWorker("front-b");
    const email = `routes-user-${Date.now()}@example.com`;
    const password = "correct horse battery";
    const auth = (path, body) => request(p.url, "api.do", `/api/auth${path}`, {
      method: "POST", headers: { "content-type": "application/json" }, body,
    });
    assert.equal((await auth("/signup", { email, password })).status, 201);
    userToken = (await auth("/login", { email, password })).json.token;
  });
  after(async () => { await p?.dispose(); });

  test("admin only: 401 without a credential, 403 for a user, 200 for an admin", async () => {
    const anon = await api("GET", "", undefined, {});
    assert.equal(anon.status, 401);
    assert.equal(anon.headers["content-type"], "application/problem+json");
    const user = await api("GET", "", undefined, { authorization: `Bearer ${userToken}` });
    assert.equal(user.status, 403, user.text);
    assert.equal(user.json.requestId, user.headers["x-request-id"]);
    const put = await api("PUT", "/sneaky.example.org", { worker: "myapp", namespace: "production" },
      { "content-type": "application/json", authorization: `Bearer ${userToken}` });
    assert.equal(put.status, 403);
    assert.equal((await api("GET", "/audit", undefined, { authorization: `Bearer ${userToken}` })).status, 403);
    const admin = await api("GET", "");
    assert.equal(admin.status, 200, admin.text);
    assert.ok(admin.json.items.every((i) => i.source === "file"), "only file entries so far");
    assert.equal((await api("GET", "/sneaky.example.org")).status, 404, "the user's PUT stored nothing");
  });

  test("every rule of the file is applied, every problem listed, nothing stored", async () => {
    const cases = [
      ["bad_domain!", { service: "x" }, "domain"],
      ["a.example.org:8080", { service: "x" }, "domain"],
      ["a.*.example.org", { service: "x" }, "domain"],
      ["%2A.1.2.3.4", { service: "x" }, "domain"],
      ["a.example.org", {}, "service"],
      ["a.example.org", { service: "x", worker: "w", namespace: "production" }, "service"],
      ["a.example.org", { worker: "w" }, "worker"],
      ["a.example.org", { worker: "w", namespace: "qa" }, "namespace"],
      ["a.example.org", { worker: "w", namespace: "production", binding: "B" }, "binding"],
      ["a.example.org", { service: "bad name" }, "service"],
      ["a.example.org", { worker: "Bad", namespace: "production" }, "worker"],
      ["a.example.org", { service: "x", binding: "9X" }, "binding"],
      ["a.example.org", { service: "x", rateLimit: { mode: "exact" } }, "rateLimit"],
      ["a.example.org", { worker: "w", namespace: "production", rateLimit: { limit: 5 } }, "rateLimit"],
      ["a.example.org", { worker: "w", namespace: "production", rateLimit: { mode: "exact", limit: 0 } }, "rateLimit"],
      ["a.example.org", { service: "x", requiresAuth: "yes" }, "requiresAuth"],
      ["a.example.org", { service: "x", requireAdmin: true }, "requireAdmin"],
      ["a.example.org", { domain: "b.example.org", service: "x" }, "domain"],
      ["a.example.org", { disabled: true, service: "x" }, "service"],
    ];
    for (const [domain, body, field] of cases) {
      const res = await api("PUT", `/${domain}`, body);
      assert.equal(res.status, 400, `${domain} ${JSON.stringify(body)}: ${res.text}`);
      assert.equal(res.headers["content-type"], "application/problem+json");
      assert.equal(res.json.requestId, res.headers["x-request-id"]);
      assert.ok(res.json.problems.some((p) => p.field === field), `${domain} ${JSON.stringify(body)}: ${res.text}`);
    }
    const many = await api("PUT", "/bad%20domain", { service: "bad name", requiresAuth: "yes", typo: 1 });
    assert.deepEqual(many.json.problems.map((p) => p.field).sort(), ["domain", "requiresAuth", "service", "typo"]);
    for (const raw of ["not json", "[1]"]) {
      assert.equal((await api("PUT", "/a.example.org", raw)).status, 400);
    }
    assert.equal((await api("PUT", "/a.example.org", JSON.stringify({ service: "x", metadata: "y".repeat(70_000) }))).status, 413);
    const listed = await api("GET", "?q=example.org");
    assert.deepEqual(listed.json.items, [], "no broken entry was stored");
    assert.deepEqual((await api("GET", "/audit")).json.items, [], "and nothing was audited");
  });

  test("a new domain reaches its user worker on both isolates within the TTL; replaced is 200", async () => {
    const created = await api("PUT", "/new.example.org", { worker: "myapp", namespace: "staging", metadata: { customer: "acme" } });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.headers.location, "/api/routes/new.example.org");
    assert.equal(created.json.source, "runtime");
    assert.equal(created.json.updatedBy, "admin");
    const here = await within("new.example.org on the api that took the PUT",
      async () => (await request(p.url, "new.example.org", "/")).json?.namespace === "staging");
    const there = await within("new.example.org on api-b",
      async () => (await viaB("new.example.org")).json?.namespace === "staging");
    console.log(`propagation: ${here} ms on the writing isolate, ${there} ms on the other (TTL ${TTL_MS} ms)`);
    assert.ok(there <= TTL_MS * 2 + 500, `api-b took ${there} ms`);

    const replaced = await api("PUT", "/NEW.example.org", { worker: "myapp", namespace: "development" });
    assert.equal(replaced.status, 200, replaced.text);
    await within("the replacement on api-b", async () => (await viaB("new.example.org")).json?.namespace === "development");
  });

  test("runtime wins over the file; disabled masks it; delete brings the file entry back", async () => {
    assert.equal((await request(p.url, "shop.example.com", "/")).json?.namespace, "production");
    assert.equal((await api("PUT", "/shop.example.com", { worker: "myapp", namespace: "staging" })).status, 201);
    await within("override on api-b", async () => (await viaB("shop.example.com")).json?.namespace === "staging");
    const listed = (await api("GET", "?q=shop")).json.items;
    assert.equal(listed.length, 1);
    assert.equal(listed[0].source, "runtime");
    assert.equal(listed[0].overridesFile, true);

    assert.equal((await api("PUT", "/shop.example.com", { disabled: true })).status, 200);
    await within("mask on api-b: the domain falls through to its waitlist",
      async () => /<html/.test((await viaB("shop.example.com")).text));
    assert.equal((await api("GET", "/shop.example.com")).json.disabled, true);

    assert.equal((await api("DELETE", "/shop.example.com")).status, 204);
    await within("the file entry again on api-b", async () => (await viaB("shop.example.com")).json?.namespace === "production");
    const fileEntry = await api("DELETE", "/shop.example.com");
    assert.equal(fileEntry.status, 409, "a file entry cannot be deleted");
    assert.match(fileEntry.json.detail, /disabled/);
    assert.equal((await api("DELETE", "/nothing.example.org")).status, 404);
    assert.equal((await api("GET", "/shop.example.com")).json.source, "file");
  });

  test("wildcards, and a route can tighten but never loosen a service's access", async () => {
    assert.equal((await api("PUT", "/%2A.tenant.example.org", { worker: "myapp", namespace: "production" })).status, 201);
    assert.equal((await api("PUT", "/docs.example.org", { service: "db", requiresAuth: false })).status, 201);
    await within("the wildcard", async () => (await request(p.url, "a.b.tenant.example.org", "/")).json?.worker === "myapp");
    assert.match((await request(p.url, "tenant.example.org", "/")).text, /<html/, "never the apex");
    // db's registry floor is "authenticated": requiresAuth false does not open it.
    await within("docs.example.org routed", async () => (await request(p.url, "docs.example.org", "/notes/1")).status === 401);
    assert.equal((await request(p.url, "docs.example.org", "/notes/1", { headers: ADMIN })).status, 404);
  });

  test("the listing is paginated and searchable; the audit has who, when, before and after", async () => {
    const seen = [];
    let cursor;
    do {
      const res = await api("GET", `?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      assert.equal(res.status, 200, res.text);
      assert.ok(res.json.items.length <= 2);
      seen.push(...res.json.items.map((i) => i.domain));
      cursor = res.json.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, [...seen].sort(), "in domain order");
    assert.equal(new Set(seen).size, seen.length, "no entry twice");
    for (const d of ["db.do", "shop.example.com", "new.example.org", "*.tenant.example.org"]) assert.ok(seen.includes(d), d);
    assert.equal((await api("GET", "?limit=0")).status, 400);

    const trail = (await api("GET", "/audit?domain=shop.example.com")).json.items;
    assert.deepEqual(trail.map((r) => r.action), ["delete", "put", "put"], "newest first");
    const [deleted, disabled, overridden] = trail;
    assert.equal(overridden.before, null);
    assert.equal(overridden.after.namespace, "staging");
    assert.equal(disabled.before.namespace, "staging");
    assert.equal(disabled.after.disabled, true);
    assert.equal(deleted.before.disabled, true);
    assert.equal(deleted.after, null);
    for (const row of trail) {
      assert.equal(row.actor, "admin");
      assert.match(row.at, /^\d{4}-\d\d-\d\dT/);
      assert.match(row.requestId, /^[0-9A-Z]{26}$/);
    }
    const page = await api("GET", "/audit?limit=1");
    assert.equal(page.json.items.length, 1);
    assert.ok(page.json.nextCursor);
  });

  test("a D1 failure keeps the last good merged table", async () => {
    assert.equal((await api("PUT", "/kept.example.org", { worker: "myapp", namespace: "staging" })).status, 201);
    await within("kept.example.org on api-b", async () => (await viaB("kept.example.org")).json?.namespace === "staging");
    await within("kept.example.org on the api", async () => (await request(p.url, "kept.example.org", "/")).json?.namespace === "staging");
    // Break the table under both isolates, then move the stamp so every refresh tries D1.
    const db = await p.mf.getD1Database("WAITLIST_DB", "api");
    await db.exec("ALTER TABLE runtime_routes RENAME TO runtime_routes_gone");
    // While the stamp stays, refreshes compare it and never touch D1: no failure to log.
    const unreadable = () => p.logs.filter((l) => l.includes("runtime routes unreadable")).length;
    const before = unreadable();
    for (let i = 0; i < 6; i++) {
      await request(p.url, "kept.example.org", "/");
      await viaB("kept.example.org");
      await sleep(TTL_MS / 2);
    }
    assert.equal(unreadable(), before, "an unchanged stamp costs no D1 read");
    const kv = await p.mf.getKVNamespace("ROUTES_CACHE", "api");
    await kv.put("domain-routes:runtime-version", "moved-while-d1-is-down");
    await sleep(TTL_MS * 4);
    for (let i = 0; i < 4; i++) {
      assert.equal((await request(p.url, "kept.example.org", "/")).json?.namespace, "staging");
      assert.equal((await viaB("kept.example.org")).json?.namespace, "staging");
      assert.equal((await request(p.url, "new.example.org", "/")).json?.namespace, "development");
      await sleep(TTL_MS / 2);
    }
    assert.ok(p.logs.some((l) => l.includes("runtime routes unreadable; keeping the entries last read")), "the failure is logged");
    // An isolate that never read D1 routes from the KV snapshot of the last change.
    assert.equal((await viaB("kept.example.org", "/", "c")).json?.namespace, "staging");
    assert.equal((await viaB("shop.example.com", "/", "c")).json?.namespace, "production", "the file's entries too");
    assert.ok(p.logs.some((l) => l.includes("using the snapshot of the last change")));
    const listing = await api("GET", "");
    assert.equal(listing.status, 503, "the admin listing says so rather than show a partial table");
    assert.equal(listing.headers["content-type"], "application/problem+json");
    const write = await api("PUT", "/later.example.org", { worker: "myapp", namespace: "staging" });
    assert.equal(write.status, 503, write.text);
    await db.exec("ALTER TABLE runtime_routes_gone RENAME TO runtime_routes");
  });
});
