// Observability: request ids, trace context, response time, one structured log line per
// request, one Analytics Engine data point per request, secrets never logged, and a panic
// that costs one request only.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { platform, request } from "./helpers.mjs";

const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;
const requestLines = (logs, id) =>
  logs.filter((l) => l.startsWith("{") && l.includes(id)).map((l) => JSON.parse(l)).filter((l) => l.message === "request");

describe("observability", () => {
  let p;
  before(async () => { p = await platform({ apiVars: { ENABLE_TEST_PANIC: "1" } }); });
  after(async () => { await p?.dispose(); });

  test("every response has a ULID request id, a traceparent and X-Response-Time", async () => {
    const res = await request(p.url, "api.do", "/health");
    assert.match(res.headers["x-request-id"], ULID);
    assert.match(res.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.match(res.headers["x-response-time"], /^\d+ms$/);
    const notFound = await request(p.url, "api.do", "/nope");
    assert.equal(notFound.status, 404);
    assert.equal(notFound.json.requestId, notFound.headers["x-request-id"]);
  });

  test("an incoming request id is kept only when it is a ULID or UUID", async () => {
    const ulid = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    const uuid = "123e4567-e89b-12d3-a456-426614174000";
    assert.equal((await request(p.url, "api.do", "/health", { headers: { "x-request-id": ulid } })).headers["x-request-id"], ulid);
    assert.equal((await request(p.url, "api.do", "/health", { headers: { "x-request-id": uuid } })).headers["x-request-id"], uuid);
    for (const bad of ["hello", "' OR 1=1 --", "01ARZ3NDEKTSV4RRFFQ69G5FA", "8".repeat(26)]) {
      const id = (await request(p.url, "api.do", "/health", { headers: { "x-request-id": bad } })).headers["x-request-id"];
      assert.notEqual(id, bad);
      assert.match(id, ULID);
    }
  });

  test("traceparent is propagated (same trace, new span) or generated", async () => {
    const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const res = await request(p.url, "myapp.do", "/", { headers: { traceparent: incoming } });
    const [, trace, span] = res.headers.traceparent.split("-");
    assert.equal(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert.notEqual(span, "00f067aa0ba902b7");
    assert.equal(res.json.traceparent, res.headers.traceparent, "the user worker saw the same trace context");
    const invalid = await request(p.url, "api.do", "/health", { headers: { traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01" } });
    assert.doesNotMatch(invalid.headers.traceparent, /^00-0{32}-/);
  });

  test("one structured log line per request with the contract's fields", async () => {
    const res = await request(p.url, "myapp.staging.do", "/some/path?secret=query", { headers: { "cf-connecting-ip": "198.51.100.9" } });
    const id = res.headers["x-request-id"];
    await new Promise((r) => setTimeout(r, 100));
    const lines = requestLines(p.logs, id);
    assert.equal(lines.length, 1, p.logs.slice(-5).join("\n"));
    const line = lines[0];
    for (const field of ["requestId", "method", "host", "path", "status", "durationMs", "strategy", "service", "userId", "ip", "level", "traceId"]) {
      assert.ok(field in line, `missing ${field}`);
    }
    assert.equal(line.method, "GET");
    assert.equal(line.host, "myapp.staging.do");
    assert.equal(line.path, "/some/path");
    assert.equal(line.strategy, "wfp");
    assert.equal(line.service, "myapp");
    assert.equal(line.status, 200);
    assert.equal(line.level, "info");
    assert.doesNotMatch(JSON.stringify(line), /secret=query/);
  });

  test("one Analytics Engine data point per request", async () => {
    const res = await request(p.url, "api.do", "/health");
    const id = res.headers["x-request-id"];
    await new Promise((r) => setTimeout(r, 100));
    const points = p.logs.filter((l) => l.startsWith("analytics-engine ") && l.includes(id)).map((l) => JSON.parse(l.slice(17)));
    assert.equal(points.length, 1);
    const [point] = points;
    assert.deepEqual(point.indexes, ["health"]);
    assert.equal(point.blobs[0], "path");
    assert.equal(point.blobs[1], "health");
    assert.equal(point.doubles[0], 200);
    assert.equal(typeof point.doubles[1], "number");
  });

  test("credentials, cookies and passwords never appear in logs", async () => {
    const secrets = ["Bearer-not-a-real-token-123456", "sk_notreal_abcdefghijklmnop", "sessionsecret987654321", "hunter2-password"];
    await request(p.url, "api.do", "/health", { headers: { authorization: `Bearer ${secrets[0]}` } });
    await request(p.url, "api.do", "/health", { headers: { "x-api-key": secrets[1] } });
    await request(p.url, "api.do", "/health", { headers: { cookie: `session=${secrets[2]}` } });
    await request(p.url, "api.do", "/api/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: { email: "a@b.co", password: secrets[3] } });
    await new Promise((r) => setTimeout(r, 100));
    const all = p.logs.join("\n");
    for (const s of secrets) assert.ok(!all.includes(s), `a log line contains ${s}`);
  });

  test("a panic costs one request: 500, logged with its request id, the next request works", async () => {
    const res = await request(p.url, "api.do", "/health?panic", { headers: { "x-request-id": "01ARZ3NDEKTSV4RRFFQ69G5FAV" } });
    assert.equal(res.status, 500);
    assert.doesNotMatch(res.text, /deliberate|\.rs:|wasm/);
    await new Promise((r) => setTimeout(r, 100));
    const panicLine = p.logs.find((l) => l.includes('"message":"panic"'));
    assert.ok(panicLine, "the panic was logged");
    assert.equal(JSON.parse(panicLine).requestId, "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    const next = await request(p.url, "api.do", "/health");
    assert.equal(next.status, 200, next.text);
  });
});
