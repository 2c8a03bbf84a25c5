// Routing through the api over real HTTP with Host headers: every step of the contract's
// order and its fallthroughs.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { platform, request } from "./helpers.mjs";

describe("routing", () => {
  let p;
  before(async () => { p = await platform(); });
  after(async () => { await p?.dispose(); });

  test("a user worker in each namespace is reached by host suffix", async () => {
    for (const [host, namespace] of [["myapp.do", "production"], ["myapp.staging.do", "staging"], ["myapp.dev.do", "development"]]) {
      const res = await request(p.url, host, "/hello?x=1");
      assert.equal(res.status, 200, `${host}: ${res.text}`);
      assert.equal(res.json.namespace, namespace, host);
      assert.equal(res.json.path, "/hello");
      assert.equal(res.json.requestId, res.headers["x-request-id"]);
      assert.match(res.json.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      assert.deepEqual(JSON.parse(res.json.dispatchLimits), { cpuMs: 50, subRequests: 50 });
    }
  });

  test("a custom domain routes to its user worker", async () => {
    const res = await request(p.url, "shop.example.com", "/cart");
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.namespace, "production");
  });

  test("path routes do not apply on a user worker's host", async () => {
    const res = await request(p.url, "myapp.do", "/api/db/notes");
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.path, "/api/db/notes");
  });

  test("a missing user worker falls through to the waitlist", async () => {
    const res = await request(p.url, "nobody.do", "/");
    assert.equal(res.status, 200);
    assert.match(res.headers["content-type"], /text\/html/);
    assert.match(res.text, /nobody\.do/);
  });

  test("a user worker that throws gives a 502 problem", async () => {
    const res = await request(p.url, "myapp.do", "/throw");
    assert.equal(res.status, 502, res.text);
    assert.equal(res.headers["content-type"], "application/problem+json");
    assert.equal(res.json.requestId, res.headers["x-request-id"]);
    assert.doesNotMatch(res.text, /on purpose|at .*\.js/);
  });

  test("a wildcard never matches its apex or a lookalike", async () => {
    const sub = await request(p.url, "a.myapp.do", "/");
    assert.equal(sub.status, 503, sub.text); // *.myapp.do → a service not deployed here
    assert.match(sub.json.detail, /myapp/);
    const apex = await request(p.url, "myapp.do", "/");
    assert.equal(apex.json.namespace, "production"); // the apex is the user worker, not the wildcard
    const lookalike = await request(p.url, "evilmyapp.do", "/");
    assert.equal(lookalike.status, 200);
    assert.match(lookalike.text, /evilmyapp\.do/); // waitlist
  });

  test("hosts are normalised: case, port, trailing dot", async () => {
    const res = await request(p.url, "MyApp.Staging.DO.:8787", "/x");
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.namespace, "staging");
  });

  test("invalid hosts get 400", async () => {
    // (A raw non-ASCII Host, one with a space or a broken IPv6 literal never reaches the worker locally: Miniflare's own proxy answers
    // 500 before the api runs; Cloudflare's edge rejects it in production.)
    for (const host of ["a..b", "-bad.do", "x".repeat(254), "a.b..", "a.-b.do", "a.b.c-"]) {
      const res = await request(p.url, host, "/");
      assert.equal(res.status, 400, `${host}: ${res.text}`);
      assert.equal(res.headers["content-type"], "application/problem+json");
      assert.ok(res.headers["ratelimit"], "a malformed request is counted too");
    }
  });

  test("internal service names are never dispatched", async () => {
    // db.do is a domain route (the db adapter); queue.do has no domain route and is a service name.
    const res = await request(p.url, "queue.do", "/");
    assert.equal(res.status, 200);
    assert.match(res.text, /queue\.do/);
    assert.doesNotMatch(res.text, /"worker"/);
  });

  test("service subdomains route to the registry; unknown names fall through", async () => {
    const known = await request(p.url, "webhooks.apis.do", "/hook");
    assert.equal(known.status, 503, known.text);
    assert.match(known.json.detail, /webhooks/);
    const unknown = await request(p.url, "nope.apis.do", "/");
    assert.equal(unknown.status, 200);
    assert.match(unknown.text, /nope\.apis\.do/);
  });

  test("unknown paths on API hosts are 404 problems", async () => {
    const res = await request(p.url, "api.do", "/api/nothing-here/x");
    assert.equal(res.status, 404);
    assert.equal(res.headers["content-type"], "application/problem+json");
  });

  test("/domain-routes.json is never served, on any host", async () => {
    for (const host of ["api.do", "localhost", "myapp.do", "nobody.example", "db.do"]) {
      const res = await request(p.url, host, "/domain-routes.json");
      assert.doesNotMatch(res.text, /"domain"\s*:/, host);
    }
  });
});
