// `GET /api/metrics` (admin only): the console's Overview numbers, answered locally by the
// Analytics Engine stand-in from the data points the api itself wrote.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { platform, request } from "./helpers.mjs";

const ADMIN = { "x-api-key": "dev-admin-key" };

describe("metrics for the console", () => {
  let p;
  before(async () => { p = await platform(); });
  after(async () => { await p?.dispose(); });

  test("admin only", async () => {
    assert.equal((await request(p.url, "api.do", "/api/metrics")).status, 401);
    assert.equal((await request(p.url, "api.do", "/api/metrics?window=0", { headers: ADMIN })).status, 400);
    assert.equal((await request(p.url, "api.do", "/api/metrics", { method: "POST", headers: ADMIN })).status, 405);
  });

  test("requests, 5xx errors and latency per minute, from the points the api wrote", async () => {
    const before = await request(p.url, "api.do", "/api/metrics?window=5", { headers: ADMIN });
    assert.equal(before.status, 200, before.text);
    const count = (res) => res.json.minutes.reduce((a, m) => a + m.requests, 0);
    const errs = (res) => res.json.minutes.reduce((a, m) => a + m.errors, 0);
    for (let i = 0; i < 5; i++) assert.equal((await request(p.url, "api.do", "/health?live")).status, 200);
    // email's binding is not configured here: 503, a server error.
    for (let i = 0; i < 2; i++) assert.equal((await request(p.url, "api.do", "/api/email/send", { method: "POST", body: "{}", headers: ADMIN })).status, 503);
    const res = await request(p.url, "api.do", "/api/metrics?window=5", { headers: ADMIN });
    assert.equal(res.json.source, "local-stand-in");
    assert.equal(res.json.windowMinutes, 5);
    // The metrics request before this one counts too.
    assert.equal(count(res) - count(before), 8);
    assert.equal(errs(res) - errs(before), 2);
    const last = res.json.minutes.at(-1);
    assert.match(last.minute, /^\d{4}-\d\d-\d\d \d\d:\d\d:00$/);
    assert.ok(last.p99Ms >= last.p50Ms && last.p50Ms >= 0, JSON.stringify(last));
    assert.ok(last.errorRate > 0 && last.errorRate < 1);
  });
});
