// A transparent front door: ordinary web traffic to a tenant's user worker and to a forwarded
// service passes through the api untouched. Redirects with their cookies, WebSockets, streams
// both ways, the tenant's own CORS, HEAD, identity on requiresAuth/requiresAdmin custom
// domains, what an upstream never sees (platform credentials, ADMIN_API_KEY, forged
// X-Platform-*), foreign credentials on anonymous forwarding routes, and deadlines.
// The upstreams are test-only fixtures: tests/fixtures/passthrough/.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { platform, request } from "./helpers.mjs";
import { DEV_ADMIN_API_KEY } from "../scripts/platform.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.join(here, "fixtures/passthrough");
const ADMIN = { "x-api-key": DEV_ADMIN_API_KEY };
const RATE_LIMITS = JSON.stringify({ default: { limit: 100000, windowSecs: 60 } });
// Headers that differ between any two requests (ids, timing, the limiter's count).
const PER_REQUEST = new Set(["x-request-id", "traceparent", "x-response-time", "ratelimit", "x-ratelimit-remaining", "x-ratelimit-reset", "date"]);

const service = {
  name: "passthrough-service",
  modules: true,
  compatibilityDate: "2025-09-01",
  scriptPath: path.join(FIXTURES, "service.js"),
};

function startPassthroughPlatform(extra = {}) {
  return platform({
    userWorkersRoot: path.join(FIXTURES, "user-workers"),
    assetsDirectory: path.join(FIXTURES, "assets"),
    extraWorkers: [service, ...(extra.extraWorkers ?? [])],
    apiServices: { WEBHOOKS_SERVICE: service.name, MCP_SERVICE: service.name, AGENTS_SERVICE: service.name, ...(extra.apiServices ?? {}) },
    apiVars: { RATE_LIMITS, ...(extra.apiVars ?? {}) },
  });
}

/** Opens a WebSocket through the api with the given Host; resolves once open, with the handshake's response. */
function openSocket(base, host, path, { headers = {}, protocols } = {}) {
  const ws = new WebSocket(new URL(path, String(base).replace(/^http/, "ws")), protocols, { headers: { host, ...headers } });
  return new Promise((resolve, reject) => {
    let handshake;
    ws.on("upgrade", (res) => { handshake = res; });
    ws.on("open", () => resolve({ ws, handshake }));
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c) => { body += c; });
      res.on("end", () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { status: res.statusCode })));
    });
    ws.on("error", reject);
  });
}

/** Sends `message` and resolves with the next message received. */
function roundTrip(ws, message) {
  return new Promise((resolve, reject) => {
    ws.once("message", (data) => resolve(String(data)));
    ws.once("error", reject);
    ws.send(message);
  });
}

