// The local front door (scripts/front.mjs): Hosts workerd cannot turn into a URL get the edge's
// 400 as problem+json with a request id, not workerd's 500; every other Host passes through, and
// an early answer to a large upload (413 before the body is read) still reaches the client.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { platform, request } from "./helpers.mjs";
import { hostProblem } from "../scripts/front.mjs";

/** Sends raw bytes, returns the status and the parsed answer once the server closes. */
function raw(base, bytes) {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), "127.0.0.1", () => socket.end(bytes)); // and half-closes, as `nc -N` does
    let data = "";
    socket.on("data", (chunk) => { data += chunk; });
    socket.on("error", reject);
    socket.on("close", () => {
      const [head, ...rest] = data.split("\r\n\r\n");
      const lines = head.split("\r\n");
      const headers = Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
      resolve({ status: Number(lines[0].split(" ")[1]), headers, body: rest.join("\r\n\r\n") });
    });
  });
}
const get = (host) => `GET /health?live HTTP/1.1\r\n${host === null ? "" : `Host: ${host}\r\n`}Connection: close\r\n\r\n`;

const UNREPRESENTABLE = ["api do", "<b>x</b>", "api.do:99999", "api.do:abc", "%41pi.do", "foo@bar", 'x"y', "exa mple.com", "", "[::zz]"];

describe("the local front door", () => {
  let p;
  before(async () => { p = await platform({ apiVars: { RATE_LIMITS: JSON.stringify({ default: { limit: 100000, windowSecs: 60 } }) } }); });
  after(async () => { await p?.dispose(); });

  test("a Host workerd cannot represent is the edge's 400, as problem+json with a request id", async () => {
    for (const host of UNREPRESENTABLE) {
      const res = await raw(p.url, get(host));
      assert.equal(res.status, 400, `Host ${JSON.stringify(host)}: ${res.body}`);
      assert.equal(res.headers["content-type"], "application/problem+json");
      const body = JSON.parse(res.body);
      assert.equal(body.status, 400);
      assert.match(body.detail, /Host/);
      assert.match(res.headers["x-request-id"], /^[0-9A-HJKMNP-TV-Z]{26}$/);
      assert.equal(body.requestId, res.headers["x-request-id"]);
    }
  });

  test("no Host, or two, is a 400 too", async () => {
    assert.equal((await raw(p.url, get(null))).status, 400);
    const two = await raw(p.url, "GET / HTTP/1.1\r\nHost: api.do\r\nHost: db.do\r\nConnection: close\r\n\r\n");
    assert.equal(two.status, 400);
    assert.match(JSON.parse(two.body).detail, /more than one Host/);
  });

  test("Hosts workerd takes reach the api, which judges them itself", async () => {
    assert.equal((await raw(p.url, get("api.do"))).status, 200);
    assert.equal((await raw(p.url, get("API.DO:8787"))).status, 200);
    const empty = await raw(p.url, get("a..b"));
    assert.equal(empty.status, 400);
    assert.match(JSON.parse(empty.body).detail, /empty label/, "the api's own 400, not the relay's");
    assert.equal((await raw(p.url, get("[::1]"))).status, 404, "an IPv6 literal is a (waitlist-less) custom domain");
  });

  test("a WebSocket upgrade with an unrepresentable Host is refused the same way", async () => {
    const res = await raw(p.url, "GET /ws HTTP/1.1\r\nHost: bad host\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert.equal(res.status, 400);
    assert.equal(res.headers["content-type"], "application/problem+json");
  });

  test("an early 413 on a large Content-Length reaches the client every time", async () => {
    const big = JSON.stringify({ blob: "x".repeat(2 << 20) });
    for (let i = 0; i < 20; i++) {
      const res = await request(p.url, "db.do", `/front-${i}/big`, { method: "PUT", body: big, headers: { "x-api-key": "dev-admin-key", "content-type": "application/json", "content-length": String(Buffer.byteLength(big)) } });
      assert.equal(res.status, 413, `try ${i}: ${res.status} ${res.text}`);
    }
  });

  test("without the relay, workerd itself answers such a Host with a 500 (why the relay exists)", async () => {
    const res = await raw(p.entry, get("api do"));
    assert.equal(res.status, 500, "if workerd answers 400 now, scripts/front.mjs can go");
  });
});

test("hostProblem: the rule, as a table", () => {
  const host = (h) => hostProblem(["Host", h]);
  for (const ok of ["api.do", "a-b.c_d.example", "api.do:1", "api.do:65535", "[::1]", "[2001:db8::1]:443", "127.0.0.1:8787", "xn--pi-6kc.do"]) assert.equal(host(ok), null, ok);
  for (const bad of UNREPRESENTABLE) assert.notEqual(host(bad), null, JSON.stringify(bad));
  assert.match(hostProblem([]), /missing/);
  assert.match(hostProblem(["host", "a", "HOST", "b"]), /more than one/);
});
