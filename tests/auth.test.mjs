// Identity, in workerd over HTTP: every row of the contract's auth table, token forgeries
// (tampered, alg none, expired, retired key), revocation (logout, key revoke, role change) on
// the handling instance at once and from elsewhere within 5 s, 401 versus 403 on every access
// level, what is stored (hashes only), no secret in any log line, and the per-request cost of
// each credential type.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { platform, request } from "./helpers.mjs";
import { DEV_ADMIN_API_KEY, DEV_TOKEN_KEYS } from "../scripts/platform.mjs";

const HOST = "api.do";
const PASSWORD = "correct horse battery";
const ISSUER = "auth.apis.do";
const AUDIENCE = "apis.do";
// Every secret the tests see; the log test asserts none of them ever reached a log line.
const secrets = new Set([PASSWORD, DEV_ADMIN_API_KEY]);

const devKeys = Object.fromEntries(
  DEV_TOKEN_KEYS.split(",").map((entry) => {
    const [kid, b64] = entry.split(":");
    return [kid, Buffer.from(b64, "base64")];
  }),
);

const b64url = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
function forge(claims, { kid = "dev1", secret = devKeys.dev1, alg = "HS256", header } = {}) {
  const head = b64url(header ?? { alg, typ: "JWT", kid });
  const body = b64url(claims);
  const signature = alg === "none" ? "" : createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}
const decode = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
const sha256 = (s) => createHash("sha256").update(s).digest("hex");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let counter = 0;
const uniqueEmail = (tag) => `${tag}-${Date.now()}-${++counter}@example.com`;

/** A request to the auth adapter with one credential. */
function auth(p, method, path, { token, key, session, body, headers = {}, host = HOST, prefix = "/api/auth" } = {}) {
  const h = { ...headers };
  if (token !== undefined) h.authorization = `Bearer ${token}`;
  if (key !== undefined) h["x-api-key"] = key;
  if (session !== undefined) h.cookie = `session=${session}`;
  if (body !== undefined) h["content-type"] ??= "application/json";
  return request(p.url, host, `${prefix}${path}`, { method, headers: h, body });
}

function cookieOf(res) {
  const header = [res.headers["set-cookie"] ?? []].flat().find((c) => c.startsWith("session="));
  assert.ok(header, `no session cookie in ${JSON.stringify(res.headers)}`);
  return { header, value: header.slice("session=".length).split(";")[0] };
}

async function signup(p, email = uniqueEmail("user"), password = PASSWORD) {
  const res = await auth(p, "POST", "/signup", { body: { email, password } });
  assert.equal(res.status, 201, res.text);
  return res.json.user;
}

async function login(p, email, password = PASSWORD) {
  const res = await auth(p, "POST", "/login", { body: { email, password } });
  assert.equal(res.status, 200, res.text);
  const session = cookieOf(res).value;
  secrets.add(res.json.token);
  secrets.add(session);
  return { token: res.json.token, session, user: res.json.user, res };
}

async function createKey(p, credential, name = "ci") {
  const res = await auth(p, "POST", "/keys", { ...credential, body: { name } });
  assert.equal(res.status, 201, res.text);
  secrets.add(res.json.key);
  return res.json;
}

function assertProblem(res, status, what) {
  assert.equal(res.status, status, `${what}: ${res.text}`);
  assert.match(res.headers["content-type"] ?? "", /application\/problem\+json/, what);
  assert.equal(res.json.status, status, what);
  assert.equal(typeof res.json.requestId, "string", what);
}

/** Polls `probe` until it answers `status`; resolves to the milliseconds that took. */
async function msUntil(probe, status, limitMs = 8000) {
  const started = Date.now();
  for (;;) {
    const res = await probe();
    if (res.status === status) return Date.now() - started;
    if (Date.now() - started > limitMs) return Infinity;
    await sleep(100);
  }
}

// RPC answers arrive as proxies; compare their JSON.
const plain = (value) => JSON.parse(JSON.stringify(value));
const rpcCtx = (userId, role = "user") => ({ requestId: "01J00000000000000000000000", traceparent: "", userId, role });