/** HEAD over a raw socket: the status line, the headers, and whatever bytes follow them within `settleMs`. */
function rawHead(base, host, path, headers = {}, settleMs = 300) {
  const { port } = new URL(base);
  const lines = [`HEAD ${path} HTTP/1.1`, `Host: ${host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), "", ""];
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), "127.0.0.1", () => socket.write(lines.join("\r\n")));
    let buffer = Buffer.alloc(0);
    let timer;
    const finish = () => {
      socket.destroy();
      const end = buffer.indexOf("\r\n\r\n");
      const head = buffer.subarray(0, end).toString("latin1").split("\r\n");
      const status = Number(head[0].split(" ")[1]);
      const parsed = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(":");
        const name = line.slice(0, i).trim().toLowerCase();
        parsed[name] = parsed[name] === undefined ? line.slice(i + 1).trim() : `${parsed[name]}, ${line.slice(i + 1).trim()}`;
      }
      resolve({ status, headers: parsed, bodyBytes: buffer.length - end - 4 });
    };
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.includes("\r\n\r\n")) { clearTimeout(timer); timer = setTimeout(finish, settleMs); }
    });
    socket.on("end", () => { if (buffer.includes("\r\n\r\n")) { clearTimeout(timer); finish(); } });
    socket.on("error", reject);
  });
}

/** The JSON request lines workerd printed for a request id. */
function requestLines(p, id) {
  return p.logs
    .filter((l) => l.startsWith("{") && l.includes(id))
    .map((l) => JSON.parse(l))
    .filter((l) => l.message === "request");
}

const sha256 = (data) => createHash("sha256").update(data).digest("hex");
let counter = 0;

/** A new user, logged in: its token, session cookie and an API key. */
async function newUser(p) {
  const email = `passthrough-${Date.now()}-${++counter}@example.com`;
  const body = { email, password: "correct horse battery" };
  const json = { "content-type": "application/json" };
  const signup = await request(p.url, "api.do", "/api/auth/signup", { method: "POST", headers: json, body });
  assert.equal(signup.status, 201, signup.text);
  const login = await request(p.url, "api.do", "/api/auth/login", { method: "POST", headers: json, body });
  assert.equal(login.status, 200, login.text);
  const cookie = [login.headers["set-cookie"]].flat().find((c) => c.startsWith("session="));
  const session = cookie.slice("session=".length).split(";")[0];
  const key = await request(p.url, "api.do", "/api/auth/keys", { method: "POST", headers: { ...json, authorization: `Bearer ${login.json.token}` }, body: { name: "passthrough" } });
  assert.equal(key.status, 201, key.text);
  return { id: login.json.user.id, token: login.json.token, session, apiKey: key.json.key };
}

describe("a transparent front door", () => {
  let p, user;
  before(async () => {
    p = await startPassthroughPlatform();
    user = await newUser(p);
  });
  after(async () => { await p?.dispose(); });

  describe("redirects are never followed", () => {
    test("a user worker's 303 arrives with its Location and every Set-Cookie", async () => {
      for (const host of ["tenant.do", "shop.example"]) {
        const res = await request(p.url, host, "/login", { method: "POST", body: "user=ada" });
        assert.equal(res.status, 303, `${host}: ${res.text}`);
        assert.equal(res.headers.location, "/account");
        assert.deepEqual(res.headers["set-cookie"], ["tenant_session=t-123; Path=/; HttpOnly", "theme=dark; Path=/"]);
        assert.ok(res.headers["x-request-id"], "the api's own headers are still added");
      }
    });

    test("a forwarded service's 302 arrives as sent", async () => {
      const res = await request(p.url, "api.do", "/api/webhooks/oauth/callback?code=1");
      assert.equal(res.status, 302, res.text);
      assert.equal(res.headers.location, "https://app.example/done");
      assert.deepEqual(res.headers["set-cookie"], ["oauth_state=; Max-Age=0; Path=/", "grant=g-1; Path=/; Secure"]);
    });
  });

  describe("WebSockets pass through", () => {
    test("an echo round trip with a user worker, upgrade headers intact, counted and logged as 101", async () => {
      const { ws, handshake } = await openSocket(p.url, "tenant.do", "/ws?room=1", { protocols: ["chat.v1"] });
      try {
        assert.equal(handshake.statusCode, 101);
        assert.equal(ws.protocol, "chat.v1");
        assert.ok(handshake.headers["x-request-id"], "the 101 carries the request id");
        // Tenant answers carry no platform rate headers; the log line shows the count.
        assert.equal(handshake.headers.ratelimit, undefined);
        const saw = JSON.parse(handshake.headers["x-tenant-saw"]);
        assert.equal(saw.upgrade, "websocket");
        assert.match(saw.connection, /upgrade/i);
        assert.ok(saw["sec-websocket-key"], "Sec-WebSocket-Key reached the worker");
        assert.equal(saw["sec-websocket-version"], "13");
        assert.equal(saw["sec-websocket-protocol"], "chat.v1");
        assert.equal(saw["x-request-id"], handshake.headers["x-request-id"]);
        assert.equal(await roundTrip(ws, "hello"), "tenant echo: hello");
        assert.equal(await roundTrip(ws, "again"), "tenant echo: again");
        await new Promise((r) => setTimeout(r, 100));
        const [line] = requestLines(p, handshake.headers["x-request-id"]);
        assert.equal(line?.status, 101, JSON.stringify(line));
        assert.equal(line.service, "tenant");
        assert.equal(line.strategy, "wfp");
        assert.equal(line.rateLimit?.allowed, true, "the upgrade was counted by the limiter");
      } finally {
        ws.close();
      }
    });

    test("an echo round trip with a forwarded service", async () => {
      const { ws, handshake } = await openSocket(p.url, "api.do", "/api/webhooks/live/ws");
      try {
        assert.equal(handshake.statusCode, 101);
        assert.equal(await roundTrip(ws, "ping"), "service echo: ping");
      } finally {
        ws.close();
      }
    });

    test("an upgrade to a requiresAuth domain is identified like any request", async () => {
      await assert.rejects(openSocket(p.url, "members.example", "/ws"), (e) => e.status === 401);
      const { ws, handshake } = await openSocket(p.url, "members.example", "/ws", { headers: { authorization: `Bearer ${user.token}` } });
      try {
        const saw = JSON.parse(handshake.headers["x-tenant-saw"]);
        assert.equal(saw["x-platform-user-id"], user.id);
        assert.equal(saw.authorization, undefined, "the platform token never reaches the worker");
        assert.equal(await roundTrip(ws, "member"), "tenant echo: member");
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(requestLines(p, handshake.headers["x-request-id"])[0]?.userId, user.id);
      } finally {
        ws.close();
      }
    });
  });

  describe("streams in both directions", () => {
    test("an SSE stream's first event reaches the client while the upstream is still writing", async () => {
      // The upstream writes its last event only after this test sends a line on the request
      // body, which it does only once the first event has arrived: no timers.
      const events = await new Promise((resolve, reject) => {
        const { port } = new URL(p.url);
        const req = http.request({ hostname: "127.0.0.1", port, path: "/events", method: "POST", agent: false, headers: { host: "tenant.do", "content-type": "text/plain" } }, (res) => {
          assert.equal(res.statusCode, 200);
          assert.match(res.headers["content-type"], /text\/event-stream/);
          let text = "";
          const seen = [];
          res.on("data", (chunk) => {
            text += chunk;
            if (seen.length === 0 && text.includes("event: first")) {
              seen.push({ first: true, lastYet: text.includes("event: last") });
              req.end("test-signal\n");
            }
          });
          res.on("end", () => resolve({ seen, text }));
          res.on("error", reject);
        });
        req.on("error", reject);
        req.flushHeaders();
      });
      assert.deepEqual(events.seen, [{ first: true, lastYet: false }], "the first event arrived before the last was written");
      assert.match(events.text, /event: last\ndata: released by test-signal/);
    });

    test("an 8 MiB upload reaches the user worker and the forwarded service whole", async () => {
      const body = randomBytes(8 << 20);
      const tenant = await request(p.url, "tenant.do", "/upload", { method: "PUT", body, headers: { "content-type": "application/octet-stream" } });
      assert.equal(tenant.status, 200, tenant.text);
      assert.equal(tenant.json.bytes, body.length);
      assert.equal(tenant.json.sha256, sha256(body));
      const forwarded = await request(p.url, "api.do", "/api/webhooks/upload", { method: "POST", body });
      assert.equal(forwarded.status, 200, forwarded.text);
      assert.equal(forwarded.json.bytes, body.length);
    });
  });

  describe("tenant CORS is the tenant's", () => {
    const origin = "https://app.tenant.example";

    test("a preflight to a user worker is answered by the worker", async () => {
      const res = await request(p.url, "tenant.do", "/cors", {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "PUT", "access-control-request-headers": "x-tenant-header" },
      });
      assert.equal(res.status, 204, res.text);
      assert.equal(res.headers["x-answered-by"], "tenant");
      assert.equal(res.headers["access-control-allow-origin"], origin);
      assert.equal(res.headers["access-control-allow-credentials"], "true");
      assert.equal(res.headers["access-control-allow-methods"], "GET, PUT");
      assert.equal(res.headers["access-control-allow-headers"], "x-tenant-header");
      assert.equal(res.headers["access-control-max-age"], "60");
    });

    test("a credentialed response keeps the tenant's Access-Control-* headers, none of the platform's", async () => {
      const res = await request(p.url, "shop.example", "/cors", { headers: { origin, cookie: "tenant_session=t-123" } });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.headers["access-control-allow-origin"], origin);
      assert.equal(res.headers["access-control-allow-credentials"], "true");
      assert.equal(res.headers["access-control-expose-headers"], "x-tenant-only");
      assert.equal(res.json.headers.cookie, "tenant_session=t-123");
    });

    test("a preflight to a forwarded service reaches the service", async () => {
      const res = await request(p.url, "api.do", "/mcp/tools", { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST" } });
      assert.equal(res.status, 204, res.text);
      assert.equal(res.headers["x-answered-by"], "service");
      assert.equal(res.headers["access-control-allow-origin"], origin);
      assert.equal(res.headers["access-control-allow-methods"], undefined, "not the platform's preflight");
    });

    test("platform routes keep the platform's CORS", async () => {
      const preflight = await request(p.url, "api.do", "/api/db/notes", { method: "OPTIONS", headers: { origin, "access-control-request-method": "POST" } });
      assert.equal(preflight.status, 204);
      assert.match(preflight.headers["access-control-allow-methods"], /HEAD/);
      const health = await request(p.url, "api.do", "/health?live", { headers: { origin } });
      assert.equal(health.headers["access-control-allow-origin"], "*");
    });
  });

  describe("identity on custom domains routed to user workers", () => {
    test("requiresAuth: 401 without a credential or with a foreign one, 200 with the identity headers", async () => {
      const none = await request(p.url, "members.example", "/account");
      assert.equal(none.status, 401, none.text);
      assert.equal(none.headers["content-type"], "application/problem+json");
      assert.equal(none.json.requestId, none.headers["x-request-id"]);
      assert.equal((await request(p.url, "members.example", "/account", { headers: { authorization: "Basic dXNlcjpwYXNz" } })).status, 401);
      for (const [what, headers, gone] of [
        ["token", { authorization: `Bearer ${user.token}` }, "authorization"],
        ["API key", { "x-api-key": user.apiKey }, "x-api-key"],
      ]) {
        const res = await request(p.url, "members.example", "/account", { headers: { ...headers, "x-platform-role": "admin" } });
        assert.equal(res.status, 200, `${what}: ${res.text}`);
        assert.equal(res.json.worker, "tenant");
        assert.equal(res.json.headers["x-platform-user-id"], user.id, what);
        assert.equal(res.json.headers["x-platform-role"], "user", `${what}: a forged role is replaced`);
        assert.equal(res.json.headers[gone], undefined, `${what}: the platform credential never reaches the worker`);
      }
      const cookie = await request(p.url, "members.example", "/account", { headers: { cookie: `theme=dark; session=${user.session}; cart=3` } });
      assert.equal(cookie.status, 200, cookie.text);
      assert.equal(cookie.json.headers["x-platform-user-id"], user.id);
      assert.equal(cookie.json.headers.cookie, "theme=dark; cart=3", "the session cookie is removed, the tenant's cookies stay");
    });

    test("requiresAdmin: 403 for a user, 200 for the admin key, which never reaches the worker", async () => {
      const forbidden = await request(p.url, "admins.example", "/", { headers: { authorization: `Bearer ${user.token}` } });
      assert.equal(forbidden.status, 403, forbidden.text);
      assert.equal((await request(p.url, "admins.example", "/")).status, 401);
      const admin = await request(p.url, "admins.example", "/", { headers: ADMIN });
      assert.equal(admin.status, 200, admin.text);
      assert.equal(admin.json.headers["x-platform-role"], "admin");
      assert.equal(admin.json.headers["x-platform-user-id"], "admin");
      assert.equal(admin.json.headers["x-api-key"], undefined);
      assert.ok(!JSON.stringify(admin.json).includes(DEV_ADMIN_API_KEY));
    });

    test("an anonymous user worker gets the tenant's credentials as sent, never ADMIN_API_KEY or forged X-Platform-*", async () => {
      const res = await request(p.url, "tenant.do", "/me", {
        headers: { authorization: "Bearer tenant-own-token", cookie: "session=tenant-own", "x-platform-user-id": "u_forged", ...ADMIN },
      });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.headers.authorization, "Bearer tenant-own-token");
      assert.equal(res.json.headers.cookie, "session=tenant-own");
      assert.equal(res.json.headers["x-platform-user-id"], undefined);
      assert.equal(res.json.headers["x-api-key"], undefined);
      assert.ok(!JSON.stringify(res.json).includes(DEV_ADMIN_API_KEY));
    });
  });

  describe("what a forwarded service sees", () => {
    test("the request as sent: method, path, query, Host, ids; never platform credentials or ADMIN_API_KEY", async () => {
      for (const [what, headers, gone] of [
        ["token", { authorization: `Bearer ${user.token}` }, "authorization"],
        ["API key", { "x-api-key": user.apiKey }, "x-api-key"],
        ["admin key", ADMIN, "x-api-key"],
        ["session", { cookie: `session=${user.session}` }, "cookie"],
      ]) {
        const res = await request(p.url, "api.do", "/api/agents/run?step=2", { method: "POST", headers: { ...headers, "content-type": "application/json", "x-custom": "kept" }, body: "{}" });
        assert.equal(res.status, 200, `${what}: ${res.text}`);
        assert.equal(res.json.service, "forwarded");
        assert.equal(res.json.method, "POST");
        assert.equal(res.json.path, "/run");
        assert.equal(res.json.query, "?step=2");
        assert.equal(res.json.headers.host, "api.do");
        assert.equal(res.json.headers["x-custom"], "kept");
        assert.equal(res.json.headers["x-request-id"], res.headers["x-request-id"]);
        assert.ok(res.json.headers["x-platform-user-id"], `${what}: the identity arrives as X-Platform-User-Id`);
        assert.equal(res.json.headers[gone], undefined, `${what}: the credential that proved it does not`);
        for (const secret of [user.token, user.apiKey, user.session, DEV_ADMIN_API_KEY]) {
          assert.ok(!JSON.stringify(res.json).includes(secret), `${what}: a platform secret reached the service`);
        }
      }
    });

    test("a Connection header cannot remove the headers the platform sets", async () => {
      const res = await request(p.url, "api.do", "/api/webhooks/github", {
        headers: { connection: "x-request-id, traceparent, cf-connecting-ip, x-platform-role, x-hop", "x-hop": "1", "cf-connecting-ip": "198.51.100.7", "x-api-key": user.apiKey },
      });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.headers["x-request-id"], res.headers["x-request-id"]);
      assert.match(res.json.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      assert.equal(res.json.headers["cf-connecting-ip"], "198.51.100.7");
      assert.equal(res.json.headers["x-platform-role"], "user");
      assert.equal(res.json.headers["x-hop"], undefined);
    });

    test("on /mcp/* and webhooks a foreign credential passes through; one in our format that is invalid is 401", async () => {
      for (const [host, path] of [["api.do", "/mcp/tools/call"], ["hooks.example", "/github"]]) {
        for (const headers of [
          { authorization: "Bearer github_pat_11ABCDEF0123456789" },
          { authorization: "Basic dXNlcjpwYXNz" },
          { "x-hub-signature-256": "sha256=0123abcd", "x-api-key": "pk_live_provider" },
          { cookie: "session=provider-own" },
        ]) {
          const res = await request(p.url, host, path, { method: "POST", headers, body: "{}" });
          assert.equal(res.status, 200, `${host}${path} ${JSON.stringify(headers)}: ${res.text}`);
          for (const [name, value] of Object.entries(headers)) assert.equal(res.json.headers[name], value, name);
          assert.equal(res.json.headers["x-platform-user-id"], undefined, "a foreign credential is not an identity");
        }
        // A token in our format with a bad signature: ours, and invalid.
        const [head, payload] = user.token.split(".");
        const forged = `${head}.${payload}.${createHmac("sha256", "not-our-key").update(`${head}.${payload}`).digest("base64url")}`;
        const res = await request(p.url, host, path, { method: "POST", headers: { authorization: `Bearer ${forged}` }, body: "{}" });
        assert.equal(res.status, 401, res.text);
        const badKey = await request(p.url, host, path, { method: "POST", headers: { "x-api-key": "sk_abcdefghijkl_bm90LWEtcmVhbC1rZXktYXQtYWxs" }, body: "{}" });
        assert.equal(badKey.status, 401, badKey.text);
      }
      // A valid platform token there is an identity, and is not passed on.
      const own = await request(p.url, "api.do", "/mcp/tools", { headers: { authorization: `Bearer ${user.token}` } });
      assert.equal(own.status, 200, own.text);
      assert.equal(own.json.headers["x-platform-user-id"], user.id);
      assert.equal(own.json.headers.authorization, undefined);
    });
  });

  describe("HEAD", () => {
    /** GET and HEAD of the same resource: same status and headers (ETag included), no body. */
    async function sameAsGet(host, path, headers = {}, { volatileLength = false } = {}) {
      const get = await request(p.url, host, path, { headers });
      const head = await rawHead(p.url, host, path, headers);
      const what = `HEAD ${host}${path}`;
      assert.equal(head.status, get.status, `${what}: ${get.text}`);
      assert.equal(head.bodyBytes, 0, `${what} sent a body`);
      const comparable = (h) => Object.fromEntries(Object.entries(h)
        .filter(([name]) => !PER_REQUEST.has(name) && !(volatileLength && name === "content-length"))
        .map(([name, value]) => [name, [value].flat().join(", ")]));
      assert.deepEqual(comparable(head.headers), comparable(get.headers), what);
      return { get, head };
    }

    test("on every platform GET route: same status and headers as GET, no body", async () => {
      const bearer = { authorization: `Bearer ${user.token}` };
      const created = await request(p.url, "api.do", "/api/db/notes", { method: "POST", headers: { ...bearer, "content-type": "application/json" }, body: { title: "head" } });
      assert.equal(created.status, 201, created.text);
      const { head } = await sameAsGet("api.do", `/api/db/notes/${created.json.id}`, bearer);
      assert.equal(head.headers.etag, created.headers.etag, "the document's ETag");
      await sameAsGet("db.do", `/notes/${created.json.id}`, bearer);
      await sameAsGet("api.do", "/api/db/notes?limit=5", bearer);
      await sameAsGet("api.do", "/api/auth/me", bearer);
      await sameAsGet("api.do", "/api/auth/keys", bearer);
      await sameAsGet("api.do", "/health", {}, { volatileLength: true });
      await sameAsGet("api.do", "/health?live");
      await sameAsGet("api.do", "/api/do/services", bearer);
      await sameAsGet("api.do", "/api/do/services/db", bearer);
      await sameAsGet("nobody-here.example", "/");
      await sameAsGet("api.do", "/api/waitlist", ADMIN);
      await sameAsGet("api.do", "/api/waitlist/nobody-here.example", ADMIN);
      // Errors too: a HEAD that needs a credential is the GET's 401, without its body.
      await sameAsGet("api.do", "/api/auth/me");
    });

    test("reaches a user worker as HEAD", async () => {
      const head = await rawHead(p.url, "tenant.do", "/page");
      assert.equal(head.status, 200);
      assert.equal(head.headers["x-seen-method"], "HEAD");
      assert.equal(head.headers.etag, '"tenant-v1"');
      assert.equal(head.bodyBytes, 0);
    });
  });
});

describe("deadlines", () => {
  const DEADLINE_MS = 800;
  // An RPC service whose every method hangs: stands in for db and auth.
  const hanging = {
    name: "hanging-rpc",
    modules: true,
    compatibilityDate: "2025-09-01",
    script: `import { WorkerEntrypoint } from "cloudflare:workers";
      const stuck = () => new Promise((resolve) => setTimeout(resolve, 20000));
      export default class extends WorkerEntrypoint {
        async get() { await stuck(); } async list() { await stuck(); }
        async validateApiKey() { await stuck(); } async validateSession() { await stuck(); }
        async health() { await stuck(); return { ok: true, service: "db" }; }
      }`,
  };
  let p;
  before(async () => {
    p = await startPassthroughPlatform({
      extraWorkers: [hanging],
      apiServices: { DB_SERVICE: hanging.name, AUTH_SERVICE: hanging.name },
      apiVars: { UPSTREAM_TIMEOUT_MS: String(DEADLINE_MS), SERVICE_TIMEOUT_MS: String(DEADLINE_MS) },
    });
  });
  after(async () => { await p?.dispose(); });

  async function timedOut(host, path, headers = {}, upstream) {
    const started = Date.now();
    const res = await request(p.url, host, path, { headers });
    const elapsed = Date.now() - started;
    assert.equal(res.status, 504, `${host}${path}: ${res.text}`);
    assert.equal(res.headers["content-type"], "application/problem+json");
    assert.equal(res.json.requestId, res.headers["x-request-id"]);
    assert.ok(elapsed >= DEADLINE_MS - 50 && elapsed < DEADLINE_MS + 2000, `answered after ${elapsed} ms`);
    await new Promise((r) => setTimeout(r, 100));
    const [line] = requestLines(p, res.headers["x-request-id"]);
    assert.equal(line?.status, 504);
    assert.match(line.error, new RegExp(`${upstream} did not answer within ${DEADLINE_MS} ms`));
  }

  test("a hanging user worker is a 504 within its deadline, logged with its name", async () => {
    await timedOut("tenant.do", "/slow", {}, "user worker tenant");
  });

  test("a hanging forwarded service is a 504 within its deadline", async () => {
    await timedOut("api.do", "/api/webhooks/slow", {}, "service webhooks");
  });

  test("a hanging db behind its adapter is a 504", async () => {
    await timedOut("api.do", "/api/db/notes/1", ADMIN, "db");
  });

  test("a hanging auth behind an API key is a 504", async () => {
    await timedOut("api.do", "/api/db/notes/1", { "x-api-key": "sk_abcdefghijkl_bm90LWEtcmVhbC1rZXktYXQtYWxs" }, "auth");
  });

  test("a stream and a WebSocket that have started outlive the deadline", async () => {
    const { ws } = await openSocket(p.url, "tenant.do", "/ws");
    try {
      await new Promise((r) => setTimeout(r, DEADLINE_MS + 400));
      assert.equal(await roundTrip(ws, "still here"), "tenant echo: still here");
    } finally {
      ws.close();
    }
    const text = await new Promise((resolve, reject) => {
      const { port } = new URL(p.url);
      const req = http.request({ hostname: "127.0.0.1", port, path: "/events", method: "POST", agent: false, headers: { host: "tenant.do" } }, (res) => {
        let body = "";
        let released = false;
        res.on("data", (chunk) => {
          body += chunk;
          if (!released && body.includes("event: first")) {
            released = true;
            setTimeout(() => req.end("late\n"), DEADLINE_MS + 400);
          }
        });
        res.on("end", () => resolve(body));
      });
      req.on("error", reject);
      req.flushHeaders();
    });
    assert.match(text, /event: last\ndata: released by late/);
  });
});
