// The domain-routes table: read through ASSETS, refreshed with stale-while-revalidate, never
// replaced by a broken file, and forwarding to services that still speak HTTP.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { platform, request } from "./helpers.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const assetsWith = (content) => {
  const dir = mkdtempSync(path.join(tmpdir(), "routes-"));
  writeFileSync(path.join(dir, "domain-routes.json"), content);
  return dir;
};
const route = (domain, worker) => ({ domain, worker, namespace: "production" });

describe("an edited routes file is picked up without a restart", () => {
  let p, dir;
  before(async () => {
    dir = assetsWith(JSON.stringify([route("first.example", "myapp")]));
    p = await platform({ assetsDirectory: dir, apiVars: { ROUTES_TTL_MS: "300" } });
  });
  after(async () => { await p?.dispose(); });

  test("a new route appears after the TTL; a broken edit keeps the last good table", async () => {
    assert.equal((await request(p.url, "first.example", "/")).json?.worker, "myapp");
    assert.match((await request(p.url, "second.example", "/")).text, /<html/); // waitlist
    writeFileSync(path.join(dir, "domain-routes.json"), JSON.stringify([route("first.example", "myapp"), route("second.example", "myapp")]));
    let seen = false;
    for (let i = 0; i < 40 && !seen; i++) {
      await sleep(150);
      seen = (await request(p.url, "second.example", "/")).json?.worker === "myapp";
    }
    assert.ok(seen, "the edited table was never picked up");

    writeFileSync(path.join(dir, "domain-routes.json"), "[{ this is not json");
    await sleep(800); // several TTLs: refreshes run and fail
    for (let i = 0; i < 5; i++) {
      assert.equal((await request(p.url, "second.example", "/")).json?.worker, "myapp");
      await sleep(100);
    }
    assert.ok(p.logs.some((l) => l.includes("domain-routes refresh failed")), "the failure is logged");
  });
});

describe("a fresh isolate with a broken file", () => {
  let p;
  before(async () => { p = await platform({ assetsDirectory: assetsWith('[{"domain": "*.", "service": "x"}]') }); });
  after(async () => { await p?.dispose(); });

  test("domain-routed hosts get 503, path routes still work", async () => {
    const res = await request(p.url, "shop.example.com", "/");
    assert.equal(res.status, 503, res.text);
    assert.equal(res.headers["content-type"], "application/problem+json");
    assert.equal((await request(p.url, "api.do", "/health")).status, 200);
    // A service subdomain needs no table either: db.apis.do reaches the db adapter's access check.
    assert.equal((await request(p.url, "db.apis.do", "/notes/1")).status, 401);
  });
});

describe("the original platform's route table", () => {
  let p;
  before(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "seed-"));
    copyFileSync(path.join(here, "fixtures/seed-domain-routes.json"), path.join(dir, "domain-routes.json"));
    p = await platform({ assetsDirectory: dir });
  });
  after(async () => { await p?.dispose(); });

  test("loads, and its hosts answer 503 naming the service", async () => {
    for (const [host, service] of [["nouns.do", "nouns"], ["photos.do", "photos"], ["vectors.do", "ai"], ["workflows.do", "workflows"]]) {
      const res = await request(p.url, host, "/", { headers: { "x-api-key": "dev-admin-key" } });
      assert.equal(res.status, 503, `${host}: ${res.text}`);
      assert.match(res.json.detail, new RegExp(service), host);
    }
  });
});

describe("forwarding to a service that speaks HTTP", () => {
  let p;
  const echo = {
    name: "echo-service",
    modules: true,
    compatibilityDate: "2025-09-01",
    script: `export default { async fetch(request) {
      const url = new URL(request.url);
      return Response.json({ method: request.method, path: url.pathname, query: url.search,
        headers: Object.fromEntries(request.headers), body: await request.text() });
    } }`,
  };
  before(async () => { p = await platform({ extraWorkers: [echo], apiServices: { WEBHOOKS_SERVICE: "echo-service" } }); });
  after(async () => { await p?.dispose(); });

  test("rewrites the path, keeps method, headers and body, drops hop-by-hop, adds ids", async () => {
    const res = await request(p.url, "api.do", "/api/webhooks/github/push?delivery=1", {
      method: "POST",
      headers: { "content-type": "application/json", "x-custom": "kept", "connection": "x-drop-me", "x-drop-me": "1",
        "x-platform-user-id": "forged", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      body: '{"event":"push"}',
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.method, "POST");
    assert.equal(res.json.path, "/github/push");
    assert.equal(res.json.query, "?delivery=1");
    assert.equal(res.json.body, '{"event":"push"}');
    assert.equal(res.json.headers["x-custom"], "kept");
    assert.equal(res.json.headers["x-drop-me"], undefined);
    assert.equal(res.json.headers["x-platform-user-id"], undefined);
    assert.equal(res.json.headers["x-request-id"], res.headers["x-request-id"]);
    assert.match(res.json.headers.traceparent, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
  });

  test("a route whose binding is not configured answers 503", async () => {
    const res = await request(p.url, "api.do", "/api/email/send", { method: "POST", body: "{}" });
    assert.equal(res.status, 401); // email needs authentication first
    const admin = await request(p.url, "api.do", "/api/email/send", { method: "POST", body: "{}", headers: { "x-api-key": "dev-admin-key" } });
    assert.equal(admin.status, 503, admin.text);
    assert.match(admin.json.detail, /email/);
  });
});