describe("auth", () => {
  let p;
  let authRpc;
  before(async () => {
    p = await platform({
      apiVars: { RATE_LIMITS: JSON.stringify({ default: { limit: 10000, windowSecs: 60 } }) },
    });
    authRpc = await p.mf.getWorker("auth");
  });
  after(async () => {
    await p?.dispose();
  });

  describe("POST /signup", () => {
    test("201 {user}: email lower-cased, role user, permissions, no secret fields", async () => {
      const email = uniqueEmail("Mixed.Case").replace("mixed", "MiXeD");
      const res = await auth(p, "POST", "/signup", { body: { email: `  ${email.toUpperCase()} `, password: PASSWORD, name: "Ada" } });
      assert.equal(res.status, 201, res.text);
      const { user } = res.json;
      assert.equal(user.email, email.toLowerCase());
      assert.equal(user.role, "user");
      assert.deepEqual(user.permissions, ["read", "write"]);
      assert.equal(user.name, "Ada");
      assert.match(user.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
      assert.doesNotMatch(res.text, /password|hash/i);
    });

    test("409 when the email exists, compared case-insensitively", async () => {
      const email = uniqueEmail("dup");
      await signup(p, email);
      for (const again of [email, email.toUpperCase(), ` ${email} `]) {
        const res = await auth(p, "POST", "/signup", { body: { email: again, password: "another password" } });
        assertProblem(res, 409, again);
      }
    });

    test("400 on a bad email or a password under 8 characters, and nothing is stored", async () => {
      const email = uniqueEmail("short");
      for (const [body, what] of [
        [{ email: "not-an-email", password: PASSWORD }, "no @"],
        [{ email: "a@b", password: PASSWORD }, "one-label domain"],
        [{ email: "", password: PASSWORD }, "empty email"],
        [{ email, password: "1234567" }, "7 characters"],
        [{ email, password: "ééééééé" }, "7 two-byte characters"],
        [{ email, password: "" }, "empty password"],
      ]) {
        assertProblem(await auth(p, "POST", "/signup", { body }), 400, what);
      }
      // The refused attempts left no account behind.
      await signup(p, email);
    });

    test("400 on malformed JSON, wrong types and missing fields; 413 over 64 KiB", async () => {
      const email = uniqueEmail("shape");
      const cases = [
        ["{", "truncated JSON"],
        ["", "empty body"],
        ["[]", "an array"],
        ['"text"', "a string"],
        [JSON.stringify({ email }), "no password"],
        [JSON.stringify({ password: PASSWORD }), "no email"],
        [JSON.stringify({ email, password: 12345678 }), "numeric password"],
        [JSON.stringify({ email: [email], password: PASSWORD }), "array email"],
        [JSON.stringify({ email, password: PASSWORD, name: 7 }), "numeric name"],
      ];
      for (const [body, what] of cases) {
        const res = await auth(p, "POST", "/signup", { body });
        assertProblem(res, 400, what);
        // Refusals never echo what was sent (it may be a password).
        assert.doesNotMatch(res.text, /12345678/, what);
      }
      const huge = JSON.stringify({ email, password: PASSWORD, name: "x".repeat(70 * 1024) });
      assertProblem(await auth(p, "POST", "/signup", { body: huge }), 413, "70 KiB body");
      // None of that created the account.
      await signup(p, email);
    });
  });

  describe("POST /login", () => {
    let email;
    before(async () => {
      email = uniqueEmail("login");
      await signup(p, email);
    });

    test("200 {token, expiresAt, user} and the session cookie", async () => {
      const { token, session, user, res } = await login(p, email.toUpperCase());
      assert.deepEqual(Object.keys(res.json).sort(), ["expiresAt", "token", "user"]);
      assert.equal(user.email, email);
      const { header } = cookieOf(res);
      for (const attribute of ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"]) {
        assert.ok(header.split("; ").includes(attribute), `${attribute} in ${header}`);
      }
      assert.match(session, /^[A-Za-z0-9_-]{43}$/, "a 256-bit id");
      assert.equal(res.headers["cache-control"], "no-store");

      const [head] = token.split(".");
      assert.deepEqual(JSON.parse(Buffer.from(head, "base64url")), { alg: "HS256", typ: "JWT", kid: "dev1" });
      const claims = decode(token);
      assert.equal(claims.iss, ISSUER);
      assert.equal(claims.aud, AUDIENCE);
      assert.equal(claims.sub, user.id);
      assert.equal(claims.exp - claims.iat, 3600);
      assert.equal(new Date(res.json.expiresAt).getTime(), claims.exp * 1000);
      // The token names the session by its hash: it cannot be replayed as the cookie.
      assert.equal(claims.sid, sha256(session));
      assert.ok(!token.includes(session));
    });

    test("401 on bad credentials, the same answer for an unknown email and a wrong password", async () => {
      const wrong = await auth(p, "POST", "/login", { body: { email, password: "wrong password" } });
      const unknown = await auth(p, "POST", "/login", { body: { email: uniqueEmail("nobody"), password: PASSWORD } });
      assertProblem(wrong, 401, "wrong password");
      assertProblem(unknown, 401, "unknown email");
      const strip = ({ requestId, ...rest }) => rest;
      assert.deepEqual(strip(wrong.json), strip(unknown.json));
      assert.equal(wrong.headers["set-cookie"], undefined);
    });

    test("an unknown email costs about as much as a wrong password (a dummy hash is derived)", async () => {
      const ghost = uniqueEmail("ghost");
      const samples = { wrong: [], unknown: [] };
      // Alternating, so load drift on a shared machine hits both alike.
      for (let i = 0; i < 7; i++) {
        for (const [kind, body] of [["wrong", { email, password: "wrong password" }], ["unknown", { email: ghost, password: "wrong password" }]]) {
          const started = performance.now();
          const res = await auth(p, "POST", "/login", { body });
          assert.equal(res.status, 401);
          samples[kind].push(performance.now() - started);
        }
      }
      const median = (xs) => xs.sort((a, b) => a - b)[3];
      const [wrong, unknown] = [median(samples.wrong), median(samples.unknown)];
      // Without the dummy hash the unknown email would skip PBKDF2 (100 000 iterations) and
      // answer in a fraction of the time.
      assert.ok(unknown > wrong * 0.5 && unknown < wrong * 2, `unknown ${unknown.toFixed(1)} ms vs wrong ${wrong.toFixed(1)} ms`);
    });

    test("400 on malformed bodies", async () => {
      for (const body of ["nope", "{}", JSON.stringify({ email }), JSON.stringify({ email, password: null })]) {
        assertProblem(await auth(p, "POST", "/login", { body }), 400, body);
      }
    });
  });

  describe("GET /me and the credential types", () => {
    let user, token, session, key;
    before(async () => {
      const email = uniqueEmail("me");
      user = await signup(p, email);
      ({ token, session } = await login(p, email));
      key = (await createKey(p, { token })).key;
    });

    test("200 {user} with a token, an API key, a session cookie and the admin key", async () => {
      for (const credential of [{ token }, { key }, { session }]) {
        const res = await auth(p, "GET", "/me", credential);
        assert.equal(res.status, 200, `${Object.keys(credential)}: ${res.text}`);
        assert.deepEqual(res.json, { user: { id: user.id, email: user.email, role: "user", permissions: ["read", "write"] } });
      }
      const admin = await auth(p, "GET", "/me", { key: DEV_ADMIN_API_KEY });
      assert.equal(admin.status, 200, admin.text);
      assert.equal(admin.json.user.role, "admin");
    });

    test("401 without a credential; a presented but invalid credential is 401, never anonymous", async () => {
      assertProblem(await auth(p, "GET", "/me"), 401, "no credential");
      const invalid = [
        [{ headers: { authorization: "Basic dXNlcjpwYXNz" } }, "Basic auth"],
        [{ headers: { authorization: "Bearer" } }, "empty bearer"],
        [{ token: "not.a.token" }, "garbage token"],
        [{ key: "sk_nope" }, "malformed key"],
        [{ key: key.slice(0, -2) + (key.endsWith("AA") ? "BA" : "AA") }, "key with a wrong secret"],
        [{ key: "dev-admin-kez" }, "almost the admin key"],
        [{ session: "short" }, "malformed session"],
        [{ session: "A".repeat(43) }, "unknown session"],
      ];
      for (const [credential, what] of invalid) {
        assertProblem(await auth(p, "GET", "/me", credential), 401, what);
        // Also on an anonymous route: a bad credential is not silently dropped.
        assertProblem(await auth(p, "POST", "/login", { ...credential, body: { email: "x@example.com", password: PASSWORD } }), 401, `${what} on /login`);
      }
      // The first credential presented decides, even when a later one is fine.
      assertProblem(await auth(p, "GET", "/me", { headers: { authorization: "Bearer bad.to.ken", "x-api-key": key } }), 401, "bad bearer + good key");
      // Cookies without a session entry are no credential at all.
      assertProblem(await auth(p, "GET", "/me", { headers: { cookie: "theme=dark" } }), 401, "unrelated cookie");
    });
  });

  describe("access tokens", () => {
    let user, token, claims;
    before(async () => {
      const email = uniqueEmail("tok");
      user = await signup(p, email);
      ({ token } = await login(p, email));
      claims = decode(token);
    });
    const me = (t) => auth(p, "GET", "/me", { token: t });

    test("a token forged with a dev key verifies (the test's forger is right), also with the previous key", async () => {
      assert.equal((await me(forge(claims))).status, 200);
      assert.equal((await me(forge(claims, { kid: "dev0", secret: devKeys.dev0 }))).status, 200, "rotation: previous key");
    });

    test("a tampered signature, alg none, an expired token and a retired key are each rejected", async () => {
      const now = Math.floor(Date.now() / 1000);
      const [h, b, s] = token.split(".");
      const flipped = s.slice(0, 10) + (s[10] === "A" ? "B" : "A") + s.slice(11);
      const cases = [
        [`${h}.${b}.${flipped}`, "tampered signature"],
        [`${h}.${b64url({ ...claims, role: "admin" })}.${s}`, "tampered payload (role: admin)"],
        [forge(claims, { alg: "none" }), "alg none"],
        [forge(claims, { header: { alg: "none", typ: "JWT" } }), "alg none without kid"],
        [forge(claims, { header: { alg: "HS512", typ: "JWT", kid: "dev1" } }), "alg not configured"],
        [forge({ ...claims, iat: now - 7200, exp: now - 3600 }), "expired"],
        [forge({ ...claims, exp: now }), "expires this second"],
        [forge(claims, { kid: "dev-retired", secret: Buffer.from("a retired key of at least 32 bytes!!") }), "retired key"],
        [forge(claims, { kid: "dev1", secret: Buffer.from("a retired key of at least 32 bytes!!") }), "right kid, wrong secret"],
        [forge({ ...claims, aud: "somewhere.else" }), "wrong audience"],
        [forge({ ...claims, iss: "evil.example" }), "wrong issuer"],
      ];
      for (const [forged, what] of cases) {
        assertProblem(await me(forged), 401, what);
      }
      // And through the RPC surface too.
      const verdict = await authRpc.validateToken(forge(claims, { alg: "none" }));
      assert.equal(verdict.valid, false);
      const good = await authRpc.validateToken(token);
      assert.equal(good.valid, true);
      assert.equal(good.user.id, user.id);
      assert.equal(good.sessionId, claims.sid);
    });
  });

  describe("API keys", () => {
    let token, other;
    before(async () => {
      const email = uniqueEmail("keys");
      await signup(p, email);
      ({ token } = await login(p, email));
      const otherEmail = uniqueEmail("other");
      await signup(p, otherEmail);
      other = await login(p, otherEmail);
    });

    test("POST /keys: 201 {id, name, prefix, key}, only the hash is stored", async () => {
      const created = await createKey(p, { token }, "deploy bot");
      assert.equal(created.name, "deploy bot");
      assert.match(created.key, /^sk_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
      assert.equal(created.prefix, `sk_${created.id}`);
      assert.ok(created.key.startsWith(`${created.prefix}_`));
      const db = await p.mf.getD1Database("DB", "auth");
      const row = await db.prepare("SELECT * FROM api_keys WHERE id = ?").bind(created.id).first();
      assert.equal(row.key_hash, sha256(created.key));
      assert.ok(!JSON.stringify(row).includes(created.key.split("_").pop()), "the secret is not stored");
    });

    test("400 on a missing, empty or non-string name", async () => {
      for (const body of ["{}", JSON.stringify({ name: "" }), JSON.stringify({ name: 5 }), JSON.stringify({ name: "   " }), "x"]) {
        assertProblem(await auth(p, "POST", "/keys", { token, body }), 400, body);
      }
      assertProblem(await auth(p, "POST", "/keys", { body: { name: "anon" } }), 401, "no credential");
      // The platform admin key is not an account: it cannot own keys.
      assertProblem(await auth(p, "POST", "/keys", { key: DEV_ADMIN_API_KEY, body: { name: "admin" } }), 403, "admin key");
    });

    test("GET /keys lists without the key; lastUsedAt is recorded (at most once a minute)", async () => {
      const created = await createKey(p, { token }, "listed");
      let list = await auth(p, "GET", "/keys", { token });
      assert.equal(list.status, 200, list.text);
      let entry = list.json.keys.find((k) => k.id === created.id);
      assert.deepEqual(Object.keys(entry).sort(), ["createdAt", "id", "lastUsedAt", "name", "prefix"]);
      assert.equal(entry.lastUsedAt, null);
      assert.ok(!list.text.includes(created.key), "never the key");
      // Other users' keys are not listed.
      const theirs = await auth(p, "GET", "/keys", { token: other.token });
      assert.ok(!theirs.json.keys.some((k) => k.id === created.id));

      assert.equal((await auth(p, "GET", "/me", { key: created.key })).status, 200);
      list = await auth(p, "GET", "/keys", { token });
      entry = list.json.keys.find((k) => k.id === created.id);
      assert.ok(Date.now() - Date.parse(entry.lastUsedAt) < 10_000, entry.lastUsedAt);
      // Validated again a second later: not rewritten.
      await sleep(1100);
      assert.equal((await authRpc.validateApiKey(created.key)).valid, true);
      const again = (await auth(p, "GET", "/keys", { token })).json.keys.find((k) => k.id === created.id);
      assert.equal(again.lastUsedAt, entry.lastUsedAt);
    });

    test("DELETE /keys/{id}: 204, the key stops working at once; 404 for unknown or another user's key", async () => {
      const created = await createKey(p, { token }, "doomed");
      assert.equal((await auth(p, "GET", "/me", { key: created.key })).status, 200, "works (and is now cached)");
      assertProblem(await auth(p, "DELETE", `/keys/${created.id}`, { token: other.token }), 404, "another user's key");
      assert.equal((await auth(p, "GET", "/me", { key: created.key })).status, 200, "still works");
      const del = await auth(p, "DELETE", `/keys/${created.id}`, { token });
      assert.equal(del.status, 204, del.text);
      assert.equal(del.text, "");
      assertProblem(await auth(p, "GET", "/me", { key: created.key }), 401, "revoked key, immediately");
      assertProblem(await auth(p, "DELETE", `/keys/${created.id}`, { token }), 404, "already revoked");
      assertProblem(await auth(p, "DELETE", "/keys/nosuchkey123", { token }), 404, "unknown id");
      const list = await auth(p, "GET", "/keys", { token });
      assert.ok(!list.json.keys.some((k) => k.id === created.id), "no longer listed");
    });

    test("a key revoked elsewhere (auth RPC directly) stops working here within 5 s", async () => {
      const created = await createKey(p, { token }, "elsewhere");
      assert.equal((await auth(p, "GET", "/me", { key: created.key })).status, 200);
      const userId = decode(token).sub;
      const answer = await authRpc.revokeApiKey(rpcCtx(userId), { id: created.id });
      assert.equal(answer.ok, true, JSON.stringify(answer));
      const ms = await msUntil(() => auth(p, "GET", "/me", { key: created.key }), 401);
      assert.ok(ms <= 5000, `took ${ms} ms`);
    });
  });

  describe("POST /logout", () => {
    test("204: both the token and the cookie of the session stop working at once", async () => {
      const email = uniqueEmail("bye");
      await signup(p, email);
      const { token, session } = await login(p, email);
      const other = await login(p, email); // a second session of the same user survives
      assert.equal((await auth(p, "GET", "/me", { token })).status, 200);
      assert.equal((await auth(p, "GET", "/me", { session })).status, 200);

      const res = await auth(p, "POST", "/logout", { token, headers: { cookie: `session=${session}` } });
      assert.equal(res.status, 204, res.text);
      const cleared = cookieOf(res).header;
      assert.match(cleared, /^session=;/);
      assert.match(cleared, /Max-Age=0/);

      assertProblem(await auth(p, "GET", "/me", { token }), 401, "token after logout");
      assertProblem(await auth(p, "GET", "/me", { session }), 401, "cookie after logout");
      assert.equal((await authRpc.validateSession(session)).valid, false);
      assert.equal((await authRpc.validateToken(token)).valid, false);
      assert.equal((await auth(p, "GET", "/me", { token: other.token })).status, 200, "other session untouched");
      assertProblem(await auth(p, "POST", "/logout", { token }), 401, "logging out twice");
    });

    test("logging out with the cookie alone also kills the tokens of that session", async () => {
      const email = uniqueEmail("cookie-bye");
      await signup(p, email);
      const { token, session } = await login(p, email);
      assert.equal((await auth(p, "GET", "/me", { token })).status, 200, "token cached as live");
      assert.equal((await auth(p, "POST", "/logout", { session })).status, 204);
      assertProblem(await auth(p, "GET", "/me", { token }), 401, "token after cookie logout");
      assertProblem(await auth(p, "GET", "/me", { session }), 401, "cookie after cookie logout");
    });

    test("a session ended elsewhere (auth RPC directly) stops its token and cookie here within 5 s", async () => {
      const email = uniqueEmail("remote-bye");
      await signup(p, email);
      const { token, session } = await login(p, email);
      assert.equal((await auth(p, "GET", "/me", { token })).status, 200);
      assert.equal((await auth(p, "GET", "/me", { session })).status, 200);
      const { sub, sid } = decode(token);
      const answer = await authRpc.logout(rpcCtx(sub), { sessionId: sid });
      assert.deepEqual(plain(answer), { ok: true, revoked: [sid] });
      const [tokenMs, cookieMs] = await Promise.all([
        msUntil(() => auth(p, "GET", "/me", { token }), 401),
        msUntil(() => auth(p, "GET", "/me", { session }), 401),
      ]);
      assert.ok(tokenMs <= 5000 && cookieMs <= 5000, `token ${tokenMs} ms, cookie ${cookieMs} ms`);
    });

    test("401 without a credential; 204 for an API-key identity (nothing to end)", async () => {
      assertProblem(await auth(p, "POST", "/logout"), 401, "anonymous");
      assert.equal((await auth(p, "POST", "/logout", { key: DEV_ADMIN_API_KEY })).status, 204);
    });
  });

  describe("roles and access levels", () => {
    let user, token, target;
    before(async () => {
      const email = uniqueEmail("role");
      user = await signup(p, email);
      ({ token } = await login(p, email));
      target = await signup(p);
    });
    const setRole = (credential, id, role) => auth(p, "PUT", `/users/${id}/role`, { ...credential, body: { role } });

    test("401 versus 403 on every access level", async () => {
      // anon: signup and login need nothing.
      assert.equal((await auth(p, "POST", "/signup", { body: { email: uniqueEmail("anon"), password: PASSWORD } })).status, 201);
      // authenticated: 401 without identity, 200 with any.
      assertProblem(await auth(p, "GET", "/me"), 401, "/me anonymous");
      assert.equal((await auth(p, "GET", "/me", { token })).status, 200);
      assertProblem(await auth(p, "GET", "/keys"), 401, "/keys anonymous");
      // admin: 401 without identity, 403 for a user, allowed for an admin.
      assertProblem(await setRole({}, target.id, "admin"), 401, "role change anonymous");
      assertProblem(await setRole({ token }, target.id, "admin"), 403, "role change by a user");
      assertProblem(await setRole({ key: DEV_ADMIN_API_KEY }, "01NOSUCHUSER00000000000000", "admin"), 404, "admin passes, user unknown");
      // The db service is authenticated at the door (pipeline): anonymous and invalid are 401.
      assertProblem(await auth(p, "GET", "/notes/1", { prefix: "/api/db" }), 401, "/api/db anonymous");
      assertProblem(await auth(p, "GET", "/notes/1", { prefix: "/api/db", token: "bad.to.ken" }), 401, "/api/db bad token");
      const db = await auth(p, "GET", "/notes/1", { prefix: "/api/db", token });
      assert.ok(![401, 403].includes(db.status), `a user gets past the door: ${db.status}`);
    });

    test("PUT /users/{id}/role: 400 on a bad role or body; 200 {user}", async () => {
      for (const body of [{ role: "root" }, { role: "Admin" }, { role: 1 }, {}]) {
        assertProblem(await auth(p, "PUT", `/users/${target.id}/role`, { key: DEV_ADMIN_API_KEY, body }), 400, JSON.stringify(body));
      }
      const res = await setRole({ key: DEV_ADMIN_API_KEY }, target.id, "user");
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.user.id, target.id);
      assert.equal(res.json.user.role, "user");
    });

    test("a role change takes effect at once, even for tokens issued before it", async () => {
      const key = (await createKey(p, { token })).key;
      assert.equal((await auth(p, "GET", "/me", { key })).json.user.role, "user", "key identity cached as user");
      const promoted = await setRole({ key: DEV_ADMIN_API_KEY }, user.id, "admin");
      assert.equal(promoted.status, 200, promoted.text);
      assert.deepEqual(promoted.json.user.permissions, ["*"]);

      const me = await auth(p, "GET", "/me", { token });
      assert.equal(me.json.user.role, "admin", "old token, new role");
      assert.deepEqual(me.json.user.permissions, ["*"]);
      assert.equal((await auth(p, "GET", "/me", { key })).json.user.role, "admin", "cached key identity refreshed");
      assert.equal((await setRole({ token }, target.id, "user")).status, 200, "the new admin can use admin routes");

      const demoted = await setRole({ key: DEV_ADMIN_API_KEY }, user.id, "user");
      assert.equal(demoted.status, 200);
      assertProblem(await setRole({ token }, target.id, "user"), 403, "demoted: admin route refused at once");
      assertProblem(await setRole({ key }, target.id, "user"), 403, "demoted key");
    });

    test("a role changed elsewhere (auth RPC directly) reaches tokens here within 5 s", async () => {
      assert.equal((await auth(p, "GET", "/me", { token })).json.user.role, "user");
      const answer = await authRpc.setRole(rpcCtx("admin", "admin"), { userId: user.id, role: "admin" });
      assert.equal(answer.ok, true, JSON.stringify(answer));
      const ms = await msUntil(async () => {
        const res = await auth(p, "GET", "/me", { token });
        return { status: res.json?.user?.role === "admin" ? 1 : 0 };
      }, 1);
      assert.ok(ms <= 5000, `took ${ms} ms`);
      await authRpc.setRole(rpcCtx("admin", "admin"), { userId: user.id, role: "user" });
    });
  });

  describe("the routes themselves", () => {
    test("405 for a wrong method, 404 for an unknown path", async () => {
      assertProblem(await auth(p, "GET", "/signup"), 405, "GET /signup");
      assertProblem(await auth(p, "DELETE", "/me", { key: DEV_ADMIN_API_KEY }), 405, "DELETE /me");
      assertProblem(await auth(p, "GET", "/nothing"), 404, "/nothing");
      assertProblem(await auth(p, "GET", "/users/x/role/extra", { key: DEV_ADMIN_API_KEY }), 404, "too deep");
    });

    test("host auth.do serves the same adapter at the root", async () => {
      const email = uniqueEmail("authdo");
      const up = await auth(p, "POST", "/signup", { host: "auth.do", prefix: "", body: { email, password: PASSWORD } });
      assert.equal(up.status, 201, up.text);
      const res = await auth(p, "POST", "/login", { host: "auth.do", prefix: "", body: { email, password: PASSWORD } });
      assert.equal(res.status, 200, res.text);
      secrets.add(res.json.token);
      secrets.add(cookieOf(res).value);
      const me = await auth(p, "GET", "/me", { host: "auth.do", prefix: "", token: res.json.token });
      assert.equal(me.json.user.email, email);
    });
  });

  describe("the RPC surface", () => {
    test("refusals are typed results, not throws; wrong shapes are 400", async () => {
      assert.deepEqual(plain(await authRpc.signup(rpcCtx(null), { email: 5, password: PASSWORD })), {
        ok: false,
        error: { status: 400, detail: "signup takes {email, password, name?} (strings)" },
      });
      assert.equal((await authRpc.signup(rpcCtx(null), "nope")).error.status, 400);
      assert.equal((await authRpc.login(rpcCtx(null), { email: "x@example.com", password: "wrong password" })).error.status, 401);
      assert.equal((await authRpc.listApiKeys(rpcCtx(null))).error.status, 401);
      assert.equal((await authRpc.setRole(rpcCtx("u1", "user"), { userId: "u1", role: "admin" })).error.status, 403);
      assert.equal((await authRpc.logout(rpcCtx("u1"), {})).error.status, 400);
      assert.equal((await authRpc.logout(rpcCtx("u1"), { sessionId: "not-a-handle" })).error.status, 400);
      for (const method of ["validateToken", "validateApiKey", "validateSession"]) {
        for (const junk of ["", "x", 42, null, { a: 1 }]) {
          assert.deepEqual(plain(await authRpc[method](junk)), { valid: false }, `${method}(${JSON.stringify(junk)})`);
        }
      }
    });

    test("storage: PBKDF2 records with per-user salts, sessions by hash only", async () => {
      const a = await signup(p);
      const b = await signup(p);
      const db = await p.mf.getD1Database("DB", "auth");
      const rows = await db.prepare("SELECT id, password_hash FROM users WHERE id IN (?, ?)").bind(a.id, b.id).all();
      const records = rows.results.map((r) => r.password_hash);
      for (const record of records) {
        assert.match(record, /^pbkdf2\$100000\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
        assert.ok(!record.includes(PASSWORD));
      }
      assert.notEqual(records[0].split("$")[2], records[1].split("$")[2], "distinct salts");
      assert.notEqual(records[0].split("$")[3], records[1].split("$")[3], "same password, different hashes");

      const { session, token } = await login(p, a.email);
      const stored = await db.prepare("SELECT * FROM sessions WHERE user_id = ?").bind(a.id).all();
      assert.equal(stored.results.length, 1);
      assert.equal(stored.results[0].handle, sha256(session));
      assert.ok(!JSON.stringify(stored.results).includes(session));
      assert.ok(stored.results[0].expires_at > decode(token).exp, "the session outlives its token");
    });
  });

  describe("cost per credential type", () => {
    test("200 sequential GET /api/auth/me per credential type, against anonymous baselines", async () => {
      const email = uniqueEmail("bench");
      await signup(p, email);
      const { token, session } = await login(p, email);
      const key = (await createKey(p, { token }, "bench")).key;
      const N = 200;
      const kinds = [
        ["anonymous /api/auth/me (401, no credential)", {}, 401, "/api/auth/me"],
        ["anonymous /health", {}, 200, "/health"],
        ["token", { token }, 200, "/api/auth/me"],
        ["API key", { key }, 200, "/api/auth/me"],
        ["session cookie", { session }, 200, "/api/auth/me"],
        ["admin key", { key: DEV_ADMIN_API_KEY }, 200, "/api/auth/me"],
      ];
      const rpcLines = () => p.logs.filter((l) => l.includes('"service":"auth"') && l.includes('"message":"rpc"'));
      const stats = (name, samples, authRpcCalls) => {
        samples.sort((a, b) => a - b);
        const pct = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))].toFixed(2);
        const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
        return { name, mean: mean.toFixed(2), p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), authRpcCalls };
      };
      // Interleaved (one request of each kind per round), so load drift on a shared machine
      // hits every kind alike.
      const samples = kinds.map(() => []);
      const before = rpcLines().length;
      const started = performance.now();
      for (let i = 0; i < N; i++) {
        for (const [k, [name, credential, status, path]] of kinds.entries()) {
          const t = performance.now();
          const res = await auth(p, "GET", path, { ...credential, prefix: "" });
          samples[k].push(performance.now() - t);
          assert.equal(res.status, status, `${name}: ${res.text}`);
        }
      }
      const elapsed = performance.now() - started;
      await sleep(50);
      const calls = rpcLines().slice(before);
      const byMethod = (m) => calls.filter((l) => l.includes(`"method":"${m}"`)).length;
      const perKind = { token: byMethod("validateToken"), "API key": byMethod("validateApiKey"), "session cookie": byMethod("validateSession") };
      const rows = kinds.map(([name], k) => stats(name, samples[k], perKind[name] ?? 0));
      // Tokens and the admin key never cost an RPC; keys and sessions one per 4 s of cache
      // life (plus the first); nothing else was called.
      assert.equal(perKind.token, 0, "tokens are verified without auth");
      for (const kind of ["API key", "session cookie"]) {
        assert.ok(perKind[kind] >= 1 && perKind[kind] <= Math.ceil(elapsed / 4000) + 1, `${kind}: ${perKind[kind]} RPCs in ${elapsed.toFixed(0)} ms`);
      }
      assert.equal(calls.length, perKind["API key"] + perKind["session cookie"], "no other auth RPC");

      // Cold: the first request with a credential this isolate has not seen yet (a KV read
      // for a token, an auth RPC for a key or a session).
      const COLD = 20;
      const fresh = { token: [], "API key": [], "session cookie": [] };
      for (let i = 0; i < COLD; i++) {
        const s = await login(p, email);
        fresh.token.push({ token: s.token });
        fresh["session cookie"].push({ session: s.session });
        fresh["API key"].push({ key: (await createKey(p, { token }, `cold ${i}`)).key });
      }
      // Interleaved with an anonymous baseline round, as above.
      const cold = { "anonymous /api/auth/me (401), alongside the cold runs": [], ...Object.fromEntries(Object.keys(fresh).map((k) => [k, []])) };
      const coldBefore = rpcLines().length;
      for (let i = 0; i < COLD; i++) {
        for (const name of Object.keys(cold)) {
          const credential = fresh[name]?.[i] ?? {};
          const t = performance.now();
          const res = await auth(p, "GET", "/me", credential);
          cold[name].push(performance.now() - t);
          assert.equal(res.status, fresh[name] ? 200 : 401, `${name} (cold): ${res.text}`);
        }
      }
      await sleep(50);
      const coldCalls = rpcLines().slice(coldBefore);
      const count = (method) => coldCalls.filter((l) => l.includes(`"method":"${method}"`)).length;
      const coldRpc = { token: count("validateToken"), "API key": count("validateApiKey"), "session cookie": count("validateSession") };
      assert.deepEqual(coldRpc, { token: 0, "API key": COLD, "session cookie": COLD }, "one validation per new key or session, none for tokens");
      for (const [name, samples] of Object.entries(cold)) {
        rows.push(stats(fresh[name] ? `${name}, cold (first use)` : name, samples, coldRpc[name] ?? 0));
      }
      console.log("\nper-request cost through the api (ms, local workerd, sequential):");
      console.table(rows);
    });
  });

  test("no password, token, API key or session id ever appears in a log line", async () => {
    await sleep(100);
    assert.ok(p.logs.length > 100, `${p.logs.length} lines captured`);
    assert.ok(secrets.size > 10, `${secrets.size} secrets tracked`);
    for (const line of p.logs) {
      for (const secret of secrets) {
        assert.ok(!line.includes(secret), `a secret leaked into: ${line.slice(0, 200)}`);
      }
      assert.doesNotMatch(line, /eyJhbGciOi/, "no JWT");
      assert.doesNotMatch(line, /sk_[A-Za-z0-9]{12}_/, "no API key");
      assert.doesNotMatch(line, /pbkdf2\$/, "no password record");
    }
    // The auth service logs one line per call: ids, method, outcome, duration; nothing else.
    const rpc = p.logs.filter((l) => l.includes('"message":"rpc"')).map((l) => JSON.parse(l.slice(l.indexOf("{"))));
    assert.ok(rpc.length > 20);
    for (const line of rpc) {
      const allowed = ["level", "message", "service", "method", "requestId", "traceId", "outcome", "durationMs", "error"];
      assert.deepEqual(Object.keys(line).filter((k) => !allowed.includes(k)), [], JSON.stringify(line));
    }
    const logins = rpc.filter((l) => l.method === "login" && l.requestId);
    assert.ok(logins.length > 0, "login lines carry the api's requestId");
    assert.ok(logins.some((l) => /^[0-9a-f]{32}$/.test(l.traceId ?? "")), "and its traceId");
  });
});
